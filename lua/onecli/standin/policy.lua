-- v2 organization policy API (reference §8.3; captures org-policy-rules-*;
-- semantics of the server's policy routes and service):
--
--   GET    /org/policy/rules[?status=draft|published]   (default draft)
--   POST   /org/policy/rules                             201 rule
--   PUT    /org/policy/rules/order  {orderedIds: [...]}  every draft rule once
--   GET/PATCH/DELETE /org/policy/rules/{id}              draft rules only
--   GET    /org/policy/default[?status=]  PATCH {action}  the Default Rule
--   POST   /org/policy/publish          {generation, ruleCount}
--   GET    /org/policy/last-publish     null until the first publish
--
-- Body errors are 422 validation_error envelopes (the first zod issue).
-- Edits change the draft; publishing snapshots every draft rule (and the
-- Default Rule) into a new published generation: same logicalId, new ids.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, pairs, sort = ipairs, pairs, table.sort

local NOT_FOUND = "Policy rule not found."
local MODIFIERS_MSG = "rate-limit and approval modifiers require action = allow"
local PAIR_MSG = "rateLimit and rateLimitWindow must be provided together"
local SESSION_TARGET_MSG = "resource scoping (repositories/folders) requires a connection target"
local SESSION_ALLOW_MSG = "resource scoping (repositories/folders) applies only to Allow rules"
local NO_TARGET_MSG = "A rule must name at least one target."
local ORG_AGENT_MSG = "An organization rule targets agent-groups, users, or user-groups — not a specific agent."
local IDENTITY_MSG = "A referenced identity does not belong to this organization."
local RESOURCE_MSG = "A referenced connection or secret does not belong to this organization."
local SECRET_XOR_MSG = "A secret target must name either a specific secret or a level, not both."
local STALE_MSG = "Rule set changed — refresh and try again."

local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE" }
local LEVELS = { "organization", "project" }

local function nn(x) if x == nil then return null end return x end

------------------------------------------------------------------------------
-- Schemas
------------------------------------------------------------------------------

local CONDITION = v.object({
  { "target", v.literal("body") },
  { "operator", v.literal("contains") },
  { "value", v.string():min(1):max(1000) },
  { "key", v.string():max(500):optional() },
})

-- A discriminated union: an unknown discriminator is zod's "Invalid input".
local function tagged(tag, variants)
  return v.custom(function(value)
    if typeof(value) ~= "object" then return false, "Invalid input: expected object, received " .. typeof(value) end
    local schema = variants[value[tag]]
    if not schema then return false, "Invalid input" end
    return schema:parse(value)
  end, "object")
end

local function principal(kind)
  return v.object({ { "type", v.literal(kind) }, { "id", v.string():min(1) } })
end

local IDENTITY = tagged("type", { agent = principal("agent"), user = principal("user"), group = principal("group") })

local function tools() return v.array(v.string():min(1)):max(100):optional() end

local TARGET = tagged("kind", {
  app = v.object({
    { "kind", v.literal("app") }, { "provider", v.string():min(1):max(255) }, { "tools", tools() },
    { "connectionScope", v.enum(LEVELS):optional() },
  }),
  connection = v.object({
    { "kind", v.literal("connection") }, { "connectionId", v.string():min(1) }, { "tools", tools() },
  }),
  secret = v.object({
    { "kind", v.literal("secret") }, { "secretId", v.string():min(1):optional() },
    { "secretScope", v.enum(LEVELS):optional() },
  }),
  network = v.object({
    { "kind", v.literal("network") }, { "hostPattern", v.string():min(1):max(1000) },
    { "pathPattern", v.string():max(1000):optional() }, { "method", v.enum(METHODS):optional() },
  }),
})

local function strict_list(name, max)
  return v.object({ { name, v.array(v.string():min(1):max(max)):max(name == "folders" and 100 or 1000) } },
    { strict = true })
end

-- conditions: behavioral RuleCondition[] (<= 10) or a session policy object.
local CONDITIONS = v.union({
  v.array(CONDITION):max(10), strict_list("repositories", 400), strict_list("folders", 1024),
})

local function is_session_policy(c) return typeof(c) == "object" end

local function fields(update)
  local function opt(s) return s:optional() end
  local function maybe_null(s) if update then return s:nullable():optional() end return s:optional() end
  return {
    { "name", update and opt(v.string():trim():min(1):max(255)) or v.string():trim():min(1):max(255) },
    { "description", maybe_null(v.string():max(1000)) },
    { "enabled", opt(v.boolean()) },
    { "action", update and opt(v.enum({ "allow", "block" })) or v.enum({ "allow", "block" }) },
    { "rateLimit", maybe_null(v.int():min(1):max(1000000)) },
    { "rateLimitWindow", maybe_null(v.enum({ "minute", "hour", "day" })) },
    { "requireApproval", opt(v.boolean()) },
    { "conditions", maybe_null(CONDITIONS) },
    { "identities", opt(v.array(IDENTITY):max(100)) },
    { "targets", opt(v.array(TARGET):max(100)) },
  }
end

local CREATE = v.object(fields(false))
local PATCH = v.object(fields(true))
local ORDER = v.object({ { "orderedIds", v.array(v.string():min(1)):min(1) } })
local DEFAULT = v.object({ { "action", v.enum({ "allow", "block" }) } })
local STATUS = v.enum({ "draft", "published" })

local function present(x) return x ~= nil and x ~= null end

-- The create schema's refinements, in declaration order.
local function refine_create(b)
  if b.action == "block" and (present(b.rateLimit) or present(b.rateLimitWindow) or b.requireApproval) then
    return MODIFIERS_MSG
  end
  if present(b.rateLimit) ~= present(b.rateLimitWindow) then return PAIR_MSG end
  if is_session_policy(b.conditions) then
    local has_connection = false
    for _, t in ipairs(b.targets or {}) do
      if t.kind == "connection" then has_connection = true end
    end
    if not has_connection then return SESSION_TARGET_MSG end
  end
  return nil
end

------------------------------------------------------------------------------
-- Service checks (identities, targets)
------------------------------------------------------------------------------

local function check_identities(ctx, identities)
  for _, i in ipairs(identities or {}) do
    if i.type == "agent" then return ORG_AGENT_MSG end
  end
  for _, i in ipairs(identities or {}) do
    if i.type == "group" or (i.type == "user" and i.id ~= ctx.org.user.id) then return IDENTITY_MSG end
  end
  return nil
end

-- An organization rule names organization-level connections and secrets only.
local function check_targets(ctx, targets)
  for _, t in ipairs(targets) do
    if t.kind == "secret" and present(t.secretId) == present(t.secretScope) then return SECRET_XOR_MSG end
  end
  for _, t in ipairs(targets) do
    if t.kind == "connection" and not store.find(ctx.org.connections, t.connectionId) then return RESOURCE_MSG end
    if t.kind == "secret" and t.secretId and not store.find(ctx.org.secrets, t.secretId) then return RESOURCE_MSG end
  end
  return nil
end

local function target_shape(t)
  if t.kind == "app" then
    return obj("kind", "app", "provider", t.provider, "tools", array(t.tools or {}),
      "connectionScope", nn(t.connectionScope))
  elseif t.kind == "connection" then
    return obj("kind", "connection", "connectionId", t.connectionId, "tools", array(t.tools or {}))
  elseif t.kind == "secret" then
    return obj("kind", "secret", "secretId", nn(t.secretId), "secretScope", nn(t.secretScope))
  end
  return obj("kind", "network", "hostPattern", t.hostPattern, "pathPattern", nn(t.pathPattern), "method", nn(t.method))
end

-- Stored identities/targets, duplicates dropped like the real service.
local function store_identities(list)
  local out, seen = {}, {}
  for _, i in ipairs(list or {}) do
    local key = i.type .. ":" .. i.id
    if not seen[key] then seen[key] = true; out[#out + 1] = obj("type", i.type, "id", i.id) end
  end
  return out
end

local function store_targets(list)
  local out, seen = {}, {}
  for _, t in ipairs(list or {}) do
    local key = (t.kind == "connection" and "c:" .. t.connectionId) or (t.kind == "secret" and t.secretId
      and "s:" .. t.secretId) or nil
    if not key or not seen[key] then
      if key then seen[key] = true end
      out[#out + 1] = target_shape(t)
    end
  end
  return out
end

------------------------------------------------------------------------------
-- Shapes and state
------------------------------------------------------------------------------

local function shape(r)
  return obj("id", r.id, "scope", "organization", "status", r.status, "generation", r.generation,
    "priority", r.priority, "enabled", r.enabled, "isDefault", r.is_default == true, "logicalId", r.logical_id,
    "source", r.source, "name", r.name, "description", nn(r.description), "action", r.action,
    "rateLimit", nn(r.rate_limit), "rateLimitWindow", nn(r.rate_limit_window),
    "requireApproval", r.require_approval, "conditions", nn(r.conditions),
    "identities", array(r.identities), "targets", array(r.targets), "createdAt", r.created_at)
end

local function by_priority(list)
  local out = {}
  for i, r in ipairs(list) do out[i] = r end
  sort(out, function(a, b)
    if a.priority ~= b.priority then return a.priority < b.priority end
    return a.id < b.id
  end)
  return out
end

-- New organizations deny by default: a computed Default Rule until one is
-- persisted (id "" = virtual).
local function virtual_default()
  return { id = "", logical_id = "", status = "draft", generation = 0, priority = 0, enabled = true,
    is_default = true, source = "default", name = "Default Rule", action = "block", require_approval = false,
    identities = {}, targets = {}, created_at = util.iso(0) }
end

local function ensure_default(ctx)
  local policy = ctx.org.policy
  if not policy.default_rule then
    local r = virtual_default()
    r.id, r.logical_id, r.created_at, r.seq = util.uuid4(), util.uuid4(), util.iso(), store.next_seq(ctx.org)
    policy.default_rule = r
  end
  return policy.default_rule
end

local function draft(ctx, id)
  return store.find(ctx.org.policy.rules, id)
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

local function parse_status(ctx)
  local raw = ctx.query.status
  if raw == nil then return true, "draft" end
  return STATUS:parse(raw)
end

local function list(ctx)
  local ok, status = parse_status(ctx)
  if not ok then return reply.unprocessable(status) end
  local policy = ctx.org.policy
  local out = array()
  for _, r in ipairs(by_priority(status == "published" and policy.published or policy.rules)) do
    out[#out + 1] = shape(r)
  end
  return reply.ok(out)
end

local function create(ctx)
  local ok, body = CREATE:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local msg = refine_create(body) or check_identities(ctx, body.identities)
  if msg then return reply.unprocessable(msg) end
  if not body.targets or #body.targets == 0 then return reply.unprocessable(NO_TARGET_MSG) end
  msg = check_targets(ctx, body.targets)
  if msg then return reply.unprocessable(msg) end
  if is_session_policy(body.conditions) and body.action ~= "allow" then
    return reply.unprocessable(SESSION_ALLOW_MSG)
  end
  local policy = ctx.org.policy
  local top = 0
  for _, r in ipairs(policy.rules) do
    if r.priority > top then top = r.priority end
  end
  local r = {
    id = util.uuid4(), logical_id = util.uuid4(), seq = store.next_seq(ctx.org), created_at = util.iso(),
    status = "draft", generation = 0, priority = top + 1, is_default = false, source = "custom",
    enabled = body.enabled ~= false, name = body.name, description = body.description,
    action = body.action, rate_limit = body.rateLimit, rate_limit_window = body.rateLimitWindow,
    require_approval = body.requireApproval == true, conditions = body.conditions,
    identities = store_identities(body.identities), targets = store_targets(body.targets),
  }
  policy.rules[#policy.rules + 1] = r
  return reply.created(shape(r))
end

local function get_one(ctx)
  local r = draft(ctx, ctx.params.id)
  if not r then return reply.not_found(NOT_FOUND) end
  return reply.ok(shape(r))
end

local FIELD_MAP = {
  { "name", "name" }, { "description", "description" }, { "enabled", "enabled" }, { "action", "action" },
  { "rateLimit", "rate_limit" }, { "rateLimitWindow", "rate_limit_window" },
  { "requireApproval", "require_approval" }, { "conditions", "conditions" },
}

local function check_patch(ctx, r, body)
  local function merged(key, field)
    if body[key] == null then return nil end
    if body[key] ~= nil then return body[key] end
    return r[field]
  end
  local action = merged("action", "action")
  local rate, window = merged("rateLimit", "rate_limit"), merged("rateLimitWindow", "rate_limit_window")
  if action == "block" and (rate ~= nil or window ~= nil or merged("requireApproval", "require_approval")) then
    return MODIFIERS_MSG
  end
  if (rate == nil) ~= (window == nil) then return PAIR_MSG end
  if body.identities ~= nil then
    local msg = check_identities(ctx, body.identities)
    if msg then return msg end
  end
  if body.targets ~= nil then
    if #body.targets == 0 then return NO_TARGET_MSG end
    local msg = check_targets(ctx, body.targets)
    if msg then return msg end
  end
  local conditions = merged("conditions", "conditions")
  if is_session_policy(conditions) then
    if action ~= "allow" then return SESSION_ALLOW_MSG end
    local has_connection = false
    for _, t in ipairs(body.targets or r.targets) do
      if t.kind == "connection" then has_connection = true end
    end
    if not has_connection then return SESSION_TARGET_MSG end
  end
  return nil
end

local function patch(ctx)
  local ok, body = PATCH:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if #json.keys(body) == 0 then return reply.unprocessable("At least one field must be provided") end
  local r = draft(ctx, ctx.params.id)
  if not r then return reply.not_found(NOT_FOUND) end
  local msg = check_patch(ctx, r, body)
  if msg then return reply.unprocessable(msg) end
  for _, f in ipairs(FIELD_MAP) do
    local key, field = f[1], f[2]
    if body[key] == null then r[field] = nil elseif body[key] ~= nil then r[field] = body[key] end
  end
  if body.identities ~= nil then r.identities = store_identities(body.identities) end
  if body.targets ~= nil then r.targets = store_targets(body.targets) end
  return reply.ok(shape(r))
end

-- Deleting leaves a priority gap, like the real service.
local function delete(ctx)
  if not draft(ctx, ctx.params.id) then return reply.not_found(NOT_FOUND) end
  store.remove(ctx.org.policy.rules, ctx.params.id)
  return reply.no_content()
end

local function reorder(ctx)
  local ok, body = ORDER:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local rules = ctx.org.policy.rules
  local seen = {}
  for _, id in ipairs(body.orderedIds) do
    if seen[id] or not draft(ctx, id) then return reply.conflict(STALE_MSG) end
    seen[id] = true
  end
  if #body.orderedIds ~= #rules then return reply.conflict(STALE_MSG) end
  for i, id in ipairs(body.orderedIds) do draft(ctx, id).priority = i end
  return list(ctx)
end

local function get_default(ctx)
  local ok, status = parse_status(ctx)
  if not ok then return reply.unprocessable(status) end
  local policy = ctx.org.policy
  local r = status == "published" and policy.published_default or policy.default_rule
  return reply.ok(shape(r or virtual_default()))
end

local function set_default(ctx)
  local ok, body = DEFAULT:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local r = ensure_default(ctx)
  r.action = body.action
  return reply.ok(shape(r))
end

local function snapshot(ctx, r, generation)
  local copy = {}
  for k, val in pairs(r) do copy[k] = val end
  copy.id, copy.seq, copy.status, copy.generation, copy.created_at =
    util.uuid4(), store.next_seq(ctx.org), "published", generation, util.iso()
  return copy
end

local function publish(ctx)
  local policy = ctx.org.policy
  local default = ensure_default(ctx)
  policy.generation = policy.generation + 1
  local published = {}
  for _, r in ipairs(by_priority(policy.rules)) do published[#published + 1] = snapshot(ctx, r, policy.generation) end
  policy.published, policy.published_default = published, snapshot(ctx, default, policy.generation)
  local u = ctx.org.user
  policy.last_publish = {
    generation = policy.generation, rule_count = #published + 1, at = util.iso(),
    by = obj("name", u.name or null, "email", u.email),
  }
  return reply.ok(obj("generation", policy.generation, "ruleCount", #published + 1))
end

local function last_publish(ctx)
  local last = ctx.org.policy.last_publish
  if not last then return reply.ok(null) end
  return reply.ok(obj("generation", last.generation, "ruleCount", last.rule_count, "appliedAt", last.at,
    "appliedBy", last.by))
end

local routes = {
  { method = "GET", pattern = "/org/policy/rules", handler = list, body = false },
  { method = "POST", pattern = "/org/policy/rules", handler = create },
  { method = "PUT", pattern = "/org/policy/rules/order", handler = reorder },
  { method = "GET", pattern = "/org/policy/rules/:id", handler = get_one, body = false },
  { method = "PATCH", pattern = "/org/policy/rules/:id", handler = patch },
  { method = "DELETE", pattern = "/org/policy/rules/:id", handler = delete, body = false },
  { method = "GET", pattern = "/org/policy/default", handler = get_default, body = false },
  { method = "PATCH", pattern = "/org/policy/default", handler = set_default },
  { method = "POST", pattern = "/org/policy/publish", handler = publish, body = false },
  { method = "GET", pattern = "/org/policy/last-publish", handler = last_publish, body = false },
}

-- Admin role: any key of the organization's owner (the recordings used the
-- project key); no workspace needed.
for _, r in ipairs(routes) do r.mode, r.auth = "v2", "user" end

return routes
