-- Background processes (the stand-in of onecli.testing, and the specs'
-- hostile server): whether one is alive, waiting with a bound, and
-- stopping it for sure.
local socket = require("onecli.standin.socket")

local _M = {}

--- The whole file, or nil if it cannot be read.
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")
  f:close()
  return data
end
_M.read_file = read_file

--- Single-quotes s for /bin/sh.
function _M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Whether a shell command succeeded (os.execute returns a number on Lua
-- 5.1/LuaJIT and true/nil from 5.2 on).
function _M.run_ok(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

--- Alive and not a zombie.
function _M.alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
  end
  if read_file("/proc/self/stat") then return false end
  return _M.run_ok("kill -0 " .. pid .. " 2>/dev/null")
end

--- Calls fn every 20 ms until it returns true or timeout seconds pass;
-- returns its last answer.
function _M.wait_until(timeout, fn)
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    if fn() then return true end
    socket.sleep(0.02)
  end
  return fn()
end

--- Stops process pid: ask() (a polite request, may be nil), then up to 3
-- s for it to go, then SIGTERM and 1 s, then SIGKILL.
function _M.stop(pid, ask)
  if ask and _M.alive(pid) then pcall(ask) end
  if _M.wait_until(3, function() return not _M.alive(pid) end) then return end
  _M.run_ok("kill " .. pid .. " 2>/dev/null")
  if not _M.wait_until(1, function() return not _M.alive(pid) end) then
    _M.run_ok("kill -9 " .. pid .. " 2>/dev/null")
  end
end

return _M
