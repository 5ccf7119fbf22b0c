-- /rules routes: v1 (1.41.0) policy rules, app permissions and overlap
-- (reference §6.4); v2 (2.0.1) answers 410 on every /rules path without
-- auth. The v1 cloud edition's /org/rules* (onecli.standin.org) use the `scoped`
-- handlers with scope "organization".
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")
local v = require("onecli.standin.validate")

local obj, array, null = json.obj, json.array, json.null
local ipairs, pairs = ipairs, pairs
local CLEAR = {}
local ORG = "organization"

-- v2.0.1 tombstones (the real removed-routes.ts wording).
local WORKSPACE_REPLACEMENT = "Workspace access is granted per agent: "
  .. "PUT /v1/agents/:agentId/grants/connections/:connectionId and /v1/agents/:agentId/grants/secrets/:secretId."
local GONE = "/v1/rules was removed. " .. WORKSPACE_REPLACEMENT
local GONE_OVERLAP = "GET /v1/rules/overlap/:provider was removed: rule overlap is computed by the organization "
  .. "Policy console. " .. WORKSPACE_REPLACEMENT
local GONE_PERMISSIONS = "/v1/rules/permissions/:provider was removed: app permissions are policy rules with an "
  .. "app target. Read the tool catalog from /v1/apps/permission-definitions. " .. WORKSPACE_REPLACEMENT
local function gone_policy(what)
  return what .. " was removed at workspace scope: workspace rules are compiled from agent credential grants, "
    .. "not authored directly. " .. WORKSPACE_REPLACEMENT
end
local APP_PERMISSION_MSG = "App-permission rule endpoints are managed automatically; change app permissions "
  .. "via PUT /rules/permissions/{provider} (or /org/rules/permissions/{provider} for organization rules)"

local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE" }
local ACTIONS = { "block", "rate_limit", "manual_approval", "allow" }
local WINDOWS = { "minute", "hour", "day" }

local CONDITION = v.object({
  { "target", v.literal("body") },
  { "operator", v.literal("contains") },
  { "value", v.string():min(1):max(1000) },
  { "key", v.string():max(500):optional() },
})

local function conditions() return v.array(CONDITION):max(10) end
local function rate_limit() return v.int():min(1):max(1000000) end

local CREATE = v.object({
  { "name", v.string():trim():min(1):max(255) },
  { "hostPattern", v.string():trim():min(1):max(1000) },
  { "pathPattern", v.string():max(1000):optional() },
  { "method", v.enum(METHODS):optional() },
  { "action", v.enum(ACTIONS) },
  { "enabled", v.boolean() },
  { "agentId", v.string():optional() },
  { "rateLimit", rate_limit():optional() },
  { "rateLimitWindow", v.enum(WINDOWS):optional() },
  { "conditions", conditions():optional() },
})

local PATCH = v.object({
  { "name", v.string():trim():min(1):max(255):optional() },
  { "hostPattern", v.string():trim():min(1):max(1000):optional() },
  { "pathPattern", v.string():max(1000):optional():nullable() },
  { "method", v.enum(METHODS):optional():nullable() },
  { "action", v.enum(ACTIONS):optional() },
  { "enabled", v.boolean():optional() },
  { "agentId", v.string():optional():nullable() },
  { "rateLimit", rate_limit():optional():nullable() },
  { "rateLimitWindow", v.enum(WINDOWS):optional():nullable() },
  { "conditions", conditions():optional():nullable() },
})

local function permissions_schema(permissions)
  return v.object({
    { "changes", v.array(v.object({
      { "toolId", v.string():min(1) },
      { "permission", v.enum(permissions) },
    })):min(1) },
    { "conditions", conditions():optional() },
    { "agentId", v.string():optional() },
  })
end

local PERMISSIONS = permissions_schema({ "allow", "manual_approval", "block", "inherit" })
local ORG_PERMISSIONS = permissions_schema({ "allow", "manual_approval", "block" })

-- Organization rules have no agentId (zod drops the unknown key).
local function without_agent(schema)
  local shape = {}
  for _, field in ipairs(schema.shape) do
    if field[1] ~= "agentId" then shape[#shape + 1] = field end
  end
  return v.object(shape)
end

local ORG_CREATE = without_agent(CREATE)
local ORG_PATCH = without_agent(PATCH)

local function holder(ctx, scope)
  if scope == ORG then return ctx.org end
  return ctx.state
end

local function nn(x) if x == nil then return null end return x end

local function is_app_permission(r)
  return r.metadata ~= nil and r.metadata.source == "app_permission"
end

local function is_blocklist(r)
  return r.metadata ~= nil and r.metadata.type == "blocklist"
end

local function full(r)
  local perm = is_app_permission(r)
  return obj("id", r.id, "name", r.name,
    "hostPattern", not perm and r.host_pattern or nil,
    "pathPattern", not perm and nn(r.path_pattern) or nil,
    "method", not perm and nn(r.method) or nil,
    "action", r.action, "enabled", r.enabled, "agentId", nn(r.agent_id),
    "rateLimit", nn(r.rate_limit), "rateLimitWindow", nn(r.rate_limit_window), "scope", r.scope or "project",
    "metadata", nn(r.metadata), "conditions", nn(r.conditions), "createdAt", r.created_at)
end

local function created_shape(r)
  return obj("id", r.id, "name", r.name, "hostPattern", r.host_pattern, "pathPattern", nn(r.path_pattern),
    "method", nn(r.method), "action", r.action, "enabled", r.enabled, "agentId", nn(r.agent_id),
    "rateLimit", nn(r.rate_limit), "rateLimitWindow", nn(r.rate_limit_window),
    "conditions", nn(r.conditions), "createdAt", r.created_at)
end

local function non_empty(list)
  if list == nil or list == null or #list == 0 then return nil end
  return list
end

-- A project sees its own rules plus the organization's (inherited).
local function list(ctx, scope)
  local rules
  if scope == ORG then rules = store.newest_first(ctx.org.rules) else rules = store.with_org(ctx.state, "rules") end
  local out = array()
  for _, r in ipairs(rules) do out[#out + 1] = full(r) end
  return reply.ok(out)
end

local function create(ctx, scope)
  local ok, body = (scope == ORG and ORG_CREATE or CREATE):parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local rl = body.action == "rate_limit"
  if rl and (body.rateLimit == nil or body.rateLimitWindow == nil) then
    return reply.flat(400, "rateLimit and rateLimitWindow are required when action is rate_limit")
  end
  if body.agentId and not store.find(ctx.state.agents, body.agentId) then
    return reply.not_found("Agent not found")
  end
  local h = holder(ctx, scope)
  local r = {
    id = util.uuid4(), seq = store.next_seq(h), created_at = util.iso(),
    name = body.name, host_pattern = body.hostPattern, path_pattern = body.pathPattern,
    method = body.method, action = body.action, enabled = body.enabled, agent_id = body.agentId,
    rate_limit = rl and body.rateLimit or nil, rate_limit_window = rl and body.rateLimitWindow or nil,
    conditions = non_empty(body.conditions), scope = scope == ORG and ORG or "project",
  }
  h.rules[#h.rules + 1] = r
  return reply.created(created_shape(r))
end

local function get_one(ctx, scope)
  local r = store.find(holder(ctx, scope).rules, ctx.params.id)
  if not r then return reply.not_found("Policy rule not found") end
  return reply.ok(full(r))
end

local FIELD_MAP = {
  name = "name", hostPattern = "host_pattern", pathPattern = "path_pattern", method = "method",
  action = "action", enabled = "enabled", agentId = "agent_id", rateLimit = "rate_limit",
  rateLimitWindow = "rate_limit_window", conditions = "conditions",
}

local function patch(ctx, scope)
  local ok, body = (scope == ORG and ORG_PATCH or PATCH):parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if #json.keys(body) == 0 then return reply.flat(400, "At least one field must be provided") end
  local r = store.find(holder(ctx, scope).rules, ctx.params.id)
  if not r then return reply.not_found("Policy rule not found") end
  if is_app_permission(r) then return reply.bad_request(APP_PERMISSION_MSG) end
  if body.agentId and body.agentId ~= null and not store.find(ctx.state.agents, body.agentId) then
    return reply.not_found("Agent not found")
  end
  local changes = {}
  for k, field in pairs(FIELD_MAP) do
    if body[k] == null then changes[field] = CLEAR
    elseif body[k] ~= nil then changes[field] = body[k] end
  end
  local function value(field)
    local x = changes[field]
    if x == CLEAR then return nil end
    if x == nil then return r[field] end
    return x
  end
  local action = value("action")
  if action == "rate_limit" and (value("rate_limit") == nil or value("rate_limit_window") == nil) then
    return reply.bad_request("Rate limit rules require a rate limit and window")
  end
  local boxed = {}
  for _, field in pairs(FIELD_MAP) do boxed[field] = { value(field) } end
  for field, box in pairs(boxed) do r[field] = box[1] end
  r.conditions = non_empty(r.conditions)
  if action ~= "rate_limit" then r.rate_limit, r.rate_limit_window = nil, nil end
  return reply.success()
end

local function delete(ctx, scope)
  if not store.remove(holder(ctx, scope).rules, ctx.params.id) then
    return reply.not_found("Policy rule not found")
  end
  return reply.no_content()
end

------------------------------------------------------------------------------
-- App permissions
------------------------------------------------------------------------------

local function permission_rows(h, provider)
  local rows = {}
  for _, r in ipairs(h.rules) do
    if is_app_permission(r) and not is_blocklist(r) and r.metadata.provider == provider then rows[#rows + 1] = r end
  end
  return rows
end

local function get_permissions(ctx, scope)
  local defaults, by_agent = obj(), obj()
  for _, r in ipairs(permission_rows(holder(ctx, scope), ctx.params.provider)) do
    local entry = obj("permission", r.action, "conditions", r.conditions or array())
    if r.agent_id then
      if not by_agent[r.agent_id] then json.set(by_agent, r.agent_id, obj()) end
      json.set(by_agent[r.agent_id], r.metadata.toolId, entry)
    else
      json.set(defaults, r.metadata.toolId, entry)
    end
  end
  return reply.ok(obj("defaults", defaults, "byAgent", by_agent))
end

local function find_row(rows, agent_id, tool)
  for _, r in ipairs(rows) do
    if r.agent_id == agent_id and r.metadata.toolId == tool then return r end
  end
  return nil
end

local function validate_changes(ctx, body, tools, scope)
  local known = {}
  for _, t in ipairs(tools) do known[t] = true end
  for _, change in ipairs(body.changes) do
    if not known[change.toolId] then return reply.flat(400, "Unknown tool: " .. change.toolId) end
  end
  if scope == ORG and body.agentId then
    return reply.bad_request("Organization app permissions cannot target an agent")
  end
  if body.agentId and not store.find(ctx.state.agents, body.agentId) then
    return reply.not_found("Agent not found")
  end
  for _, change in ipairs(body.changes) do
    if change.permission == "inherit" and not body.agentId then
      return reply.bad_request("Only agent-scoped app permissions can be set to inherit")
    end
  end
  return nil
end

-- Without agentId the organization's default posture (allow-mode "allow",
-- deny-mode "block") is stored as no row at all.
local function apply_change(ctx, scope, provider, body, change, counts)
  local h = holder(ctx, scope)
  local rows = permission_rows(h, provider)
  local row = find_row(rows, body.agentId, change.toolId)
  local posture = ctx.org.settings.policy_mode == "deny" and "block" or "allow"
  local clear = change.permission == "inherit" or (not body.agentId and change.permission == posture)
  if clear then
    if row then store.remove(h.rules, row.id); counts.deleted = counts.deleted + 1 end
    return
  end
  if row then
    row.action, row.conditions = change.permission, non_empty(body.conditions)
    counts.updated = counts.updated + 1
    return
  end
  local app = catalog.find(provider, ctx.mode, ctx.edition)
  h.rules[#h.rules + 1] = {
    id = util.uuid4(), seq = store.next_seq(h), created_at = util.iso(),
    name = (app and app.name or provider) .. ": " .. change.toolId,
    action = change.permission, enabled = true, agent_id = body.agentId,
    conditions = non_empty(body.conditions), scope = scope == ORG and ORG or "project",
    metadata = obj("source", "app_permission", "provider", provider, "toolId", change.toolId),
  }
  counts.created = counts.created + 1
end

local function put_permissions(ctx, scope)
  local provider = ctx.params.provider
  local tools = catalog.permissions[provider]
  if not tools then return reply.flat(400, "No permission definition for provider: " .. provider) end
  local ok, body = (scope == ORG and ORG_PERMISSIONS or PERMISSIONS):parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local err = validate_changes(ctx, body, tools, scope)
  if err then return err end
  local counts = { created = 0, updated = 0, deleted = 0 }
  for _, change in ipairs(body.changes) do apply_change(ctx, scope, provider, body, change, counts) end
  return reply.ok(obj("created", counts.created, "updated", counts.updated, "deleted", counts.deleted))
end

-- Enabled custom rules whose host is one of the app's hosts (0 for an
-- unknown provider). A project counts the organization's rules too.
local function overlap(ctx, scope)
  local hosts = {}
  for _, host in ipairs(catalog.hosts[ctx.params.provider] or {}) do hosts[host] = true end
  local rules = scope == ORG and ctx.org.rules or store.with_org(ctx.state, "rules")
  local n = 0
  for _, r in ipairs(rules) do
    if r.enabled and not is_app_permission(r) and hosts[(r.host_pattern or ""):lower()] then n = n + 1 end
  end
  return reply.ok(obj("count", n))
end

local P = "project"

local function project(fn) return function(ctx) return fn(ctx, nil) end end

local routes = {
  { mode = "v1", method = "GET", pattern = "/rules", auth = P, handler = project(list), body = false },
  { mode = "v1", method = "POST", pattern = "/rules", auth = P, handler = project(create) },
  { mode = "v1", method = "GET", pattern = "/rules/permissions/:provider", auth = P,
    handler = project(get_permissions), body = false },
  { mode = "v1", method = "PUT", pattern = "/rules/permissions/:provider", auth = P,
    handler = project(put_permissions) },
  { mode = "v1", method = "GET", pattern = "/rules/overlap/:provider", auth = P, handler = project(overlap),
    body = false },
  { mode = "v1", method = "GET", pattern = "/rules/:id", auth = P, handler = project(get_one), body = false },
  { mode = "v1", method = "PATCH", pattern = "/rules/:id", auth = P, handler = project(patch) },
  { mode = "v1", method = "DELETE", pattern = "/rules/:id", auth = P, handler = project(delete), body = false },
  { mode = "v2", method = "*", pattern = "/rules", auth = "none", gone = GONE },
  { mode = "v2", method = "*", pattern = "/rules/*", auth = "none", gone = GONE },
  { mode = "v2", method = "*", pattern = "/rules/overlap/:provider", auth = "none", gone = GONE_OVERLAP },
  { mode = "v2", method = "*", pattern = "/rules/permissions/:provider", auth = "none", gone = GONE_PERMISSIONS },
  -- the v1.42-1.43 workspace policy API
  { mode = "v2", method = "*", pattern = "/policy/rules/order", auth = "none",
    gone = gone_policy("PUT /v1/policy/rules/order") },
  { mode = "v2", method = "*", pattern = "/policy/rules/:id", auth = "none",
    gone = gone_policy("/v1/policy/rules/:ruleId") },
  { mode = "v2", method = "*", pattern = "/policy/rules", auth = "none", gone = gone_policy("/v1/policy/rules") },
  { mode = "v2", method = "*", pattern = "/policy/default", auth = "none", gone = gone_policy("/v1/policy/default") },
  { mode = "v2", method = "*", pattern = "/policy/publish", auth = "none",
    gone = gone_policy("POST /v1/policy/publish") },
  { mode = "v2", method = "*", pattern = "/policy/last-publish", auth = "none",
    gone = gone_policy("GET /v1/policy/last-publish") },
}

routes.scoped = {
  list = list, create = create, get_one = get_one, patch = patch, delete = delete,
  get_permissions = get_permissions, put_permissions = put_permissions, overlap = overlap,
}

return routes
