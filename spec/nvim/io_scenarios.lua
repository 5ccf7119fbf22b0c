-- Run by spec/nvim/io_spec.lua inside `nvim --headless` (see
-- spec/nvim/observe.lua): the socket-driven Neovim transport's latency,
-- idle handles, timer gaps, request handles (cancel, wait) and batches.

-- luacheck: globals vim

local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
local obs, finish, describe_error, ms, median, gap_meter =
      observe.obs, observe.finish, observe.describe_error, observe.ms, observe.median, observe.gap_meter

local uv = vim.loop
local SCENARIOS = {}

-- Every uv handle made through vim.loop from now on, whoever makes it
-- (luv's own walk, uv.walk, aborts on Neovim 0.7's internal handles: an
-- assertion in luv_walk_cb, so the handles are counted as they are made).
local function track_handles()
  local made = {}
  for _, name in ipairs({ "new_timer", "new_socket_poll", "new_poll", "new_idle", "new_check",
                          "new_prepare", "new_async", "new_tcp", "new_pipe", "new_signal" }) do
    local orig = uv[name]
    if orig then
      uv[name] = function(...)
        local h = orig(...)
        if h then made[#made + 1] = h end
        return h
      end
    end
  end
  return {
    count = function() return #made end,
    active = function()
      local n = 0
      for _, h in ipairs(made) do
        if not h:is_closing() and h:is_active() then n = n + 1 end
      end
      return n
    end,
  }
end

-- How many of the transport's own handles are active.
local function transport_active(t)
  local n = 0
  for _, h in ipairs(t:handles()) do
    if h:is_active() then n = n + 1 end
  end
  return n
end


-- Added latency: the same call through the blocking transport and through
-- the Neovim one (callback), interleaved, 50 rounds after 3 warm-up ones.
function SCENARIOS.latency()
  local onecli = require("onecli")
  local nvim = require("onecli.transport.nvim")
  local async_client = nvim.client{ max_retries = 0 }
  local blocking_client = onecli.new{ max_retries = 0 }
  local rounds = tonumber(os.getenv("ONECLI_NVIM_ROUNDS") or "") or 50
  local warmup = 3
  local blocking, async, diffs = {}, {}, {}
  local i = 0
  local round
  round = function()
    i = i + 1
    if i > rounds + warmup then
      obs.rounds = #async
      obs.blocking_median = median(blocking)
      obs.async_median = median(async)
      obs.added_median = obs.async_median - obs.blocking_median
      obs.diff_median = median(diffs)
      obs.async_max = math.max(unpack(async))
      async_client:close()
      blocking_client:close()
      return finish()
    end
    local t0 = ms()
    blocking_client.agents:list()
    local b = ms() - t0
    t0 = ms()
    async_client.agents:list({ callback = function(agents, err)
      local a = ms() - t0
      if err or type(agents) ~= "table" then
        obs.error = "call failed: " .. tostring(err)
        return finish()
      end
      if i > warmup then
        blocking[#blocking + 1], async[#async + 1], diffs[#diffs + 1] = b, a, a - b
      end
      round()
    end })
  end
  round()
end

-- Nothing of the transport stays active once the calls are over; a call
-- made after that still works.
function SCENARIOS.idle()
  local nvim = require("onecli.transport.nvim")
  local tracked = track_handles()
  local client = nvim.client{ max_retries = 0 }
  local t = client._transport
  obs.active_before_calls = transport_active(t)
  local left = 5
  local function all_done()
    -- the callbacks ran through vim.schedule; look once more on the next turn
    vim.schedule(function()
      obs.idle_made = tracked.count()
      obs.idle_new_active = tracked.active()
      obs.idle_transport_active = transport_active(t)
      obs.idle_watched = t:watched()
      obs.idle_pending = t:pending()
      client.agents:list({ callback = function(agents, err)
        obs.second_ok = type(agents) == "table" and err == nil
        vim.schedule(function()
          obs.after_second_active = transport_active(t)
          client:close()
          finish()
        end)
      end })
    end)
  end
  for _ = 1, 5 do
    client.agents:list({ callback = function(_, err)
      if err then obs.error = tostring(err) end
      left = left - 1
      if left == 0 then all_done() end
    end })
  end
  obs.inflight_transport_active = transport_active(t)
  obs.inflight_made_active = tracked.active()
  obs.inflight_pending = t:pending()
end

-- A 10 ms timer while 20 slow calls (the spec delays them 500 ms) are in flight.
function SCENARIOS.timer_gap()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local meter = gap_meter(10)
  local started = ms()
  local left, ok = 20, 0
  for _ = 1, 20 do
    client.agents:list({ callback = function(agents, err)
      if type(agents) == "table" and not err then ok = ok + 1 end
      left = left - 1
      if left == 0 then
        obs.elapsed_ms = ms() - started
        obs.ok = ok
        obs.worst_gap_ms = meter.worst()
        obs.ticks = meter.ticks()
        meter.stop()
        client:close()
        finish()
      end
    end })
  end
end

-- :cancel() on one of 10 calls in flight (the spec delays them 1 s).
function SCENARIOS.cancel()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 2 }
  local handles, calls, results = {}, {}, {}
  local left = 10
  local function settle()
    -- every callback has run; wait a little more to see none runs twice
    vim.defer_fn(function()
      obs.calls, obs.results = calls, results
      obs.cancelled_is_done = handles[4]:is_done()
      obs.cancel_again = handles[4]:cancel()
      obs.cancel_done = handles[1]:cancel()
      obs.pending_after = client._transport:pending()
      client:close()
      finish()
    end, 400)
  end
  for i = 1, 10 do
    calls[i] = 0
    handles[i] = client.agents:list({ callback = function(agents, err)
      calls[i] = calls[i] + 1
      results[i] = { ok = type(agents) == "table", err = describe_error(err) }
      left = left - 1
      if left == 0 then settle() end
    end })
  end
  obs.handle_type = tostring(handles[1]):match("^onecli%.Handle") and "onecli.Handle" or "?"
  obs.running_is_done = handles[4]:is_done()
  vim.defer_fn(function()
    obs.cancel_returned = handles[4]:cancel()
    obs.pending_after_cancel = client._transport:pending()
  end, 300)
end

-- :wait(100) on a call the spec delays 500 ms, then :wait() for the rest.
function SCENARIOS.wait()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local calls = 0
  local h = client.agents:list({ callback = function() calls = calls + 1 end })
  local t0 = ms()
  local res, err = h:wait(100)
  obs.short = { elapsed_ms = ms() - t0, result = res == nil and "nil" or type(res),
                err = describe_error(err), is_done = h:is_done() }
  t0 = ms()
  res, err = h:wait(5000)
  obs.long = { elapsed_ms = ms() - t0, result = type(res), err = describe_error(err),
               is_done = h:is_done() }
  local again = h:wait(0)
  obs.again_type = type(again)
  -- a bad argument is misuse
  local ok, msg = pcall(h.wait, h, -1)
  obs.bad_wait = { ok = ok, message = tostring(msg) }
  vim.defer_fn(function()
    obs.callback_calls = calls
    client:close()
    finish()
  end, 100)
end

-- client:batch under the Neovim transport (the spec delays 20 calls 500 ms).
function SCENARIOS.batch()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local ok, msg = pcall(client.batch, client, { { "agents.list" } })
  obs.outside = { ok = ok, message = tostring(msg) }
  nvim.run(function()
    local calls = {}
    for i = 1, 20 do calls[i] = { "agents.list" } end
    local t0 = ms()
    local results, failed = client:batch(calls, { concurrency = 20 })
    obs.wide = { elapsed_ms = ms() - t0, n = #results, failed = failed,
                 first_type = type(results[1]), last_type = type(results[20]) }
    -- concurrency 2 over 6 calls delayed 300 ms (the spec's second fault)
    calls = {}
    for i = 1, 6 do calls[i] = { "agents.list" } end
    calls[7] = { "agents.get", "agt_does_not_exist" }
    t0 = ms()
    results, failed = client:batch(calls, { concurrency = 2 })
    obs.narrow = { elapsed_ms = ms() - t0, n = #results, failed = failed,
                   missing = describe_error(results[7]), sixth_type = type(results[6]) }
    return "done"
  end, function(done_ok, value)
    obs.run = { ok = done_ok, value = tostring(value) }
    -- the steppable form outside a coroutine: b:wait() runs the loop (vim.wait)
    local b = client:batch_start({ { "agents.list" }, { "agents.list" } })
    local t0, steps = ms(), 0
    while not b:step() and steps < 1000 do
      steps = steps + 1
      b:wait(1)
    end
    local results, failed = b:results()
    obs.stepped = { done = b:done(), n = #results, failed = failed, steps = steps,
                    elapsed_ms = ms() - t0 }
    -- cancelling a batch cancels each call still running
    local c = client:batch_start({ { "agents.get", "agt_slow" }, { "agents.get", "agt_slow" },
                                   { "agents.get", "agt_slow" } }, { concurrency = 3 })
    c:step()
    vim.defer_fn(function()
      c:cancel()
      local res, nfailed = c:results()
      obs.cancelled = { failed = nfailed, code = type(res[1]) == "table" and res[1].code or nil,
                        pending = client._transport:pending() }
      vim.defer_fn(function()
        client:close()
        finish()
      end, 200)
    end, 200)
  end)
end

observe.main(SCENARIOS)
