-- The added latency of the socket-driven asynchronous transports, against
-- the blocking libcurl transport in the same process, on the local
-- stand-in (mode v2): in Neovim (nvim --headless, LuaJIT; the scenario
-- "latency" of spec/nvim/io_scenarios.lua) and on a plain luv loop under
-- lua5.1, LuaJIT and lua5.4 (spec/bench/luv_latency.lua). Interleaved
-- rounds; medians in ms. Prints, asserts nothing.
--   lua5.4 spec/bench/async_bench.lua [rounds]
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath

local launcher = require("onecli.standin.launcher")
local nvim = require("support.nvim")
local net = require("support.net")

local rounds = tonumber(arg[1] or "200")
local srv = launcher.start({ mode = "v2" })

local function row(host, n, blocking, async, added, p90)
  print(string.format("%-22s %6s %12s %12s %14s %10s", host, n, blocking, async, added, p90))
end
row("host", "calls", "blocking ms", "async ms", "added (med) ms", "added p90")

if nvim.available() then
  local pwd = io.popen("pwd"):read("*l")
  local runner = nvim.runner({ root = pwd, srv = srv })
  local ok, obs = pcall(runner.scenario, runner, "spec/nvim/io_scenarios.lua", "latency",
                        { ONECLI_NVIM_ROUNDS = tostring(rounds), ONECLI_NVIM_WATCHDOG = "120" })
  runner:cleanup()
  if ok then
    row("nvim --headless (0.7)", obs.rounds, ("%.3f"):format(obs.blocking_median),
        ("%.3f"):format(obs.async_median), ("%.3f"):format(obs.diff_median), "-")
  else
    print("nvim: " .. tostring(obs))
  end
end

for _, rt in ipairs({ "lua5.1", "luajit", "lua5.4" }) do
  if net.run_ok("command -v " .. rt .. " >/dev/null 2>&1") then
    local p = io.popen(table.concat({ rt, "spec/bench/luv_latency.lua",
      net.shell_quote(srv.url), net.shell_quote(srv.api_key), tostring(rounds), "2>&1" }, " "))
    local line = p:read("*a")
    p:close()
    local n, b, a, d, p90 = line:match("^(%d+) (%S+) (%S+) (%S+) (%S+)")
    if n then
      row("luv, " .. rt, n, b, a, d, p90)
    else
      print("luv, " .. rt .. ": " .. line)
    end
  end
end
srv:stop()
