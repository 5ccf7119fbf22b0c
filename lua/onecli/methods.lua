--- The methods generated from the endpoint table (onecli.endpoints):
-- compiling each entry, reading a call's arguments (path parameters,
-- body or query, options) with call-site errors, the namespaces
-- (client.agents, client.org.secrets, ...), hand-written additions
-- (extend), and client:request for any route.
--
-- install(Client) adds the methods to the client class once; attach(client)
-- gives a new client its namespace objects.

local core = require("onecli.core")
local config = require("onecli.config")
local keys = require("onecli.keys")
local nginx = require("onecli.nginx")
local retry = require("onecli.retry")
local endpoint_table = require("onecli.endpoints")
local pagination = require("onecli.pagination")

local error, type, pairs, ipairs, select, tostring, setmetatable, getmetatable, pcall, next,
      assert =
      error, type, pairs, ipairs, select, tostring, setmetatable, getmetatable, pcall, next,
      assert
local concat, sort = table.concat, table.sort
local fmt = string.format
local json_encode, escape, path_segment = core.json_encode, core.escape, core.path_segment
local math_type = math.type
local check_options, CALL_OPTIONS = config.check_options, config.CALL_OPTIONS

local _M = { _VERSION = core._VERSION }

local Client   -- set by install()

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local function is_nonempty_string(v)
  return type(v) == "string" and v ~= ""
end

--- What the value standing for a one-field body must be, by body field,
-- as a LuaLS type (the API reference shows it; docs/generate.lua reads
-- it). Fields not listed take a string, or a list when the field is one
-- of the endpoint's arrays.
_M.SHORTHAND_TYPES = {
  enabled = "boolean",
  ssoRequired = "boolean",
  mode = '"all"|"selective"',
  decision = '"approve"|"deny"',
  policyMode = '"allow"|"deny"',
  action = "string",
  access = '"full"|"custom"',
  connections = "table[]",
}

-- The Lua type a shorthand value is checked against.
local function shorthand_kind(field, is_array)
  local t = _M.SHORTHAND_TYPES[field]
  if is_array or (t and t:find("[]", 1, true)) then
    return "table"
  end
  if t == "boolean" then
    return "boolean"
  end
  return "string"
end

---------------------------------------------------------------------------
-- compiling the endpoint table

local VERBS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local SCOPES = { project = true, any = true, none = true }
local ENTRY_FIELDS = {
  body = true, shorthand = true, arrays = true, query = true, response = true,
  idempotent = true, after = true, doc = true, base = true, fallback = true,
  timeout = true, since = true, nullable = true, paginate = true, each = true,
}
local RESPONSES = { json = true, text = true, redirect = true, binary = true, events = true }
local BODIES = { required = true, optional = true, binary = true }
-- what each kind of paginated list takes and answers (reference §14.2 rule 8)
local PAGINATIONS = {
  cursor = { query = "cursor" },        -- {data = {...}, nextCursor = str|null}
  transcript = { query = "since" },     -- {events = {...}, nextSince = n, hasMore = bool}
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
  assert(e.body == nil or BODIES[e.body], name .. ": bad body")
  assert(e.paginate == nil or PAGINATIONS[e.paginate], name .. ": bad paginate")
  assert((e.paginate == nil) == (e.each == nil), name .. ": paginate and each go together")
  assert(e.each == nil or e.each:match("^each[%w_]*$"), name .. ": bad iterator name")
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
      assert(CALL_OPTIONS[q] == nil, name .. ": query parameter " .. q .. " has an option's name")
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
    query = query, query_names = e.query,
    -- what the pipeline expects: "json" | "json_or_null" | "text" | "redirect"
    response = e.response or (e.nullable and "json_or_null" or "json"), nullable = e.nullable,
    idempotent = idempotent, after = e.after, doc = e.doc, base = e.base,
    fallback = e.fallback, timeout = e.timeout, since = e.since,
    shorthand_is_array = shorthand_is_array, paginate = e.paginate, each = e.each,
    shorthand_kind = e.shorthand and shorthand_kind(e.shorthand, shorthand_is_array),
  }
end

-- Builds the JSON body of a call. Returns the encoded string, or nil and
-- a message for the caller's error.
local function encode_body(ep, body)
  if ep.body == "binary" then
    if type(body) ~= "string" then
      return nil, "the body must be a string of bytes, got " .. type(body)
    end
    return body
  end
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
    if ep.shorthand_kind == "table" then
      return nil, fmt("the body must be a table, or a list standing for { %s = list }, got %s",
                      ep.shorthand, type(body))
    end
    if type(body) ~= ep.shorthand_kind then
      return nil, fmt("the body must be a table, or a %s standing for { %s = value }, got %s",
                      ep.shorthand_kind, ep.shorthand, type(body))
    end
    body = { [ep.shorthand] = body }
  elseif ep.shorthand_is_array and body[ep.shorthand] == nil
      and (next(body) == nil or body[1] ~= nil) then
    body = { [ep.shorthand] = body }     -- set_secrets(id, { "a", "b" })
  end
  if ep.arrays then
    local out
    for _, field in ipairs(ep.arrays) do
      local list, sub = field:match("^([%w_]+)%[%]%.([%w_]+)$")    -- "rules[].userIds"
      if list then
        local items = (out or body)[list]
        if type(items) == "table" then
          local new_items
          for i, item in ipairs(items) do
            local v = type(item) == "table" and item[sub]
            if type(v) == "table" and not core.is_array(v) then
              new_items = new_items or core.array(copy(items))
              new_items[i] = copy(item)
              new_items[i][sub] = core.array(copy(v))
            end
          end
          if new_items then
            out = out or copy(body)
            out[list] = new_items
          end
        end
      else
        local v = body[field]
        if type(v) == "table" and not core.is_array(v) then
          out = out or copy(body)
          out[field] = core.array(copy(v))
        end
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
--- What is wrong with the path of a raw call (client:request, a raw call
-- of client:batch), or nil: it goes out as written, so it must not hold
-- what would send it elsewhere or break the request line.
function _M.check_raw_path(path)
  if path:find("[%z\1-\32\127-\255\\]") then
    return "must be ASCII without white space, control characters or backslashes "
           .. "(percent-encode the rest: onecli.core.escape)"
  end
  if path:find("[?#]") then
    return "must not contain '?' or '#' (pass the query as the query option)"
  end
  for segment in path:gmatch("/([^/]*)") do
    local dots = segment:gsub("%%2[eE]", "."):match("^%.%.?$")
    if dots then
      return "must not contain '.' or '..' segments (they would change the route)"
    end
  end
  return nil
end

local RAW_OPTIONS = {
  body = true, query = true, project_id = true, timeout = true,
  connect_timeout = true, max_retries = true, headers = true, raise = true,
  response = true, callback = true,
}

--- Calls any endpoint by method and path (relative to the base URL):
--   client:request("GET", "/counts")
--   client:request("POST", "/agents", { body = {...}, query = {...} })
local function request(self, method, path, opts)
  if type(method) ~= "string" or not VERBS[method] then
    error("onecli: request: method must be one of GET, POST, PUT, PATCH, DELETE", 2)
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error("onecli: request: path must be a string starting with '/'", 2)
  end
  local why = _M.check_raw_path(path)
  if why then
    error("onecli: request: path " .. why, 2)
  end
  local why_not = _M.check_call(self, { scope = "any" }, {})
  if why_not then
    error("onecli: request: " .. why_not, 2)
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
    error("onecli: request: response must be \"json\", \"text\", \"binary\", \"events\" or \"redirect\"", 2)
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
-- generated methods

-- The path segment for a path parameter: a non-empty string or an
-- integer, percent-encoded; "." and ".." are refused (they would change
-- the route). Returns the segment, or nil and what is wrong.
local function path_value(v)
  local tv = type(v)
  if tv == "number" then
    if math_type and math_type(v) == "integer" then
      return fmt("%d", v)
    end
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
      return fmt("%.0f", v)
    end
    return nil, "must be a non-empty string or an integer, got the number " .. tostring(v)
  end
  if tv ~= "string" or v == "" then
    return nil, "must be a non-empty string, got " .. (v == "" and "an empty string" or tv)
  end
  local segment, why = path_segment(v)
  if not segment then
    return nil, "must name a resource: " .. why
  end
  return segment
end

-- The options of a call made without any (read by the pipeline, never
-- written).
local NO_OPTIONS = setmetatable({}, {
  __newindex = function() error("onecli: internal error: a call's options are read-only", 2) end,
})

-- No arguments (a call like client.agents:list()).
local NO_ARGS = NO_OPTIONS

-- Is t, the last argument where the query may stand, the call's options
-- instead? Only when every key is an option's and none a query
-- parameter's: agents:list{ project_id = "..." } kept working when
-- agents.list learned the include query (no query name is an option name).
local function only_options(ep, t)
  if type(t) ~= "table" or next(t) == nil then
    return false
  end
  for k in pairs(t) do
    if CALL_OPTIONS[k] == nil or ep.query[k] then
      return false
    end
  end
  return true
end

-- Parses the arguments of a generated method: returns the expanded path,
-- body, query and options; raises (level 3: the caller's caller) on misuse.
local function parse_args(ep, nargs, args)
  local path = ep.path
  local fallback = ep.fallback
  for i = 1, #ep.params do
    local segment, why = path_value(args[i])
    if not segment then
      error(fmt("onecli: %s: argument #%d (%s) %s", ep.name, i, ep.params[i], why), 3)
    end
    local escaped = segment:gsub("%%", "%%%%")
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
      error(fmt("onecli: %s: argument #%d (body): %s", ep.name, i, msg), 3)
    end
    i = i + 1
  end
  if ep.query and (not ep.body or ep.body == "binary") and not (nargs == i and only_options(ep, args[i])) then
    query, msg = encode_query(ep, args[i])
    if msg then
      error(fmt("onecli: %s: argument #%d (query): %s", ep.name, i, msg), 3)
    end
    i = i + 1
  end
  local opts = args[i]
  if opts == nil then
    opts = NO_OPTIONS
  elseif type(opts) ~= "table" then
    error(fmt("onecli: %s: argument #%d (options) must be a table, got %s", ep.name, i, type(opts)), 3)
  else
    msg = check_options(opts, CALL_OPTIONS, "option")
    if msg then
      error(fmt("onecli: %s: %s", ep.name, msg), 3)
    end
  end
  if nargs > i then
    error(fmt("onecli: %s: too many arguments (%d given, at most %d)", ep.name, nargs, i), 3)
  end
  return path, body, query, opts, fallback
end
_M.parse_args = parse_args

--- What stops a call before anything is sent, as a message (or nil): a
-- closed client, or an organization key without the workspace that an
-- endpoint of project scope needs (the server would answer 401 without
-- naming the option).
function _M.check_call(client, ep, opts)
  if client._closed then
    return "the client is closed (client:close() was called); make a new one"
  end
  if client._transport == nil then
    local why = nginx.refusal(nginx.phase())
    if why then
      return why
    end
  end
  if ep.scope == "project" then
    local key = keys.get(client)
    if key and key:sub(1, 7) == "oc_org_"
        and not (opts.project_id or opts.workspace_id or client.project_id) then
      return "an organization key (oc_org_...) needs a workspace for this call: set "
             .. "project_id (or workspace_id) in onecli.new or in the call's options, or "
             .. "ONECLI_PROJECT_ID / ONECLI_WORKSPACE_ID"
    end
  end
  return nil
end

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
    local nargs = select("#", ...)
    local path, body, query, opts, fallback = parse_args(ep, nargs, nargs == 0 and NO_ARGS or { ... })
    local msg = _M.check_call(client, ep, opts)
    if msg then
      error(fmt("%s: %s", label, msg), 2)
    end
    return client:_dispatch(ep.method, path, body, query, opts, ep, fallback)
  end
end

-- One page of a paginated list, for the iterators (onecli.pagination).
local function perform_page(client, path, query, opts, ep)
  local encoded, msg = encode_query(ep, query)
  if msg then     -- the server handed back a cursor that is not a string or number
    return nil, core.new_error({ type = "decode_error", status = 200, retryable = false,
      method = ep.method, path = path, attempts = 1, message = ep.name .. ": " .. msg })
  end
  return client:_perform(ep.method, path, nil, encoded, opts, ep)
end

local function fail(client, err, opts)
  return client:_fail(err, opts)
end

local compiled = {}
local by_name = {}
-- namespace path ("org.secrets") -> methods table
local namespace_methods = {}
-- namespace path -> list of child namespace names
local namespace_children = {}

-- v1 names of namespaces v2 renamed
local ALIASES = { projects = "workspaces" }

local namespace_mts = {}

--- Adds every generated method, and client:request, to the client class.
-- Called once, by onecli.client.
function _M.install(client_class)
  assert(Client == nil, "methods are installed once")
  Client = client_class
  Client.request = request
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
      if ep.each then
        assert(namespace_methods[ns][ep.each] == nil, "iterator name clashes: " .. ns .. "." .. ep.each)
        namespace_methods[ns][ep.each] = pagination.method(ep, parse_args,
          function(client, path, query, opts) return perform_page(client, path, query, opts, ep) end, fail)
      end
    else
      assert(Client[ep.name] == nil, "endpoint name clashes with a client method: " .. ep.name)
      Client[ep.name] = make_method(ep, false)
    end
  end

  for ns, methods in pairs(namespace_methods) do
    methods.__index = methods
    methods.__name = "onecli." .. ns
    methods.__tostring = function() return "onecli namespace " .. ns end
    namespace_mts[ns] = methods
  end
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

--- Gives a new client its namespace objects (client.agents, ...).
function _M.attach(self)
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
end

return _M
