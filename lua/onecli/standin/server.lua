-- The OneCLI stand-in server's entry script, the one the launcher
-- (onecli.standin.launcher, behind onecli.testing) spawns:
--
--   lua5.4 <dir>/onecli/standin/server.lua --mode v2 --port 0 ...
--
-- where <dir> is lua/ in a checkout or share/lua/5.x in an installed
-- tree; the launcher finds this file with package.searchpath. It puts
-- <dir> first on package.path, so the modules beside it load whatever the
-- Lua path of the process says. The options are those of onecli-standin
-- (onecli.standin.cli; --help lists them); the defaults here suit a
-- launched child: v1, at most 600 s.
--
-- Loaded with require (as onecli.standin.server), it runs nothing and
-- returns onecli.standin.cli.
local name = ...
if name == "onecli.standin.server" then return require("onecli.standin.cli") end

local script_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.path = script_dir .. "/../../?.lua;" .. script_dir .. "/../../?/init.lua;" .. package.path

require("onecli.standin.cli").main(arg or {}, "onecli-standin")
