-- Which agent may use which connection or secret.
--
-- v1 (1.41.0): /agents/granular-access, /agents/{id}/connections (GET/PUT,
-- with session policies) and /connections/{id}/agents (GET/PUT) — reference
-- §6.2, §6.6, §7.10. v2 (2.0.1): those answer 410 (behind auth); the grants
-- API replaces them (§8.3): /agents/{id}/grants[/secrets|connections/{id}]
-- and its mirror /connections/{id}/grants[/agents/{agentId}].
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")
local v = require("onecli.standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, format = ipairs, string.format

local CUSTOM_EMPTY = "Custom access needs at least one allowed or approval tool. To block everything, detach instead."
local BOTH = "A tool can't be both always-allowed and require approval."

-- v2.0.1 tombstones (the real removed-routes.ts wording; every method).
local WORKSPACE_REPLACEMENT = "Workspace access is granted per agent: PUT "
  .. "/v1/agents/:agentId/grants/connections/:connectionId and /v1/agents/:agentId/grants/secrets/:secretId."
local GONE_GRANULAR = "GET /v1/agents/granular-access was removed: resource scoping rides the granting rule's "
  .. "conditions. " .. WORKSPACE_REPLACEMENT
local GONE_CONNECTIONS = "/v1/agents/:agentId/connections was removed: grant a connection with an allow rule "
  .. "naming the agent and targeting the connection. " .. WORKSPACE_REPLACEMENT
local GONE_AGENTS = "/v1/connections/:connectionId/agents was removed: an agent reaches a connection through an "
  .. "allow rule naming it. GET /v1/connections/:connectionId/effective-agents reports who can, read-only. "
  .. WORKSPACE_REPLACEMENT

local function any_object(x)
  if typeof(x) == "object" then return true, x end
  return false, "Invalid input: expected object, received " .. typeof(x)
end

local SET_CONNECTIONS = v.object({
  { "connections", v.array(v.object({
    { "appConnectionId", v.string() },
    { "sessionPolicy", v.custom(any_object, "object"):optional():nullable() },
  })) },
})

local SET_AGENTS = v.object({ { "agentIds", v.array(v.string()) } })

local function find_agent(ctx, id)
  return store.find(ctx.state.agents, id or ctx.params.id)
end

local function has(list, x)
  for _, y in ipairs(list) do
    if y == x then return true end
  end
  return false
end

local function add_id(list, id)
  if not has(list, id) then list[#list + 1] = id end
end

local function drop_id(list, id)
  for i = #list, 1, -1 do
    if list[i] == id then table.remove(list, i) end
  end
end

local function connection_label(c)
  if c.label == nil then return null end
  return c.label
end

------------------------------------------------------------------------------
-- v1: session policies and connection assignments
------------------------------------------------------------------------------

local function granular_access(ctx)
  local out = array()
  for _, a in ipairs(store.agents_ordered(ctx.state)) do
    for _, cid in ipairs(a.connection_ids) do
      local policy = a.session_policies[cid]
      local c = store.find_visible(ctx.state, "connections", cid)
      if c and policy then
        out[#out + 1] = obj("agentId", a.id, "agentName", a.name, "connectionId", c.id, "provider", c.provider,
          "connectionLabel", connection_label(c), "policy", policy)
      end
    end
  end
  return reply.ok(out)
end

local function get_connections(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found("Agent not found") end
  local out = array()
  for _, cid in ipairs(a.connection_ids) do
    out[#out + 1] = obj("appConnectionId", cid, "sessionPolicy", a.session_policies[cid] or null)
  end
  return reply.ok(out)
end

local function set_connections(ctx)
  local ok, body = SET_CONNECTIONS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local a = find_agent(ctx)
  if not a then return reply.not_found("Agent not found") end
  local ids, policies, seen = {}, {}, {}
  for _, entry in ipairs(body.connections) do
    local cid = entry.appConnectionId
    if not store.find_visible(ctx.state, "connections", cid) then
      return reply.bad_request("One or more app connections not found")
    end
    if not seen[cid] then ids[#ids + 1] = cid; seen[cid] = true end
    if entry.sessionPolicy ~= nil and entry.sessionPolicy ~= null then policies[cid] = entry.sessionPolicy end
  end
  a.connection_ids, a.session_policies = ids, policies
  return reply.success()
end

local function connection_agents(ctx)
  local c = store.find_visible(ctx.state, "connections", ctx.params.id)
  if not c then return reply.not_found("Connection not found") end
  local out = array()
  for _, a in ipairs(store.agents_ordered(ctx.state)) do
    local access = "none"
    if a.secret_mode == "all" then
      access = "full"
    elseif has(a.connection_ids, c.id) then
      access = "assigned"
    end
    out[#out + 1] = obj("id", a.id, "name", a.name, "access", access,
      "scoped", a.session_policies[c.id] ~= nil)
  end
  return reply.ok(out)
end

local function set_connection_agents(ctx)
  local ok, body = SET_AGENTS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local c = store.find_visible(ctx.state, "connections", ctx.params.id)
  if not c then return reply.not_found("Connection not found") end
  for _, id in ipairs(body.agentIds) do
    local a = find_agent(ctx, id)
    if not a or a.secret_mode ~= "selective" then
      return reply.bad_request("One or more agents are not selective agents in this project")
    end
  end
  for _, a in ipairs(ctx.state.agents) do
    if a.secret_mode == "selective" then
      local wanted, present = has(body.agentIds, a.id), has(a.connection_ids, c.id)
      if wanted and not present then
        a.connection_ids[#a.connection_ids + 1] = c.id
      elseif present and not wanted then
        drop_id(a.connection_ids, c.id)
        a.session_policies[c.id] = nil
      end
    end
  end
  return reply.success()
end

------------------------------------------------------------------------------
-- v2: grants
------------------------------------------------------------------------------

local function scope_name(scope) return scope == "organization" and "organization" or "workspace" end

local function string_list(x)
  local out = {}
  for i, s in ipairs(x or {}) do out[i] = s end
  return array(out)
end

local function connection_grant_shape(c, scope, g)
  return obj("connectionId", c.id, "provider", c.provider, "label", connection_label(c), "scope", scope_name(scope),
    "access", g.access, "allow", string_list(g.allow), "ask", string_list(g.ask), "resources", g.resources or null)
end

local function agent_grants(ctx, a)
  local conns, secrets = array(), array()
  for _, cid in ipairs(a.connection_ids) do
    local c, scope = store.find_visible(ctx.state, "connections", cid)
    if c and a.grants[cid] then conns[#conns + 1] = connection_grant_shape(c, scope, a.grants[cid]) end
  end
  for _, sid in ipairs(a.secret_ids) do
    local s, scope = store.find_visible(ctx.state, "secrets", sid)
    if s then
      secrets[#secrets + 1] = obj("secretId", s.id, "name", s.name, "type", s.type, "scope", scope_name(scope))
    end
  end
  return obj("agentId", a.id, "mode", "grants", "connections", conns, "secrets", secrets)
end

local function connection_grants(ctx, c)
  local agents = array()
  for _, a in ipairs(store.newest_first(ctx.state.agents)) do
    local g = a.grants[c.id]
    if g and has(a.connection_ids, c.id) then
      agents[#agents + 1] = obj("agentId", a.id, "access", g.access, "allow", string_list(g.allow),
        "ask", string_list(g.ask), "resources", g.resources or null)
    end
  end
  return obj("connectionId", c.id, "agents", agents)
end

local function tool_list(x)
  if typeof(x) ~= "array" then return false, "Invalid input: expected array, received " .. typeof(x) end
  if #x > 200 then return false, "Too big: expected array to have <=200 items" end
  for _, item in ipairs(x) do
    if typeof(item) ~= "string" then return false, "Invalid input: expected string, received " .. typeof(item) end
    if item == "" then return false, "Too small: expected string to have >=1 characters" end
    if #item > 255 then return false, "Too big: expected string to have <=255 characters" end
  end
  return true, x
end

-- Grant body (zod discriminated union on `access`, as the real server):
-- {access:"full", resources?} | {access:"custom", allow:[], ask:[], resources?}.
-- Returns grant | nil, message (422).
local function parse_grant(body)
  if typeof(body) ~= "object" then return nil, "Invalid input: expected object, received " .. typeof(body) end
  if body.access ~= "full" and body.access ~= "custom" then return nil, "Invalid input" end
  local resources = body.resources
  if resources ~= nil and resources ~= null and typeof(resources) ~= "object" then
    return nil, "Invalid input: expected object, received " .. typeof(resources)
  end
  if resources == null then resources = nil end
  if body.access == "full" then return { access = "full", allow = {}, ask = {}, resources = resources } end
  local ok, allow = tool_list(body.allow)
  if not ok then return nil, allow end
  local ask
  ok, ask = tool_list(body.ask)
  if not ok then return nil, ask end
  if #allow + #ask == 0 then return nil, CUSTOM_EMPTY end
  for _, t in ipairs(allow) do
    if has(ask, t) then return nil, BOTH end
  end
  return { access = "custom", allow = allow, ask = ask, resources = resources }
end

-- Tool ids must be concrete catalog tools of the provider (no wildcards).
local function check_tools(grant, provider)
  if grant.access ~= "custom" then return nil end
  local known = catalog.concrete_tools[provider]
  if not known then
    return format('Per-tool permissions need a permission catalog; "%s" has none.', provider)
  end
  local set, unknown, seen = {}, {}, {}
  for _, t in ipairs(known) do set[t] = true end
  for _, list in ipairs({ grant.allow, grant.ask }) do
    for _, t in ipairs(list) do
      if not set[t] and not seen[t] then unknown[#unknown + 1] = t; seen[t] = true end
    end
  end
  if #unknown > 0 then return format('Unknown tool id(s) for "%s": %s', provider, table.concat(unknown, ", ")) end
  return nil
end

-- Shared by both directions: returns agent, connection | nil, reply.
local function grant_targets(ctx, agent_id, connection_id)
  local a = find_agent(ctx, agent_id)
  if not a then return nil, reply.not_found("Agent not found.") end
  local c = store.find_visible(ctx.state, "connections", connection_id)
  if not c then return nil, reply.not_found("Connection not found.") end
  return a, c
end

local function put_connection_grant(ctx, agent_id, connection_id)
  local grant, msg = parse_grant(ctx.body)
  if not grant then return nil, reply.unprocessable(msg) end
  local a, c = grant_targets(ctx, agent_id, connection_id)
  if not a then return nil, c end
  local err = check_tools(grant, c.provider)
  if err then return nil, reply.unprocessable(err) end
  add_id(a.connection_ids, c.id)
  a.grants[c.id] = grant
  return a
end

-- Detaching needs the agent only (the connection may be gone meanwhile).
local function delete_connection_grant(ctx, agent_id, connection_id)
  local a = find_agent(ctx, agent_id)
  if not a then return reply.not_found("Agent not found.") end
  drop_id(a.connection_ids, connection_id)
  a.grants[connection_id] = nil
  return reply.no_content()
end

local function get_grants(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found("Agent not found.") end
  return reply.ok(agent_grants(ctx, a))
end

local function grant_secret(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found("Agent not found.") end
  if not store.find_visible(ctx.state, "secrets", ctx.params.secretId) then
    return reply.not_found("Secret not found.")
  end
  add_id(a.secret_ids, ctx.params.secretId)
  return reply.ok(agent_grants(ctx, a))
end

local function revoke_secret(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found("Agent not found.") end
  drop_id(a.secret_ids, ctx.params.secretId)
  return reply.no_content()
end

local function grant_connection(ctx)
  local a, err = put_connection_grant(ctx, ctx.params.id, ctx.params.connectionId)
  if not a then return err end
  return reply.ok(agent_grants(ctx, a))
end

local function revoke_connection(ctx)
  return delete_connection_grant(ctx, ctx.params.id, ctx.params.connectionId)
end

local function get_connection_grants(ctx)
  local c = store.find_visible(ctx.state, "connections", ctx.params.id)
  if not c then return reply.not_found("Connection not found.") end
  return reply.ok(connection_grants(ctx, c))
end

-- Like the real server, the connection-side PUT answers with the agent's grants.
local function grant_agent(ctx)
  local a, err = put_connection_grant(ctx, ctx.params.agentId, ctx.params.id)
  if not a then return err end
  return reply.ok(agent_grants(ctx, a))
end

local function revoke_agent(ctx)
  return delete_connection_grant(ctx, ctx.params.agentId, ctx.params.id)
end

local P = "project"

return {
  -- v1
  { mode = "v1", method = "GET", pattern = "/agents/granular-access", auth = P, handler = granular_access,
    body = false },
  { mode = "v1", method = "GET", pattern = "/agents/:id/connections", auth = P, handler = get_connections,
    body = false },
  { mode = "v1", method = "PUT", pattern = "/agents/:id/connections", auth = P, handler = set_connections },
  { mode = "v1", method = "GET", pattern = "/connections/:id/agents", auth = P, handler = connection_agents,
    body = false },
  { mode = "v1", method = "PUT", pattern = "/connections/:id/agents", auth = P, handler = set_connection_agents },
  -- v2 tombstones (behind auth, every method)
  { mode = "v2", method = "*", pattern = "/agents/granular-access", auth = P, gone = GONE_GRANULAR },
  { mode = "v2", method = "*", pattern = "/agents/:id/connections", auth = P, gone = GONE_CONNECTIONS },
  { mode = "v2", method = "*", pattern = "/connections/:id/agents", auth = P, gone = GONE_AGENTS },
  -- v2 grants
  { mode = "v2", method = "GET", pattern = "/agents/:id/grants", auth = P, handler = get_grants, body = false },
  { mode = "v2", method = "PUT", pattern = "/agents/:id/grants/secrets/:secretId", auth = P,
    handler = grant_secret, body = false },
  { mode = "v2", method = "DELETE", pattern = "/agents/:id/grants/secrets/:secretId", auth = P,
    handler = revoke_secret, body = false },
  { mode = "v2", method = "PUT", pattern = "/agents/:id/grants/connections/:connectionId", auth = P,
    handler = grant_connection },
  { mode = "v2", method = "DELETE", pattern = "/agents/:id/grants/connections/:connectionId", auth = P,
    handler = revoke_connection, body = false },
  { mode = "v2", method = "GET", pattern = "/connections/:id/grants", auth = P, handler = get_connection_grants,
    body = false },
  { mode = "v2", method = "PUT", pattern = "/connections/:id/grants/agents/:agentId", auth = P,
    handler = grant_agent },
  { mode = "v2", method = "DELETE", pattern = "/connections/:id/grants/agents/:agentId", auth = P,
    handler = revoke_agent, body = false },
}
