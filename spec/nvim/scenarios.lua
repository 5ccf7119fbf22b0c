-- Run by spec/nvim/nvim_spec.lua inside `nvim --headless` (Neovim's
-- LuaJIT), not by busted. Environment:
--   ONECLI_NVIM_ROOT      the repository root
--   ONECLI_NVIM_OUT       where to write the observations (a Lua literal)
--   ONECLI_NVIM_SCENARIO  which scenario to run (see SCENARIOS below)
--   ONECLI_URL, ONECLI_API_KEY   the stand-in server (read by onecli.new)
--   ONECLI_CLOSED_URL     a URL on a port nothing listens on
-- Every scenario records what it sees in `obs`, then the file is written
-- and Neovim quits; a watchdog quits after 30 s whatever happens.

-- luacheck: globals vim

local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
local obs, finish = observe.obs, observe.finish

local uv = vim.loop

-- What a test needs to know about an error (never the whole object).
local function describe_error(_, err)
  return observe.describe_error(err)
end

-- A 50 ms vim.loop timer; ticks() says how often it fired.
local function ticker()
  local count = 0
  local timer = uv.new_timer()
  timer:start(50, 50, function() count = count + 1 end)
  return {
    ticks = function() return count end,
    stop = function()
      timer:stop()
      timer:close()
    end,
  }
end

local SCENARIOS = {}

-- 1. A slow answer (the spec adds a delay fault on /v1/agents) arrives
-- through the callback while the editor's loop keeps running.
function SCENARIOS.slow()
  local onecli = require("onecli")
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local t = ticker()
  local started = uv.hrtime()
  local returned = false
  client.agents:list({ callback = function(agents, err)
    obs.callback_ticks = t.ticks()
    obs.elapsed = (uv.hrtime() - started) / 1e9
    obs.returned_first = returned
    obs.in_fast_event = vim.in_fast_event()
    obs.agents_type = type(agents)
    obs.agents_count = type(agents) == "table" and #agents or nil
    obs.err = describe_error(onecli, err)
    t.stop()
    client:close()
    finish()
  end })
  returned = true
  obs.return_seconds = (uv.hrtime() - started) / 1e9
  obs.ticks_at_return = t.ticks()
end

-- 1b. Several slow calls at once finish together, not one after another.
function SCENARIOS.concurrent()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local started = uv.hrtime()
  local left = 3
  obs.results = {}
  for i = 1, 3 do
    client.agents:list({ callback = function(agents, err)
      obs.results[i] = { ok = type(agents) == "table", err = err and tostring(err) }
      left = left - 1
      if left == 0 then
        obs.elapsed = (uv.hrtime() - started) / 1e9
        client:close()
        finish()
      end
    end })
  end
end

-- 2. Errors come to the callback as error objects.
function SCENARIOS.errors()
  local onecli = require("onecli")
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local closed = nvim.client{ url = os.getenv("ONECLI_CLOSED_URL"), max_retries = 0,
                              connect_timeout = 5 }
  -- outside a coroutine and without a callback: a clear error at once
  local ok, msg = pcall(client.agents.list, client.agents)
  obs.sync_call = { ok = ok, message = tostring(msg) }
  local left = 3
  local function one_done()
    left = left - 1
    if left == 0 then
      client:close()
      closed:close()
      finish()
    end
  end
  client.agents:get("agt_does_not_exist", { callback = function(res, err)
    obs.not_found = { result = res == nil and "nil" or type(res), err = describe_error(onecli, err),
                      in_fast_event = vim.in_fast_event() }
    one_done()
  end })
  closed.agents:list({ callback = function(res, err)
    obs.refused = { result = res == nil and "nil" or type(res), err = describe_error(onecli, err) }
    one_done()
  end })
  -- a raising client (the default) still hands errors to the callback
  client:request("GET", "/no/such/route", { callback = function(res, err)
    obs.unknown_route = { result = res == nil and "nil" or type(res),
                          err = describe_error(onecli, err) }
    one_done()
  end })
end

-- 3. Straight-line code in run(): a 500 then success, retried after a
-- timer-based sleep; errors raised inside run are catchable there.
function SCENARIOS.run()
  local onecli = require("onecli")
  local nvim = require("onecli.transport.nvim")
  local log = {}
  local client = nvim.client{ max_retries = 2, backoff_base = 0.4, backoff_max = 0.4,
                              log = function(line) log[#log + 1] = line end }
  local t = ticker()
  local started = uv.hrtime()
  local returned = false
  nvim.run(function()
    local agents = client.agents:list()
    obs.elapsed = (uv.hrtime() - started) / 1e9
    obs.returned_first = returned
    obs.ticks = t.ticks()
    obs.agents_type = type(agents)
    obs.in_fast_event = vim.in_fast_event()
    -- the vim API is usable after a call (we are on the main loop)
    obs.api_ok = pcall(vim.api.nvim_buf_set_lines, 0, 0, -1, false, { "onecli" })
    local ok, err = pcall(client.agents.get, client.agents, "agt_does_not_exist")
    obs.raised = { ok = ok, err = describe_error(onecli, err) }
    local health = client:health()
    obs.health_status = type(health) == "table" and health.status or tostring(health)
    return "done"
  end, function(ok, value)
    obs.run_done = { ok = ok, value = tostring(value) }
    obs.log = log
    t.stop()
    client:close()
    finish()
  end)
  returned = true
  obs.return_seconds = (uv.hrtime() - started) / 1e9
end

-- 3b. The transport's sleep and run() on their own.
function SCENARIOS.sleep()
  local nvim = require("onecli.transport.nvim")
  local t = ticker()
  local started = uv.hrtime()
  local ok, msg = pcall(nvim.sleep, 0.1)
  obs.sleep_outside = { ok = ok, message = tostring(msg) }
  nvim.run(function(a, b)
    nvim.sleep(0.3)
    return a + b
  end, function(done_ok, value)
    obs.elapsed = (uv.hrtime() - started) / 1e9
    obs.ticks = t.ticks()
    obs.run_done = { ok = done_ok, value = value }
    nvim.run(function() error("boom") end, function(e_ok, e)
      obs.failing = { ok = e_ok, err = tostring(e) }
      t.stop()
      finish()
    end)
  end, 2, 3)
end

-- 4. close() with a transfer in flight fails it with an error object; a
-- call made after close() is misuse, raised at the call.
function SCENARIOS.close()
  local onecli = require("onecli")
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  client.agents:list({ callback = function(res, err)
    obs.cancelled = { result = res == nil and "nil" or type(res), err = describe_error(onecli, err) }
    local ok, msg = pcall(client.agents.list, client.agents, { callback = function() end })
    obs.after_close = { raised = not ok, message = tostring(msg) }
    finish()
  end })
  local timer = uv.new_timer()
  timer:start(200, 0, function()
    timer:close()
    vim.schedule(function() client:close() end)
  end)
end

observe.main(SCENARIOS)
