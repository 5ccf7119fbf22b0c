-- The timed part of `make bench` (spec/bench/run.sh starts the server
-- first): lua-onecli's client.agents:list() under lua5.4 and LuaJIT
-- against a C floor (build/bench/floor: one reused libcurl handle +
-- cjson.decode), on a private nginx serving static JSON, small list and
-- ~1 MB list.
--   lua5.4 spec/bench/bench.lua PORT FIXTURE_DIR
-- Every contestant is its own process per round (a warm-up call, then N
-- timed calls; it prints its µs per call); the contestants take turns in
-- a rotating order, round after round, so that a slow patch of the
-- machine hits all of them alike. Prints a table of the median µs per call
-- over the rounds, the min–max, and the ratio to the floor's median.
-- Asserts nothing about times; exits 1 only if a contestant fails.
-- Environment: BENCH_ROUNDS (21), BENCH_SMALL_N (1000), BENCH_LARGE_N (10),
-- BENCH_CLIENT_PIN (set by run.sh: taskset -c 0).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ONECLI_BUILD_DIR") or "build/lua5.4") .. "/?.so;" .. package.cpath

local onecli = require("onecli")
local core = require("onecli.core")

local fmt, concat = string.format, table.concat

local port = assert(tonumber(arg and arg[1]), "usage: bench.lua PORT FIXTURE_DIR")
local fixtures = assert(arg[2], "usage: bench.lua PORT FIXTURE_DIR")
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS")) or 21
local SMALL_N = tonumber(os.getenv("BENCH_SMALL_N")) or 1000
local LARGE_N = tonumber(os.getenv("BENCH_LARGE_N")) or 10
local KEY = "oc_bench0000000000000000000000000000000000000000"
local FLOOR = "build/bench/floor"
-- "taskset -c 0" when run.sh pins the timed processes to CPU 0 (nginx on 1)
local PIN = os.getenv("BENCH_CLIENT_PIN") or ""
if PIN ~= "" then PIN = PIN .. " " end

local function read_cmd(cmd)
  local p = io.popen(cmd)
  if not p then return nil end
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function file_size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local function kb(bytes)
  if bytes >= 1e6 then
    return fmt("%.2f MB", bytes / 1e6)
  end
  return fmt("%.1f KB", bytes / 1e3)
end

-- the machine
local cpu = "?"
for line in io.lines("/proc/cpuinfo") do
  local model = line:match("^model name%s*:%s*(.-)%s*$")
  if model then cpu = model break end
end
print(fmt("machine: %s CPU(s) (nproc), %s; %s", read_cmd("nproc") or "?", cpu,
  os.date("!%Y-%m-%d %H:%M UTC")))
print(fmt("lua-onecli %s, libcurl %s, %s, %s, %s; the floor: lua-cjson's decode on %s",
  onecli.VERSION, core.curl_version, _VERSION,
  (read_cmd("luajit -v") or "LuaJIT ?"):match("^(%S+ %S+)") or "LuaJIT ?",
  (read_cmd("nginx -v 2>&1") or ""):match("(nginx/%S+)") or "nginx ?", _VERSION))

local sizes = {
  small = { agents = 10, n = SMALL_N, url = fmt("http://127.0.0.1:%d/small/api", port),
            bytes = file_size(fixtures .. "/agents10.json") },
  large = { agents = 4000, n = LARGE_N, url = fmt("http://127.0.0.1:%d/large/api", port),
            bytes = file_size(fixtures .. "/agents4000.json") },
}

-- Once before timing: client.agents:list() takes what the server sends.
for _, s in pairs(sizes) do
  local client = onecli.new({ url = s.url, api_key = KEY, getenv = function() end })
  local list = client.agents:list()
  assert(type(list) == "table" and #list == s.agents and list[s.agents].accessToken,
    fmt("%s/agents: expected a list of %d agents", s.url, s.agents))
  client:close()
end

local rows = {}
local function row(label, size, argv)
  local s = sizes[size]
  rows[#rows + 1] = {
    label = label, size = size, samples = {}, floor = argv == FLOOR,
    cmd = fmt("%s%s %s %d %s %d 2>&1", PIN, argv, s.url .. (argv == FLOOR and "/agents" or ""), s.n,
              KEY, s.agents),
  }
end
for _, size in ipairs({ "small", "large" }) do
  local what = fmt("%d agents", sizes[size].agents)
  row("floor (C), " .. what, size, FLOOR)
  row("lua-onecli lua5.4, " .. what, size, "lua5.4 spec/bench/client_calls.lua")
  row("lua-onecli LuaJIT, " .. what, size, "luajit spec/bench/client_calls.lua")
end

print(fmt("GET /agents on a private nginx (static file, keep-alive): %d agents = %s, "
  .. "%d agents = %s", sizes.small.agents, kb(sizes.small.bytes), sizes.large.agents,
  kb(sizes.large.bytes)))
print(fmt("%d rounds; in each, every row is a new process: 1 warm-up call, then %d calls "
  .. "(%d agents) or %d calls (%d agents); rotating order", ROUNDS, SMALL_N, sizes.small.agents,
  LARGE_N, sizes.large.agents))
print(PIN ~= "" and "pinned: nginx on CPU 1, every timed process on CPU 0 (taskset; BENCH_PIN=0 to leave them free)"
  or "not pinned (BENCH_PIN=0, no taskset, or one CPU)")
io.write("rounds: ")
io.flush()

local t_start = core.now()
for r = 1, ROUNDS do
  for k = 0, #rows - 1 do
    local ro = rows[(r - 1 + k) % #rows + 1]
    local out = read_cmd(ro.cmd) or ""
    local us, count = out:match("^([%d.]+) (%d+)$")
    if not us or tonumber(count) ~= sizes[ro.size].agents then
      io.write("\n")
      io.stderr:write(fmt("bench: %s failed: %s\n  (%s)\n", ro.label, out, ro.cmd))
      os.exit(1)
    end
    ro.samples[#ro.samples + 1] = tonumber(us)
  end
  io.write(r, r < ROUNDS and " " or "")
  io.flush()
end
io.write(fmt(" (%.0f s)\n\n", core.now() - t_start))

local function median(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

local function num(us)
  if us >= 1000 then return fmt("%.0f", us) end
  return fmt("%.1f", us)
end

-- UTF-8 headers: pad by characters, not bytes
local function pad(s, width, right)
  local len = utf8.len(s)
  local fill = (" "):rep(math.max(0, width - len))
  return right and (fill .. s) or (s .. fill)
end

local W = { 30, 11, 18, 9, 12 }
print(concat({ pad("row", W[1]), pad("median µs", W[2], true), "  " .. pad("min–max µs", W[3] - 2),
               pad("× floor", W[4], true), pad("+µs/call", W[5], true) }))
local floor_median = {}
for _, ro in ipairs(rows) do
  table.sort(ro.samples)
  local m = median(ro.samples)
  floor_median[ro.size] = floor_median[ro.size] or m      -- the floor comes first
  local f = floor_median[ro.size]
  print(concat({
    pad(ro.label, W[1]),
    pad(num(m), W[2], true),
    "  " .. pad(num(ro.samples[1]) .. "–" .. num(ro.samples[#ro.samples]), W[3] - 2),
    pad(fmt("%.2f", m / f), W[4], true),
    pad(ro.floor and "" or fmt("%+.1f", m - f), W[5], true),
  }))
end
print("(median and min–max over the rounds of each process's µs per call; × floor and +µs/call:"
  .. " against the floor's median for the same list)")
