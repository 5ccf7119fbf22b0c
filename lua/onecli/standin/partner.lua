-- The partner API of OneCLI Cloud v1 (reference §6.15; removed in Aug 2026,
-- so v1 oss and v2 answer 404 Unrecognized request URL): v1 cloud edition only.
--
--   /org/partner/inherited-secrets (any key of an organization),
--   /org/partner/status, /org/partner/detach (organization key);
--   /partner/* (the partner key only, ctx.app.partner, see store.new_partner):
--     orgs (with claim links, key rotation, projects, secret budgets),
--     secrets (inline values only, like organization secrets), members.
--
-- A partner-created organization is a full organization table (store.new)
-- with a `partner` record { claimed, detached, project_id, budgets }; its
-- keys work at once (onecli.standin.api looks them up). A detached organization
-- no longer inherits the partner's secrets and is no longer the partner's
-- (404 on /partner/orgs/{id}); POST /__control/partner/claim {orgId} marks
-- one as claimed (then 403 on delete, claim-link, rotate-tokens).
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")
local secrets = require("onecli.standin.secrets").scoped

local obj, array = json.obj, json.array
local ipairs, format, setmetatable = ipairs, string.format, setmetatable

local ORG = "organization"
local CLAIM_BASE = "https://app.onecli.sh/claim/"

local NOT_MANAGED = "This organization is not managed by a partner"
local ALREADY_DETACHED = "This organization is already detached from its partner"
local ORG_NOT_FOUND = "Organization not found"

local function forbidden(message) return reply.envelope(403, message, "authentication_error") end

------------------------------------------------------------------------------
-- Partner secrets (the organization-secret handlers on the partner table)
------------------------------------------------------------------------------

local function partner_ctx(ctx)
  return setmetatable({ org = ctx.app.partner }, { __index = ctx })
end

-- Secret lists say scope "partner" (the handlers say "organization").
local function rescoped(res)
  if res.status ~= 200 then return res end
  local list = json.decode(res.body)
  for _, s in ipairs(list) do s.scope = "partner" end
  return reply.ok(list)
end

local function list_secrets(ctx) return rescoped(secrets.list(partner_ctx(ctx), ORG)) end
local function create_secret(ctx) return secrets.create(partner_ctx(ctx), ORG) end
local function patch_secret(ctx) return secrets.patch(partner_ctx(ctx), ORG) end

local function delete_secret(ctx)
  local res = secrets.delete(partner_ctx(ctx), ORG)
  if res.status == 204 then
    for _, o in ipairs(ctx.app.partner.orgs) do
      local budgets = o.partner.budgets
      for i = #budgets, 1, -1 do
        if budgets[i].secret_id == ctx.params.id then table.remove(budgets, i) end
      end
    end
  end
  return res
end

------------------------------------------------------------------------------
-- /org/partner/* (seen from an organization)
------------------------------------------------------------------------------

local function inherits(org) return org.partner ~= nil and not org.partner.detached end

local function inherited_secrets(ctx)
  if not inherits(ctx.org) then return reply.ok(array()) end
  return list_secrets(ctx)
end

local function status(ctx)
  local p = ctx.org.partner
  return reply.ok(obj("partnerManaged", p ~= nil, "detached", p ~= nil and p.detached))
end

local function detach(ctx)
  local p = ctx.org.partner
  if not p then return reply.bad_request(NOT_MANAGED) end
  if p.detached then return reply.bad_request(ALREADY_DETACHED) end
  p.detached = true
  return reply.success()
end

------------------------------------------------------------------------------
-- Managed organizations
------------------------------------------------------------------------------

local ORG_NAME = v.object({ { "name", v.string():trim():min(1):max(255) } })

local PROJECT_NAME = v.object({
  { "name", v.string():trim():min(2):max(50)
    :refine(function(s) return s:find("%w") ~= nil end, "Name must contain a letter or number") },
})

local function org_shape(o)
  return obj("id", o.id, "name", o.name, "claimed", o.partner.claimed, "createdAt", o.partner.created_at)
end

local function project_shape(p)
  return obj("id", p.id, "name", p.name, "slug", p.slug, "createdAt", p.created_at)
end

-- The partner's organization ctx.params.orgId (not detached), or nil, 404.
local function find_org(ctx)
  local o = store.find(ctx.app.partner.orgs, ctx.params.orgId)
  if not o or o.partner.detached then return nil, reply.not_found(ORG_NOT_FOUND) end
  return o
end

local function main_project(o)
  return store.find(o.projects, o.partner.project_id) or o.projects[1]
end

local function claim_url() return CLAIM_BASE .. util.hex(32) end

local function list_orgs(ctx)
  local out = array()
  for _, o in ipairs(ctx.app.partner.orgs) do
    if not o.partner.detached then out[#out + 1] = org_shape(o) end
  end
  return reply.ok(out)
end

local function create_org(ctx)
  local ok, body = ORG_NAME:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local o = store.new({
    mode = "v1", edition = "cloud", org_key = "oc_org_" .. util.hex(64), api_key = store.new_api_key(),
    project_id = util.lower_letters(16),
  })
  o.id, o.name = util.lower_letters(16), body.name
  o.user.id = util.uuid4()
  local project = o.projects[1]
  o.partner = { claimed = false, detached = false, created_at = util.iso(), project_id = project.id, budgets = {} }
  local partner = ctx.app.partner
  partner.orgs[#partner.orgs + 1] = o
  return reply.created(obj("organizationId", o.id, "projectId", project.id, "orgApiKey", o.org_key,
    "projectApiKey", project.api_key, "agentToken", store.default_agent(project).access_token,
    "claimUrl", claim_url()))
end

local function get_org(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  return reply.ok(org_shape(o))
end

local function delete_org(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  if o.partner.claimed then return forbidden("Cannot delete an organization that has been claimed") end
  store.remove(ctx.app.partner.orgs, o.id)
  return reply.no_content()
end

local function unclaimed(ctx)
  local o, err = find_org(ctx)
  if not o then return nil, err end
  if o.partner.claimed then return nil, forbidden("This organization has already been claimed") end
  return o
end

local function claim_link(ctx)
  local o, err = unclaimed(ctx)
  if not o then return err end
  return reply.ok(obj("claimUrl", claim_url()))
end

-- New organization key and main-project key; the old ones stop working.
local function rotate_tokens(ctx)
  local o, err = unclaimed(ctx)
  if not o then return err end
  local project = main_project(o)
  o.org_key, project.api_key = "oc_org_" .. util.hex(64), store.new_api_key()
  return reply.ok(obj("orgApiKey", o.org_key, "projectApiKey", project.api_key))
end

local function list_projects(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  local out = array()
  for i, p in ipairs(o.projects) do out[i] = project_shape(p) end
  return reply.ok(out)
end

local function create_project(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  local ok, body = PROJECT_NAME:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local slug = store.slugify(body.name)
  if store.find_by(o.projects, "slug", slug) then
    return reply.conflict(format('A project with slug "%s" already exists', slug))
  end
  return reply.created(project_shape(store.add_project(o, { name = body.name })))
end

local function delete_project(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  if not store.find(o.projects, ctx.params.projectId) then return reply.not_found("Project not found") end
  if #o.projects == 1 then return reply.bad_request("Cannot delete the only project in the organization") end
  store.remove(o.projects, ctx.params.projectId)
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Budgets of partner secrets in a managed organization
------------------------------------------------------------------------------

local BUDGET = v.object({
  { "limitCents", v.int():min(1):max(100000000) },
  { "period", v.enum({ "monthly", "total" }) },
})

local function budget_shape(o, b)
  return obj("secretId", b.secret_id, "organizationId", o.id, "limitCents", b.limit_cents, "period", b.period,
    "spentCents", 0)
end

local function list_budgets(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  local out = array()
  for i, b in ipairs(o.partner.budgets) do out[i] = budget_shape(o, b) end
  return reply.ok(out)
end

local function set_budget(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  local ok, body = BUDGET:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local id = ctx.params.secretId
  if not store.find(ctx.app.partner.secrets, id) then return reply.not_found("Secret not found") end
  local b = store.find_by(o.partner.budgets, "secret_id", id)
  if not b then
    b = { secret_id = id }
    o.partner.budgets[#o.partner.budgets + 1] = b
  end
  b.limit_cents, b.period = body.limitCents, body.period
  return reply.ok(budget_shape(o, b))
end

local function delete_budget(ctx)
  local o, err = find_org(ctx)
  if not o then return err end
  for i, b in ipairs(o.partner.budgets) do
    if b.secret_id == ctx.params.secretId then
      table.remove(o.partner.budgets, i)
      return reply.no_content()
    end
  end
  return reply.not_found("Budget not found")
end

------------------------------------------------------------------------------
-- Members of the partner account (the partner key acts as its owner)
------------------------------------------------------------------------------

local EMAIL = v.string():trim()
  :refine(function(s) return s:match("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil end, "Invalid email address")
local ROLE = v.enum({ "admin", "member" })
local ADD_MEMBER = v.object({ { "email", EMAIL }, { "role", ROLE } })
local SET_ROLE = v.object({ { "role", ROLE } })

local function member_shape(m)
  return obj("userId", m.id, "email", m.email, "role", m.role, "createdAt", m.created_at)
end

local function list_members(ctx)
  local out = array()
  for i, m in ipairs(ctx.app.partner.members) do out[i] = member_shape(m) end
  return reply.ok(out)
end

local function add_member(ctx)
  local ok, body = ADD_MEMBER:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local members = ctx.app.partner.members
  local email = body.email:lower()
  if store.find_by(members, "email", email) then
    return reply.conflict("A member with this email already exists")
  end
  local m = { id = util.uuid4(), email = email, role = body.role, created_at = util.iso() }
  members[#members + 1] = m
  return reply.created(member_shape(m))
end

-- The member ctx.params.userId that is not the owner, or nil, 404/403.
local function other_member(ctx, action)
  local m = store.find(ctx.app.partner.members, ctx.params.userId)
  if not m then return nil, reply.not_found("Member not found") end
  if m.role == "owner" then return nil, forbidden(format("Cannot %s the partner owner", action)) end
  return m
end

local function set_role(ctx)
  local ok, body = SET_ROLE:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local m, err = other_member(ctx, "change the role of")
  if not m then return err end
  m.role = body.role
  return reply.success()
end

local function remove_member(ctx)
  local m, err = other_member(ctx, "remove")
  if not m then return err end
  store.remove(ctx.app.partner.members, m.id)
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------------

local P = "partner"

local routes = {
  { method = "GET", pattern = "/org/partner/inherited-secrets", auth = "user", handler = inherited_secrets },
  { method = "GET", pattern = "/org/partner/status", auth = "admin", handler = status },
  { method = "POST", pattern = "/org/partner/detach", auth = "admin", handler = detach },
  { method = "GET", pattern = "/partner/orgs", auth = P, handler = list_orgs },
  { method = "POST", pattern = "/partner/orgs", auth = P, handler = create_org },
  { method = "GET", pattern = "/partner/orgs/:orgId", auth = P, handler = get_org },
  { method = "DELETE", pattern = "/partner/orgs/:orgId", auth = P, handler = delete_org },
  { method = "POST", pattern = "/partner/orgs/:orgId/claim-link", auth = P, handler = claim_link },
  { method = "POST", pattern = "/partner/orgs/:orgId/rotate-tokens", auth = P, handler = rotate_tokens },
  { method = "GET", pattern = "/partner/orgs/:orgId/projects", auth = P, handler = list_projects },
  { method = "POST", pattern = "/partner/orgs/:orgId/projects", auth = P, handler = create_project },
  { method = "DELETE", pattern = "/partner/orgs/:orgId/projects/:projectId", auth = P, handler = delete_project },
  { method = "GET", pattern = "/partner/orgs/:orgId/budgets", auth = P, handler = list_budgets },
  { method = "POST", pattern = "/partner/orgs/:orgId/secrets/:secretId/budget", auth = P, handler = set_budget },
  { method = "DELETE", pattern = "/partner/orgs/:orgId/secrets/:secretId/budget", auth = P,
    handler = delete_budget },
  { method = "GET", pattern = "/partner/secrets", auth = P, handler = list_secrets },
  { method = "POST", pattern = "/partner/secrets", auth = P, handler = create_secret },
  { method = "PATCH", pattern = "/partner/secrets/:id", auth = P, handler = patch_secret },
  { method = "DELETE", pattern = "/partner/secrets/:id", auth = P, handler = delete_secret },
  { method = "GET", pattern = "/partner/members", auth = P, handler = list_members },
  { method = "POST", pattern = "/partner/members", auth = P, handler = add_member },
  { method = "PATCH", pattern = "/partner/members/:userId/role", auth = P, handler = set_role },
  { method = "DELETE", pattern = "/partner/members/:userId", auth = P, handler = remove_member },
}

for _, r in ipairs(routes) do
  r.mode, r.edition = "v1", "cloud"
  if r.method == "GET" or r.method == "DELETE" then r.body = false end
end

-- Test hook (onecli.standin.control): mark a partner-created organization claimed.
-- Returns true or nil, message.
function routes.claim(api, org_id)
  local o = api.partner and store.find(api.partner.orgs, org_id)
  if not o then return nil, ORG_NOT_FOUND end
  o.partner.claimed = true
  return true
end

return routes
