--- Server-sent events (text/event-stream, WHATWG HTML "Server-sent
-- events"), as the v2 transcript stream sends them: parses a whole
-- stream body into a list of events { id =, event =, data = }. `data` is
-- JSON-decoded when it is a JSON object or array, the text otherwise;
-- `event` defaults to "message"; `id` is the last id seen (SSE keeps it
-- across events), nil before the first. Comment lines (":") are skipped,
-- and an event without data is not dispatched, as a browser does.

local core = require("onecli.core")

local concat, type, pcall = table.concat, type, pcall
local json_decode = core.json_decode

local _M = {}

local function value_of(data)
  local first = data:match("^%s*(.)")
  if first == "{" or first == "[" then
    local ok, decoded = pcall(json_decode, data)
    if ok and type(decoded) == "table" then
      return decoded
    end
  end
  return data
end

function _M.parse(body)
  local events = {}
  local last_id, event, data = nil, nil, nil
  -- lines end with CRLF, LF or CR; a trailing line without an end is
  -- incomplete and dropped
  body = body:gsub("\r\n", "\n"):gsub("\r", "\n")
  for line in body:gmatch("([^\n]*)\n") do
    if line == "" then
      if data then
        events[#events + 1] = { id = last_id, event = event or "message", data = value_of(concat(data, "\n")) }
      end
      event, data = nil, nil
    elseif line:sub(1, 1) ~= ":" then
      local field, value = line:match("^([^:]*):? ?(.*)$")
      if field == "data" then
        data = data or {}
        data[#data + 1] = value
      elseif field == "event" then
        event = value
      elseif field == "id" and not value:find("%z") then
        last_id = value
      end
    end
  end
  return events
end

return _M
