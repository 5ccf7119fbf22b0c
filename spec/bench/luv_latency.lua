-- Added latency of onecli.transport.uv on a plain luv loop: the same call
-- (client.agents:list()) through the blocking libcurl transport and
-- through the luv transport (callback), interleaved, after 5 warm-up
-- rounds. Run by spec/bench/async_bench.lua under each runtime:
--   lua5.1 spec/bench/luv_latency.lua URL KEY ROUNDS
-- prints one line: rounds blocking_median async_median paired_median paired_p90 (ms)
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local rt = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
package.cpath = "build/" .. rt .. "/?.so;" .. package.cpath

local uv = require("luv")
local onecli = require("onecli")
local uvt = require("onecli.transport.uv")

local url, key, rounds = arg[1], arg[2], tonumber(arg[3] or "200")
local blocking_client = onecli.new{ url = url, api_key = key, max_retries = 0 }
local async_client = uvt.client{ url = url, api_key = key, max_retries = 0 }

local function ms() return uv.hrtime() / 1e6 end
local function sorted(list)
  local s = {}
  for i = 1, #list do s[i] = list[i] end
  table.sort(s)
  return s
end
local function median(list)
  local s = sorted(list)
  local n = #s
  return n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
end

local blocking, async, diffs = {}, {}, {}
for i = 1, rounds + 5 do
  local t0 = ms()
  blocking_client.agents:list()
  local b = ms() - t0
  local done
  t0 = ms()
  async_client.agents:list({ callback = function(agents, err)
    assert(type(agents) == "table", tostring(err))
    done = ms() - t0
  end })
  local guard = 0
  while not done and guard < 100000 do
    uv.run("once")
    guard = guard + 1
  end
  assert(done, "the call did not finish")
  if i > 5 then
    blocking[#blocking + 1], async[#async + 1], diffs[#diffs + 1] = b, done, done - b
  end
end
async_client:close()
blocking_client:close()
uv.run("nowait")
local s = sorted(diffs)
print(string.format("%d %.3f %.3f %.3f %.3f", #async, median(blocking), median(async),
                    median(diffs), s[math.ceil(#s * 0.9)]))
