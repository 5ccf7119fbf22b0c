-- Helpers shared by the specs that talk to real sockets.
local socket = require("socket")

local _M = {}

--- A free port on 127.0.0.1 with nothing listening on it.
function _M.closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
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
