-- Organization invitations (reference §14.3, §14.7):
--
--   GET    /org/invitations         pending and expired ones, newest first
--   POST   /org/invitations         {email, role} -> 201 {id, joinUrl, emailed}
--   DELETE /org/invitations/{id}    cancels (204); then 404 "Invitation not found"
--   POST   /invitations/accept      {token}, browser session only
--
-- These routes keep the flat 400 {"error": ...} of the older routers, and
-- parse their bodies without the null fallback: malformed JSON is a 500.
-- joinUrl = <dashboard origin>/join?token=<64 hex>; the stand-in's
-- dashboard origin is http://<Host header>. Inviting a pending address
-- again reissues the token. No mail provider: emailed is always false.
--
-- Sessions: a `better-auth.session_token` cookie is the signed-in user. Any
-- value is the organization's owner, except (a stand-in convention) a value
-- holding an "@", which signs in as that email address — so that an
-- invitee can accept.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, typeof = json.obj, json.array, json.typeof
local ipairs, gettime = ipairs, require("onecli.standin.socket").gettime

local WEEK = 7 * 86400

local NOT_FOUND = "Invitation not found"
local WRONG_ACCOUNT = "This invitation was sent to a different email address. Please sign in with the correct account."

-- zod's email check, near enough: local part, dot-separated labels, a TLD.
local function valid_email(s)
  local lp, domain = s:match("^([^@]+)@([^@]+)$")
  if not lp or lp:sub(1, 1) == "." or lp:find("..", 1, true) then return false end
  if not lp:match("^[%w_'+%-%.]*[%w_+%-]$") then return false end
  local labels = {}
  for label in (domain .. "."):gmatch("([^.]*)%.") do labels[#labels + 1] = label end
  if #labels < 2 or not labels[#labels]:match("^%a%a+$") then return false end
  for i = 1, #labels - 1 do
    if not labels[i]:match("^%w[%w%-]*$") then return false end
  end
  return true
end

local CREATE = v.object({
  { "email", v.string():refine(valid_email, "Invalid email address") },
  { "role", v.enum({ "admin", "member" }) },
}, { strict = true })

-- Body without the null fallback: nil, reply for malformed JSON.
local function raw_body(ctx)
  local raw = ctx.req.body
  if raw == nil or raw == "" then return json.null end
  local value = json.decode(raw)
  if value == nil then return nil, reply.envelope(500, "An unexpected error occurred.", "api_error") end
  return value
end

local function invitations(org)
  org.invitations = org.invitations or {}
  return org.invitations
end

local function expired(inv)
  return inv.expires_at_t <= gettime()
end

local function dashboard_origin(ctx)
  return "http://" .. (ctx.req.headers.host or "127.0.0.1:10254")
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

local function list(ctx)
  local out = array()
  for _, inv in ipairs(store.newest_first(invitations(ctx.org), function(i) return i.status == "pending" end)) do
    out[#out + 1] = obj("id", inv.id, "email", inv.email, "role", inv.role, "invitedByEmail", inv.invited_by,
      "expiresAt", util.iso(inv.expires_at_t), "createdAt", inv.created_at,
      "status", expired(inv) and "expired" or "pending")
  end
  return reply.ok(out)
end

local function issue(inv)
  inv.token, inv.expires_at_t = util.hex(64), gettime() + WEEK
end

local function create(ctx)
  local body, err = raw_body(ctx)
  if body == nil then return err end
  local ok, parsed = CREATE:parse(body)
  if not ok then return reply.flat(400, parsed) end
  local email = parsed.email:lower()
  -- the service throws a plain error for a member: the handler's 500
  if email == ctx.org.user.email:lower() then
    return reply.envelope(500, "An unexpected error occurred.", "api_error")
  end
  local inv = store.find_by(invitations(ctx.org), "email", email)
  if inv and inv.status ~= "pending" then inv = nil end
  if inv then
    inv.role = parsed.role
  else
    inv = { id = util.uuid4(), seq = store.next_seq(ctx.org), email = email, role = parsed.role,
      invited_by = ctx.org.user.email, created_at = util.iso(), status = "pending" }
    local all = invitations(ctx.org)
    all[#all + 1] = inv
  end
  issue(inv)
  return reply.created(obj("id", inv.id, "joinUrl", dashboard_origin(ctx) .. "/join?token=" .. inv.token,
    "emailed", false))
end

local function cancel(ctx)
  local inv = store.find(invitations(ctx.org), ctx.params.id)
  if not inv or inv.status ~= "pending" then return reply.flat(404, NOT_FOUND) end
  inv.status = "cancelled"
  return reply.no_content()
end

-- The signed-in email of a browser session, or nil.
local function session_email(ctx)
  local cookie = ctx.req.headers.cookie or ""
  local value = cookie:match("better%-auth%.session_token=([^;]+)")
  if not value or value == "" then return nil end
  value = util.percent_decode(value)
  if value:find("@", 1, true) then return value:lower() end
  return ctx.org.user.email:lower()
end

local function accept(ctx)
  local email = session_email(ctx)
  if not email then return reply.flat(401, "Not authenticated") end
  local body, err = raw_body(ctx)
  if body == nil then return err end
  local token = typeof(body) == "object" and body.token
  if typeof(token) ~= "string" or token == "" then return reply.flat(400, "A token is required") end
  for _, k in ipairs(json.keys(body)) do
    if k ~= "token" then return reply.flat(400, 'Unrecognized key: "' .. k .. '"') end
  end
  local inv = store.find_by(invitations(ctx.org), "token", token)
  if not inv then return reply.flat(400, "Invalid invitation link") end
  if inv.status ~= "pending" then return reply.flat(400, "This invitation has already been used or cancelled") end
  if expired(inv) then return reply.flat(400, "This invitation has expired") end
  if inv.email ~= email then return reply.flat(400, WRONG_ACCOUNT) end
  inv.status = "accepted"
  return reply.ok(obj("organizationId", ctx.org.id, "organizationName", ctx.org.name or "Default Organization"))
end

-- Members may list; admin/owner where roles exist (the stand-in's one user
-- owns the organization): any key of it, no workspace needed.
local U = "user"

return {
  { mode = "v2", method = "GET", pattern = "/org/invitations", auth = U, handler = list, body = false },
  { mode = "v2", method = "POST", pattern = "/org/invitations", auth = U, handler = create, body = false },
  { mode = "v2", method = "DELETE", pattern = "/org/invitations/:id", auth = U, handler = cancel, body = false },
  { mode = "v2", method = "POST", pattern = "/invitations/accept", auth = "none", handler = accept, body = false },
}
