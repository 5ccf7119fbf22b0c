-- agents:ensure and onecli.docker_args.
local onecli = require("onecli")
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

describe("onecli.docker_args", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
  end)
  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  local config = {
    env = { HTTPS_PROXY = "http://x:aoc_token@gw:10255", NODE_USE_ENV_PROXY = "1",
            ANTHROPIC_API_KEY = "placeholder" },
    caCertificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    caCertificateContainerPath = "/tmp/onecli-gateway-ca.pem",
    credentialStubs = { { containerPath = "/root/.codex/auth.json", content = { OPENAI_API_KEY = "x" } } },
  }

  it("turns env into sorted -e arguments and mounts the files it writes", function()
    local args = onecli.docker_args(config, { dir = dir })
    assert.are.same({
      "-e", "ANTHROPIC_API_KEY=placeholder",
      "-e", "HTTPS_PROXY=http://x:aoc_token@gw:10255",
      "-e", "NODE_USE_ENV_PROXY=1",
      "-v", dir .. "/onecli-gateway-ca.pem:/tmp/onecli-gateway-ca.pem:ro",
      "-v", dir .. "/stub-1-auth.json:/root/.codex/auth.json:ro",
    }, args)
    local f = assert(io.open(dir .. "/onecli-gateway-ca.pem"))
    assert.are.equal(config.caCertificate, f:read("*a"))
    f:close()
    f = assert(io.open(dir .. "/stub-1-auth.json"))
    assert.are.same({ OPENAI_API_KEY = "x" }, onecli.json_decode(f:read("*a")))
    f:close()
  end)

  it("needs a directory when there are files to mount", function()
    assert.has_error(function() onecli.docker_args(config) end)
    assert.are.same({ "-e", "A=1" }, onecli.docker_args({ env = { A = "1" } }))
  end)

  it("rejects something that is not a container config", function()
    assert.has_error(function() onecli.docker_args({}) end)
  end)
end)
