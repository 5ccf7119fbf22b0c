--- :checkhealth onecli
--
-- Reports the lua-onecli version, whether the C core (onecli.core)
-- loaded and with which libcurl, whether the non-blocking Neovim
-- transport is available, the configured server (require("onecli").setup's
-- url, else vim.g.onecli_url, else $ONECLI_URL, else the default) and
-- whether it answers GET /health.
-- About the API key it only says whether one is set: the key itself is
-- never shown.
--
-- The server check waits at most a few seconds (health checks may block
-- briefly); through the Neovim transport when the core has the libcurl
-- multi driver, else through the blocking one.
--
-- When the core is missing, does not load, or is older than the plugin's
-- sources, the advice is a plugin user's: run `make` in the plugin's
-- directory (named; found from this file's location), which builds
-- lua/onecli/core.so where Neovim's runtimepath loader finds it.

-- luacheck: globals vim

local type, pcall, tostring, require, ipairs = type, pcall, tostring, require, ipairs
local fmt = string.format

local _M = {}

local DEFAULT_URL = "https://api.onecli.sh/v1"
local TIMEOUT = 3           -- seconds, the whole request
local CONNECT_TIMEOUT = 2   -- seconds

-- Neovim 0.10+: vim.health.start/ok/...; 0.8-0.9: vim.health.report_*;
-- 0.7: require("health").report_*.
local function reporter()
  local h = vim.health
  if type(h) == "table" and type(h.start) == "function" then
    return { start = h.start, ok = h.ok, warn = h.warn, error = h.error, info = h.info }
  end
  if type(h) ~= "table" or type(h.report_start) ~= "function" then
    h = require("health")
  end
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn,
           error = h.report_error, info = h.report_info }
end

-- A setting: the Neovim variable, else the environment variable.
-- Returns value, where it came from.
local function setting(var, env, option)
  -- require("onecli").setup{} first: what :OneCLI uses
  local nv = package.loaded["onecli.nvim"]
  if option and type(nv) == "table" and type(nv.setting) == "function" then
    local v = nv.setting(option)
    if type(v) == "string" and v ~= "" then
      return v, "setup{ " .. option .. " }"
    end
  end
  local v = vim.g[var]
  if type(v) == "string" and v ~= "" then
    return v, "g:" .. var
  end
  v = os.getenv(env)
  if v and v ~= "" then
    return v, "$" .. env
  end
  return nil
end

-- The directory holding this copy of lua-onecli (the one with
-- lua/onecli/health.lua), absolute, or nil.
local function source_dir()
  local path = debug.getinfo(1, "S").source
  path = type(path) == "string" and path:match("^@(.*lua/onecli/health%.lua)$")
  if not path then
    path = vim.api.nvim_get_runtime_file("lua/onecli/health.lua", false)[1]
  end
  if not path then
    return nil
  end
  -- .../lua/onecli/health.lua -> ...
  return (vim.fn.fnamemodify(path, ":p:h:h:h"):gsub("/$", ""))
end

-- The plugin's directory: where this file came from, when that is a
-- checkout (a plugin manager's clone, pack/*/start) with its Makefile;
-- nil for an installed rock.
local function plugin_dir()
  local dir = source_dir()
  if dir and vim.loop.fs_stat(dir .. "/Makefile") then
    return dir
  end
  return nil
end

-- What to do about a missing, broken or stale core.
local function build_advice(dir)
  local advice = {}
  if dir then
    advice[1] = fmt("run `make` in the plugin's directory, %s (lazy.nvim: build = \"make\"; "
                    .. "packer: run = \"make\"), then restart Neovim: it builds "
                    .. "lua/onecli/core.so for Neovim's LuaJIT", dir)
  else
    advice[1] = "install lua-onecli as a Neovim plugin and run `make` in the plugin's directory "
                .. "(lazy.nvim: build = \"make\"; packer: run = \"make\"), then restart Neovim"
  end
  advice[2] = "the build needs a C compiler and the headers of libcurl and LuaJIT (Debian: "
              .. "`apt-get install gcc make libcurl4-openssl-dev libluajit2-5.1-dev`); the core "
              .. "needs libcurl at run time (Debian: libcurl4)"
  return advice
end

-- Where the core that loaded comes from: the runtimepath (Neovim looks
-- there first), else package.cpath.
local function core_path()
  local found = vim.api.nvim_get_runtime_file("lua/onecli/core.so", false)[1]
  if found then
    return found
  end
  return package.searchpath and package.searchpath("onecli.core", package.cpath) or nil
end

local function mtime(path)
  local st = vim.loop.fs_stat(path)
  return st and (st.mtime.sec + st.mtime.nsec * 1e-9) or nil
end

-- The version the plugin's sources say (csrc/onecli.h), or nil.
local function source_version(dir)
  local f = io.open(dir .. "/csrc/onecli.h", "r")
  if not f then
    return nil
  end
  local text = f:read("*a")
  f:close()
  return text:match('#define%s+ONECLI_VERSION%s+"([^"]*)"')
end

-- The newest source file of the core under dir/csrc, or nil.
local function newest_source(dir)
  local newest, newest_time
  for _, name in ipairs(vim.fn.readdir(dir .. "/csrc")) do
    if name:match("%.[ch]$") then
      local t = mtime(dir .. "/csrc/" .. name)
      if t and (not newest_time or t > newest_time) then
        newest, newest_time = name, t
      end
    end
  end
  return newest, newest_time
end

-- Reports a core that is not the one the plugin's sources build: another
-- version (an error), or older than a source file (a warning: `make`
-- would rebuild it).
local function check_stale(report, core, path, dir)
  if not dir or vim.fn.isdirectory(dir .. "/csrc") ~= 1 then
    return
  end
  local want = source_version(dir)
  if want and want ~= core._VERSION then
    report.error(fmt("the C core is stale: it is version %s, the plugin's sources are %s",
                     tostring(core._VERSION), want), build_advice(dir))
    return
  end
  if path and path:sub(1, #dir + 1) == dir .. "/" then
    local built = mtime(path)
    local name, changed = newest_source(dir)
    if built and changed and changed > built then
      report.warn(fmt("the C core (%s) is older than its source csrc/%s: it may be stale",
                      path, name), build_advice(dir))
    end
  end
end

local function describe(err)
  if type(err) == "table" then
    return tostring(err)
  end
  return tostring(err or "no answer")
end

-- GET /health (and, with a key, GET /user) through the Neovim transport,
-- waiting with vim.wait. Returns health, user_err, err | nil, nil, err.
local function probe_async(client, has_key)
  local state = {}
  local nvim = require("onecli.transport.nvim")
  nvim.run(function()
    local health, err = client:health({ raise = false })
    if health and has_key then
      local _, user_err = client.user:get({ raise = false })
      state.user_err = user_err
    end
    state.health, state.err = health, err
  end, function(ok, e)
    state.done = true
    if not ok then
      state.err = e
    end
  end)
  local finished = vim.wait((TIMEOUT * 2 + 2) * 1000, function() return state.done end, 10)
  if not finished then
    return nil, nil, "no answer in time"
  end
  return state.health, state.user_err, state.err
end

local function probe_blocking(client, has_key)
  local health, err = client:health({ raise = false })
  local user_err
  if health and has_key then
    local _
    _, user_err = client.user:get({ raise = false })
  end
  return health, user_err, err
end

function _M.check()
  local report = reporter()
  report.start("lua-onecli")

  local dir = plugin_dir()
  local loaded, core = pcall(require, "onecli.core")
  if not loaded then
    local msg = tostring(core)
    if msg:find("module 'onecli.core' not found", 1, true) then
      -- the list of every path tried says nothing more
      report.error("the C core (onecli.core) is not built: no lua/onecli/core.so in the "
                   .. "plugin's directory or on the runtimepath", build_advice(dir))
    else
      report.error("the C core (onecli.core) did not load: " .. msg, build_advice(dir))
    end
    return
  end
  report.ok(fmt("lua-onecli %s", tostring(core._VERSION)))
  report.ok(fmt("C core loaded (libcurl %s; %s)", tostring(core.curl_version),
                tostring(core.user_agent)))
  local path = core_path()
  if path then
    report.info("C core: " .. path)
  end
  check_stale(report, core, path, dir)

  local async = type(core.new_multi) == "function"
  if async then
    report.ok("non-blocking Neovim transport available (libcurl multi driver)")
  else
    report.warn("this build of the C core has no libcurl multi driver (core.new_multi): "
                .. "require('onecli.transport.nvim') will fail and calls would block the editor",
                build_advice(dir))
  end

  local client_mod = require("onecli.client")
  local raw_url, url_source = setting("onecli_url", "ONECLI_URL", "url")
  local url, msg = client_mod.normalize_url(raw_url or DEFAULT_URL)
  if not url then
    report.error(fmt("the configured URL (%s) is not usable: %s", url_source, msg),
                 { "set g:onecli_url or $ONECLI_URL to the server, e.g. http://localhost:10254" })
    return
  end
  report.info(fmt("URL: %s (%s)", url, url_source or "default"))

  local key, key_source = setting("onecli_api_key", "ONECLI_API_KEY", "api_key")
  if key then
    report.ok("an API key is set (" .. key_source .. ")")
  else
    report.warn("no API key is set: only v1 servers in local mode answer without one",
                { "set $ONECLI_API_KEY (the key is never shown here)" })
  end
  local project, project_source = setting("onecli_project_id", "ONECLI_PROJECT_ID", "project_id")
  if project then
    report.info(fmt("project: %s (%s)", project, project_source))
  end

  local opts = {
    url = url, timeout = TIMEOUT, connect_timeout = CONNECT_TIMEOUT, max_retries = 0,
    raise = false, getenv = function() return nil end,
  }
  opts.api_key, opts.project_id = key, project
  local made, client
  if async then
    made, client = pcall(require("onecli.transport.nvim").client, opts)
  else
    made, client = pcall(require("onecli").new, opts)
  end
  if not made then
    report.error("could not create a client: " .. tostring(client))
    return
  end
  local probe = async and probe_async or probe_blocking
  local ok, health, user_err, err = pcall(probe, client, key ~= nil)
  client:close()
  if not ok then
    report.error("checking the server failed: " .. tostring(health))
  elseif not health then
    report.error(fmt("the server does not answer GET /health: %s", describe(err)), {
      "is the server running at " .. url .. "?",
      "a self-hosted server listens on http://localhost:10254 by default",
    })
  else
    local version = type(health) == "table" and health.version
    report.ok(fmt("the server answers GET /health%s",
                  type(version) == "string" and (" (OneCLI " .. version .. ")") or ""))
    if user_err then
      if user_err.status == 401 or user_err.status == 403 then
        report.error("the server rejects the API key: " .. describe(user_err),
                     { "check $ONECLI_API_KEY (and $ONECLI_PROJECT_ID for an organization key)" })
      else
        report.warn("GET /user failed: " .. describe(user_err))
      end
    elseif key then
      report.ok("the API key is accepted (GET /user)")
    end
  end
end

return _M
