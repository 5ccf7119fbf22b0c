-- Parser for the recorded server exchanges in ../shared/reference/captures.
--
-- Each capture file holds one request and its full response:
--
--   ### REQUEST\n<METHOD> <PATH>\n<headers, LF>\n\n<body>\n\n### RESPONSE\n
--   HTTP/1.1 <status> <reason>\r\n<headers, CRLF>\r\n\r\n<body>\n
--
-- The recorder appends one "\n" after the response body; it is removed here.

local _M = {}

local function find_root()
  local env = os.getenv("ONECLI_CAPTURES")
  if env then return env end
  for _, candidate in ipairs({
    "../shared/reference/captures",
    "../../shared/reference/captures",
  }) do
    local f = io.open(candidate .. "/README.md", "r")
    if f then f:close(); return candidate end
  end
  return nil
end

_M.root = find_root()

local function parse_headers(block)
  local list, map = {}, {}
  for line in block:gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      list[#list + 1] = { name, value }
      map[name:lower()] = value
    end
  end
  return list, map
end

function _M.parse(text)
  local req_part, resp_part = text:match("^### REQUEST\n(.-)\n### RESPONSE\n(.*)$")
  assert(req_part, "not a capture")
  local req_head, req_body = req_part:match("^(.-)\n\n(.*)$")
  if not req_head then req_head, req_body = req_part, "" end
  req_body = req_body:gsub("\n+$", "")
  local request_line, req_header_block = req_head:match("^([^\n]*)\n?(.*)$")
  local method, path = request_line:match("^(%u+) (%S+)")
  local _, req_headers = parse_headers(req_header_block)

  local resp_head, resp_body = resp_part:match("^(.-)\r?\n\r?\n(.*)$")
  if not resp_head then resp_head, resp_body = resp_part, "" end
  local status_line, resp_header_block = resp_head:match("^([^\r\n]*)\r?\n?(.*)$")
  local status, reason = status_line:match("^HTTP/%d%.?%d? (%d%d%d) ?(.*)$")
  local header_list, headers = parse_headers(resp_header_block)
  local length = tonumber(headers["content-length"] or "")
  if length then
    resp_body = resp_body:sub(1, length)
  else
    resp_body = resp_body:gsub("\n$", "", 1)
  end

  return {
    request = {
      method = method,
      path = path,
      headers = req_headers,
      body = req_body ~= "" and req_body or nil,
    },
    response = {
      status = tonumber(status),
      reason = reason,
      headers = headers,          -- names lower-cased
      header_list = header_list,  -- as recorded, in order
      body = resp_body,
    },
  }
end

-- All captures, sorted by version then name: { version=, name=, file=, request=, response= }.
-- versions: the directories to read (default: the two the client serves, not
-- v2.0.1-routes).
function _M.all(versions)
  assert(_M.root, "captures not found: set ONECLI_CAPTURES")
  local out = {}
  for _, version in ipairs(versions or { "v1.41.0", "v2.0.1" }) do
    local dir = _M.root .. "/" .. version
    local p = io.popen('ls "' .. dir .. '"')
    for name in p:lines() do
      if name:match("%.txt$") then
        local f = assert(io.open(dir .. "/" .. name, "rb"))
        local cap = _M.parse(f:read("*a"))
        f:close()
        cap.version, cap.name, cap.file = version, name:gsub("%.txt$", ""), dir .. "/" .. name
        out[#out + 1] = cap
      end
    end
    p:close()
  end
  return out
end

function _M.get(version, name)
  for _, cap in ipairs(_M.all({ version })) do
    if cap.version == version and cap.name == name then return cap end
  end
  error("no capture " .. version .. "/" .. name, 2)
end

return _M
