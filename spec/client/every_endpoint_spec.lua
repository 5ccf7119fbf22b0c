-- Every method of the endpoint table, called against the stand-in in each
-- server mode where the real server has the route: v1 (open-source 1.41,
-- local mode), cloud (v1 with the cloud-only routes) and v2 (2.0.1). Where
-- a newer server retired a route the call must fail with a 410 naming the
-- replacement; where an older one never had it, with a 404 for the route.
-- The v2.0.1 routes of reference §14 run against "v2x", a v2 stand-in with
-- an Enterprise licence and a registered runner; their cases live in
-- spec/client/cases/<area>.lua. An Enterprise route must answer 403
-- enterprise_license_required on the unlicensed v2 stand-in (unlicensed).
-- The last test checks that every endpoint has a case here.
local onecli = require("onecli")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local ALL = { "v1", "cloud", "v2" }
local MODES = { "v1", "cloud", "v2", "v2x" }
local V1 = { "v1", "cloud" }
local V2 = { "v2" }
local V2X = { "v2x" }
local ORG = { "cloud", "v2" }

local is = {
  table = function(v) return type(v) == "table" end,
  list = function(v) return type(v) == "table" and (v[1] ~= nil or next(v) == nil) end,
  yes = function(v) return v == true end,
  success = function(v) return type(v) == "table" and v.success == true end,
  string = function(v) return type(v) == "string" and v ~= "" end,
}

-- name -> { modes = {...}, gone = {...}, absent = {...}, call = fn(ctx), check = fn(result, ctx) }
local CASES = {}
local function case(name, modes, call, check, extra)
  local c = extra or {}
  c.modes, c.call, c.check = modes, call, check or is.table
  CASES[name] = c
end

local function new_agent(ctx, identifier)
  return ctx.client.agents:create({ name = "Case " .. identifier, identifier = identifier }).id
end

-- Connects resend with this label (through the apps and connections
-- namespaces of a project or of the organization) and returns its id.
local function new_connection(apps, connections, label, api_key)
  apps:connect("resend", { fields = { apiKey = api_key }, label = label })
  for _, c in ipairs(connections:list({ provider = "resend" })) do
    if c.label == label then return c.id end
  end
end

local function new_secret(ctx, c)
  return (c or ctx.client.secrets):create({ name = "Case secret", type = "generic", value = "tok_case_123456",
    hostPattern = "api.case.example", injectionConfig = { headerName = "X-Token" } }).id
end

case("health", ALL, function(ctx) return ctx.client:health() end,
  function(r) return r.status == "ok" end)

-- agents
case("agents.list", ALL, function(ctx) return ctx.client.agents:list() end, is.list)
case("agents.get", V2, function(ctx) return ctx.client.agents:get(ctx.agent) end,
  function(r, ctx) return r.id == ctx.agent end, { absent = V1 })
case("agents.create", ALL, function(ctx)
  return ctx.client.agents:create({ name = "C", identifier = "case-create" })
end, function(r) return r.identifier == "case-create" end)
case("agents.rename", ALL, function(ctx) return ctx.client.agents:rename(ctx.agent, "Renamed") end)
case("agents.update", ALL, function(ctx) return ctx.client.agents:update(ctx.agent, { name = "Updated" }) end)
case("agents.delete", ALL, function(ctx) return ctx.client.agents:delete(new_agent(ctx, "case-delete")) end, is.yes)
case("agents.get_default", V1, function(ctx) return ctx.client.agents:get_default() end,
  function(r) return r.isDefault == true end, { gone = V2 })
case("agents.set_default", V1, function(ctx) return ctx.client.agents:set_default(ctx.agent) end,
  is.success, { gone = V2 })
case("agents.regenerate_token", ALL, function(ctx) return ctx.client.agents:regenerate_token(ctx.agent) end,
  function(r) return r.accessToken:match("^aoc_") ~= nil end)
case("agents.set_secret_mode", V1, function(ctx) return ctx.client.agents:set_secret_mode(ctx.agent, "selective") end,
  is.success, { gone = V2 })
case("agents.get_secrets", V1, function(ctx) return ctx.client.agents:get_secrets(ctx.agent) end, is.list,
  { gone = V2 })
case("agents.set_secrets", V1, function(ctx) return ctx.client.agents:set_secrets(ctx.agent, { ctx.secret }) end,
  is.success, { gone = V2 })
case("agents.granular_access", V1, function(ctx) return ctx.client.agents:granular_access() end, is.list,
  { gone = V2 })
case("agents.get_connections", V1, function(ctx) return ctx.client.agents:get_connections(ctx.agent) end, is.list,
  { gone = V2 })
case("agents.set_connections", V1, function(ctx)
  return ctx.client.agents:set_connections(ctx.agent, { { appConnectionId = ctx.connection } })
end, is.success, { gone = V2 })
case("agents.get_grants", V2, function(ctx) return ctx.client.agents:get_grants(ctx.agent) end,
  function(r, ctx) return r.agentId == ctx.agent end, { absent = V1 })
case("agents.grant_secret", V2, function(ctx) return ctx.client.agents:grant_secret(ctx.agent, ctx.secret) end,
  function(r) return #r.secrets >= 1 end, { absent = V1 })
case("agents.revoke_secret", V2, function(ctx)
  ctx.client.agents:grant_secret(ctx.agent, ctx.secret)
  return ctx.client.agents:revoke_secret(ctx.agent, ctx.secret)
end, is.yes, { absent = V1 })
case("agents.grant_connection", V2, function(ctx)
  return ctx.client.agents:grant_connection(ctx.agent, ctx.connection, "full")
end, function(r) return #r.connections >= 1 end, { absent = V1 })
case("agents.revoke_connection", V2, function(ctx)
  ctx.client.agents:grant_connection(ctx.agent, ctx.connection, { access = "full" })
  return ctx.client.agents:revoke_connection(ctx.agent, ctx.connection)
end, is.yes, { absent = V1 })

-- secrets
case("secrets.list", ALL, function(ctx) return ctx.client.secrets:list() end, is.list)
case("secrets.create", ALL, function(ctx) return { id = new_secret(ctx) } end,
  function(r) return type(r.id) == "string" end)
case("secrets.update", ALL, function(ctx) return ctx.client.secrets:update(ctx.secret, { name = "Upd" }) end,
  is.success)
case("secrets.delete", ALL, function(ctx) return ctx.client.secrets:delete(new_secret(ctx)) end, is.yes)

-- rules
local RULE = { name = "Case rule", hostPattern = "api.case.example", action = "block", enabled = true }
case("rules.list", V1, function(ctx) return ctx.client.rules:list() end, is.list, { gone = V2 })
case("rules.create", V1, function(ctx) return ctx.client.rules:create(RULE) end,
  function(r) return r.action == "block" end, { gone = V2 })
case("rules.get", V1, function(ctx) return ctx.client.rules:get(ctx.client.rules:create(RULE).id) end,
  function(r) return r.name == "Case rule" end, { gone = V2 })
case("rules.update", V1, function(ctx)
  return ctx.client.rules:update(ctx.client.rules:create(RULE).id, { enabled = false })
end, is.success, { gone = V2 })
case("rules.delete", V1, function(ctx) return ctx.client.rules:delete(ctx.client.rules:create(RULE).id) end,
  is.yes, { gone = V2 })
case("rules.get_permissions", V1, function(ctx) return ctx.client.rules:get_permissions("github") end,
  function(r) return type(r.defaults) == "table" end, { gone = V2 })
case("rules.set_permissions", V1, function(ctx)
  return ctx.client.rules:set_permissions("github", { changes = { { toolId = "create_issue", permission = "block" } } })
end, function(r) return type(r.created) == "number" end, { gone = V2 })
case("rules.overlap", V1, function(ctx) return ctx.client.rules:overlap("github") end,
  function(r) return type(r.count) == "number" end, { gone = V2 })

-- apps
case("apps.list", ALL, function(ctx) return ctx.client.apps:list() end, is.list)
case("apps.get", ALL, function(ctx) return ctx.client.apps:get("github") end,
  function(r) return r.id == "github" end)
case("apps.available", V2, function(ctx) return ctx.client.apps:available() end, is.table, { absent = V1 })
case("apps.configured", ALL, function(ctx) return ctx.client.apps:configured() end, is.list)
case("apps.env_defaults", ALL, function(ctx) return ctx.client.apps:env_defaults() end, is.list)
case("apps.permission_definitions", ALL, function(ctx) return ctx.client.apps:permission_definitions() end, is.list)
case("apps.permission_definition", ALL, function(ctx) return ctx.client.apps:permission_definition("github") end,
  function(r) return r.provider == "github" end)
case("apps.connect", ALL, function(ctx)
  return ctx.client.apps:connect("resend", { fields = { apiKey = "re_case_connect_1" }, label = "Case connect" })
end, is.success)
case("apps.authorize_url", ALL, function(ctx)
  ctx.client.apps:set_config("gitlab", { clientId = "id", clientSecret = "secret" })
  return ctx.client.apps:authorize_url("gitlab")
end, function(r) return r:match("^https://") ~= nil end)
case("apps.get_config", ALL, function(ctx) return ctx.client.apps:get_config("github") end,
  function(r) return r.hasCredentials ~= nil end)
case("apps.set_config", ALL, function(ctx)
  return ctx.client.apps:set_config("gmail", { clientId = "id", clientSecret = "secret" })
end, is.success)
case("apps.delete_config", ALL, function(ctx)
  ctx.client.apps:set_config("notion", { clientId = "id", clientSecret = "secret" })
  return ctx.client.apps:delete_config("notion")
end, is.yes)
case("apps.toggle_config", ALL, function(ctx)
  ctx.client.apps:set_config("dropbox", { clientId = "id", clientSecret = "secret" })
  return ctx.client.apps:toggle_config("dropbox", false)
end, is.success)
case("apps.list_blocklist", ALL, function(ctx) return ctx.client.apps:list_blocklist("github") end, is.list)
case("apps.block", ALL, function(ctx)
  return ctx.client.apps:block("github", { hostId = "github-uploads" })
end, function(r) return r.ruleId ~= nil end)
case("apps.update_blocklist_rule", ALL, function(ctx)
  local r = ctx.client.apps:block("github", { hostId = "github-gists" })
  return ctx.client.apps:update_blocklist_rule("github", r.ruleId, false)
end, is.success)
case("apps.delete_blocklist_rule", ALL, function(ctx)
  local r = ctx.client.apps:block("github", { hostId = "github-raw" })
  return ctx.client.apps:delete_blocklist_rule("github", r.ruleId)
end, is.yes)
case("apps.list_connections", ALL, function(ctx) return ctx.client.apps:list_connections() end,
  function(r) return type(r.connections) == "table" end)
case("apps.provider_connections", ALL, function(ctx) return ctx.client.apps:provider_connections("resend") end,
  function(r) return #r.connections >= 1 end)
case("apps.rename_connection", ALL, function(ctx)
  return ctx.client.apps:rename_connection(ctx.connection, "Legacy label")
end, function(r) return r.label == "Legacy label" end)
case("apps.delete_connection", ALL, function(ctx)
  local id = new_connection(ctx.client.apps, ctx.client.connections, "Legacy del", "re_case_legacy_1")
  return ctx.client.apps:delete_connection(id)
end, is.yes)

-- connections
case("connections.list", ALL, function(ctx) return ctx.client.connections:list() end, is.list)
case("connections.rename", ALL, function(ctx) return ctx.client.connections:rename(ctx.connection, "Fx") end,
  function(r) return r.label == "Fx" end)
case("connections.delete", ALL, function(ctx)
  local id = new_connection(ctx.client.apps, ctx.client.connections, "To delete", "re_case_delete_1")
  return ctx.client.connections:delete(id)
end, is.yes)
case("connections.get_agents", V1, function(ctx) return ctx.client.connections:get_agents(ctx.connection) end,
  is.list, { gone = V2 })
case("connections.set_agents", V1, function(ctx)
  return ctx.client.connections:set_agents(ctx.connection, {})
end, is.success, { gone = V2 })
case("connections.get_grants", V2, function(ctx) return ctx.client.connections:get_grants(ctx.connection) end,
  is.table, { absent = V1 })
case("connections.grant_agent", V2, function(ctx)
  return ctx.client.connections:grant_agent(ctx.connection, ctx.agent, { access = "full" })
end, is.table, { absent = V1 })
case("connections.revoke_agent", V2, function(ctx)
  ctx.client.connections:grant_agent(ctx.connection, ctx.agent, { access = "full" })
  return ctx.client.connections:revoke_agent(ctx.connection, ctx.agent)
end, is.yes, { absent = V1 })

-- user
case("user.get", ALL, function(ctx) return ctx.client.user:get() end, function(r) return r.email ~= nil end)
case("user.update", ALL, function(ctx) return ctx.client.user:update("Case User") end,
  function(r) return r.name == "Case User" end)
case("user.get_api_key", ALL, function(ctx) return ctx.client.user:get_api_key() end,
  function(r) return r.apiKey:match("^oc_") ~= nil end)
case("user.regenerate_api_key", ALL, function(ctx)
  local r = ctx.client.user:regenerate_api_key()
  ctx.client.agents:list()       -- the client switched to the new key
  return r
end, function(r) return r.apiKey:match("^oc_") ~= nil end)

-- agent setup and utilities
case("container_config", ALL, function(ctx) return ctx.client:container_config({ agent = "fx-agent" }) end,
  function(r) return type(r.env) == "table" and type(r.caCertificate) == "string" end)
case("credential_stubs", ALL, function(ctx) return ctx.client:credential_stubs() end,
  function(r) return type(r.agents) == "table" end)
case("credential_stub", ALL, function(ctx) return ctx.client:credential_stub("codex") end,
  function(r) return r.agent == "codex" end)
case("gateway_skill", ALL, function(ctx) return ctx.client:gateway_skill({ agent_framework = "claude" }) end,
  is.string)
case("gateway_url", ALL, function(ctx) return ctx.client:gateway_url() end,
  function(r) return r.url:match("^http://127%.0%.0%.1:%d+$") ~= nil end)
case("gateway_ca", ALL, function(ctx) return ctx.client:gateway_ca() end,
  function(r) return r:find("-----BEGIN CERTIFICATE-----", 1, true) ~= nil end)
case("counts", ALL, function(ctx) return ctx.client:counts() end,
  function(r) return type(r.agents) == "number" end)
case("vaults", ALL, function(ctx) return ctx.client:vaults() end, is.list)
case("migrate_export", { "v1", "v2" }, function(ctx)
  return ctx.client:migrate_export({ cloudApiKey = "cloud-key-for-the-case" })
end, function(r) return type(r.imported) == "table" end)

-- workspaces (client.projects is the v1 alias; /projects on v1 cloud)
case("workspaces.list", ORG, function(ctx) return ctx.org.workspaces:list() end, is.list, { absent = { "v1" } })
case("workspaces.create", ORG, function(ctx) return ctx.org.workspaces:create("Case Space") end,
  function(r) return type(r.id) == "string" end, { absent = { "v1" } })
case("workspaces.get", ORG, function(ctx)
  return ctx.org.projects:get(ctx.org.workspaces:create("Case Get").id)
end, function(r) return r.name == "Case Get" end, { absent = { "v1" } })
case("workspaces.update", ORG, function(ctx)
  return ctx.org.workspaces:update(ctx.org.workspaces:create("Case Upd").id, "Case Updated")
end, function(r) return r.name == "Case Updated" end, { absent = { "v1" } })
case("workspaces.delete", ORG, function(ctx)
  return ctx.org.workspaces:delete(ctx.org.workspaces:create("Case Del").id)
end, is.yes, { absent = { "v1" } })
case("team.provision", { "cloud", "v2x" }, function(ctx) return ctx.org.team:provision({ role = "member" }) end,
  function(r) return r.apiKey ~= nil end, { absent = { "v1" }, unlicensed = V2 })

-- organization resources
local ORG_SECRET = { name = "Org secret", type = "generic", value = "tok_org_case_1",
  hostPattern = "api.org.example", injectionConfig = { headerName = "X-Org" } }
case("org.secrets.list", ORG, function(ctx) return ctx.org.org.secrets:list() end, is.list, { absent = { "v1" } })
case("org.secrets.create", ORG, function(ctx) return ctx.org.org.secrets:create(ORG_SECRET) end,
  function(r) return type(r.id) == "string" end, { absent = { "v1" } })
case("org.secrets.update", ORG, function(ctx)
  return ctx.org.org.secrets:update(ctx.org.org.secrets:create(ORG_SECRET).id, { name = "Org upd" })
end, is.success, { absent = { "v1" } })
case("org.secrets.delete", ORG, function(ctx)
  return ctx.org.org.secrets:delete(ctx.org.org.secrets:create(ORG_SECRET).id)
end, is.yes, { absent = { "v1" } })

local function org_connection(ctx, label)
  return new_connection(ctx.org.org.apps, ctx.org.org.connections, label, "re_org_" .. label)
end
case("org.connections.list", ORG, function(ctx) return ctx.org.org.connections:list() end, is.list,
  { absent = { "v1" } })
case("org.connections.rename", ORG, function(ctx)
  return ctx.org.org.connections:rename(org_connection(ctx, "orgren"), "Org renamed")
end, function(r) return r.label == "Org renamed" end, { absent = { "v1" } })
case("org.connections.delete", ORG, function(ctx)
  return ctx.org.org.connections:delete(org_connection(ctx, "orgdel"))
end, is.yes, { absent = { "v1" } })
case("org.apps.authorize_url", ORG, function(ctx)
  ctx.org.org.apps:set_config("github", { clientId = "id", clientSecret = "secret" })
  return ctx.org.org.apps:authorize_url("github")
end, function(r) return r:match("^https://github%.com/") ~= nil end, { absent = { "v1" } })
case("org.apps.connect", ORG, function(ctx)
  return ctx.org.org.apps:connect("resend", { fields = { apiKey = "re_org_connect" }, label = "Org connect" })
end, is.success, { absent = { "v1" } })
case("org.apps.configured", ORG, function(ctx) return ctx.org.org.apps:configured() end, is.list,
  { absent = { "v1" } })
case("org.apps.get_config", ORG, function(ctx) return ctx.org.org.apps:get_config("github") end, is.table,
  { absent = { "v1" } })
case("org.apps.set_config", ORG, function(ctx)
  return ctx.org.org.apps:set_config("gmail", { clientId = "id", clientSecret = "secret" })
end, is.success, { absent = { "v1" } })
case("org.apps.delete_config", ORG, function(ctx)
  ctx.org.org.apps:set_config("notion", { clientId = "id", clientSecret = "secret" })
  return ctx.org.org.apps:delete_config("notion")
end, is.yes, { absent = { "v1" } })
case("org.apps.toggle_config", ORG, function(ctx)
  ctx.org.org.apps:set_config("dropbox", { clientId = "id", clientSecret = "secret" })
  return ctx.org.org.apps:toggle_config("dropbox", false)
end, is.success, { absent = { "v1" } })
case("org.apps.list_blocklist", ORG, function(ctx) return ctx.org.org.apps:list_blocklist("github") end, is.list,
  { absent = { "v1" } })
case("org.apps.block", ORG, function(ctx)
  return ctx.org.org.apps:block("github", { hostId = "github-uploads" })
end, function(r) return r.ruleId ~= nil end, { absent = { "v1" } })
case("org.apps.update_blocklist_rule", ORG, function(ctx)
  local r = ctx.org.org.apps:block("github", { hostId = "github-gists" })
  return ctx.org.org.apps:update_blocklist_rule("github", r.ruleId, false)
end, is.success, { absent = { "v1" } })
case("org.apps.delete_blocklist_rule", ORG, function(ctx)
  local r = ctx.org.org.apps:block("github", { hostId = "github-raw" })
  return ctx.org.org.apps:delete_blocklist_rule("github", r.ruleId)
end, is.yes, { absent = { "v1" } })

local ORG_RULE = { name = "Org rule", hostPattern = "api.org.example", action = "block", enabled = true }
case("org.rules.list", { "cloud" }, function(ctx) return ctx.org.org.rules:list() end, is.list,
  { gone = V2, absent = { "v1" } })
case("org.rules.create", { "cloud" }, function(ctx) return ctx.org.org.rules:create(ORG_RULE) end, is.table,
  { gone = V2, absent = { "v1" } })
case("org.rules.get", { "cloud" }, function(ctx)
  return ctx.org.org.rules:get(ctx.org.org.rules:create(ORG_RULE).id)
end, function(r) return r.name == "Org rule" end, { gone = V2, absent = { "v1" } })
case("org.rules.update", { "cloud" }, function(ctx)
  return ctx.org.org.rules:update(ctx.org.org.rules:create(ORG_RULE).id, { enabled = false })
end, is.success, { gone = V2, absent = { "v1" } })
case("org.rules.delete", { "cloud" }, function(ctx)
  return ctx.org.org.rules:delete(ctx.org.org.rules:create(ORG_RULE).id)
end, is.yes, { gone = V2, absent = { "v1" } })
case("org.rules.get_permissions", { "cloud" }, function(ctx) return ctx.org.org.rules:get_permissions("github") end,
  is.table, { gone = V2, absent = { "v1" } })
case("org.rules.set_permissions", { "cloud" }, function(ctx)
  return ctx.org.org.rules:set_permissions("github",
    { changes = { { toolId = "create_issue", permission = "block" } } })
end, is.table, { gone = V2, absent = { "v1" } })
case("org.rules.overlap", { "cloud" }, function(ctx) return ctx.org.org.rules:overlap("github") end,
  function(r) return type(r.count) == "number" end, { gone = V2, absent = { "v1" } })
case("org.settings.get", { "cloud" }, function(ctx) return ctx.org.org.settings:get() end,
  function(r) return r.policyMode ~= nil end, { gone = V2, absent = { "v1" } })
case("org.settings.update", { "cloud" }, function(ctx) return ctx.org.org.settings:update("deny") end,
  function(r) return r.policyMode == "deny" end, { gone = V2, absent = { "v1" } })

local POLICY_RULE = { name = "Policy rule", action = "allow",
  targets = { { kind = "network", hostPattern = "api.policy.example" } } }
case("org.policy.list_rules", V2, function(ctx) return ctx.org.org.policy:list_rules({ status = "draft" }) end,
  is.table, { absent = V1 })
case("org.policy.create_rule", V2, function(ctx) return ctx.org.org.policy:create_rule(POLICY_RULE) end,
  function(r) return type(r.id) == "string" end, { absent = V1 })
case("org.policy.reorder_rules", V2, function(ctx)
  ctx.org.org.policy:create_rule(POLICY_RULE)
  local ids = {}
  for _, r in ipairs(ctx.org.org.policy:list_rules({ status = "draft" })) do
    if not r.isDefault and r.id then table.insert(ids, 1, r.id) end   -- reversed
  end
  return ctx.org.org.policy:reorder_rules(ids)
end, is.table, { absent = V1 })
case("org.policy.get_rule", V2, function(ctx)
  return ctx.org.org.policy:get_rule(ctx.org.org.policy:create_rule(POLICY_RULE).id)
end, function(r) return r.name == "Policy rule" end, { absent = V1 })
case("org.policy.update_rule", V2, function(ctx)
  return ctx.org.org.policy:update_rule(ctx.org.org.policy:create_rule(POLICY_RULE).id, { enabled = false })
end, is.table, { absent = V1 })
case("org.policy.delete_rule", V2, function(ctx)
  return ctx.org.org.policy:delete_rule(ctx.org.org.policy:create_rule(POLICY_RULE).id)
end, is.yes, { absent = V1 })
case("org.policy.get_default", V2, function(ctx) return ctx.org.org.policy:get_default() end,
  function(r) return r.action ~= nil end, { absent = V1 })
case("org.policy.set_default", V2, function(ctx) return ctx.org.org.policy:set_default("block") end,
  function(r) return r.action == "block" end, { absent = V1 })
case("org.policy.publish", V2, function(ctx) return ctx.org.org.policy:publish() end, is.table, { absent = V1 })
-- null until the first publish (whichever test runs first)
case("org.policy.last_publish", V2, function(ctx) return ctx.org.org.policy:last_publish() end,
  function(r) return type(r) == "table" or r == onecli.null end, { absent = V1 })

-- the partner API (v1 cloud only; removed in Aug 2026)
local CLOUD = { "cloud" }
local NOT_CLOUD = { "v1", "v2" }
local function managed_org(ctx, name)
  return ctx.partner.partner.orgs:create(name or "Managed Org")
end
local PARTNER_SECRET = { name = "Partner secret", type = "generic", value = "tok_partner_case_1",
  hostPattern = "api.partner.example", injectionConfig = { headerName = "X-Partner" } }
case("org.partner.inherited_secrets", CLOUD, function(ctx)
  return ctx.org.org.partner:inherited_secrets()
end, is.list, { absent = NOT_CLOUD })
case("org.partner.status", CLOUD, function(ctx) return ctx.org.org.partner:status() end,
  function(r) return r.partnerManaged ~= nil end, { absent = NOT_CLOUD })
case("org.partner.detach", CLOUD, function(ctx)
  local o = managed_org(ctx, "Detached Org")
  local managed = api.client(ctx.srv, { api_key = o.orgApiKey, max_retries = 0 })
  assert(managed.org.partner:status().partnerManaged == true, "a new managed org is partner-managed")
  local r = managed.org.partner:detach()
  managed:close()
  return r
end, is.success, { absent = NOT_CLOUD })
case("partner.orgs.list", CLOUD, function(ctx) return ctx.partner.partner.orgs:list() end, is.list,
  { absent = NOT_CLOUD })
case("partner.orgs.create", CLOUD, function(ctx)
  local o = managed_org(ctx)
  local managed = api.client(ctx.srv, { api_key = o.projectApiKey, max_retries = 0 })
  local agents = managed.agents:list()       -- its keys work at once
  managed:close()
  o.agents = agents
  return o
end, function(r) return type(r.organizationId) == "string" and type(r.agents) == "table" end,
  { absent = NOT_CLOUD })
case("partner.orgs.get", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:get(managed_org(ctx, "Get Org").organizationId)
end, function(r) return r.name == "Get Org" end, { absent = NOT_CLOUD })
case("partner.orgs.delete", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:delete(managed_org(ctx, "Delete Org").organizationId)
end, is.yes, { absent = NOT_CLOUD })
case("partner.orgs.claim_link", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:claim_link(managed_org(ctx).organizationId)
end, function(r) return type(r.claimUrl) == "string" end, { absent = NOT_CLOUD })
case("partner.orgs.rotate_tokens", CLOUD, function(ctx)
  local o = managed_org(ctx)
  local r = ctx.partner.partner.orgs:rotate_tokens(o.organizationId)
  r.old = o.orgApiKey
  return r
end, function(r) return type(r.orgApiKey) == "string" and r.orgApiKey ~= r.old end, { absent = NOT_CLOUD })
case("partner.orgs.list_projects", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:list_projects(managed_org(ctx).organizationId)
end, function(r) return #r >= 1 end, { absent = NOT_CLOUD })
case("partner.orgs.create_project", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:create_project(managed_org(ctx).organizationId, "Second")
end, function(r) return r.name == "Second" end, { absent = NOT_CLOUD })
case("partner.orgs.delete_project", CLOUD, function(ctx)
  local org = managed_org(ctx).organizationId
  local p = ctx.partner.partner.orgs:create_project(org, "To delete")
  return ctx.partner.partner.orgs:delete_project(org, p.id)
end, is.yes, { absent = NOT_CLOUD })
case("partner.orgs.budgets", CLOUD, function(ctx)
  return ctx.partner.partner.orgs:budgets(managed_org(ctx).organizationId)
end, is.list, { absent = NOT_CLOUD })
case("partner.orgs.set_budget", CLOUD, function(ctx)
  local secret = ctx.partner.partner.secrets:create(PARTNER_SECRET).id
  return ctx.partner.partner.orgs:set_budget(managed_org(ctx).organizationId, secret,
    { limitCents = 5000, period = "monthly" })
end, function(r) return r.limitCents == 5000 end, { absent = NOT_CLOUD })
case("partner.orgs.delete_budget", CLOUD, function(ctx)
  local secret = ctx.partner.partner.secrets:create(PARTNER_SECRET).id
  local org = managed_org(ctx).organizationId
  ctx.partner.partner.orgs:set_budget(org, secret, { limitCents = 100, period = "total" })
  return ctx.partner.partner.orgs:delete_budget(org, secret)
end, is.yes, { absent = NOT_CLOUD })
case("partner.secrets.list", CLOUD, function(ctx) return ctx.partner.partner.secrets:list() end, is.list,
  { absent = NOT_CLOUD })
case("partner.secrets.create", CLOUD, function(ctx) return ctx.partner.partner.secrets:create(PARTNER_SECRET) end,
  function(r) return type(r.id) == "string" end, { absent = NOT_CLOUD })
case("partner.secrets.update", CLOUD, function(ctx)
  return ctx.partner.partner.secrets:update(ctx.partner.partner.secrets:create(PARTNER_SECRET).id,
    { name = "Partner upd" })
end, is.success, { absent = NOT_CLOUD })
case("partner.secrets.delete", CLOUD, function(ctx)
  return ctx.partner.partner.secrets:delete(ctx.partner.partner.secrets:create(PARTNER_SECRET).id)
end, is.yes, { absent = NOT_CLOUD })
case("partner.members.list", CLOUD, function(ctx) return ctx.partner.partner.members:list() end,
  function(r) return #r >= 1 end, { absent = NOT_CLOUD })
case("partner.members.add", CLOUD, function(ctx)
  return ctx.partner.partner.members:add({ email = "added@partner.example", role = "member" })
end, function(r) return r.email == "added@partner.example" end, { absent = NOT_CLOUD })
case("partner.members.set_role", CLOUD, function(ctx)
  local m = ctx.partner.partner.members:add({ email = "role@partner.example", role = "member" })
  return ctx.partner.partner.members:set_role(m.userId, "admin")
end, is.success, { absent = NOT_CLOUD })
case("partner.members.remove", CLOUD, function(ctx)
  local m = ctx.partner.partner.members:add({ email = "gone@partner.example", role = "member" })
  return ctx.partner.partner.members:remove(m.userId)
end, is.yes, { absent = NOT_CLOUD })

-- approvals, on the gateway
case("approvals.pending", ALL, function(ctx)
  local a = ctx.srv:approval({ method = "GET", url = "https://api.github.com/user" })
  local r = ctx.client.approvals:pending()
  r.expected = a.id
  return r
end, function(r)
  for _, req in ipairs(r.requests) do
    if req.id == r.expected then return true end
  end
  return false
end)
case("approvals.decide", ALL, function(ctx)
  local a = ctx.srv:approval({ method = "POST", url = "https://api.github.com/repos" })
  return ctx.client.approvals:decide(a.id, "deny")
end, is.success)
case("approvals.org_pending", ORG, function(ctx)
  ctx.srv:approval({ method = "GET", url = "https://api.github.com/org" })
  return ctx.org.approvals:org_pending()
end, function(r) return #r.requests >= 1 end)

-- the v2.0.1 routes beyond the v1 surface (reference §14)
local AREAS = { "workspace", "enterprise", "hosted" }
for _, area in ipairs(AREAS) do
  require("client.cases." .. area)(case, {
    V1 = V1, V2 = V2, V2X = V2X, is = is,
    new_agent = new_agent,
  })
end

local MODE_SERVERS = {
  v1 = { mode = "v1" },
  cloud = { mode = "v1", edition = "cloud" },
  v2 = { mode = "v2" },
  v2x = { mode = "v2", licensed = true, runner = true },
}

local function contains(list, x)
  for _, v in ipairs(list or {}) do
    if v == x then return true end
  end
  return false
end

for _, mode in ipairs(MODES) do
  describe("every endpoint against the " .. mode .. " stand-in", function()
    local ctx = {}

    setup(function()
      ctx.srv = launcher.start(MODE_SERVERS[mode])
      ctx.srv:gateway_settings({ poll_hold = 1 })
      ctx.client = api.client(ctx.srv, { api_key = ctx.srv.api_key, max_retries = 0 })
      ctx.org = api.client(ctx.srv, { api_key = ctx.srv.org_key, project_id = ctx.srv.project_id,
                                      max_retries = 0 })
      ctx.partner = api.client(ctx.srv, { api_key = ctx.srv.partner_key or ctx.srv.api_key,
                                          max_retries = 0 })
      ctx.agent = new_agent(ctx, "fx-agent")
      ctx.secret = new_secret(ctx)
      ctx.client.apps:connect("resend", { fields = { apiKey = "re_fixture_12345" }, label = "Fixture" })
      ctx.connection = ctx.client.connections:list({ provider = "resend" })[1].id
      if mode == "v2x" then
        ctx.hosted = ctx.client.agents:create({ name = "Case hosted", identifier = "fx-hosted",
                                                kind = "hosted" }).id
      end
    end)

    teardown(function()
      if ctx.client then ctx.client:close() end
      if ctx.org then ctx.org:close() end
      if ctx.partner then ctx.partner:close() end
      if ctx.srv then ctx.srv:stop() end
    end)

    for _, ep in ipairs(onecli.endpoints) do
      local c = CASES[ep.name]
      if c and contains(c.modes, mode) then
        it(ep.name, function()
          local ok, result = pcall(c.call, ctx)
          assert.is_true(ok, ep.name .. ": " .. tostring(result))
          assert.is_true(c.check(result, ctx) == true, ep.name .. ": unexpected result")
        end)
      elseif c and contains(c.gone, mode) then
        it(ep.name .. " answers 410 naming its replacement", function()
          local ok, err = pcall(c.call, ctx)
          assert.is_false(ok)
          assert.is_true(onecli.is_error(err), tostring(err))
          assert.are.equal(410, err.status)
          assert.are.equal("invalid_request_error", err.type)
          assert.matches("/v1/", err.message)
        end)
      elseif c and contains(c.unlicensed, mode) then
        it(ep.name .. " needs an Enterprise licence (403)", function()
          local ok, err = pcall(c.call, ctx)
          assert.is_false(ok)
          assert.is_true(onecli.is_error(err), tostring(err))
          assert.are.equal(403, err.status)
          assert.are.equal("enterprise_license_required", err.type)
          assert.is_false(err.retryable)
        end)
      elseif c and contains(c.absent, mode) then
        -- usually "Unrecognized request URL"; a path that an older server
        -- reads as a parameter (GET /apps/available -> provider
        -- "available") is a 404 from that route instead
        it(ep.name .. " is not served (404)", function()
          local ok, err = pcall(c.call, ctx)
          assert.is_false(ok)
          assert.is_true(onecli.is_error(err), tostring(err))
          assert.are.equal(404, err.status)
        end)
      end
    end
  end)
end

describe("the endpoint cases", function()
  it("cover every endpoint of the table, each in at least one server mode", function()
    local missing = {}
    for _, ep in ipairs(onecli.endpoints) do
      local c = CASES[ep.name]
      if not c or #c.modes == 0 then missing[#missing + 1] = ep.name end
    end
    assert.are.same({}, missing)
  end)
end)
