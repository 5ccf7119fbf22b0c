-- Minimal raw HTTP/1.1 client on luasocket, for the launcher and the specs
-- (the project's own client is not used here on purpose). Every read and
-- write is bounded by a timeout.
--
--   local conn = client.connect("127.0.0.1", port, { timeout = 5 })
--   local res = conn:request({ method = "GET", path = "/v1/agents",
--                              headers = { { "Authorization", "Bearer …" } } })
--   -- res: { status, reason, headers (lower-case map), header_list, body, raw_body }
--   conn:close()
--   client.request(port, opts)  -- one-shot, Connection: close
local socket = require("onecli.standin.socket")

local _M = {}
local Conn = {}
Conn.__index = Conn

local concat, format, tonumber, ipairs, pairs, next = table.concat, string.format, tonumber, ipairs, pairs, next
local gettime, setmetatable = socket.gettime, setmetatable

function _M.connect(host, port, opts)
  opts = opts or {}
  local sock = socket.tcp()
  local timeout = opts.timeout or 5
  sock:settimeout(timeout)
  local ok, err = sock:connect(host or "127.0.0.1", port)
  if not ok then sock:close(); return nil, err end
  sock:setoption("tcp-nodelay", true)
  return setmetatable({ sock = sock, timeout = timeout, host = host or "127.0.0.1", port = port }, Conn)
end

function Conn:close()
  if self.sock then self.sock:close(); self.sock = nil end
end

function Conn:send_raw(bytes)
  local _, err = self.sock:send(bytes)
  return err == nil, err
end

local function header_list(headers)
  if headers == nil then return {} end
  if headers[1] ~= nil or next(headers) == nil then return headers end
  local list = {}
  for k, v in pairs(headers) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function has_header(list, name)
  for _, h in ipairs(list) do
    if h[1]:lower() == name then return true end
  end
  return false
end

-- Serialize a request. opts: method, path, headers (list of {n, v} or map),
-- body (string), chunked (send the body in chunks of this size or true = 3
-- chunks), keepalive (default true), host.
function _M.build_request(opts, host_header)
  local headers = header_list(opts.headers)
  local lines = { format("%s %s HTTP/1.1", opts.method or "GET", opts.path or "/") }
  if not has_header(headers, "host") then lines[#lines + 1] = "Host: " .. host_header end
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  if opts.keepalive == false and not has_header(headers, "connection") then
    lines[#lines + 1] = "Connection: close"
  end
  local body = opts.body
  if body and opts.chunked then
    lines[#lines + 1] = "Transfer-Encoding: chunked"
    local size = opts.chunked == true and math.max(1, math.ceil(#body / 3)) or opts.chunked
    local parts = {}
    for i = 1, #body, size do
      local piece = body:sub(i, i + size - 1)
      parts[#parts + 1] = format("%x\r\n%s\r\n", #piece, piece)
    end
    parts[#parts + 1] = "0\r\n\r\n"
    return concat(lines, "\r\n") .. "\r\n\r\n" .. concat(parts)
  end
  if body and not has_header(headers, "content-length") then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

function Conn:receive(pattern, deadline)
  if gettime() > deadline then return nil, "timeout" end
  local data, err, partial = self.sock:receive(pattern)
  if not data then return nil, err, partial end
  return data
end

function Conn:read_chunked(deadline)
  local parts = {}
  while true do
    local line, err = self:receive("*l", deadline)
    if not line then return nil, err end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk size line: " .. line end
    if size == 0 then
      repeat
        line, err = self:receive("*l", deadline)
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    local data
    data, err = self:receive(size, deadline)
    if not data then return nil, err end
    parts[#parts + 1] = data
    self:receive("*l", deadline)
  end
end

function Conn:read_head(deadline)
  local status_line, err = self:receive("*l", deadline)
  if not status_line then return nil, err end
  local status, reason = status_line:match("^HTTP/%d%.%d (%d%d%d) ?(.*)$")
  if not status then return nil, "bad status line: " .. status_line end
  local res = { status = tonumber(status), reason = reason, headers = {}, header_list = {} }
  while true do
    local line
    line, err = self:receive("*l", deadline)
    if not line then return nil, err end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      res.header_list[#res.header_list + 1] = { name, value }
      local lname = name:lower()
      res.headers[lname] = res.headers[lname] and (res.headers[lname] .. ", " .. value) or value
    end
  end
  return res
end

-- Read one response (skipping 1xx). method: the request method (HEAD has no body).
function Conn:read_response(method, timeout)
  local deadline = gettime() + (timeout or self.timeout)
  local res, err
  repeat
    res, err = self:read_head(deadline)
    if not res then return nil, err end
  until res.status >= 200
  local h = res.headers
  if method == "HEAD" or res.status == 204 or res.status == 304 then
    res.body = ""
  elseif h["transfer-encoding"] and h["transfer-encoding"]:lower():find("chunked", 1, true) then
    res.body, err = self:read_chunked(deadline)
  elseif h["content-length"] then
    local n = tonumber(h["content-length"])
    res.body, err = n > 0 and self:receive(n, deadline) or "", nil
  else
    local data, e, partial = self:receive("*a", deadline)
    res.body, err = data or partial, (e ~= "closed" and e or nil)
  end
  if res.body == nil then return nil, err end
  return res
end

function Conn:request(opts)
  local ok, err = self:send_raw(_M.build_request(opts, self.host .. ":" .. self.port))
  if not ok then return nil, err end
  return self:read_response(opts.method, opts.timeout)
end

-- One-shot request on a fresh connection. opts as Conn:request plus timeout, host.
function _M.request(port, opts)
  local conn, err = _M.connect(opts.host, port, { timeout = opts.timeout })
  if not conn then return nil, err end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  if copy.keepalive == nil then copy.keepalive = false end
  local res
  res, err = conn:request(copy)
  conn:close()
  return res, err
end

return _M
