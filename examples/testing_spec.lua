-- Testing your own code against the OneCLI stand-in (onecli.testing), the
-- way a user of the rock would: a busted spec that uses only the public
-- API, require("onecli") and require("onecli.testing"). Needs LuaSocket
-- (Debian: lua-socket) besides the rock. Run it with
--
--   busted examples/testing_spec.lua              -- from a checkout (after make build)
--   busted --lua=lua5.4 testing_spec.lua          -- anywhere the rock is installed
--
-- Each test starts from a fresh server (srv:reset()), seeds what it needs,
-- makes the server misbehave where it wants to, calls the code under test
-- and checks both what it returned and what the server received.
local onecli = require("onecli")
local testing = require("onecli.testing")

-- The code under test: a user's own function. The names of the agents,
-- sorted; a failure comes back as nil, err (never raised).
local function agent_names(client)
  local agents, err = client.agents:list({ raise = false })
  if not agents then return nil, err end
  local names = {}
  for i, agent in ipairs(agents) do names[i] = agent.name end
  table.sort(names)
  return names
end

describe("agent_names", function()
  local srv

  setup(function()
    srv = testing.start({ mode = "v2" })       -- a child process on free ports of 127.0.0.1
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    srv:seed({ agents = { { name = "Researcher", identifier = "researcher" },
                          { name = "Coder", identifier = "coder" } } })
    srv:clear_requests()
  end)

  -- a client of the stand-in; no retries unless a test asks for them
  local function new_client(extra)
    local opts = { max_retries = 0, timeout = 5 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return onecli.new(srv:client_options(opts))
  end

  it("returns the names of the agents, sorted, in one request", function()
    local client = new_client()
    assert.are.same({ "Coder", "Researcher" }, agent_names(client))
    local seen = srv:requests()
    assert.are.equal(1, #seen)
    assert.are.equal("GET", seen[1].method)
    assert.are.equal("/v1/agents", seen[1].path)
    assert.are.equal("Bearer " .. srv.api_key, seen[1].headers.authorization)
    client:close()
  end)

  it("gets there when the server is briefly unavailable (503 with Retry-After)", function()
    local client = new_client({ max_retries = 2 })
    srv:fault({ kind = "status", status = 503, retry_after = 0, path = "/v1/agents" })
    assert.are.same({ "Coder", "Researcher" }, agent_names(client))
    assert.are.equal(2, #srv:requests({ method = "GET", path = "/v1/agents" }))
    client:close()
  end)

  it("returns the error when a proxy answers with an HTML page", function()
    local client = new_client()
    srv:fault({ kind = "html", status = 502, path = "/v1/agents" })
    local names, err = agent_names(client)
    assert.is_nil(names)
    assert.is_true(onecli.is_error(err))
    assert.are.equal(502, err.status)
    client:close()
  end)

  it("returns the error when the answer is not JSON", function()
    local client = new_client()
    srv:fault({ kind = "bad_json", path = "/v1/agents" })
    local names, err = agent_names(client)
    assert.is_nil(names)
    assert.are.equal("decode_error", err.type)
    client:close()
  end)

  it("returns the error when the connection drops or the server is too slow", function()
    local client = new_client({ timeout = 1 })
    srv:fault({ kind = "drop", path = "/v1/agents" })
    local names, err = agent_names(client)
    assert.is_nil(names)
    assert.are.equal("connection_error", err.type)

    srv:fault({ kind = "delay", seconds = 3, path = "/v1/agents" })
    names, err = agent_names(client)
    assert.is_nil(names)
    assert.are.equal("timeout_error", err.type)
    client:close()
  end)
end)
