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

local error, type, pairs, setmetatable, pcall, rawget =
      error, type, pairs, setmetatable, pcall, rawget
local fmt = string.format
local redact = core.redact

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
  local t = self._transport
  if t and t.close then
    t:close()
  end
end

--- Whether an API key is configured (the key itself is never exposed).
function Client:has_api_key()
  return keys.get(self) ~= nil
end

-- A log line is redacted and bounded (a 1 MB id must not make a 1 MB line).
local LOG_LINE_MAX = 2048

function Client:_log(line)
  if self._logger then
    if #line > LOG_LINE_MAX then
      line = line:sub(1, LOG_LINE_MAX - 3) .. "..."
    end
    self._logger(redact(line, keys.get(self)))
  end
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

-- Inside nginx (outside the init phases) the cosocket transport is the
-- only one that does not block the worker.
local function default_transport(opts, self)
  local ngx = rawget(_G, "ngx")
  if ngx and type(ngx.get_phase) == "function" and ngx.socket then
    local phase = ngx.get_phase()
    if phase ~= "init" and phase ~= "init_worker" then
      local ok, resty = pcall(require, "onecli.transport.resty")
      if ok then
        return resty.new(opts)
      end
    end
  end
  return core.new_transport({
    timeout = self.timeout,
    connect_timeout = self.connect_timeout,
    ca_file = opts.ca_file,
    insecure = opts.insecure == true,
    user_agent = opts.user_agent and (core.user_agent .. " " .. opts.user_agent) or nil,
  })
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
    raise = opts.raise ~= false,
    insecure = opts.insecure == true,
    _base_path = s.base_path,
    _logger = opts.log,
    _gateway_url = s.gateway_url,
    _fallbacks = {},
  }, Client)
  keys.set(self, s.api_key)
  local transport = opts.transport or default_transport(opts, self)
  self._transport = transport
  self._sleep = opts.sleep or transport.sleep or core.sleep
  self._schedule = transport.schedule or function(fn) fn() end
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
