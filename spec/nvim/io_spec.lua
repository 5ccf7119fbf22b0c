-- The Neovim transport's socket-driven I/O, request handles and batches,
-- in a real `nvim --headless` against the stand-in (scenarios in
-- spec/nvim/io_scenarios.lua, run through spec/support/nvim.lua).
local launcher = require("onecli.standin.launcher")
local nvim = require("support.nvim")

local ROOT = nvim.root()
local FILE = "spec/nvim/io_scenarios.lua"

if not nvim.available() then
  describe("Neovim transport I/O", function()
    pending("nvim is not installed (apt-get install -y neovim)")
  end)
  return
end

describe("Neovim transport I/O (nvim --headless)", function()
  local srv, runner

  setup(function()
    srv = launcher.start({ mode = "v2" })
    runner = nvim.runner({ root = ROOT, srv = srv })
  end)

  teardown(function()
    if srv then srv:stop() end
    if runner then runner:cleanup() end
  end)

  before_each(function()
    srv:reset()
  end)

  local function agent_requests()
    local list = {}
    for _, r in ipairs(srv:requests()) do
      if r.path == "/v1/agents" then list[#list + 1] = r end
    end
    return list
  end

  it("adds under 2 ms (median of 50 calls) to a call once the server has answered", function()
    local obs = runner:scenario(FILE, "latency")
    assert.equal(50, obs.rounds)
    -- the same call through the blocking transport is the baseline
    assert.is_true(obs.added_median < 2,
      ("added %.3f ms (Neovim %.3f ms, blocking %.3f ms)"):format(obs.added_median,
        obs.async_median, obs.blocking_median))
    assert.is_true(obs.diff_median < 2, ("paired difference %.3f ms"):format(obs.diff_median))
  end)

  it("keeps no uv handle active while nothing is in flight", function()
    local obs = runner:scenario(FILE, "idle")
    assert.equal(0, obs.active_before_calls)
    -- while calls run it watches their sockets (or has libcurl's timer)
    assert.equal(5, obs.inflight_pending)
    assert.is_true(obs.inflight_transport_active >= 1)
    assert.is_true(obs.inflight_made_active >= 1)
    assert.is_true(obs.idle_made >= 1)
    -- once they are over: nothing active, nothing watched, and none of the
    -- handles made through vim.loop since the client was made is active
    assert.equal(0, obs.idle_pending)
    assert.equal(0, obs.idle_transport_active)
    assert.equal(0, obs.idle_watched)
    assert.equal(0, obs.idle_new_active)
    -- and the next call still goes through, leaving nothing active either
    assert.is_true(obs.second_ok)
    assert.equal(0, obs.after_second_active)
  end)

  it("keeps a 10 ms timer within 20 ms while 20 calls are in flight", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.5, count = 20 })
    local obs = runner:scenario(FILE, "timer_gap")
    assert.equal(20, obs.ok)
    assert.is_true(obs.worst_gap_ms < 20, ("worst gap %.1f ms"):format(obs.worst_gap_ms))
    -- side by side: about one delay, not twenty
    assert.is_true(obs.elapsed_ms >= 450 and obs.elapsed_ms < 1500, "elapsed " .. obs.elapsed_ms)
  end)

  it("cancels one call of ten with its handle; the other nine succeed", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 1, count = 10 })
    local obs = runner:scenario(FILE, "cancel")
    assert.equal("onecli.Handle", obs.handle_type)
    assert.is_false(obs.running_is_done)
    assert.is_true(obs.cancel_returned)
    assert.equal(9, obs.pending_after_cancel)
    for i = 1, 10 do
      assert.equal(1, obs.calls[i], "callback " .. i .. " ran " .. obs.calls[i] .. " times")
      if i == 4 then
        assert.is_false(obs.results[i].ok)
        assert.equal("connection_error", obs.results[i].err.type)
        assert.equal("CANCELLED", obs.results[i].err.code)
        assert.is_false(obs.results[i].err.retryable)
      else
        assert.is_true(obs.results[i].ok, tostring(obs.results[i].err and obs.results[i].err.text))
      end
    end
    assert.is_true(obs.cancelled_is_done)
    assert.is_false(obs.cancel_again)
    assert.is_false(obs.cancel_done)
    assert.equal(0, obs.pending_after)
    -- the server saw exactly that one connection close before its answer,
    -- and no retry of it
    local reqs = agent_requests()
    assert.equal(10, #reqs)
    local closed = 0
    for _, r in ipairs(reqs) do
      if r.client_closed then closed = closed + 1 end
    end
    assert.equal(1, closed)
  end)

  it("wait(100) on a 500 ms call gives a timeout error object and does not cancel it", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.5, count = 1 })
    local obs = runner:scenario(FILE, "wait")
    assert.equal("nil", obs.short.result)
    assert.is_true(obs.short.err.is_error)
    assert.equal("timeout_error", obs.short.err.type)
    assert.equal("WAIT_TIMEOUT", obs.short.err.code)
    assert.is_false(obs.short.is_done)
    assert.is_true(obs.short.elapsed_ms >= 90 and obs.short.elapsed_ms < 400,
                   "waited " .. obs.short.elapsed_ms .. " ms")
    -- the call went on and finished
    assert.equal("table", obs.long.result)
    assert.is_nil(obs.long.err)
    assert.is_true(obs.long.is_done)
    assert.equal("table", obs.again_type)
    assert.equal(1, obs.callback_calls)
    assert.is_false(obs.bad_wait.ok)
    assert.matches("timeout_ms must be a number >= 0", obs.bad_wait.message, 1, true)
    local reqs = agent_requests()
    assert.equal(1, #reqs)
    assert.is_nil(reqs[1].client_closed)
  end)

  it("runs a batch's calls side by side, honouring concurrency", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.5, count = 20 })
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.3, count = 6 })
    srv:fault({ path = "/v1/agents/agt_slow", kind = "delay", seconds = 2, count = 3 })
    local obs = runner:scenario(FILE, "batch")
    -- client:batch outside a coroutine: a clear error
    assert.is_false(obs.outside.ok)
    assert.matches("must run inside a coroutine", obs.outside.message, 1, true)
    assert.matches("batch_start", obs.outside.message, 1, true)
    assert.is_true(obs.run.ok, obs.run.value)
    -- 20 x 500 ms at concurrency 20: well under 3 delays
    assert.equal(20, obs.wide.n)
    assert.equal(0, obs.wide.failed)
    assert.equal("table", obs.wide.first_type)
    assert.is_true(obs.wide.elapsed_ms < 1500, "20 calls took " .. obs.wide.elapsed_ms .. " ms")
    -- 6 x 300 ms at concurrency 2: three rounds, never more at once
    assert.equal(7, obs.narrow.n)
    assert.equal(1, obs.narrow.failed)
    assert.equal("not_found_error", obs.narrow.missing.type)
    assert.is_true(obs.narrow.elapsed_ms >= 850, "6 calls by 2 took " .. obs.narrow.elapsed_ms)
    assert.is_true(obs.narrow.elapsed_ms < 3000, "6 calls by 2 took " .. obs.narrow.elapsed_ms)
    -- the steppable form with b:wait() outside a coroutine
    assert.is_true(obs.stepped.done)
    assert.equal(2, obs.stepped.n)
    assert.equal(0, obs.stepped.failed)
    -- b:cancel() cancels each call in flight
    assert.equal(3, obs.cancelled.failed)
    assert.equal("CANCELLED", obs.cancelled.code)
    assert.equal(0, obs.cancelled.pending)
  end)
end)
