--- :checkhealth onecli
--
-- Reports the lua-onecli version, whether the C core (onecli.core)
-- loaded and with which libcurl, whether the non-blocking Neovim
-- transport is available, the configured server (vim.g.onecli_url, else
-- $ONECLI_URL, else the default) and whether it answers GET /health.
-- About the API key it only says whether one is set: the key itself is
-- never shown.
--
-- The server check waits at most a few seconds (health checks may block
-- briefly); through the Neovim transport when the core has the libcurl
-- multi driver, else through the blocking one.

-- luacheck: globals vim

local type, pcall, tostring, require = type, pcall, tostring, require
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
local function setting(var, env)
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

  local loaded, core = pcall(require, "onecli.core")
  if not loaded then
    report.error("the C core (onecli.core) did not load: " .. tostring(core), {
      "Neovim runs LuaJIT: build the core for it (`make build` gives build/luajit/onecli/core.so) "
        .. "and put that directory on package.cpath (e.g. package.cpath = '/path/to/lua-onecli/"
        .. "build/luajit/?.so;' .. package.cpath)",
      "the core needs libcurl (Debian: `apt-get install libcurl4`)",
    })
    return
  end
  report.ok(fmt("lua-onecli %s", tostring(core._VERSION)))
  report.ok(fmt("C core loaded (libcurl %s; %s)", tostring(core.curl_version),
                tostring(core.user_agent)))
  local path = package.searchpath and package.searchpath("onecli.core", package.cpath)
  if path then
    report.info("C core: " .. path)
  end

  local async = type(core.new_multi) == "function"
  if async then
    report.ok("non-blocking Neovim transport available (libcurl multi driver)")
  else
    report.warn("this build of the C core has no libcurl multi driver (core.new_multi): "
                .. "require('onecli.transport.nvim') will fail and calls would block the editor",
                { "rebuild the C core from a current lua-onecli (`make build`)" })
  end

  local client_mod = require("onecli.client")
  local raw_url, url_source = setting("onecli_url", "ONECLI_URL")
  local url, msg = client_mod.normalize_url(raw_url or DEFAULT_URL)
  if not url then
    report.error(fmt("the configured URL (%s) is not usable: %s", url_source, msg),
                 { "set g:onecli_url or $ONECLI_URL to the server, e.g. http://localhost:10254" })
    return
  end
  report.info(fmt("URL: %s (%s)", url, url_source or "default"))

  local key, key_source = setting("onecli_api_key", "ONECLI_API_KEY")
  if key then
    report.ok("an API key is set (" .. key_source .. ")")
  else
    report.warn("no API key is set: only v1 servers in local mode answer without one",
                { "set $ONECLI_API_KEY (the key is never shown here)" })
  end
  local project, project_source = setting("onecli_project_id", "ONECLI_PROJECT_ID")
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
