--- The OneCLI client: the client class and onecli.new.
--
--   local client = require("onecli").new{ url = ..., api_key = ... }
--   local agents = client.agents:list()
--
-- Failures of the network or the server are error objects (see
-- onecli.core's normalize) raised with error(err, 0), or returned as
-- nil, err when the client (or the call) has raise = false. Misuse (a
-- wrong argument type, a missing path parameter, an unknown option)
-- raises a plain message pointing at the caller.
--
-- The parts live in their own modules: onecli.config (options, defaults,
-- the environment), onecli.methods (the generated methods and
-- client:request), onecli.pipeline (one call: request, attempts, errors),
-- onecli.dispatch (calls with a callback), onecli.keys (the API key).

local core = require("onecli.core")
local config = require("onecli.config")
local keys = require("onecli.keys")
local methods = require("onecli.methods")
local pipeline = require("onecli.pipeline")
local dispatch = require("onecli.dispatch")
local nginx = require("onecli.nginx")
local observe = require("onecli.observe")

local error, type, pairs, ipairs, setmetatable, pcall, tostring =
      error, type, pairs, ipairs, setmetatable, pcall, tostring
local fmt = string.format

local _M = { _VERSION = core._VERSION }

local Client = {}
Client.__index = Client
Client.__name = "onecli.Client"

function Client.__tostring(self)
  return fmt("onecli.Client (%s%s)", self.url,
             self.project_id and (", project " .. self.project_id) or "")
end

Client.__close = function(self)
  self:close()
end

--- Releases the connection(s): the transport's, and the multi handle of
-- client:batch() if one was made. Idempotent. A call made afterwards
-- raises (misuse) at the call.
function Client:close()
  self._closed = true
  local multi = self._multi
  if multi then
    self._multi = nil
    multi:close()
  end
  for _, name in ipairs({ "_transport", "_curl", "_resty" }) do
    local t = self[name]
    if t and t.close then
      t:close()
    end
  end
end

--- Whether an API key is configured (the key itself is never exposed).
function Client:has_api_key()
  return keys.get(self) ~= nil
end

--- Logs a line at `level` (default "debug"), redacted and bounded (see
-- onecli.observe).
function Client:_log(line, level)
  observe.log(self, level or "debug", line)
end

for name, fn in pairs(pipeline.methods) do
  Client[name] = fn
end
for name, fn in pairs(dispatch.methods) do
  Client[name] = fn
end
methods.install(Client)

---------------------------------------------------------------------------
-- construction

-- The options a transport is made with, out of onecli.new's.
local function curl_options(opts, self)
  return {
    timeout = self.timeout,
    connect_timeout = self.connect_timeout,
    ca_file = opts.ca_file,
    insecure = opts.insecure == true,
    user_agent = opts.user_agent and (core.user_agent .. " " .. opts.user_agent) or nil,
  }
end

local function resty_options(opts, self)
  local o = {
    timeout = self.timeout, connect_timeout = self.connect_timeout,
    ca_file = opts.ca_file, insecure = opts.insecure == true, user_agent = opts.user_agent,
  }
  for name in pairs(config.NGINX_OPTIONS) do
    o[name] = opts[name]
  end
  return o
end

--- The transport a call made now uses: the one given to onecli.new, or
-- by nginx's phase (cosockets where nginx has them, libcurl outside
-- nginx and in its init phase), each made on first use. Calls in the
-- phases where neither may run were refused at the call (check_call).
function Client:_transport_now()
  local t = self._transport
  if t then
    return t
  end
  local phase = nginx.phase()
  if phase ~= nil and phase ~= "init" then
    return self:_resty_transport()
  end
  t = self._curl
  if t == nil then
    t = core.new_transport(self._curl_options)
    self._curl = t
  end
  return t
end

function Client:_resty_transport()
  local t = self._resty
  if t == nil then
    t = require("onecli.transport.resty").new(self._resty_options)
    self._resty = t
  end
  return t
end

--- nginx's init phase runs in the master, which forks the workers next:
-- a call made there keeps no connection open (every worker would inherit
-- its socket). Called once a call or a batch is over.
function Client:_after_io()
  if nginx.phase() ~= "init" then
    return
  end
  local multi = self._multi
  if multi ~= nil then
    self._multi = nil
    multi:close()
  end
  local t = self._curl
  if t ~= nil then
    self._curl = nil
    t:close()
  end
end

--- How the retry loop waits now: the sleep option, else the transport's.
function Client:_sleep_now(transport)
  return self._sleep or (transport or self:_transport_now()).sleep or core.sleep
end

--- Creates a client. Every option falls back to the environment where
-- the official clients do (ONECLI_API_KEY, ONECLI_URL, ONECLI_PROJECT_ID,
-- ONECLI_GATEWAY_URL).
---@param opts? onecli.Options
---@return onecli.Client
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli.new: options must be a table", 2)
  end
  local msg = config.check_options(opts, config.CLIENT_OPTIONS, "option")
  if msg then
    error("onecli.new: " .. msg, 2)
  end
  local s
  s, msg = config.settings(opts)
  if not s then
    error("onecli.new: " .. msg, 2)
  end

  local raise = opts.raise
  if raise == nil then
    raise = not nginx.inside()     -- nginx's convention: nil, err
  end
  local self = setmetatable({
    url = s.url,
    project_id = s.project_id,
    workspace_id = s.project_id,
    timeout = s.timeout,
    connect_timeout = s.connect_timeout,
    max_retries = s.max_retries,
    backoff_base = s.backoff_base,
    backoff_max = s.backoff_max,
    max_retry_after = s.max_retry_after,
    deadline = s.deadline,
    raise = raise,
    insecure = opts.insecure == true,
    _base_path = s.base_path,

    _gateway_url = s.gateway_url,
    _fallbacks = {},
  }, Client)
  local level, sink = observe.settings(opts, function(name)
    local v = (opts.getenv or os.getenv)(name)
    return type(v) == "string" and v or nil
  end)
  if not level then
    error("onecli.new: " .. sink, 2)
  end
  self._log_level, self._logger = level, sink
  self._on_request, self._on_response = opts.on_request, opts.on_response
  keys.set(self, s.api_key)
  self._headers = opts.headers
  self._transport = opts.transport        -- fixed; else chosen per call
  self._curl_options = curl_options(opts, self)
  self._resty_options = resty_options(opts, self)
  self._sleep = opts.sleep
  if not opts.transport then
    -- made now, so that bad options fail here: inside nginx the cosocket
    -- transport (the libcurl one only if an init-phase call needs it),
    -- outside it libcurl
    if nginx.inside() then
      local ok, why = pcall(self._resty_transport, self)
      if not ok then
        why = tostring(why):gsub("^[^:]*:%d+: ", ""):gsub("^onecli%.transport%.resty%.new: ", "")
        error("onecli.new: " .. why, 2)
      end
    else
      self:_transport_now()
    end
  end
  self._schedule = opts.transport and opts.transport.schedule or function(fn) fn() end
  methods.attach(self)
  return self
end

_M.Client = Client

-- for other modules (batch, helpers, approvals) and the specs
_M.normalize_url = config.normalize_url
_M.interpret = pipeline.interpret
_M.unknown_route = pipeline.unknown_route
_M.parse_args = methods.parse_args
_M.endpoints = methods.endpoints
_M.endpoint = methods.endpoint
_M.extend = methods.extend
_M.extend_client = methods.extend_client
_M.check_call = methods.check_call
_M.check_raw_path = methods.check_raw_path

return _M
