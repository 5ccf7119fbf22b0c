-- The libcurl multi driver of the C core (core.new_multi), used directly:
-- many transfers at once, connection reuse, transport errors, timers,
-- cancel and close.
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local net = require("support.net")

local srv
local closed_port = net.closed_port

-- Drives m until nothing is pending (or `limit` seconds passed); returns
-- every collected transfer by id, and how many came back.
local function drain(m, limit)
  local out, n = {}, 0
  local deadline = core.now() + (limit or 20)
  while m:pending() > 0 and core.now() < deadline do
    m:perform()
    for _, d in ipairs(m:collect()) do
      assert.is_nil(out[d.id], "collected twice: " .. tostring(d.id))
      out[d.id] = d
      n = n + 1
    end
    if m:pending() > 0 then
      local ms = m:timeout()
      m:wait((ms < 0 or ms > 100) and 100 or ms)
    end
  end
  return out, n
end

local function get(path, extra)
  local req = { method = "GET", url = srv.url .. path, path = "/v1" .. path }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

local function authed(path, extra)
  local req = get(path, extra)
  req.headers = { Authorization = "Bearer " .. srv.api_key }
  return req
end

describe("core.new_multi", function()
  setup(function() srv = launcher.start({ mode = "v2" }) end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("rejects bad options", function()
    assert.has_error(function() core.new_multi({ timeout = "1" }) end)
    assert.has_error(function() core.new_multi({ connect_timeout = -1 }) end)
    assert.has_error(function() core.new_multi({ insecure = "yes" }) end)
    assert.has_error(function() core.new_multi({ max_host_connections = -1 }) end)
    assert.has_error(function() core.new_multi({ max_host_connections = 1.5 }) end)
    assert.has_error(function() core.new_multi("x") end)
    local m = core.new_multi({ max_host_connections = 4, timeout = 5 })
    assert.matches("^onecli%.Multi", tostring(m))
    m:close()
  end)

  it("add / perform / collect: status, lower-cased headers, body", function()
    local m = core.new_multi()
    assert.are.equal(0, m:pending())
    assert.are.same({}, m:collect())
    assert.are.equal(-1, m:timeout())      -- nothing to do, no timer
    local id = m:add(get("/health"))
    assert.is_number(id)
    assert.is_true(id >= 1 and id % 1 == 0)
    assert.are.equal(1, m:pending())
    assert.is_true(m:timeout() >= 0)       -- the new transfer wants perform()
    local done, n = drain(m)
    assert.are.equal(1, n)
    local d = done[id]
    assert.are.equal(200, d.status)
    assert.is_nil(d.err)
    assert.are.equal("application/json", d.headers["content-type"])
    for name in pairs(d.headers) do
      assert.are.equal(name:lower(), name)
    end
    assert.are.equal("ok", core.json_decode(d.body).status)
    assert.are.equal(0, m:pending())
    assert.are.same({}, m:collect())
    local id2 = m:add(get("/health"))
    assert.is_true(id2 > id)               -- ids are never reused
    drain(m)
    m:close()
  end)

  it("perform() never blocks and reports what is still running", function()
    srv:fault({ kind = "delay", seconds = 0.3, path = "/v1/health", count = 2 })
    local m = core.new_multi()
    m:add(get("/health"))
    m:add(get("/health"))
    local running = m:perform()
    assert.are.equal(2, running)
    assert.are.same({}, m:collect())       -- the answers are 300 ms away
    assert.are.equal(2, m:pending())
    local done, n = drain(m)
    assert.are.equal(2, n)
    for _, d in pairs(done) do
      assert.are.equal(200, d.status)
    end
    assert.are.equal(0, m:perform())
    m:close()
  end)

  it("runs many transfers at once against a slow server", function()
    srv:fault({ kind = "delay", seconds = 0.1, path = "/v1/agents", count = 50 })
    local m = core.new_multi({ timeout = 10 })
    local ids = {}
    for i = 1, 50 do
      ids[i] = m:add(authed("/agents"))
    end
    assert.are.equal(50, m:pending())
    local done, n = drain(m)
    assert.are.equal(50, n)
    for i = 1, 50 do
      local d = done[ids[i]]
      assert.are.equal(200, d.status, tostring(d.err))
      assert.is_table(core.json_decode(d.body))
    end
    local stats = srv:stats()
    assert.are.equal(50, stats.requests)
    -- all 50 were in flight together: each needed a connection of its own
    assert.are.equal(50, stats.connections)
    m:close()
  end)

  it("reuses connections from one transfer to the next", function()
    local m = core.new_multi()
    for _ = 1, 5 do
      m:add(get("/health"))
      drain(m)
    end
    assert.are.equal(1, srv:stats().connections)
    -- three at a time, three times: at most three connections in all
    -- (fewer when an answer comes back before the next transfer starts)
    srv:reset()
    for _ = 1, 3 do
      for _ = 1, 3 do
        m:add(get("/health"))
      end
      drain(m)
    end
    assert.are.equal(9, srv:stats().requests)
    assert.is_true(srv:stats().connections <= 3, "connections: " .. srv:stats().connections)
    m:close()
  end)

  it("fresh_connect asks for a connection of its own", function()
    local m = core.new_multi()
    m:add(get("/health"))
    drain(m)
    m:add(get("/health", { fresh_connect = true }))
    drain(m)
    m:add(get("/health", { fresh_connect = true }))
    drain(m)
    assert.are.equal(3, srv:stats().connections)
    m:close()
  end)

  it("honours max_host_connections", function()
    srv:fault({ kind = "delay", seconds = 0.05, path = "/v1/health", count = 12 })
    local m = core.new_multi({ max_host_connections = 3 })
    for _ = 1, 12 do
      m:add(get("/health"))
    end
    local done, n = drain(m)
    assert.are.equal(12, n)
    for _, d in pairs(done) do
      assert.are.equal(200, d.status)
    end
    assert.is_true(srv:stats().connections <= 3, "connections: " .. srv:stats().connections)
    m:close()
  end)

  it("sends a body and keeps it alive until the transfer is over", function()
    local m = core.new_multi()
    local ids = {}
    for i = 1, 5 do
      local body = ('{"name":"Agent %d","identifier":"multi-%d"}'):format(i, i)
      ids[i] = m:add({ method = "POST", url = srv.url .. "/agents", path = "/v1/agents",
        body = body, headers = { Authorization = "Bearer " .. srv.api_key,
                                 ["Content-Type"] = "application/json" } })
    end
    collectgarbage("collect")   -- only the multi handle still holds the bodies
    collectgarbage("collect")
    local done = drain(m)
    for i = 1, 5 do
      assert.are.equal(201, done[ids[i]].status)
      assert.are.equal("multi-" .. i, core.json_decode(done[ids[i]].body).identifier)
    end
    local bodies = {}
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" then bodies[#bodies + 1] = r.body end
    end
    assert.are.equal(5, #bodies)
    for _, b in ipairs(bodies) do
      assert.matches('^{"name":"Agent %d","identifier":"multi%-%d"}$', b)
    end
    m:close()
  end)

  it("rejects bad requests when they are added, and stays usable", function()
    local m = core.new_multi()
    assert.has_error(function() m:add({ method = "GET" }) end)
    assert.has_error(function() m:add(get("/health", { body = "x" })) end)
    assert.has_error(function()
      m:add(get("/health", { headers = { ["X-A"] = "a\r\nX-B: b" } }))
    end)
    assert.has_error(function() m:add(get("/health", { headers = { ["Bad Name"] = "x" } })) end)
    assert.has_error(function() m:add(get("/health", { timeout = "soon" })) end)
    assert.has_error(function() m:add("GET /health") end)
    assert.are.equal(0, m:pending())
    local id = m:add(get("/health"))
    assert.are.equal(200, drain(m)[id].status)
    assert.are.equal(1, srv:stats().requests)
    m:close()
  end)

  describe("transport errors", function()
    it("a refused connection is a structured error, never sent", function()
      local m = core.new_multi()
      local secret = "oc_" .. ("a1"):rep(16)
      local port = closed_port()
      local id = m:add({ method = "POST", url = "http://127.0.0.1:" .. port .. "/v1/agents?k=" .. secret,
        path = "/v1/agents?k=" .. secret, secret = secret, body = "{}" })
      local ok_id = m:add(get("/health"))
      local done = drain(m)
      local d = done[id]
      assert.is_nil(d.status)
      local err = d.err
      assert.is_true(core.is_error(err))
      assert.are.equal("connection_error", err.type)
      assert.are.equal("COULDNT_CONNECT", err.code)
      assert.is_false(err.request_sent)
      assert.is_true(err.retryable)
      assert.are.equal("POST", err.method)
      assert.are.equal(1, err.attempts)
      assert.is_nil(err.path:find(secret, 1, true))
      assert.truthy(err.path:find("[REDACTED]", 1, true))
      assert.is_nil(tostring(err):find(secret, 1, true))
      assert.are.equal(200, done[ok_id].status)   -- the others are not affected
      m:close()
    end)

    it("a protocol other than http(s) is refused", function()
      local m = core.new_multi()
      local id = m:add({ method = "GET", url = "ftp://127.0.0.1:" .. closed_port() .. "/x" })
      local err = drain(m)[id].err
      assert.are.equal("UNSUPPORTED_PROTOCOL", err.code)
      assert.is_false(err.request_sent)
      m:close()
    end)

    it("honours each request's own timeout", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 1 })
      srv:fault({ kind = "delay", seconds = 0.3, path = "/v1/health", count = 1 })
      local m = core.new_multi({ timeout = 30 })
      local slow = m:add(authed("/agents", { timeout = 0.2 }))
      local fine = m:add(get("/health", { timeout = 5 }))
      local done = drain(m)
      assert.are.equal("timeout_error", done[slow].err.type)
      assert.are.equal("OPERATION_TIMEDOUT", done[slow].err.code)
      assert.is_true(done[slow].err.request_sent)
      assert.are.equal(200, done[fine].status)
      m:close()
    end)

    it("refuses a response larger than max_response_size", function()
      local m = core.new_multi({ max_response_size = 8 })
      local id = m:add(get("/health"))
      local other = m:add(get("/health"))
      local done = drain(m)
      for _, d in ipairs({ done[id], done[other] }) do
        assert.is_nil(d.status)
        assert.are.equal("RESPONSE_TOO_LARGE", d.err.code)
        assert.is_false(d.err.retryable)
      end
      m:close()
    end)
  end)

  it("timeout() and wait() tell a plain loop when to come back", function()
    local m = core.new_multi()
    local t0 = core.now()
    assert.are.equal(0, m:wait(0))            -- nothing to wait for
    m:wait(20)                                -- sleeps (at most) 20 ms without transfers
    assert.is_true(core.now() - t0 < 5)
    assert.has_error(function() m:wait(-1) end)
    assert.has_error(function() m:wait("x") end)
    srv:fault({ kind = "delay", seconds = 0.2, path = "/v1/health", count = 1 })
    m:add(get("/health"))
    m:perform()
    local ms = m:timeout()
    assert.is_number(ms)
    assert.is_true(ms >= -1)
    local d = drain(m)
    assert.is_not_nil(next(d))
    m:close()
  end)

  describe("cancel", function()
    it("aborts one transfer; the others go on", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 1 })
      local m = core.new_multi()
      local hung = m:add(authed("/agents"))
      local ok = m:add(get("/health"))
      m:perform()
      assert.is_true(m:cancel(hung))
      assert.is_false(m:cancel(hung))          -- gone
      assert.is_false(m:cancel(12345))         -- unknown ids are a no-op
      assert.are.equal(1, m:pending())
      local done, n = drain(m, 5)
      assert.are.equal(1, n)
      assert.are.equal(200, done[ok].status)
      assert.is_nil(done[hung])
      -- the slot is recycled
      local again = m:add(get("/health"))
      assert.are.equal(200, drain(m)[again].status)
      m:close()
    end)

    it("drops a finished transfer that was not collected yet", function()
      local m = core.new_multi()
      local id = m:add(get("/health"))
      while m:perform() > 0 do m:wait(50) end
      assert.are.equal(1, m:pending())
      assert.is_true(m:cancel(id))
      assert.are.equal(0, m:pending())
      assert.are.same({}, m:collect())
      m:close()
    end)
  end)

  describe("close", function()
    it("is idempotent; a closed multi raises", function()
      local m = core.new_multi()
      assert.is_false(m:is_closed())
      m:close()
      m:close()
      assert.is_true(m:is_closed())
      assert.matches("closed", tostring(m))
      assert.are.equal(0, m:pending())
      assert.has_error(function() m:add(get("/health")) end, "multi is closed")
      assert.has_error(function() m:perform() end, "multi is closed")
      assert.has_error(function() m:collect() end, "multi is closed")
      assert.has_error(function() m:wait(1) end, "multi is closed")
    end)

    it("releases transfers still in flight, and unread results", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 3 })
      local m = core.new_multi()
      for _ = 1, 3 do m:add(authed("/agents")) end
      m:add(get("/health"))
      for _ = 1, 20 do
        m:perform()
        m:wait(10)
      end
      assert.are.equal(4, m:pending())
      m:close()
      assert.are.equal(0, m:pending())
      -- and garbage collection of an open one with work in it
      local m2 = core.new_multi()
      m2:add(authed("/agents", { body = nil }))
      m2:perform()
      m2 = nil -- luacheck: ignore 311
      collectgarbage("collect")
      collectgarbage("collect")
    end)

    it("is closed by <close> on Lua 5.4", function()
      assert.is_true(net.closed_by_scope(core.new_multi, pending))
    end)
  end)
end)
