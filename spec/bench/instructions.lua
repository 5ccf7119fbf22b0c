-- The deterministic part of `make bench` (spec/bench/run.sh runs it when
-- valgrind is installed): user-space instructions per call, counted by
-- valgrind --tool=callgrind, for the floor and lua-onecli (lua5.4 and
-- LuaJIT) on the same nginx as the timed rounds. Each contestant runs
-- twice, with N1 and N2 timed calls; (Ir(N2) - Ir(N1)) / (N2 - N1) is what
-- one call costs, start-up and the warm-up call cancelling out. Unlike
-- wall time it does not move with the machine's load (kernel time, where
-- the sockets are, is not counted).
--   lua5.4 spec/bench/instructions.lua PORT
local fmt = string.format

local port = assert(tonumber(arg and arg[1]), "usage: instructions.lua PORT")
local KEY = "oc_bench0000000000000000000000000000000000000000"
local FLOOR = "build/bench/floor"

local function instructions(cmd)
  local out = os.tmpname()
  local p = assert(io.popen(fmt("valgrind --tool=callgrind --callgrind-out-file=%s %s 2>&1 >/dev/null",
    out, cmd)))
  local text = p:read("*a")
  p:close()
  os.remove(out)
  local ir = text:match("Collected : ([%d,]+)")
  assert(ir, "callgrind gave no count for: " .. cmd .. "\n" .. text)
  return tonumber((ir:gsub(",", "")))
end

local sizes = {
  { name = "10 agents", url = fmt("http://127.0.0.1:%d/small/api", port), agents = 10, n1 = 100, n2 = 600 },
  { name = "4000 agents", url = fmt("http://127.0.0.1:%d/large/api", port), agents = 4000, n1 = 1, n2 = 4 },
}
local contestants = {
  { "floor (C)", FLOOR, true },
  { "lua-onecli lua5.4", "lua5.4 spec/bench/client_calls.lua" },
  { "lua-onecli LuaJIT", "luajit spec/bench/client_calls.lua" },
}

print(fmt("%-30s %14s %9s", "row", "Ir per call", "× floor"))
for _, s in ipairs(sizes) do
  local floor_ir
  for _, c in ipairs(contestants) do
    local url = s.url .. (c[3] and "/agents" or "")
    local function run(n) return instructions(fmt("%s %s %d %s %d", c[2], url, n, KEY, s.agents)) end
    local per_call = (run(s.n2) - run(s.n1)) / (s.n2 - s.n1)
    floor_ir = floor_ir or per_call
    print(fmt("%-30s %14s %9.2f", c[1] .. ", " .. s.name,
      fmt("%.0f", per_call):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""),
      per_call / floor_ir))
  end
end
print("(valgrind --tool=callgrind: instructions in user space only; the kernel's share, the same"
  .. " socket calls for all three, is not counted)")
