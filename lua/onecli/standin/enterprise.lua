-- The Enterprise directory and access routes of the v2 stand-in (reference
-- §14.9, licence gates of §14.2 rule 1):
--
--   /org/members*        members: list (paged), groups of a member, add,
--                        suspend/reactivate/SSO exemption, remove
--   /org/groups*         manual user groups and their members (paged)
--   /org/role-mappings*  group -> role mappings in priority order
--   /org/domains*        claimed email domains and their verification
--   /org/sso/*           the organization's SSO connection, enforcement
--   /org/scim/tokens*    SCIM bearer tokens (oc_scim_ + 48 hex, shown once)
--   /org/app-availability, /workspaces/{id}/access, /apps/dropbox/folders
--   POST /auth/sso/lookup (no auth), POST /provisions/claim (session)
--
-- Each router answers 403 enterprise_license_required on an unlicensed
-- instance before authentication, for any path under its mount (catch-all
-- routes below); licensed, an unknown sub-path is the usual 404. The
-- stand-in's one user owns the organization and is its first member.
--
-- Schema failures are flat 400s, service errors envelopes (app
-- availability: 422 validation_error envelopes). Lists of members and
-- groups are paged: limit 1-200 (50), an opaque cursor (hex of the
-- offset), q (case-insensitive substring of email or name).
--
-- No network: a domain verifies when its name ends in ".verified.test";
-- an SSO test only checks the configuration (an issuer or metadata URL on
-- a host ending in ".invalid" is "unreachable"); Dropbox folders need a
-- token the stand-in never has. State lives on the org table (org.directory).
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")
local v = require("onecli.standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, pairs, tonumber, floor, format, concat = ipairs, pairs, tonumber, math.floor, string.format,
  table.concat
local sort, remove = table.sort, table.remove
local gettime = require("onecli.standin.socket").gettime

local MEMBER_NOT_FOUND = "User is not a member of this organization"
local GROUP_NOT_FOUND = "Group not found"
local MAPPING_NOT_FOUND = "Role mapping not found"
local DOMAIN_NOT_FOUND = "Domain not found"
local SSO_NOT_FOUND = "SSO connection not found"
local SCIM_NOT_FOUND = "SCIM token not found"
local PATCH_MEMBER_MSG = 'Provide exactly one of { status: "active" | "suspended" } or { ssoExempt: boolean }'
local REQUIRES_SSO = 'This organization requires SSO. Turn off "Require single sign-on" before %s the connection.'
-- §14.9 elides the end of these two; the second sentence is the stand-in's
local NEEDS_CONNECTION = "Requiring SSO needs an active SSO connection. Add one and test it first."
local NEEDS_DOMAIN = "Requiring SSO needs a verified domain. Verify your company's domain first."

local PUBLIC_PROVIDERS = {}
for _, d in ipairs({ "gmail.com", "googlemail.com", "yahoo.com", "outlook.com", "hotmail.com", "live.com",
  "msn.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "yandex.com",
  "mail.com", "zoho.com" }) do
  PUBLIC_PROVIDERS[d] = true
end

------------------------------------------------------------------------------
-- State
------------------------------------------------------------------------------

-- The organization's directory, created on first use with its owner.
local function directory(org)
  local d = org.directory
  if d then return d end
  local u = org.user
  d = {
    members = { {
      user_id = u.id, email = u.email, name = u.name, owner = true, status = "active", sso_exempt = false,
      joined_at = u.created_at, seq = 0,
    } },
    groups = {}, mappings = {}, domains = {}, sso = {}, scim = {}, access = {},
    availability = { mode = "open", rules = {} }, sso_required = false,
  }
  org.directory = d
  return d
end

local function find_member(d, user_id) return store.find_by(d.members, "user_id", user_id) end

local function in_group(group, user_id) return store.find_by(group.members, "user_id", user_id) ~= nil end

local function by_priority(d)
  local out = {}
  for i, m in ipairs(d.mappings) do out[i] = m end
  sort(out, function(a, b)
    if a.priority ~= b.priority then return a.priority < b.priority end
    return a.seq < b.seq
  end)
  return out
end

-- A member's role: the owner's, else the first mapping (in priority
-- order) whose group holds them, else "member".
local function role_of(d, member, mappings)
  if member.owner then return "owner" end
  for _, m in ipairs(mappings or by_priority(d)) do
    local g = store.find(d.groups, m.group_id)
    if g and in_group(g, member.user_id) then return m.role end
  end
  return "member"
end

local function remove_value(list, value)
  for i = #list, 1, -1 do
    if list[i] == value then remove(list, i) end
  end
end

-- Drops every reference to a removed member or group.
local function forget(d, user_id, group_id)
  for _, g in ipairs(d.groups) do
    for i = #g.members, 1, -1 do
      if g.members[i].user_id == user_id then remove(g.members, i) end
    end
  end
  for i = #d.mappings, 1, -1 do
    if d.mappings[i].group_id == group_id then remove(d.mappings, i) end
  end
  for _, acc in pairs(d.access) do
    for i = #acc.users, 1, -1 do
      if acc.users[i].user_id == user_id then remove(acc.users, i) end
    end
    for i = #acc.groups, 1, -1 do
      if acc.groups[i].group_id == group_id then remove(acc.groups, i) end
    end
  end
  for _, rule in ipairs(d.availability.rules) do
    remove_value(rule.user_ids, user_id)
    remove_value(rule.group_ids, group_id)
  end
end

------------------------------------------------------------------------------
-- Validation helpers
------------------------------------------------------------------------------

local function required(schema, msg)
  schema.required_msg = msg
  return schema
end

local function valid_email(s)
  local lp, domain = s:match("^([^@%s]+)@([^@%s]+)$")
  if not lp or lp:sub(1, 1) == "." or lp:sub(-1) == "." or lp:find("..", 1, true) then return false end
  if not lp:match("^[%w_'+%-%.]+$") then return false end
  local labels = {}
  for label in (domain .. "."):gmatch("([^.]*)%.") do labels[#labels + 1] = label end
  if #labels < 2 or not labels[#labels]:match("^%a%a+$") then return false end
  for i = 1, #labels - 1 do
    if not labels[i]:match("^%w[%w%-]*$") or labels[i]:sub(-1) == "-" then return false end
  end
  return true
end

local function email_schema()
  return required(v.string():trim():min(1, "Email is required"):refine(valid_email, "Enter a valid email address"),
    "Email is required")
end

local function https_url(s)
  return s:match("^https://[%w%.%-]+[%w]%.?[:/%?#]?") ~= nil and not s:find("%s")
end

local function url_host(s) return (s:match("^https://([^/:%?#]+)") or ""):lower() end

local function valid_domain(s)
  if s:find("%.%.") or not s:find("%.") then return false end
  local labels = {}
  for label in (s .. "."):gmatch("([^.]*)%.") do labels[#labels + 1] = label end
  if not labels[#labels]:match("^%a%a+$") then return false end
  for _, label in ipairs(labels) do
    if #label < 1 or #label > 63 or not label:match("^[a-z0-9][a-z0-9%-]*$") or label:sub(-1) == "-" then
      return false
    end
  end
  return true
end

local function lower(s) return s:lower() end

-- Query strings of the paged lists (zod: coerce.number().int().min(1).max(200)).
local function parse_limit(raw)
  if raw == nil then return true, 50 end
  local n = raw:match("^%s*$") and 0 or tonumber(raw)
  if not n or n ~= n then return false, "Invalid input: expected number, received NaN" end
  if n ~= floor(n) or n == math.huge or n == -math.huge then
    return false, "Invalid input: expected int, received number"
  end
  if n < 1 then return false, "Too small: expected number to be >=1" end
  if n > 200 then return false, "Too big: expected number to be <=200" end
  return true, n
end

-- Returns { limit, cursor, q, [extra] } or nil, flat 400 reply.
local function page_query(query, extra_name, extra_values)
  local ok, limit = parse_limit(query.limit)
  if not ok then return nil, reply.flat(400, limit) end
  local q = query.q
  if q ~= nil then
    if util.ulen(q) < 1 then return nil, reply.flat(400, "Too small: expected string to have >=1 characters") end
    if util.ulen(q) > 200 then return nil, reply.flat(400, "Too big: expected string to have <=200 characters") end
  end
  local out = { limit = limit, cursor = query.cursor, q = q and q:lower() }
  if extra_name and query[extra_name] ~= nil then
    ok = v.enum(extra_values):parse(query[extra_name])
    if not ok then
      local quoted = {}
      for i, val in ipairs(extra_values) do quoted[i] = '"' .. val .. '"' end
      return nil, reply.flat(400, "Invalid option: expected one of " .. concat(quoted, "|"))
    end
    out[extra_name] = query[extra_name]
  end
  return out
end

-- Cursors: hex of "offset:<n>".
local function encode_cursor(offset)
  return (("offset:" .. offset):gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function decode_cursor(cursor)
  if cursor == nil then return 0 end
  if #cursor % 2 ~= 0 or #cursor > 64 or not cursor:match("^%x+$") then return nil end
  local text = cursor:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  local n = text:match("^offset:(%d+)$")
  return n and tonumber(n) or nil
end

local function matches(q, ...)
  if not q then return true end
  for i = 1, select("#", ...) do
    local s = select(i, ...)
    if type(s) == "string" and s:lower():find(q, 1, true) then return true end
  end
  return false
end

-- One page of items (already filtered and ordered) as {data, nextCursor}.
local function page(items, pq, shape)
  local offset = decode_cursor(pq.cursor)
  if not offset then return reply.flat(400, "Invalid cursor") end
  local data = array()
  for i = offset + 1, math.min(#items, offset + pq.limit) do data[#data + 1] = shape(items[i]) end
  local next_cursor = offset + pq.limit < #items and encode_cursor(offset + pq.limit) or null
  return reply.ok(obj("data", data, "nextCursor", next_cursor))
end

------------------------------------------------------------------------------
-- Members
------------------------------------------------------------------------------

local function member_shape(d, m)
  return obj("userId", m.user_id, "email", m.email, "name", m.name or null, "role", role_of(d, m),
    "status", m.status, "ssoExempt", m.sso_exempt, "joinedAt", m.joined_at)
end

local function group_shape(g)
  return obj("id", g.id, "name", g.name, "source", g.source, "externalId", g.external_id or null,
    "memberCount", #g.members, "createdAt", g.created_at, "updatedAt", g.updated_at)
end

local function list_members(ctx)
  local pq, err = page_query(ctx.query, "status", { "active", "suspended" })
  if not pq then return err end
  local d = directory(ctx.org)
  local items = {}
  for _, m in ipairs(d.members) do
    if (not pq.status or m.status == pq.status) and matches(pq.q, m.email, m.name) then items[#items + 1] = m end
  end
  return page(items, pq, function(m) return member_shape(d, m) end)
end

local function member_groups(ctx)
  local pq, err = page_query(ctx.query)
  if not pq then return err end
  local d = directory(ctx.org)
  local items = {}
  for _, g in ipairs(d.groups) do
    if in_group(g, ctx.params.userId) and matches(pq.q, g.name) then items[#items + 1] = g end
  end
  return page(items, pq, group_shape)
end

local CREATE_MEMBER = v.object({
  { "email", email_schema() },
  { "name", v.string():trim():min(1):max(200):optional() },
}, { strict = true })

local function create_member(ctx)
  local ok, body = CREATE_MEMBER:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local email = body.email:lower()
  for _, m in ipairs(d.members) do
    if m.email:lower() == email then return reply.conflict("This user is already a member of the organization.") end
  end
  local m = { user_id = util.uuid4(), email = email, name = body.name, status = "active", sso_exempt = false,
    joined_at = util.iso(), seq = store.next_seq(ctx.org) }
  d.members[#d.members + 1] = m
  return reply.created(obj("userId", m.user_id, "email", m.email, "name", m.name or null, "role", role_of(d, m),
    "status", m.status, "joinedAt", m.joined_at))
end

-- "status", value | "ssoExempt", value | nil
local function one_change(body)
  if typeof(body) ~= "object" then return nil end
  local keys = json.keys(body)
  if #keys ~= 1 then return nil end
  local k, val = keys[1], body[keys[1]]
  if k == "status" and (val == "active" or val == "suspended") then return k, val end
  if k == "ssoExempt" and typeof(val) == "boolean" then return k, val end
  return nil
end

local function patch_member(ctx)
  local field, value = one_change(ctx.body)
  if not field then return reply.flat(400, PATCH_MEMBER_MSG) end
  local d = directory(ctx.org)
  local m = find_member(d, ctx.params.userId)
  if not m then return reply.not_found(MEMBER_NOT_FOUND) end
  if field == "ssoExempt" then
    m.sso_exempt = value
    return reply.ok(obj("userId", m.user_id, "status", m.status, "ssoExempt", m.sso_exempt))
  end
  if value == "suspended" then
    if m.user_id == ctx.org.user.id then return reply.bad_request("You cannot suspend yourself") end
    if m.owner then return reply.bad_request("The organization owner cannot be suspended") end
    if m.status == "suspended" then return reply.conflict("This member is already suspended") end
  elseif m.status ~= "suspended" then
    return reply.conflict("This member is not suspended")
  end
  m.status = value
  -- suspending signs the member out and disables their keys (none here)
  return reply.ok(obj("userId", m.user_id, "status", m.status, "ssoExempt", m.sso_exempt,
    "revocation", obj("sessionsRevoked", 0, "apiKeysRevoked", 0)))
end

local function delete_member(ctx)
  local d = directory(ctx.org)
  local m = find_member(d, ctx.params.userId)
  if not m then return reply.not_found(MEMBER_NOT_FOUND) end
  if m.owner then return reply.bad_request("The organization owner cannot be removed") end
  for i, x in ipairs(d.members) do
    if x == m then remove(d.members, i) break end
  end
  forget(d, m.user_id, nil)
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Groups
------------------------------------------------------------------------------

local GROUP_NAME = v.object({
  { "name", required(v.string():trim():min(1, "Group name is required"):max(100, "Group name is too long"),
    "Group name is required") },
})
local GROUP_PATCH = v.object(GROUP_NAME.shape, { strict = true })
local GROUP_MEMBERS = v.object({ { "userIds", v.array(v.string()):max(1000) } })

local function find_group(ctx)
  local g = store.find(directory(ctx.org).groups, ctx.params.groupId)
  if g then return g end
  return nil, reply.not_found(GROUP_NOT_FOUND)
end

local function name_taken(d, name, except)
  for _, g in ipairs(d.groups) do
    if g ~= except and g.name:lower() == name:lower() then
      return reply.conflict("A group with this name already exists.")
    end
  end
  return nil
end

local function scim_managed(g)
  if g.source == "scim" then return reply.conflict("This group is managed by your identity provider.") end
  return nil
end

local function list_groups(ctx)
  local pq, err = page_query(ctx.query, "source", { "manual", "scim" })
  if not pq then return err end
  local items = {}
  for _, g in ipairs(directory(ctx.org).groups) do
    if (not pq.source or g.source == pq.source) and matches(pq.q, g.name) then items[#items + 1] = g end
  end
  return page(items, pq, group_shape)
end

local function create_group(ctx)
  local ok, body = GROUP_NAME:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local err = name_taken(d, body.name)
  if err then return err end
  local now = util.iso()
  local g = { id = util.uuid4(), name = body.name, source = "manual", members = {}, created_at = now,
    updated_at = now, seq = store.next_seq(ctx.org) }
  d.groups[#d.groups + 1] = g
  return reply.created(group_shape(g))
end

local function get_group(ctx)
  local g, err = find_group(ctx)
  if not g then return err end
  return reply.ok(group_shape(g))
end

local function patch_group(ctx)
  local ok, body = GROUP_PATCH:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local g, err = find_group(ctx)
  if not g then return err end
  err = scim_managed(g) or name_taken(directory(ctx.org), body.name, g)
  if err then return err end
  g.name, g.updated_at = body.name, util.iso()
  return reply.ok(group_shape(g))
end

local function delete_group(ctx)
  local g, err = find_group(ctx)
  if not g then return err end
  err = scim_managed(g)
  if err then return err end
  local d = directory(ctx.org)
  store.remove(d.groups, g.id)
  forget(d, nil, g.id)
  return reply.no_content()
end

local function group_members(ctx)
  local pq, err = page_query(ctx.query)
  if not pq then return err end
  local g
  g, err = find_group(ctx)
  if not g then return err end
  local d = directory(ctx.org)
  local items = {}
  for _, gm in ipairs(g.members) do
    local m = find_member(d, gm.user_id)
    if m and matches(pq.q, m.email, m.name) then items[#items + 1] = { m = m, added_at = gm.added_at } end
  end
  return page(items, pq, function(x)
    return obj("userId", x.m.user_id, "email", x.m.email, "name", x.m.name or null, "addedAt", x.added_at)
  end)
end

local function set_group_members(ctx)
  local ok, body = GROUP_MEMBERS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local g, err = find_group(ctx)
  if not g then return err end
  err = scim_managed(g)
  if err then return err end
  local d = directory(ctx.org)
  local unknown, wanted, seen = {}, {}, {}
  for _, id in ipairs(body.userIds) do
    if not find_member(d, id) then
      unknown[#unknown + 1] = id
    elseif not seen[id] then
      seen[id] = true
      wanted[#wanted + 1] = id
    end
  end
  if #unknown > 0 then return reply.bad_request("Not members of this organization: " .. concat(unknown, ", ")) end
  local added, removed, kept = 0, 0, {}
  for _, gm in ipairs(g.members) do
    if seen[gm.user_id] then kept[#kept + 1] = gm else removed = removed + 1 end
  end
  for _, id in ipairs(wanted) do
    if not in_group(g, id) then
      kept[#kept + 1] = { user_id = id, added_at = util.iso() }
      added = added + 1
    end
  end
  g.members, g.updated_at = kept, util.iso()
  return reply.ok(obj("added", added, "removed", removed, "memberCount", #kept))
end

local function add_group_member(ctx)
  local g, err = find_group(ctx)
  if not g then return err end
  err = scim_managed(g)
  if err then return err end
  if not find_member(directory(ctx.org), ctx.params.userId) then return reply.bad_request(MEMBER_NOT_FOUND) end
  if not in_group(g, ctx.params.userId) then
    g.members[#g.members + 1] = { user_id = ctx.params.userId, added_at = util.iso() }
    g.updated_at = util.iso()
  end
  return reply.no_content()
end

local function remove_group_member(ctx)
  local g, err = find_group(ctx)
  if not g then return err end
  err = scim_managed(g)
  if err then return err end
  if not find_member(directory(ctx.org), ctx.params.userId) then return reply.bad_request(MEMBER_NOT_FOUND) end
  for i, gm in ipairs(g.members) do
    if gm.user_id == ctx.params.userId then
      remove(g.members, i)
      g.updated_at = util.iso()
      break
    end
  end
  return reply.no_content()
end

------------------------------------------------------------------------------
-- Role mappings
------------------------------------------------------------------------------

local PRIORITY = v.int():min(-1000000):max(1000000):optional()
local ROLE = v.enum({ "admin", "member" })
local CREATE_MAPPING = v.object({
  { "groupId", v.string():min(1) }, { "role", ROLE }, { "priority", PRIORITY },
}, { strict = true })
local PATCH_MAPPING = v.object({ { "role", ROLE }, { "priority", PRIORITY } }, { strict = true })
local ORDER = v.object({ { "orderedIds", v.array(v.string()):min(1) } })
local PREVIEW = v.object({ { "groupId", v.string():min(1) }, { "role", ROLE } })

local function mapping_shape(d, m)
  local g = store.find(d.groups, m.group_id)
  return obj("id", m.id, "groupId", m.group_id, "groupName", g and g.name or null, "role", m.role,
    "priority", m.priority, "memberCount", g and #g.members or 0, "createdAt", m.created_at,
    "updatedAt", m.updated_at)
end

local function mappings_reply(d, status)
  local out = array()
  for i, m in ipairs(by_priority(d)) do out[i] = mapping_shape(d, m) end
  return reply.json(status or 200, out)
end

local function next_priority(d)
  local top = -1
  for _, m in ipairs(d.mappings) do
    if m.priority > top then top = m.priority end
  end
  return top + 1
end

local function list_mappings(ctx) return mappings_reply(directory(ctx.org)) end

local function create_mapping(ctx)
  local ok, body = CREATE_MAPPING:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  if not store.find(d.groups, body.groupId) then return reply.not_found(GROUP_NOT_FOUND) end
  if store.find_by(d.mappings, "group_id", body.groupId) then
    return reply.conflict("This group already has a role mapping.")
  end
  local now = util.iso()
  local m = { id = util.uuid4(), group_id = body.groupId, role = body.role,
    priority = body.priority or next_priority(d), created_at = now, updated_at = now,
    seq = store.next_seq(ctx.org) }
  d.mappings[#d.mappings + 1] = m
  return reply.created(mapping_shape(d, m))
end

local function find_mapping(ctx)
  local m = store.find(directory(ctx.org).mappings, ctx.params.id)
  if m then return m end
  return nil, reply.not_found(MAPPING_NOT_FOUND)
end

local function patch_mapping(ctx)
  local ok, body = PATCH_MAPPING:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local m, err = find_mapping(ctx)
  if not m then return err end
  m.role, m.updated_at = body.role, util.iso()
  if body.priority then m.priority = body.priority end
  return reply.ok(mapping_shape(directory(ctx.org), m))
end

local function delete_mapping(ctx)
  local m, err = find_mapping(ctx)
  if not m then return err end
  store.remove(directory(ctx.org).mappings, m.id)
  return reply.no_content()
end

local function reorder_mappings(ctx)
  local ok, body = ORDER:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local ids, seen = body.orderedIds, {}
  for _, id in ipairs(ids) do
    if seen[id] then return reply.bad_request("Order must list every role mapping exactly once.") end
    seen[id] = true
  end
  if #ids ~= #d.mappings then return reply.bad_request("Order must list every role mapping exactly once.") end
  for _, id in ipairs(ids) do
    if not store.find(d.mappings, id) then
      return reply.conflict("Role mappings changed. Please refresh and try again.")
    end
  end
  local now = util.iso()
  for i, id in ipairs(ids) do
    local m = store.find(d.mappings, id)
    if m.priority ~= i - 1 then m.priority, m.updated_at = i - 1, now end
  end
  return mappings_reply(d)
end

-- The members whose role would change if the group were mapped to role
-- (replacing its mapping, or appended last).
local function preview_mapping(ctx)
  local ok, body = PREVIEW:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local g = store.find(d.groups, body.groupId)
  if not g then return reply.not_found(GROUP_NOT_FOUND) end
  local current, proposed = by_priority(d), {}
  local replaced = false
  for _, m in ipairs(current) do
    if m.group_id == g.id then
      proposed[#proposed + 1] = { group_id = g.id, role = body.role }
      replaced = true
    else
      proposed[#proposed + 1] = m
    end
  end
  if not replaced then proposed[#proposed + 1] = { group_id = g.id, role = body.role } end
  local changes = array()
  local unchanged = 0
  for _, m in ipairs(d.members) do
    local before, after = role_of(d, m, current), role_of(d, m, proposed)
    if before ~= after then
      changes[#changes + 1] = obj("userId", m.user_id, "email", m.email, "name", m.name or null,
        "currentRole", before, "newRole", after)
    else
      unchanged = unchanged + 1
    end
  end
  return reply.ok(obj("groupId", g.id, "role", body.role, "changes", changes, "unchangedCount", unchanged))
end

------------------------------------------------------------------------------
-- Domains
------------------------------------------------------------------------------

local CREATE_DOMAIN = v.object({
  { "domain", v.string():trim():min(3):max(253):add(function(s) return true, lower(s) end)
    :refine(valid_domain, "Enter a valid domain like example.com") },
})

local function domain_shape(x)
  return obj("id", x.id, "domain", x.domain, "verificationToken", x.token, "verifiedAt", x.verified_at or null,
    "createdAt", x.created_at)
end

local function list_domains(ctx)
  local out = array()
  for i, x in ipairs(directory(ctx.org).domains) do out[i] = domain_shape(x) end
  return reply.ok(out)
end

local function create_domain(ctx)
  local ok, body = CREATE_DOMAIN:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if PUBLIC_PROVIDERS[body.domain] then
    return reply.bad_request("Public email providers can't be claimed. Use your company's domain.")
  end
  local d = directory(ctx.org)
  if store.find_by(d.domains, "domain", body.domain) then
    return reply.conflict("This domain is already claimed by an organization.")
  end
  local x = { id = util.uuid4(), domain = body.domain, token = "onecli-verification=" .. util.hex(32),
    created_at = util.iso() }
  d.domains[#d.domains + 1] = x
  return reply.created(domain_shape(x))
end

local function find_domain(ctx)
  local x = store.find(directory(ctx.org).domains, ctx.params.id)
  if x then return x end
  return nil, reply.not_found(DOMAIN_NOT_FOUND)
end

local function verify_domain(ctx)
  local x, err = find_domain(ctx)
  if not x then return err end
  if not x.verified_at then
    if x.domain:sub(-#".verified.test") ~= ".verified.test" then
      return reply.bad_request("TXT record not found yet. DNS changes can take a few minutes to propagate.")
    end
    x.verified_at = util.iso()
  end
  return reply.ok(domain_shape(x))
end

local function delete_domain(ctx)
  local x, err = find_domain(ctx)
  if not x then return err end
  store.remove(directory(ctx.org).domains, x.id)
  return reply.no_content()
end

local function has_verified_domain(d)
  for _, x in ipairs(d.domains) do
    if x.verified_at then return true end
  end
  return false
end

------------------------------------------------------------------------------
-- SSO connections and enforcement
------------------------------------------------------------------------------

local HTTPS = "Must be an https URL"
local EXACTLY_ONE_METADATA = "Provide exactly one of metadata URL or metadata XML"

local function display_name() return v.string():trim():min(1):max(100) end
local function https() return v.string():trim():refine(https_url, HTTPS) end

local SAML = v.object({
  { "type", v.literal("saml") }, { "displayName", display_name() },
  { "metadataUrl", https():optional() }, { "metadataXml", v.string():min(1):optional() },
}, { strict = true })
local OIDC = v.object({
  { "type", v.literal("oidc") }, { "displayName", display_name() }, { "issuer", https() },
  { "clientId", v.string():trim():min(1) }, { "clientSecret", v.string():min(1) },
}, { strict = true })
local PATCH_SSO = v.object({
  { "displayName", display_name():optional() }, { "enabled", v.boolean():optional() },
  { "metadataUrl", https():optional() }, { "metadataXml", v.string():min(1):optional() },
  { "issuer", https():optional() }, { "clientId", v.string():trim():min(1):optional() },
  { "clientSecret", v.string():min(1):optional() },
}, { strict = true })
local ENFORCEMENT = v.object({ { "ssoRequired", v.boolean() } }, { strict = true })

local function parse_connection(body)
  local kind = typeof(body) == "object" and body.type or nil
  if typeof(body) ~= "object" then return false, "Invalid input: expected object, received " .. typeof(body) end
  if kind ~= "saml" and kind ~= "oidc" then return false, "Invalid input" end
  local ok, parsed = (kind == "saml" and SAML or OIDC):parse(body)
  if not ok then return false, parsed end
  if kind == "saml" and (parsed.metadataUrl == nil) == (parsed.metadataXml == nil) then
    return false, EXACTLY_ONE_METADATA
  end
  return true, parsed
end

local function sso_shape(c)
  return obj("id", c.id, "type", c.type, "displayName", c.display_name, "status", c.status,
    "metadataUrl", c.metadata_url or null, "hasMetadataXml", c.metadata_xml ~= nil,
    "issuer", c.issuer or null, "clientId", c.client_id or null, "hasClientSecret", c.client_secret ~= nil,
    "createdAt", c.created_at, "updatedAt", c.updated_at)
end

local function list_sso(ctx)
  local out = array()
  for i, c in ipairs(directory(ctx.org).sso) do out[i] = sso_shape(c) end
  return reply.ok(out)
end

local function create_sso(ctx)
  local ok, body = parse_connection(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  if #d.sso > 0 then return reply.conflict("This organization already has an SSO connection.") end
  local now = util.iso()
  local c = { id = util.uuid4(), type = body.type, display_name = body.displayName, status = "pending",
    metadata_url = body.metadataUrl, metadata_xml = body.metadataXml, issuer = body.issuer,
    client_id = body.clientId, client_secret = body.clientSecret, tested = false,
    created_at = now, updated_at = now }
  d.sso[#d.sso + 1] = c
  return reply.created(sso_shape(c))
end

local function find_sso(ctx)
  local c = store.find(directory(ctx.org).sso, ctx.params.id)
  if c then return c end
  return nil, reply.not_found(SSO_NOT_FOUND)
end

local CONFIG_FIELDS = { metadataUrl = "metadata_url", metadataXml = "metadata_xml", issuer = "issuer",
  clientId = "client_id", clientSecret = "client_secret" }

local function patch_sso(ctx)
  local ok, body = PATCH_SSO:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if #json.keys(body) == 0 then return reply.flat(400, "At least one field must be provided") end
  local c, err = find_sso(ctx)
  if not c then return err end
  local d = directory(ctx.org)
  if body.enabled == false and d.sso_required then return reply.conflict(format(REQUIRES_SSO, "disabling")) end
  if body.displayName then c.display_name = body.displayName end
  local changed = false
  for field, key in pairs(CONFIG_FIELDS) do
    if body[field] ~= nil then c[key], changed = body[field], true end
  end
  if body.metadataUrl then c.metadata_xml = nil elseif body.metadataXml then c.metadata_url = nil end
  if changed then c.tested = false end
  if body.enabled == false then
    c.status = "disabled"
  elseif body.enabled == true or (changed and c.status ~= "disabled") then
    c.status = c.tested and "active" or "pending"
  end
  c.updated_at = util.iso()
  return reply.ok(sso_shape(c))
end

local function delete_sso(ctx)
  local c, err = find_sso(ctx)
  if not c then return err end
  local d = directory(ctx.org)
  if d.sso_required then return reply.conflict(format(REQUIRES_SSO, "deleting")) end
  store.remove(d.sso, c.id)
  return reply.no_content()
end

-- Configuration checks only: nothing is fetched.
local function reachable(url)
  local host = url_host(url)
  return host:sub(-#".invalid") ~= ".invalid"
end

local function check(name, ok, good, bad)
  return obj("name", name, "ok", ok, "message", ok and good or bad)
end

local function test_sso(ctx)
  local c, err = find_sso(ctx)
  if not c then return err end
  local checks = array()
  if c.type == "saml" and c.metadata_url then
    local up = reachable(c.metadata_url)
    checks[#checks + 1] = check("metadata_reachable", up, "The metadata URL answered.",
      "Could not reach the metadata URL.")
    checks[#checks + 1] = check("metadata_valid", up, "The metadata describes an identity provider.",
      "No metadata to check.")
  elseif c.type == "saml" then
    local valid = c.metadata_xml:find("EntityDescriptor", 1, true) ~= nil
    checks[#checks + 1] = check("metadata_valid", valid, "The metadata describes an identity provider.",
      "The metadata XML has no EntityDescriptor.")
  else
    local up = reachable(c.issuer)
    checks[#checks + 1] = check("discovery_reachable", up, "The issuer's discovery document answered.",
      "Could not reach the issuer's discovery document.")
    checks[#checks + 1] = check("client_configured", c.client_id ~= nil and c.client_secret ~= nil,
      "A client id and secret are set.", "The client id or secret is missing.")
  end
  local all = true
  for _, x in ipairs(checks) do all = all and x.ok end
  c.tested = all
  if c.status ~= "disabled" then c.status = all and "active" or "pending" end
  return reply.ok(obj("ok", all, "checks", checks))
end

local function has_active_connection(d)
  for _, c in ipairs(d.sso) do
    if c.status == "active" then return c end
  end
  return nil
end

local function enforcement_shape(d)
  local exempt = 0
  for _, m in ipairs(d.members) do
    if m.sso_exempt then exempt = exempt + 1 end
  end
  local active, verified = has_active_connection(d) ~= nil, has_verified_domain(d)
  return obj("ssoRequired", d.sso_required, "hasActiveConnection", active, "hasVerifiedDomain", verified,
    "canRequire", active and verified, "exemptMemberCount", exempt)
end

local function get_enforcement(ctx) return reply.ok(enforcement_shape(directory(ctx.org))) end

local function patch_enforcement(ctx)
  local ok, body = ENFORCEMENT:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  if body.ssoRequired then
    if not has_active_connection(d) then return reply.flat(400, NEEDS_CONNECTION) end
    if not has_verified_domain(d) then return reply.flat(400, NEEDS_DOMAIN) end
  end
  d.sso_required = body.ssoRequired
  return reply.ok(enforcement_shape(d))
end

-- Home-realm discovery for the login page (no authentication).
local LOOKUP = v.object({ { "email", email_schema() } })

local function sso_lookup(ctx)
  local ok, body = LOOKUP:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local domain = body.email:lower():match("@(.+)$")
  local claimed = store.find_by(d.domains, "domain", domain)
  local conn = has_active_connection(d)
  if not (claimed and claimed.verified_at and conn) then return reply.ok(obj("sso", false)) end
  return reply.ok(obj("sso", true, "provider", conn.type, "enforced", d.sso_required))
end

------------------------------------------------------------------------------
-- SCIM tokens
------------------------------------------------------------------------------

local SCIM_LABEL = v.object({
  { "label", required(v.string():trim():min(1, "Label is required"):max(64, "Keep the label under 64 characters"),
    "Label is required") },
})

local function scim_shape(t)
  return obj("id", t.id, "label", t.label, "lastUsedAt", t.last_used_at or null, "createdAt", t.created_at)
end

local function list_scim(ctx)
  local out = array()
  for _, t in ipairs(store.newest_first(directory(ctx.org).scim, function(t) return not t.revoked end)) do
    out[#out + 1] = scim_shape(t)
  end
  return reply.ok(out)
end

local function create_scim(ctx)
  local ok, body = SCIM_LABEL:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local d = directory(ctx.org)
  local t = { id = util.uuid4(), label = body.label, secret = "oc_scim_" .. util.hex(48), created_at = util.iso(),
    seq = store.next_seq(ctx.org) }
  d.scim[#d.scim + 1] = t
  local out = scim_shape(t)
  json.set(out, "token", t.secret)
  return reply.created(out)
end

local function delete_scim(ctx)
  local t = store.find(directory(ctx.org).scim, ctx.params.id)
  if not t then return reply.not_found(SCIM_NOT_FOUND) end
  t.revoked = true
  return reply.no_content()
end

------------------------------------------------------------------------------
-- App availability
------------------------------------------------------------------------------

local ids = function() return v.array(v.string()):max(1000) end
local AVAILABILITY = v.object({
  { "mode", v.enum({ "open", "restricted" }) },
  { "rules", v.array(v.object({
    { "id", v.string():min(1):optional() }, { "name", v.string():trim():max(100):optional() },
    { "userIds", ids() }, { "groupIds", ids() }, { "providers", ids() },
  }, { strict = true })):max(1000) },
}, { strict = true })

local function copy_list(list)
  local out = array()
  for i, x in ipairs(list) do out[i] = x end
  return out
end

local function availability_shape(a)
  local rules = array()
  for i, r in ipairs(a.rules) do
    rules[i] = obj("id", r.id, "name", r.name or null, "userIds", copy_list(r.user_ids),
      "groupIds", copy_list(r.group_ids), "providers", copy_list(r.providers))
  end
  return obj("mode", a.mode, "rules", rules)
end

local function get_availability(ctx) return reply.ok(availability_shape(directory(ctx.org).availability)) end

local function set_availability(ctx)
  local ok, body = AVAILABILITY:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  local d = directory(ctx.org)
  local seen = {}
  for _, r in ipairs(body.rules) do
    for _, p in ipairs(r.providers) do
      if not catalog.find(p, "v2") then return reply.bad_request("Unknown app provider: " .. p) end
    end
    if r.id then
      if seen[r.id] then return reply.bad_request("Duplicate rule id in the request.") end
      seen[r.id] = true
    end
  end
  for _, r in ipairs(body.rules) do
    local foreign = false
    for _, id in ipairs(r.userIds) do foreign = foreign or not find_member(d, id) end
    for _, id in ipairs(r.groupIds) do foreign = foreign or not store.find(d.groups, id) end
    if foreign then return reply.unprocessable("A referenced identity does not belong to this organization.") end
  end
  local rules = {}
  for i, r in ipairs(body.rules) do
    rules[i] = { id = r.id or util.uuid4(), name = r.name, user_ids = copy_list(r.userIds),
      group_ids = copy_list(r.groupIds), providers = copy_list(r.providers) }
  end
  d.availability = { mode = body.mode, rules = rules }
  return reply.ok(availability_shape(d.availability))
end

------------------------------------------------------------------------------
-- Workspace access
------------------------------------------------------------------------------

local ACCESS = v.object({
  { "users", v.array(v.object({
    { "userId", v.string():min(1) }, { "role", v.enum({ "owner", "member" }) },
  })):max(1000) },
  { "groupIds", v.array(v.string()):max(1000) },
})

-- The workspace's access list; its creator (the organization's owner) is
-- always there as its owner.
local function access_of(ctx, workspace)
  local d = directory(ctx.org)
  local acc = d.access[workspace.id]
  if not acc then
    acc = { users = { { id = util.uuid4(), user_id = ctx.org.user.id, role = "owner", creator = true,
      created_at = workspace.created_at } }, groups = {} }
    d.access[workspace.id] = acc
  end
  return acc, d
end

local function find_workspace(ctx)
  local w = store.find(ctx.org.projects, ctx.params.id)
  if w then return w end
  return nil, reply.not_found("Workspace not found")
end

local function get_access(ctx)
  local w, err = find_workspace(ctx)
  if not w then return err end
  local acc, d = access_of(ctx, w)
  local users, groups = array(), array()
  for _, u in ipairs(acc.users) do
    local m = find_member(d, u.user_id)
    users[#users + 1] = obj("id", u.id, "userId", u.user_id, "name", m and m.name or null,
      "email", m and m.email or null, "role", u.role, "isOwner", u.creator == true, "createdAt", u.created_at)
  end
  for _, x in ipairs(acc.groups) do
    local g = store.find(d.groups, x.group_id)
    groups[#groups + 1] = obj("id", x.id, "groupId", x.group_id, "name", g and g.name or null,
      "memberCount", g and #g.members or 0, "createdAt", x.created_at)
  end
  return reply.ok(obj("users", users, "groups", groups))
end

local function set_access(ctx)
  local ok, body = ACCESS:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local w, err = find_workspace(ctx)
  if not w then return err end
  local acc, d = access_of(ctx, w)
  local bad_users, bad_groups = {}, {}
  for _, u in ipairs(body.users) do
    local m = find_member(d, u.userId)
    if not m or m.status ~= "active" then bad_users[#bad_users + 1] = u.userId end
  end
  if #bad_users > 0 then
    return reply.bad_request("Not active members of this organization: " .. concat(bad_users, ", "))
  end
  for _, id in ipairs(body.groupIds) do
    if not store.find(d.groups, id) then bad_groups[#bad_groups + 1] = id end
  end
  if #bad_groups > 0 then return reply.bad_request("Groups not in this organization: " .. concat(bad_groups, ", ")) end
  local added, removed, changed = 0, 0, 0
  local wanted_users, wanted_groups = {}, {}
  for _, u in ipairs(body.users) do wanted_users[u.userId] = u.role end
  for _, id in ipairs(body.groupIds) do wanted_groups[id] = true end
  local users, have = {}, {}
  for _, u in ipairs(acc.users) do
    local role = wanted_users[u.user_id]
    have[u.user_id] = true
    if u.creator then
      users[#users + 1] = u
    elseif role then
      if role ~= u.role then u.role, changed = role, changed + 1 end
      users[#users + 1] = u
    else
      removed = removed + 1
    end
  end
  for _, u in ipairs(body.users) do
    if not have[u.userId] then
      have[u.userId] = true
      users[#users + 1] = { id = util.uuid4(), user_id = u.userId, role = u.role, created_at = util.iso() }
      added = added + 1
    end
  end
  local groups, have_group = {}, {}
  for _, x in ipairs(acc.groups) do
    if wanted_groups[x.group_id] then
      groups[#groups + 1], have_group[x.group_id] = x, true
    else
      removed = removed + 1
    end
  end
  for _, id in ipairs(body.groupIds) do
    if not have_group[id] then
      have_group[id] = true
      groups[#groups + 1] = { id = util.uuid4(), group_id = id, created_at = util.iso() }
      added = added + 1
    end
  end
  acc.users, acc.groups = users, groups
  return reply.ok(obj("added", added, "removed", removed, "roleChanged", changed))
end

------------------------------------------------------------------------------
-- Dropbox folders (resource-level access)
------------------------------------------------------------------------------

local function dropbox_folders(ctx)
  local id = ctx.query.connectionId
  if id == nil or id == "" then return reply.flat(400, "connectionId is required") end
  local conn = store.find_visible(ctx.state, "connections", id)
  if not conn or conn.provider ~= "dropbox" then return reply.flat(404, "Connection not found") end
  -- the stand-in holds no Dropbox token: a real server would list folders here
  return reply.flat(400, "No valid Dropbox access token")
end

------------------------------------------------------------------------------
-- Provision claims (browser session)
------------------------------------------------------------------------------

local function has_session(ctx)
  local value = (ctx.req.headers.cookie or ""):match("better%-auth%.session_token=([^;]+)")
  return value ~= nil and value ~= ""
end

local function claim(ctx)
  if not has_session(ctx) then return reply.flat(401, "Not authenticated") end
  local token = typeof(ctx.body) == "object" and ctx.body.token
  if typeof(token) ~= "string" or token == "" then return reply.flat(400, "A token is required") end
  local p = store.find_by(ctx.org.provisions or {}, "token", token)
  if not p then return reply.flat(400, "Invalid claim link") end
  if p.claimed then return reply.flat(400, "This provision has already been claimed") end
  if p.expires_at_t <= gettime() then return reply.flat(400, "This provision link has expired") end
  p.claimed = true
  return reply.ok(obj("userId", p.user_id, "organizationId", ctx.org.id, "workspaceId", p.project_id))
end

------------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------------

local U = "user"
local MEMBERS, GROUPS = "Members directory API", "Directory groups"
local SSO, AVAILABILITY_EE = "Single sign-on, verified domains & SCIM", "App availability control"
local SHARING, RESOURCES = "Workspace sharing", "Resource-level access"

local routes = {
  { method = "GET", pattern = "/org/members", ee = MEMBERS, handler = list_members },
  { method = "POST", pattern = "/org/members", ee = MEMBERS, handler = create_member },
  { method = "GET", pattern = "/org/members/:userId/groups", ee = MEMBERS, handler = member_groups },
  { method = "PATCH", pattern = "/org/members/:userId", ee = MEMBERS, handler = patch_member },
  { method = "DELETE", pattern = "/org/members/:userId", ee = MEMBERS, handler = delete_member },

  { method = "GET", pattern = "/org/groups", ee = GROUPS, handler = list_groups },
  { method = "POST", pattern = "/org/groups", ee = GROUPS, handler = create_group },
  { method = "GET", pattern = "/org/groups/:groupId", ee = GROUPS, handler = get_group },
  { method = "PATCH", pattern = "/org/groups/:groupId", ee = GROUPS, handler = patch_group },
  { method = "DELETE", pattern = "/org/groups/:groupId", ee = GROUPS, handler = delete_group },
  { method = "GET", pattern = "/org/groups/:groupId/members", ee = GROUPS, handler = group_members },
  { method = "PUT", pattern = "/org/groups/:groupId/members", ee = GROUPS, handler = set_group_members },
  { method = "PUT", pattern = "/org/groups/:groupId/members/:userId", ee = GROUPS, handler = add_group_member },
  { method = "DELETE", pattern = "/org/groups/:groupId/members/:userId", ee = GROUPS,
    handler = remove_group_member },

  { method = "GET", pattern = "/org/role-mappings", ee = GROUPS, handler = list_mappings },
  { method = "POST", pattern = "/org/role-mappings", ee = GROUPS, handler = create_mapping },
  { method = "PUT", pattern = "/org/role-mappings/order", ee = GROUPS, handler = reorder_mappings },
  { method = "POST", pattern = "/org/role-mappings/preview", ee = GROUPS, handler = preview_mapping },
  { method = "PATCH", pattern = "/org/role-mappings/:id", ee = GROUPS, handler = patch_mapping },
  { method = "DELETE", pattern = "/org/role-mappings/:id", ee = GROUPS, handler = delete_mapping },

  { method = "GET", pattern = "/org/domains", ee = SSO, handler = list_domains },
  { method = "POST", pattern = "/org/domains", ee = SSO, handler = create_domain },
  { method = "POST", pattern = "/org/domains/:id/verify", ee = SSO, handler = verify_domain },
  { method = "DELETE", pattern = "/org/domains/:id", ee = SSO, handler = delete_domain },
  { method = "GET", pattern = "/org/sso/connections", ee = SSO, handler = list_sso },
  { method = "POST", pattern = "/org/sso/connections", ee = SSO, handler = create_sso },
  { method = "PATCH", pattern = "/org/sso/connections/:id", ee = SSO, handler = patch_sso },
  { method = "DELETE", pattern = "/org/sso/connections/:id", ee = SSO, handler = delete_sso },
  { method = "POST", pattern = "/org/sso/connections/:id/test", ee = SSO, handler = test_sso },
  { method = "GET", pattern = "/org/sso/enforcement", ee = SSO, handler = get_enforcement },
  { method = "PATCH", pattern = "/org/sso/enforcement", ee = SSO, handler = patch_enforcement },
  { method = "GET", pattern = "/org/scim/tokens", ee = SSO, handler = list_scim },
  { method = "POST", pattern = "/org/scim/tokens", ee = SSO, handler = create_scim },
  { method = "DELETE", pattern = "/org/scim/tokens/:id", ee = SSO, handler = delete_scim },
  { method = "POST", pattern = "/auth/sso/lookup", ee = SSO, auth = "none", handler = sso_lookup },

  { method = "GET", pattern = "/org/app-availability", ee = AVAILABILITY_EE, handler = get_availability },
  { method = "PUT", pattern = "/org/app-availability", ee = AVAILABILITY_EE, handler = set_availability },

  { method = "GET", pattern = "/workspaces/:id/access", ee = SHARING, handler = get_access },
  { method = "PUT", pattern = "/workspaces/:id/access", ee = SHARING, handler = set_access },

  { method = "GET", pattern = "/apps/dropbox/folders", ee = RESOURCES, auth = "project", handler = dropbox_folders },

  { method = "POST", pattern = "/provisions/claim", ee = "Member provisioning", auth = "none", handler = claim },
}

for _, r in ipairs(routes) do
  r.mode, r.auth = "v2", r.auth or U
  if r.method == "GET" or r.method == "DELETE" then r.body = false end
end

-- Any other path under a mount: the licence 403 when unlicensed, else the
-- usual unknown-route 404. Registered after the routes above, so an equally
-- specific real route wins; one pattern per depth, since a trailing "*"
-- would outrank a real route one segment shorter.
local function unknown(ctx) return reply.unknown_route(ctx.req.method, ctx.norm_path) end

local function mount(prefix, feature, with_root)
  local patterns = { prefix .. "/:a", prefix .. "/:a/:b", prefix .. "/:a/:b/:c/*" }
  if with_root then table.insert(patterns, 1, prefix) end
  for _, pattern in ipairs(patterns) do
    routes[#routes + 1] = { mode = "v2", method = "*", pattern = pattern, auth = "none", ee = feature,
      handler = unknown, body = false }
  end
end

mount("/org/members", MEMBERS, true)
mount("/org/groups", GROUPS, true)
mount("/org/role-mappings", GROUPS, true)
mount("/org/domains", SSO, true)
mount("/org/sso", SSO, true)
mount("/org/scim/tokens", SSO, true)
mount("/org/app-availability", AVAILABILITY_EE, true)
mount("/apps/dropbox/folders", RESOURCES, true)
-- under /workspaces/{id}/ (but not /workspaces/{id} itself)
mount("/workspaces/:id", SHARING, false)

return routes
