-- The OneCLI API of the stand-in: path mapping (/api -> /v1), routing,
-- authentication per mode, body decoding, and dispatch to the route modules
-- (standin.agents, .secrets, .rules, .apps, .account).
local json = require("standin.json")
local util = require("standin.util")
local reply = require("standin.reply")
local store = require("standin.store")
local pages = require("standin.pages")

local _M = {}
_M.__index = _M

local ipairs, setmetatable, concat = ipairs, setmetatable, table.concat

_M.VERSIONS = { v1 = "1.41.0", v2 = "2.0.1" }

local WORKSPACE_MSG = "X-Workspace-Id (formerly X-Project-Id) header is required"

local ROUTE_MODULES = { "standin.account", "standin.agents", "standin.secrets", "standin.rules", "standin.apps" }

local function split_path(path)
  local segs = {}
  for seg in (path .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = seg end
  return segs
end

local function compile(route)
  local segs = split_path(route.pattern:sub(2))
  route.segs = segs
  return route
end

-- opts: mode, api_key, org_key, project_id, version (optional)
function _M.new(opts)
  local self = setmetatable({
    mode = opts.mode,
    version = opts.version or _M.VERSIONS[opts.mode],
    initial = { api_key = opts.api_key, org_key = opts.org_key, project_id = opts.project_id },
    routes = {},
  }, _M)
  for _, name in ipairs(ROUTE_MODULES) do
    for _, route in ipairs(require(name)) do
      if not route.mode or route.mode == opts.mode then
        self.routes[#self.routes + 1] = compile(route)
      end
    end
  end
  self:reset()
  return self
end

function _M:reset()
  self.state = store.new({
    mode = self.mode, api_key = self.initial.api_key,
    org_key = self.initial.org_key, project_id = self.initial.project_id,
  })
end

------------------------------------------------------------------------------
-- Routing
------------------------------------------------------------------------------

local function match_segments(route_segs, segs)
  local prefix = route_segs[#route_segs] == "*"
  if prefix then
    if #segs < #route_segs - 1 then return nil end
  elseif #segs ~= #route_segs then
    return nil
  end
  local params = {}
  for i, rs in ipairs(route_segs) do
    if rs == "*" then break end
    local seg = segs[i]
    if seg == "" then return nil end
    if rs:sub(1, 1) == ":" then
      params[rs:sub(2)] = util.percent_decode(seg)
    elseif rs ~= seg then
      return nil
    end
  end
  return params
end

-- Returns route, params (first route registered for that method wins).
function _M:match(method, rest)
  local segs = split_path(rest:sub(2))
  if method == "HEAD" then method = "GET" end
  for _, route in ipairs(self.routes) do
    if route.method == "*" or route.method == method then
      local params = match_segments(route.segs, segs)
      if params then return route, params end
    end
  end
  return nil
end

------------------------------------------------------------------------------
-- Authentication
------------------------------------------------------------------------------

-- v1.41.0 in local mode: every request is the local admin, except a valid
-- org key naming an unknown project (recorded: 401).
function _M:auth_v1(req)
  local state = self.state
  local token = (req.headers.authorization or ""):match("^Bearer (.*)$")
  local project = req.headers["x-project-id"]
  if token == state.org_key and project and project ~= state.project_id then
    return reply.unauthorized()
  end
  return nil
end

-- v2.0.1: strict keys. kind: "project" (workspace needed, 401 without),
-- "project400" (400 without), "user" (no workspace needed).
function _M:auth_v2(req, kind)
  local state = self.state
  local token = (req.headers.authorization or ""):match("^Bearer (.*)$")
  if not token then return reply.unauthorized() end
  if token:sub(1, 7) == "oc_org_" then
    if token ~= state.org_key then return reply.unauthorized() end
    local ws = req.headers["x-workspace-id"]
    if ws == nil or ws == "" then
      if kind == "user" then return nil end
      if kind == "project400" then return reply.bad_request(WORKSPACE_MSG) end
      return reply.unauthorized(WORKSPACE_MSG)
    end
    if ws ~= state.project_id then return reply.unauthorized() end
    return nil
  end
  if token:sub(1, 3) == "oc_" and token == state.api_key then return nil end
  return reply.unauthorized()
end

------------------------------------------------------------------------------
-- Request preparation
------------------------------------------------------------------------------

-- Query-string bridge for browser flows and the v2 X-Project-Id compat layer.
function _M:prepare(req)
  local h = req.headers
  local q = req.query
  if q._token and not h.authorization then h.authorization = "Bearer " .. q._token end
  if q._project and not h["x-project-id"] then h["x-project-id"] = q._project end
  if q._workspace and not h["x-workspace-id"] then h["x-workspace-id"] = q._workspace end
  if q._org and not h["x-organization-id"] then h["x-organization-id"] = q._org end
  if self.mode == "v2" and h["x-project-id"] then
    req.deprecation = true
    if not h["x-workspace-id"] then h["x-workspace-id"] = h["x-project-id"] end
  end
end

-- Body as the server's validator sees it: unparsable or missing -> null.
local function decode_body(raw)
  if raw == nil or raw == "" then return json.null end
  local value = json.decode(raw)
  if value == nil then return json.null end
  return value
end

-- "/api/x" -> "/v1/x"; returns the normalized path or nil when outside the API.
function _M.normalize(path)
  if path == "/api" or path:sub(1, 5) == "/api/" then return "/v1" .. path:sub(5) end
  if path == "/v1" or path:sub(1, 4) == "/v1/" then return path end
  return nil
end

------------------------------------------------------------------------------
-- CORS preflight and non-API paths
------------------------------------------------------------------------------

function _M:preflight(req)
  if self.mode == "v1" then
    return { status = 204, headers = { { "allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT" } } }
  end
  local headers = {
    { "access-control-allow-headers", "Authorization,Content-Type,X-Workspace-Id,X-Organization-Id,X-Project-Id" },
    { "access-control-allow-methods", "GET,POST,PUT,PATCH,DELETE,OPTIONS" },
  }
  if req.headers.origin then headers[#headers + 1] = { "access-control-allow-origin", req.headers.origin } end
  return { status = 204, headers = headers, vary = "Origin, Access-Control-Request-Headers", no_request_id = true }
end

function _M:outside_api(req)
  if self.mode == "v1" then return pages.next_404() end
  return reply.unknown_route(req.method, req.path)
end

------------------------------------------------------------------------------
-- Dispatch
------------------------------------------------------------------------------

-- req: { method, path, query_raw, query, headers (lower-case), body (raw) }
-- Returns a reply (see standin.reply); reply.deprecation is set for v2
-- requests that used X-Project-Id.
function _M:handle(req)
  req.query = req.query or util.parse_query(req.query_raw)
  self:prepare(req)
  local res = self:route(req)
  res.deprecation = req.deprecation
  return res
end

function _M:route(req)
  local norm = _M.normalize(req.path)
  if req.method == "OPTIONS" and (norm or self.mode == "v2") then return self:preflight(req) end
  if not norm then return self:outside_api(req) end
  local route, params = self:match(req.method, norm:sub(4))
  if not route then return reply.unknown_route(req.method, norm) end
  if route.gone and route.auth == "none" then return reply.gone(route.gone) end
  local denied
  if route.auth ~= "none" then
    if self.mode == "v1" then denied = self:auth_v1(req) else denied = self:auth_v2(req, route.auth) end
  end
  if denied then return denied end
  if route.gone then return reply.gone(route.gone) end
  local ctx = {
    app = self, state = self.state, mode = self.mode, req = req,
    params = params, query = req.query, norm_path = norm,
    body = route.body ~= false and decode_body(req.body) or nil,
  }
  return route.handler(ctx)
end

-- For logs: never includes the query string (it may carry _token).
function _M.describe(req, res)
  return concat({ req.method, req.path, tostring(res.status) }, " ")
end

return _M
