-- HTTP/1.1 wire format for the stand-in: an incremental request parser
-- (Content-Length and chunked bodies, Expect: 100-continue, size limits) and
-- a response serializer that mirrors the header sets of the recorded servers:
--
--   v1: Next.js (v1.41.0)  vary: rsc…, chunked bodies, Keep-Alive: timeout=5
--   v2: Hono/Node (v2.0.1) access-control-allow-credentials, vary: Origin,
--       x-request-id, content-length, Keep-Alive: timeout=70
--   gateway: axum/hyper   content-type, content-length, date; no
--       Connection header while the connection stays open
local util = require("onecli.standin.util")

local _M = {}

local concat, format, tonumber, ipairs = table.concat, string.format, tonumber, ipairs

_M.MAX_HEAD = 64 * 1024
-- above v2's largest upload (attachments: 10 MiB), so that the routes
-- answer their own 413s (images: 1 MiB)
_M.MAX_BODY = 11 * 1024 * 1024
_M.KEEPALIVE = { v1 = 5, v2 = 70, control = 5, gateway = 90 }

_M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [304] = "Not Modified",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [407] = "Proxy Authentication Required", [408] = "Request Timeout",
  [409] = "Conflict", [410] = "Gone",
  [413] = "Payload Too Large", [415] = "Unsupported Media Type", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

function _M.reason(status)
  return _M.REASONS[status] or "Unknown"
end

------------------------------------------------------------------------------
-- Request parsing
------------------------------------------------------------------------------

local function parse_head(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local method, target, major, minor = (lines[1] or ""):match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return nil, "bad request line" end
  local headers, list = {}, {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "bad header line" end
    local lname = name:lower()
    list[#list + 1] = { lname, value }
    headers[lname] = headers[lname] and (headers[lname] .. ", " .. value) or value
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  return {
    method = method, target = target, version = major .. "." .. minor,
    path = path, query_raw = target:find("?", 1, true) and query or nil,
    headers = headers, header_list = list,
  }
end

local function wants_keepalive(head)
  local conn = (head.headers.connection or ""):lower()
  if conn:find("close", 1, true) then return false end
  if head.version == "1.0" then return conn:find("keep-alive", 1, true) ~= nil end
  return true
end

-- Decode a complete chunked body at the start of buf.
-- Returns body, rest | nil (incomplete) | false, status (error).
local function take_chunked(buf)
  local parts, pos, total = {}, 1, 0
  while true do
    local line_end = buf:find("\r\n", pos, true)
    if not line_end then
      if #buf - pos > 1024 then return false, 400 end
      return nil
    end
    local size = tonumber(buf:sub(pos, line_end - 1):match("^%s*(%x+)"), 16)
    if not size then return false, 400 end
    pos = line_end + 2
    if size == 0 then
      -- optional trailers, ended by an empty line
      local trailer_end = buf:find("\r\n", pos, true)
      while trailer_end and trailer_end ~= pos do
        pos = trailer_end + 2
        trailer_end = buf:find("\r\n", pos, true)
      end
      if not trailer_end then return nil end
      return concat(parts), buf:sub(trailer_end + 2)
    end
    total = total + size
    if total > _M.MAX_BODY then return false, 413 end
    if #buf < pos + size + 1 then return nil end
    parts[#parts + 1] = buf:sub(pos, pos + size - 1)
    if buf:sub(pos + size, pos + size + 1) ~= "\r\n" then return false, 400 end
    pos = pos + size + 2
  end
end

-- Also what the gateway's forward proxy (onecli.standin.proxy) decodes an
-- upstream's chunked answer with.
_M.take_chunked = take_chunked

local function take_head(conn)
  local buf = conn.inbuf
  local s, e = buf:find("\r?\n\r?\n")
  if not s then
    if #buf > _M.MAX_HEAD then return false, 431 end
    return nil
  end
  if s > _M.MAX_HEAD then return false, 431 end
  local head, err = parse_head(buf:sub(1, s - 1))
  if not head then return false, 400, err end
  conn.inbuf = buf:sub(e + 1)
  head.keepalive = wants_keepalive(head)
  local te = head.headers["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    head.chunked = true
  elseif head.headers["content-length"] then
    local n = head.headers["content-length"]:match("^%d+$") and tonumber(head.headers["content-length"])
    if not n then return false, 400, "bad content-length" end
    if n > _M.MAX_BODY then return false, 413 end
    head.length = n
  else
    head.length = 0
  end
  conn.head = head
  return head
end

-- Try to take one complete request from conn.inbuf.
-- Returns:
--   request                     a complete request (body = string or nil)
--   nil, "continue"             send "100 Continue" now (once), then wait
--   nil                         need more data
--   false, status               protocol error; answer status and close
function _M.take_request(conn)
  local head = conn.head
  if not head then
    local res, status = take_head(conn)
    if res == false then return false, status end
    if not res then return nil end
    head = res
  end
  local body
  if head.chunked then
    local b, rest = take_chunked(conn.inbuf)
    if b == false then return false, rest end
    if b == nil then return _M.need_body(head) end
    body, conn.inbuf = b, rest
  else
    if #conn.inbuf < head.length then return _M.need_body(head) end
    body = conn.inbuf:sub(1, head.length)
    conn.inbuf = conn.inbuf:sub(head.length + 1)
  end
  conn.head = nil
  head.body = (body ~= "" or head.chunked or head.length > 0) and body or nil
  return head
end

function _M.need_body(head)
  local expect = (head.headers.expect or ""):lower()
  if expect == "100-continue" and not head.continued then
    head.continued = true
    return nil, "continue"
  end
  return nil
end

_M.CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n"

------------------------------------------------------------------------------
-- Response serialization
------------------------------------------------------------------------------

local V1_VARY = "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch"

local function add(lines, name, value) lines[#lines + 1] = name .. ": " .. value end

local function add_all(lines, headers)
  for _, h in ipairs(headers or {}) do add(lines, h[1], h[2]) end
end

local function connection_headers(lines, mode, keepalive)
  add(lines, "Date", util.http_date())
  if keepalive then
    add(lines, "Connection", "keep-alive")
    add(lines, "Keep-Alive", "timeout=" .. _M.KEEPALIVE[mode])
  else
    add(lines, "Connection", "close")
  end
end

local function build_v1(reply, opts, lines)
  local body = reply.body
  local chunked = body ~= nil and opts.version ~= "1.0"
  if reply.prelude then
    add_all(lines, reply.prelude)
  else
    add(lines, "vary", reply.vary or V1_VARY)
    add_all(lines, reply.headers)
    if body ~= nil then add(lines, "content-type", reply.ctype or "application/json") end
  end
  connection_headers(lines, "v1", opts.keepalive)
  if chunked then
    add(lines, "Transfer-Encoding", "chunked")
  elseif body ~= nil then
    add(lines, "Content-Length", #body)
  elseif reply.status ~= 204 and reply.status ~= 304 then
    add(lines, "Content-Length", "0")
  end
  return chunked
end

local function build_v2(reply, opts, lines)
  local body = reply.body
  add(lines, "access-control-allow-credentials", "true")
  if reply.status == 204 then
    add_all(lines, reply.headers)
    add(lines, "vary", reply.vary or "Origin")
    if not reply.no_request_id then add(lines, "x-request-id", util.uuid4()) end
    add(lines, "content-type", "text/plain; charset=UTF-8")
  else
    if body ~= nil then add(lines, "content-type", reply.ctype or "application/json") end
    add_all(lines, reply.headers)
    if opts.deprecation then
      add(lines, "deprecation", "true")
      add(lines, "link", '<https://onecli.sh/docs/api-reference>; rel="deprecation"')
    end
    add(lines, "vary", reply.vary or "Origin")
    if not reply.no_request_id then add(lines, "x-request-id", util.uuid4()) end
    -- reply.chunked: the body goes out chunked (GET /favicon's empty 400)
    if not reply.chunked then add(lines, "content-length", body and #body or 0) end
  end
  connection_headers(lines, "v2", opts.keepalive)
  if reply.chunked then add(lines, "Transfer-Encoding", "chunked") end
  return reply.chunked == true
end

local function build_control(reply, opts, lines)
  local body = reply.body
  if body ~= nil then add(lines, "content-type", reply.ctype or "application/json") end
  add_all(lines, reply.headers)
  if reply.status ~= 204 then add(lines, "content-length", body and #body or 0) end
  connection_headers(lines, "control", opts.keepalive)
  return false
end

local function build_gateway(reply, opts, lines)
  local body = reply.body
  if body ~= nil and reply.ctype then add(lines, "content-type", reply.ctype) end
  add_all(lines, reply.headers)
  if reply.status ~= 204 then add(lines, "content-length", body and #body or 0) end
  add(lines, "date", util.http_date())
  if not opts.keepalive then add(lines, "connection", "close") end
  return false
end

local BUILDERS = { v1 = build_v1, v2 = build_v2, control = build_control, gateway = build_gateway }

-- opts: { mode = "v1"|"v2"|"control"|"gateway", keepalive = bool, version = "1.1",
--         method = "GET", deprecation = bool }
function _M.serialize(reply, opts)
  local lines = { format("HTTP/1.1 %d %s", reply.status, reply.reason or _M.reason(reply.status)) }
  local chunked = BUILDERS[opts.mode](reply, opts, lines)
  local head = concat(lines, "\r\n") .. "\r\n\r\n"
  local body = reply.body
  if body == nil or opts.method == "HEAD" or reply.status == 204 or reply.status == 304 then
    if chunked and opts.method ~= "HEAD" then return head .. "0\r\n\r\n" end
    return head
  end
  if chunked then
    if body == "" then return head .. "0\r\n\r\n" end
    return head .. format("%x\r\n", #body) .. body .. "\r\n0\r\n\r\n"
  end
  return head .. body
end

return _M
