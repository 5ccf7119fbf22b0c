--- Being the agent: the environment that sends a child process's HTTP
-- through the OneCLI gateway with an agent's token, as the official Go
-- CLI's `onecli run -- <command>` does. Running a command with it is
-- onecli.agent_run (client:run); this process's own requests through the
-- gateway are onecli.gateway_agent (client:as_agent).
--
--   local env, warnings = client:gateway_env("research-bot")   -- or an agent id, or nil
--   os.execute(onecli.env_command(env, { "curl", "-s", "https://api.github.com/user" }))
--   local p = client:gateway_proxy("research-bot")       -- { proxy =, ca_file = }
--
-- gateway_env follows `onecli run`: it fetches the agent's container
-- config (GET /container-config?agent=, reference §7.9), rewrites the
-- Docker-internal proxy host (host.docker.internal) to the gateway's host
-- as seen from here (the API's host, or opts.gateway), writes a combined
-- CA bundle (the system CAs followed by the gateway CA: SSL_CERT_FILE and
-- the like replace the trust store, so the bundle holds both), points
-- every CA variable at it, drops the ANTHROPIC_API_KEY placeholder, and
-- returns the server's warnings. With opts.inherit the current
-- environment is merged in, minus every variable gateway_env sets or that
-- could send traffic around the gateway (a stale HTTPS_PROXY, NO_PROXY).
--
-- The agent's token is a secret like the API key: it is in the proxy
-- variables (that is how a child authenticates to the gateway), and
-- never in an error, tostring(), a log line or a hook payload.

local core = require("onecli.core")
local client_mod = require("onecli.client")
local helpers = require("onecli.helpers")

local error, type, pairs, ipairs, tostring = error, type, pairs, ipairs, tostring
local fmt, sort = string.format, table.sort

local _M = { _VERSION = core._VERSION }

-- What the child's environment gets from gateway_env, and what an
-- inherited environment loses: the proxy variables in both cases, the CA
-- variables, and the placeholder key.
local PROXY_VARS = { "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy" }
local BYPASS_VARS = { "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy" }
local CA_VARS = { "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                  "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "DENO_CERT" }
local PLACEHOLDER = "placeholder"
local DOCKER_HOST = "host.docker.internal"

local OPTIONS = { gateway = "string", ca_bundle = "string", inherit = "boolean",
                  project_id = "string", raise = "boolean" }

local function check_opts(where, opts, extra)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(fmt("onecli: %s: options must be a table, got %s", where, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = OPTIONS[k] or (extra and extra[k])
    if want == nil then
      error(fmt("onecli: %s: unknown option '%s'", where, tostring(k)), 3)
    elseif want ~= "any" and type(v) ~= want then
      error(fmt("onecli: %s: option '%s' must be a %s, got %s", where, k, want, type(v)), 3)
    end
  end
  return opts
end

local function is_uuid(s)
  return s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- The host of the client's API URL (where the gateway is, seen from here).
local function api_host(client)
  local host = client.url:match("^%a[%w+.-]*://%[([^%]]+)%]") and ("[" .. client.url:match(
    "^%a[%w+.-]*://%[([^%]]+)%]") .. "]") or client.url:match("^%a[%w+.-]*://([^/:]+)")
  return host
end

-- The file the bundle goes to by default: under the user's home, as the
-- Go CLI keeps its files (~/.onecli/), else the temporary directory.
local function default_bundle(getenv)
  local home = getenv("HOME")
  if type(home) == "string" and home ~= "" then
    return home .. "/.onecli/gateway-ca-bundle.pem"
  end
  return (getenv("TMPDIR") or "/tmp") .. "/onecli-gateway-ca-bundle.pem"
end

local function ensure_dir(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    local f = io.open(dir .. "/.", "r")
    if f then
      f:close()
      return true
    end
    os.execute("mkdir -p -m 700 " .. helpers.shell_quote({ dir }) .. " 2>/dev/null")
  end
  return true
end

-- The process's environment as a table (Linux: /proc/self/environ; else
-- `env`), for opts.inherit.
local function current_environment()
  local out = {}
  local f = io.open("/proc/self/environ", "rb")
  local data
  if f then
    data = f:read("*a")
    f:close()
  end
  if data and data ~= "" then
    for entry in data:gmatch("([^%z]+)") do
      local k, v = entry:match("^([^=]+)=(.*)$")
      if k then out[k] = v end
    end
    return out
  end
  local p = io.popen("env")
  if p then
    for line in p:lines() do
      local k, v = line:match("^([%a_][%w_]*)=(.*)$")
      if k then out[k] = v end
    end
    p:close()
  end
  return out
end
_M.current_environment = current_environment

local function fail(client, err, opts)
  return client:_fail(err, opts or {})
end

-- An error object of this module (never holding the token).
local function agent_error(fields)
  fields.retryable = fields.retryable == true
  fields.attempts = fields.attempts or 1
  return core.new_error(fields)
end

--- The agent's container config (the raw table) or nil, err.
local function container_config(client, agent, opts)
  local ident = agent
  if ident ~= nil and is_uuid(ident) then
    local a, err = client.agents:get(ident, { raise = false, project_id = opts.project_id })
    if not a then
      return nil, err
    end
    ident = a.identifier
  end
  return client:container_config({ agent = ident }, { raise = false, project_id = opts.project_id })
end

--- gateway_env(agent, opts) -> env, warnings (see the module comment).
function _M.gateway_env(client, agent, opts)
  if agent ~= nil and (type(agent) ~= "string" or agent == "") then
    error("onecli: gateway_env: agent must be an identifier or id (a non-empty string) or nil", 2)
  end
  opts = check_opts("gateway_env", opts)
  local cfg, err = container_config(client, agent, opts)
  if not cfg then
    return fail(client, err, opts)
  end
  if type(cfg) ~= "table" or type(cfg.env) ~= "table" then
    return fail(client, agent_error({ type = "decode_error", status = 200,
      message = "GET /container-config gave no env", method = "GET",
      path = client._base_path .. "/container-config" }), opts)
  end
  local host = opts.gateway or api_host(client)
  local env = {}
  for k, v in pairs(cfg.env) do
    if type(k) == "string" and (type(v) == "string" or type(v) == "number") then
      env[k] = tostring(v)
    end
  end
  if env.ANTHROPIC_API_KEY == PLACEHOLDER then
    env.ANTHROPIC_API_KEY = nil
  end
  for _, name in ipairs(PROXY_VARS) do
    local v = env[name]
    if v then
      -- the Docker-internal name (and any other) -> the gateway seen from here
      local scheme, userinfo, rest = v:match("^(%a[%w+.-]*://)([^@/]*@)(.*)$")
      if not scheme then
        scheme, rest = v:match("^(%a[%w+.-]*://)(.*)$")
        userinfo = ""
      end
      if scheme then
        local old_host, port_path = rest:match("^([^:/]+)(.*)$")
        if old_host and (old_host == DOCKER_HOST or opts.gateway) then
          if host:find(":", 1, true) and not host:find("^%[") then
            port_path = port_path:gsub("^:%d+", "")     -- opts.gateway gave host:port
          end
          env[name] = scheme .. userinfo .. host .. port_path
        end
      end
    end
  end
  -- the combined bundle: the system CAs, then the gateway's
  local ca = cfg.caCertificate
  if type(ca) == "string" and ca ~= "" then
    local path = opts.ca_bundle or default_bundle(os.getenv)
    local bundle = helpers.combined_ca_bundle(ca, helpers.SYSTEM_CA_PATHS)
      or (ca:gsub("%s+$", "") .. "\n")
    ensure_dir(path)
    local f, why = io.open(path, "wb")
    if not f then
      error("onecli: gateway_env: cannot write the CA bundle " .. path .. ": " .. tostring(why), 2)
    end
    f:write(bundle)
    f:close()
    for _, name in ipairs(CA_VARS) do
      env[name] = path
    end
  end
  if opts.inherit then
    local merged = current_environment()
    for _, list in ipairs({ PROXY_VARS, BYPASS_VARS, CA_VARS, { "ANTHROPIC_API_KEY" } }) do
      for _, name in ipairs(list) do
        merged[name] = nil
      end
    end
    for k, v in pairs(env) do
      merged[k] = v
    end
    env = merged
  end
  local warnings = {}
  if type(cfg.warnings) == "table" then
    for i, w in ipairs(cfg.warnings) do
      warnings[i] = tostring(w)
    end
  end
  return env, warnings
end

--- The environment as a sorted list of "K=V" strings (vim.system, jobstart,
-- uv.spawn, ngx.pipe).
function _M.env_list(env)
  if type(env) ~= "table" then
    error("onecli.env_list: env must be a table", 2)
  end
  local list = {}
  for k, v in pairs(env) do
    list[#list + 1] = tostring(k) .. "=" .. tostring(v)
  end
  sort(list)
  return list
end

--- A shell line that runs argv with env: `env -u <every variable that
-- could bypass the gateway> K=V ... cmd args` (or `env -i K=V ...` for an
-- inherited, complete environment: opts.complete), every word quoted.
function _M.env_command(env, argv, opts)
  if type(env) ~= "table" then
    error("onecli.env_command: env must be a table", 2)
  end
  if type(argv) ~= "table" or #argv == 0 then
    error("onecli.env_command: argv must be a non-empty list", 2)
  end
  local words = { "env" }
  if opts and opts.complete then
    words[#words + 1] = "-i"
  else
    for _, list in ipairs({ PROXY_VARS, BYPASS_VARS, CA_VARS, { "ANTHROPIC_API_KEY" } }) do
      for _, name in ipairs(list) do
        if env[name] == nil then
          words[#words + 1] = "-u"
          words[#words + 1] = name
        end
      end
    end
  end
  for _, kv in ipairs(_M.env_list(env)) do
    words[#words + 1] = kv
  end
  for _, a in ipairs(argv) do
    words[#words + 1] = tostring(a)
  end
  return helpers.shell_quote(words)
end

--- gateway_proxy(agent, opts) -> { proxy = "http://x:aoc_…@host:port",
-- ca_file = path, warnings = {...} }: for the host's own HTTP clients.
function _M.gateway_proxy(client, agent, opts)
  opts = check_opts("gateway_proxy", opts)
  local env, warnings = _M.gateway_env(client, agent, { gateway = opts.gateway,
    ca_bundle = opts.ca_bundle, project_id = opts.project_id, raise = opts.raise })
  if not env then
    return nil, warnings
  end
  local proxy = env.HTTPS_PROXY or env.https_proxy or env.HTTP_PROXY or env.http_proxy
  if not proxy then
    return fail(client, agent_error({ type = "decode_error", status = 200,
      message = "the agent's container config has no proxy variable", method = "GET",
      path = client._base_path .. "/container-config" }), opts)
  end
  return { proxy = proxy, ca_file = env.SSL_CERT_FILE, warnings = warnings }
end

-- The token inside a proxy URL, for redaction.
local function proxy_token(proxy)
  return proxy and proxy:match("^%a[%w+.-]*://[^:@/]*:([^@/]+)@") or nil
end

-- for onecli.agent_run and onecli.gateway_agent
_M._check_opts, _M._fail, _M._error, _M._proxy_token = check_opts, fail, agent_error, proxy_token

client_mod.extend_client("gateway_env", _M.gateway_env)
client_mod.extend_client("gateway_proxy", _M.gateway_proxy)

return _M
