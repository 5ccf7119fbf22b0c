-- Benchmark: 50 calls against a local stand-in that delays every answer by
-- 100 ms, one after the other and through client:batch at a few
-- concurrency levels. Prints the times (and each as a multiple of one
-- delay); asserts only that every call succeeded. Run from the top of the
-- tree: `make bench`, or `lua5.4 spec/bench/batch_bench.lua [calls] [delay]`.
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
package.cpath = (os.getenv("ONECLI_BUILD_DIR") or ("build/" .. runtime)) .. "/?.so;" .. package.cpath

local onecli = require("onecli")
local core = require("onecli.core")
require("onecli.batch")
local launcher = require("onecli.standin.launcher")

local N = tonumber(arg and arg[1]) or 50
local DELAY = tonumber(arg and arg[2]) or 0.1

local srv = launcher.start({ mode = "v2" })
local ok, err = pcall(function()
  local client = onecli.new({ url = srv.url, api_key = srv.api_key, getenv = function() end })
  client.agents:list()                      -- connect once before timing anything

  local function slow_answers()
    srv:reset()
    srv:fault({ kind = "delay", seconds = DELAY, path = "/v1/agents", method = "GET", count = N })
  end
  local function timed(fn)
    local t0 = core.now()
    fn()
    return core.now() - t0
  end
  local function line(label, seconds, extra)
    print(("%-34s %6.2f s = %5.1f delays%s"):format(label, seconds, seconds / DELAY, extra or ""))
  end

  print(("%s, %s, libcurl %s: %d calls, each answer delayed %d ms"):format(
    runtime, onecli.VERSION, core.curl_version, N, math.floor(DELAY * 1000 + 0.5)))

  slow_answers()
  local sequential = timed(function()
    for _ = 1, N do
      client.agents:list()
    end
  end)
  line("sequential", sequential, ("   (%d connection)"):format(srv:stats().connections))

  local calls = {}
  for i = 1, N do
    calls[i] = { "agents.list" }
  end
  local best
  for _, concurrency in ipairs({ 8, 10, N }) do
    slow_answers()
    local results, failed
    local t = timed(function()
      results, failed = client:batch(calls, { concurrency = concurrency })
    end)
    assert(failed == 0 and #results == N, "a call of the batch failed: " .. tostring(results[1]))
    line(("batch, concurrency %d%s"):format(concurrency, concurrency == 8 and " (default)" or ""), t,
         ("   %4.1fx faster, %d connections"):format(sequential / t, srv:stats().connections))
    best = t
  end
  print(("batch of %d x %d ms: %.2f s = %.1f delays; sequential: %.2f s"):format(
    N, math.floor(DELAY * 1000 + 0.5), best, best / DELAY, sequential))
  client:close()
end)
srv:stop()
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
