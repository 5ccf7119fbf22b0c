--- This process as an agent: client:as_agent(agent) gives an
-- onecli.GatewayAgent whose :request() sends any HTTP request through the
-- OneCLI gateway with the agent's token (libcurl's proxy and CA options,
-- from client:gateway_proxy in onecli.agent), on the client's kind of
-- transport: Neovim's and luv's do not block their loop while a request is
-- held for approval. The gateway's own refusals are typed error objects.
--
--   local bot = client:as_agent("research-bot")
--   local status, headers, body = bot:request("GET", "https://api.example.com/v1/me")
--
-- The agent's token is a secret like the API key: never in an error,
-- tostring(), a log line or a hook payload.

local core = require("onecli.core")
local client_mod = require("onecli.client")
local nginx = require("onecli.nginx")
local handle = require("onecli.handle")
local agent_env = require("onecli.agent")

local error, type, pairs, ipairs, tostring, setmetatable, getmetatable =
      error, type, pairs, ipairs, tostring, setmetatable, getmetatable
local fmt = string.format
local check_opts, agent_error, proxy_token = agent_env._check_opts, agent_env._error, agent_env._proxy_token

local _M = { _VERSION = core._VERSION }

-- How long a request held for approval may wait at the gateway before it
-- is denied (reference §6.14: timeoutSeconds, 180), plus a margin.
local APPROVAL_HOLD = 180 + 15


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
  local p, err = agent_env.gateway_proxy(client, agent, { gateway = opts.gateway,
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

client_mod.extend_client("as_agent", _M.as_agent)

_M.GatewayAgent = Agent

return _M
