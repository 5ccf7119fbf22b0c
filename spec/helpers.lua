-- Loaded by busted before any spec (see .busted). Points package.cpath at
-- the C core built for the running interpreter, so `busted --lua=lua5.4`
-- and `busted --lua=luajit` each load their own build/<runtime>/onecli/core.so.
local runtime
if rawget(_G, "jit") then
  runtime = "luajit"
else
  runtime = "lua" .. _VERSION:match("%d+%.%d+")
end

local build = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. runtime)
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
