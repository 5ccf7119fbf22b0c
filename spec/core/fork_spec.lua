-- Fork safety: a connection kept alive before fork() is never used on
-- both sides. After a call in the parent, the child's call (through the
-- libcurl transport, a client, or client:batch over the multi handle)
-- gets a connection of its own, and the parent keeps using its own,
-- untouched by the child closing its copy. Checked at the stand-in, which
-- logs the TCP connection of every request.
local onecli = require("onecli")
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local fork = require("onecli_spec_fork")

local srv

-- The connection ids of the requests logged since `since` for a path.
local function connections(since, path)
  local ids = {}
  local log = srv:requests()
  for i = since + 1, #log do
    if log[i].path == path then ids[#ids + 1] = log[i].connection end
  end
  return ids
end

-- Runs fn() in a child process; returns its exit code (0: fn returned
-- true). The child never returns into busted.
local function in_child(fn)
  local pid = fork.fork()
  if pid == 0 then
    local ok, good = pcall(fn)
    fork.exit((ok and good) and 0 or 1)
  end
  return fork.wait(pid)
end

local function new_client()
  return onecli.new({ url = srv.url, api_key = srv.api_key, getenv = function() end, max_retries = 0 })
end

describe("after fork()", function()
  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
  end)

  it("the libcurl transport starts afresh in the child; the parent's connection is intact", function()
    local t = core.new_transport({ timeout = 5 })
    local req = { method = "GET", url = srv.url .. "/agents",
                  headers = { Authorization = "Bearer " .. srv.api_key } }
    local since = #srv:requests()
    assert.are.equal(200, (t:request(req)))
    local code = in_child(function()
      local status = t:request(req)
      local again = t:request(req)
      return status == 200 and again == 200
    end)
    assert.are.equal(0, code, "the child's calls failed")
    assert.are.equal(200, (t:request(req)))
    local ids = connections(since, "/v1/agents")
    assert.are.equal(4, #ids)
    local parent, child1, child2, parent_again = ids[1], ids[2], ids[3], ids[4]
    assert.are_not.equal(parent, child1, "the child used the parent's connection")
    assert.are.equal(child1, child2, "the child keeps its own connection alive")
    assert.are.equal(parent, parent_again, "the parent's connection was disturbed")
    t:close()
  end)

  it("a client made before fork() works in both, each on its own connection", function()
    local c = new_client()
    local since = #srv:requests()
    assert.is_table(c.agents:list())
    local code = in_child(function()
      return type(c.agents:list()) == "table"
    end)
    assert.are.equal(0, code)
    assert.is_table(c.agents:list())
    local ids = connections(since, "/v1/agents")
    assert.are.equal(3, #ids)
    assert.are_not.equal(ids[1], ids[2])
    assert.are.equal(ids[1], ids[3])
    c:close()
  end)

  it("client:batch (the multi handle) starts afresh in the child", function()
    local c = new_client()
    local since = #srv:requests()
    local calls = { { "agents.list" }, { "agents.list" } }
    local _, failed = c:batch(calls, { concurrency = 2 })
    assert.are.equal(0, failed)
    local parent = {}
    for _, id in ipairs(connections(since, "/v1/agents")) do parent[id] = true end
    local mark = #srv:requests()
    local code = in_child(function()
      local _, f = c:batch(calls, { concurrency = 2 })
      return f == 0
    end)
    assert.are.equal(0, code)
    for _, id in ipairs(connections(mark, "/v1/agents")) do
      assert.is_nil(parent[id], "the child's batch used a connection of the parent")
    end
    mark = #srv:requests()
    _, failed = c:batch(calls, { concurrency = 2 })
    assert.are.equal(0, failed)
    for _, id in ipairs(connections(mark, "/v1/agents")) do
      assert.is_true(parent[id] == true, "the parent lost its pooled connections")
    end
    c:close()
  end)

  it("closing in the child leaves the parent's connection alone", function()
    local c = new_client()
    local since = #srv:requests()
    assert.is_table(c.agents:list())
    local code = in_child(function()
      c:close()
      collectgarbage()
      return true
    end)
    assert.are.equal(0, code)
    assert.is_table(c.agents:list())
    local ids = connections(since, "/v1/agents")
    assert.are.equal(2, #ids)
    assert.are.equal(ids[1], ids[2], "the child's close() closed the parent's connection")
    c:close()
  end)
end)
