--- Being the agent: sending this process's HTTP, or a child process's,
-- through the OneCLI gateway with an agent's token, as the official Go
-- CLI's `onecli run -- <command>` does.
--
--   local env, warnings = client:gateway_env("research-bot")   -- or an agent id, or nil
--   os.execute(onecli.env_command(env, { "curl", "-s", "https://api.github.com/user" }))
--   local result = client:run({ "curl", "-s", "https://api.github.com/user" }, { agent = "research-bot" })
--   local p = client:gateway_proxy("research-bot")       -- { proxy =, ca_file = }
--   local agent = client:as_agent("research-bot")
--   local status, headers, body = agent:request("GET", "https://api.example.com/v1/me")
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
local nginx = require("onecli.nginx")
local handle = require("onecli.handle")

local error, type, pairs, ipairs, tostring, setmetatable, getmetatable, rawget, pcall =
      error, type, pairs, ipairs, tostring, setmetatable, getmetatable, rawget, pcall
local fmt, concat, sort = string.format, table.concat, table.sort

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

-- How long a request held for approval may wait at the gateway before it
-- is denied (reference §6.14: timeoutSeconds, 180), plus a margin.
local APPROVAL_HOLD = 180 + 15

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

---------------------------------------------------------------------------
-- running a command as the agent

-- Plain Lua: through the shell, waiting; returns { status =, output = }.
local function run_blocking(env, argv)
  local line = _M.env_command(env, argv, { complete = true })
    .. " 2>&1; echo \"__onecli_exit=$?\""
  local p = io.popen(line, "r")
  if not p then
    return nil
  end
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__onecli_exit=(%d+)%s*$"))
  out = out:gsub("__onecli_exit=%d+%s*$", "")
  return { status = code, output = out }
end

-- Neovim: jobstart with exactly env, not blocking. Runs in a call's
-- coroutine (handle.start): suspends it until the job exits; returns the
-- result, or nil and why the job could not start. on_job(id) is told the
-- job's id (for cancel).
local function run_neovim(vim, env, argv, on_job)
  local chunks = {}
  local function collect(_, data)
    if type(data) == "table" then
      chunks[#chunks + 1] = concat(data, "\n")
    end
  end
  local co = coroutine.running()
  local ok, id = pcall(vim.fn.jobstart, argv, {
    env = env, clear_env = true, stdout_buffered = false,
    on_stdout = collect, on_stderr = collect,
    on_exit = function(_, code)
      handle.resume(co, { status = code, output = concat(chunks, "") })
    end,
  })
  if not ok or type(id) ~= "number" or id <= 0 then
    return nil, ok and (id == -1 and "not executable" or "invalid arguments") or tostring(id)
  end
  on_job(id)
  return coroutine.yield()
end

-- nginx with ngx.pipe (OpenResty's nginx): yielding to nginx while the
-- child runs. nil, why when ngx.pipe is not there.
local function run_pipe(env, argv)
  local ok, pipe = pcall(require, "ngx.pipe")
  if not ok then
    return nil, tostring(pipe)
  end
  local proc, err = pipe.spawn(argv, { environ = _M.env_list(env), merge_stderr = true })
  if not proc then
    return nil, err
  end
  local out = {}
  while true do
    local data, rerr, partial = proc:stdout_read_any(65536)
    if data then
      out[#out + 1] = data
    else
      if partial then out[#out + 1] = partial end
      if rerr ~= "timeout" then break end
    end
  end
  local _, reason, status = proc:wait()
  return { status = reason == "exit" and status or nil, signal = reason == "signal" and status or nil,
           output = concat(out) }
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end

-- nginx without ngx.pipe (Debian's: "pipe API is not supported ... lack
-- of the HAVE_SOCKET_CLOEXEC_PATCH patch"): the shell starts the child in
-- the background and returns at once; the child's output and exit status
-- go to two private files (os.tmpname: mode 0600), which are polled with
-- ngx.sleep, so the worker serves meanwhile. Only the start of the shell
-- (a fork and exec, milliseconds) blocks it.
local function run_detached(env, argv)
  local ngx = rawget(_G, "ngx")
  local out_file, rc_file = os.tmpname(), os.tmpname()
  local q = helpers.shell_quote
  local line = "( " .. _M.env_command(env, argv, { complete = true }) .. " >" .. q({ out_file })
    .. " 2>&1 </dev/null; echo \"$?\" >>" .. q({ rc_file }) .. " ) >/dev/null 2>&1 </dev/null &"
  os.execute(line)
  local wait = 0.005
  local rc
  repeat
    ngx.sleep(wait)
    wait = wait < 0.2 and wait * 2 or 0.2
    rc = read_all(rc_file)
  until rc == nil or rc:find("\n", 1, true)
  local output = read_all(out_file)
  os.remove(out_file)
  os.remove(rc_file)
  local code = rc and tonumber(rc:match("^(%d+)"))
  if code == nil then
    return nil, "the child's exit status was lost"
  end
  return { status = code, output = output or "" }     -- (as the shell reports it: 128 + n for signal n)
end

-- nginx, in a phase that may yield: ngx.pipe, else the detached shell.
local function run_nginx(env, argv)
  local result, why = run_pipe(env, argv)
  if result then
    return result
  end
  why = tostring(why)
  if not (why:find("not supported", 1, true) or why:find("not found", 1, true)) then
    return nil, why           -- ngx.pipe is there and could not start it
  end
  return run_detached(env, argv)
end

local function spawn_error(argv, why)
  return agent_error({ type = "connection_error", code = "SPAWN",
    message = "could not start " .. argv[1] .. (why and (": " .. tostring(why)) or ""),
    method = "RUN", path = argv[1] })
end

-- How long handle:wait() waits without a limit (a day).
local FOREVER_MS = 86400000

-- client:run with a callback, in Neovim: a Handle; callback(result, err).
-- The container config comes through the client's transport (suspended,
-- not blocking, on the Neovim one), then the job runs; cancel() ends
-- whichever is running (jobstop for the job).
local function run_async(client, vim, argv, env_opts, agent, callback)
  local t = client:_transport_now()
  local job
  local stages = {
    abandon = function(_, co)
      if job then
        pcall(vim.fn.jobstop, job)
      elseif t.abandon then
        t:abandon(co)
      end
    end,
    wait_until = function(_, ms, done)
      if t.wait_until and not job then
        return t:wait_until(ms, done)
      end
      vim.wait(ms or FOREVER_MS, done, 10)
    end,
  }
  local quiet = {}
  for k, v in pairs(env_opts) do quiet[k] = v end
  quiet.raise = false                       -- errors go to the callback
  return handle.start({ method = "RUN", path = argv[1], transport = stages,
                        schedule = t.schedule or vim.schedule },
    function()
      local env, warnings = _M.gateway_env(client, agent, quiet)
      if not env then
        return nil, warnings
      end
      local result, why = run_neovim(vim, env, argv, function(id) job = id end)
      if not result then
        return nil, spawn_error(argv, why)
      end
      result.warnings = warnings
      return result
    end, function(result, err)
      callback(result, err)
    end)
end

--- client:run(argv, opts) -> { status = exit code, output = stdout+stderr,
-- warnings = the server's } (opts.agent, opts.gateway, opts.ca_bundle,
-- opts.inherit as gateway_env, default true: the child keeps PATH, HOME
-- and the rest, minus what gateway_env strips; false: only the gateway's
-- variables). The child gets exactly that environment.
--   plain Lua: io.popen, waiting for the child;
--   Neovim, with opts.callback(result, err): an onecli.Handle is returned
--     at once; the container config is fetched on the client's transport
--     (not blocking on the Neovim one), the child runs with jobstart, and
--     the callback runs on the main loop; handle:cancel() stops the job;
--     without a callback, as plain Lua (blocking);
--   nginx: ngx.pipe where nginx has it (OpenResty), else the shell starts
--     the child in the background and its exit is polled with ngx.sleep;
--     either way the worker serves other requests meanwhile.
function _M.run(client, argv, opts)
  if type(argv) ~= "table" or #argv == 0 then
    error("onecli: run: argv must be a non-empty list of strings", 2)
  end
  for i, a in ipairs(argv) do
    if type(a) ~= "string" then
      error(fmt("onecli: run: argv[%d] must be a string, got %s", i, type(a)), 2)
    end
  end
  opts = check_opts("run", opts, { agent = "string", callback = "function" })
  local inherit = opts.inherit
  if inherit == nil then
    inherit = true       -- a command run as the agent keeps PATH, HOME, ...
  end
  local env_opts = { gateway = opts.gateway, ca_bundle = opts.ca_bundle, inherit = inherit,
                    project_id = opts.project_id, raise = opts.raise }
  local vim = rawget(_G, "vim")
  if opts.callback then
    if type(vim) ~= "table" or type(vim.fn) ~= "table" or type(vim.fn.jobstart) ~= "function" then
      error("onecli: run: the callback option needs Neovim (vim.fn.jobstart)", 2)
    end
    return run_async(client, vim, argv, env_opts, opts.agent, opts.callback)
  end
  local env, warnings = _M.gateway_env(client, opts.agent, env_opts)
  if not env then
    return nil, warnings
  end
  local result, err
  local phase = nginx.phase()
  if phase ~= nil and phase ~= "init" then
    result, err = run_nginx(env, argv)
  else
    result = run_blocking(env, argv)
  end
  if not result then
    return fail(client, spawn_error(argv, err), opts)
  end
  result.warnings = warnings
  return result
end

---------------------------------------------------------------------------
-- this process as the agent

-- What the gateway answers itself (not the upstream): X-OneCLI-Gateway-Error.
local REFUSALS = {
  invalid_agent_token = "authentication_error",
  blocked_by_policy = "policy_error",
  approval_denied = "approval_denied_error",
  approval_expired = "approval_expired_error",
  upstream_unreachable = "connection_error",
}

local Agent = {}
Agent.__index = Agent
Agent.__name = "onecli.GatewayAgent"

local secrets = setmetatable({}, { __mode = "k" })   -- agent object -> its token

function Agent.__tostring(self)
  return fmt("onecli.GatewayAgent (%s, through %s)", tostring(self.agent or "default agent"),
             tostring(self.gateway))
end

local REQUEST_OPTIONS = { headers = "table", body = "string", timeout = "number",
                          raise = "boolean", callback = "function" }

-- The error object of a refusal of the gateway itself (its
-- X-OneCLI-Gateway-Error code, nil when it gave none, and its JSON body
-- when there was one).
local function refusal_error(refusal, status, decoded, method, path)
  if type(decoded) ~= "table" then
    decoded = {}
  end
  local message = type(decoded.message) == "string" and decoded.message
  if not message then
    message = refusal and ("the gateway refused: " .. refusal)
      or ("the gateway refused the tunnel (CONNECT) with HTTP " .. tostring(status))
  end
  local err = agent_error({
    type = refusal and REFUSALS[refusal] or (refusal and "api_error" or "connection_error"),
    status = status, code = refusal or "PROXY_CONNECT", message = message,
    method = method, path = path, retryable = refusal == "upstream_unreachable",
  })
  err.approval_id = type(decoded.approvalId) == "string" and decoded.approvalId or nil
  err.rule_id = type(decoded.ruleId) == "string" and decoded.ruleId or nil
  err.gateway = true
  return err
end

-- One request through the gateway: a response table { status =, headers =,
-- body = } (any answer of the upstream), or nil, err (a refusal of the
-- gateway itself, or a failure to reach it). Yields on an asynchronous
-- transport.
local function perform(self, method, url, path, opts)
  local status, headers, body = self.transport:request({
    method = method, url = url, path = path, headers = opts.headers or {},
    body = opts.body, timeout = opts.timeout or self.timeout,
    connect_timeout = self.connect_timeout, secret = secrets[self],
    fresh_connect = method ~= "GET" and method ~= "HEAD",
  })
  if status == nil then
    local err = headers
    if type(err) == "table" and type(err.proxy_status) == "number" then
      -- an https:// URL: the gateway refused the CONNECT (libcurl keeps
      -- its status and headers, not its body)
      local h = type(err.proxy_headers) == "table" and err.proxy_headers or {}
      return nil, refusal_error(h["x-onecli-gateway-error"]
        or (err.proxy_status == 407 and "invalid_agent_token" or nil), err.proxy_status, nil,
        method, path)
    end
    return nil, err
  end
  local refusal = headers["x-onecli-gateway-error"]
  if not refusal then
    return { status = status, headers = headers, body = body }
  end
  return nil, refusal_error(refusal, status, core.json_decode(body or ""), method, path)
end

--- agent:request(method, url, opts) -> status, headers, body (any answer of
-- the upstream), or raises / returns nil, err for a refusal of the gateway
-- itself or a failure to reach it. opts: headers, body, timeout (default:
-- long enough for an approval hold), raise, callback.
--
-- With opts.callback the request runs in a coroutine of its own and an
-- onecli.Handle is returned; callback(response, err) gets a table
-- { status =, headers =, body = } or nil and the error object, once. On
-- the Neovim and luv transports nothing blocks the loop meanwhile (a
-- request held for approval can take minutes); called from a coroutine
-- without a callback, the request suspends that coroutine instead.
function Agent:request(method, url, opts)
  if type(method) ~= "string" or not method:match("^%u+$") then
    error("onecli: agent:request: method must be an HTTP method in capitals", 2)
  end
  if type(url) ~= "string" or not url:match("^https?://[^/%s]+") or url:find("[%s%c]") then
    error("onecli: agent:request: url must be an absolute http:// or https:// URL", 2)
  end
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    error("onecli: agent:request: options must be a table", 2)
  end
  for k, v in pairs(opts) do
    local want = REQUEST_OPTIONS[k]
    if want == nil then
      error(fmt("onecli: agent:request: unknown option '%s'", tostring(k)), 2)
    elseif type(v) ~= want then
      error(fmt("onecli: agent:request: option '%s' must be a %s, got %s", k, want, type(v)), 2)
    end
  end
  if self.transport == nil then
    error("onecli: agent:request: the agent was closed", 2)
  end
  local path = url:match("^https?://[^/]+(/[^?#]*)") or "/"
  local client = self.client
  if opts.callback then
    local callback = opts.callback
    return handle.start({ method = method, path = path, transport = self.transport,
                          schedule = self.transport.schedule or client._schedule,
                          secret = secrets[self] },
      function()
        return perform(self, method, url, path, opts)
      end, function(res, err)
        callback(res, err)
      end)
  end
  local res, err = perform(self, method, url, path, opts)
  if res then
    return res.status, res.headers, res.body
  end
  local raise = opts.raise
  if raise == nil then raise = client.raise end
  if raise then
    return client:_fail(err, { raise = true })
  end
  return nil, err
end

--- Closes the agent's transport (its connections to the gateway).
function Agent:close()
  if self.transport then
    self.transport:close()
    self.transport = nil
  end
end

-- The transport of an agent: one like the client's, through the gateway.
local function agent_transport(client, p, opts)
  local topts = {
    proxy = p.proxy, ca_file = p.ca_file,
    timeout = opts.timeout or APPROVAL_HOLD,
    connect_timeout = opts.connect_timeout or client.connect_timeout,
  }
  local t = client._transport
  if type(t) == "table" and type(t.derive) == "function" then
    return t:derive(topts)           -- Neovim, luv: the same loop, not blocking it
  end
  local phase = nginx.phase()
  local mt = type(t) == "table" and getmetatable(t)
  if (phase ~= nil and phase ~= "init") or (mt and mt.__name == "onecli.RestyTransport") then
    return nil, "inside nginx, libcurl would block the worker for the whole request (a request "
      .. "held for approval can take minutes) and the cosocket transport speaks to no proxy: "
      .. "use client:gateway_proxy() with lua-resty-http's proxy_opts, or client:run()"
  end
  return core.new_transport(topts)
end

-- as_agent's work: the gateway's proxy and CA, then the agent object.
local function make_agent(client, agent, opts, level)
  local p, err = _M.gateway_proxy(client, agent, { gateway = opts.gateway,
    ca_bundle = opts.ca_bundle, project_id = opts.project_id, raise = opts.raise })
  if not p then
    return nil, err
  end
  local transport, why = agent_transport(client, p, opts)
  if not transport then
    error("onecli: as_agent: " .. why, level + 1)
  end
  local self = setmetatable({
    client = client, agent = agent, transport = transport,
    gateway = (p.proxy:gsub("//[^@/]*@", "//")),
    timeout = opts.timeout or APPROVAL_HOLD, connect_timeout = opts.connect_timeout,
    warnings = p.warnings,
  }, Agent)
  secrets[self] = proxy_token(p.proxy)
  return self
end

--- client:as_agent(agent, opts) -> an onecli.GatewayAgent whose :request() goes
-- through the gateway as that agent (libcurl's proxy and CA options, on a
-- transport like the client's: Neovim's and luv's do not block the loop).
-- Making it reads the agent's container config: on those transports call
-- it from a coroutine, or pass opts.callback(agent, err) (a Handle is
-- returned).
function _M.as_agent(client, agent, opts)
  opts = check_opts("as_agent", opts, { timeout = "number", connect_timeout = "number",
                                        callback = "function" })
  for _, k in ipairs({ "timeout", "connect_timeout" }) do
    if opts[k] ~= nil and (opts[k] <= 0 or opts[k] ~= opts[k]) then
      error(fmt("onecli: as_agent: option '%s' must be a positive number of seconds", k), 2)
    end
  end
  if agent ~= nil and (type(agent) ~= "string" or agent == "") then
    error("onecli: as_agent: agent must be an identifier or id (a non-empty string) or nil", 2)
  end
  local callback = opts.callback
  if callback then
    local t = client._transport or client:_transport_now()
    local quiet = {}
    for k, v in pairs(opts) do quiet[k] = v end
    quiet.callback, quiet.raise = nil, false     -- the error goes to the callback
    return handle.start({ method = "GET", path = client._base_path .. "/container-config",
                          transport = t, schedule = t.schedule or client._schedule },
      function()
        return make_agent(client, agent, quiet, 1)
      end, function(a, err)
        callback(a, err)
      end)
  end
  return make_agent(client, agent, opts, 2)
end

client_mod.extend_client("gateway_env", _M.gateway_env)
client_mod.extend_client("gateway_proxy", _M.gateway_proxy)
client_mod.extend_client("as_agent", _M.as_agent)
client_mod.extend_client("run", _M.run)

_M.Agent = Agent

return _M
