-- The "enterprise" methods of reference §14.9 against the v2 stand-in:
-- the members directory, user groups, role mappings, domains, SSO, SCIM
-- tokens, app availability, workspace access and Dropbox folders — on a
-- licensed instance, then without the licence (403
-- enterprise_license_required before authentication). Also the pagination
-- iterators over the directory lists, and the unwrapped EE routes (SSO
-- lookup, provision claims, any path under an EE mount) over raw HTTP.
-- Every test starts from a reset server.
local onecli = require("onecli")
local json = require("onecli.standin.json")
local sclient = require("onecli.standin.client")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local raised = api.raised
local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"

local srv, client, org

local function new_client(opts)
  opts.max_retries = 0
  return api.client(srv, opts)
end

-- status, type, message and retryable of a raised error
local function check_error(err, status, kind, message, retryable)
  assert.are.equal(status, err.status)
  assert.are.equal(kind, err.type)
  if message then assert.are.equal(message, err.message) end
  assert.are.equal(retryable or false, err.retryable)
end

-- fn(...) must raise status/type/message
local function fails(status, kind, message, fn, ...)
  check_error(raised(fn, ...), status, kind, message)
end

local function collect(iter)
  local out = {}
  for item, err in iter do
    out[#out + 1] = item == false and { false, err } or item
    assert(#out < 1000, "runaway iterator")
  end
  return out
end

local function raw(method, path, headers, body)
  local res = assert(sclient.request(srv.port, { method = method, path = path, headers = headers or {},
    body = body and json.encode(body) or nil }))
  return res.status, res.body ~= "" and json.decode(res.body) or nil
end

local JSON = { "Content-Type", "application/json" }

local function add_members(n, prefix)
  local ids = {}
  for i = 1, n do
    ids[i] = org.org.members:create({ email = (prefix or "user") .. i .. "@corp.example",
      name = "User " .. i }).userId
  end
  return ids
end

-- A dropbox connection of the workspace, through the OAuth flow.
local function dropbox_connection()
  client.apps:set_config("dropbox", { clientId = "id", clientSecret = "secret" })
  local url = client.apps:authorize_url("dropbox")
  local state = url:match("[?&]state=(%x+)")
  local res = assert(sclient.request(srv.port, { method = "GET",
    path = "/v1/apps/dropbox/callback?code=c0de&state=" .. state }))
  assert.are.equal(302, res.status)
  return client.connections:list({ provider = "dropbox" })[1].id
end

describe("v2 enterprise methods", function()
  setup(function()
    srv = launcher.start({ mode = "v2", lua = LUA, licensed = true, runner = true })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    client = new_client({ api_key = srv.api_key })
    org = new_client({ api_key = srv.org_key })
  end)

  after_each(function()
    client:close()
    org:close()
  end)

  describe("members", function()
    it("list the owner first; add, suspend, reactivate, exempt and remove members", function()
      local page = org.org.members:list()
      assert.are.equal(1, #page.data)
      assert.are.equal(onecli.null, page.nextCursor)
      local owner = page.data[1]
      assert.are.equal("owner", owner.role)
      assert.are.equal("active", owner.status)
      assert.is_false(owner.ssoExempt)
      assert.are.equal("acceptance@example.com", owner.email)

      local m = client.org.members:create({ email = " Ann@Corp.Example ", name = "Ann" })
      assert.are.equal("ann@corp.example", m.email)
      assert.are.equal("Ann", m.name)
      assert.are.equal("member", m.role)
      assert.are.equal("active", m.status)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", m.joinedAt)
      fails(409, "invalid_request_error", "This user is already a member of the organization.",
        client.org.members.create, client.org.members, { email = "ann@corp.example" })

      local s = client.org.members:update(m.userId, { status = "suspended" })
      assert.are.equal("suspended", s.status)
      assert.are.equal("table", type(s.revocation))
      fails(409, "invalid_request_error", "This member is already suspended",
        client.org.members.update, client.org.members, m.userId, { status = "suspended" })
      assert.are.equal(1, #client.org.members:list({ status = "suspended" }).data)
      assert.are.equal("active", client.org.members:update(m.userId, { status = "active" }).status)
      fails(409, "invalid_request_error", "This member is not suspended",
        client.org.members.update, client.org.members, m.userId, { status = "active" })

      local e = client.org.members:update(m.userId, { ssoExempt = true })
      assert.is_true(e.ssoExempt)
      assert.is_nil(e.revocation)

      assert.is_true(client.org.members:delete(m.userId))
      fails(404, "not_found_error", "User is not a member of this organization",
        client.org.members.delete, client.org.members, m.userId)
      fails(404, "not_found_error", "User is not a member of this organization",
        client.org.members.update, client.org.members, m.userId, { ssoExempt = false })
    end)

    it("keep the owner: no suspending yourself, no removing the owner", function()
      local owner = org.org.members:list().data[1].userId
      fails(400, "invalid_request_error", "You cannot suspend yourself",
        org.org.members.update, org.org.members, owner, { status = "suspended" })
      fails(400, "invalid_request_error", "The organization owner cannot be removed",
        org.org.members.delete, org.org.members, owner)
    end)

    it("refuse invalid bodies and queries with a flat 400", function()
      local cases = {
        { {}, "Email is required" },
        { { email = "" }, "Email is required" },
        { { email = "not-an-email" }, "Enter a valid email address" },
        { { email = "a@corp.example", role = "admin" }, 'Unrecognized key: "role"' },
        { { email = "a@corp.example", name = "" }, "Too small: expected string to have >=1 characters" },
      }
      for _, c in ipairs(cases) do
        fails(400, "invalid_request_error", c[2], org.org.members.create, org.org.members, c[1])
      end
      local msg = 'Provide exactly one of { status: "active" | "suspended" } or { ssoExempt: boolean }'
      local id = add_members(1)[1]
      for _, body in ipairs({ {}, { status = "gone" }, { status = "active", ssoExempt = true }, { ssoExempt = 1 } }) do
        fails(400, "invalid_request_error", msg, org.org.members.update, org.org.members, id, body)
      end
      for q, m in pairs({
        [{ limit = 0 }] = "Too small: expected number to be >=1",
        [{ limit = 201 }] = "Too big: expected number to be <=200",
        [{ limit = "x" }] = "Invalid input: expected number, received NaN",
        [{ limit = 1.5 }] = "Invalid input: expected int, received number",
        [{ q = string.rep("a", 201) }] = "Too big: expected string to have <=200 characters",
        [{ status = "gone" }] = 'Invalid option: expected one of "active"|"suspended"',
        [{ cursor = "zz" }] = "Invalid cursor",
        [{ cursor = "abcd" }] = "Invalid cursor",
      }) do
        fails(400, "invalid_request_error", m, org.org.members.list, org.org.members, q)
      end
    end)

    it("page with limit, cursor and q", function()
      add_members(4, "ann")
      add_members(2, "bob")
      local first = org.org.members:list({ limit = 3 })
      assert.are.equal(3, #first.data)
      assert.are.equal("string", type(first.nextCursor))
      local second = org.org.members:list({ limit = 3, cursor = first.nextCursor })
      assert.are.equal(3, #second.data)
      local last = org.org.members:list({ limit = 3, cursor = second.nextCursor })
      assert.are.equal(1, #last.data)
      assert.are.equal(onecli.null, last.nextCursor)
      assert.are_not.equal(first.data[1].userId, second.data[1].userId)
      local anns = org.org.members:list({ q = "ANN" })
      assert.are.equal(4, #anns.data)
      assert.are.equal(2, #org.org.members:list({ q = "user 1" }).data)   -- ann1 and bob1 by name
    end)
  end)

  describe("pagination iterators", function()
    it("walk every page of members", function()
      add_members(6)
      local got = collect(org.org.members:each({ limit = 2 }))
      assert.are.equal(7, #got)
      local seen = {}
      for _, m in ipairs(got) do
        assert.is_nil(seen[m.userId])
        seen[m.userId] = true
      end
      assert.are.equal("owner", got[1].role)
      local requests = 0
      for _, r in ipairs(srv:requests()) do
        if r.method == "GET" and r.path:match("^/v1/org/members") then requests = requests + 1 end
      end
      assert.are.equal(4, requests)
    end)

    it("yield nothing for an empty list", function()
      assert.are.same({}, collect(org.org.members:each({ q = "nobody-matches" })))
      assert.are.same({}, collect(org.org.groups:each()))
    end)

    it("raise when a later page fails, or give false, err once with raise = false", function()
      add_members(3)
      local iter = org.org.members:each({ limit = 2 })
      assert.is_table(iter())
      assert.is_table(iter())
      srv:fault({ kind = "status", status = 500, path = "/v1/org/members", count = 1 })
      local ok, err = pcall(iter)
      assert.is_false(ok)
      check_error(err, 500, "api_error", nil, true)

      srv:fault({ kind = "status", status = 500, path = "/v1/org/members", count = 1 })
      local got = collect(org.org.members:each({ limit = 2 }, { raise = false }))
      assert.are.equal(1, #got)
      assert.is_false(got[1][1])
      assert.are.equal(500, got[1][2].status)
    end)

    it("walk groups, a group's members and a member's groups", function()
      local ids = add_members(5)
      local g
      for i = 1, 5 do
        g = org.org.groups:create("Team " .. i)
      end
      org.org.groups:set_members(g.id, ids)
      for i = 1, 3 do
        local other = org.org.groups:list({ q = "team " .. i }).data[1]
        org.org.groups:add_member(other.id, ids[1])
      end
      assert.are.equal(5, #collect(org.org.groups:each({ limit = 2 })))
      assert.are.equal(5, #collect(org.org.groups:each_member(g.id, { limit = 2 })))
      assert.are.equal(4, #collect(org.org.members:each_group(ids[1], { limit = 3 })))
      assert.are.equal(1, #collect(org.org.members:each_group(ids[2])))
      local err = raised(function() return collect(org.org.groups:each_member("missing")) end)
      check_error(err, 404, "not_found_error", "Group not found")
    end)
  end)

  describe("groups", function()
    it("create, get, rename, list by source, delete", function()
      local g = client.org.groups:create("Engineering")
      assert.are.equal("Engineering", g.name)
      assert.are.equal("manual", g.source)
      assert.are.equal(onecli.null, g.externalId)
      assert.are.equal(0, g.memberCount)
      fails(409, "invalid_request_error", "A group with this name already exists.",
        client.org.groups.create, client.org.groups, "engineering")
      assert.are.equal(g.id, client.org.groups:get(g.id).id)
      assert.are.equal("Eng", client.org.groups:update(g.id, "Eng").name)
      assert.are.equal(1, #client.org.groups:list({ source = "manual" }).data)
      assert.are.equal(0, #client.org.groups:list({ source = "scim" }).data)
      assert.is_true(client.org.groups:delete(g.id))
      fails(404, "not_found_error", "Group not found", client.org.groups.get, client.org.groups, g.id)
      fails(404, "not_found_error", "Group not found", client.org.groups.update, client.org.groups, g.id, "X")
      fails(404, "not_found_error", "Group not found", client.org.groups.delete, client.org.groups, g.id)
    end)

    it("refuse invalid names and queries", function()
      fails(400, "invalid_request_error", "Group name is required", org.org.groups.create, org.org.groups, "  ")
      fails(400, "invalid_request_error", "Group name is required", org.org.groups.create, org.org.groups, {})
      fails(400, "invalid_request_error", "Group name is too long", org.org.groups.create, org.org.groups,
        string.rep("n", 101))
      local g = org.org.groups:create("Ops")
      fails(400, "invalid_request_error", 'Unrecognized key: "source"', org.org.groups.update, org.org.groups,
        g.id, { name = "Ops2", source = "scim" })
      fails(400, "invalid_request_error", 'Invalid option: expected one of "manual"|"scim"',
        org.org.groups.list, org.org.groups, { source = "ldap" })
    end)

    it("replace, add and remove members", function()
      local ids = add_members(3)
      local g = org.org.groups:create("Ops")
      local r = org.org.groups:set_members(g.id, { ids[1], ids[2] })
      assert.are.equal(2, r.added)
      assert.are.equal(0, r.removed)
      r = org.org.groups:set_members(g.id, { ids[2], ids[3] })
      assert.are.equal(1, r.added)
      assert.are.equal(1, r.removed)
      assert.are.equal(2, org.org.groups:get(g.id).memberCount)
      local list = org.org.groups:members(g.id)
      assert.are.equal(2, #list.data)
      assert.are.equal("user2@corp.example", list.data[1].email)
      assert.matches("^%d%d%d%d%-", list.data[1].addedAt)
      fails(400, "invalid_request_error", "Not members of this organization: nobody, ghost",
        org.org.groups.set_members, org.org.groups, g.id, { "nobody", ids[1], "ghost" })
      assert.is_true(org.org.groups:add_member(g.id, ids[1]))
      assert.is_true(org.org.groups:add_member(g.id, ids[1]))
      assert.are.equal(3, org.org.groups:get(g.id).memberCount)
      assert.is_true(org.org.groups:remove_member(g.id, ids[2]))
      assert.are.equal(2, org.org.groups:get(g.id).memberCount)
      fails(400, "invalid_request_error", "User is not a member of this organization",
        org.org.groups.add_member, org.org.groups, g.id, "nobody")
      fails(404, "not_found_error", "Group not found", org.org.groups.add_member, org.org.groups, "nope", ids[1])
      fails(404, "not_found_error", "Group not found", org.org.groups.remove_member, org.org.groups, "nope", ids[1])
      assert.is_true(org.org.groups:set_members(g.id, {}).removed == 2)
      -- removing a member drops it from its groups
      org.org.groups:add_member(g.id, ids[3])
      org.org.members:delete(ids[3])
      assert.are.equal(0, org.org.groups:get(g.id).memberCount)
    end)
  end)

  describe("role mappings", function()
    it("map groups to roles in priority order, reorder, preview, change and delete", function()
      local ids = add_members(2)
      local admins = org.org.groups:create("Admins")
      local staff = org.org.groups:create("Staff")
      org.org.groups:set_members(admins.id, { ids[1] })
      org.org.groups:set_members(staff.id, { ids[1], ids[2] })

      local preview = org.org.role_mappings:preview({ groupId = admins.id, role = "admin" })
      assert.are.equal(1, #preview.changes)
      assert.are.equal(ids[1], preview.changes[1].userId)
      assert.are.equal("member", preview.changes[1].currentRole)
      assert.are.equal("admin", preview.changes[1].newRole)

      local a = org.org.role_mappings:create({ groupId = admins.id, role = "admin" })
      assert.are.equal("Admins", a.groupName)
      assert.are.equal(1, a.memberCount)
      assert.are.equal(0, a.priority)
      local s = org.org.role_mappings:create({ groupId = staff.id, role = "member" })
      assert.are.equal(1, s.priority)
      fails(409, "invalid_request_error", "This group already has a role mapping.",
        org.org.role_mappings.create, org.org.role_mappings, { groupId = staff.id, role = "admin" })
      fails(404, "not_found_error", "Group not found",
        org.org.role_mappings.create, org.org.role_mappings, { groupId = "nope", role = "admin" })

      local roles = {}
      for _, m in ipairs(org.org.members:list().data) do roles[m.userId] = m.role end
      assert.are.equal("admin", roles[ids[1]])
      assert.are.equal("member", roles[ids[2]])

      local list = org.org.role_mappings:reorder({ s.id, a.id })
      assert.are.equal(s.id, list[1].id)
      assert.are.equal(a.id, org.org.role_mappings:list()[2].id)
      -- Staff (member) now comes first for the member of both groups
      assert.are.equal("member", org.org.members:list({ q = "user 1" }).data[1].role)
      fails(400, "invalid_request_error", "Order must list every role mapping exactly once.",
        org.org.role_mappings.reorder, org.org.role_mappings, { s.id })
      fails(400, "invalid_request_error", "Order must list every role mapping exactly once.",
        org.org.role_mappings.reorder, org.org.role_mappings, { s.id, s.id })
      fails(409, "invalid_request_error", "Role mappings changed. Please refresh and try again.",
        org.org.role_mappings.reorder, org.org.role_mappings, { s.id, "stale" })
      fails(400, "invalid_request_error", "Too small: expected array to have >=1 items",
        org.org.role_mappings.reorder, org.org.role_mappings, {})

      local u = org.org.role_mappings:update(s.id, { role = "admin", priority = 5 })
      assert.are.equal("admin", u.role)
      assert.are.equal(5, u.priority)
      assert.are.equal(a.id, org.org.role_mappings:list()[1].id)
      fails(400, "invalid_request_error", "Too big: expected number to be <=1000000",
        org.org.role_mappings.update, org.org.role_mappings, s.id, { role = "admin", priority = 1000001 })
      assert.is_true(org.org.role_mappings:delete(s.id))
      fails(404, "not_found_error", "Role mapping not found",
        org.org.role_mappings.delete, org.org.role_mappings, s.id)
      fails(404, "not_found_error", "Role mapping not found",
        org.org.role_mappings.update, org.org.role_mappings, s.id, { role = "member" })
      fails(404, "not_found_error", "Group not found",
        org.org.role_mappings.preview, org.org.role_mappings, { groupId = "nope", role = "admin" })
      -- deleting a group drops its mapping
      org.org.groups:delete(admins.id)
      assert.are.same({}, org.org.role_mappings:list())
    end)
  end)

  describe("domains, SSO and SCIM", function()
    it("claim, verify and release domains", function()
      local x = org.org.domains:create("Corp.Verified.Test")
      assert.are.equal("corp.verified.test", x.domain)
      assert.are.equal(onecli.null, x.verifiedAt)
      assert.are.equal("string", type(x.verificationToken))
      fails(409, "invalid_request_error", "This domain is already claimed by an organization.",
        org.org.domains.create, org.org.domains, "corp.verified.test")
      fails(400, "invalid_request_error", "Enter a valid domain like example.com",
        org.org.domains.create, org.org.domains, "not a domain")
      fails(400, "invalid_request_error", "Too small: expected string to have >=3 characters",
        org.org.domains.create, org.org.domains, "a.")
      fails(400, "invalid_request_error", "Public email providers can't be claimed. Use your company's domain.",
        org.org.domains.create, org.org.domains, "gmail.com")
      assert.matches("^%d%d%d%d%-", org.org.domains:verify(x.id).verifiedAt)
      local y = org.org.domains:create("corp.example")
      fails(400, "invalid_request_error",
        "TXT record not found yet. DNS changes can take a few minutes to propagate.",
        org.org.domains.verify, org.org.domains, y.id)
      assert.are.equal(2, #org.org.domains:list())
      assert.is_true(org.org.domains:delete(y.id))
      fails(404, "not_found_error", "Domain not found", org.org.domains.delete, org.org.domains, y.id)
      fails(404, "not_found_error", "Domain not found", org.org.domains.verify, org.org.domains, y.id)
    end)

    it("add, test, change and delete the SSO connection; require SSO", function()
      local sso, enf = org.org.sso.connections, org.org.sso.enforcement
      for body, msg in pairs({
        [{ type = "saml", displayName = "Okta" }] = "Provide exactly one of metadata URL or metadata XML",
        [{ type = "saml", displayName = "Okta", metadataUrl = "https://idp.example/m", metadataXml = "<x/>" }] =
          "Provide exactly one of metadata URL or metadata XML",
        [{ type = "saml", displayName = "Okta", metadataUrl = "http://idp.example/m" }] = "Must be an https URL",
        [{ type = "oidc", displayName = "G", issuer = "https://id.example", clientId = "c" }] =
          "Invalid input: expected string, received undefined",
        [{ type = "ldap", displayName = "L" }] = "Invalid input",
      }) do
        fails(400, "invalid_request_error", msg, sso.create, sso, body)
      end
      local c = sso:create({ type = "saml", displayName = "Okta", metadataUrl = "https://idp.example/metadata" })
      assert.are.equal("pending", c.status)
      assert.are.equal("saml", c.type)
      fails(409, "invalid_request_error", "This organization already has an SSO connection.", sso.create, sso,
        { type = "oidc", displayName = "G", issuer = "https://id.example", clientId = "c", clientSecret = "s" })

      local state = enf:get()
      assert.is_false(state.ssoRequired)
      assert.is_false(state.canRequire)
      local no_conn = raised(enf.update, enf, { ssoRequired = true })
      check_error(no_conn, 400, "invalid_request_error")
      assert.matches("^Requiring SSO needs an active SSO connection%.", no_conn.message)

      local t = sso:test(c.id)
      assert.is_true(t.ok)
      assert.is_true(#t.checks >= 1)
      assert.are.equal("active", sso:list()[1].status)
      local err = raised(enf.update, enf, { ssoRequired = true })
      check_error(err, 400, "invalid_request_error")
      assert.matches("^Requiring SSO needs a verified domain%.", err.message)
      org.org.domains:verify(org.org.domains:create("corp.verified.test").id)
      state = enf:update({ ssoRequired = true })
      assert.is_true(state.ssoRequired)
      assert.is_true(state.canRequire)

      fails(409, "invalid_request_error",
        'This organization requires SSO. Turn off "Require single sign-on" before disabling the connection.',
        sso.update, sso, c.id, { enabled = false })
      fails(409, "invalid_request_error",
        'This organization requires SSO. Turn off "Require single sign-on" before deleting the connection.',
        sso.delete, sso, c.id)
      assert.is_false(enf:update({ ssoRequired = false }).ssoRequired)
      fails(400, "invalid_request_error", "At least one field must be provided", sso.update, sso, c.id, {})
      assert.are.equal("disabled", sso:update(c.id, { enabled = false }).status)
      assert.are.equal("Okta SSO", sso:update(c.id, { displayName = "Okta SSO" }).displayName)
      local bad = sso:update(c.id, { enabled = true, metadataUrl = "https://idp.invalid/metadata" })
      assert.are.equal("pending", bad.status)
      assert.is_false(sso:test(c.id).ok)
      assert.is_true(sso:delete(c.id))
      fails(404, "not_found_error", "SSO connection not found", sso.delete, sso, c.id)
      fails(404, "not_found_error", "SSO connection not found", sso.test, sso, c.id)
      fails(404, "not_found_error", "SSO connection not found", sso.update, sso, c.id, { enabled = true })
    end)

    it("create, list and revoke SCIM tokens", function()
      local scim = org.org.scim.tokens
      local t = scim:create("Okta provisioning")
      assert.matches("^oc_scim_" .. string.rep("%x", 48) .. "$", t.token)
      assert.are.equal(onecli.null, t.lastUsedAt)
      local list = scim:list()
      assert.are.equal(1, #list)
      assert.is_nil(list[1].token)
      assert.is_true(scim:delete(t.id))
      assert.is_true(scim:delete(t.id))
      assert.are.same({}, scim:list())
      fails(404, "not_found_error", "SCIM token not found", scim.delete, scim, "00000000-0000-0000-0000-000000000000")
      fails(400, "invalid_request_error", "Label is required", scim.create, scim, " ")
      fails(400, "invalid_request_error", "Label is required", scim.create, scim, {})
      fails(400, "invalid_request_error", "Keep the label under 64 characters", scim.create, scim,
        string.rep("l", 65))
    end)
  end)

  describe("app availability", function()
    it("starts open; is replaced as a whole", function()
      local a = org.org.app_availability:get()
      assert.are.equal("open", a.mode)
      assert.are.same({}, a.rules)
      local id = add_members(1)[1]
      local g = org.org.groups:create("Sales")
      local set = org.org.app_availability:set({ mode = "restricted", rules = {
        { name = "Sales tools", userIds = { id }, groupIds = { g.id }, providers = { "github", "resend" } },
        { id = "r2", userIds = {}, groupIds = {}, providers = {} },
      } })
      assert.are.equal("restricted", set.mode)
      assert.are.equal(2, #set.rules)
      assert.are.equal("string", type(set.rules[1].id))
      assert.are.equal("r2", set.rules[2].id)
      assert.are.equal(onecli.null, set.rules[2].name)
      assert.are.same({}, set.rules[2].providers)
      assert.are.same(set, org.org.app_availability:get())
    end)

    it("refuses bad rules", function()
      local av = org.org.app_availability
      local function rule(extra)
        local r = { userIds = {}, groupIds = {}, providers = {} }
        for k, v in pairs(extra) do r[k] = v end
        return r
      end
      fails(422, "validation_error", 'Invalid option: expected one of "open"|"restricted"', av.set, av,
        { mode = "closed", rules = {} })
      fails(422, "validation_error", "Invalid input: expected array, received undefined", av.set, av,
        { mode = "open" })
      fails(400, "invalid_request_error", "Unknown app provider: nope", av.set, av,
        { mode = "open", rules = { rule({ providers = { "nope" } }) } })
      fails(400, "invalid_request_error", "Duplicate rule id in the request.", av.set, av,
        { mode = "open", rules = { rule({ id = "a" }), rule({ id = "a" }) } })
      fails(422, "validation_error", "A referenced identity does not belong to this organization.", av.set, av,
        { mode = "open", rules = { rule({ groupIds = { "elsewhere" } }) } })
    end)
  end)

  describe("workspace access", function()
    it("lists the owner, replaces users and groups", function()
      local ws = srv.project_id
      local acc = client.workspaces:get_access(ws)
      assert.are.equal(1, #acc.users)
      assert.is_true(acc.users[1].isOwner)
      assert.are.equal("owner", acc.users[1].role)
      assert.are.same({}, acc.groups)
      local ids = add_members(2)
      local g = org.org.groups:create("Readers")
      local r = client.workspaces:set_access(ws, { users = { { userId = ids[1], role = "member" },
        { userId = ids[2], role = "owner" } }, groupIds = { g.id } })
      assert.are.same({ added = 3, removed = 0, roleChanged = 0 }, r)
      r = client.workspaces:set_access(ws, { users = { { userId = ids[1], role = "owner" } }, groupIds = {} })
      assert.are.same({ added = 0, removed = 2, roleChanged = 1 }, r)
      acc = client.workspaces:get_access(ws)
      assert.are.equal(2, #acc.users)
      assert.are.equal("user1@corp.example", acc.users[2].email)
      assert.is_false(acc.users[2].isOwner)

      org.org.members:update(ids[2], { status = "suspended" })
      fails(400, "invalid_request_error", "Not active members of this organization: " .. ids[2] .. ", x",
        client.workspaces.set_access, client.workspaces, ws,
        { users = { { userId = ids[2], role = "member" }, { userId = "x", role = "member" } }, groupIds = {} })
      fails(400, "invalid_request_error", "Groups not in this organization: nope",
        client.workspaces.set_access, client.workspaces, ws, { users = {}, groupIds = { "nope" } })
      fails(400, "invalid_request_error", 'Invalid option: expected one of "owner"|"member"',
        client.workspaces.set_access, client.workspaces, ws,
        { users = { { userId = ids[1], role = "admin" } }, groupIds = {} })
      fails(404, "not_found_error", "Workspace not found", client.workspaces.get_access, client.workspaces,
        "nosuchworkspaceid")
    end)
  end)

  describe("Dropbox folders", function()
    it("need a connection id, a Dropbox connection, then a token", function()
      fails(400, "invalid_request_error", "connectionId is required", client.apps.dropbox_folders, client.apps, {})
      local resend = client.apps:connect("resend", { fields = { apiKey = "re_dropbox_case" }, label = "r" })
      fails(404, "not_found_error", "Connection not found", client.apps.dropbox_folders, client.apps,
        { connectionId = resend.connection.id })
      fails(400, "invalid_request_error", "No valid Dropbox access token", client.apps.dropbox_folders,
        client.apps, { connectionId = dropbox_connection(), path = "/Reports" })
      -- a workspace route: an org key needs X-Workspace-Id
      local status, body = raw("GET", "/v1/apps/dropbox/folders?connectionId=x",
        { { "Authorization", "Bearer " .. srv.org_key } })
      assert.are.equal(401, status)
      assert.are.equal("X-Workspace-Id (formerly X-Project-Id) header is required", body.error.message)
    end)
  end)

  describe("without an Enterprise licence", function()
    local EE = {
      { "Members directory API", function() return org.org.members:list() end },
      { "Members directory API", function() return collect(org.org.members:each()) end },
      { "Members directory API", function() return client.org.members:create({ email = "a@corp.example" }) end },
      { "Members directory API", function() return client.org.members:groups("x") end },
      { "Members directory API", function() return client.org.members:update("x", { status = "active" }) end },
      { "Members directory API", function() return client.org.members:delete("x") end },
      { "Directory groups", function() return client.org.groups:create("G") end },
      { "Directory groups", function() return client.org.groups:members("x") end },
      { "Directory groups", function() return client.org.groups:add_member("x", "y") end },
      { "Directory groups", function() return client.org.role_mappings:list() end },
      { "Directory groups", function() return client.org.role_mappings:reorder({ "a" }) end },
      { "Single sign-on, verified domains & SCIM", function() return client.org.domains:list() end },
      { "Single sign-on, verified domains & SCIM", function() return client.org.sso.connections:test("x") end },
      { "Single sign-on, verified domains & SCIM", function() return client.org.sso.enforcement:get() end },
      { "Single sign-on, verified domains & SCIM", function() return client.org.scim.tokens:create("l") end },
      { "App availability control", function() return client.org.app_availability:get() end },
      { "Workspace sharing", function() return client.workspaces:get_access(srv.project_id) end },
      { "Resource-level access", function() return client.apps:dropbox_folders({ connectionId = "x" }) end },
      { "Member provisioning", function() return org.team:provision({ role = "member" }) end },
    }

    it("every Enterprise method answers 403 enterprise_license_required", function()
      srv:instance({ licensed = false })
      for _, c in ipairs(EE) do
        local err = raised(c[2])
        check_error(err, 403, "enterprise_license_required", c[1] .. " requires a OneCLI Enterprise license.")
      end
      local got = collect(org.org.groups:each({}, { raise = false }))
      assert.are.equal(1, #got)
      assert.are.equal(403, got[1][2].status)
      -- the licence comes first: even a bad key gets the 403
      local bad = new_client({ api_key = "oc_" .. string.rep("0", 64) })
      check_error(raised(bad.org.members.list, bad.org.members), 403, "enterprise_license_required")
      bad:close()
    end)

    it("licensed again after a reset, where provisions work", function()
      srv:instance({ licensed = false })
      srv:reset()
      assert.are.equal(1, #org.org.members:list().data)
      assert.matches("^oc_", org.team:provision({ role = "member" }).apiKey)
    end)
  end)

  describe("the unwrapped Enterprise routes", function()
    local LICENCE = "Single sign-on, verified domains & SCIM requires a OneCLI Enterprise license."

    it("POST /auth/sso/lookup finds the SSO of a verified domain", function()
      local status, body = raw("POST", "/v1/auth/sso/lookup", { JSON }, {})
      assert.are.equal(400, status)
      assert.are.equal("Email is required", body.error)
      status, body = raw("POST", "/v1/auth/sso/lookup", { JSON }, { email = "nope" })
      assert.are.equal(400, status)
      assert.are.equal("Enter a valid email address", body.error)
      status, body = raw("POST", "/v1/auth/sso/lookup", { JSON }, { email = "ann@corp.verified.test" })
      assert.are.equal(200, status)
      assert.is_false(body.sso)
      org.org.domains:verify(org.org.domains:create("corp.verified.test").id)
      local c = org.org.sso.connections:create({ type = "oidc", displayName = "G", issuer = "https://id.example",
        clientId = "c", clientSecret = "s" })
      org.org.sso.connections:test(c.id)
      status, body = raw("POST", "/v1/auth/sso/lookup", { JSON }, { email = "Ann@Corp.Verified.Test" })
      assert.are.equal(200, status)
      assert.is_true(body.sso)
      assert.are.equal("oidc", body.provider)
      assert.is_false(body.enforced)
      srv:instance({ licensed = false })
      status, body = raw("POST", "/v1/auth/sso/lookup", { JSON }, { email = "a@b.example" })
      assert.are.equal(403, status)
      assert.are.equal(LICENCE, body.error.message)
    end)

    it("POST /provisions/claim needs a session and a live token", function()
      local claim_url = org.team:provision({ role = "member" }).claimUrl
      local token = claim_url:match("/claim/(%x+)$")
      local cookie = { "Cookie", "better-auth.session_token=s3ss10n" }
      local status, body = raw("POST", "/v1/provisions/claim",
        { JSON, { "Authorization", "Bearer " .. srv.api_key } }, { token = token })
      assert.are.equal(401, status)
      assert.are.equal("Not authenticated", body.error)
      status, body = raw("POST", "/v1/provisions/claim", { JSON, cookie }, {})
      assert.are.equal(400, status)
      assert.are.equal("A token is required", body.error)
      status, body = raw("POST", "/v1/provisions/claim", { JSON, cookie }, { token = "x" })
      assert.are.equal(400, status)
      assert.are.equal("Invalid claim link", body.error)
      status, body = raw("POST", "/v1/provisions/claim", { JSON, cookie }, { token = token })
      assert.are.equal(200, status)
      assert.are.equal(srv.project_id, body.workspaceId)
      status, body = raw("POST", "/v1/provisions/claim", { JSON, cookie }, { token = token })
      assert.are.equal(400, status)
      assert.are.equal("This provision has already been claimed", body.error)
    end)

    it("any path under an Enterprise mount: 403 unlicensed, the unknown-route 404 licensed", function()
      local auth = { "Authorization", "Bearer " .. srv.org_key }
      local paths = { { "GET", "/v1/org/members/x/y/z" }, { "PUT", "/v1/org/members" },
        { "POST", "/v1/org/groups/x" }, { "GET", "/v1/org/sso" }, { "GET", "/v1/org/scim/tokens/a/b/c/d" },
        { "DELETE", "/v1/org/app-availability" }, { "GET", "/v1/workspaces/" .. srv.project_id .. "/other" },
        { "GET", "/v1/apps/dropbox/folders/deeper" } }
      for _, p in ipairs(paths) do
        local status, body = raw(p[1], p[2], { auth })
        assert.are.equal(404, status, p[2])
        assert.are.equal("invalid_request_error", body.error.type)
        assert.matches("^Unrecognized request URL %(" .. p[1], body.error.message)
      end
      srv:instance({ licensed = false })
      for _, p in ipairs(paths) do
        local status, body = raw(p[1], p[2], {})
        assert.are.equal(403, status, p[2])
        assert.are.equal("enterprise_license_required", body.error.type)
      end
      -- the workspace routes themselves are not Enterprise
      local status = raw("GET", "/v1/workspaces/" .. srv.project_id, { auth })
      assert.are.equal(200, status)
    end)
  end)
end)

describe("v1 enterprise routes", function()
  it("are not served (404)", function()
    srv = launcher.start({ mode = "v1", lua = LUA })
    local c = new_client({ api_key = srv.api_key })
    local ok, err = pcall(function()
      check_error(raised(c.org.members.list, c.org.members), 404, "invalid_request_error")
      check_error(raised(c.org.sso.enforcement.get, c.org.sso.enforcement), 404, "invalid_request_error")
    end)
    c:close()
    srv:stop()
    assert(ok, err)
  end)
end)
