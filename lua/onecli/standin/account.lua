-- /health, /user, /user/api-key routes.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local v = require("onecli.standin.validate")

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

local function bearer(ctx)
  return (ctx.req.headers.authorization or ""):match("^Bearer (.*)$")
end

-- A provisioned team member's key belongs to that member, not the owner.
local function member_key(ctx)
  local token = bearer(ctx)
  if ctx.key_kind == "project" and token ~= ctx.state.api_key and ctx.org.member_keys[token] then
    return token
  end
  return nil
end

local function get_api_key(ctx)
  return reply.ok(obj("apiKey", member_key(ctx) or ctx.state.api_key))
end

-- The previous key stops working at once (v2 checks keys on every request).
local function regenerate_api_key(ctx)
  local key = "oc_" .. util.hex(64)
  local old = member_key(ctx)
  if old then
    ctx.org.member_keys[key], ctx.org.member_keys[old] = ctx.org.member_keys[old], nil
  else
    ctx.state.api_key = key
  end
  return reply.ok(obj("apiKey", key))
end

return {
  { method = "GET", pattern = "/health", auth = "none", handler = health, body = false },
  { method = "GET", pattern = "/user", auth = "user", handler = get_user, body = false },
  { method = "PATCH", pattern = "/user", auth = "user", handler = patch_user },
  { method = "GET", pattern = "/user/api-key", auth = "project400", handler = get_api_key, body = false },
  { method = "POST", pattern = "/user/api-key/regenerate", auth = "project400", handler = regenerate_api_key,
    body = false },
}
