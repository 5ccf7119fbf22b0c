-- The OneCLI API of the stand-in: path mapping (/api -> /v1), routing,
-- authentication per mode and edition, body decoding, and dispatch to the
-- route modules (onecli.standin.agents, .secrets, .rules, .apps, .account, .access,
-- .blocklist, .setup, .org, .policy, .partner).
--
-- A route: { method = "GET"|"*", pattern = "/agents/:id", auth = kind,
--   handler = fn(ctx) | gone = "410 message", mode = "v1"|"v2"|nil,
--   edition = "cloud"|nil (v1: only in the cloud edition; v2 has them all),
--   body = false (do not decode), deprecated = true (v2 Deprecation headers),
--   ee = "<feature>" (v2 Enterprise router: on an unlicensed instance 403
--   enterprise_license_required, before authentication; reference §14.2) }.
--
-- The instance (v2, reference §14.2): `licensed` (an Enterprise licence:
-- ENTERPRISE_ENABLED) and `runner` (a registered, online runner: hosted
-- agents can be created) are switches of the launcher (licensed=, runner=)
-- and of POST /__control/instance; both start off, as the recordings.
-- Auth kinds: "none"; "project" (needs a project: 401 without); "project400"
-- (400 without); "user" (any valid key, no project needed); "admin" (org
-- key only: a project key gets 403); "partner" (the partner key only, v1
-- cloud: every other key gets 401). The most specific matching pattern
-- wins (literal segment > :param > *), then registration order.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local pages = require("onecli.standin.pages")

local _M = {}
_M.__index = _M

local ipairs, setmetatable, concat = ipairs, setmetatable, table.concat

_M.VERSIONS = { v1 = "1.41.0", v2 = "2.0.1" }

local WORKSPACE_MSG = "X-Workspace-Id (formerly X-Project-Id) header is required"
local PROJECT_MSG = "X-Project-Id header is required"

local ROUTE_MODULES = {
  "onecli.standin.account", "onecli.standin.agents", "onecli.standin.secrets", "onecli.standin.rules",
  "onecli.standin.apps", "onecli.standin.access", "onecli.standin.blocklist", "onecli.standin.setup",
  "onecli.standin.org", "onecli.standin.policy", "onecli.standin.partner",
  -- v2.0.1 routes beyond the v1 surface (reference §14)
  "onecli.standin.discovery", "onecli.standin.skills", "onecli.standin.invitations",
  "onecli.standin.channels", "onecli.standin.reflect", "onecli.standin.hosted", "onecli.standin.enterprise",
  "onecli.standin.machine",
}

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

-- opts: mode, edition ("oss"|"cloud"), api_key, org_key, project_id,
-- partner_key (v1 cloud), version (optional), gateway_origin (optional; the engine sets it)
function _M.new(opts)
  local edition = opts.edition or "oss"
  local self = setmetatable({
    mode = opts.mode, edition = edition,
    version = opts.version or _M.VERSIONS[opts.mode],
    initial = { api_key = opts.api_key, org_key = opts.org_key, project_id = opts.project_id,
      partner_key = opts.partner_key },
    gateway_origin = opts.gateway_origin or "http://127.0.0.1:10255",
    licensed = opts.licensed == true, runner = opts.runner == true,
    initial_instance = { licensed = opts.licensed == true, runner = opts.runner == true },
    routes = {},
  }, _M)
  for _, name in ipairs(ROUTE_MODULES) do
    for _, route in ipairs(require(name)) do
      local mode_ok = not route.mode or route.mode == opts.mode
      local edition_ok = not route.edition or opts.mode == "v2" or route.edition == edition
      if mode_ok and edition_ok then
        self.routes[#self.routes + 1] = compile(route)
      end
    end
  end
  self:reset()
  return self
end

-- v1 servers in local mode (the open-source default) accept anything; the
-- v1 cloud edition and v2 check keys strictly.
function _M:strict()
  return self.mode == "v2" or self.edition == "cloud"
end

-- Sets the instance switches (nil leaves one as it is).
function _M:set_instance(licensed, runner)
  if licensed ~= nil then self.licensed = licensed end
  if runner ~= nil then self.runner = runner end
end

function _M:reset()
  self.licensed, self.runner = self.initial_instance.licensed, self.initial_instance.runner
  self.org = store.new({
    mode = self.mode, edition = self.edition, api_key = self.initial.api_key,
    org_key = self.initial.org_key, project_id = self.initial.project_id,
  })
  -- the partner layer: v1 cloud only
  self.partner = nil
  if self.mode == "v1" and self.edition == "cloud" and self.initial.partner_key then
    self.partner = store.new_partner(self.initial.partner_key)
  end
end

-- Every organization whose keys the server accepts: its own, then the ones
-- the partner created (until deleted).
function _M:orgs()
  local list = { self.org }
  for _, o in ipairs(self.partner and self.partner.orgs or {}) do list[#list + 1] = o end
  return list
end

-- The organization of an org key / the project of a project key.
function _M:org_for_key(token)
  for _, o in ipairs(self:orgs()) do
    if o.org_key == token then return o end
  end
  return nil
end

function _M:project_for_key(token)
  for _, o in ipairs(self:orgs()) do
    local p = store.project_for_key(o, token)
    if p then return p end
  end
  return nil
end

-- The project the server started with (the one control/info describes).
function _M:main_project()
  return store.main_project(self.org, self.initial.project_id)
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

local RANK = { literal = 3, param = 2, rest = 1 }

local function seg_rank(rs)
  if rs == "*" then return RANK.rest end
  if rs:sub(1, 1) == ":" then return RANK.param end
  return RANK.literal
end

-- true when route a is more specific than route b
local function more_specific(a, b)
  local n = math.max(#a.segs, #b.segs)
  for i = 1, n do
    local ra = a.segs[i] and seg_rank(a.segs[i]) or 0
    local rb = b.segs[i] and seg_rank(b.segs[i]) or 0
    if ra ~= rb then return ra > rb end
  end
  return false
end

-- Returns route, params: the most specific matching route for the method.
function _M:match(method, rest)
  local segs = split_path(rest:sub(2))
  if method == "HEAD" then method = "GET" end
  local best, best_params
  for _, route in ipairs(self.routes) do
    if route.method == "*" or route.method == method then
      local params = match_segments(route.segs, segs)
      if params and (not best or more_specific(route, best)) then best, best_params = route, params end
    end
  end
  return best, best_params
end

------------------------------------------------------------------------------
-- Authentication
------------------------------------------------------------------------------

-- Authentication returns a grant { key = "local"|"project"|"org",
-- project = project table or nil } or nil, error reply.

-- v1.41.0 in local mode: every request is the local admin in the main
-- project, except a valid org key naming an unknown project (recorded: 401).
function _M:auth_local(req)
  local token = (req.headers.authorization or ""):match("^Bearer (.*)$")
  local project = req.headers["x-project-id"]
  local main = self:main_project()
  if token == self.org.org_key and project and project ~= main.id then
    return nil, reply.unauthorized()
  end
  return { key = "local", project = main }
end

-- v1 cloud edition and v2.0.1: strict keys. v1 reads X-Project-Id, v2
-- X-Workspace-Id (X-Project-Id copied over by prepare()).
function _M:auth_strict(req, kind)
  local token = (req.headers.authorization or ""):match("^Bearer (.*)$")
  if not token then return nil, reply.unauthorized() end
  if kind == "partner" then
    if not self.partner or token ~= self.partner.key then return nil, reply.unauthorized() end
    return { key = "partner" }
  end
  if token:sub(1, 7) == "oc_org_" then
    local org = self:org_for_key(token)
    if not org then return nil, reply.unauthorized() end
    local header, msg = "x-workspace-id", WORKSPACE_MSG
    if self.mode == "v1" then header, msg = "x-project-id", PROJECT_MSG end
    local id = req.headers[header]
    if id == nil or id == "" then
      if kind == "user" or kind == "admin" then return { key = "org", org = org } end
      if kind == "project400" then return nil, reply.bad_request(msg) end
      return nil, reply.unauthorized(msg)
    end
    local project = store.find(org.projects, id)
    if not project then return nil, reply.unauthorized() end
    return { key = "org", org = org, project = project }
  end
  local project = token:sub(1, 3) == "oc_" and self:project_for_key(token)
  if not project then return nil, reply.unauthorized() end
  -- v2: admin routes only check membership without RBAC, and with it the
  -- stand-in's one user is the owner: a workspace user key passes
  -- (reference §14.2 rule 3); the v1 cloud server wanted the org key
  if kind == "admin" and self.mode ~= "v2" then
    return nil, reply.envelope(403, "Insufficient permissions", "authentication_error")
  end
  return { key = "project", org = project.org, project = project }
end

function _M:authenticate(req, kind)
  if self:strict() then return self:auth_strict(req, kind) end
  return self:auth_local(req)
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
-- Returns a reply (see onecli.standin.reply); reply.deprecation is set for v2
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
  if route.deprecated and self.mode == "v2" then req.deprecation = true end
  if route.gone and route.auth == "none" then return reply.gone(route.gone) end
  if route.ee and not self.licensed then return reply.license_required(route.ee) end
  local grant = { key = "none" }
  if route.auth ~= "none" then
    local denied
    grant, denied = self:authenticate(req, route.auth)
    if not grant then return denied end
  end
  if route.gone then return reply.gone(route.gone) end
  -- a partner-created organization's keys act inside that organization
  local org = grant.org or self.org
  local state = grant.project or (org == self.org and self:main_project()) or org.projects[1]
  local ctx = {
    app = self, org = org, state = state, project = grant.project,
    key_kind = grant.key, mode = self.mode, edition = self.edition, req = req,
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
