-- The stand-in's machine-only, browser-only and legacy v2 routes beyond
-- what the captures show (onecli.standin.machine, reference §14.3, §14.6,
-- §14.10-14.13): the whole CLI login handshake, repeated imports, the
-- install scripts' parameters, cloud-only mounts, tombstones and the
-- legacy organization aliases. Uses only luasocket (lua/onecli/standin/client.lua).
--
--   busted --lua=lua5.4 spec/standin_machine_spec.lua
local json = require("onecli.standin.json")
local client = require("onecli.standin.client")
local launcher = require("onecli.standin.launcher")

local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"

local function auth(key) return { { "Authorization", "Bearer " .. key } } end

local SESSION = { { "Cookie", "better-auth.session_token=signed-in" } }

-- One request on a fresh connection; returns status, decoded body, response.
local function call(srv, method, path, body, headers)
  headers = headers or auth(srv.api_key)
  local h = {}
  for i, x in ipairs(headers) do h[i] = x end
  if body ~= nil then h[#h + 1] = { "Content-Type", "application/json" } end
  local res = assert(client.request(srv.port, {
    method = method, path = path, headers = h, timeout = 5,
    body = type(body) == "string" and body or (body ~= nil and json.encode(body) or nil),
  }))
  return res.status, json.decode(res.body), res
end

local function with(list, extra)
  local out = {}
  for i, x in ipairs(list) do out[i] = x end
  for _, x in ipairs(extra) do out[#out + 1] = x end
  return out
end

describe("stand-in (v2) machine routes", function()
  local srv

  setup(function() srv = launcher.start({ mode = "v2", lua = LUA, max_lifetime = 300 }) end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function org_h(extra) return with(auth(srv.org_key), extra or {}) end

  describe("browser session and CLI login", function()
    it("answers the signed-in owner, and 401 to keys or no cookie", function()
      local status, me = call(srv, "GET", "/v1/auth/session", nil, SESSION)
      assert.are.equal(200, status)
      assert.are.same({ srv.project_id, srv.project_id }, { me.workspaceId, me.projectId })
      assert.are.equal("acceptance@example.com", me.email)
      local body
      status, body = call(srv, "GET", "/v1/auth/session")
      assert.are.same({ 401, { error = "Not authenticated" } }, { status, body })
      status, body = call(srv, "GET", "/v1/auth/session", nil,
        { { "Cookie", "better-auth.session_token=" } })
      assert.are.same({ 401, { error = "Not authenticated" } }, { status, body })
      status, body = call(srv, "GET", "/v1/auth/cli/options", nil, org_h())
      assert.are.same({ 401, { error = "Unauthorized" } }, { status, body })
    end)

    it("lists every workspace of the organization in the login options", function()
      local status, made = call(srv, "POST", "/v1/workspaces", { name = "Second" }, org_h())
      assert.are.equal(201, status)
      local _, opts = call(srv, "GET", "/v1/auth/cli/options", nil, SESSION)
      assert.are.equal(1, #opts.organizations)
      local org = opts.organizations[1]
      assert.are.equal(2, #org.workspaces)
      assert.are.same(org.workspaces, org.projects)
      assert.are.equal(made.id, org.workspaces[2].id)
    end)

    it("runs session -> confirm -> poll ok once -> pending", function()
      local status, s = call(srv, "POST", "/v1/auth/cli/session", nil, {})
      assert.are.equal(200, status)
      assert.truthy(s.code:match("^" .. ("%x"):rep(32) .. "$"))
      assert.are.equal(srv.origin .. "/auth/cli?code=" .. s.code, s.auth_url)
      local poll = "/v1/auth/cli/poll?code=" .. s.code
      local _, body = call(srv, "GET", poll, nil, {})
      assert.are.same({ status = "pending" }, body)
      -- the dashboard confirms with an org key naming the workspace
      status, body = call(srv, "POST", "/v1/auth/cli/confirm", { code = s.code },
        org_h({ { "X-Workspace-Id", srv.project_id }, { "Origin", srv.origin } }))
      assert.are.same({ 200, { status = "ok" } }, { status, body })
      status, body = call(srv, "GET", poll, nil, {})
      assert.are.equal(200, status)
      assert.are.same({ "ok", srv.project_id }, { body.status, body.workspace_id })
      assert.are.equal(srv.api_key, body.api_key, "the owner's existing key, not a new one")
      _, body = call(srv, "GET", poll, nil, {})
      assert.are.same({ status = "pending" }, body)
      status, body = call(srv, "POST", "/v1/auth/cli/confirm", { code = s.code })
      assert.are.same({ 409, { error = "Session already confirmed" } }, { status, body })
      -- the key handed over works
      assert.are.equal(200, (call(srv, "GET", "/v1/agents")))
    end)

    it("refuses confirmations without a workspace, from a foreign origin, or for unknown codes", function()
      local _, s = call(srv, "POST", "/v1/auth/cli/session", nil, {})
      local status, body = call(srv, "POST", "/v1/auth/cli/confirm", { code = s.code }, org_h())
      assert.are.equal(401, status)
      assert.are.equal("X-Workspace-Id (formerly X-Project-Id) header is required", body.error.message)
      local res
      status, body, res = call(srv, "POST", "/v1/auth/cli/confirm", { code = s.code },
        with(auth(srv.api_key), { { "Origin", "http://127.0.0.2" } }))
      assert.are.same({ 403, { error = "Forbidden" } }, { status, body })
      assert.are.equal("http://127.0.0.2", res.headers["access-control-allow-origin"])
      status, body = call(srv, "POST", "/v1/auth/cli/confirm", { code = "nope" })
      assert.are.same({ 404, { error = "Session not found" } }, { status, body })
      status, body = call(srv, "POST", "/v1/auth/cli/confirm", "not json")
      assert.are.same({ 400, { error = "Missing code" } }, { status, body })
      _, body = call(srv, "GET", "/v1/auth/cli/poll?code=" .. s.code, nil, {})
      assert.are.same({ status = "pending" }, body, "refused confirmations leave the session pending")
    end)

    it("forgets login sessions on reset", function()
      local _, s = call(srv, "POST", "/v1/auth/cli/session", nil, {})
      srv:reset()
      local _, body = call(srv, "GET", "/v1/auth/cli/poll?code=" .. s.code, nil, {})
      assert.are.same({ status = "expired" }, body)
    end)
  end)

  describe("migration import", function()
    local PAYLOAD = {
      version = 1,
      secrets = {
        { name = "Imported A", type = "generic", value = "value-aaaa-1234", hostPattern = "api.a.example",
          pathPattern = json.null, injectionConfig = { headerName = "X-A" }, metadata = json.null },
        { name = "Imported B", type = "anthropic", value = "sk-ant-api03-abcdefghijkl",
          hostPattern = "api.anthropic.com" },
      },
      agents = { { name = "Imported", identifier = "imported", secretMode = "selective" } },
      agentSecrets = {
        { agentIdentifier = "imported", secretName = "Imported A" },
        { agentIdentifier = "imported", secretName = "Imported B" },
      },
      rules = { { name = "Old rule", hostPattern = "x.example", action = "block", enabled = true } },
    }

    it("imports secrets and agents, then skips them the second time", function()
      local status, body = call(srv, "POST", "/v1/migrate/import", PAYLOAD)
      assert.are.equal(200, status)
      assert.are.same({ secrets = 2, agents = 1, agentSecrets = 0, rules = 0 }, body.imported)
      assert.are.same({ "agentSecrets", "imported (2 credentials)" }, { body.skipped[1].type, body.skipped[1].name })
      assert.are.same({ "rule", "Old rule" }, { body.skipped[2].type, body.skipped[2].name })
      assert.are.equal(2, #body.skipped)
      local _, secrets = call(srv, "GET", "/v1/secrets")
      assert.are.equal(2, #secrets)
      local _, agents = call(srv, "GET", "/v1/agents")
      assert.are.equal("imported", agents[1].identifier)

      status, body = call(srv, "POST", "/v1/migrate/import", PAYLOAD)
      assert.are.equal(200, status)
      assert.are.same({ secrets = 0, agents = 0, agentSecrets = 0, rules = 0 }, body.imported)
      local names = {}
      for i, s in ipairs(body.skipped) do names[i] = s.type .. ":" .. s.name .. ":" .. s.reason:sub(1, 14) end
      assert.are.same({ "agent:Imported:already exists", "secret:Imported A:already exists",
        "secret:Imported B:already exists", "agentSecrets:imported (2 credentials):Not migrated: ",
        "rule:Old rule:Not migrated: " }, names)
    end)

    it("validates the payload and refuses legacy-only ones", function()
      local status, body = call(srv, "POST", "/v1/migrate/import", { secrets = {} })
      assert.are.same({ 400, { error = "Invalid input: expected 1" } }, { status, body })
      status, body = call(srv, "POST", "/v1/migrate/import", { version = 1, agents = { { name = "x" } } })
      assert.are.same({ 400, { error = "Invalid input: expected string, received undefined" } }, { status, body })
      status, body = call(srv, "POST", "/v1/migrate/import", { version = 1,
        agentSecrets = { { agentIdentifier = "a", secretName = "b" } } })
      assert.are.equal(410, status)
      assert.truthy(body.error:find("only legacy policy rules", 1, true))
      status, body = call(srv, "POST", "/v1/migrate/import", { version = 1 })
      assert.are.same({ 200, 0 }, { status, #body.skipped })
      status, body = call(srv, "POST", "/v1/migrate/import", { version = 1 }, org_h())
      assert.are.equal(401, status)
      assert.are.equal("authentication_error", body.error.type)
    end)
  end)

  describe("install scripts", function()
    local KEY = "oc_" .. ("ab"):rep(32)

    it("embeds the key and URL when given and validates them", function()
      local status, _, res = call(srv, "GET", "/v1/install/cli?key=" .. KEY .. "&url=https://api.example.com"
        .. "&tool=codex&agent=my-agent", nil, {})
      assert.are.equal(200, status)
      assert.are.equal("text/plain; charset=utf-8", res.headers["content-type"])
      local script = res.body
      assert.truthy(script:find('ONECLI_API_KEY="' .. KEY .. '"', 1, true))
      assert.truthy(script:find('ONECLI_URL="https://api.example.com"', 1, true))
      assert.is_nil(script:find("/v1/auth/cli/session", 1, true), "no login with a key")
      assert.truthy(script:find("onecli run --agent my-agent -- codex", 1, true))
      local _, _, plain = call(srv, "GET", "/v1/install/cli", nil, {})
      assert.truthy(plain.body:find(srv.origin .. "/v1/auth/cli/session", 1, true))
      assert.is_nil(plain.body:find("alias", 1, true))
      local _, _, as_agent = call(srv, "GET", "/v1/install/cli?agent=cursor", nil, {})
      assert.truthy(as_agent.body:find("onecli run -- cursor-agent", 1, true))
      for query, msg in pairs({
        ["key=oc_short"] = "Invalid API key format", ["url=notaurl"] = "Invalid URL format",
        ["tool=vim"] = "Invalid tool identifier", ["agent=Bad_Agent"] = "Invalid agent identifier",
      }) do
        local s, body = call(srv, "GET", "/v1/install/cli?" .. query, nil, {})
        assert.are.same({ 400, { error = msg } }, { s, body })
      end
      local s, _, nano = call(srv, "GET", "/v1/migrate/nanoclaw?key=" .. KEY, nil, {})
      assert.are.equal(200, s)
      assert.truthy(nano.body:find('ONECLI_API_KEY="' .. KEY .. '"', 1, true))
      assert.truthy(nano.body:find('DASHBOARD_URL="' .. srv.origin .. '"', 1, true))
    end)

    it("lets the scripts report completion with X-API-Key", function()
      local status, body = call(srv, "POST", "/v1/onboarding/install-complete", { type = "install" },
        { { "X-API-Key", srv.api_key } })
      assert.are.same({ 200, { ok = true } }, { status, body })
      status, body = call(srv, "POST", "/v1/onboarding/install-complete", {}, { { "X-API-Key", KEY } })
      assert.are.same({ 401, { error = "API key not found" } }, { status, body })
      status, body = call(srv, "POST", "/v1/onboarding/install-complete", {}, auth(srv.api_key))
      assert.are.same({ 401, { error = "Missing or invalid API key" } }, { status, body })
    end)
  end)

  describe("machine surfaces and public routes", function()
    it("answers 404 for every path of the cloud-only routers", function()
      for _, case in ipairs({
        { "POST", "/v1/billing/portal", "Billing is not available on this deployment" },
        { "GET", "/v1/billing", "Billing is not available on this deployment" },
        { "POST", "/v1/billing/checkout/preview", "Billing is not available on this deployment" },
        { "POST", "/v1/webhooks/stripe/extra", "Not available on this deployment" },
        { "DELETE", "/v1/reviewer/anything", "Not available on this deployment" },
        { "POST", "/api/webhooks/inbound", "Not available on this deployment" },
      }) do
        local status, body = call(srv, case[1], case[2], nil, {})
        assert.are.equal(404, status, case[2])
        assert.are.same({ message = case[3], type = "invalid_request_error" }, body.error)
      end
    end)

    it("refuses runners, channel adapters and gateway internals", function()
      for _, path in ipairs({ "/v1/runner/heartbeat", "/v1/runner/sandboxes", "/v1/channel-adapter/work" }) do
        local status, body = call(srv, "POST", path, {}, { { "Authorization", "Bearer rnr_x" } })
        assert.are.same({ 401, { error = "Unauthorized" } }, { status, body }, path)
      end
      local status, body = call(srv, "POST", "/v1/runner/register", { name = "r", capabilities = {} }, {})
      assert.are.same({ 400, { error = "Invalid input: expected int, received undefined" } }, { status, body })
      status, body = call(srv, "POST", "/v1/internal/onepassword/resolve", {},
        { { "X-Gateway-Secret", "guess" } })
      assert.are.same({ 401, "unauthorized" }, { status, body.error.message })
      status, body = call(srv, "POST", "/v1/channels/slack/interactivity", "payload=%7B%7D", {})
      assert.are.same({ 401, { error = "Unauthorized" } }, { status, body })
    end)

    it("never fetches a favicon and has no valid unsubscribe token", function()
      local status, _, res = call(srv, "GET", "/v1/favicon?domain=example.com", nil, {})
      assert.are.same({ 502, "" }, { status, res.body })
      status, _, res = call(srv, "GET", "/v1/favicon?domain=localhost", nil, {})
      assert.are.same({ 400, "" }, { status, res.body })
      _, _, res = call(srv, "GET", "/v1/webhooks/unsubscribe?token=abc", nil, {})
      assert.truthy(res.body:find("Invalid link", 1, true))
      _, _, res = call(srv, "POST", "/v1/webhooks/unsubscribe?token=abc", nil, { { "Accept", "text/html" } })
      assert.are.equal("text/html", res.headers["content-type"])
    end)

    it("answers the agent-group tombstones with the request path", function()
      for _, case in ipairs({ { "GET", "/v1/org/agent-groups/abc/members" }, { "DELETE", "/v1/org/agents/x" },
        { "POST", "/api/org/agent-groups" } }) do
        local status, body = call(srv, case[1], case[2], nil, {})
        assert.are.equal(410, status)
        local path = case[2]:gsub("^/api/", "/v1/")
        assert.are.equal(path .. " was removed. Agent groups were removed: organize people with user groups "
          .. "(/v1/org/groups); organization policy rules target users or user groups.", body.error.message)
      end
    end)

    it("is absent on v1 servers", function()
      local v1 = launcher.start({ mode = "v1", lua = LUA, max_lifetime = 60 })
      local ok, err = pcall(function()
        for _, path in ipairs({ "/v1/auth/cli/poll?code=x", "/v1/install/cli", "/v1/org/agents" }) do
          assert.are.equal(404, (call(v1, "GET", path, nil, {})), path)
        end
      end)
      v1:stop()
      assert(ok, err)
    end)
  end)

  describe("legacy organization aliases and changed app routes", function()
    local function org_granola()
      assert.are.equal(200, (call(srv, "POST", "/v1/org/apps/granola/connect", { fields = { apiKey = "grn_1" },
        label = "Org" }, org_h())))
      local _, list = call(srv, "GET", "/v1/org/apps/connections", nil, org_h())
      return list[1]
    end

    it("serves /org/apps/connections* like /org/connections, also to a user key", function()
      local conn = org_granola()
      assert.are.same({ "granola", "organization", "Org" }, { conn.provider, conn.scope, conn.label })
      local _, by = call(srv, "GET", "/v1/org/apps/connections/granola")
      assert.are.same({ conn.id }, { by[1].id })
      local _, none = call(srv, "GET", "/v1/org/apps/connections/github", nil, org_h())
      assert.are.same({}, none)
      local status, body = call(srv, "PATCH", "/v1/org/apps/connections/" .. conn.id, { label = " New " }, org_h())
      assert.are.same({ 200, "New" }, { status, body.label })
      assert.are.equal(204, (call(srv, "DELETE", "/v1/org/apps/connections/" .. conn.id, nil, org_h())))
      status, body = call(srv, "PATCH", "/v1/org/apps/connections/" .. conn.id, { label = "x" }, org_h())
      assert.are.same({ 404, { message = "Connection not found", type = "not_found_error" } },
        { status, body.error })
    end)

    it("forwards /org/app-config/* with the forward's error quirks", function()
      local status, _, res = call(srv, "PATCH", "/v1/org/app-config/github/toggle", { enabled = true }, org_h())
      assert.are.same({ 500, "Internal Server Error", "text/plain; charset=UTF-8" },
        { status, res.body, res.headers["content-type"] })
      assert.are.equal(201, (call(srv, "POST", "/v1/org/app-config/github", { clientId = "c", clientSecret = "s" },
        org_h())))
      local body
      _, body = call(srv, "GET", "/v1/org/app-config/configured", nil, org_h())
      assert.are.same({ "github" }, body)
      _, body = call(srv, "GET", "/v1/org/app-config/github", nil, org_h())
      assert.are.same({ true, true, { orgConnections = 0, workspaceConnections = 0 } },
        { body.hasCredentials, body.enabled, body.dependents })
      assert.are.equal(200, (call(srv, "PATCH", "/v1/org/app-config/github/toggle", { enabled = false }, org_h())))
      status, _, res = call(srv, "POST", "/v1/org/app-config/configured", {}, org_h())
      assert.are.same({ 404, "404 Not Found" }, { status, res.body })
      assert.are.equal(204, (call(srv, "DELETE", "/v1/org/app-config/github", nil, org_h())))
    end)

    it("counts an organization config's dependents", function()
      org_granola()
      assert.are.equal(200, (call(srv, "POST", "/v1/apps/granola/connect", { fields = { apiKey = "grn_2" } })))
      local _, body = call(srv, "GET", "/v1/org/apps/granola/config", nil, org_h())
      assert.are.same({ orgConnections = 1, workspaceConnections = 1 }, body.dependents)
      local _, ws = call(srv, "GET", "/v1/apps/granola/config")
      assert.is_nil(ws.dependents, "the workspace route has no dependents")
    end)

    it("names the workspace connection made and keeps the org answer", function()
      local status, body = call(srv, "POST", "/v1/apps/granola/connect", { fields = { apiKey = "grn_3" },
        label = "Mine" })
      assert.are.equal(200, status)
      local _, list = call(srv, "GET", "/v1/connections?provider=granola")
      assert.are.same({ success = true, connection = { id = list[1].id, label = "Mine" } }, body)
      assert.are.same({ name = "API Key" }, list[1].metadata)
      _, body = call(srv, "POST", "/v1/apps/granola/connect", { fields = { apiKey = "grn_4" }, label = "mine" })
      assert.are.equal(list[1].id, body.connection.id, "same label: the connection is overwritten")
      _, body = call(srv, "POST", "/v1/org/apps/granola/connect", { fields = { apiKey = "grn_5" } }, org_h())
      assert.are.same({ success = true }, body)
    end)

    it("takes only predefined hosts on the blocklist", function()
      local _, hosts = call(srv, "GET", "/v1/apps/github/blocklist")
      local status, row = call(srv, "POST", "/v1/apps/github/blocklist", { hostId = hosts[1].hostId })
      assert.are.same({ 201, hosts[1].hostId }, { status, row.hostId })
      local body
      status, body = call(srv, "POST", "/v1/org/apps/github/blocklist", { name = "X", hostPattern = "x.example.com" },
        org_h())
      assert.are.same({ 400, { error = "Provide { hostId }" } }, { status, body })
    end)
  end)
end)
