--- The OneCLI client: configuration, the request pipeline, and the
-- resource methods generated from onecli.endpoints.
--
--   local client = require("onecli").new{ url = ..., api_key = ... }
--   local agents = client.agents:list()
--
-- Failures of the network or the server are error objects (see
-- onecli.core's normalize) raised with error(err, 0), or returned as
-- nil, err when the client (or the call) has raise = false. Misuse (a
-- wrong argument type, a missing path parameter, an unknown option)
-- raises a plain message pointing at the caller.

local core = require("onecli.core")
local retry = require("onecli.retry")
local endpoint_table = require("onecli.endpoints")

local error, type, pairs, ipairs, select, tostring, setmetatable, getmetatable, pcall, next =
      error, type, pairs, ipairs, select, tostring, setmetatable, getmetatable, pcall, next
local concat, sort = table.concat, table.sort
local fmt, byte = string.format, string.byte
local floor = math.floor
local json_encode, json_decode = core.json_encode, core.json_decode
local normalize, redact = core.normalize, core.redact
local now = core.now

local _M = { _VERSION = core._VERSION }

local DEFAULT_URL = "https://api.onecli.sh/v1"

local DEFAULTS = {
  timeout = 30,
  connect_timeout = 10,
  max_retries = 2,
  backoff_base = 0.5,
  backoff_max = 8,
  max_retry_after = 30,
}

-- option name -> expected type
local CLIENT_OPTIONS = {
  url = "string", api_key = "string", project_id = "string",
  timeout = "number", connect_timeout = "number", max_retries = "number",
  backoff_base = "number", backoff_max = "number", max_retry_after = "number",
  ca_file = "string", insecure = "boolean", user_agent = "string",
  raise = "boolean", transport = "transport", sleep = "function",
  log = "function", getenv = "function", gateway_url = "string",
  workspace_id = "string",
}

local CALL_OPTIONS = {
  project_id = "string", timeout = "number", connect_timeout = "number",
  max_retries = "number", headers = "table", raise = "boolean",
  callback = "function", workspace_id = "string",
}

-- The client's API key lives here, not in the client table, so that
-- printing or serializing a client never shows it.
local secrets = setmetatable({}, { __mode = "k" })

---------------------------------------------------------------------------
-- helpers

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return fmt("%%%02X", byte(c))
  end))
end

local function is_nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

-- Checks an option table against a spec; returns an error message or nil.
local function check_options(opts, spec, what)
  for k, v in pairs(opts) do
    local want = spec[k]
    if want == nil then
      return fmt("unknown %s '%s'", what, tostring(k))
    end
    if want == "transport" then
      if (type(v) ~= "table" and type(v) ~= "userdata") or v.request == nil then
        return fmt("%s 'transport' must be an object with a request method", what)
      end
    elseif type(v) ~= want then
      return fmt("%s '%s' must be a %s, got %s", what, k, want, type(v))
    end
  end
  if opts.timeout and opts.timeout <= 0 then
    return what .. " 'timeout' must be a positive number of seconds"
  end
  if opts.connect_timeout and opts.connect_timeout <= 0 then
    return what .. " 'connect_timeout' must be a positive number of seconds"
  end
  if opts.max_retries and (opts.max_retries < 0 or opts.max_retries > 10
      or opts.max_retries % 1 ~= 0) then
    return what .. " 'max_retries' must be an integer from 0 to 10"
  end
  if opts.project_id and not opts.project_id:match("^[%w%-_]+$") then
    return what .. " 'project_id' must be an id (letters, digits, '-', '_')"
  end
  if opts.workspace_id and not opts.workspace_id:match("^[%w%-_]+$") then
    return what .. " 'workspace_id' must be an id (letters, digits, '-', '_')"
  end
  if opts.workspace_id and opts.project_id and opts.workspace_id ~= opts.project_id then
    return what .. "s 'project_id' and 'workspace_id' name the same thing (v1 and v2 names) "
           .. "and differ"
  end
  if opts.headers then
    for name, value in pairs(opts.headers) do
      if type(name) ~= "string" or not name:match("^[%w%-]+$") then
        return what .. " 'headers' has an invalid header name"
      end
      if type(value) ~= "string" or value:find("[\r\n]") then
        return fmt("%s 'headers': header '%s' must be a one-line string", what, name)
      end
    end
  end
  return nil
end

--- Normalizes a base URL: an origin without a path gets /v1; a full base
-- (http://host:10254/api) is used as given; trailing slashes go.
function _M.normalize_url(url)
  if type(url) ~= "string" or url == "" then
    return nil, "url must be a non-empty string"
  end
  if url:find("%s") then
    return nil, "url must not contain white space"
  end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil, "url must start with http:// or https:// (got '" .. url .. "')"
  end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "url must use http or https, not " .. scheme
  end
  if rest:find("[?#]") then
    return nil, "url must not have a query string or fragment"
  end
  local authority, path = rest:match("^([^/]+)(.*)$")
  if not authority then
    return nil, "url has no host (got '" .. url .. "')"
  end
  if authority:find("@") then
    return nil, "url must not contain credentials; use api_key"
  end
  path = path:gsub("/+$", "")
  if path == "" then
    path = "/v1"
  end
  return scheme .. "://" .. authority .. path, path
end

---------------------------------------------------------------------------
-- compiling the endpoint table

local VERBS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local SCOPES = { project = true, any = true, none = true }
local ENTRY_FIELDS = {
  body = true, shorthand = true, arrays = true, query = true, response = true,
  idempotent = true, after = true, doc = true, base = true, fallback = true,
  timeout = true, since = true,
}
local RESPONSES = { json = true, text = true, redirect = true }

local function compile(e)
  local name, method, template, scope = e[1], e[2], e[3], e[4]
  assert(is_nonempty_string(name), "endpoint without a name")
  assert(VERBS[method], name .. ": bad HTTP method")
  assert(type(template) == "string" and template:sub(1, 1) == "/", name .. ": bad path")
  assert(SCOPES[scope], name .. ": bad scope")
  for k in pairs(e) do
    assert(type(k) == "number" or ENTRY_FIELDS[k], name .. ": unknown field " .. tostring(k))
  end
  assert(e.body == nil or e.body == "required" or e.body == "optional", name .. ": bad body")
  assert(e.response == nil or RESPONSES[e.response], name .. ": bad response")
  assert(e.base == nil or e.base == "gateway", name .. ": bad base")
  assert(e.fallback == nil or e.fallback:sub(1, 1) == "/", name .. ": bad fallback")
  local params = {}
  for p in template:gmatch("{([%w_]+)}") do
    params[#params + 1] = p
  end
  local query
  if e.query then
    query = {}
    for _, q in ipairs(e.query) do
      query[q] = true
    end
  end
  local shorthand_is_array = false
  for _, a in ipairs(e.arrays or {}) do
    if a == e.shorthand then
      shorthand_is_array = true
    end
  end
  local idempotent = e.idempotent
  if idempotent == nil then
    idempotent = retry.is_idempotent(method)
  end
  return {
    name = name, method = method, path = template, scope = scope,
    params = params, body = e.body, shorthand = e.shorthand, arrays = e.arrays,
    query = query, query_names = e.query, response = e.response or "json",
    idempotent = idempotent, after = e.after, doc = e.doc, base = e.base,
    fallback = e.fallback, timeout = e.timeout, since = e.since,
    shorthand_is_array = shorthand_is_array,
  }
end

-- Builds the JSON body of a call. Returns the encoded string, or nil and
-- a message for the caller's error.
local function encode_body(ep, body)
  if body == nil then
    if ep.body == "required" then
      return nil, "a body table is required"
    end
    return nil
  end
  if type(body) ~= "table" then
    if ep.shorthand == nil then
      return nil, "the body must be a table, got " .. type(body)
    end
    body = { [ep.shorthand] = body }
  elseif ep.shorthand_is_array and body[ep.shorthand] == nil
      and (next(body) == nil or body[1] ~= nil) then
    body = { [ep.shorthand] = body }     -- set_secrets(id, { "a", "b" })
  end
  if ep.arrays then
    local out
    for _, field in ipairs(ep.arrays) do
      local v = body[field]
      if type(v) == "table" and not core.is_array(v) then
        out = out or copy(body)
        out[field] = core.array(copy(v))
      end
    end
    body = out or body
  end
  local ok, encoded = pcall(json_encode, body)
  if not ok then
    return nil, "the body " .. tostring(encoded):gsub("^cannot encode JSON", "cannot be encoded as JSON")
  end
  return encoded
end

local function encode_query(ep, query)
  if query == nil then
    return nil
  end
  if type(query) ~= "table" then
    return nil, "the query must be a table, got " .. type(query)
  end
  local parts = {}
  for k, v in pairs(query) do
    if not ep.query[k] then
      return nil, fmt("unknown query parameter '%s' (accepted: %s)", tostring(k),
                      concat(ep.query_names, ", "))
    end
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      return nil, fmt("query parameter '%s' must be a string, number or boolean", k)
    end
    parts[#parts + 1] = escape(k) .. "=" .. escape(tostring(v))
  end
  if #parts == 0 then
    return nil
  end
  sort(parts)
  return concat(parts, "&")
end

---------------------------------------------------------------------------
-- the client

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
-- client:batch() if one was made. Idempotent.
function Client:close()
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
  return secrets[self] ~= nil
end

function Client:_log(line)
  if self._logger then
    self._logger(redact(line, secrets[self]))
  end
end

--- Turns one transport answer into a result or an error object.
-- expect: "json" | "text" | "redirect". Public for other drivers (batch).
local function interpret(req, expect, status, headers, body)
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
  if status >= 200 and status < 300 then
    if status == 204 or status == 205 then
      return true
    end
    if expect == "text" then
      return body
    end
    if body ~= "" then
      local value = json_decode(body)
      if value ~= nil then
        return value
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
  local url, msg = _M.normalize_url(type(answer) == "table" and answer.url or "")
  if not url then
    return nil, core.new_error({ type = "decode_error", status = 200, retryable = false,
      message = "GET /gateway-url gave no usable URL: " .. msg, method = "GET",
      path = self._base_path .. "/gateway-url", attempts = 1 })
  end
  self._gateway_url = url:gsub("/v1$", "")
  return self._gateway_url
end

--- Builds the transport request of one call (no I/O except resolving the
-- gateway origin once). Returns req, or nil and an error object.
function Client:_request_table(method, path, body, query, opts, ep)
  local key = secrets[self]
  local scope = ep and ep.scope or "project"
  local project = opts.project_id or opts.workspace_id or self.project_id
  local headers = { Accept = "application/json" }
  if key and scope ~= "none" then
    headers.Authorization = "Bearer " .. key
  end
  if project and scope ~= "none" then
    headers["X-Project-Id"] = project
    headers["X-Workspace-Id"] = project
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  if opts.headers then
    for k, v in pairs(opts.headers) do
      headers[k] = v
    end
  end
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
  }
end

--- What to do after a success (adopting a regenerated key).
function Client:_after(ep, result, key)
  if ep and ep.after == "switch_key" and type(result) == "table"
      and is_nonempty_string(result.apiKey) and key and secrets[self] == key
      and key:sub(1, 7) ~= "oc_org_" then
    -- the old key stopped working the moment the server answered
    secrets[self] = result.apiKey
    self:_log("onecli: the client now uses the regenerated API key")
  end
end

--- The retry policy of a call (shared with batch).
function Client:_policy(method, ep, opts)
  local max_retries = opts.max_retries or self.max_retries
  return {
    method = method,
    idempotent = ep and ep.idempotent,
    max_retries = max_retries,
    sleep = self._sleep,
    base = self.backoff_base,
    max = self.backoff_max,
    max_retry_after = self.max_retry_after,
    on_retry = self._logger and function(e, n, delay)
      self:_log(fmt("onecli: retrying %s %s in %.2f s after %s%s (attempt %d of %d)",
                    e.method or method, e.path or "?", delay, e.status and (e.status .. " ") or "",
                    e.type, n, max_retries + 1))
    end,
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

-- Sends one call with retries; returns result or nil, err (never raises
-- for API failures).
function Client:_perform(method, path, body, query, opts, ep, fallback_path)
  path, fallback_path = self:_route(ep, path, fallback_path)
  local req, err = self:_request_table(method, path, body, query, opts, ep)
  if not req then
    return nil, err
  end
  local expect = ep and ep.response or "json"
  local transport = self._transport
  local key = req.secret

  local function attempt(n)
    local started = now()
    local result, e = interpret(req, expect, transport:request(req))
    if self._logger then
      self:_log(fmt("onecli: %s %s -> %s (%d ms, attempt %d)", method, req.path,
                    e and ((e.status and (e.status .. " ") or "") .. e.type) or "ok",
                    floor((now() - started) * 1000 + 0.5), n))
    end
    return result, e
  end

  local result
  result, err = retry.run(attempt, self:_policy(method, ep, opts))
  if err and fallback_path and unknown_route(err) then
    -- an older server: the route has its v1 name there
    self._fallbacks[ep.name] = true
    return self:_perform(method, fallback_path, body, query, opts, ep, nil)
  end
  if err then
    return nil, err
  end
  self:_after(ep, result, key)
  return result
end

-- Raises or returns err as the call's options say.
function Client:_fail(err, opts)
  local raise = opts.raise
  if raise == nil then
    raise = self.raise
  end
  if raise then
    error(err, 0)
  end
  return nil, err
end

--- Sends one API request with retries and raises (or returns) errors.
function Client:_send(method, path, body, query, opts, ep, fallback_path)
  local result, err = self:_perform(method, path, body, query, opts, ep, fallback_path)
  if err then
    return self:_fail(err, opts)
  end
  return result
end

local RAW_OPTIONS = {
  body = true, query = true, project_id = true, timeout = true,
  connect_timeout = true, max_retries = true, headers = true, raise = true,
  response = true, callback = true,
}

--- Calls any endpoint by method and path (relative to the base URL):
--   client:request("GET", "/counts")
--   client:request("POST", "/agents", { body = {...}, query = {...} })
function Client:request(method, path, opts)
  if type(method) ~= "string" or not VERBS[method] then
    error("onecli: request: method must be one of GET, POST, PUT, PATCH, DELETE", 2)
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("onecli: request: path must be a string starting with '/'", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli: request: options must be a table", 2)
  end
  local call_opts = {}
  for k, v in pairs(opts) do
    if not RAW_OPTIONS[k] then
      error("onecli: request: unknown option '" .. tostring(k) .. "'", 2)
    end
    if CALL_OPTIONS[k] then
      call_opts[k] = v
    end
  end
  local msg = check_options(call_opts, CALL_OPTIONS, "option")
  if msg then
    error("onecli: request: " .. msg, 2)
  end
  if opts.response ~= nil and not RESPONSES[opts.response] then
    error("onecli: request: response must be \"json\", \"text\" or \"redirect\"", 2)
  end
  local ep = {
    scope = "project", response = opts.response or "json",
    idempotent = retry.is_idempotent(method),
    body = "optional", query = setmetatable({}, { __index = function() return true end }),
    query_names = {},
  }
  local body, query
  if opts.body ~= nil then
    if type(opts.body) == "string" then
      body = opts.body
    else
      body, msg = encode_body(ep, opts.body)
      if msg then
        error("onecli: request: " .. msg, 2)
      end
    end
  end
  query, msg = encode_query(ep, opts.query)
  if msg then
    error("onecli: request: " .. msg, 2)
  end
  return self:_dispatch(method, path, body, query, call_opts, ep)
end

---------------------------------------------------------------------------
-- asynchronous calls
--
-- A transport may suspend the running coroutine inside request() (the
-- Neovim transport does). Such a transport sets `async = true` and may
-- provide `sleep(seconds)` (also suspending) and `schedule(fn)` (to run
-- callbacks on the host's main loop). Then a call made with the per-call
-- option `callback = function(result, err) end` runs in a coroutine of
-- its own and returns at once; a call made from inside a coroutine simply
-- waits there.

function Client:_dispatch(method, path, body, query, opts, ep, fallback_path)
  local callback = opts.callback
  if callback == nil then
    return self:_send(method, path, body, query, opts, ep, fallback_path)
  end
  local schedule = self._schedule
  local co = coroutine.create(function()
    local ok, result, err = pcall(self._perform, self, method, path, body, query, opts, ep,
                                  fallback_path)
    if not ok then     -- a bug or a transport misuse: still report it as an error object
      err = core.transport_error(method, path, "CALLBACK", tostring(result), {})
      result = nil
    end
    schedule(function() callback(result, err) end)
  end)
  local ok, msg = coroutine.resume(co)
  if not ok then
    error(msg, 0)
  end
  return co
end

---------------------------------------------------------------------------
-- generated methods

-- Parses the arguments of a generated method: returns the expanded path,
-- body, query and options; raises (level 3: the caller's caller) on misuse.
local function parse_args(ep, nargs, args)
  local label = "onecli: " .. ep.name
  local path = ep.path
  local fallback = ep.fallback
  for i = 1, #ep.params do
    local v = args[i]
    if type(v) == "number" and v % 1 == 0 then
      v = fmt("%d", v)
    end
    if not is_nonempty_string(v) then
      error(fmt("%s: argument #%d (%s) must be a non-empty string, got %s",
                label, i, ep.params[i], v == "" and "an empty string" or type(v)), 3)
    end
    local escaped = escape(v):gsub("%%", "%%%%")
    path = path:gsub("{" .. ep.params[i] .. "}", escaped, 1)
    if fallback then
      fallback = fallback:gsub("{" .. ep.params[i] .. "}", escaped, 1)
    end
  end
  local i = #ep.params + 1
  local body, query, msg
  if ep.body then
    body, msg = encode_body(ep, args[i])
    if msg then
      error(fmt("%s: argument #%d (body): %s", label, i, msg), 3)
    end
    i = i + 1
  elseif ep.query then
    query, msg = encode_query(ep, args[i])
    if msg then
      error(fmt("%s: argument #%d (query): %s", label, i, msg), 3)
    end
    i = i + 1
  end
  local opts = args[i]
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    error(fmt("%s: argument #%d (options) must be a table, got %s", label, i, type(opts)), 3)
  else
    msg = check_options(opts, CALL_OPTIONS, "option")
    if msg then
      error(fmt("%s: %s", label, msg), 3)
    end
  end
  if nargs > i then
    error(fmt("%s: too many arguments (%d given, at most %d)", label, nargs, i), 3)
  end
  return path, body, query, opts, fallback
end
_M.parse_args = parse_args

local function make_method(ep, namespaced)
  local label = "onecli: " .. ep.name
  return function(self, ...)
    local client = self
    if namespaced then
      client = type(self) == "table" and self._client
      if not client then
        local dotted = ep.name:gsub("%.([%w_]+)$", ":%1")
        error(fmt("%s: call it with a colon: client.%s(...)", label, dotted), 2)
      end
    elseif getmetatable(self) ~= Client then
      error(fmt("%s: call it with a colon: client:%s(...)", label, ep.name), 2)
    end
    local path, body, query, opts, fallback = parse_args(ep, select("#", ...), { ... })
    return client:_dispatch(ep.method, path, body, query, opts, ep, fallback)
  end
end

local compiled = {}
local by_name = {}
-- namespace path ("org.secrets") -> methods table
local namespace_methods = {}
-- namespace path -> list of child namespace names
local namespace_children = {}

for _, e in ipairs(endpoint_table) do
  local ep = compile(e)
  compiled[#compiled + 1] = ep
  assert(by_name[ep.name] == nil, "duplicate endpoint " .. ep.name)
  by_name[ep.name] = ep
  local ns, method = ep.name:match("^(.+)%.([%a_]+)$")
  if ns then
    if not namespace_methods[ns] then
      namespace_methods[ns] = {}
      -- register every level: "org.secrets" needs "org" too
      local parent, child = ns:match("^(.+)%.([%a_]+)$")
      while child do
        namespace_children[parent] = namespace_children[parent] or {}
        namespace_children[parent][child] = true
        namespace_methods[parent] = namespace_methods[parent] or {}
        parent, child = parent:match("^(.+)%.([%a_]+)$")
      end
    end
    namespace_methods[ns][method] = make_method(ep, true)
  else
    assert(Client[ep.name] == nil, "endpoint name clashes with a client method: " .. ep.name)
    Client[ep.name] = make_method(ep, false)
  end
end

-- v1 names of namespaces v2 renamed
local ALIASES = { projects = "workspaces" }

local namespace_mts = {}
for ns, methods in pairs(namespace_methods) do
  methods.__index = methods
  methods.__name = "onecli." .. ns
  methods.__tostring = function() return "onecli namespace " .. ns end
  namespace_mts[ns] = methods
end

--- The compiled endpoint table (for docs and tests), and by name.
_M.endpoints = compiled
_M.endpoint = by_name

--- Lets other modules add hand-written methods to a namespace
-- (agents:ensure, approvals:run, ...).
function _M.extend(ns, name, fn)
  local methods = namespace_mts[ns]
  if not methods then
    methods = { __name = "onecli." .. ns }
    methods.__index = methods
    namespace_mts[ns] = methods
  end
  assert(methods[name] == nil, "method exists: " .. ns .. "." .. name)
  methods[name] = fn
end

function _M.extend_client(name, fn)
  assert(Client[name] == nil, "method exists: " .. name)
  Client[name] = fn
end

local function build_namespace(self, ns)
  local obj = setmetatable({ _client = self }, namespace_mts[ns])
  for child in pairs(namespace_children[ns] or {}) do
    obj[child] = build_namespace(self, ns .. "." .. child)
  end
  return obj
end

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
  local msg = check_options(opts, CLIENT_OPTIONS, "option")
  if msg then
    error("onecli.new: " .. msg, 2)
  end
  local getenv = opts.getenv or os.getenv
  local function env(name)
    local v = getenv(name)
    if v == "" then
      return nil
    end
    return v
  end

  local url, base_path = _M.normalize_url(opts.url or env("ONECLI_URL") or DEFAULT_URL)
  if not url then
    error("onecli.new: " .. base_path, 2)
  end
  local gateway_url = opts.gateway_url or env("ONECLI_GATEWAY_URL")
  if gateway_url then
    local gw, gmsg = _M.normalize_url(gateway_url)
    if not gw then
      error("onecli.new: gateway_url: " .. gmsg, 2)
    end
    gateway_url = gw:gsub("/v1$", "")
  end
  local api_key = opts.api_key or env("ONECLI_API_KEY")
  if api_key ~= nil and (api_key == "" or api_key:find("[%s%c]")) then
    error("onecli.new: api_key must be a non-empty string without white space", 2)
  end
  local project_id = opts.project_id or opts.workspace_id or env("ONECLI_PROJECT_ID")
                     or env("ONECLI_WORKSPACE_ID")
  if project_id and not project_id:match("^[%w%-_]+$") then
    error("onecli.new: project_id must be an id (letters, digits, '-', '_')", 2)
  end
  if opts.insecure ~= nil and opts.ca_file ~= nil and opts.insecure then
    error("onecli.new: ca_file and insecure = true contradict each other", 2)
  end

  local self = setmetatable({
    url = url,
    project_id = project_id,
    workspace_id = project_id,
    timeout = opts.timeout or DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
    max_retries = opts.max_retries or DEFAULTS.max_retries,
    backoff_base = opts.backoff_base or DEFAULTS.backoff_base,
    backoff_max = opts.backoff_max or DEFAULTS.backoff_max,
    max_retry_after = opts.max_retry_after or DEFAULTS.max_retry_after,
    raise = opts.raise ~= false,
    insecure = opts.insecure == true,
    _base_path = base_path,
    _logger = opts.log,
    _gateway_url = gateway_url,
    _fallbacks = {},
  }, Client)
  secrets[self] = api_key
  local transport = opts.transport or default_transport(opts, self)
  self._transport = transport
  self._sleep = opts.sleep or transport.sleep or core.sleep
  self._schedule = transport.schedule or function(fn) fn() end
  for ns in pairs(namespace_methods) do
    if not ns:find(".", 1, true) then
      self[ns] = build_namespace(self, ns)
    end
  end
  for ns, mt in pairs(namespace_mts) do   -- namespaces with only hand-written methods
    if not ns:find(".", 1, true) and self[ns] == nil then
      self[ns] = setmetatable({ _client = self }, mt)
    end
  end
  for alias, target in pairs(ALIASES) do
    self[alias] = self[target]
  end
  return self
end

_M.Client = Client

return _M
