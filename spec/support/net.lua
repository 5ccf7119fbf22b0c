-- Helpers shared by the specs that talk to real sockets.
local socket = require("socket")
local process = require("onecli.standin.process")

local _M = {}

--- A free port on 127.0.0.1 with nothing listening on it.
function _M.closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- Shell commands and files: the stand-in's process helpers (run_ok,
-- shell_quote, read_file).
_M.run_ok = process.run_ok
_M.shell_quote = process.shell_quote
_M.read_file = process.read_file

function _M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

--- Calls fn every 50 ms until it returns true or timeout seconds pass
-- (bounded); returns its last answer.
function _M.wait_until(timeout, fn)
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    if fn() then return true end
    socket.sleep(0.05)
  end
  return fn()
end

--- Whether something accepts connections on 127.0.0.1:port.
function _M.listening(port)
  local s = socket.tcp()
  s:settimeout(0.2)
  local ok = s:connect("127.0.0.1", port)
  s:close()
  return ok ~= nil
end

--- How many requests the stand-in srv saw for a path (and method).
function _M.hits(srv, path, method)
  local n = 0
  for _, r in ipairs(srv:requests()) do
    if r.path == path and (method == nil or r.method == method) then n = n + 1 end
  end
  return n
end

--- Whether the object make() returns is closed when a `<close>`
-- variable holding it goes out of scope. Before Lua 5.4 calls the test's
-- pending(), which ends the test as pending.
function _M.closed_by_scope(make, pending)
  if _VERSION ~= "Lua 5.4" or rawget(_G, "jit") then
    pending("to-be-closed variables are Lua 5.4 only")
  end
  local chunk = assert(load([[
    local make = ...
    local kept
    do
      local obj <close> = make()
      kept = obj
    end
    return kept
  ]]))
  return chunk(make):is_closed()
end

return _M
