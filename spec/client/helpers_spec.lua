-- agents:ensure (onecli.docker_args: docker_args_spec.lua).
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

describe("client.agents:ensure", function()
  local srv, client

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
    client = api.client(srv, { api_key = srv.api_key, max_retries = 0 })
  end)
  after_each(function()
    client:close()
  end)

  it("creates the agent when it does not exist", function()
    local agent, created = client.agents:ensure({ name = "Ensured", identifier = "ensured" })
    assert.is_true(created)
    assert.are.equal("ensured", agent.identifier)
    assert.are.equal(1, #client.agents:list())
  end)

  it("returns the existing agent on a 409, without raising", function()
    client.agents:create({ name = "Ensured", identifier = "ensured" })
    local agent, created = client.agents:ensure({ name = "Other name", identifier = "ensured" })
    assert.is_false(created)
    assert.are.equal("ensured", agent.identifier)
    assert.are.equal("Ensured", agent.name)
    assert.is_string(agent.accessToken)
    assert.are.equal(1, #client.agents:list())
    -- the 409 really happened
    local posts = 0
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" and r.path == "/v1/agents" then posts = posts + 1 end
    end
    assert.are.equal(2, posts)
  end)

  it("still raises other errors", function()
    local err = api.raised(client.agents.ensure, client.agents, { name = "x", identifier = "Bad Id" })
    assert.are.equal(400, err.status)
  end)

  it("finds the agent when the create's answer was lost after the server made it", function()
    -- the server made it (a first create), then the answer to ensure's
    -- create is lost (a 502 from a proxy in front)
    client.agents:create({ name = "Lost", identifier = "ensured" })
    srv:fault({ path = "/v1/agents", method = "POST", kind = "status", status = 502 })
    local agent, created = client.agents:ensure({ name = "Lost", identifier = "ensured" })
    assert.is_false(created)
    assert.are.equal("ensured", agent.identifier)
  end)

  it("checks its argument", function()
    assert.has_error(function() client.agents:ensure({ name = "x" }) end)
  end)
end)
