-- One contestant of `make bench`: lua-onecli's client.agents:list() made
-- N times by one client (one kept-alive connection).
--   lua5.4 spec/bench/client_calls.lua URL N [KEY [EXPECTED]]
--   luajit spec/bench/client_calls.lua ...
-- One warm-up call (connects; checks that it returns a list of EXPECTED
-- agents when EXPECTED is given), then N timed calls. Prints one line,
-- "<microseconds per call> <agents>", measured with onecli.core.now()
-- (CLOCK_MONOTONIC) around the timed loop only. Run from the top of the
-- tree; loads lua/ and build/<runtime>/ (ONECLI_BUILD_DIR overrides).
local runtime = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ONECLI_BUILD_DIR") or ("build/" .. runtime)) .. "/?.so;" .. package.cpath

local onecli = require("onecli")
local core = require("onecli.core")

local url = assert(arg and arg[1], "usage: client_calls.lua URL N [KEY [EXPECTED]]")
local n = assert(tonumber(arg[2]), "N must be a number")
local key = arg[3] or "oc_bench"
local expected = tonumber(arg[4])

local client = onecli.new({ url = url, api_key = key, getenv = function() end })
local agents = client.agents

local first = agents:list()
if type(first) ~= "table" or (expected and #first ~= expected) then
  io.stderr:write(("client_calls: expected a list of %s agents, got %s (%s)\n"):format(
    tostring(expected), type(first), type(first) == "table" and #first or ""))
  os.exit(1)
end
local count = #first
first = nil -- luacheck: ignore 311 (dropped before timing)

local now = core.now
local t0 = now()
for _ = 1, n do
  agents:list()
end
local t1 = now()
client:close()
print(("%.3f %d"):format((t1 - t0) * 1e6 / n, count))
