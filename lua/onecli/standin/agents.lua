-- /agents routes. v1 (1.41.0): default agent, secret modes, assigned
-- secrets. v2 (2.0.1): agent kinds (hosted ones need a runner), no default
-- agent, ?include=grants-summary; retired routes 410. The hosted surfaces
-- (images, crons, memories, ...) are onecli.standin.hosted.
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null = json.obj, json.array, json.null
local ipairs = ipairs

local ID_MSG = "Identifier must be 1-50 characters, start with a letter or number, "
  .. "and contain only lowercase letters, numbers, and hyphens"
local PARENT_MSG = "Parent identifier must be 1-50 characters, start with a letter or number, "
  .. "and contain only lowercase letters, numbers, and hyphens"

local GONE_DEFAULT = "GET /v1/agents/default was removed: the default-agent concept is retired. "
  .. "List agents with GET /v1/agents and pass one explicitly to /v1/container-config "
  .. "(`agent=`, or pin with `onecli config set agent <identifier>`)."
local GONE_SET_DEFAULT = "POST /v1/agents/:agentId/set-default was removed: new default agents can no "
  .. "longer be set. Pin a machine to a specific agent instead (`onecli config set agent <identifier>`)."
-- The real v2.0.1 wording (removed-routes.ts); answered for every method.
local WORKSPACE_REPLACEMENT = "Workspace access is granted per agent: PUT "
  .. "/v1/agents/:agentId/grants/connections/:connectionId and /v1/agents/:agentId/grants/secrets/:secretId."
local GONE_SECRET_MODE = "PATCH /v1/agents/:agentId/secret-mode was removed: agents are always selective now. "
  .. "Attach credentials with PUT /v1/agents/:agentId/grants/connections/:connectionId or "
  .. "/grants/secrets/:secretId instead. " .. WORKSPACE_REPLACEMENT
local GONE_GROUPS = "/v1/agents/:agentId/groups was removed. Agent groups were removed: organize people with "
  .. "user groups (/v1/org/groups); organization policy rules target users or user groups."
local GONE_SECRETS = "/v1/agents/:agentId/secrets was removed: grant a secret with an allow rule naming the "
  .. "agent and targeting the secret. " .. WORKSPACE_REPLACEMENT

local function valid_identifier(s)
  return #s >= 1 and #s <= 50 and s:match("^[a-z0-9][a-z0-9-]*$") ~= nil
end

local function name() return v.string():trim():min(1):max(255) end

local CREATE_V1 = v.object({
  { "name", name() },
  { "identifier", v.string():refine(valid_identifier, ID_MSG) },
  { "parentIdentifier", v.string():refine(valid_identifier, PARENT_MSG):optional() },
})

local CREATE_V2 = v.object({
  { "name", name() },
  { "identifier", v.string():refine(valid_identifier, ID_MSG) },
  { "parentIdentifier", v.string():refine(valid_identifier, PARENT_MSG):optional() },
  { "kind", v.enum({ "byo", "hosted" }):optional() },
  { "harness", v.string():min(1):optional() },
  { "model", v.string():min(1):optional() },
  { "instructions", v.string():max(20000):optional() },
})

local RENAME_V1 = v.object({ { "name", name() } })

local PATCH_V2 = v.object({
  { "name", name():optional() },
  { "instructions", v.string():max(20000):nullable():optional() },
  { "model", v.string():min(1):nullable():optional() },
  { "effort", v.string():min(1):nullable():optional() },
})

local SECRET_MODE = v.object({ { "mode", v.enum({ "all", "selective" }) } })
local SECRET_IDS = v.object({ { "secretIds", v.array(v.string()) } })

-- A hosted agent created without a harness runs this one.
local DEFAULT_HARNESS = "claude-code"

local function find_agent(ctx)
  return store.find(ctx.state.agents, ctx.params.id)
end

local AGENT_NOT_FOUND = "Agent not found"

------------------------------------------------------------------------------
-- Shapes
------------------------------------------------------------------------------

local function list_item_v1(a)
  return obj("id", a.id, "name", a.name, "identifier", a.identifier, "accessToken", a.access_token,
    "isDefault", a.is_default, "secretMode", a.secret_mode, "createdAt", a.created_at,
    "_count", obj("agentSecrets", #a.secret_ids, "agentAppConnections", #a.connection_ids))
end

-- A hosted agent's channel presences (onecli.standin.hosted keeps them).
local function channels_of(a)
  local out = array()
  for i, p in ipairs(a.presences or {}) do out[i] = obj("provider", p.provider, "status", p.status) end
  return out
end

local function list_item_v2(a)
  return obj("id", a.id, "name", a.name, "identifier", a.identifier, "accessToken", a.access_token,
    "kind", a.kind, "createdAt", a.created_at, "channels", channels_of(a), "imageUrl", a.image_url or null,
    "lastSeenAt", null, "workingInBackground", false)
end

local function detail_v2(a)
  return obj("id", a.id, "name", a.name, "identifier", a.identifier, "kind", a.kind,
    "harness", a.harness or null, "model", a.model or null, "instructions", a.instructions or null,
    "createdAt", a.created_at, "channels", channels_of(a), "imageUrl", a.image_url or null,
    "recentRequestAt", null, "workingInBackground", false)
end

-- ?include=grants-summary: the agent's grants as chips (stand-in entries:
-- one per granted connection and secret visible to the workspace).
local function grants_summary(ctx, a)
  local entries = array()
  for _, cid in ipairs(a.connection_ids) do
    local c = a.grants[cid] and store.find_visible(ctx.state, "connections", cid)
    if c then
      entries[#entries + 1] = obj("kind", "connection", "id", c.id, "provider", c.provider,
        "access", a.grants[cid].access)
    end
  end
  for _, sid in ipairs(a.secret_ids) do
    local s = store.find_visible(ctx.state, "secrets", sid)
    if s then entries[#entries + 1] = obj("kind", "secret", "id", s.id, "name", s.name) end
  end
  return obj("mode", "grants", "entries", entries, "total", #entries)
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

local function list(ctx)
  local out = array()
  if ctx.mode == "v1" then
    for _, a in ipairs(store.agents_ordered(ctx.state)) do out[#out + 1] = list_item_v1(a) end
    return reply.ok(out)
  end
  local summary = false
  for inc in (ctx.query.include or ""):gmatch("[^,]+") do
    if inc ~= "grants-summary" then return reply.unprocessable("Unknown include: " .. inc) end
    summary = true
  end
  for _, a in ipairs(store.newest_first(ctx.state.agents)) do
    local item = list_item_v2(a)
    if summary then json.set(item, "grantsSummary", grants_summary(ctx, a)) end
    out[#out + 1] = item
  end
  return reply.ok(out)
end

local function copy(items)
  local out = {}
  for i, x in ipairs(items) do out[i] = x end
  return out
end

-- v1: inherit from the parent if it exists, else mode "all" plus the
-- project's oldest anthropic secret.
local function inherited_fields(state, parent_identifier)
  local parent = parent_identifier and store.find_by(state.agents, "identifier", parent_identifier)
  if parent then
    return { secret_mode = parent.secret_mode, secret_ids = copy(parent.secret_ids),
      connection_ids = copy(parent.connection_ids) }
  end
  local oldest
  for _, s in ipairs(state.secrets) do
    if s.type == "anthropic" and (not oldest or s.seq < oldest.seq) then oldest = s end
  end
  return { secret_mode = "all", secret_ids = oldest and { oldest.id } or {}, connection_ids = {} }
end

local function create_v1(ctx, body)
  local fields = inherited_fields(ctx.state, body.parentIdentifier)
  fields.name, fields.identifier = body.name, body.identifier
  local a = store.add_agent(ctx.state, fields)
  return reply.created(obj("id", a.id, "name", a.name, "identifier", a.identifier, "createdAt", a.created_at))
end

local function create_v2(ctx, body)
  local hosted = body.kind == "hosted"
  for _, field in ipairs({ "harness", "model", "instructions" }) do
    if body[field] ~= nil and not hosted then
      return reply.flat(400, field .. " is only valid for hosted agents")
    end
  end
  if hosted and not ctx.app.runner then
    return reply.unprocessable("No runner is available to host this agent. Start a runner and try again.")
  end
  local a = store.add_agent(ctx.state, { name = body.name, identifier = body.identifier,
    kind = hosted and "hosted" or "byo", harness = hosted and (body.harness or DEFAULT_HARNESS) or nil,
    model = body.model, instructions = body.instructions })
  return reply.created(obj("id", a.id, "name", a.name, "identifier", a.identifier, "kind", a.kind,
    "harness", a.harness or null, "model", a.model or null, "instructions", a.instructions or null,
    "createdAt", a.created_at, "llmKeys", array()))
end

local function create(ctx)
  local ok, body = (ctx.mode == "v1" and CREATE_V1 or CREATE_V2):parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if store.find_by(ctx.state.agents, "identifier", body.identifier) then
    return reply.conflict("An agent with this identifier already exists")
  end
  if ctx.mode == "v1" then return create_v1(ctx, body) end
  return create_v2(ctx, body)
end

local function get_one(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  return reply.ok(detail_v2(a))
end

local function patch_v2(ctx)
  local ok, body = PATCH_V2:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if #json.keys(body) == 0 then return reply.flat(400, "At least one field to update is required") end
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  if a.kind ~= "hosted" and (body.instructions ~= nil or body.model ~= nil or body.effort ~= nil) then
    return reply.bad_request("instructions, model and effort are only valid for hosted agents")
  end
  if body.name then a.name = body.name end
  for _, field in ipairs({ "instructions", "model", "effort" }) do
    if body[field] == null then a[field] = nil elseif body[field] ~= nil then a[field] = body[field] end
  end
  return reply.success()
end

local function rename(ctx)
  if ctx.mode == "v2" then return patch_v2(ctx) end
  local ok, body = RENAME_V1:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  a.name = body.name
  return reply.success()
end

local function delete(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  if a.is_default then return reply.bad_request("Cannot delete the default agent") end
  store.remove(ctx.state.agents, a.id)
  return reply.no_content()
end

local function get_default(ctx)
  local a = store.default_agent(ctx.state)
  if not a then return reply.flat(404, "No default agent found") end
  return reply.ok(obj("id", a.id, "name", a.name, "accessToken", a.access_token, "isDefault", true,
    "createdAt", a.created_at))
end

local function set_default(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  if a.is_default then return reply.bad_request("Agent is already the default") end
  for _, other in ipairs(ctx.state.agents) do other.is_default = false end
  a.is_default = true
  return reply.success()
end

local function regenerate_token(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  a.access_token = store.new_token()
  return reply.ok(obj("accessToken", a.access_token))
end

local function secret_mode(ctx)
  local ok, body = SECRET_MODE:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  a.secret_mode = body.mode
  return reply.success()
end

local function get_secrets(ctx)
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  return reply.ok(array(copy(a.secret_ids)))
end

local function put_secrets(ctx)
  local ok, body = SECRET_IDS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local a = find_agent(ctx)
  if not a then return reply.not_found(AGENT_NOT_FOUND) end
  local ids, seen = {}, {}
  for _, id in ipairs(body.secretIds) do
    if not store.find(ctx.state.secrets, id) then return reply.bad_request("One or more secrets not found") end
    if not seen[id] then ids[#ids + 1] = id; seen[id] = true end
  end
  a.secret_ids = ids
  return reply.success()
end

local P = "project"

return {
  { method = "GET", pattern = "/agents", auth = P, handler = list, body = false },
  { method = "POST", pattern = "/agents", auth = P, handler = create },
  -- v1
  { mode = "v1", method = "GET", pattern = "/agents/default", auth = P, handler = get_default, body = false },
  { mode = "v1", method = "POST", pattern = "/agents/:id/set-default", auth = P, handler = set_default,
    body = false },
  { mode = "v1", method = "PATCH", pattern = "/agents/:id/secret-mode", auth = P, handler = secret_mode },
  { mode = "v1", method = "GET", pattern = "/agents/:id/secrets", auth = P, handler = get_secrets, body = false },
  { mode = "v1", method = "PUT", pattern = "/agents/:id/secrets", auth = P, handler = put_secrets },
  -- v2 tombstones (behind auth)
  { mode = "v2", method = "*", pattern = "/agents/default", auth = P, gone = GONE_DEFAULT },
  { mode = "v2", method = "POST", pattern = "/agents/:id/set-default", auth = P, gone = GONE_SET_DEFAULT },
  { mode = "v2", method = "*", pattern = "/agents/:id/secret-mode", auth = P, gone = GONE_SECRET_MODE },
  { mode = "v2", method = "*", pattern = "/agents/:id/secrets", auth = P, gone = GONE_SECRETS },
  { mode = "v2", method = "*", pattern = "/agents/:id/groups/*", auth = P, gone = GONE_GROUPS },
  { mode = "v2", method = "GET", pattern = "/agents/:id", auth = P, handler = get_one, body = false },
  -- both
  { method = "PATCH", pattern = "/agents/:id", auth = P, handler = rename },
  { method = "DELETE", pattern = "/agents/:id", auth = P, handler = delete, body = false },
  { method = "POST", pattern = "/agents/:id/regenerate-token", auth = P, handler = regenerate_token,
    body = false },
}
