-- The "workspace" methods of reference §14 against the v2 stand-in
-- (licensed, with a runner): client:instance(), skills and organization
-- skills, invitations, organization channels, the policy reflections,
-- org.connections:by_provider and the status query of
-- org.policy:get_default. Every test starts from a reset server.
local onecli = require("onecli")
local json = require("onecli.standin.json")
local sclient = require("onecli.standin.client")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local raised = api.raised
local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"
local WORKSPACE_MSG = "X-Workspace-Id (formerly X-Project-Id) header is required"

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

local function skill(name, extra)
  local body = { name = name, description = "About " .. name, content = "Do " .. name .. "." }
  for k, v in pairs(extra or {}) do body[k] = v end
  return body
end

local function hosted_agent(identifier)
  return client.agents:create({ name = "Hosted " .. identifier, identifier = identifier, kind = "hosted" }).id
end

local function byo_agent(identifier)
  return client.agents:create({ name = "BYO " .. identifier, identifier = identifier }).id
end

local function granola(c, label)
  c.apps:connect("granola", { fields = { apiKey = "grn_" .. label }, label = label })
  for _, conn in ipairs(c.connections:list({ provider = "granola" })) do
    if conn.label == label then return conn.id end
  end
end

local function publish_default(action)
  org.org.policy:set_default(action)
  return org.org.policy:publish()
end

local function tools_by_id(res)
  local out = {}
  for _, g in ipairs(res.groups) do
    for _, t in ipairs(g.tools) do out[t.toolId] = t end
  end
  return out
end

describe("v2 workspace methods", function()
  setup(function()
    srv = launcher.start({ mode = "v2", lua = LUA, licensed = true, runner = true })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    client = new_client({ api_key = srv.api_key })
    org = new_client({ api_key = srv.org_key, project_id = srv.project_id })
  end)

  after_each(function()
    client:close()
    org:close()
  end)

  describe("instance", function()
    it("reports edition, licence and runners without a key", function()
      local c = new_client({})
      local r = c:instance()
      assert.are.equal("onprem", r.edition)
      assert.is_true(r.entitled)
      assert.are.equal("2.0.1", r.version)
      assert.is_true(r.runners.registered)
      assert.is_true(r.runners.online)
      srv:instance({ licensed = false, runner = false })
      r = c:instance()
      assert.is_false(r.entitled)
      assert.is_false(r.runners.registered)
      assert.is_false(r.runners.online)
      c:close()
    end)
  end)

  describe("skills", function()
    it("create, list, get, update, delete a workspace skill", function()
      local made = client.skills:create(skill("release-checklist", {
        files = { { path = "references/tags.md", content = "Tags look like v1.2.3." } } }))
      assert.are.equal("workspace", made.scope)
      assert.are.equal(srv.project_id, made.workspaceId)
      assert.are.equal(onecli.null, made.organizationId)
      assert.are.equal(onecli.null, made.agentId)
      assert.is_true(made.enabled)
      assert.are.equal("acceptance@example.com", made.createdByEmail)
      assert.are.equal("references/tags.md", made.files[1].path)

      local list = client.skills:list().skills
      assert.are.equal(1, #list)
      assert.are.equal(1, list[1].fileCount)
      assert.is_nil(list[1].content)
      assert.is_nil(list[1].files)

      local got = client.skills:get(made.id)
      assert.are.equal("Do release-checklist.", got.content)
      assert.are.equal(1, #got.files)

      local upd = client.skills:update(made.id, { enabled = false, description = "New", files = {} })
      assert.is_false(upd.enabled)
      assert.are.equal("New", upd.description)
      assert.are.equal(0, #upd.files)
      assert.are.equal(0, client.skills:list().skills[1].fileCount)

      assert.is_true(client.skills:delete(made.id))
      local err = raised(client.skills.get, client.skills, made.id)
      check_error(err, 404, "not_found_error", "Skill not found")
      err = raised(client.skills.delete, client.skills, made.id)
      check_error(err, 404, "not_found_error", "Skill not found")
    end)

    it("refuses invalid bodies with the first issue (422)", function()
      local cases = {
        { skill("Release Checklist"),
          'Skill names are lowercase words separated by single hyphens, like "release-checklist"' },
        { skill("double--hyphen"),
          'Skill names are lowercase words separated by single hyphens, like "release-checklist"' },
        { skill("onecli-gateway"), "That name is reserved for the built-in gateway skill" },
        { skill("x-y", { scope = "workspace" }), 'Unrecognized key: "scope"' },
        { skill("x-y", { description = "two\nlines" }),
          "Description is a single line. It is how the agent decides when to load the skill" },
        { skill("x-y", { files = { { path = "a.md", content = "a" }, { path = "a.md", content = "b" } } }),
          "File paths must be unique within a skill" },
        { skill("x-y", { content = string.rep("a", 20000),
          files = { { path = "b.md", content = string.rep("b", 20000) } } }),
          "A skill's body and files together are limited to 32,000 characters" },
        { skill("x-y", { content = "" }), "Too small: expected string to have >=1 characters" },
      }
      for _, c in ipairs(cases) do
        local err = raised(client.skills.create, client.skills, c[1])
        check_error(err, 422, "validation_error", c[2])
      end
      assert.are.equal(0, #client.skills:list().skills)
    end)

    it("a duplicate name is a 409; updates need a field and cannot rename", function()
      local made = client.skills:create(skill("dup"))
      local err = raised(client.skills.create, client.skills, skill("dup"))
      check_error(err, 409, "invalid_request_error", 'A skill named "dup" already exists here')
      err = raised(client.skills.update, client.skills, made.id, {})
      check_error(err, 422, "validation_error", "Nothing to update")
      err = raised(client.skills.update, client.skills, made.id, { name = "renamed" })
      check_error(err, 422, "validation_error", 'Unrecognized key: "name"')
      err = raised(client.skills.update, client.skills, "00000000-0000-0000-0000-000000000000", { enabled = false })
      check_error(err, 404, "not_found_error", "Skill not found")
    end)

    it("agent skills need a hosted agent", function()
      local err = raised(client.skills.create, client.skills, skill("a-s", { agentId = byo_agent("byo-1") }))
      check_error(err, 422, "validation_error", "Only hosted agents can hold skills")
      err = raised(client.skills.create, client.skills,
        skill("a-s", { agentId = "00000000-0000-0000-0000-000000000000" }))
      check_error(err, 404, "not_found_error", "Agent not found")
      local agent = hosted_agent("hosted-1")
      local made = client.skills:create(skill("a-s", { agentId = agent }))
      assert.are.equal("agent", made.scope)
      assert.are.equal(agent, made.agentId)
      -- the same name in another tier is no duplicate
      client.skills:create(skill("a-s"))
      local scopes = {}
      for _, s in ipairs(client.skills:list().skills) do scopes[#scopes + 1] = s.scope end
      assert.are.same({ "workspace", "agent" }, scopes)
    end)

    it("per-tier limits: 20 per workspace, 10 per agent", function()
      for i = 1, 20 do client.skills:create(skill("w" .. i)) end
      local err = raised(client.skills.create, client.skills, skill("w21"))
      check_error(err, 422, "validation_error", "This workspace already holds 20 skills. Delete one first")
      local agent = hosted_agent("hosted-2")
      for i = 1, 10 do client.skills:create(skill("a" .. i, { agentId = agent })) end
      err = raised(client.skills.create, client.skills, skill("a11", { agentId = agent }))
      check_error(err, 422, "validation_error", "This agent already holds 10 skills. Delete one first")
    end)

    it("an org key needs a workspace for /skills", function()
      local c = new_client({ api_key = srv.org_key })
      local ok, msg = pcall(c.skills.list, c.skills)     -- the client refuses before sending
      assert.is_false(ok)
      assert.matches("needs a workspace", tostring(msg))
      local err = raised(c.request, c, "GET", "/skills")    -- the server's answer
      check_error(err, 401, "authentication_error", WORKSPACE_MSG)
      c:close()
    end)
  end)

  describe("organization skills", function()
    it("create, list, get, update, delete; read-only through /skills", function()
      local made = org.org.skills:create(skill("house-style"))
      assert.are.equal("organization", made.scope)
      assert.are.equal(onecli.null, made.workspaceId)
      assert.is_string(made.organizationId)
      assert.are.equal(0, #made.files)
      assert.are.equal(1, #org.org.skills:list().skills)
      assert.are.equal("house-style", org.org.skills:get(made.id).name)

      local upd = org.org.skills:update(made.id, { content = "Imperative mood." })
      assert.are.equal("Imperative mood.", upd.content)

      -- the workspace sees it, but cannot change it
      local list = client.skills:list().skills
      assert.are.equal("organization", list[1].scope)
      assert.are.equal("Imperative mood.", client.skills:get(made.id).content)
      local err = raised(client.skills.update, client.skills, made.id, { enabled = false })
      check_error(err, 403, "authentication_error", "Organization skills are managed in organization settings")
      err = raised(client.skills.delete, client.skills, made.id)
      check_error(err, 403, "authentication_error", "Organization skills are managed in organization settings")

      assert.is_true(org.org.skills:delete(made.id))
      err = raised(org.org.skills.get, org.org.skills, made.id)
      check_error(err, 404, "not_found_error", "Skill not found")
      assert.are.equal(0, #client.skills:list().skills)
    end)

    it("workspace skills are not organization skills", function()
      local ws = client.skills:create(skill("only-here"))
      local err = raised(org.org.skills.get, org.org.skills, ws.id)
      check_error(err, 404, "not_found_error", "Skill not found")
      assert.are.equal(0, #org.org.skills:list().skills)
    end)

    it("refuses agentId, oversized bodies and a 21st skill", function()
      local err = raised(org.org.skills.create, org.org.skills, skill("x-y", { agentId = "a" }))
      check_error(err, 422, "validation_error", 'Unrecognized key: "agentId"')
      for i = 1, 20 do client.org.skills:create(skill("o" .. i)) end   -- a user key works too
      err = raised(org.org.skills.create, org.org.skills, skill("o21"))
      check_error(err, 422, "validation_error", "This organization already holds 20 skills. Delete one first")
    end)
  end)

  describe("invitations", function()
    it("create, list, reissue, cancel", function()
      local made = org.org.invitations:create({ email = "Invitee@Example.com", role = "member" })
      assert.is_false(made.emailed)
      local token = made.joinUrl:match("^" .. srv.origin:gsub("%p", "%%%0") .. "/join%?token=(%x+)$")
      assert.are.equal(64, #token)
      local list = org.org.invitations:list()
      assert.are.equal(1, #list)
      assert.are.equal("invitee@example.com", list[1].email)
      assert.are.equal("member", list[1].role)
      assert.are.equal("pending", list[1].status)
      assert.are.equal("acceptance@example.com", list[1].invitedByEmail)

      local again = client.org.invitations:create({ email = "invitee@example.com", role = "admin" })
      assert.are.equal(made.id, again.id)
      assert.are_not.equal(made.joinUrl, again.joinUrl)
      list = org.org.invitations:list()
      assert.are.equal(1, #list)
      assert.are.equal("admin", list[1].role)

      assert.is_true(org.org.invitations:delete(made.id))
      assert.are.equal(0, #org.org.invitations:list())
      local err = raised(org.org.invitations.delete, org.org.invitations, made.id)
      check_error(err, 404, "not_found_error", "Invitation not found")
    end)

    it("validation is a flat 400; inviting a member is the server's 500", function()
      local err = raised(org.org.invitations.create, org.org.invitations, { email = "not-an-email", role = "member" })
      check_error(err, 400, "invalid_request_error", "Invalid email address")
      err = raised(org.org.invitations.create, org.org.invitations, { email = "x@example.com", role = "owner" })
      check_error(err, 400, "invalid_request_error", 'Invalid option: expected one of "admin"|"member"')
      err = raised(org.org.invitations.create, org.org.invitations,
        { email = "x@example.com", role = "member", note = "hi" })
      check_error(err, 400, "invalid_request_error", 'Unrecognized key: "note"')
      err = raised(org.org.invitations.create, org.org.invitations,
        { email = "acceptance@example.com", role = "member" })
      check_error(err, 500, "api_error", "An unexpected error occurred.", true)
    end)

    -- POST /invitations/accept is not wrapped (browser session only)
    it("the stand-in lets the invitee accept with a session", function()
      local made = org.org.invitations:create({ email = "invitee@example.com", role = "member" })
      local token = made.joinUrl:match("token=(%x+)$")
      local function accept(cookie, body)
        local headers = { { "Content-Type", "application/json" } }
        if cookie then headers[#headers + 1] = { "Cookie", "better-auth.session_token=" .. cookie } end
        local res = assert(sclient.request(srv.port, { method = "POST", path = "/v1/invitations/accept",
          headers = headers, body = body or json.encode({ token = token }) }))
        return res.status, json.decode(res.body)
      end
      local status, body = accept(nil)
      assert.are.equal(401, status)
      assert.are.equal("Not authenticated", body.error)
      status, body = accept("owner-session")
      assert.are.equal(400, status)
      assert.matches("different email address", body.error)
      status = accept("owner-session", "{not json")
      assert.are.equal(500, status)
      status, body = accept("invitee@example.com")
      assert.are.equal(200, status)
      assert.is_string(body.organizationId)
      status, body = accept("invitee@example.com")
      assert.are.equal(400, status)
      assert.are.equal("This invitation has already been used or cancelled", body.error)
    end)
  end)

  describe("organization channels", function()
    it("connect slack, link and unlink a member, disconnect", function()
      local r = org.org.channels:list()
      assert.are.equal(0, #r.integrations)
      assert.is_false(r.adapter.online)
      assert.are.equal(onecli.null, r.adapter.lastSeenAt)

      local err = raised(org.org.channels.link_user, org.org.channels, "slack", { externalUserId = "U1", userId = "u" })
      check_error(err, 404, "not_found_error", "Connect the workspace before linking users")

      r = org.org.channels:set_credentials("slack", "xoxb-123-456-secret")
      assert.are.equal("slack", r.provider)
      assert.are.equal("T123", r.tenant)
      r = org.org.channels:set_credentials("slack", { credential = "xoxb-123-789-other" })
      assert.are.equal("T123", r.tenant)
      assert.are.equal(1, #org.org.channels:list().integrations)

      local me = client.user:get()
      local link = org.org.channels:link_user("slack", { externalUserId = "U0123", userId = me.id })
      assert.are.equal("U0123", link.externalUserId)
      assert.are.equal(me.email, link.user.email)
      err = raised(org.org.channels.link_user, org.org.channels, "slack", { externalUserId = "U0999", userId = me.id })
      check_error(err, 409, "invalid_request_error", "That member or Slack account is already linked.")
      err = raised(org.org.channels.link_user, org.org.channels, "slack", { externalUserId = "U2", userId = "nobody" })
      check_error(err, 422, "validation_error", "That user is not an active member of this organization")
      assert.are.equal(1, #org.org.channels:list().userLinks)

      assert.is_true(org.org.channels:unlink_user("slack", link.id))
      err = raised(org.org.channels.unlink_user, org.org.channels, "slack", link.id)
      check_error(err, 404, "not_found_error", "Link not found")

      assert.is_true(client.org.channels:delete("slack"))
      err = raised(org.org.channels.delete, org.org.channels, "slack")
      check_error(err, 404, "not_found_error", "Integration not found")
    end)

    it("refuses other providers, missing and rejected tokens", function()
      local err = raised(org.org.channels.set_credentials, org.org.channels, "teams", "x")
      check_error(err, 404, "not_found_error", "Unknown channel provider")
      err = raised(org.org.channels.set_credentials, org.org.channels, "slack", {})
      check_error(err, 422, "validation_error", "Invalid input: expected string, received undefined")
      err = raised(org.org.channels.set_credentials, org.org.channels, "slack", "xoxp-user-token")
      check_error(err, 422, "validation_error", "Slack rejected the request (invalid_auth).")
      assert.are.equal(0, #org.org.channels:list().integrations)
    end)
  end)

  describe("policy reflections", function()
    it("effective app permissions follow connections, grants and published rules", function()
      local agent = byo_agent("refl-1")
      local r = client.policy:effective_app_permissions({ provider = "granola" })
      assert.are.equal("workspace", r.basis.scope)
      assert.is_false(r.basis.credentialAttached)
      assert.are.equal("unmanaged", r.groups[1].verdict)

      local conn = granola(client, "mine")
      r = client.policy:effective_app_permissions({ provider = "granola" })
      assert.is_true(r.basis.credentialAttached)
      assert.are.equal("block", r.groups[1].verdict)       -- nothing published yet: deny
      publish_default("allow")
      r = client.policy:effective_app_permissions({ provider = "granola" })
      assert.are.equal("allow", r.groups[1].verdict)
      assert.are.equal(3, #r.groups[1].tools)

      org.org.policy:create_rule({ name = "No notes", action = "block",
        targets = { { kind = "app", provider = "granola", tools = { "get_note" } } } })
      org.org.policy:publish()
      r = client.policy:effective_app_permissions({ provider = "granola" })
      local tools = tools_by_id(r)
      assert.are.equal("mixed", r.groups[1].verdict)
      assert.are.equal("block", tools.get_note.verdict)
      assert.are.equal("No notes", tools.get_note.decidedBy.name)     -- the owner sees details
      assert.are.equal(onecli.null, tools.list_notes.decidedBy)
      srv:instance({ licensed = false })
      tools = tools_by_id(client.policy:effective_app_permissions({ provider = "granola" }))
      assert.is_true(tools.get_note.decidedBy.redacted)

      r = client.policy:effective_app_permissions({ provider = "granola", agentId = agent, connectionId = conn })
      assert.are.equal(agent, r.basis.agentId)
      assert.is_false(r.basis.credentialAttached)
      assert.are.equal("unmanaged", r.groups[1].verdict)
      client.agents:grant_connection(agent, conn, "full")
      r = client.policy:effective_app_permissions({ provider = "granola", agentId = agent })
      assert.is_true(r.basis.credentialAttached)
      assert.are.equal("mixed", r.groups[1].verdict)
    end)

    it("effective app permissions errors", function()
      local err = raised(client.policy.effective_app_permissions, client.policy, {})
      check_error(err, 422, "validation_error", "Invalid input: expected string, received undefined")
      err = raised(client.policy.effective_app_permissions, client.policy, { provider = "nosuch" })
      check_error(err, 404, "not_found_error", "No permission catalog for provider: nosuch")
      err = raised(client.policy.effective_app_permissions, client.policy,
        { provider = "granola", agentId = "00000000-0000-0000-0000-000000000000" })
      check_error(err, 404, "not_found_error", "Agent not found.")
      err = raised(client.policy.effective_app_permissions, client.policy,
        { provider = "granola", connectionId = "00000000-0000-0000-0000-000000000000" })
      check_error(err, 404, "not_found_error", "Connection not found.")
      local c = new_client({ api_key = srv.org_key })
      err = raised(c.request, c, "GET", "/policy/effective-app-permissions", { query = { provider = "granola" } })
      check_error(err, 401, "authentication_error", WORKSPACE_MSG)
      c:close()
    end)

    it("organization effective app permissions", function()
      local r = org.org.policy:effective_app_permissions({ provider = "granola" })
      assert.are.equal("organization", r.basis.scope)
      assert.are.equal(onecli.null, r.basis.agentId)
      assert.is_false(r.basis.credentialAttached)
      assert.are.equal("unmanaged", r.groups[1].verdict)
      org.org.apps:connect("granola", { fields = { apiKey = "grn_org" }, label = "org" })
      publish_default("allow")
      r = org.org.policy:effective_app_permissions({ provider = "granola" })
      assert.is_true(r.basis.credentialAttached)
      assert.are.equal("allow", r.groups[1].verdict)
      local err = raised(org.org.policy.effective_app_permissions, org.org.policy, {})
      check_error(err, 422, "validation_error", "Invalid input: expected string, received undefined")
    end)

    it("effective credentials of an agent", function()
      local agent = byo_agent("refl-2")
      local r = client.agents:effective_credentials(agent)
      assert.are.equal(agent, r.agentId)
      assert.are.equal("selective", r.mode)
      assert.are.equal(0, #r.secrets)
      assert.are.equal(0, #r.connections)

      local secret = client.secrets:create({ name = "S", type = "generic", value = "tok_refl_123456",
        hostPattern = "api.refl.example", injectionConfig = { headerName = "X-Token" } }).id
      client.agents:grant_secret(agent, secret)
      local conn = granola(client, "cred")
      client.agents:grant_connection(agent, conn, "full")
      publish_default("allow")
      r = client.agents:effective_credentials(agent)
      assert.are.equal("secret", r.secrets[1].kind)
      assert.are.equal("api.refl.example", r.secrets[1].host)
      assert.are.equal("usable", r.secrets[1].status)
      assert.are.equal("connection", r.connections[1].kind)
      assert.are.equal("granola", r.connections[1].provider)
      assert.are.equal("usable", r.connections[1].status)
      assert.are.equal("grant", r.connections[1].provenance[1].kind)

      org.org.policy:create_rule({ name = "No granola", action = "block",
        targets = { { kind = "app", provider = "granola" } } })
      org.org.policy:publish()
      assert.are.equal("blocked", client.agents:effective_credentials(agent).connections[1].status)

      local err = raised(client.agents.effective_credentials, client.agents, "00000000-0000-0000-0000-000000000000")
      check_error(err, 404, "not_found_error", "Agent not found.")
    end)

    it("effective agents of a connection", function()
      local agent = byo_agent("refl-3")
      local conn = granola(client, "agents")
      publish_default("allow")
      local r = client.connections:effective_agents(conn)
      assert.are.equal(conn, r.connectionId)
      assert.are.equal("granola", r.provider)
      assert.is_true(r.catalog)
      assert.are.equal(agent, r.agents[1].agentId)
      assert.are.equal("none", r.agents[1].access)
      assert.are.equal("none", r.agents[1].credential.status)
      assert.are.equal(3, r.agents[1].decisions.totalTools)
      assert.are.equal(3, r.agents[1].decisions.allowedTools)
      client.agents:grant_connection(agent, conn, "full")
      r = client.connections:effective_agents(conn)
      assert.are.equal("usable", r.agents[1].access)
      assert.are.equal("full", r.agents[1].credential.status)

      -- no permission catalog: no decisions
      client.apps:connect("resend", { fields = { apiKey = "re_refl_1" }, label = "R" })
      local resend = client.connections:list({ provider = "resend" })[1].id
      r = client.connections:effective_agents(resend)
      assert.is_false(r.catalog)
      assert.are.equal(onecli.null, r.agents[1].decisions)

      local err = raised(client.connections.effective_agents, client.connections,
        "00000000-0000-0000-0000-000000000000")
      check_error(err, 404, "not_found_error", "Connection not found")
    end)
  end)

  describe("organization policy and connections", function()
    it("org.connections:by_provider lists the organization's connections of a provider", function()
      assert.are.equal(0, #org.org.connections:by_provider("granola"))
      org.org.apps:connect("granola", { fields = { apiKey = "grn_org_1" }, label = "org-capture" })
      granola(client, "workspace-only")
      local list = org.org.connections:by_provider("granola")
      assert.are.equal(1, #list)
      assert.are.equal("org-capture", list[1].label)
      assert.are.equal("organization", list[1].scope)
      assert.are.equal(1, #client.org.connections:by_provider("granola"))   -- a user key too
      assert.are.equal(0, #org.org.connections:by_provider("github"))
      assert.are.equal(0, #org.org.connections:by_provider("nosuch"))
    end)

    it("org.policy:get_default takes a status", function()
      publish_default("allow")
      org.org.policy:set_default("block")
      local published = org.org.policy:get_default({ status = "published" })
      assert.are.equal("published", published.status)
      assert.are.equal("allow", published.action)
      assert.are.equal(1, published.generation)
      local draft = org.org.policy:get_default({ status = "draft" })
      assert.are.equal("block", draft.action)
      assert.are.equal("block", org.org.policy:get_default().action)
      local err = raised(org.org.policy.get_default, org.org.policy, { status = "live" })
      check_error(err, 422, "validation_error", 'Invalid option: expected one of "draft"|"published"')
    end)
  end)
end)
