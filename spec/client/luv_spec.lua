-- onecli.transport.uv on a plain luv loop (Debian's lua-luv, every
-- runtime): the same socket-driven driver as Neovim's transport, with no
-- Neovim. Each test runs the loop until its calls are over (bounded).
local launcher = require("onecli.standin.launcher")

local has_luv, uv = pcall(require, "luv")
if not has_luv then
  describe("onecli.transport.uv on luv", function()
    pending("luv is not installed (apt-get install -y lua-luv)")
  end)
  return
end

local uvt = require("onecli.transport.uv")
local onecli = require("onecli")

-- under valgrind everything is ~20x slower: time bounds only hold without it
local SLOW = os.getenv("ONECLI_VALGRIND") and 20 or 1

local function ms()
  return uv.hrtime() / 1e6
end

local run_until = require("support.luv").run_until

-- Every handle made through luv from now on (uv.walk also sees the
-- guard timers; this counts only what was made after the call).
local function track()
  local made, names, saved = {}, { "new_timer", "new_socket_poll", "new_poll", "new_idle" }, {}
  for _, name in ipairs(names) do
    local orig = uv[name]
    saved[name] = orig
    uv[name] = function(...)
      local h = orig(...)
      made[#made + 1] = h
      return h
    end
  end
  return {
    active = function()
      local n = 0
      for _, h in ipairs(made) do
        if not h:is_closing() and h:is_active() then n = n + 1 end
      end
      return n
    end,
    count = function() return #made end,
    restore = function()
      for name, orig in pairs(saved) do uv[name] = orig end
    end,
  }
end

describe("onecli.transport.uv on a plain luv loop", function()
  local srv

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  local function new_client(extra)
    local opts = { url = srv.url, api_key = srv.api_key, max_retries = 0 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return uvt.client(opts)
  end

  it("answers a callback call and straight-line code in run()", function()
    local client = new_client()
    local got, ran
    client.agents:list({ callback = function(agents, err) got = { agents, err } end })
    -- (no pcall inside: Lua 5.1 cannot yield across it; raise = false instead)
    local quiet = new_client({ raise = false })
    uvt.run(function()
      local agents = client.agents:list()
      local agent, err = quiet.agents:get("agt_does_not_exist")
      return #agents, agent ~= nil, err
    end, function(ok, n, got_ok, err)
      ran = { ok = ok, n = n, got_ok = got_ok, err = err }
    end)
    run_until(function() return got and ran end, 10 * SLOW)
    assert.equal("table", type(got[1]))
    assert.is_nil(got[2])
    assert.is_true(ran.ok, tostring(ran.n))
    assert.equal(#got[1], ran.n)
    assert.is_false(ran.got_ok)
    assert.is_true(onecli.is_error(ran.err))
    assert.equal("not_found_error", ran.err.type)
    client:close()
    quiet:close()
  end)

  it("waits as long as asked after the loop sat idle through blocking work", function()
    -- libuv counts timers from its cached time, refreshed only when the
    -- loop runs: the transport refreshes it before each timer it starts
    uv.run("nowait")
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 3 })
    local client = new_client()
    local h = client.agents:list({ callback = function() end })
    os.execute("sleep 1")                 -- blocking work: the loop does not run
    local t0 = ms()
    local _, err = h:wait(500)
    local waited = ms() - t0
    assert.equal("WAIT_TIMEOUT", err.code)
    assert.is_true(waited >= 450, ("wait(500) returned after %.0f ms"):format(waited))
    h:cancel()
    -- a sleep (a retry's wait) too
    os.execute("sleep 1")
    local slept
    t0 = ms()
    uvt.run(function() uvt.sleep(0.3) end, function() slept = ms() - t0 end)
    run_until(function() return slept ~= nil end, 5 * SLOW)
    assert.is_true(slept >= 270, ("sleep(0.3) took %.0f ms"):format(slept))
    client:close()
  end)

  it("hands an error raised in run() after a call to done, with a traceback", function()
    local client = new_client()
    local out
    uvt.run(function()
      client.agents:list()
      error("late failure")
    end, function(ok, err)
      out = { ok = ok, err = err }
    end)
    run_until(function() return out end, 10 * SLOW)
    assert.is_false(out.ok)
    assert.matches("late failure", out.err, 1, true)
    assert.matches("traceback", out.err, 1, true)
    client:close()
  end)

  it("runs ten slow calls side by side and keeps nothing active afterwards", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.5, count = 10 })
    local tracked = track()
    local client = new_client()
    local t = client._transport
    local left, ok = 10, 0
    local t0 = ms()
    for _ = 1, 10 do
      client.agents:list({ callback = function(agents)
        if type(agents) == "table" then ok = ok + 1 end
        left = left - 1
      end })
    end
    local inflight_active = tracked.active()
    run_until(function() return left == 0 end, 20 * SLOW)
    local elapsed = ms() - t0
    uv.run("nowait")
    tracked.restore()
    assert.equal(10, ok)
    assert.is_true(inflight_active >= 1)
    assert.is_true(tracked.count() >= 1)
    assert.equal(0, tracked.active())
    assert.equal(0, t:watched())
    assert.equal(0, t:pending())
    if SLOW == 1 then
      assert.is_true(elapsed < 1500, "10 calls of 500 ms took " .. elapsed .. " ms")
    end
    client:close()
  end)

  it("cancels one call with its handle; wait() times out without cancelling", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.5, count = 3 })
    local client = new_client()
    local calls, results = { 0, 0, 0 }, {}
    local handles = {}
    for i = 1, 3 do
      handles[i] = client.agents:list({ callback = function(agents, err)
        calls[i] = calls[i] + 1
        results[i] = { agents, err }
      end })
    end
    -- once the requests are out (the server holds them)
    local settle = uv.new_timer()
    local settled = false
    settle:start(150, 0, function() settled = true end)
    run_until(function() return settled end, 5 * SLOW)
    settle:close()
    assert.is_true(handles[2]:cancel())
    local res, err = handles[1]:wait(100)
    assert.is_nil(res)
    assert.equal("timeout_error", err.type)
    assert.equal("WAIT_TIMEOUT", err.code)
    assert.is_false(handles[1]:is_done())
    res, err = handles[1]:wait(10000 * SLOW)
    assert.is_nil(err)
    assert.equal("table", type(res))
    run_until(function() return results[1] and results[2] and results[3] end, 10 * SLOW)
    assert.equal("table", type(results[3][1]))
    assert.equal("CANCELLED", results[2][2].code)
    assert.same({ 1, 1, 1 }, calls)
    local closed = 0
    for _, r in ipairs(srv:requests()) do
      if r.client_closed then closed = closed + 1 end
    end
    assert.equal(1, closed)
    client:close()
  end)

  it("runs client:batch in a coroutine with its concurrency", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.2, count = 4 })
    local client = new_client()
    local out
    local t0 = ms()
    uvt.run(function()
      return client:batch({ { "agents.list" }, { "agents.list" }, { "agents.list" },
                            { "agents.list" } }, { concurrency = 2 })
    end, function(ok, results, failed)
      out = { ok = ok, results = results, failed = failed, ms = ms() - t0 }
    end)
    run_until(function() return out end, 20 * SLOW)
    assert.is_true(out.ok, tostring(out.results))
    assert.equal(4, #out.results)
    assert.equal(0, out.failed)
    assert.is_true(out.ms >= 380, "two rounds of 200 ms took " .. out.ms .. " ms")
    local ok, msg = pcall(client.batch, client, { { "agents.list" } })
    assert.is_false(ok)
    assert.matches("must run inside a coroutine", msg, 1, true)
    client:close()
  end)

  it("refuses what it cannot do, clearly", function()
    assert.has_error(function() uvt.new({ poll_every = 1 }) end,
                     "onecli.transport.uv.new: unknown option 'poll_every'")
    local client = new_client()
    assert.has_error(function() client.agents:list() end)
    local ok, msg = pcall(client.agents.list, client.agents)
    assert.is_false(ok)
    assert.matches("must run inside a coroutine", msg, 1, true)
    client:close()
    -- a call after close is misuse, raised at the call
    assert.has_error(function() client.agents:list({ callback = function() end }) end)
  end)
end)
