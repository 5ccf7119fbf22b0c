-- Per-app blocked hosts: /apps/{provider}/blocklist[/{ruleId}] (reference
-- §6.8, shape §7.7, messages §9.5); the organization versions under
-- /org/apps/... use the `scoped` handlers (onecli.standin.org).
--
-- Entries are stored as rules (action "block") with metadata
-- {source="app_permission", type="blocklist", provider, hostId, custom?,
-- customName?}, so GET /v1/rules lists them like the real v1 server does.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs = ipairs

local ORG = "organization"

local function holder(ctx, scope)
  if scope == ORG then return ctx.org end
  return ctx.state
end

local function scope_name(ctx, scope)
  if scope == ORG then return "organization" end
  return ctx.mode == "v1" and "project" or "workspace"
end

local function is_blocklist(r, provider)
  return r.metadata ~= nil and r.metadata.type == "blocklist" and r.metadata.provider == provider
end

-- Blocklist rows of provider visible in the scope: { rule, scope } pairs,
-- the scope's own first (a project also sees the organization's).
local function rows(ctx, scope, provider)
  local out = {}
  local function collect(list, s)
    for _, r in ipairs(store.newest_first(list)) do
      if is_blocklist(r, provider) then out[#out + 1] = { rule = r, scope = s } end
    end
  end
  collect(holder(ctx, scope).rules, scope)
  if scope ~= ORG then collect(ctx.org.rules, ORG) end
  return out
end

local function row_shape(ctx, row)
  local r, m = row.rule, row.rule.metadata
  return obj("hostId", m.hostId, "ruleId", r.id, "enabled", r.enabled, "custom", m.custom == true,
    "name", m.customName or r.host_name, "hostPattern", r.host_pattern, "scope", scope_name(ctx, row.scope))
end

local function predefined(provider) return catalog.blocklist[provider] or {} end

local function find_host(provider, host_id)
  for _, h in ipairs(predefined(provider)) do
    if h.id == host_id then return h end
  end
  return nil
end

local function app_or_error(ctx)
  local app = catalog.find(ctx.params.provider, ctx.mode, ctx.edition)
  if not app then return nil, reply.flat(404, "Unknown provider") end
  return app
end

local function list(ctx, scope)
  local app, err = app_or_error(ctx)
  if not app then return err end
  local all = rows(ctx, scope, app.id)
  local out = array()
  for _, h in ipairs(predefined(app.id)) do
    local found
    for _, row in ipairs(all) do
      if row.rule.metadata.hostId == h.id then found = row; break end
    end
    if found then
      out[#out + 1] = row_shape(ctx, found)
    else
      out[#out + 1] = obj("hostId", h.id, "ruleId", null, "enabled", false, "custom", false, "name", h.name,
        "hostPattern", h.hostPattern, "scope", null)
    end
  end
  for _, row in ipairs(all) do
    if row.rule.metadata.custom then out[#out + 1] = row_shape(ctx, row) end
  end
  return reply.ok(out)
end

local function add_rule(ctx, scope, app, fields)
  local h = holder(ctx, scope)
  local r = {
    id = util.uuid4(), seq = store.next_seq(h), created_at = util.iso(),
    name = app.name .. ": block " .. fields.host, action = "block", enabled = true,
    host_pattern = fields.host, host_name = fields.name, scope = scope == ORG and ORG or "project",
    metadata = obj("source", "app_permission", "type", "blocklist", "provider", app.id, "hostId", fields.host_id,
      "custom", fields.custom or nil, "customName", fields.custom and fields.name or nil),
  }
  h.rules[#h.rules + 1] = r
  return { rule = r, scope = scope }
end

local function own_row(ctx, scope, provider, pred)
  for _, r in ipairs(holder(ctx, scope).rules) do
    if is_blocklist(r, provider) and pred(r) then return { rule = r, scope = scope } end
  end
  return nil
end

local function block_predefined(ctx, scope, app, host_id)
  local h = find_host(app.id, host_id)
  if not h then return reply.bad_request("Unknown blocklist host ID") end
  local row = own_row(ctx, scope, app.id, function(r) return r.metadata.hostId == host_id end)
  if row then
    row.rule.enabled = true
  else
    row = add_rule(ctx, scope, app, { host = h.hostPattern, name = h.name, host_id = h.id })
  end
  return reply.created(row_shape(ctx, row))
end

local function block_custom(ctx, scope, app, name, host)
  name, host = util.trim(name), util.trim(host)
  if name == "" or host == "" then return reply.bad_request("Name and host are required") end
  local taken = own_row(ctx, scope, app.id, function(r) return r.host_pattern:lower() == host:lower() end)
  if taken then return reply.conflict("This host is already blocked") end
  local row = add_rule(ctx, scope, app, { host = host, name = name, host_id = "custom:" .. host, custom = true })
  return reply.created(row_shape(ctx, row))
end

local function create(ctx, scope)
  local app, err = app_or_error(ctx)
  if not app then return err end
  local body = ctx.body
  if typeof(body) ~= "object" then return reply.flat(400, "Invalid request body") end
  if typeof(body.hostId) == "string" then return block_predefined(ctx, scope, app, body.hostId) end
  -- v2 (reference §14.12): a custom host is a policy rule now
  if ctx.mode == "v2" then return reply.flat(400, "Provide { hostId }") end
  if typeof(body.name) == "string" and typeof(body.hostPattern) == "string" then
    return block_custom(ctx, scope, app, body.name, body.hostPattern)
  end
  return reply.flat(400, "Provide either { hostId } or { name, hostPattern }")
end

local function find_rule(ctx, scope, provider)
  return own_row(ctx, scope, provider, function(r) return r.id == ctx.params.ruleId end)
end

-- The real route only checks that `enabled` is present; anything but a
-- boolean then fails in the database (500).
local function update(ctx, scope)
  local app, err = app_or_error(ctx)
  if not app then return err end
  local body = ctx.body
  if typeof(body) ~= "object" or body.enabled == nil then return reply.flat(400, "enabled is required") end
  local row = find_rule(ctx, scope, app.id)
  if not row then return reply.not_found("Blocklist rule not found") end
  if typeof(body.enabled) ~= "boolean" then
    return reply.envelope(500, "An unexpected error occurred.", "api_error")
  end
  row.rule.enabled = body.enabled
  return reply.success()
end

local function delete(ctx, scope)
  local app, err = app_or_error(ctx)
  if not app then return err end
  local row = find_rule(ctx, scope, app.id)
  if not row then return reply.not_found("Blocklist rule not found") end
  store.remove(holder(ctx, scope).rules, row.rule.id)
  return reply.no_content()
end

local P = "project"

local function project(fn) return function(ctx) return fn(ctx, nil) end end

local routes = {
  { method = "GET", pattern = "/apps/:provider/blocklist", auth = P, handler = project(list), body = false },
  { method = "POST", pattern = "/apps/:provider/blocklist", auth = P, handler = project(create) },
  { method = "PATCH", pattern = "/apps/:provider/blocklist/:ruleId", auth = P, handler = project(update) },
  { method = "DELETE", pattern = "/apps/:provider/blocklist/:ruleId", auth = P, handler = project(delete),
    body = false },
}

routes.scoped = { list = list, create = create, update = update, delete = delete }

return routes
