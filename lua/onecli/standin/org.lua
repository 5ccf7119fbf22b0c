-- Organization-level routes (reference §6.15, §8.2, §8.3).
--
--   v1, cloud edition only (the open-source v1 server answers 404 there):
--     /projects*, /team/provisions, /org/secrets*, /org/rules* (incl.
--     permissions and overlap), /org/connections*, /org/apps/*, /org/settings.
--     /workspaces* does not exist (404 Unrecognized request URL).
--   v2: /workspaces* (and /projects* as a deprecated alias), /team/provisions
--     (Enterprise: "Member provisioning" licence gate),
--     /org/secrets*, /org/connections*, /org/apps/*; /org/rules* and
--     /org/settings answer 410 (the org policy API is onecli.standin.policy).
--
-- "admin" routes need the organization key (a project key gets 403);
-- workspaces and provisions take any valid key (its user owns the org).
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")
local secrets = require("onecli.standin.secrets").scoped
local rules = require("onecli.standin.rules").scoped
local apps = require("onecli.standin.apps").scoped
local blocklist = require("onecli.standin.blocklist").scoped

local obj, array = json.obj, json.array
local ipairs, format, gettime = ipairs, string.format, require("onecli.standin.socket").gettime

local ORG = "organization"

-- v2.0.1 tombstones (the real removed-routes.ts wording).
local ORG_REPLACEMENT = "Use /v1/org/policy: one first-match rule set covering blocks, allows, rate limits, "
  .. "approvals and app permissions."
local GONE_ORG_RULES = "/v1/org/rules was removed. " .. ORG_REPLACEMENT
local GONE_ORG_SETTINGS = "/v1/org/settings was removed: the allow/deny posture is the scope's Default Rule. "
  .. ORG_REPLACEMENT

------------------------------------------------------------------------------
-- Projects / workspaces
------------------------------------------------------------------------------

local function noun(ctx) return ctx.mode == "v1" and "project" or "workspace" end

local NAME = v.object({
  { "name", v.string():trim():min(2):max(50)
    :refine(function(s) return s:find("%w") ~= nil end, "Name must contain a letter or number") },
})

local function project_shape(p)
  return obj("id", p.id, "name", p.name, "slug", p.slug, "createdAt", p.created_at)
end

local function find_project(ctx)
  local p = store.find(ctx.org.projects, ctx.params.id)
  if p then return p end
  local n = noun(ctx)
  return nil, reply.not_found(n:sub(1, 1):upper() .. n:sub(2) .. " not found")
end

local function slug_taken(ctx, slug, except)
  for _, p in ipairs(ctx.org.projects) do
    if p.slug == slug and p ~= except then
      return reply.conflict(format('A %s with slug "%s" already exists', noun(ctx), slug))
    end
  end
  return nil
end

local function list_projects(ctx)
  local out = array()
  for i, p in ipairs(ctx.org.projects) do out[i] = project_shape(p) end
  return reply.ok(out)
end

local function create_project(ctx)
  local ok, body = NAME:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local err = slug_taken(ctx, store.slugify(body.name))
  if err then return err end
  local p = store.add_project(ctx.org, { name = body.name })
  local shape = project_shape(p)
  json.set(shape, "apiKey", p.api_key)
  return reply.created(shape)
end

local function get_project(ctx)
  local p, err = find_project(ctx)
  if not p then return err end
  return reply.ok(project_shape(p))
end

local function update_project(ctx)
  local ok, body = NAME:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local p, err = find_project(ctx)
  if not p then return err end
  local slug = store.slugify(body.name)
  err = slug_taken(ctx, slug, p)
  if err then return err end
  p.name, p.slug = body.name, slug
  return reply.ok(project_shape(p))
end

local function delete_project(ctx)
  local p, err = find_project(ctx)
  if not p then return err end
  if #ctx.org.projects == 1 then
    return reply.bad_request(format("Cannot delete the only %s in the organization", noun(ctx)))
  end
  store.remove(ctx.org.projects, p.id)
  for key, id in pairs(ctx.org.member_keys) do
    if id == p.id then ctx.org.member_keys[key] = nil end
  end
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Team provisions
------------------------------------------------------------------------------

local PROVISION = v.object({
  { "role", v.enum({ "admin", "member" }):optional() },
  { "skipOnboarding", v.boolean():optional() },
})

local function provision(ctx)
  local body = ctx.body
  if body == json.null then body = json.obj() end
  local ok, parsed = PROVISION:parse(body)
  if not ok then return reply.flat(400, parsed) end
  local project = ctx.project or ctx.state
  local key = store.new_api_key()
  ctx.org.member_keys[key] = project.id
  local base = ctx.mode == "v1" and "https://app.onecli.sh" or "http://127.0.0.1:10254"
  -- kept for POST /provisions/claim (v2, onecli.standin.enterprise)
  local p = { id = util.uuid4(), user_id = util.uuid4(), project_id = project.id, token = util.hex(32),
    expires_at_t = gettime() + 7 * 86400 }
  ctx.org.provisions = ctx.org.provisions or {}
  ctx.org.provisions[#ctx.org.provisions + 1] = p
  return reply.created(obj("id", p.id, "userId", p.user_id, "projectId", project.id, "apiKey", key,
    "claimUrl", base .. "/claim/" .. p.token, "expiresAt", util.iso(p.expires_at_t)))
end

------------------------------------------------------------------------------
-- Organization settings (v1 cloud)
------------------------------------------------------------------------------

local SETTINGS = v.object({ { "policyMode", v.enum({ "allow", "deny" }) } })

local function get_settings(ctx)
  return reply.ok(obj("policyMode", ctx.org.settings.policy_mode))
end

local function patch_settings(ctx)
  local ok, body = SETTINGS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  ctx.org.settings.policy_mode = body.policyMode
  return reply.ok(obj("policyMode", body.policyMode))
end

------------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------------

local function org(fn) return function(ctx) return fn(ctx, ORG) end end

local A, U = "admin", "user"

local routes = {}

local function add(route) routes[#routes + 1] = route end

-- v1 cloud: /projects; v2: /workspaces plus the deprecated /projects alias.
local function project_routes(prefix, extra)
  local list = {
    { method = "GET", pattern = prefix, handler = list_projects, body = false },
    { method = "POST", pattern = prefix, handler = create_project },
    { method = "GET", pattern = prefix .. "/:id", handler = get_project, body = false },
    { method = "PATCH", pattern = prefix .. "/:id", handler = update_project },
    { method = "DELETE", pattern = prefix .. "/:id", handler = delete_project, body = false },
  }
  for _, r in ipairs(list) do
    r.auth = U
    for k, val in pairs(extra) do r[k] = val end
    add(r)
  end
end

project_routes("/projects", { mode = "v1", edition = "cloud" })
project_routes("/workspaces", { mode = "v2" })
project_routes("/projects", { mode = "v2", deprecated = true })

local C = "cloud"

-- team provisions: v1 cloud; v2 behind the Enterprise licence (reference §14.9)
add({ mode = "v1", edition = "cloud", method = "POST", pattern = "/team/provisions", auth = U, handler = provision })
add({ mode = "v2", ee = "Member provisioning", method = "POST", pattern = "/team/provisions", auth = U,
  handler = provision })

for _, r in ipairs({
  -- organization secrets
  { method = "GET", pattern = "/org/secrets", auth = A, handler = org(secrets.list), body = false },
  { method = "POST", pattern = "/org/secrets", auth = A, handler = org(secrets.create) },
  { method = "PATCH", pattern = "/org/secrets/:id", auth = A, handler = org(secrets.patch) },
  { method = "DELETE", pattern = "/org/secrets/:id", auth = A, handler = org(secrets.delete), body = false },
  -- organization connections
  { method = "GET", pattern = "/org/connections", auth = A, handler = org(apps.list_connections), body = false },
  { method = "PATCH", pattern = "/org/connections/:id", auth = A, handler = org(apps.rename_connection) },
  { method = "DELETE", pattern = "/org/connections/:id", auth = A, handler = org(apps.delete_connection),
    body = false },
  -- organization apps
  { method = "GET", pattern = "/org/apps/configured", auth = A, handler = org(apps.configured), body = false },
  { method = "GET", pattern = "/org/apps/:provider/authorize", auth = A, handler = org(apps.authorize),
    body = false },
  { method = "POST", pattern = "/org/apps/:provider/connect", auth = A, handler = org(apps.connect) },
  { method = "GET", pattern = "/org/apps/:provider/config", auth = A, handler = org(apps.get_config), body = false },
  { method = "POST", pattern = "/org/apps/:provider/config", auth = A, handler = org(apps.post_config) },
  { method = "DELETE", pattern = "/org/apps/:provider/config", auth = A, handler = org(apps.delete_config),
    body = false },
  { method = "PATCH", pattern = "/org/apps/:provider/config/toggle", auth = A, handler = org(apps.toggle_config) },
  { method = "GET", pattern = "/org/apps/:provider/blocklist", auth = A, handler = org(blocklist.list),
    body = false },
  { method = "POST", pattern = "/org/apps/:provider/blocklist", auth = A, handler = org(blocklist.create) },
  { method = "PATCH", pattern = "/org/apps/:provider/blocklist/:ruleId", auth = A, handler = org(blocklist.update) },
  { method = "DELETE", pattern = "/org/apps/:provider/blocklist/:ruleId", auth = A, handler = org(blocklist.delete),
    body = false },
}) do
  r.edition = C
  add(r)
end

-- v1 cloud: organization rules and settings
for _, r in ipairs({
  { method = "GET", pattern = "/org/rules", handler = org(rules.list), body = false },
  { method = "POST", pattern = "/org/rules", handler = org(rules.create) },
  { method = "GET", pattern = "/org/rules/permissions/:provider", handler = org(rules.get_permissions),
    body = false },
  { method = "PUT", pattern = "/org/rules/permissions/:provider", handler = org(rules.put_permissions) },
  { method = "GET", pattern = "/org/rules/overlap/:provider", handler = org(rules.overlap), body = false },
  { method = "GET", pattern = "/org/rules/:id", handler = org(rules.get_one), body = false },
  { method = "PATCH", pattern = "/org/rules/:id", handler = org(rules.patch) },
  { method = "DELETE", pattern = "/org/rules/:id", handler = org(rules.delete), body = false },
  { method = "GET", pattern = "/org/settings", handler = get_settings, body = false },
  { method = "PATCH", pattern = "/org/settings", handler = patch_settings },
}) do
  r.mode, r.edition, r.auth = "v1", C, A
  add(r)
end

-- v2 tombstones (no auth, like /rules)
add({ mode = "v2", method = "*", pattern = "/org/rules", auth = "none", gone = GONE_ORG_RULES })
add({ mode = "v2", method = "*", pattern = "/org/rules/*", auth = "none", gone = GONE_ORG_RULES })
add({ mode = "v2", method = "*", pattern = "/org/settings", auth = "none", gone = GONE_ORG_SETTINGS })
add({ mode = "v2", method = "*", pattern = "/org/settings/*", auth = "none", gone = GONE_ORG_SETTINGS })

return routes
