-- The memory part of `make bench`: one client, N calls of
-- client.agents:list() (default 100,000), and the process's resident set
-- (VmRSS of /proc/self/status), open file descriptors (entries of
-- /proc/self/fd) and Lua heap (collectgarbage("count")) at the start
-- (after one warm-up call), after the first tenth of the calls and at the
-- end, each after a full collectgarbage(). Prints them and the growth
-- (a leak grows on between the tenth and the end; an allocator that
-- settles does not); asserts nothing.
--   lua5.4 spec/bench/rss_run.lua URL [N [KEY]]
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ONECLI_BUILD_DIR") or ("build/" .. runtime)) .. "/?.so;" .. package.cpath

local onecli = require("onecli")
local core = require("onecli.core")

local url = assert(arg and arg[1], "usage: rss_run.lua URL [N [KEY]]")
local n = tonumber(arg[2]) or 100000
local key = arg[3] or "oc_bench"
local fmt = string.format

local function rss_kb()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s*(%d+)")
    if v then return tonumber(v) end
  end
end

-- lfs (a dependency of busted) lists the directory in-process; without it
-- `ls` lists this process's directory (the popen pipe is then one entry).
-- Either way the counting adds the same one descriptor at both readings.
local has_lfs, lfs = pcall(require, "lfs")
local pid
local function fds()
  local count = 0
  if has_lfs then
    for name in lfs.dir("/proc/self/fd") do
      if name ~= "." and name ~= ".." then count = count + 1 end
    end
    return count
  end
  if not pid then
    local f = assert(io.open("/proc/self/stat"))
    pid = f:read("*l"):match("^(%d+)")
    f:close()
  end
  local p = assert(io.popen("ls /proc/" .. pid .. "/fd"))
  for _ in p:lines() do count = count + 1 end
  p:close()
  return count
end

local function reading()
  collectgarbage()
  collectgarbage()
  return { rss = rss_kb(), fds = fds(), heap = collectgarbage("count") }
end

local client = onecli.new({ url = url, api_key = key, getenv = function() end })
local agents = client.agents
local list = agents:list()
assert(type(list) == "table" and #list > 0, "agents:list() returned no list")
local count = #list
list = nil -- luacheck: ignore 311 (dropped before the first reading)

local start = reading()
local tenth = math.floor(n / 10)
local t0 = core.now()
for _ = 1, tenth do
  agents:list()
end
local t1 = core.now()
local mid = reading()
local t2 = core.now()
for _ = tenth + 1, n do
  agents:list()
end
local seconds = core.now() - t2 + (t1 - t0)
local stop = reading()
client:close()

print(fmt("%d calls of client.agents:list() (%s, %d agents each, one client): %.1f s, "
  .. "%.1f µs per call", n, runtime, count, seconds, seconds * 1e6 / n))
local label = fmt("after %d", tenth)
local w = math.max(8, #label)
local row = "%-" .. w .. "s %7d kB %6d %9.0f kB"
print(fmt("%-" .. w .. "s %10s %6s %12s", "", "VmRSS", "fds", "Lua heap"))
print(fmt(row, "start", start.rss, start.fds, start.heap))
print(fmt(row, label, mid.rss, mid.fds, mid.heap))
print(fmt(row, "end", stop.rss, stop.fds, stop.heap))
local grow = "%-" .. w .. "s %+7d kB %+6d %+9.0f kB"
print(fmt(grow, "growth", stop.rss - start.rss, stop.fds - start.fds, stop.heap - start.heap))
print(fmt(grow, "last 90%", stop.rss - mid.rss, stop.fds - mid.fds, stop.heap - mid.heap))
