-- Every generated method against the stand-in in v1 mode (v1.41.0, local
-- mode: no key needed, a default agent exists). Each test starts from a
-- reset server and a new client, and makes what it needs (new_agent,
-- new_secret, default_agent): any one runs alone, in any order.
local onecli = require("onecli")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local srv, client
local exercised = {}

local function track(c) return api.track(c, exercised) end
local raised = api.raised

describe("API against a v1 server", function()
  local rule_id, connection_id

  local function new_agent()
    return client.agents:create({ name = "Spec Agent", identifier = "spec-agent" }).id
  end
  local function new_secret()
    return client.secrets:create({ name = "Example key", type = "generic", value = "tok_123456789",
      hostPattern = "api.example.com", injectionConfig = { headerName = "Authorization" } }).id
  end
  local function default_agent()
    return client.agents:list()[1].id    -- v1 lists the default agent first
  end

  setup(function()
    srv = launcher.start({ mode = "v1" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    client = track(onecli.new({ url = srv.url, max_retries = 0, getenv = function() end }))
  end)

  after_each(function()
    client:close()
  end)

  it("health", function()
    local h = client:health()
    assert.are.equal("ok", h.status)
    assert.are.equal("1.41.0", h.version)
  end)

  it("agents:list returns the default agent first", function()
    local agents = client.agents:list()
    assert.is_true(#agents >= 1)
    assert.is_true(agents[1].isDefault)
    assert.are.equal("default", agents[1].identifier)
    assert.are.equal("integer", math.type and math.type(agents[1]._count.agentSecrets) or "integer")
  end)

  it("agents:create creates, and a duplicate identifier is a 409", function()
    local a = client.agents:create({ name = "Spec Agent", identifier = "spec-agent" })
    assert.are.equal("Spec Agent", a.name)
    assert.are.equal("spec-agent", a.identifier)
    assert.is_string(a.createdAt)
    assert.is_nil(a.accessToken)
    local err = raised(client.agents.create, client.agents, { name = "Dup", identifier = "spec-agent" })
    assert.are.equal(409, err.status)
    assert.are.equal("invalid_request_error", err.type)
    assert.are.equal("An agent with this identifier already exists", err.message)
    assert.is_false(err.retryable)
    assert.are.equal(1, err.attempts)
  end)

  it("agents:create validates like the server", function()
    local err = raised(client.agents.create, client.agents, { name = "x", identifier = "Bad_Id" })
    assert.are.equal(400, err.status)
    assert.matches("^Identifier must be 1%-50 characters", err.message)
    err = raised(client.agents.create, client.agents, { identifier = "no-name" })
    assert.are.equal("Invalid input: expected string, received undefined", err.message)
  end)

  it("agents:get is not served by v1 (unknown route)", function()
    local agent_id = new_agent()
    local err = raised(client.agents.get, client.agents, agent_id)
    assert.are.equal(404, err.status)
    assert.are.equal("invalid_request_error", err.type)
    assert.matches("^Unrecognized request URL %(GET: /v1/agents/", err.message)
  end)

  it("agents:rename and agents:update", function()
    local agent_id = new_agent()
    assert.is_true(client.agents:rename(agent_id, "Renamed").success)
    assert.is_true(client.agents:update(agent_id, { name = "Updated" }).success)
    local names = {}
    for _, a in ipairs(client.agents:list()) do names[a.id] = a.name end
    assert.are.equal("Updated", names[agent_id])
    local err = raised(client.agents.rename, client.agents, agent_id, "")
    assert.are.equal("Too small: expected string to have >=1 characters", err.message)
    err = raised(client.agents.rename, client.agents, "00000000-0000-0000-0000-000000000000", "x")
    assert.are.equal("not_found_error", err.type)
  end)

  it("agents:get_default and agents:set_default", function()
    local default_id, agent_id = default_agent(), new_agent()
    assert.are.equal(default_id, client.agents:get_default().id)
    assert.is_true(client.agents:set_default(agent_id).success)
    assert.are.equal(agent_id, client.agents:get_default().id)
    local err = raised(client.agents.set_default, client.agents, agent_id)
    assert.are.equal("Agent is already the default", err.message)
    client.agents:set_default(default_id)
  end)

  it("agents:regenerate_token", function()
    local agent_id = new_agent()
    local r = client.agents:regenerate_token(agent_id)
    assert.matches("^aoc_", r.accessToken)
  end)

  it("agents:set_secret_mode", function()
    local agent_id = new_agent()
    assert.is_true(client.agents:set_secret_mode(agent_id, "selective").success)
    local err = raised(client.agents.set_secret_mode, client.agents, agent_id, "bogus")
    assert.are.equal(400, err.status)
    assert.are.equal('Invalid option: expected one of "all"|"selective"', err.message)
  end)

  it("secrets:create, list, update", function()
    local s = client.secrets:create({ name = "Spec key", type = "anthropic",
      value = "sk-ant-api03-abcdefghijklmnop", hostPattern = "api.anthropic.com" })
    assert.is_string(s.id)
    assert.is_string(s.preview)
    local secret_id = s.id
    local found
    for _, x in ipairs(client.secrets:list()) do
      if x.id == secret_id then found = x end
    end
    assert.are.equal("Spec key", found.name)
    assert.is_true(client.secrets:update(secret_id, { name = "Renamed key" }).success)
    assert.is_true(client.secrets:update(secret_id, { pathPattern = onecli.null }).success)
    local err = raised(client.secrets.update, client.secrets, secret_id, {})
    assert.are.equal("At least one field must be provided", err.message)
    err = raised(client.secrets.create, client.secrets, { name = "x", type = "generic",
      value = "v", hostPattern = "https://example.com" })
    assert.are.equal("Enter a hostname, not a URL (remove http:// or https://)", err.message)
  end)

  it("agents:get_secrets and agents:set_secrets, including an empty list", function()
    local agent_id, secret_id = new_agent(), new_secret()
    assert.are.same({}, client.agents:get_secrets(agent_id))
    assert.is_true(client.agents:set_secrets(agent_id, { secret_id }).success)
    assert.are.same({ secret_id }, client.agents:get_secrets(agent_id))
    assert.is_true(client.agents:set_secrets(agent_id, {}).success)
    assert.are.same({}, client.agents:get_secrets(agent_id))
    local err = raised(client.agents.set_secrets, client.agents, agent_id, { "nope" })
    assert.are.equal("One or more secrets not found", err.message)
  end)

  it("secrets:delete", function()
    local secret_id = new_secret()
    assert.is_true(client.secrets:delete(secret_id))
    local err = raised(client.secrets.delete, client.secrets, secret_id)
    assert.are.equal(404, err.status)
    assert.are.equal("not_found_error", err.type)
    assert.are.equal("Secret not found", err.message)
  end)

  it("rules:create, get, list, update, delete", function()
    local r = client.rules:create({ name = "Block deletes", hostPattern = "api.github.com",
      method = "DELETE", action = "block", enabled = true })
    assert.are.equal("block", r.action)
    rule_id = r.id
    assert.are.equal("Block deletes", client.rules:get(rule_id).name)
    local ids = {}
    for _, x in ipairs(client.rules:list()) do ids[x.id] = true end
    assert.is_true(ids[rule_id])
    assert.is_true(client.rules:update(rule_id, { enabled = false, method = onecli.null }).success)
    assert.is_false(client.rules:get(rule_id).enabled)
    local err = raised(client.rules.create, client.rules, { name = "rl", hostPattern = "x.com",
      action = "rate_limit", enabled = true })
    assert.are.equal("rateLimit and rateLimitWindow are required when action is rate_limit", err.message)
    assert.is_true(client.rules:delete(rule_id))
    err = raised(client.rules.get, client.rules, rule_id)
    assert.are.equal("Policy rule not found", err.message)
  end)

  it("rules:get_permissions and rules:set_permissions", function()
    local p = client.rules:get_permissions("github")
    assert.is_table(p.defaults)
    assert.is_table(p.byAgent)
    local counts = client.rules:set_permissions("github", {
      changes = { { toolId = "create_issue", permission = "manual_approval" } } })
    assert.are.equal(1, counts.created)
    assert.are.equal("manual_approval", client.rules:get_permissions("github").defaults.create_issue.permission)
    local err = raised(client.rules.set_permissions, client.rules, "github", { changes = {} })
    assert.are.equal("Too small: expected array to have >=1 items", err.message)
    err = raised(client.rules.set_permissions, client.rules, "github",
      { changes = { { toolId = "nope", permission = "allow" } } })
    assert.are.equal("Unknown tool: nope", err.message)
  end)

  it("apps:list and apps:get", function()
    local apps = client.apps:list()
    local by_id = {}
    for _, a in ipairs(apps) do by_id[a.id] = a end
    assert.are.equal("GitHub", by_id.github.name)
    assert.are.equal("api_key", by_id.resend.connectionType)
    assert.is_string(client.apps:get("github").hint)
    local err = raised(client.apps.get, client.apps, "no-such-provider")
    assert.are.equal(404, err.status)
    assert.are.equal("not_found_error", err.type)
    assert.are.equal("Unknown provider: no-such-provider", err.message)
  end)

  it("apps:connect and connections:list/rename/delete", function()
    assert.is_true(client.apps:connect("resend", { fields = { apiKey = "re_123456789" } }).success)
    local conns = client.connections:list({ provider = "resend" })
    assert.are.equal(1, #conns)
    connection_id = conns[1].id
    assert.are.same({}, client.connections:list({ provider = "github" }))
    local renamed = client.connections:rename(connection_id, "Work")
    assert.are.equal("Work", renamed.label)
    local err = raised(client.connections.rename, client.connections, connection_id, "")
    assert.are.equal("Label is required", err.message)
    assert.is_true(client.connections:delete(connection_id))
    err = raised(client.connections.delete, client.connections, connection_id)
    assert.are.equal("Connection not found", err.message)
    err = raised(client.apps.connect, client.apps, "resend", { fields = {} })
    assert.are.equal(400, err.status)
  end)

  it("apps config: set, get, toggle, authorize_url, delete", function()
    local err = raised(client.apps.authorize_url, client.apps, "github")
    assert.are.equal(400, err.status)
    assert.are.equal("GitHub is not configured. Missing required credentials.", err.message)
    assert.is_true(client.apps:set_config("github", { clientId = "cid", clientSecret = "csecret" }).success)
    local cfg = client.apps:get_config("github")
    assert.is_true(cfg.hasCredentials)
    assert.is_true(cfg.enabled)
    local url = client.apps:authorize_url("github", { agent_name = "spec" })
    assert.matches("^https://github%.com/login/oauth/authorize", url)
    assert.is_true(client.apps:toggle_config("github", false).success)
    assert.is_false(client.apps:get_config("github").enabled)
    assert.is_true(client.apps:delete_config("github"))
    err = raised(client.apps.delete_config, client.apps, "github")
    assert.are.equal("not_found_error", err.type)
    assert.are.equal("App config not found", err.message)
  end)

  it("user:get and user:update", function()
    local u = client.user:get()
    assert.is_string(u.email)
    local updated = client.user:update("Spec User")
    assert.are.equal("Spec User", updated.name)
    local err = raised(client.user.update, client.user, "")
    assert.are.equal("Too small: expected string to have >=1 characters", err.message)
  end)

  it("user:get_api_key and user:regenerate_api_key", function()
    local k1 = client.user:get_api_key().apiKey
    assert.matches("^oc_%x+$", k1)
    local k2 = client.user:regenerate_api_key().apiKey
    assert.matches("^oc_%x+$", k2)
    assert.are_not.equal(k1, k2)
  end)

  it("agents:delete, and the default agent cannot be deleted", function()
    local default_id, agent_id = default_agent(), new_agent()
    assert.is_true(client.agents:delete(agent_id))
    local err = raised(client.agents.delete, client.agents, agent_id)
    assert.are.equal("Agent not found", err.message)
    err = raised(client.agents.delete, client.agents, default_id)
    assert.are.equal("Cannot delete the default agent", err.message)
  end)

  it("the /api prefix of old self-hosted servers works too", function()
    local c = onecli.new({ url = srv.origin .. "/api", max_retries = 0, getenv = function() end })
    assert.is_true(#c.agents:list() >= 1)
    c:close()
  end)
end)
