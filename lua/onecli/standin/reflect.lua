-- Policy reflections (reference §14.5, §14.6): read-only views of what the
-- published organization policy (onecli.standin.policy) and the agents' grants
-- (onecli.standin.access) mean for one app, agent or connection.
--
--   GET /policy/effective-app-permissions?provider=&agentId=&connectionId=   (P)
--   GET /org/policy/effective-app-permissions?provider=                      (org)
--   GET /agents/{agentId}/effective-credentials                              (P)
--   GET /connections/{connectionId}/effective-agents                         (P)
--   GET /org/connections/{provider}          the org's connections of a provider
--
-- The stand-in's evaluation: a tool's verdict is that of the first enabled
-- published rule (by priority) naming the app (all its tools or this one)
-- or the connection asked about, else the published Default Rule's action
-- (block before the first publish: new organizations deny by default).
-- Rules naming identities or carrying request conditions vary per caller:
-- they are counted in variesByIdentity and skipped. Without a credential
-- (no connection of the app visible, or the agent holds no grant for one)
-- every tool is "unmanaged". A custom grant narrows further: tools outside
-- allow/ask are blocked, ask ones need approval. Organization-rule details
-- are redacted on the workspace routes unless a role resolver exists (a
-- licensed instance, where the stand-in's caller is the owner).
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")
local v = require("onecli.standin.validate")
local apps = require("onecli.standin.apps").scoped

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, sort = ipairs, table.sort

-- Permission catalogs the stand-in's app catalog lacks (tool ids as recorded
-- in the reflection captures).
local EXTRA_GROUPS = {
  granola = { { category = "read", tools = { { id = "list_notes" }, { id = "get_note" }, { id = "list_folders" } } } },
}

local function groups_of(provider)
  return catalog.permission_groups[provider] or EXTRA_GROUPS[provider]
end

local PROVIDER = v.string():min(1):max(100)
local OPTIONAL_ID = v.string():min(1):optional()

local function has(list, x)
  for _, y in ipairs(list or {}) do
    if y == x then return true end
  end
  return false
end

------------------------------------------------------------------------------
-- Evaluation
------------------------------------------------------------------------------

local function published_rules(ctx)
  local out = {}
  for i, r in ipairs(ctx.org.policy.published or {}) do out[i] = r end
  sort(out, function(a, b)
    if a.priority ~= b.priority then return a.priority < b.priority end
    return a.id < b.id
  end)
  return out
end

local function varies(r)
  return #(r.identities or {}) > 0 or typeof(r.conditions) == "array"
end

-- Does rule r decide tool of provider (for the connection asked about)?
local function names_tool(r, provider, tool, connection_id)
  for _, t in ipairs(r.targets or {}) do
    local tools = t.tools or {}
    local any_tool = #tools == 0 or has(tools, tool)
    if t.kind == "app" and t.provider == provider and any_tool then return true end
    if t.kind == "connection" and connection_id and t.connectionId == connection_id and any_tool then return true end
  end
  return false
end

local function rule_names_provider(ctx, r, provider)
  for _, t in ipairs(r.targets or {}) do
    if t.kind == "app" and t.provider == provider then return true end
    if t.kind == "connection" then
      local c = store.find(ctx.org.connections, t.connectionId)
      if c and c.provider == provider then return true end
    end
  end
  return false
end

local function decided_by(r, redact)
  if redact then return obj("kind", "rule", "scope", "organization", "redacted", true) end
  return obj("kind", "rule", "scope", "organization", "ruleId", r.logical_id, "name", r.name)
end

-- { verdict, rate_limit, window, decided_by } of one tool by the policy.
local function policy_verdict(ctx, rules, provider, tool, connection_id, redact)
  for _, r in ipairs(rules) do
    if r.enabled and not varies(r) and names_tool(r, provider, tool, connection_id) then
      local verdict = r.action == "block" and "block" or (r.require_approval and "approval" or "allow")
      return { verdict = verdict, rate_limit = verdict ~= "block" and r.rate_limit or nil,
        window = verdict ~= "block" and r.rate_limit_window or nil, decided_by = decided_by(r, redact) }
    end
  end
  local default = ctx.org.policy.published_default
  return { verdict = default and default.action or "block" }
end

-- A custom grant narrows the policy's verdict.
local function apply_grant(d, grant, tool)
  if not grant or grant.access ~= "custom" or d.verdict == "block" then return d end
  if has(grant.ask, tool) then
    d.verdict = "approval"
  elseif not has(grant.allow, tool) then
    d.verdict, d.rate_limit, d.window = "block", nil, nil
  end
  return d
end

-- opts: provider, connection_id, grant, attached, redact
local function evaluate(ctx, opts)
  local rules = published_rules(ctx)
  local groups = array()
  for _, g in ipairs(groups_of(opts.provider)) do
    local tools, verdict = array(), nil
    for _, t in ipairs(g.tools) do
      local d = { verdict = "unmanaged" }
      if opts.attached then
        d = apply_grant(policy_verdict(ctx, rules, opts.provider, t.id, opts.connection_id, opts.redact), opts.grant,
          t.id)
      end
      tools[#tools + 1] = obj("toolId", t.id, "verdict", d.verdict, "rateLimit", d.rate_limit or null,
        "rateLimitWindow", d.window or null, "decidedBy", d.decided_by or null, "orgCeiling", null)
      if verdict == nil then verdict = d.verdict elseif verdict ~= d.verdict then verdict = "mixed" end
    end
    groups[#groups + 1] = obj("category", g.category, "verdict", verdict or "unmanaged", "tools", tools)
  end
  local varying = 0
  for _, r in ipairs(rules) do
    if r.enabled and varies(r) and rule_names_provider(ctx, r, opts.provider) then varying = varying + 1 end
  end
  return groups, varying
end

-- Counts for effective-agents: { allowedTools, totalTools, anyApproval, anyRateLimit }.
local function decisions(groups)
  local allowed, total, approval, rate = 0, 0, false, false
  for _, g in ipairs(groups) do
    for _, t in ipairs(g.tools) do
      total = total + 1
      if t.verdict ~= "block" then allowed = allowed + 1 end
      if t.verdict == "approval" then approval = true end
      if t.rateLimit ~= null then rate = true end
    end
  end
  return obj("allowedTools", allowed, "totalTools", total, "anyApproval", approval, "anyRateLimit", rate), allowed
end

------------------------------------------------------------------------------
-- Credentials an agent holds
------------------------------------------------------------------------------

-- The agent's grant on one of the provider's connections (connection, grant).
local function agent_grant(ctx, a, provider, connection_id)
  for _, cid in ipairs(a.connection_ids) do
    local c = store.find_visible(ctx.state, "connections", cid)
    if c and a.grants[cid] and c.provider == provider and (not connection_id or cid == connection_id) then
      return c, a.grants[cid]
    end
  end
  return nil
end

local function scope_name(scope) return scope == "organization" and "organization" or "workspace" end

local function provenance(scope)
  return array({ obj("kind", "grant", "scope", scope_name(scope)) })
end

-- usable | limited | blocked for a granted connection.
local function connection_status(ctx, c, grant)
  if not groups_of(c.provider) then return "usable" end
  local groups = evaluate(ctx, { provider = c.provider, connection_id = c.id, grant = grant, attached = true,
    redact = true })
  local _, allowed = decisions(groups)
  if allowed == 0 then return "blocked" end
  return grant.access == "custom" and "limited" or "usable"
end

local function secret_blocked(ctx, s, scope)
  for _, r in ipairs(published_rules(ctx)) do
    if r.enabled and not varies(r) and r.action == "block" then
      for _, t in ipairs(r.targets or {}) do
        if t.kind == "secret" and (t.secretId == s.id or t.secretScope == (scope == "organization" and scope
          or "project")) then
          return true
        end
      end
    end
  end
  return false
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

local function parse_query(ctx, with_ids)
  local ok, provider = PROVIDER:parse(ctx.query.provider)
  if not ok then return nil, reply.unprocessable(provider) end
  if with_ids then
    for _, name in ipairs({ "agentId", "connectionId" }) do
      local good, msg = OPTIONAL_ID:parse(ctx.query[name])
      if not good then return nil, reply.unprocessable(msg) end
    end
  end
  if not groups_of(provider) then return nil, reply.not_found("No permission catalog for provider: " .. provider) end
  return provider
end

local function permissions_shape(provider, basis, groups, varying)
  return obj("provider", provider, "basis", basis, "variesByIdentity", varying, "orgResources", null,
    "effectiveResources", null, "groups", groups)
end

local function workspace_permissions(ctx)
  local provider, err = parse_query(ctx, true)
  if not provider then return err end
  local agent_id, connection_id = ctx.query.agentId, ctx.query.connectionId
  local agent
  if agent_id then
    agent = store.find(ctx.state.agents, agent_id)
    if not agent then return reply.not_found("Agent not found.") end
  end
  if connection_id then
    local c = store.find_visible(ctx.state, "connections", connection_id)
    if not c or c.provider ~= provider then return reply.not_found("Connection not found.") end
  end
  local attached, grant
  if agent then
    local c
    c, grant = agent_grant(ctx, agent, provider, connection_id)
    attached = c ~= nil
  elseif connection_id then
    attached = true
  else
    attached = #store.with_org(ctx.state, "connections", function(c) return c.provider == provider end) > 0
  end
  local groups, varying = evaluate(ctx, { provider = provider, connection_id = connection_id, grant = grant,
    attached = attached, redact = not ctx.app.licensed })
  return reply.ok(permissions_shape(provider, obj("agentId", agent_id or null, "credentialAttached", attached,
    "scope", "workspace"), groups, varying))
end

local function org_permissions(ctx)
  local provider, err = parse_query(ctx, false)
  if not provider then return err end
  local attached = #store.newest_first(ctx.org.connections, function(c) return c.provider == provider end) > 0
  local groups, varying = evaluate(ctx, { provider = provider, attached = attached, redact = false })
  return reply.ok(permissions_shape(provider, obj("agentId", null, "credentialAttached", attached,
    "scope", "organization"), groups, varying))
end

local function effective_credentials(ctx)
  local a = store.find(ctx.state.agents, ctx.params.id)
  if not a then return reply.not_found("Agent not found.") end
  local secrets, conns = array(), array()
  for _, sid in ipairs(a.secret_ids) do
    local s, scope = store.find_visible(ctx.state, "secrets", sid)
    if s then
      secrets[#secrets + 1] = obj("kind", "secret", "id", s.id, "name", s.name, "host", s.host_pattern or null,
        "status", secret_blocked(ctx, s, scope) and "blocked" or "usable", "provenance", provenance(scope))
    end
  end
  for _, cid in ipairs(a.connection_ids) do
    local c, scope = store.find_visible(ctx.state, "connections", cid)
    if c and a.grants[cid] then
      conns[#conns + 1] = obj("kind", "connection", "id", c.id, "label", c.label or null, "provider", c.provider,
        "status", connection_status(ctx, c, a.grants[cid]), "provenance", provenance(scope))
    end
  end
  return reply.ok(obj("agentId", a.id, "mode", "selective", "secrets", secrets, "connections", conns))
end

local function effective_agents(ctx)
  local c, scope = store.find_visible(ctx.state, "connections", ctx.params.id)
  if not c then return reply.not_found("Connection not found") end
  local has_catalog = groups_of(c.provider) ~= nil
  local agents = array()
  for _, a in ipairs(store.newest_first(ctx.state.agents)) do
    local grant = has(a.connection_ids, c.id) and a.grants[c.id] or nil
    local access, credential = "none", obj("status", "none")
    if grant then
      access = connection_status(ctx, c, grant)
      credential = obj("status", "full", "provenance", provenance(scope))
    end
    local d = null
    if has_catalog then
      d = decisions(evaluate(ctx, { provider = c.provider, connection_id = c.id, grant = grant, attached = true,
        redact = true }))
    end
    agents[#agents + 1] = obj("agentId", a.id, "name", a.name, "access", access, "credential", credential,
      "decisions", d)
  end
  return reply.ok(obj("connectionId", c.id, "provider", c.provider, "catalog", has_catalog, "agents", agents))
end

-- Same result as GET /org/connections?provider= (bare array; an unknown
-- provider is an empty list).
local function org_connections(ctx)
  ctx.query = { provider = ctx.params.provider }
  return apps.list_connections(ctx, "organization")
end

local P, U = "project", "user"

return {
  { mode = "v2", method = "GET", pattern = "/policy/effective-app-permissions", auth = P,
    handler = workspace_permissions, body = false },
  { mode = "v2", method = "GET", pattern = "/org/policy/effective-app-permissions", auth = U,
    handler = org_permissions, body = false },
  { mode = "v2", method = "GET", pattern = "/agents/:id/effective-credentials", auth = P,
    handler = effective_credentials, body = false },
  { mode = "v2", method = "GET", pattern = "/connections/:id/effective-agents", auth = P,
    handler = effective_agents, body = false },
  -- admin*: any member passes on an unlicensed self-host, a workspace user
  -- key too (it resolves to its organization)
  { mode = "v2", method = "GET", pattern = "/org/connections/:provider", auth = U, handler = org_connections,
    body = false },
}
