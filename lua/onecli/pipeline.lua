--- The request pipeline of one call: the transport request (headers,
-- URL, timeouts), the attempt and its retries (onecli.retry), what a
-- transport answer means (a result or an error object), the v1 fallback
-- routes, raising or returning the error, and what follows a success
-- (adopting a regenerated key). Shared by single calls, callbacks and
-- client:batch.
--
-- The functions taking `self` are methods of the client class (installed
-- by onecli.client).

local core = require("onecli.core")
local retry = require("onecli.retry")
local config = require("onecli.config")
local keys = require("onecli.keys")
local nginx = require("onecli.nginx")
local sse = require("onecli.sse")
local observe = require("onecli.observe")

local error, type, pairs, tostring = error, type, pairs, tostring
local getinfo, traceback = debug.getinfo, debug.traceback
local json_decode, null = core.json_decode, core.null
local normalize = core.normalize
local now = core.now

-- The Accept header by expected answer (JSON otherwise).
local ACCEPT = { binary = "*/*", events = "text/event-stream" }

local _M = { _VERSION = core._VERSION }

local Client = {}   -- the methods below; onecli.client copies them into its class
_M.methods = Client

local function is_nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

--- Turns one transport answer into a result or an error object.
-- expect: "json" | "json_or_null" | "text" | "binary" | "events" | "redirect". value: what the
-- C transports return instead of body for a request with decode = true
-- (a 2xx JSON object or array, decoded from their buffer). Public for
-- other drivers (batch).
local function interpret(req, expect, status, headers, body, value)
  if status == nil then
    local err = headers
    if not core.is_error(err) then
      err = core.transport_error(req.method, req.path, "TRANSPORT",
                                 tostring(err), { secret = req.secret })
    end
    return nil, err
  end
  if expect == "redirect" and status >= 300 and status < 400 and headers.location then
    return headers.location
  end
  if value ~= nil then
    return value
  end
  if status >= 200 and status < 300 then
    if status == 204 or status == 205 then
      return true
    end
    if expect == "text" or expect == "binary" then
      return body
    end
    if expect == "events" then
      return sse.parse(body)
    end
    if body ~= "" then
      -- every OneCLI JSON success is an object or an array; a bare
      -- string, number, boolean or null is not an answer to use
      local decoded = json_decode(body)
      if type(decoded) == "table" or (decoded == null and expect == "json_or_null") then
        return decoded
      end
    end
  end
  return nil, normalize(req.method, req.path, status, headers, body, { secret = req.secret })
end
_M.interpret = interpret

-- The origin of the gateway (approvals): the gateway_url option,
-- ONECLI_GATEWAY_URL, or GET /gateway-url once (then cached).
function Client:gateway_origin(opts)
  if self._gateway_url then
    return self._gateway_url
  end
  local project = opts and (opts.project_id or opts.workspace_id)
  local answer, err = self:_send("GET", "/gateway-url", nil, nil,
                                 { raise = false, project_id = project },
                                 { scope = "project", response = "json", idempotent = true })
  if not answer then
    return nil, err
  end
  local url, msg = config.normalize_url(type(answer) == "table" and answer.url or "")
  if not url then
    return nil, core.new_error({ type = "decode_error", status = 200, retryable = false,
      message = "GET /gateway-url gave no usable URL: " .. msg, method = "GET",
      path = self._base_path .. "/gateway-url", attempts = 1 })
  end
  self._gateway_url = url:gsub("/v1$", "")
  return self._gateway_url
end

-- Sets a header, replacing one of the same name in another case.
local function set_header(headers, name, value)
  local lname = name:lower()
  for k in pairs(headers) do
    if k ~= name and k:lower() == lname then
      headers[k] = nil
    end
  end
  headers[name] = value
end

--- Builds the transport request of one call (no I/O except resolving the
-- gateway origin once). Returns req, or nil and an error object.
function Client:_request_table(method, path, body, query, opts, ep)
  local key = keys.get(self)
  local scope = ep and ep.scope or "project"
  local project = opts.project_id or opts.workspace_id or self.project_id
  local headers = {
    Accept = ep and ACCEPT[ep.response] or "application/json",
    Authorization = key and scope ~= "none" and keys.authorization(self) or nil,
  }
  if self._headers then
    for k, v in pairs(self._headers) do
      set_header(headers, k, v)
    end
  end
  if project and scope ~= "none" then
    headers["X-Project-Id"] = project
    headers["X-Workspace-Id"] = project
  end
  if body then
    headers["Content-Type"] = ep and ep.body == "binary" and "application/octet-stream" or "application/json"
  end
  if opts.headers then
    for k, v in pairs(opts.headers) do
      set_header(headers, k, v)
    end
  end
  local expect = ep and ep.response or "json"
  local base, base_path = self.url, self._base_path
  if ep and ep.base == "gateway" then
    local err
    base, err = self:gateway_origin(opts)
    if not base then
      return nil, err
    end
    base_path = ""
  end
  return {
    method = method,
    url = base .. path .. (query and ("?" .. query) or ""),
    path = base_path .. path,
    headers = headers,
    body = body,
    timeout = opts.timeout or (ep and ep.timeout and math.max(ep.timeout, self.timeout))
              or self.timeout,
    connect_timeout = opts.connect_timeout or self.connect_timeout,
    secret = key,
    -- a request that must not be repeated gets its own connection: libcurl
    -- silently re-sends a request once when a reused connection closes
    -- without an answer, which for a POST could create a duplicate
    fresh_connect = not (ep and ep.idempotent),
    -- the C transports decode a JSON success from their buffer (no body
    -- string) and keep only the headers a success needs
    decode = expect == "json" or expect == "json_or_null",
    -- (all of them when the call asked for its metadata)
    response_headers = not opts.meta and "errors" or nil,
    -- server-sent events: the timeout after a 2xx head ends the stream,
    -- and the events that came are the answer (not a timeout error)
    listen = expect == "events" or nil,
  }
end

--- What to do after a success (adopting a regenerated key).
function Client:_after(ep, result, key)
  if ep and ep.after == "switch_key" and type(result) == "table"
      and is_nonempty_string(result.apiKey) and key and keys.get(self) == key
      and key:sub(1, 7) ~= "oc_org_" then
    -- the old key stopped working the moment the server answered
    keys.set(self, result.apiKey)
    observe.log(self, "debug", "onecli: the client now uses the regenerated API key")
  end
end

--- The retry policy of a call (shared with batch).
function Client:_policy(method, ep, opts)
  local max_retries = opts.max_retries or self.max_retries
  return {
    deadline = opts.deadline or self.deadline,
    method = method,
    idempotent = ep and ep.idempotent,
    max_retries = max_retries,
    sleep = self._sleep,        -- or the transport's: _perform and batch set it
    base = self.backoff_base,
    max = self.backoff_max,
    max_retry_after = self.max_retry_after,
    -- the call's start and its last attempt's (set as the call goes)
    began = false, started = false, status = false, headers = false,
  }
end

-- Is err the server saying it does not know this route?
local function unknown_route(err)
  return err.status == 404 and err.type == "invalid_request_error"
end
_M.unknown_route = unknown_route

--- The path to use for a call with a v1 fallback: once this server showed
-- it only knows the older route, go there directly. Returns path, fallback.
function Client:_route(ep, path, fallback_path)
  if fallback_path and self._fallbacks[ep.name] then
    return fallback_path, nil
  end
  return path, fallback_path
end

-- The request id of an answer: its x-request-id header, or the error's.
local function request_id_of(headers, err)
  if err and err.request_id then
    return err.request_id
  end
  local id = type(headers) == "table" and headers["x-request-id"]
  return type(id) == "string" and id or nil
end
_M.request_id_of = request_id_of

-- Sends one call with retries; returns result or nil, err (never raises
-- for API failures), and with opts.meta the call's metadata:
-- result, nil, { status, headers, request_id, attempts, duration, method, path }.
function Client:_perform(method, path, body, query, opts, ep, fallback_path, expires, began)
  path, fallback_path = self:_route(ep, path, fallback_path)
  local req, err = self:_request_table(method, path, body, query, opts, ep)
  if not req then
    return nil, err
  end
  local expect = ep and ep.response or "json"
  local transport = self:_transport_now()
  local key = req.secret

  local policy = self:_policy(method, ep, opts)
  policy.sleep = self:_sleep_now(transport)
  policy.timeout, policy.connect_timeout = req.timeout, req.connect_timeout
  policy.path, policy.secret = req.path, req.secret
  policy.expires = expires          -- a fallback route (or a batch) keeps the call's deadline

  local observed = self._logger or self._on_request or self._on_response
    or opts.on_request or opts.on_response
  policy.began = began or false
  -- the last attempt's answer (metadata, errors, the log) is kept in the
  -- call's policy table: no table and few upvalues per call
  local function attempt(n, timeout, connect_timeout)
    local started = now()
    policy.started = started
    if not policy.began then
      policy.began = started        -- (the call starts with its first attempt)
    end
    req.timeout, req.connect_timeout = timeout, connect_timeout
    local watched = policy.on_attempt ~= nil
    if watched then
      observe.attempt_start(self, req, n, opts)
    end
    local status, headers, rbody, value = transport:request(req)
    local result, e = interpret(req, expect, status, headers, rbody, value)
    if not status or type(headers) ~= "table" then
      headers = false
    end
    policy.status, policy.headers = status or false, headers
    if e and headers and e.headers == nil then
      e.headers = observe.masked_headers(headers, req.secret)   -- a server may echo the key
    end
    if watched then
      policy.body, policy.value = rbody, value
    end
    return result, e
  end
  if observed then
    -- one line (and one on_response) per attempt, with the retry decision
    policy.on_attempt = function(n, e, delay)
      local headers = policy.headers
      observe.attempt_done(self, {
        method = method, path = req.path, url = req.url, req = req, opts = opts,
        status = policy.status or (e and e.status), headers = headers or nil, err = e,
        request_id = request_id_of(headers, e), duration = now() - policy.started,
        attempt = n, of = (policy.max_retries or 0) + 1, retry_in = delay,
        body = policy.body, value = policy.value,
      })
      policy.body, policy.value = nil, nil
    end
  end

  local result, failure, attempts = retry.run(attempt, policy)
  err = failure
  self:_after_io()
  if err and fallback_path and unknown_route(err) then
    -- an older server: the route has its v1 name there
    self._fallbacks[ep.name] = true
    observe.log(self, "debug", "onecli: " .. method .. " " .. req.path
                .. ": the server does not know this route; using its v1 name from now on")
    return self:_perform(method, fallback_path, body, query, opts, ep, nil, policy.expires,
                         policy.began or nil)
  end
  if err then
    err.duration = policy.began and now() - policy.began or 0
    return nil, err
  end
  self:_after(ep, result, key)
  if opts.meta then
    local headers = policy.headers
    return result, nil, {
      status = policy.status or nil, headers = observe.masked_headers(headers or nil, key),
      request_id = request_id_of(headers), attempts = attempts,
      duration = now() - policy.began, method = method, path = req.path,
    }
  end
  return result
end

-- Where the user's code called the library: the first frame (from the
-- caller of _fail up) whose source is not one of onecli's own files.
-- Returns "file:line" and a traceback from there, or nil.
local OWN = (getinfo(1, "S").source or ""):match("^@(.*[/\\])[^/\\]*$")
local function caller_frame()
  if OWN == nil then
    return nil
  end
  for level = 3, 40 do
    local info = getinfo(level, "Sl")
    if info == nil then
      return nil
    end
    local src = info.source or ""
    if info.what ~= "C" and src:sub(1, 1) == "@" and src:sub(2, #OWN + 1) ~= OWN
        and info.currentline and info.currentline > 0 then
      return info.short_src .. ":" .. info.currentline, level
    end
  end
  return nil
end

-- Raises or returns err as the call's options say.
function Client:_fail(err, opts)
  local raise = opts.raise
  if raise == nil then
    raise = self.raise
  end
  if raise then
    if nginx.inside() then
      nginx.raise_string(err)    -- nginx prints only string errors
    end
    -- the user's line: tostring(err) ends "at file:line", which is what
    -- lua5.4 prints for an uncaught error object; err.traceback has the rest
    if err.where == nil then
      local where, level = caller_frame()
      if where then
        err.where = where
        err.traceback = traceback("onecli: " .. tostring(err.type) .. " raised at " .. where, level)
      end
    end
    error(err, 0)
  end
  return nil, err
end

--- Sends one API request with retries and raises (or returns) errors.
function Client:_send(method, path, body, query, opts, ep, fallback_path)
  local result, err, meta = self:_perform(method, path, body, query, opts, ep, fallback_path)
  if err then
    return self:_fail(err, opts)
  end
  if meta then
    return result, meta
  end
  return result
end

return _M
