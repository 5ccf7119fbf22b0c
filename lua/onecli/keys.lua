--- Where each client's API key lives: in a table with weak keys here, not
-- in the client table, so that printing or serializing a client never
-- shows it.

local setmetatable = setmetatable

local _M = {}

local keys = setmetatable({}, { __mode = "k" })
local bearers = setmetatable({}, { __mode = "k" })   -- client -> "Bearer <key>"

--- The client's API key, or nil.
function _M.get(client)
  return keys[client]
end

function _M.set(client, key)
  keys[client] = key
  bearers[client] = nil
end

--- The Authorization header value for the client's key ("Bearer <key>",
-- made once per key), or nil.
function _M.authorization(client)
  local value = bearers[client]
  if value == nil then
    local key = keys[client]
    if key == nil then
      return nil
    end
    value = "Bearer " .. key
    bearers[client] = value
  end
  return value
end

return _M
