-- `make demo`: starts the bundled local OneCLI stand-in server (v1 and v2
-- modes, on free ports of 127.0.0.1, through onecli.testing) and runs
-- examples/quickstart.lua against each, as a user would: a separate
-- process configured through the environment. Then stops the servers.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local testing = require("onecli.testing")

local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local LUA_CPATH = "./build/lua5.4/?.so;;"

local function run(mode)
  local srv = testing.start({ mode = mode, max_lifetime = 120 })
  print(("== quickstart against the stand-in in %s mode at %s"):format(mode, srv.url))
  io.stdout:flush()
  local cmd = ("env LUA_PATH='%s' LUA_CPATH='%s' ONECLI_URL='%s' %s lua5.4 examples/quickstart.lua")
    :format(LUA_PATH, LUA_CPATH, srv.url,
            mode == "v2" and ("ONECLI_API_KEY='" .. srv.api_key .. "'") or "")
  local ok = os.execute(cmd)
  srv:stop()
  if ok ~= true and ok ~= 0 then
    io.stderr:write("demo failed in " .. mode .. " mode\n")
    os.exit(1)
  end
end

run("v1")
run("v2")
print("demo ok")
