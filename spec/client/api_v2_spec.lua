-- Every generated method against the stand-in in v2 mode (v2.0.1: keys
-- required, x-request-id on every response, retired routes answer 410).
-- Each test starts from a reset server and a new client and makes what it
-- needs: any one runs alone, in any order.
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local srv, client
local exercised = {}

local function track(c) return api.track(c, exercised) end
local raised = api.raised

local function new_client(opts)
  opts.max_retries = opts.max_retries or 0
  return api.client(srv, opts)
end

-- A 410 names the route that replaced the retired one.
local function assert_gone(err)
  assert.are.equal(410, err.status)
  assert.are.equal("invalid_request_error", err.type)
  assert.is_false(err.retryable)
  assert.matches("removed", err.message)
  assert.is_string(err.request_id)
end

describe("API against a v2 server", function()
  local function new_agent()
    return client.agents:create({ name = "V2 Agent", identifier = "v2-agent" }).id
  end

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()      -- also brings back the key a test regenerated
    client = track(new_client({ api_key = srv.api_key }))
  end)

  after_each(function()
    client:close()
  end)

  it("health needs no key", function()
    local c = track(new_client({}))
    assert.are.equal("2.0.1", c:health().version)
    c:close()
  end)

  it("a call without a key is a 401 with a request id", function()
    local c = new_client({})
    local err = raised(c.agents.list, c.agents)
    assert.are.equal(401, err.status)
    assert.are.equal("authentication_error", err.type)
    assert.are.equal("Invalid API key or token.", err.message)
    assert.is_false(err.retryable)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", err.request_id)
    assert.matches("request " .. err.request_id:gsub("%-", "%%-"), tostring(err))
    c:close()
  end)

  it("agents:create, list, get, update, rename, regenerate_token", function()
    local a = client.agents:create({ name = "V2 Agent", identifier = "v2-agent" })
    local agent_id = a.id
    assert.are.equal("byo", a.kind)
    local list = client.agents:list()
    assert.are.equal(1, #list)
    assert.is_nil(list[1].isDefault)
    assert.are.equal("V2 Agent", client.agents:get(agent_id).name)
    local err = raised(client.agents.get, client.agents, "00000000-0000-0000-0000-000000000000")
    assert.are.equal("not_found_error", err.type)
    client.agents:update(agent_id, { name = "Updated" })
    client.agents:rename(agent_id, "Renamed")
    assert.are.equal("Renamed", client.agents:get(agent_id).name)
    err = raised(client.agents.update, client.agents, agent_id, {})
    assert.are.equal("At least one field to update is required", err.message)
    assert.matches("^aoc_", client.agents:regenerate_token(agent_id).accessToken)
  end)

  it("retired agent routes answer 410 naming their replacement", function()
    local agent_id = new_agent()
    assert_gone(raised(client.agents.get_default, client.agents))
    assert_gone(raised(client.agents.set_default, client.agents, agent_id))
    assert_gone(raised(client.agents.set_secret_mode, client.agents, agent_id, "all"))
    assert_gone(raised(client.agents.get_secrets, client.agents, agent_id))
    assert_gone(raised(client.agents.set_secrets, client.agents, agent_id, {}))
  end)

  it("every /rules route answers 410", function()
    local err = raised(client.rules.list, client.rules)
    assert_gone(err)
    assert.matches("grants", err.message)
    assert_gone(raised(client.rules.create, client.rules, { name = "x", hostPattern = "h",
      action = "block", enabled = true }))
    assert_gone(raised(client.rules.get, client.rules, "r1"))
    assert_gone(raised(client.rules.update, client.rules, "r1", { enabled = false }))
    assert_gone(raised(client.rules.delete, client.rules, "r1"))
    assert_gone(raised(client.rules.get_permissions, client.rules, "github"))
    assert_gone(raised(client.rules.set_permissions, client.rules, "github",
      { changes = { { toolId = "create_issue", permission = "allow" } } }))
  end)

  it("secrets:create, list, update, delete", function()
    local s = client.secrets:create({ name = "Generic", type = "generic", value = "tok_123456789",
      hostPattern = "api.example.com", injectionConfig = { headerName = "Authorization",
      valueFormat = "Bearer {value}" } })
    local secret_id = s.id
    local ids = {}
    for _, x in ipairs(client.secrets:list()) do ids[x.id] = x end
    assert.are.equal("workspace", ids[secret_id].scope)
    assert.is_true(client.secrets:update(secret_id, { name = "Renamed" }).success)
    local err = raised(client.secrets.create, client.secrets, { name = "g", type = "generic",
      value = "v", hostPattern = "api.example.com" })
    assert.are.equal("Header name, parameter name, or URL path template is required for generic secrets",
      err.message)
    assert.is_true(client.secrets:delete(secret_id))
  end)

  it("apps, config and connections", function()
    assert.is_true(#client.apps:list() > 10)
    assert.are.equal("GitHub", client.apps:get("github").name)
    client.apps:connect("resend", { fields = { apiKey = "re_abcdefghijk" }, label = "Mail" })
    local conns = client.connections:list()
    assert.are.equal(1, #conns)
    local connection_id = conns[1].id
    assert.are.equal("Ops", client.connections:rename(connection_id, "Ops").label)
    assert.is_true(client.connections:delete(connection_id))
    client.apps:set_config("github", { clientId = "id", clientSecret = "secret" })
    assert.is_true(client.apps:get_config("github").hasCredentials)
    assert.matches("^https://github%.com/", client.apps:authorize_url("github"))
    client.apps:toggle_config("github", true)
    assert.is_true(client.apps:delete_config("github"))
  end)

  it("user:get and user:update", function()
    assert.is_string(client.user:get().email)
    assert.are.equal("V2 User", client.user:update({ name = "V2 User" }).name)
  end)

  it("an org key needs a project: sent as X-Project-Id and X-Workspace-Id", function()
    new_agent()
    local c = new_client({ api_key = srv.org_key })
    -- a method of workspace scope says so at the call, before sending
    local before = #srv:requests()
    local ok, msg = pcall(c.agents.list, c.agents)
    assert.is_false(ok)
    assert.matches("^onecli: agents.list: an organization key %(oc_org_%.%.%.%) needs a workspace", msg)
    assert.matches("project_id", msg, 1, true)
    assert.matches("ONECLI_WORKSPACE_ID", msg, 1, true)
    assert.are.equal(before, #srv:requests(), "nothing is sent")
    -- a raw call goes out; the server's 401 then gets a hint naming the option
    local err = raised(c.request, c, "GET", "/agents")
    assert.are.equal(401, err.status)
    assert.are.equal("X-Workspace-Id (formerly X-Project-Id) header is required", err.message)
    assert.matches("project_id", err.hint, 1, true)
    assert.matches("ONECLI_PROJECT_ID", tostring(err), 1, true)
    assert.is_string(c.user:get().email)   -- /user needs no workspace on v2
    local list = c.agents:list({ project_id = srv.project_id })
    assert.are.equal(1, #list)
    c:close()
    c = new_client({ api_key = srv.org_key, project_id = srv.project_id })
    assert.are.equal(1, #c.agents:list())
    local log = srv:requests()
    local last = log[#log]
    assert.are.equal(srv.project_id, last.headers["x-project-id"])
    assert.are.equal(srv.project_id, last.headers["x-workspace-id"])
    c:close()
  end)

  it("agents:delete", function()
    local agent_id = new_agent()
    assert.is_true(client.agents:delete(agent_id))
    assert.are.equal("Agent not found", raised(client.agents.delete, client.agents, agent_id).message)
  end)

  it("user:regenerate_api_key switches the client to the new key", function()
    local old = srv.api_key
    assert.are.equal(old, client.user:get_api_key().apiKey)
    local new = client.user:regenerate_api_key().apiKey
    assert.are_not.equal(old, new)
    -- the old key is dead on the server, yet this client keeps working
    assert.is_table(client.agents:list())
    local log = srv:requests()
    assert.is_true(log[#log].headers.authorization == "Bearer " .. new, "the new key was not sent")
    local stale = new_client({ api_key = old })
    assert.are.equal(401, raised(stale.agents.list, stale.agents).status)
    stale:close()
  end)

  it("regenerating with an org key does not replace the org key", function()
    local c = new_client({ api_key = srv.org_key, project_id = srv.project_id })
    c.user:regenerate_api_key()
    assert.is_table(c.agents:list())
    local log = srv:requests()
    assert.is_true(log[#log].headers.authorization == "Bearer " .. srv.org_key, "the org key was not sent")
    c:close()
  end)
end)
