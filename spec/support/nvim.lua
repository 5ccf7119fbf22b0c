-- Runs Lua scenarios in a real `nvim --headless` (Neovim's LuaJIT) for the
-- specs of spec/nvim/. A scenario file (see spec/nvim/observe.lua) writes
-- what it observed to a file as a Lua literal and quits; run() reads it
-- back. The server's URL and key reach Neovim through the environment (an
-- env file sourced by the shell, so the key is on no command line).
--
--   local nvim = require("support.nvim")
--   if not nvim.available() then pending(...) end
--   local runner = nvim.runner{ root = ROOT, srv = srv }   -- in setup()
--   local obs, log = runner:scenario("spec/nvim/io_scenarios.lua", "latency")
--   runner:cleanup()                                      -- in teardown()
local net = require("support.net")
local run_ok, read_file, write_file, shell_quote, closed_port =
      net.run_ok, net.read_file, net.write_file, net.shell_quote, net.closed_port

local _M = {}

local NVIM_TIMEOUT = 90   -- seconds, for every Neovim run

function _M.available()
  return run_ok("command -v nvim >/dev/null 2>&1")
end

--- The repository root (absolute), from the calling spec's location.
function _M.root()
  local src = debug.getinfo(2, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/[^/]*/[^/]*$") or src:match("^(.*)/spec/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local p = assert(io.popen("pwd"))
    local cwd = p:read("*l")
    p:close()
    dir = dir == "." and cwd or (cwd .. "/" .. dir)
  end
  return dir
end

local Runner = {}
Runner.__index = Runner

-- What Neovim must not inherit: the ASan runtime (Neovim loads a plain
-- build), an outer make's flags and variables (`make test RUNTIMES=...`),
-- Lua paths from the environment, and a user's or an outer Neovim's settings.
local CLEAN_ENV = "unset LD_PRELOAD MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS "
  .. "MAKEFILES LUA_PATH LUA_CPATH LUA_PATH_5_1 LUA_CPATH_5_1 LUA_INIT LUA_INIT_5_1 "
  .. "VIMINIT EXINIT MYVIMRC NVIM NVIM_LISTEN_ADDRESS;"
_M.CLEAN_ENV = CLEAN_ENV

--- Runs `nvim --headless` with env (a table) and extra arguments (a
-- string); returns whether it exited 0 and everything it printed. A plain
-- runner starts Neovim with `-u NONE` and the repository first on the
-- runtimepath, in the repository; a `plugins` runner as a user's Neovim
-- starts (its config, its pack/ plugins: nothing added), in its tmp.
function Runner:run(env, args)
  local env_file = self.tmp .. "/env"
  local lines = {}
  for k, v in pairs(env) do
    lines[#lines + 1] = k .. "=" .. shell_quote(v)
  end
  table.sort(lines)
  write_file(env_file, table.concat(lines, "\n") .. "\n")
  local log = self.tmp .. "/nvim.log"
  local cmd = table.concat({
    CLEAN_ENV,
    "set -a;", ". " .. shell_quote(env_file) .. ";", "set +a;",
    "cd " .. shell_quote(self.plugins and self.tmp or self.root) .. " &&",
    "timeout -k 5", tostring(NVIM_TIMEOUT), "nvim --headless -i NONE -n",
    self.plugins and "" or ("-u NONE --cmd " .. shell_quote("set rtp^=" .. self.root)),
    args, "</dev/null >" .. shell_quote(log) .. " 2>&1",
  }, " ")
  local ok = run_ok(cmd)
  os.remove(env_file)
  return ok, read_file(log) or ""
end

--- The environment every run gets (plus `extra`).
function Runner:env(extra)
  local srv, tmp = self.srv, self.tmp
  local env = {
    ONECLI_NVIM_ROOT = self.root,
    ONECLI_URL = srv and srv.url or nil,
    ONECLI_API_KEY = srv and srv.api_key or nil,
    ONECLI_CLOSED_URL = "http://127.0.0.1:" .. closed_port(),
    NVIM_LOG_FILE = tmp .. "/nvim-internal.log",
    XDG_CACHE_HOME = tmp .. "/cache",
    XDG_STATE_HOME = tmp .. "/state",
    XDG_DATA_HOME = tmp .. "/data",
    XDG_CONFIG_HOME = tmp .. "/config",
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

local function load_literal(data, name)
  local chunk
  if rawget(_G, "setfenv") then      -- Lua 5.1 and LuaJIT: load() takes no string there
    chunk = assert(loadstring(data, "=" .. name))
    setfenv(chunk, {})
  else
    chunk = assert(load(data, "=" .. name, "t", {}))
  end
  return chunk()
end

--- Runs scenario `name` of `file` (relative to the root); returns its
-- observations and Neovim's output. Fails the test when the scenario
-- raised, timed out, or let the API key into its observations.
function Runner:scenario(file, name, extra_env)
  local out = self.tmp .. "/" .. name .. ".out"
  os.remove(out)
  local env = self:env(extra_env)
  env.ONECLI_NVIM_OUT, env.ONECLI_NVIM_SCENARIO = out, name
  local ok, log = self:run(env, "-c " .. shell_quote("luafile " .. self.root .. "/" .. file))
  local data = read_file(out)
  assert(data, "nvim wrote no observations (exit ok: " .. tostring(ok) .. "):\n" .. log)
  if self.srv then
    assert(not data:find(self.srv.api_key, 1, true), "the API key leaked into the observations")
    assert(not log:find(self.srv.api_key, 1, true), "the API key leaked into Neovim's output")
  end
  local obs = load_literal(data, name)
  assert(obs.error == nil, "scenario failed in nvim: " .. tostring(obs.error) .. "\n" .. log)
  assert(not obs.watchdog, "scenario " .. name .. " did not finish in time")
  assert(ok, "nvim exited with an error:\n" .. log)
  return obs, log
end

function Runner:cleanup()
  local tmp = self.tmp
  if tmp and tmp:match("^/.*/?tmp[%./]") then run_ok("rm -rf " .. shell_quote(tmp)) end
end

--- A runner. opts: root (the repository), srv (a stand-in from
-- onecli.standin.launcher, or nil), tmp (its directory; default a fresh one),
-- plugins (start Neovim as a user's: see run).
function _M.runner(opts)
  local tmp = opts.tmp
  if not opts.plugins then
    assert(read_file(opts.root .. "/build/luajit/onecli/core.so"),
           "build/luajit/onecli/core.so is missing: run `make build` (Neovim runs LuaJIT)")
  end
  if tmp == nil then
    local p = assert(io.popen("mktemp -d"))
    tmp = p:read("*l")
    p:close()
  end
  return setmetatable({ root = opts.root, srv = opts.srv, tmp = tmp,
                        plugins = opts.plugins == true }, Runner)
end

return _M
