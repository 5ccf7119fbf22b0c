-- client:batch and client:batch_start: many calls at once over one libcurl
-- multi handle, results in input order, retries per call, misuse raised
-- before anything is sent.
local onecli = require("onecli")
local batch = require("onecli.batch")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")
local net = require("support.net")
local socket = require("socket")

local srv

local function new_client(opts)
  opts = opts or {}
  if opts.api_key == nil then opts.api_key = srv.api_key end
  return api.client(srv, opts)
end

-- Counts the requests the server saw for a path.
local function hits(path, method)
  return net.hits(srv, path, method)
end

-- Calls fn, expects a plain error message (misuse), returns it.
local function misuse(fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_string(msg)
  return msg
end

describe("client:batch", function()
  setup(function() srv = launcher.start({ mode = "v2" }) end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("returns the results in input order, whatever order they finish in", function()
    local c = new_client()
    local ids = {}
    for i = 1, 4 do
      ids[i] = c.agents:create({ name = "Batch " .. i, identifier = "batch-" .. i }).id
    end
    -- the first call answers last, the last first
    for i = 1, 4 do
      srv:fault({ kind = "delay", seconds = 0.05 * (4 - i), path = "/v1/agents/" .. ids[i] })
    end
    local calls = {}
    for i = 1, 4 do calls[i] = { "agents.get", ids[i] } end
    calls[5] = { "health" }
    calls[6] = { method = "GET", path = "/agents" }
    local results, failed = c:batch(calls)
    assert.are.equal(0, failed)
    assert.are.equal(6, #results)
    for i = 1, 4 do
      assert.are.equal(ids[i], results[i].id)
      assert.are.equal("batch-" .. i, results[i].identifier)
    end
    assert.are.equal("ok", results[5].status)
    assert.is_true(#results[6] >= 4)
    c:close()
  end)

  it("keeps every result when some calls fail", function()
    local c = new_client()
    local a = c.agents:create({ name = "Kept", identifier = "kept" })
    local gone = c.agents:create({ name = "Gone", identifier = "gone" })
    local results, failed = c:batch({
      { "agents.get", a.id },
      { "agents.get", "no-such-agent" },
      { "agents.delete", "no-such-agent-either" },
      { method = "GET", path = "/no/such/route" },
      { "agents.rename", a.id, "Renamed" },
      { "agents.delete", gone.id },
    })
    assert.are.equal(6, #results)
    assert.are.equal(3, failed)
    assert.are.equal(a.id, results[1].id)
    for i = 2, 4 do
      assert.is_true(onecli.is_error(results[i]), "result " .. i)
      assert.are.equal(404, results[i].status)
      assert.are.equal(1, results[i].attempts)
    end
    assert.are.equal("not_found_error", results[2].type)
    assert.is_table(results[5])
    assert.is_false(onecli.is_error(results[5]))
    assert.are.equal("Renamed", c.agents:get(a.id).name)
    assert.is_true(results[6])                       -- 204
    c:close()
  end)

  it("an empty batch returns an empty list", function()
    local c = new_client()
    local results, failed = c:batch({})
    assert.are.same({}, results)
    assert.are.equal(0, failed)
    assert.are.equal(0, srv:stats().requests)
    c:close()
  end)

  describe("retries", function()
    it("retries a call after 500s, with the others going on", function()
      srv:fault({ kind = "status", status = 500, path = "/v1/agents", method = "GET", count = 2 })
      local c = new_client({ backoff_base = 0.01, backoff_max = 0.05 })
      local results, failed = c:batch({ { "agents.list" }, { "health" }, { "health" } })
      assert.are.equal(0, failed)
      assert.is_table(results[1])
      assert.are.equal("ok", results[2].status)
      assert.are.equal(3, hits("/v1/agents", "GET"))
      c:close()
    end)

    it("gives up after max_retries and says how many attempts it made", function()
      srv:fault({ kind = "status", status = 503, path = "/v1/agents", method = "GET", count = 10 })
      local c = new_client({ backoff_base = 0.01, backoff_max = 0.02, max_retries = 2 })
      local results, failed = c:batch({
        { "agents.list" },
        { "agents.list", { max_retries = 0 } },      -- a call's own options count
      })
      assert.are.equal(2, failed)
      assert.are.equal(503, results[1].status)
      assert.are.equal(3, results[1].attempts)
      assert.are.equal(503, results[2].status)
      assert.are.equal(1, results[2].attempts)
      assert.are.equal(4, hits("/v1/agents", "GET"))
      c:close()
    end)

    it("does not retry a POST after a 500", function()
      srv:fault({ kind = "status", status = 500, path = "/v1/agents", method = "POST", count = 1 })
      local c = new_client({ backoff_base = 0.01 })
      local results, failed = c:batch({
        { "agents.create", { name = "Once", identifier = "once" } },
        { "agents.create", { name = "Twice", identifier = "twice" } },
      })
      assert.are.equal(1, failed)
      assert.are.equal(500, results[1].status)
      assert.are.equal(1, results[1].attempts)
      assert.are.equal("twice", results[2].identifier)
      assert.are.equal(2, hits("/v1/agents", "POST"))
      c:close()
    end)

    it("retries a refused connection without waiting for the others", function()
      local c = new_client({ url = "http://127.0.0.1:" .. net.closed_port(), max_retries = 1,
                             backoff_base = 0.01 })
      local results, failed = c:batch({ { "agents.list" }, { "agents.create", { name = "x", identifier = "x" } } })
      assert.are.equal(2, failed)
      for i = 1, 2 do
        assert.are.equal("COULDNT_CONNECT", results[i].code)
        assert.are.equal(2, results[i].attempts)    -- never sent: a POST may go again
      end
      c:close()
    end)

    it("honours Retry-After without holding up the rest of the batch", function()
      srv:fault({ kind = "status", status = 429, path = "/v1/agents", method = "GET", count = 1,
                  headers = { ["Retry-After"] = "1" } })
      local lines = {}
      local c = new_client({ log = function(line) lines[#lines + 1] = line end })
      local b = c:batch_start({ { "agents.list" }, { "health" }, { "health" }, { "health" } })
      -- run until the three health calls are in
      local results
      repeat
        b:step()
        b:wait(0.05)
        results = b:results()
      until (results[2] and results[3] and results[4]) or b:done()
      -- the call told to come back in a second is still waiting for it
      assert.is_nil(results[1])
      assert.is_false(b:done())
      repeat b:wait() until b:step()
      results = b:results()
      assert.is_table(results[1])
      assert.are.equal(2, hits("/v1/agents", "GET"))
      local retried = false
      for _, line in ipairs(lines) do
        if line:find("GET /v1/agents -> 429", 1, true) and line:find("retrying in 1.00 s", 1, true) then
          retried = true
        end
      end
      assert.is_true(retried, table.concat(lines, "\n"))
      c:close()
    end)
  end)

  it("falls back to a route's v1 name on a server that does not know it", function()
    srv:fault({ kind = "status", status = 404, path = "/v1/workspaces", count = 1,
                body = "Unrecognized request URL", ctype = "text/plain" })
    srv:fault({ kind = "status", status = 200, path = "/v1/projects", count = 2,
                body = "[]", ctype = "application/json" })
    local c = new_client()
    local results, failed = c:batch({ { "workspaces.list" } })
    assert.are.equal(0, failed)
    assert.are.same({}, results[1])
    assert.are.equal(1, hits("/v1/workspaces"))
    assert.are.equal(1, hits("/v1/projects"))
    -- the next batch goes straight to the old name
    results = c:batch({ { "workspaces.list" } })
    assert.are.same({}, results[1])
    assert.are.equal(1, hits("/v1/workspaces"))
    assert.are.equal(2, hits("/v1/projects"))
    c:close()
  end)

  it("raises on misuse, naming the call, before anything is sent", function()
    local c = new_client()
    local cases = {
      { { { "agents.get" } }, "call #1 %(agents.get%): argument #1 %(agentId%) must be a non%-empty string" },
      { { { "health" }, { "agents.nope" } }, "call #2 %(agents.nope%): unknown endpoint 'agents.nope'" },
      { { { "health" }, { "health" }, { "agents.create", "x" } }, "call #3 %(agents.create%): argument #1 %(body%)" },
      { { { "secrets.list", { nope = 1 } } }, "call #1 %(secrets.list%): unknown option 'nope'" },
      { { { "agents.list", { nope = 1 } } },
        "call #1 %(agents.list%): argument #1 %(query%): unknown query parameter 'nope'" },
      { { { "agents.get", "a", "b" } }, "call #1 %(agents.get%): argument #2 %(options%) must be a table" },
      { { { "agents.list", { callback = print } } }, "call #1 %(agents.list%): the 'callback' option" },
      { { { "agents.get", id = "x" } }, "call #1 %(agents.get%): an endpoint call takes positional arguments" },
      { { "agents.list" }, "call #1: must be a table, got string" },
      { { { 42 } }, "call #1: must be" },
      { { { method = "FETCH", path = "/x" } }, "call #1 %(FETCH /x%): method must be one of" },
      { { { method = "GET", path = "x" } }, "call #1 %(GET x%): path must be a string starting with '/'" },
      { { { method = "GET", path = "/x", body = "{}" } }, "call #1 %(GET /x%): a GET request cannot have a body" },
      { { { method = "POST", path = "/x", body = 5 } }, "call #1 %(POST /x%): the body must be a table" },
      { { { method = "GET", path = "/x", timeout = "soon" } },
        "call #1 %(GET /x%): option 'timeout' must be a number" },
      { { { method = "GET", path = "/x", response = "xml" } }, "call #1 %(GET /x%): response must be" },
    }
    for _, case in ipairs(cases) do
      local msg = misuse(function() c:batch(case[1]) end)
      assert.matches("^onecli: batch: " .. case[2], (msg:gsub("^[^\n]-:%d+: ", "")))
      -- raised at the caller's line, not inside the library
      assert.matches("batch_spec%.lua:%d+: onecli: batch:", msg)
    end
    assert.matches("calls must be a table", misuse(function() c:batch("x") end))
    assert.matches("calls must be an array", misuse(function() c:batch({ [2] = { "health" } }) end))
    assert.matches("unknown option 'limit'", misuse(function() c:batch({}, { limit = 2 }) end))
    for _, n in ipairs({ 0, -1, 1.5, 101 }) do
      assert.matches("'concurrency' must be an integer from 1 to 100",
                     misuse(function() c:batch({}, { concurrency = n }) end))
    end
    assert.matches("call it with a colon", misuse(function() c.batch({}) end))
    assert.are.equal(0, srv:stats().requests)
    c:close()
  end)

  for _, case in ipairs({ { 3, 12 }, { nil, 20 } }) do
    local concurrency, n = case[1], case[2]
    it(("keeps at most %s calls in flight"):format(concurrency or "8 (the default)"), function()
      srv:fault({ kind = "delay", seconds = 0.05, path = "/v1/health", count = n })
      local c = new_client()
      local calls = {}
      for i = 1, n do calls[i] = { "health" } end
      local results, failed = c:batch(calls, { concurrency = concurrency })
      assert.are.equal(0, failed)
      assert.are.equal(n, #results)
      -- one request at a time per connection: `concurrency` connections
      -- served them all
      local stats = srv:stats()
      assert.are.equal(n, stats.requests)
      assert.is_true(stats.connections <= (concurrency or 8), "connections: " .. stats.connections)
      c:close()
    end)
  end

  it("reuses the client's connections from one batch to the next", function()
    local c = new_client()
    c:batch({ { "health" }, { "health" } }, { concurrency = 1 })
    c:batch({ { "health" } })
    assert.are.equal(3, srv:stats().requests)
    assert.are.equal(1, srv:stats().connections)
    c:close()
  end)

  describe("the steppable form", function()
    it("step() never blocks and says when everything is done", function()
      srv:fault({ kind = "delay", seconds = 0.1, path = "/v1/health", count = 3 })
      local c = new_client()
      local b = c:batch_start({ { "health" }, { "agents.list" }, { "health" }, { "health" } },
                              { concurrency = 2 })
      assert.matches("^onecli%.Batch", tostring(b))
      assert.is_false(b:done())
      local steps = 0
      while not b:step() do
        steps = steps + 1
        local w = b:next_wakeup()
        assert.is_number(w)
        assert.is_true(w >= 0 and w <= 0.01, "next_wakeup: " .. w)
        socket.sleep(w)
      end
      assert.is_true(steps > 1)          -- the delayed answers took several turns
      assert.is_true(b:done())
      assert.is_true(b:step())           -- stays done
      assert.are.equal(0, b:next_wakeup())
      local results, failed = b:results()
      assert.are.equal(0, failed)
      assert.are.equal("ok", results[1].status)
      assert.is_table(results[2])
      assert.are.equal("ok", results[4].status)
      c:close()
    end)

    it("next_wakeup() is the nearest retry when nothing is in flight", function()
      srv:fault({ kind = "status", status = 503, path = "/v1/agents", method = "GET", count = 1,
                  headers = { ["Retry-After"] = "30" } })
      local c = new_client({ max_retry_after = 0.5 })
      local b = c:batch_start({ { "agents.list" } })
      repeat b:step() until hits("/v1/agents", "GET") == 1 and b.inflight == 0
      local w = b:next_wakeup()
      assert.is_true(w > 0.01 and w <= 0.5, "next_wakeup: " .. w)
      repeat b:wait() until b:step()
      assert.is_table((b:results())[1])
      c:close()
    end)

    it("cancel() ends what is still running, and nothing is lost", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 1 })
      local c = new_client()
      local b = c:batch_start({ { "agents.list" }, { "health" } })
      repeat b:step(); b:wait(0.05) until (b:results())[2] ~= nil
      b:cancel()
      b:cancel()
      assert.is_true(b:done())
      local results, failed = b:results()
      assert.are.equal(1, failed)
      assert.are.equal("CANCELLED", results[1].code)
      assert.is_false(results[1].retryable)
      assert.are.equal("ok", results[2].status)
      -- the client goes on working
      assert.are.equal("ok", c:batch({ { "health" } })[1].status)
      c:close()
    end)

    it("two batches of one client share its multi handle", function()
      srv:fault({ kind = "delay", seconds = 0.05, path = "/v1/health", count = 4 })
      local c = new_client()
      local b1 = c:batch_start({ { "health" }, { "health" } })
      local b2 = c:batch_start({ { "agents.list" }, { "health" }, { "health" } })
      local d1, d2
      repeat
        d1 = b1:step()
        d2 = b2:step()
        b1:wait(0.01)
      until d1 and d2
      assert.are.equal(2, #b1:results())
      assert.are.equal(3, #b2:results())
      assert.is_table(b2:results()[1])
      c:close()
    end)
  end)

  it("a log function that raises loses no call", function()
    local c = new_client({ log = function() error("the log broke") end })
    local ok, err = pcall(c.batch, c, { { "health" }, { "health" } })
    assert.is_false(ok)
    assert.matches("the log broke", tostring(err))
    -- stepping on after the error: every call has its result
    local b = c:batch_start({ { "health" }, { "health" } })
    local raised, done = 0, false
    repeat
      local stepped, finished = pcall(b.step, b)
      if stepped then done = finished else raised = raised + 1 end
      b:wait(0.01)
    until done
    assert.is_true(raised >= 1 and raised <= 2, "raised " .. raised)   -- once per turn that took one in
    local results, failed = b:results()
    assert.are.equal(2, failed)
    assert.are.equal("CALLBACK", results[1].code)
    assert.are.equal("CALLBACK", results[2].code)
    c:close()
  end)

  it("client:close() releases the multi handle; release() is idempotent", function()
    local c = new_client()
    c:batch({ { "health" } })
    local hub = c._multi
    assert.is_not_nil(hub)
    c:close()
    assert.is_nil(c._multi)
    assert.is_true(hub.multi:is_closed())
    batch.release(c)
    local c2 = new_client()
    c2:batch({ { "health" } })
    batch.release(c2)
    batch.release(c2)
    assert.is_nil(c2._multi)
    assert.are.equal("ok", c2:batch({ { "health" } })[1].status)   -- made again on demand
    c2:close()
  end)

  it("a client with a transport of its own runs the calls one by one", function()
    local seen = {}
    local transport = {
      request = function(_, req)
        seen[#seen + 1] = req.method .. " " .. req.path
        if req.path:find("missing", 1, true) then
          return 404, { ["content-type"] = "application/json" }, '{"error":"Agent not found"}'
        end
        return 200, { ["content-type"] = "application/json" }, '{"path":"' .. req.path .. '"}'
      end,
    }
    local c = onecli.new({ url = "http://127.0.0.1:9", transport = transport, getenv = function() end })
    local results, failed = c:batch({ { "agents.get", "a" }, { "agents.get", "missing" },
                                      { method = "GET", path = "/counts" } })
    assert.are.equal(1, failed)
    assert.are.equal("/v1/agents/a", results[1].path)
    assert.are.equal(404, results[2].status)
    assert.are.equal("/v1/counts", results[3].path)
    assert.are.same({ "GET /v1/agents/a", "GET /v1/agents/missing", "GET /v1/counts" }, seen)
    assert.is_nil(c._multi)
  end)
end)
