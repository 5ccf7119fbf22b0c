-- Organization channel integrations (reference §14.7): the Slack workspace
-- the hosted agents talk through, and links from Slack accounts to members.
--
--   GET    /org/channels                                  integrations, links, adapter
--   PUT    /org/channels/{provider}/credentials           {credential} -> {provider, tenant}
--   DELETE /org/channels/{provider}                       204
--   POST   /org/channels/{provider}/user-links            {externalUserId, userId} -> 201 link
--   DELETE /org/channels/{provider}/user-links/{linkId}   204
--
-- Only "slack" exists. The real server checks the token with Slack; the
-- stand-in never calls out: a token starting with "xoxb-" is valid, its
-- tenant is "T" + the token's first numeric segment (xoxb-<team>-…) or
-- T0000000001, anything else is Slack's invalid_auth. Not modelled: the 409
-- for a token of another Slack workspace than the attached agents'. No
-- channel adapter runs: adapter is always offline. State: org.channels.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null = json.obj, json.array, json.null
local ipairs = ipairs

local PROVIDERS = { slack = true }

local CREDENTIALS = v.object({ { "credential", v.string():min(1):max(4000) } })
local LINK = v.object({
  { "externalUserId", v.string():min(1):max(200) },
  { "userId", v.string():min(1):max(200) },
})

local function channels(ctx)
  ctx.org.channels = ctx.org.channels or { integrations = {}, links = {} }
  return ctx.org.channels
end

local function unknown_provider(ctx)
  if PROVIDERS[ctx.params.provider] then return nil end
  return reply.not_found("Unknown channel provider")
end

local function integration_shape(i)
  return obj("provider", i.provider, "tenant", i.tenant, "connected", true, "createdAt", i.created_at,
    "updatedAt", i.updated_at)
end

local function user_shape(ctx, user_id)
  local u = ctx.org.user
  if u.id == user_id then return obj("id", u.id, "email", u.email, "name", u.name or null) end
  for _, m in ipairs(ctx.org.members or {}) do
    if m.id == user_id then return obj("id", m.id, "email", m.email, "name", m.name or null) end
  end
  return obj("id", user_id, "email", null, "name", null)
end

local function link_shape(ctx, l)
  return obj("id", l.id, "externalUserId", l.external_user_id, "linkedVia", l.linked_via, "createdAt", l.created_at,
    "user", user_shape(ctx, l.user_id))
end

-- The owner, or an active member of the (Enterprise) members directory.
local function active_member(ctx, user_id)
  if ctx.org.user.id == user_id then return true end
  for _, m in ipairs(ctx.org.members or {}) do
    if m.id == user_id and (m.status == nil or m.status == "active") then return true end
  end
  return false
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

local function list(ctx)
  local ch = channels(ctx)
  local integrations, links = array(), array()
  for i, x in ipairs(store.newest_first(ch.integrations)) do integrations[i] = integration_shape(x) end
  for i, l in ipairs(store.newest_first(ch.links)) do links[i] = link_shape(ctx, l) end
  return reply.ok(obj("integrations", integrations, "userLinks", links,
    "adapter", obj("online", false, "lastSeenAt", null)))
end

local function tenant_of(token)
  return "T" .. (token:match("^xoxb%-(%d+)%-") or "0000000001")
end

local function set_credentials(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  local ok, body = CREDENTIALS:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if body.credential:sub(1, 5) ~= "xoxb-" then
    return reply.unprocessable("Slack rejected the request (invalid_auth).")
  end
  local ch, provider, now = channels(ctx), ctx.params.provider, util.iso()
  local i = store.find_by(ch.integrations, "provider", provider)
  if not i then
    i = { id = util.uuid4(), seq = store.next_seq(ctx.org), provider = provider, created_at = now }
    ch.integrations[#ch.integrations + 1] = i
  end
  i.tenant, i.credential, i.updated_at = tenant_of(body.credential), body.credential, now
  return reply.ok(obj("provider", provider, "tenant", i.tenant))
end

-- Disconnecting drops the provider's user links with it.
local function delete(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  local ch, provider = channels(ctx), ctx.params.provider
  local i = store.find_by(ch.integrations, "provider", provider)
  if not i then return reply.not_found("Integration not found") end
  store.remove(ch.integrations, i.id)
  for n = #ch.links, 1, -1 do
    if ch.links[n].provider == provider then table.remove(ch.links, n) end
  end
  return reply.no_content()
end

local function link_user(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  local ok, body = LINK:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local ch, provider = channels(ctx), ctx.params.provider
  if not store.find_by(ch.integrations, "provider", provider) then
    return reply.not_found("Connect the workspace before linking users")
  end
  if not active_member(ctx, body.userId) then
    return reply.unprocessable("That user is not an active member of this organization")
  end
  for _, l in ipairs(ch.links) do
    if l.provider == provider and (l.user_id == body.userId or l.external_user_id == body.externalUserId) then
      return reply.conflict("That member or Slack account is already linked.")
    end
  end
  local l = { id = util.uuid4(), seq = store.next_seq(ctx.org), provider = provider,
    external_user_id = body.externalUserId, user_id = body.userId, linked_via = "admin", created_at = util.iso() }
  ch.links[#ch.links + 1] = l
  return reply.created(link_shape(ctx, l))
end

local function unlink_user(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  local ch = channels(ctx)
  local l = store.find(ch.links, ctx.params.linkId)
  if not l or l.provider ~= ctx.params.provider then return reply.not_found("Link not found") end
  store.remove(ch.links, l.id)
  return reply.no_content()
end

-- admin* routes: with RBAC off they skip even the membership check; the
-- stand-in's one user owns the organization, so any key of it passes.
local U = "user"

return {
  { mode = "v2", method = "GET", pattern = "/org/channels", auth = U, handler = list, body = false },
  { mode = "v2", method = "PUT", pattern = "/org/channels/:provider/credentials", auth = U,
    handler = set_credentials },
  { mode = "v2", method = "DELETE", pattern = "/org/channels/:provider", auth = U, handler = delete, body = false },
  { mode = "v2", method = "POST", pattern = "/org/channels/:provider/user-links", auth = U, handler = link_user },
  { mode = "v2", method = "DELETE", pattern = "/org/channels/:provider/user-links/:linkId", auth = U,
    handler = unlink_user, body = false },
}
