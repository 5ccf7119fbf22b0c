-- A hostile HTTP server for the specs: raw luasocket on 127.0.0.1 that
-- misbehaves on purpose, one named fault at a time, and counts what it
-- received.
--
--   lua5.4 spec/hostile/server.lua --port-file FILE [--host 127.0.0.1]
--       [--port 0] [--control-port 0] [--max-lifetime 300] [--quiet]
--
-- Two listeners. The HOSTILE port answers OneCLI-like paths (/v1/agents,
-- /v1/agents/ID, /v1/secrets, ...) as the current fault says. The CONTROL
-- port speaks a line protocol: one command line per connection, answered
-- with lines and a final "END" line (never counted):
--
--   FAULT <scope> <name>   scope: "*" (every request) or an exact path
--                          ("/v1/secrets"); faults of the accept stage only
--                          apply with scope "*" (no path is known yet)
--   RESET                  zero the counters (connections stay open; every
--                          fault goes back to "ok")
--   DROP                   close every open hostile connection
--   STATS                  total N / accepted N / verb GET N /
--                          conn ID PEERPORT REQUESTS new|old /
--                          tag TAG N / path METHOD PATH N
--   FAULTS                 fault NAME STAGE (every fault this server knows)
--   PING, STOP
--
-- A request counts when its whole request head has been read, before the
-- server misbehaves (faults of the accept stage close before reading, so
-- nothing is counted for them). Requests may carry "X-Hostile-Tag: T" to be
-- counted per tag too (client:batch calls).
--
-- The port file gets "HOSTILEPORT CONTROLPORT" once both listen. The
-- server exits on STOP or after --max-lifetime seconds. Connections are
-- coroutines over one socket.select loop, so many are served at once.
-- Runs on Lua 5.1-5.4 and LuaJIT (no yield across pcall).

local socket = require("socket")

local gettime, select = socket.gettime, socket.select
local format, rep, concat = string.format, string.rep, table.concat
local tonumber, tostring, pairs, ipairs = tonumber, tostring, pairs, ipairs
local yield, resume, create, status = coroutine.yield, coroutine.resume, coroutine.create,
                                      coroutine.status

---------------------------------------------------------------------------
-- options

local opts = { host = "127.0.0.1", port = 0, control_port = 0, max_lifetime = 300 }
do
  local names = {
    ["--host"] = "host", ["--port"] = "port", ["--control-port"] = "control_port",
    ["--port-file"] = "port_file", ["--max-lifetime"] = "max_lifetime",
  }
  local argv = arg or {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--quiet" then
      opts.quiet = true
      i = i + 1
    elseif names[a] and argv[i + 1] then
      opts[names[a]] = argv[i + 1]
      i = i + 2
    else
      io.stderr:write("hostile server: bad argument ", tostring(a), "\n")
      os.exit(2)
    end
  end
  opts.port = tonumber(opts.port)
  opts.control_port = tonumber(opts.control_port)
  opts.max_lifetime = tonumber(opts.max_lifetime)
  if not (opts.port and opts.control_port and opts.max_lifetime) then
    io.stderr:write("hostile server: --port, --control-port and --max-lifetime take numbers\n")
    os.exit(2)
  end
end

local function log(...)
  if not opts.quiet then
    io.stderr:write("hostile: ", concat({ ... }, " "), "\n")
  end
end

local deadline = gettime() + opts.max_lifetime
local stopping = false

-- How long a connection is kept at most by the faults that wait for the
-- client to give up (stall, drip): the client's timeout ends them first.
local HOLD_LIMIT = 60
-- How long a clean close (FIN) waits for the peer to close its side.
local FIN_LINGER = 5
local MAX_HEAD = 64 * 1024
local MAX_LOG = 5000

---------------------------------------------------------------------------
-- the scheduler: every connection is a coroutine; it yields
--   "read", sock[, until]   wait until sock is readable (or the time)
--   "write", sock           wait until sock is writable
--   "sleep", until          wait until the time
-- and is resumed with "ready" or "timeout".

local readers, writers, sleepers = {}, {}, {}
local tasks = {}            -- every live task (task -> true)

-- the error a connection task ends with when its peer went away
local CLOSED = setmetatable({}, { __tostring = function() return "closed" end })

local function unregister(task)
  if task.wait_sock then
    readers[task.wait_sock] = nil
    writers[task.wait_sock] = nil
    task.wait_sock = nil
  end
  sleepers[task] = nil
end

local function finish(task, err)
  unregister(task)
  tasks[task] = nil
  task.dead = true
  if task.conn then task.conn:close() end
  if err ~= nil and err ~= CLOSED then
    log("task failed:", tostring(err))
  end
end

local function run(task, ...)
  if task.dead then return end
  local ok, what, a, b = resume(task.co, ...)
  if not ok then return finish(task, what) end
  if status(task.co) == "dead" then return finish(task) end
  if what == "read" then
    readers[a] = task
    task.wait_sock = a
    if b then sleepers[task] = b end
  elseif what == "write" then
    writers[a] = task
    task.wait_sock = a
  elseif what == "sleep" then
    sleepers[task] = a
  else
    finish(task, "bad yield " .. tostring(what))
  end
end

local function spawn(fn, conn)
  local task = { co = create(fn), conn = conn }
  tasks[task] = true
  run(task, conn)
  return task
end

---------------------------------------------------------------------------
-- connections

local Conn = {}
Conn.__index = Conn

local next_id = 0

local function new_conn(sock, kind)
  sock:settimeout(0)
  sock:setoption("tcp-nodelay", true)
  local _, port = sock:getpeername()
  next_id = next_id + 1
  return setmetatable({
    sock = sock, buf = "", id = next_id, port = tonumber(port) or 0,
    served = 0, kind = kind,
  }, Conn)
end

function Conn:close()
  if not self.closed then
    self.closed = true
    self.sock:close()
  end
end

-- Reads what is there into the buffer, waiting for at least one byte.
-- Raises CLOSED at end of stream. With `limit` (a time), returns false
-- when nothing came by then.
function Conn:fill(limit)
  while true do
    local data, err, partial = self.sock:receive(65536)
    local chunk = data or partial
    if chunk and chunk ~= "" then
      self.buf = self.buf .. chunk
      return true
    end
    if err ~= "timeout" then error(CLOSED, 0) end
    if limit and gettime() >= limit then return false end
    yield("read", self.sock, limit)
  end
end

-- Waits until the socket is readable, reading nothing.
function Conn:wait_readable()
  yield("read", self.sock)
end

function Conn:send(data)
  local i, n = 1, #data
  while i <= n do
    local last, err, partial = self.sock:send(data, i)
    if last then
      i = last + 1
    else
      if err ~= "timeout" then error(CLOSED, 0) end
      i = (partial or (i - 1)) + 1
      if i <= n then yield("write", self.sock) end
    end
  end
end

function Conn.sleep(_, seconds)
  yield("sleep", gettime() + seconds)
end

-- A clean close: FIN, then wait (bounded) for the peer to close its side,
-- reading and dropping what it sends, so that no unread data turns the
-- close into a reset.
function Conn:fin()
  self.sock:shutdown("send")
  local limit = gettime() + FIN_LINGER
  self.buf = ""
  while gettime() < limit do
    local data, err, partial = self.sock:receive(65536)
    if err and err ~= "timeout" then break end
    if not (data or (partial and partial ~= "")) then
      yield("read", self.sock, limit)
    end
  end
  self:close()
  return "close"
end

-- A reset: SO_LINGER on with a zero timeout, then close sends RST.
function Conn:rst()
  self.sock:setoption("linger", { on = true, timeout = 0 })
  self:close()
  return "close"
end

-- Keeps the connection open without answering until the peer closes it
-- (or HOLD_LIMIT), dropping what it sends.
function Conn:hold()
  local limit = gettime() + HOLD_LIMIT
  while gettime() < limit do
    self.buf = ""
    self:fill(limit)
  end
  return self:fin()
end

function Conn:read_line(max)
  while true do
    local s = self.buf:find("\n", 1, true)
    if s then
      local line = self.buf:sub(1, s - 1):gsub("\r$", "")
      self.buf = self.buf:sub(s + 1)
      return line
    end
    if #self.buf > max then error(CLOSED, 0) end
    self:fill()
  end
end

---------------------------------------------------------------------------
-- counting

local stats

local function reset_stats()
  stats = { total = 0, accepted = 0, verbs = {}, conns = {}, conn_order = {}, tags = {},
            paths = {}, log = {} }
end
reset_stats()

local function conn_stats(conn, new)
  local s = stats.conns[conn.id]
  if not s then
    s = { id = conn.id, port = conn.port, requests = 0, new = new }
    stats.conns[conn.id] = s
    stats.conn_order[#stats.conn_order + 1] = s
  end
  return s
end

local function on_accept(conn)
  stats.accepted = stats.accepted + 1
  conn_stats(conn, true)
end

local function count(conn, req)
  stats.total = stats.total + 1
  stats.verbs[req.method] = (stats.verbs[req.method] or 0) + 1
  local s = conn_stats(conn, false)
  s.requests = s.requests + 1
  local tag = req.headers["x-hostile-tag"]
  if tag then stats.tags[tag] = (stats.tags[tag] or 0) + 1 end
  local key = req.method .. " " .. req.path
  stats.paths[key] = (stats.paths[key] or 0) + 1
  if #stats.log < MAX_LOG then
    stats.log[#stats.log + 1] = format("%d %s %s", conn.id, req.method, req.path)
  end
end

---------------------------------------------------------------------------
-- HTTP

-- Reads one request head; counts it. Raises CLOSED on a malformed head.
function Conn:read_head()
  local stop
  while true do
    stop = self.buf:find("\r\n\r\n", 1, true)
    if stop then break end
    if #self.buf > MAX_HEAD then error(CLOSED, 0) end
    self:fill()
  end
  local head = self.buf:sub(1, stop - 1)
  self.buf = self.buf:sub(stop + 4)
  local first = head:match("^[^\r\n]*")
  local method, target, version = first:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
  if not method then error(CLOSED, 0) end
  local headers = {}
  for line in head:sub(#first + 3):gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local req = {
    method = method, target = target, path = target:match("^[^?]*"), version = version,
    headers = headers,
  }
  count(self, req)
  return req
end

-- Reads the request body (Content-Length or chunked) once.
function Conn:read_body(req)
  if req.body then return req.body end
  if (req.headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    while not self.buf:find("\r\n0\r\n\r\n", 1, true) and self.buf:sub(1, 5) ~= "0\r\n\r\n" do
      if #self.buf > 16 * 1024 * 1024 then error(CLOSED, 0) end
      self:fill()
    end
    local s, e = self.buf:find("0\r\n\r\n", 1, true)
    req.body = self.buf:sub(1, s - 1)
    self.buf = self.buf:sub(e + 1)
    return req.body
  end
  local n = tonumber(req.headers["content-length"] or "0") or 0
  while #self.buf < n do self:fill() end
  req.body = self.buf:sub(1, n)
  self.buf = self.buf:sub(n + 1)
  return req.body
end

local REASONS = {
  [100] = "Continue", [102] = "Processing", [103] = "Early Hints",
  [200] = "OK", [201] = "Created", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [401] = "Unauthorized", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [503] = "Service Unavailable",
}

-- The head of a response: status line and headers (a list of "Name: v").
local function head(code, headers)
  local lines = { format("HTTP/1.1 %d %s", code, REASONS[code] or "Whatever") }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  return concat(lines, "\r\n") .. "\r\n\r\n"
end

-- A well-formed response with Content-Length and keep-alive.
local function response(code, body, extra)
  local headers = { "Content-Type: application/json", "Content-Length: " .. #body,
                    "Connection: keep-alive" }
  for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
  return head(code, headers) .. body
end

-- What a OneCLI server would answer on success.
local function normal_body(req)
  if req.method == "GET" and (req.path == "/v1/agents" or req.path == "/v1/secrets") then
    return '[{"id":"a1","name":"n","identifier":"i"}]'
  end
  return '{"id":"a1","name":"n","identifier":"i"}'
end

local function normal(req)
  return response(200, normal_body(req))
end

local function after_answer(req)
  if (req.headers.connection or ""):lower() == "close" then return "close" end
  return "next"
end

-- Answers normally (keep-alive).
local function serve_normally(c, req)
  c:read_body(req)
  c:send(normal(req))
  return after_answer(req)
end

---------------------------------------------------------------------------
-- the faults: name -> { stage = "accept" | "request", run = fn(c, req) }
-- run returns "next" to read the next request on the connection; anything
-- else ends it (closed by fin/rst, or cleanly by the task's end).

local faults = {}
local fault_order = {}

local function fault(name, stage, fn)
  faults[name] = { name = name, stage = stage, run = fn }
  fault_order[#fault_order + 1] = name
end

-- the port the hostile listener is bound to (for Location headers)
local hostile_port

fault("ok", "request", serve_normally)

-- reset/close at each stage
fault("accept_fin", "accept", function(c) return c:fin() end)
fault("accept_rst", "accept", function(c) return c:rst() end)
fault("head_fin", "request", function(c) return c:fin() end)
fault("head_rst", "request", function(c) return c:rst() end)
fault("body_fin", "request", function(c, req) c:read_body(req); return c:fin() end)
fault("body_rst", "request", function(c, req) c:read_body(req); return c:rst() end)
fault("status_fin", "request", function(c, req)
  c:read_body(req); c:send("HTTP/1.1 200 OK\r\n"); return c:fin()
end)
fault("status_rst", "request", function(c, req)
  c:read_body(req); c:send("HTTP/1.1 200 OK\r\n"); return c:rst()
end)
local HALF_HEADERS = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le"
fault("headers_fin", "request", function(c, req)
  c:read_body(req); c:send(HALF_HEADERS); return c:fin()
end)
fault("headers_rst", "request", function(c, req)
  c:read_body(req); c:send(HALF_HEADERS); return c:rst()
end)
local SHORT_BODY = head(200, { "Content-Type: application/json", "Content-Length: 100",
                               "Connection: keep-alive" }) .. '{"id":"a1","name":'
fault("midbody_fin", "request", function(c, req)
  c:read_body(req); c:send(SHORT_BODY); return c:fin()
end)
fault("midbody_rst", "request", function(c, req)
  c:read_body(req); c:send(SHORT_BODY); return c:rst()
end)

-- stalls and drips (the client's timeout ends them)
fault("stall", "request", function(c, req) c:read_body(req); return c:hold() end)
fault("stall_body", "request", function(c, req)
  c:read_body(req)
  c:send(head(200, { "Content-Type: application/json", "Content-Length: 100",
                     "Connection: keep-alive" }))
  return c:hold()
end)
fault("drip", "request", function(c, req)
  c:read_body(req)
  local data = normal(req)
  local limit = gettime() + HOLD_LIMIT
  for i = 1, #data do
    if gettime() > limit then break end
    c:send(data:sub(i, i))
    c:sleep(0.15)
  end
  return after_answer(req)
end)

-- not HTTP
fault("http09", "request", function(c, req)
  c:read_body(req); c:send('{"ok":true}'); return c:fin()
end)
fault("garbage", "request", function(c, req)
  c:read_body(req); c:send("hello\r\n"); return c:fin()
end)
fault("status_abc", "request", function(c, req)
  c:read_body(req)
  c:send('HTTP/1.1 abc OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}')
  return c:fin()
end)
fault("status_proto", "request", function(c, req)
  c:read_body(req)
  c:send('FOO/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}')
  return c:fin()
end)
fault("status_999", "request", function(c, req)
  c:read_body(req)
  c:send(head(999, { "Content-Type: application/json", "Content-Length: 17",
                     "Connection: keep-alive" }) .. '{"error":"weird"}')
  return after_answer(req)
end)

-- duplicate or contradictory framing
fault("dup_length", "request", function(c, req)
  c:read_body(req)
  local body = normal_body(req)
  c:send(head(200, { "Content-Type: application/json", "Content-Length: " .. #body,
                     "Content-Length: " .. (#body - 5), "Connection: keep-alive" }) .. body)
  return c:fin()
end)
local function chunked(body, size)
  local parts = {}
  for i = 1, #body, size do
    local piece = body:sub(i, i + size - 1)
    parts[#parts + 1] = format("%x\r\n%s\r\n", #piece, piece)
  end
  parts[#parts + 1] = "0\r\n\r\n"
  return concat(parts)
end
fault("length_and_chunked", "request", function(c, req)
  c:read_body(req)
  local body = normal_body(req)
  c:send(head(200, { "Content-Type: application/json", "Content-Length: 5",
                     "Transfer-Encoding: chunked", "Connection: keep-alive" })
         .. chunked(body, 7))
  return c:fin()
end)
fault("bad_chunk_size", "request", function(c, req)
  c:read_body(req)
  c:send(head(200, { "Content-Type: application/json", "Transfer-Encoding: chunked",
                     "Connection: keep-alive" }) .. "zz\r\n{\"id\":\"a1\"}\r\n0\r\n\r\n")
  return c:fin()
end)
fault("truncated_chunked", "request", function(c, req)
  c:read_body(req)
  c:send(head(200, { "Content-Type: application/json", "Transfer-Encoding: chunked",
                     "Connection: keep-alive" }) .. "ff\r\n{\"id\":\"a1\",\"name\":")
  return c:fin()
end)
-- the body runs past Content-Length into a second, unasked-for response;
-- the connection stays open and the next request is answered normally
local SMUGGLED = response(200, '{"smuggled":true}')
fault("length_excess", "request", function(c, req)
  c:read_body(req)
  c:send(normal(req) .. SMUGGLED)
  return "next"
end)
-- the same, the extra response arriving a little after the first
fault("late_extra", "request", function(c, req)
  c:read_body(req)
  c:send(normal(req))
  c:sleep(0.05)
  c:send(SMUGGLED)
  return "next"
end)

-- oversize
fault("huge_header_line", "request", function(c, req)
  c:read_body(req)
  local body = normal_body(req)
  c:send(head(200, { "Content-Type: application/json", "X-Big: " .. rep("a", 200 * 1024),
                     "Content-Length: " .. #body, "Connection: keep-alive" }) .. body)
  return c:fin()
end)
fault("huge_headers", "request", function(c, req)
  c:read_body(req)
  local body = normal_body(req)
  local headers = { "Content-Type: application/json" }
  local line = rep("b", 1000)
  for i = 1, 2048 do headers[#headers + 1] = format("X-Pad-%d: %s", i, line) end
  headers[#headers + 1] = "Content-Length: " .. #body
  headers[#headers + 1] = "Connection: keep-alive"
  c:send(head(200, headers) .. body)
  return c:fin()
end)
-- 2 MB bodies (the specs use a transport with a 1 MB max_response_size)
local function big_json()
  return '{"pad":"' .. rep("x", 2 * 1024 * 1024) .. '"}'
end
fault("huge_body", "request", function(c, req)
  c:read_body(req)
  c:send(response(200, big_json()))
  return after_answer(req)
end)
fault("huge_body_chunked", "request", function(c, req)
  c:read_body(req)
  c:send(head(200, { "Content-Type: application/json", "Transfer-Encoding: chunked",
                     "Connection: keep-alive" }) .. chunked(big_json(), 16384))
  return after_answer(req)
end)

-- redirects, to another path and to another host (localhost: the same
-- server under another name, so a followed redirect would be counted)
for _, code in ipairs({ 301, 302, 307, 308 }) do
  fault("redirect_" .. code .. "_path", "request", function(c, req)
    c:read_body(req)
    c:send(response(code, '{"moved":true}', { "Location: /v1/elsewhere" }))
    return after_answer(req)
  end)
  fault("redirect_" .. code .. "_host", "request", function(c, req)
    c:read_body(req)
    c:send(response(code, '{"moved":true}',
                    { "Location: http://localhost:" .. hostile_port .. "/v1/elsewhere" }))
    return after_answer(req)
  end)
end

-- 1xx before the answer
fault("info_then_ok", "request", function(c, req)
  c:read_body(req)
  c:send("HTTP/1.1 100 Continue\r\n\r\n" .. "HTTP/1.1 102 Processing\r\n\r\n"
         .. "HTTP/1.1 102 Processing\r\n\r\n" .. "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
         .. normal(req))
  return after_answer(req)
end)
-- 3000 interim answers (78 KB) fit in libcurl's 300 KB limit on the
-- response head; 20000 (520 KB) do not
local MANY = rep("HTTP/1.1 102 Processing\r\n\r\n", 3000)
fault("info_many", "request", function(c, req)
  c:read_body(req)
  c:send(MANY .. normal(req))
  return after_answer(req)
end)
local STORM = rep("HTTP/1.1 102 Processing\r\n\r\n", 20000)
fault("info_storm", "request", function(c, req)
  c:read_body(req)
  c:send(STORM .. normal(req))
  return after_answer(req)
end)

-- a 200 whose body is a bare JSON scalar
for name, body in pairs({ scalar_string = '"hello"', scalar_number = "42",
                          scalar_true = "true", scalar_null = "null" }) do
  fault(name, "request", function(c, req)
    c:read_body(req)
    c:send(response(200, body))
    return after_answer(req)
  end)
end

-- the server asks for a retry
for _, code in ipairs({ 429, 503 }) do
  local body = '{"error":"slow down"}'
  fault("status_" .. code .. "_retry_after", "request", function(c, req)
    c:read_body(req)
    c:send(response(code, body, { "Retry-After: 0" }))
    return after_answer(req)
  end)
  fault("status_" .. code, "request", function(c, req)
    c:read_body(req)
    c:send(response(code, body))
    return after_answer(req)
  end)
end

-- the server echoes the client's credentials in its answers
local function echoed(req)
  local auth = req.headers.authorization or ""
  return auth, (auth:gsub('[%c"\\]', ""))
end
fault("echo_key_401", "request", function(c, req)
  c:read_body(req)
  local auth, clean = echoed(req)
  c:send(response(401, '{"error":{"message":"bad credentials: ' .. clean .. '",'
                        .. '"type":"authentication_error","code":"' .. clean .. '"}}',
                  { "X-Echo: " .. auth, "X-Request-Id: " .. clean }))
  return after_answer(req)
end)
fault("echo_key_200", "request", function(c, req)
  c:read_body(req)
  local auth, clean = echoed(req)
  c:send(response(200, "not json: " .. clean, { "X-Echo: " .. auth }))
  return after_answer(req)
end)
fault("echo_key_html", "request", function(c, req)
  c:read_body(req)
  local _, clean = echoed(req)
  local page = "<html><head><title>502 Bad Gateway " .. clean .. "</title></head>"
               .. "<body>" .. clean .. "</body></html>"
  c:send(head(502, { "Content-Type: text/html", "Content-Length: " .. #page,
                     "Connection: keep-alive" }) .. page)
  return after_answer(req)
end)

-- keep-alive abuse: the first request on a connection is answered
-- normally; the next one on the same connection is read, then the
-- connection closes without an answer
fault("keepalive_abuse", "request", function(c, req)
  if c.served == 1 then return serve_normally(c, req) end
  c:read_body(req)
  return c:fin()
end)

---------------------------------------------------------------------------
-- serving

local current = {}         -- scope ("*" or a path) -> fault name

local function fault_for(path)
  return faults[(path and current[path]) or current["*"] or "ok"]
end

local open = {}            -- hostile conn -> its task

local function serve(c)
  local f = fault_for(nil)
  if f.stage == "accept" then return f.run(c) end
  while true do
    if c.served > 0 then
      -- a kept-alive connection: a fault of the accept stage strikes when
      -- the next request arrives, before it is read
      if c.buf == "" then c:wait_readable() end
      f = fault_for(nil)
      if f.stage == "accept" then return f.run(c) end
    end
    local req = c:read_head()
    c.served = c.served + 1
    f = fault_for(req.path)
    if f.stage == "accept" then f = faults.head_fin end
    local after = f.run(c, req)
    if after ~= "next" then return end
  end
end

local function hostile_task(c)
  serve(c)
  open[c] = nil
  if not c.closed then c:fin() end
end

local function stats_lines()
  local out = { "total " .. stats.total, "accepted " .. stats.accepted }
  local names = {}
  for verb in pairs(stats.verbs) do names[#names + 1] = verb end
  table.sort(names)
  for _, verb in ipairs(names) do out[#out + 1] = format("verb %s %d", verb, stats.verbs[verb]) end
  for _, s in ipairs(stats.conn_order) do
    out[#out + 1] = format("conn %d %d %d %s", s.id, s.port, s.requests, s.new and "new" or "old")
  end
  for tag, n in pairs(stats.tags) do out[#out + 1] = format("tag %s %d", tag, n) end
  for key, n in pairs(stats.paths) do out[#out + 1] = format("path %s %d", key, n) end
  for _, line in ipairs(stats.log) do out[#out + 1] = "log " .. line end
  return out
end

local function control(words)
  local cmd = words[1]
  if cmd == "PING" then
    return { "OK" }
  elseif cmd == "FAULT" then
    local scope, name = words[2], words[3]
    if not scope or not faults[name] then
      return { "ERR unknown fault " .. tostring(name) }
    end
    if scope ~= "*" and faults[name].stage == "accept" then
      return { "ERR fault " .. name .. " applies to every request (scope *) only" }
    end
    current[scope] = name
    return { "OK" }
  elseif cmd == "RESET" then
    current = {}
    reset_stats()
    return { "OK" }
  elseif cmd == "DROP" then
    local n = 0
    for c, task in pairs(open) do
      open[c] = nil
      unregister(task)
      finish(task)
      n = n + 1
    end
    return { "OK " .. n }
  elseif cmd == "STATS" then
    return stats_lines()
  elseif cmd == "FAULTS" then
    local out = {}
    for _, name in ipairs(fault_order) do
      out[#out + 1] = format("fault %s %s", name, faults[name].stage)
    end
    return out
  elseif cmd == "STOP" then
    stopping = true
    return { "OK" }
  end
  return { "ERR unknown command " .. tostring(cmd) }
end

local function control_task(c)
  local line = c:read_line(4096)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  c:send(concat(control(words), "\n") .. "\nEND\n")
  c:close()
end

---------------------------------------------------------------------------
-- main

local function listen(port)
  local l = assert(socket.bind(opts.host, port, 128))
  l:settimeout(0)
  local _, bound = l:getsockname()
  return l, tonumber(bound)
end

local listener, control_listener
listener, hostile_port = listen(opts.port)
local control_port
control_listener, control_port = listen(opts.control_port)

if opts.port_file then
  local tmp = opts.port_file .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(hostile_port, " ", control_port, "\n")
  f:close()
  assert(os.rename(tmp, opts.port_file))
end
log(format("listening on %s:%d (control %d)", opts.host, hostile_port, control_port))

local function accept_all(l, kind)
  while true do
    local sock = l:accept()
    if not sock then return end
    local c = new_conn(sock, kind)
    if kind == "hostile" then
      on_accept(c)
      local task = { co = create(hostile_task), conn = c }
      tasks[task] = true
      open[c] = task
      run(task, c)
    else
      spawn(control_task, c)
    end
  end
end

while not stopping do
  local now = gettime()
  if now >= deadline then
    log("max lifetime reached")
    break
  end
  local due = {}
  local wake = deadline
  for task, at in pairs(sleepers) do
    if at <= now then due[#due + 1] = task elseif at < wake then wake = at end
  end
  for _, task in ipairs(due) do
    unregister(task)
    run(task, "timeout")
  end
  local recvt, sendt = { listener, control_listener }, {}
  for sock in pairs(readers) do recvt[#recvt + 1] = sock end
  for sock in pairs(writers) do sendt[#sendt + 1] = sock end
  local timeout = wake - gettime()
  if #due > 0 or timeout < 0 then timeout = 0 end
  if timeout > 0.5 then timeout = 0.5 end
  local readable, writable = select(recvt, sendt, timeout)
  for _, sock in ipairs(readable) do
    if sock == listener then
      accept_all(listener, "hostile")
    elseif sock == control_listener then
      accept_all(control_listener, "control")
    else
      local task = readers[sock]
      if task then
        unregister(task)
        run(task, "ready")
      end
    end
  end
  for _, sock in ipairs(writable) do
    local task = writers[sock]
    if task then
      unregister(task)
      run(task, "ready")
    end
  end
end

for task in pairs(tasks) do finish(task) end
listener:close()
control_listener:close()
os.exit(0)
