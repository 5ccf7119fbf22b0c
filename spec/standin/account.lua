-- /health, /user, /user/api-key routes.
local json = require("standin.json")
local util = require("standin.util")
local reply = require("standin.reply")
local v = require("standin.validate")

local obj = json.obj

local USER_PATCH = v.object({ { "name", v.string():trim():min(1):max(255) } })

local function health(ctx)
  return reply.ok(obj("status", "ok", "version", ctx.app.version, "timestamp", util.iso()))
end

local function get_user(ctx)
  local u = ctx.state.user
  return reply.ok(obj("id", u.id, "email", u.email, "name", u.name or json.null, "createdAt", u.created_at))
end

local function patch_user(ctx)
  local ok, body = USER_PATCH:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local u = ctx.state.user
  u.name = body.name
  return reply.ok(obj("id", u.id, "email", u.email, "name", u.name))
end

local function get_api_key(ctx)
  return reply.ok(obj("apiKey", ctx.state.api_key))
end

-- The previous key stops working at once (v2 checks keys on every request).
local function regenerate_api_key(ctx)
  ctx.state.api_key = "oc_" .. util.hex(64)
  return reply.ok(obj("apiKey", ctx.state.api_key))
end

return {
  { method = "GET", pattern = "/health", auth = "none", handler = health, body = false },
  { method = "GET", pattern = "/user", auth = "user", handler = get_user, body = false },
  { method = "PATCH", pattern = "/user", auth = "user", handler = patch_user },
  { method = "GET", pattern = "/user/api-key", auth = "project400", handler = get_api_key, body = false },
  { method = "POST", pattern = "/user/api-key/regenerate", auth = "project400", handler = regenerate_api_key,
    body = false },
}
