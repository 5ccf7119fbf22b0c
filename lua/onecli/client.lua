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
  log = "function", getenv = "function",
}

local CALL_OPTIONS = {
  project_id = "string", timeout = "number", connect_timeout = "number",
  max_retries = "number", headers = "table", raise = "boolean",
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
  idempotent = true, after = true, doc = true,
}

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
  assert(e.response == nil or e.response == "json" or e.response == "redirect",
         name .. ": bad response")
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
  local idempotent = e.idempotent
  if idempotent == nil then
    idempotent = retry.is_idempotent(method)
  end
  return {
    name = name, method = method, path = template, scope = scope,
    params = params, body = e.body, shorthand = e.shorthand, arrays = e.arrays,
    query = query, query_names = e.query, response = e.response or "json",
    idempotent = idempotent, after = e.after, doc = e.doc,
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
  elseif ep.shorthand and body[ep.shorthand] == nil and ep.arrays
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

--- Releases the connection(s). Idempotent.
function Client:close()
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

-- Turns one transport answer into a result or an error object.
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
    if body ~= "" then
      local value = json_decode(body)
      if value ~= nil then
        return value
      end
    end
  end
  return nil, normalize(req.method, req.path, status, headers, body, { secret = req.secret })
end

--- Sends one API request with retries. Used by every generated method;
-- also public for endpoints not in the table:
--   client:request("GET", "/counts")
--   client:request("POST", "/agents", { body = {...}, query = {...} })
function Client:_send(method, path, body, query, opts, ep)
  local key = secrets[self]
  local scope = ep and ep.scope or "project"
  local project = opts.project_id or self.project_id
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
  local req = {
    method = method,
    url = self.url .. path .. (query and ("?" .. query) or ""),
    path = self._base_path .. path,
    headers = headers,
    body = body,
    timeout = opts.timeout or self.timeout,
    connect_timeout = opts.connect_timeout or self.connect_timeout,
    secret = key,
    -- a request that must not be repeated gets its own connection: libcurl
    -- silently re-sends a request once when a reused connection closes
    -- without an answer, which for a POST could create a duplicate
    fresh_connect = not (ep and ep.idempotent),
  }
  local expect = ep and ep.response or "json"
  local transport = self._transport

  local function attempt(n)
    local started = now()
    local result, err = interpret(req, expect, transport:request(req))
    if self._logger then
      self:_log(fmt("onecli: %s %s -> %s (%d ms, attempt %d)", method, req.path,
                    err and ((err.status and (err.status .. " ") or "") .. err.type) or "ok",
                    floor((now() - started) * 1000 + 0.5), n))
    end
    return result, err
  end

  local max_retries = opts.max_retries or self.max_retries
  local result, err = retry.run(attempt, {
    method = method,
    idempotent = ep and ep.idempotent,
    max_retries = max_retries,
    sleep = self._sleep,
    base = self.backoff_base,
    max = self.backoff_max,
    max_retry_after = self.max_retry_after,
    on_retry = self._logger and function(e, n, delay)
      self:_log(fmt("onecli: retrying %s %s in %.2f s after %s%s (attempt %d of %d)",
                    method, req.path, delay, e.status and (e.status .. " ") or "",
                    e.type, n, max_retries + 1))
    end,
  })
  if err then
    local raise = opts.raise
    if raise == nil then
      raise = self.raise
    end
    if raise then
      error(err, 0)
    end
    return nil, err
  end
  if ep and ep.after == "switch_key" and type(result) == "table"
      and is_nonempty_string(result.apiKey) and key
      and key:sub(1, 7) ~= "oc_org_" then
    -- the old key stopped working the moment the server answered
    secrets[self] = result.apiKey
    self:_log("onecli: the client now uses the regenerated API key")
  end
  return result
end

local RAW_OPTIONS = {
  body = true, query = true, project_id = true, timeout = true,
  connect_timeout = true, max_retries = true, headers = true, raise = true,
  response = true,
}

--- Calls any endpoint by method and path (relative to the base URL).
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
  return self:_send(method, path, body, query, call_opts, ep)
end

---------------------------------------------------------------------------
-- generated methods

local function make_method(ep, namespaced)
  local nparams = #ep.params
  local label = "onecli: " .. ep.name
  return function(self, ...)
    local client = self
    if namespaced then
      client = type(self) == "table" and self._client
      if not client then
        error(fmt("%s: call it with a colon: client.%s(...)", label,
                  ep.name:gsub("%.", ":")), 2)
      end
    elseif getmetatable(self) ~= Client then
      error(fmt("%s: call it with a colon: client:%s(...)", label, ep.name), 2)
    end
    local nargs = select("#", ...)
    local args = { ... }
    local path = ep.path
    for i = 1, nparams do
      local v = args[i]
      if type(v) == "number" and v % 1 == 0 then
        v = fmt("%d", v)
      end
      if not is_nonempty_string(v) then
        error(fmt("%s: argument #%d (%s) must be a non-empty string, got %s",
                  label, i, ep.params[i], v == "" and "an empty string" or type(v)), 2)
      end
      path = path:gsub("{" .. ep.params[i] .. "}", escape(v):gsub("%%", "%%%%"), 1)
    end
    local i = nparams + 1
    local body, query, msg
    if ep.body then
      body, msg = encode_body(ep, args[i])
      if msg then
        error(fmt("%s: argument #%d (body): %s", label, i, msg), 2)
      end
      i = i + 1
    elseif ep.query then
      query, msg = encode_query(ep, args[i])
      if msg then
        error(fmt("%s: argument #%d (query): %s", label, i, msg), 2)
      end
      i = i + 1
    end
    local opts = args[i]
    if opts == nil then
      opts = {}
    elseif type(opts) ~= "table" then
      error(fmt("%s: argument #%d (options) must be a table, got %s", label, i, type(opts)), 2)
    else
      msg = check_options(opts, CALL_OPTIONS, "option")
      if msg then
        error(fmt("%s: %s", label, msg), 2)
      end
    end
    if nargs > i then
      error(fmt("%s: too many arguments (%d given, at most %d)", label, nargs, i), 2)
    end
    return client:_send(ep.method, path, body, query, opts, ep)
  end
end

local compiled = {}
local namespace_methods = {}

for _, e in ipairs(endpoint_table) do
  local ep = compile(e)
  compiled[#compiled + 1] = ep
  local ns, method = ep.name:match("^([%a_]+)%.([%a_]+)$")
  if ns then
    namespace_methods[ns] = namespace_methods[ns] or {}
    assert(namespace_methods[ns][method] == nil, "duplicate endpoint " .. ep.name)
    namespace_methods[ns][method] = make_method(ep, true)
  else
    assert(Client[ep.name] == nil, "duplicate endpoint " .. ep.name)
    Client[ep.name] = make_method(ep, false)
  end
end

local namespace_mts = {}
for ns, methods in pairs(namespace_methods) do
  methods.__index = methods
  methods.__name = "onecli." .. ns
  methods.__tostring = function() return "onecli namespace " .. ns end
  namespace_mts[ns] = methods
end

--- The compiled endpoint table (for docs and tests).
_M.endpoints = compiled

---------------------------------------------------------------------------
-- construction

--- Creates a client. Every option falls back to the environment where
-- the official clients do (ONECLI_API_KEY, ONECLI_URL, ONECLI_PROJECT_ID).
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
  local api_key = opts.api_key or env("ONECLI_API_KEY")
  if api_key ~= nil and (api_key == "" or api_key:find("[%s%c]")) then
    error("onecli.new: api_key must be a non-empty string without white space", 2)
  end
  local project_id = opts.project_id or env("ONECLI_PROJECT_ID")
  if project_id and not project_id:match("^[%w%-_]+$") then
    error("onecli.new: project_id must be an id (letters, digits, '-', '_')", 2)
  end
  if opts.insecure ~= nil and opts.ca_file ~= nil and opts.insecure then
    error("onecli.new: ca_file and insecure = true contradict each other", 2)
  end

  local self = setmetatable({
    url = url,
    project_id = project_id,
    timeout = opts.timeout or DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
    max_retries = opts.max_retries or DEFAULTS.max_retries,
    backoff_base = opts.backoff_base or DEFAULTS.backoff_base,
    backoff_max = opts.backoff_max or DEFAULTS.backoff_max,
    max_retry_after = opts.max_retry_after or DEFAULTS.max_retry_after,
    raise = opts.raise ~= false,
    insecure = opts.insecure == true,
    _base_path = base_path,
    _sleep = opts.sleep or core.sleep,
    _logger = opts.log,
  }, Client)
  secrets[self] = api_key
  self._transport = opts.transport or core.new_transport({
    timeout = self.timeout,
    connect_timeout = self.connect_timeout,
    ca_file = opts.ca_file,
    insecure = opts.insecure == true,
    user_agent = opts.user_agent and (core.user_agent .. " " .. opts.user_agent) or nil,
  })
  for ns, mt in pairs(namespace_mts) do
    self[ns] = setmetatable({ _client = self }, mt)
  end
  return self
end

_M.Client = Client

return _M
