-- Hosted agents (reference §14.4, §14.8, §14.2 rule 6): agent images,
-- models, the direct conversation, channel presences, schedules (crons),
-- memories with revisions, conversations (transcript, stream, attachments,
-- turns, messages), turn abort and the runner list.
--
--   PUT/DELETE /agents/{id}/image, GET /agent-images/{id}/{key} (public)
--   GET  /agents/{id}/models, PUT /agents/{id}/conversations/direct
--   /agents/{id}/channels[/{provider}[/manifest|/complete]]
--   /agents/{id}/crons[/{cronId}[/run]]
--   /agents/{id}/memories[/{memoryId}[/revisions[/{revisionId}[/restore|/redact]]]]
--   /conversations[/{id}[/events|/stream|/attachments[/{aid}]|/turns|/messages]]
--   POST /turns/{id}/abort, GET /runners
--
-- Every agent surface but the image needs kind "hosted": a BYO agent gets
-- the surface's 422, an unknown one 404 `Agent not found`; body and query
-- validation run first (422 first issue). There is no real runner: when the
-- instance has one (ctx.app.runner) a new turn completes at once (events
-- user_message, assistant_message "echo: <message>", turn_completed);
-- without one it stays queued, so it blocks new turns (409), takes
-- follow-ups and can be aborted. The stream answers every event after
-- `since` (or Last-Event-ID) as `event: transcript` / `id: <seq>` /
-- `data: <json>`; it ends there when no turn is in flight, and otherwise
-- stays open (chunked, reply.open: STREAM_HOLD seconds) as a live stream
-- does, with nothing more to say.
-- The HTTP layer's limit (onecli.standin.http MAX_BODY, 11 MiB) is above both
-- uploads' caps, so the routes answer their own 413s. State: images, presences, crons and memories on the
-- agent record; conversations on the workspace table.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null = json.obj, json.array, json.null
local ipairs, pairs, tonumber, format, floor = ipairs, pairs, tonumber, string.format, math.floor
local concat, lower = table.concat, string.lower

local AGENT_NOT_FOUND = "Agent not found"
local SURFACE = {
  channels = "Only hosted agents can join channels",
  crons = "Only hosted agents can hold schedules",
  memories = "Only hosted agents have memory",
  models = "Only hosted agents run a platform-chosen model",
  conversations = "Only hosted agents can hold conversations",
}

local IMAGE_MAX = 1024 * 1024
local FILE_MAX = 10 * 1024 * 1024
local CRONS_PER_AGENT = 20
local MEMORY_MAX = 20000
local PROVIDERS = { slack = true }
local RUNNER_ID = "7d0c6f5e-2b1a-4c3d-8e9f-a0b1c2d3e4f5"

local function origin(ctx)
  return "http://" .. (ctx.req.headers.host or "127.0.0.1:10256")
end

local function opt(x) if x == nil then return null end return x end

-- The agent of the path, checked for kind "hosted" (surface: SURFACE key).
local function hosted_agent(ctx, surface)
  local a = store.find(ctx.state.agents, ctx.params.agentId)
  if not a then return nil, reply.not_found(AGENT_NOT_FOUND) end
  if surface and a.kind ~= "hosted" then return nil, reply.unprocessable(SURFACE[surface]) end
  return a
end

-- Query integer as z.coerce.number().int() with bounds.
local function query_int(value, min, max)
  if value == nil then return true, nil end
  local n = tonumber(value)
  if value == "" then n = 0 end
  if not n or n ~= n then return false, "Invalid input: expected number, received NaN" end
  if n ~= floor(n) then return false, "Invalid input: expected int, received number" end
  if n < min then return false, format("Too small: expected number to be >=%d", min) end
  if max and n > max then return false, format("Too big: expected number to be <=%d", max) end
  return true, n
end

local function single_line(msg)
  return function(s) return not s:find("[\r\n]") end, msg
end

------------------------------------------------------------------------------
-- Images (§14.4): raw bytes, sniffed
------------------------------------------------------------------------------

local function sniff(bytes)
  if bytes:sub(1, 8) == "\137PNG\r\n\26\n" then return "image/png" end
  if bytes:sub(1, 3) == "\255\216\255" then return "image/jpeg" end
  if bytes:sub(1, 6) == "GIF87a" or bytes:sub(1, 6) == "GIF89a" then return "image/gif" end
  if bytes:sub(1, 4) == "RIFF" and bytes:sub(9, 12) == "WEBP" then return "image/webp" end
  return nil
end

local function put_image(ctx)
  local bytes = ctx.req.body or ""
  if #bytes > IMAGE_MAX then return reply.envelope(413, "Images are capped at 1MB.", "invalid_request_error") end
  local a, err = hosted_agent(ctx)
  if not a then return err end
  if bytes == "" then return reply.unprocessable("The image is empty.") end
  local ctype = sniff(bytes)
  if not ctype then return reply.unprocessable("The image must be a PNG, JPEG, WebP, or GIF.") end
  local key = util.hex(32)
  a.image = { key = key, bytes = bytes, ctype = ctype }
  a.image_url = origin(ctx) .. "/v1/agent-images/" .. a.id .. "/" .. key
  return reply.ok(obj("imageUrl", a.image_url))
end

local function delete_image(ctx)
  local a, err = hosted_agent(ctx)
  if not a then return err end
  a.image, a.image_url = nil, nil
  return reply.no_content()
end

-- Public: any workspace of any organization the server knows.
local function get_image(ctx)
  for _, org in ipairs(ctx.app:orgs()) do
    for _, p in ipairs(org.projects) do
      local a = store.find(p.agents, ctx.params.agentId)
      if a and a.image and a.image.key == ctx.params.imageKey then
        return { status = 200, body = a.image.bytes, ctype = a.image.ctype, headers = {
          { "cache-control", "public, max-age=3600" }, { "x-content-type-options", "nosniff" } } }
      end
    end
  end
  return reply.not_found("Not found")
end

------------------------------------------------------------------------------
-- Models (§14.4): the provider of the workspace's model key
------------------------------------------------------------------------------

local ANTHROPIC_MODELS = {
  { "claude-sonnet-4-5", "Claude Sonnet 4.5" }, { "claude-opus-4-1", "Claude Opus 4.1" },
  { "claude-haiku-4-5", "Claude Haiku 4.5" },
}
local EFFORTS = { "low", "medium", "high" }

local function model_key(ctx)
  local own = store.find_by(ctx.state.secrets, "type", "anthropic")
  if own then return own, "workspace" end
  local org = ctx.state.org and store.find_by(ctx.state.org.secrets, "type", "anthropic")
  if org then return org, "organization" end
  return nil
end

local function models(ctx)
  local a, err = hosted_agent(ctx, "models")
  if not a then return err end
  local overridden = a.model ~= nil or a.effort ~= nil
  local key, scope = model_key(ctx)
  if not key then
    return reply.ok(obj("provider", null, "providerLabel", null, "providerScope", null, "models", array(),
      "efforts", array(), "defaults", obj("model", null, "effort", null),
      "selected", obj("model", opt(a.model), "effort", opt(a.effort), "overridden", overridden), "degraded", false))
  end
  local list = array()
  for i, m in ipairs(ANTHROPIC_MODELS) do list[i] = obj("id", m[1], "label", m[2]) end
  local dm, de = ANTHROPIC_MODELS[1][1], "medium"
  return reply.ok(obj("provider", "anthropic", "providerLabel", "Anthropic", "providerScope", scope,
    "models", list, "efforts", array({ EFFORTS[1], EFFORTS[2], EFFORTS[3] }),
    "defaults", obj("model", dm, "effort", de),
    "selected", obj("model", a.model or dm, "effort", a.effort or de, "overridden", overridden), "degraded", false))
end

------------------------------------------------------------------------------
-- Conversations, turns, transcript (§14.8)
------------------------------------------------------------------------------

local function conversations(ctx)
  ctx.state.conversations = ctx.state.conversations or {}
  return ctx.state.conversations
end

local function conversation_shape(c)
  return obj("id", c.id, "agentId", c.agent_id, "source", c.source, "externalRef", opt(c.external_ref),
    "direct", c.direct, "userId", c.user_id, "title", opt(c.title), "createdAt", c.created_at,
    "updatedAt", c.updated_at)
end

local function new_conversation(ctx, a, fields)
  local now = util.iso()
  local c = {
    id = util.uuid4(), seq = store.next_seq(ctx.state), agent_id = a.id, source = fields.source or "web",
    external_ref = fields.externalRef, title = fields.title, direct = fields.direct or false,
    user_id = ctx.org.user.id, created_at = now, updated_at = now,
    events = {}, last_seq = 0, turns = {}, attachments = {},
  }
  local list = conversations(ctx)
  list[#list + 1] = c
  return c
end

local function direct_conversation(ctx, a)
  for _, c in ipairs(conversations(ctx)) do
    if c.agent_id == a.id and c.direct and c.user_id == ctx.org.user.id then return c end
  end
  return new_conversation(ctx, a, { direct = true })
end

local function find_conversation(ctx, id)
  local c = store.find(conversations(ctx), id or ctx.params.conversationId)
  if not c then return nil, reply.not_found("Conversation not found") end
  return c
end

local function append_event(c, turn, kind, payload)
  c.last_seq = c.last_seq + 1
  c.events[#c.events + 1] = { seq = c.last_seq, turn_id = turn and turn.id, type = kind, payload = payload }
  c.updated_at = util.iso()
end

local function event_shape(e)
  return obj("seq", e.seq, "turnId", opt(e.turn_id), "type", e.type, "payload", e.payload)
end

local function attachment_shape(x)
  return obj("id", x.id, "conversationId", x.conversation_id, "name", x.name, "contentType", x.ctype,
    "size", #x.bytes, "status", x.turn_id and "bound" or "pending", "createdAt", x.created_at)
end

local function turn_shape(c, t)
  local atts = array()
  for _, id in ipairs(t.attachment_ids) do
    local x = store.find(c.attachments, id)
    if x then atts[#atts + 1] = attachment_shape(x) end
  end
  return obj("id", t.id, "conversationId", c.id, "status", t.status, "source", t.source, "userId", t.user_id,
    "message", t.message, "error", null, "errorCode", null, "usage", t.usage or null,
    "followUpOfTurnId", opt(t.follow_up_of), "startedAt", opt(t.started_at), "finishedAt", opt(t.finished_at),
    "createdAt", t.created_at, "attachments", atts)
end

local function in_flight(c)
  for _, t in ipairs(c.turns) do
    if t.status == "queued" or t.status == "running" then return t end
  end
  return nil
end

local function finished(t) return t.status ~= "queued" and t.status ~= "running" end

-- How long a stream with a turn in flight stays open.
local STREAM_HOLD = 30

-- A new turn; with a runner it completes at once (the stand-in's "model"
-- echoes the message).
local function start_turn(ctx, c, body, source)
  local now = util.iso()
  local t = {
    id = util.uuid4(), seq = store.next_seq(ctx.state), status = "queued", source = source or "web",
    user_id = ctx.org.user.id, message = body.message or "", attachment_ids = {}, created_at = now,
  }
  for i, id in ipairs(body.attachmentIds or {}) do
    t.attachment_ids[i] = id
    store.find(c.attachments, id).turn_id = t.id
  end
  c.turns[#c.turns + 1] = t
  append_event(c, t, "user_message", obj("text", t.message, "attachmentIds", array(t.attachment_ids)))
  if ctx.app.runner then
    t.status, t.started_at, t.finished_at = "completed", now, util.iso()
    t.usage = obj("inputTokens", #t.message, "outputTokens", #t.message + 6)
    append_event(c, t, "assistant_message", obj("text", "echo: " .. t.message))
    append_event(c, t, "turn_completed", obj("status", "completed"))
  end
  return t
end

local function list_conversations(ctx)
  local out = array()
  for _, c in ipairs(store.newest_first(conversations(ctx))) do
    local mine = not c.direct or c.user_id == ctx.org.user.id
    if mine and (ctx.query.agentId == nil or c.agent_id == ctx.query.agentId) then
      out[#out + 1] = conversation_shape(c)
    end
  end
  return reply.ok(obj("conversations", out))
end

local CREATE_CONVERSATION = v.object({
  { "agentId", v.string():min(1) },
  { "source", v.enum({ "web", "slack", "cron", "watch" }):optional() },
  { "externalRef", v.string():min(1):max(500):optional() },
  { "title", v.string():min(1):max(200):optional() },
})

local function create_conversation(ctx)
  local ok, body = CREATE_CONVERSATION:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  ctx.params.agentId = body.agentId
  local a, err = hosted_agent(ctx, "conversations")
  if not a then return err end
  return reply.created(conversation_shape(new_conversation(ctx, a, body)))
end

local function put_direct(ctx)
  local a, err = hosted_agent(ctx, "conversations")
  if not a then return err end
  return reply.ok(conversation_shape(direct_conversation(ctx, a)))
end

local function get_conversation(ctx)
  local c, err = find_conversation(ctx)
  if not c then return err end
  return reply.ok(conversation_shape(c))
end

local function events(ctx)
  local ok, since = query_int(ctx.query.since, 0)
  if not ok then return reply.unprocessable(since) end
  local limit
  ok, limit = query_int(ctx.query.limit, 1, 500)
  if not ok then return reply.unprocessable(limit) end
  local c, err = find_conversation(ctx)
  if not c then return err end
  since, limit = since or 0, limit or 200
  local out, more, next_since = array(), false, since
  for _, e in ipairs(c.events) do
    if e.seq > since then
      if #out == limit then more = true; break end
      out[#out + 1] = event_shape(e)
      next_since = e.seq
    end
  end
  return reply.ok(obj("events", out, "nextSince", next_since, "hasMore", more))
end

local function stream(ctx)
  local c, err = find_conversation(ctx)
  if not c then return err end
  local since = tonumber(ctx.query.since or ctx.req.headers["last-event-id"] or "") or 0
  local parts = {}
  for _, e in ipairs(c.events) do
    if e.seq > since then
      parts[#parts + 1] = format("event: transcript\nid: %d\ndata: %s\n\n", e.seq, json.encode(event_shape(e)))
    end
  end
  local open = in_flight(c) and STREAM_HOLD or nil
  return { status = 200, body = concat(parts), ctype = "text/event-stream",
    headers = { { "cache-control", "no-cache" } }, chunked = open and true or nil, open = open }
end

local function upload_attachment(ctx)
  local bytes = ctx.req.body or ""
  if #bytes > FILE_MAX then return reply.flat(413, "Files are capped at 10MB.") end
  local c, err = find_conversation(ctx)
  if not c then return err end
  if bytes == "" then return reply.unprocessable("The file is empty.") end
  local name = ctx.query.name
  if name == nil or util.trim(name) == "" then return reply.unprocessable("A file name is required (?name=)") end
  local ctype = ctx.req.headers["content-type"] or ""
  if not ctype:match("^[%w!#$&^_.+-]+/[%w!#$&^_.+-]+%s*;?.*$") then ctype = "application/octet-stream" end
  local x = { id = util.uuid4(), conversation_id = c.id, name = name, ctype = ctype, bytes = bytes,
    created_at = util.iso() }
  c.attachments[#c.attachments + 1] = x
  return reply.created(attachment_shape(x))
end

local function get_attachment(ctx)
  local c, err = find_conversation(ctx)
  if not c then return err end
  local x = store.find(c.attachments, ctx.params.attachmentId)
  if not x then return reply.not_found("Attachment not found") end
  local fname = x.name:gsub('["\\\r\n]', "_")
  return { status = 200, body = x.bytes, ctype = x.ctype, headers = {
    { "content-disposition", 'attachment; filename="' .. fname .. '"' }, { "x-content-type-options", "nosniff" } } }
end

local function list_turns(ctx)
  local c, err = find_conversation(ctx)
  if not c then return err end
  local out = array()
  for i, t in ipairs(c.turns) do out[i] = turn_shape(c, t) end
  return reply.ok(obj("turns", out))
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local TURN = v.object({
  { "message", v.string():max(100000):optional() },
  { "attachmentIds", v.array(v.string():refine(function(s) return s:match(UUID) ~= nil end, "Invalid UUID"))
    :max(5):optional() },
})

-- Body, conversation and attachments of a turn or message request.
local function turn_request(ctx)
  local ok, body = TURN:parse(ctx.body)
  if not ok then return nil, reply.unprocessable(body) end
  if (body.message or "") == "" and #(body.attachmentIds or {}) == 0 then
    return nil, reply.unprocessable("message or attachments required")
  end
  local c, err = find_conversation(ctx)
  if not c then return nil, err end
  for _, id in ipairs(body.attachmentIds or {}) do
    local x = store.find(c.attachments, id)
    if not x or x.turn_id then return nil, reply.not_found("Attachment not found") end
  end
  return c, body
end

local function create_turn(ctx)
  local c, body = turn_request(ctx)
  if not c then return body end
  if in_flight(c) then return reply.conflict("This conversation already has a turn in progress") end
  return reply.created(turn_shape(c, start_turn(ctx, c, body)))
end

-- A message while a turn is in flight steers it (a follow-up).
local function send_message(ctx)
  local c, body = turn_request(ctx)
  if not c then return body end
  local t = in_flight(c)
  if not t then return reply.created(obj("kind", "turn", "turn", turn_shape(c, start_turn(ctx, c, body)))) end
  for _, id in ipairs(body.attachmentIds or {}) do
    t.attachment_ids[#t.attachment_ids + 1] = id
    store.find(c.attachments, id).turn_id = t.id
  end
  append_event(c, t, "follow_up", obj("text", body.message or ""))
  return reply.created(obj("kind", "followUp", "turn", turn_shape(c, t)))
end

local function abort_turn(ctx)
  for _, c in ipairs(conversations(ctx)) do
    local t = store.find(c.turns, ctx.params.turnId)
    if t then
      if finished(t) then return reply.conflict("This turn has already finished") end
      t.status, t.finished_at = "aborted", util.iso()
      append_event(c, t, "turn_aborted", obj("status", "aborted"))
      return reply.ok(obj("aborted", true, "delivered", t.started_at ~= nil))
    end
  end
  return reply.not_found("Turn not found")
end

------------------------------------------------------------------------------
-- Channel presences (§14.8): Slack apps per hosted agent, no Slack calls
------------------------------------------------------------------------------

local COMPLETE = v.object({
  { "botToken", v.string():min(1):max(500) },
  { "appToken", v.string():min(1):max(500):optional() },
  { "signingSecret", v.string():min(1):max(500):optional() },
  { "appId", v.string():min(1):max(100):optional() },
})

local DETACH = v.object({ { "deleteRemote", v.boolean():optional() } })

local function unknown_provider(ctx)
  if PROVIDERS[ctx.params.provider] then return nil end
  return reply.not_found("Unknown channel provider")
end

local function presence_shape(p)
  return obj("id", p.id, "agentId", p.agent_id, "provider", p.provider, "transport", p.transport,
    "status", p.status, "appId", opt(p.app_id), "createdAt", p.created_at, "updatedAt", p.updated_at)
end

local function list_channels(ctx)
  local a, err = hosted_agent(ctx, "channels")
  if not a then return err end
  local presences = array()
  for i, p in ipairs(a.presences or {}) do presences[i] = presence_shape(p) end
  local integrations = ctx.org.channels and ctx.org.channels.integrations or {}
  local slack = store.find_by(integrations, "provider", "slack")
  return reply.ok(obj("presences", presences, "posture", obj("transport", "socket"),
    "orgIntegrations", array({ obj("provider", "slack", "connected", slack ~= nil, "hasCredentials", slack ~= nil) }),
    "adapter", obj("online", false, "lastSeenAt", null)))
end

local function manifest(ctx)
  local a, err = hosted_agent(ctx)
  if not a then return err end
  err = unknown_provider(ctx)
  if err then return err end
  if a.kind ~= "hosted" then return reply.unprocessable(SURFACE.channels) end
  local m = obj(
    "display_information", obj("name", a.name),
    "features", obj("bot_user", obj("display_name", a.name, "always_online", true)),
    "oauth_config", obj("scopes", obj("bot", array({ "app_mentions:read", "chat:write", "im:history", "im:write" }))),
    "settings", obj("socket_mode_enabled", true, "event_subscriptions",
      obj("bot_events", array({ "app_mention", "message.im" }))))
  return reply.ok(obj("provider", ctx.params.provider, "manifest", m,
    "installUrl", "https://api.slack.com/apps?new_app=1&manifest_json=" .. util.percent_encode(json.encode(m))))
end

local function find_presence(a, provider)
  for _, p in ipairs(a.presences or {}) do
    if p.provider == provider then return p end
  end
  return nil
end

local function create_channel(ctx)
  local a, err = hosted_agent(ctx)
  if not a then return err end
  err = unknown_provider(ctx)
  if err then return err end
  if a.kind ~= "hosted" then return reply.unprocessable(SURFACE.channels) end
  if find_presence(a, ctx.params.provider) then
    return reply.conflict("This agent already has a Slack app. Detach it first.")
  end
  local now = util.iso()
  local p = { id = util.uuid4(), agent_id = a.id, provider = ctx.params.provider, transport = "socket",
    status = "pending", created_at = now, updated_at = now }
  a.presences = a.presences or {}
  a.presences[#a.presences + 1] = p
  return reply.created(obj("presenceId", p.id, "transport", "socket", "installUrl", null,
    "settingsUrl", origin(ctx) .. "/agents/" .. a.id .. "/channels"))
end

local function complete_channel(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  local ok, body = COMPLETE:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local a
  a, err = hosted_agent(ctx, "channels")
  if not a then return err end
  local p = find_presence(a, ctx.params.provider)
  if not p then return reply.not_found("No Slack app attached") end
  p.status, p.app_id, p.updated_at = "active", body.appId or p.app_id, util.iso()
  return reply.ok(presence_shape(p))
end

local function delete_channel(ctx)
  local err = unknown_provider(ctx)
  if err then return err end
  if ctx.body ~= null then
    local ok, msg = DETACH:parse(ctx.body)
    if not ok then return reply.unprocessable(msg) end
  end
  local a
  a, err = hosted_agent(ctx, "channels")
  if not a then return err end
  local p = find_presence(a, ctx.params.provider)
  if not p then return reply.not_found("No Slack app attached") end
  store.remove(a.presences, p.id)
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Schedules (§14.8): five-field cron expressions in an IANA zone
------------------------------------------------------------------------------

local CRON_FIELDS = {
  { "minute", 0, 59 }, { "hour", 0, 23 }, { "day-of-month", 1, 31 }, { "month", 1, 12 }, { "day-of-week", 0, 7 },
}
local NAMES = {
  [4] = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9, oct = 10, nov = 11,
    dec = 12 },
  [5] = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 },
}
local MACROS = { ["@yearly"] = "0 0 1 1 *", ["@annually"] = "0 0 1 1 *", ["@monthly"] = "0 0 1 * *",
  ["@weekly"] = "0 0 * * 0", ["@daily"] = "0 0 * * *", ["@midnight"] = "0 0 * * *", ["@hourly"] = "0 * * * *" }
local DAYS_IN_MONTH = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local AREAS = { Africa = true, America = true, Antarctica = true, Arctic = true, Asia = true, Atlantic = true,
  Australia = true, Europe = true, Indian = true, Pacific = true, Etc = true }

-- Parses one field into a set of allowed values; nil, message when invalid.
local function cron_field(text, i)
  local label, min, max = CRON_FIELDS[i][1], CRON_FIELDS[i][2], CRON_FIELDS[i][3]
  local set, wild = {}, text == "*" or text == "?"
  local function value(s)
    local n = tonumber(s) or (NAMES[i] and NAMES[i][lower(s)])
    if not n or n ~= floor(n) or n < min or n > max then
      return nil, format("%s value %q is out of range (%d-%d)", label, s, min, max)
    end
    return n
  end
  for item in (text .. ","):gmatch("([^,]*),") do
    local range, step = item:match("^([^/]*)/(%d+)$")
    range, step = range or item, tonumber(step) or 1
    if step < 1 then return nil, format("%s step must be at least 1", label) end
    local lo, hi
    if range == "*" or range == "?" then
      lo, hi = min, max
    elseif range:find("-", 1, true) then
      local a, b = range:match("^(%w+)%-(%w+)$")
      if not a then return nil, format("%s field %q is not a value, range or step", label, item) end
      local err
      lo, err = value(a)
      if not lo then return nil, err end
      hi, err = value(b)
      if not hi then return nil, err end
      if lo > hi then return nil, format("%s range %q runs backwards", label, range) end
    elseif range:match("^%w+$") then
      local err
      lo, err = value(range)
      if not lo then return nil, err end
      hi = step > 1 and max or lo
    else
      return nil, format("%s field %q is not a value, range or step", label, item)
    end
    for n = lo, hi, step do set[i == 5 and n % 7 or n] = true end
  end
  return { set = set, wild = wild }
end

-- Returns true | false, message (the 422 text).
local function check_schedule(expr)
  local text = MACROS[util.trim(expr)] or expr
  local parts = {}
  for p in text:gmatch("%S+") do parts[#parts + 1] = p end
  if #parts ~= 5 then
    return false, format("Invalid schedule expression: expected 5 fields, got %d", #parts)
  end
  local f = {}
  for i = 1, 5 do
    local parsed, err = cron_field(parts[i], i)
    if not parsed then return false, "Invalid schedule expression: " .. err end
    f[i] = parsed
  end
  -- With a restricted day of week, cron fires when either day field matches.
  if f[5].wild then
    for month in pairs(f[4].set) do
      for day in pairs(f[3].set) do
        if day <= DAYS_IN_MONTH[month] then return true end
      end
    end
    return false, "This schedule never fires. Check the expression"
  end
  return true
end

local function known_timezone(tz)
  if tz == "UTC" then return true end
  local area, rest = tz:match("^(%u%a+)/([%w_+%-/]+)$")
  return area ~= nil and AREAS[area] == true and not rest:find("//", 1, true) and rest:sub(-1) ~= "/"
end

local function cron_fields(optional)
  local function f(schema) if optional then return schema:optional() end return schema end
  return {
    { "name", f(v.string():min(1):max(100)) },
    { "prompt", f(v.string():min(1):max(10000)) },
    { "schedule", f(v.string():min(1):max(100)) },
    { "timezone", f(v.string():min(1):max(100)) },
  }
end

local CREATE_CRON = v.object(cron_fields(false), { strict = true })
local PATCH_FIELDS = cron_fields(true)
PATCH_FIELDS[#PATCH_FIELDS + 1] = { "enabled", v.boolean():optional() }
local PATCH_CRON = v.object(PATCH_FIELDS, { strict = true })

local function cron_shape(c)
  return obj("id", c.id, "agentId", c.agent_id, "conversationId", c.conversation_id, "name", c.name,
    "prompt", c.prompt, "schedule", c.schedule, "timezone", c.timezone, "enabled", c.enabled,
    "lastRunAt", opt(c.last_run_at), "createdAt", c.created_at, "updatedAt", c.updated_at)
end

local function check_cron_values(body)
  if body.timezone and not known_timezone(body.timezone) then
    return reply.unprocessable(format('Unknown timezone "%s". Use an IANA zone name like "America/Los_Angeles"',
      body.timezone))
  end
  if body.schedule then
    local ok, msg = check_schedule(body.schedule)
    if not ok then return reply.unprocessable(msg) end
  end
  return nil
end

local function find_cron(ctx, a)
  local c = store.find(a.crons or {}, ctx.params.cronId)
  if not c then return nil, reply.not_found("Schedule not found") end
  return c
end

local function list_crons(ctx)
  local a, err = hosted_agent(ctx, "crons")
  if not a then return err end
  local out = array()
  for i, c in ipairs(a.crons or {}) do out[i] = cron_shape(c) end
  return reply.ok(obj("crons", out))
end

-- A schedule delivers into its creator's direct conversation, so a BYO
-- agent fails on the conversation check (recorded).
local function create_cron(ctx)
  local ok, body = CREATE_CRON:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local a, err = hosted_agent(ctx, "conversations")
  if not a then return err end
  err = check_cron_values(body)
  if err then return err end
  a.crons = a.crons or {}
  if #a.crons >= CRONS_PER_AGENT then
    return reply.unprocessable(format("This agent already has %d schedules. Cancel one first", #a.crons))
  end
  local now = util.iso()
  local c = { id = util.uuid4(), agent_id = a.id, conversation_id = direct_conversation(ctx, a).id,
    name = body.name, prompt = body.prompt, schedule = body.schedule, timezone = body.timezone, enabled = true,
    created_at = now, updated_at = now }
  a.crons[#a.crons + 1] = c
  return reply.created(cron_shape(c))
end

local function patch_cron(ctx)
  local ok, body = PATCH_CRON:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if #json.keys(body) == 0 then return reply.unprocessable("Nothing to update") end
  local a, err = hosted_agent(ctx, "crons")
  if not a then return err end
  local c
  c, err = find_cron(ctx, a)
  if not c then return err end
  err = check_cron_values(body)
  if err then return err end
  for _, k in ipairs({ "name", "prompt", "schedule", "timezone", "enabled" }) do
    if body[k] ~= nil then c[k] = body[k] end
  end
  c.updated_at = util.iso()
  return reply.ok(cron_shape(c))
end

-- Running now starts a turn in the schedule's conversation (a follow-up
-- of nothing: when a turn is still queued there, the run only stamps).
local function run_cron(ctx)
  local a, err = hosted_agent(ctx, "crons")
  if not a then return err end
  local c
  c, err = find_cron(ctx, a)
  if not c then return err end
  if not c.enabled then return reply.unprocessable("This schedule is paused") end
  local conv = store.find(conversations(ctx), c.conversation_id) or direct_conversation(ctx, a)
  c.conversation_id = conv.id
  if not in_flight(conv) then start_turn(ctx, conv, { message = c.prompt }, "cron") end
  c.last_run_at = util.iso()
  return reply.ok(cron_shape(c))
end

local function delete_cron(ctx)
  local a, err = hosted_agent(ctx, "crons")
  if not a then return err end
  local c
  c, err = find_cron(ctx, a)
  if not c then return err end
  store.remove(a.crons, c.id)
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Memories (§14.8): keyed notes with revisions
------------------------------------------------------------------------------

local KEY_MSG = 'Keys are lowercase words separated by single hyphens, like "deploy-notes"'
local CONTENT_MSG = "Memory content is limited to 20,000 characters: split it into linked memories"

local function valid_key(s)
  return #s <= 100 and s:match("^[a-z0-9][a-z0-9%-]*$") ~= nil and s:sub(-1) ~= "-" and not s:find("--", 1, true)
end

local CREATE_MEMORY = v.object({
  { "key", v.string():refine(valid_key, KEY_MSG) },
  { "content", v.string():min(1):max(MEMORY_MAX, CONTENT_MSG) },
  { "title", v.string():min(1):max(200):refine(single_line("A title is a single line")):optional() },
  { "description", v.string():min(1):max(500):refine(single_line("A description is a single line")):optional() },
}, { strict = true })

local PATCH_MEMORY = v.object({
  { "title", v.string():min(1):max(200):refine(single_line("A title is a single line")):nullable():optional() },
  { "description", v.string():min(1):max(500):refine(single_line("A description is a single line"))
    :nullable():optional() },
  { "content", v.string():min(1):max(MEMORY_MAX, CONTENT_MSG):optional() },
}, { strict = true })

local function memory_shape(m, with_content)
  local o = obj("id", m.id, "agentId", m.agent_id, "key", m.key, "title", opt(m.title),
    "description", opt(m.description))
  if with_content then json.set(o, "content", m.content) end
  json.set(o, "createdAt", m.created_at)
  json.set(o, "updatedAt", m.updated_at)
  return o
end

local function revision_shape(m, r)
  return obj("id", r.id, "memoryId", m.id, "version", r.version, "title", opt(r.title),
    "description", opt(r.description), "content", r.redacted and "[redacted]" or r.content,
    "redacted", r.redacted, "current", m.revisions[#m.revisions] == r, "createdAt", r.created_at)
end

local function add_revision(m)
  local r = { id = util.uuid4(), version = #m.revisions + 1, title = m.title, description = m.description,
    content = m.content, redacted = false, created_at = util.iso() }
  m.revisions[#m.revisions + 1] = r
  m.updated_at = r.created_at
  return r
end

local function memory_detail(m)
  local o = memory_shape(m, true)
  json.set(o, "latestRevision", revision_shape(m, m.revisions[#m.revisions]))
  return o
end

local function find_memory(ctx)
  local a, err = hosted_agent(ctx, "memories")
  if not a then return nil, err end
  local m = store.find(a.memories or {}, ctx.params.memoryId)
  if not m then return nil, reply.not_found("Memory not found") end
  return m, a
end

local function find_revision(ctx)
  local m, a = find_memory(ctx)
  if not m then return nil, a end
  local r = store.find(m.revisions, ctx.params.revisionId)
  if not r then return nil, reply.not_found("Revision not found") end
  return r, m
end

-- Without q: the index (no bodies), newest first. With q: hits ranked by
-- how often the words occur in key, title, description and content.
local function list_memories(ctx)
  local q = ctx.query.q
  if q ~= nil and (util.ulen(q) < 1 or util.ulen(q) > 500) then
    return reply.unprocessable(q == "" and "Too small: expected string to have >=1 characters"
      or "Too big: expected string to have <=500 characters")
  end
  local a, err = hosted_agent(ctx, "memories")
  if not a then return err end
  local out = array()
  if not q then
    for i, m in ipairs(store.newest_first(a.memories or {})) do out[i] = memory_shape(m) end
    return reply.ok(obj("memories", out))
  end
  local hits = {}
  for _, m in ipairs(a.memories or {}) do
    local text = lower(concat({ m.key, m.title or "", m.description or "", m.content }, "\n"))
    local score = 0
    for word in lower(q):gmatch("%S+") do
      local from = 1
      for _ = 1, 1000 do
        local s, e = text:find(word, from, true)
        if not s then break end
        score, from = score + 1, e + 1
      end
    end
    if score > 0 then hits[#hits + 1] = { m = m, score = score } end
  end
  table.sort(hits, function(x, y)
    if x.score ~= y.score then return x.score > y.score end
    return x.m.seq > y.m.seq
  end)
  for i, h in ipairs(hits) do
    local o = memory_shape(h.m)
    json.set(o, "score", h.score)
    out[i] = o
  end
  return reply.ok(obj("memories", out))
end

local function create_memory(ctx)
  local ok, body = CREATE_MEMORY:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local a, err = hosted_agent(ctx, "memories")
  if not a then return err end
  a.memories = a.memories or {}
  if store.find_by(a.memories, "key", body.key) then
    return reply.conflict(format('A memory named "%s" already exists', body.key))
  end
  local now = util.iso()
  local m = { id = util.uuid4(), seq = store.next_seq(ctx.state), agent_id = a.id, key = body.key,
    title = body.title, description = body.description, content = body.content, created_at = now,
    updated_at = now, revisions = {} }
  add_revision(m)
  a.memories[#a.memories + 1] = m
  return reply.created(memory_shape(m, true))
end

local function get_memory(ctx)
  local m, err = find_memory(ctx)
  if not m then return err end
  return reply.ok(memory_detail(m))
end

local function patch_memory(ctx)
  local ok, body = PATCH_MEMORY:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if #json.keys(body) == 0 then return reply.unprocessable("Nothing to update") end
  local m, err = find_memory(ctx)
  if not m then return err end
  for _, k in ipairs({ "title", "description", "content" }) do
    if body[k] == null then m[k] = nil elseif body[k] ~= nil then m[k] = body[k] end
  end
  add_revision(m)
  return reply.ok(memory_shape(m, true))
end

local function delete_memory(ctx)
  local m, a = find_memory(ctx)
  if not m then return a end
  store.remove(a.memories, m.id)
  return reply.no_content()
end

local function list_revisions(ctx)
  local m, err = find_memory(ctx)
  if not m then return err end
  local out = array()
  for i = #m.revisions, 1, -1 do out[#out + 1] = revision_shape(m, m.revisions[i]) end
  return reply.ok(obj("revisions", out))
end

local function get_revision(ctx)
  local r, m = find_revision(ctx)
  if not r then return m end
  return reply.ok(revision_shape(m, r))
end

local function restore_revision(ctx)
  local r, m = find_revision(ctx)
  if not r then return m end
  if m.revisions[#m.revisions] == r then return reply.unprocessable("This is already the current version") end
  if r.redacted then return reply.unprocessable("This revision was redacted: its content is gone") end
  m.title, m.description, m.content = r.title, r.description, r.content
  add_revision(m)
  return reply.ok(memory_shape(m, true))
end

local function redact_revision(ctx)
  local r, m = find_revision(ctx)
  if not r then return m end
  if m.revisions[#m.revisions] == r then
    return reply.unprocessable("This is the current version: edit or delete the memory first, "
      .. "then redact the old revision")
  end
  if r.redacted then return reply.unprocessable("Already redacted") end
  r.redacted, r.content = true, nil
  return reply.ok(revision_shape(m, r))
end

------------------------------------------------------------------------------
-- Runners (§14.8): one online runner when the instance has one
------------------------------------------------------------------------------

local function runners(ctx)
  local list = array()
  if ctx.app.runner then
    local sandboxes = 0
    for _, p in ipairs(ctx.org.projects) do
      for _, a in ipairs(p.agents) do
        if a.kind == "hosted" then sandboxes = sandboxes + 1 end
      end
    end
    list[1] = obj("id", RUNNER_ID, "name", "standin-runner", "online", true, "lastSeenAt", util.iso(),
      "sandboxCount", sandboxes, "capabilities", array({ "claude-code" }), "heldAwakeCount", 0,
      "heldAwakeCeiling", 4)
  end
  return reply.ok(obj("runners", list))
end

local P = "project"
local A = "/agents/:agentId"
local M = A .. "/memories/:memoryId"
local C = "/conversations/:conversationId"

local routes = {
  -- images
  { method = "PUT", pattern = A .. "/image", auth = P, handler = put_image, body = false },
  { method = "DELETE", pattern = A .. "/image", auth = P, handler = delete_image, body = false },
  { method = "GET", pattern = "/agent-images/:agentId/:imageKey", auth = "none", handler = get_image, body = false },
  -- models, direct conversation
  { method = "GET", pattern = A .. "/models", auth = P, handler = models, body = false },
  { method = "PUT", pattern = A .. "/conversations/direct", auth = P, handler = put_direct, body = false },
  -- channels
  { method = "GET", pattern = A .. "/channels", auth = P, handler = list_channels, body = false },
  { method = "GET", pattern = A .. "/channels/:provider/manifest", auth = P, handler = manifest, body = false },
  { method = "POST", pattern = A .. "/channels/:provider", auth = P, handler = create_channel, body = false },
  { method = "POST", pattern = A .. "/channels/:provider/complete", auth = P, handler = complete_channel },
  { method = "DELETE", pattern = A .. "/channels/:provider", auth = P, handler = delete_channel },
  -- crons
  { method = "GET", pattern = A .. "/crons", auth = P, handler = list_crons, body = false },
  { method = "POST", pattern = A .. "/crons", auth = P, handler = create_cron },
  { method = "PATCH", pattern = A .. "/crons/:cronId", auth = P, handler = patch_cron },
  { method = "POST", pattern = A .. "/crons/:cronId/run", auth = P, handler = run_cron, body = false },
  { method = "DELETE", pattern = A .. "/crons/:cronId", auth = P, handler = delete_cron, body = false },
  -- memories
  { method = "GET", pattern = A .. "/memories", auth = P, handler = list_memories, body = false },
  { method = "POST", pattern = A .. "/memories", auth = P, handler = create_memory },
  { method = "GET", pattern = M, auth = P, handler = get_memory, body = false },
  { method = "PATCH", pattern = M, auth = P, handler = patch_memory },
  { method = "DELETE", pattern = M, auth = P, handler = delete_memory, body = false },
  { method = "GET", pattern = M .. "/revisions", auth = P, handler = list_revisions, body = false },
  { method = "GET", pattern = M .. "/revisions/:revisionId", auth = P, handler = get_revision, body = false },
  { method = "POST", pattern = M .. "/revisions/:revisionId/restore", auth = P, handler = restore_revision,
    body = false },
  { method = "POST", pattern = M .. "/revisions/:revisionId/redact", auth = P, handler = redact_revision,
    body = false },
  -- conversations
  { method = "GET", pattern = "/conversations", auth = P, handler = list_conversations, body = false },
  { method = "POST", pattern = "/conversations", auth = P, handler = create_conversation },
  { method = "GET", pattern = C, auth = P, handler = get_conversation, body = false },
  { method = "GET", pattern = C .. "/events", auth = P, handler = events, body = false },
  { method = "GET", pattern = C .. "/stream", auth = P, handler = stream, body = false },
  { method = "POST", pattern = C .. "/attachments", auth = P, handler = upload_attachment, body = false },
  { method = "GET", pattern = C .. "/attachments/:attachmentId", auth = P, handler = get_attachment, body = false },
  { method = "GET", pattern = C .. "/turns", auth = P, handler = list_turns, body = false },
  { method = "POST", pattern = C .. "/turns", auth = P, handler = create_turn },
  { method = "POST", pattern = C .. "/messages", auth = P, handler = send_message },
  { method = "POST", pattern = "/turns/:turnId/abort", auth = P, handler = abort_turn, body = false },
  -- runners (deployment-wide; any member)
  { method = "GET", pattern = "/runners", auth = "user", handler = runners, body = false },
}

for _, r in ipairs(routes) do r.mode = "v2" end

return routes
