--- Where each client's API key lives: in a table with weak keys here, not
-- in the client table, so that printing or serializing a client never
-- shows it.

local setmetatable = setmetatable

local _M = {}

local keys = setmetatable({}, { __mode = "k" })

--- The client's API key, or nil.
function _M.get(client)
  return keys[client]
end

function _M.set(client, key)
  keys[client] = key
end

return _M
