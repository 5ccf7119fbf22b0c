-- A small HTTP echo server for tests of the gateway's forward proxy
-- (onecli.standin.proxy): the upstream a proxied request reaches. Every
-- request is answered with what it received as JSON:
--
--   {"method", "path", "query" (or null), "target" (the request line's),
--    "headers" (object, lower-case names), "body" (or null), "connection"}
--
--   local upstream = require("onecli.standin.upstream")
--   local up = upstream.start{ lua = "lua5.4" }   -- a child process
--   up.port, up.host, up.url  -- "http://127.0.0.1:PORT"
--   up:requests()             -- every request received, oldest first
--   up:saw(path)              -- the first request for path, or nil
--   up:stop()                 -- idempotent
--   upstream.serve{ host?, port?, port_file?, max_lifetime? }  -- blocks
--
-- Paths: /status/NNN answers NNN (no body for 1xx/204/304); /delay/S
-- answers after S seconds; /chunked answers with a chunked body; /hop adds
-- hop-by-hop headers a proxy must drop (Connection: X-Hop, X-Hop,
-- Keep-Alive, Proxy-Authenticate); anything else 200. Every answer carries
-- X-Upstream: echo and Connection: close (one request per connection).
-- GET /__upstream/requests lists the requests received, POST
-- /__upstream/shutdown stops the server. Listens on 127.0.0.1 only by
-- default; exits after max_lifetime seconds (default 300).
local socket = require("onecli.standin.socket")
local json = require("onecli.standin.json")
local http = require("onecli.standin.http")
local process = require("onecli.standin.process")
local client = require("onecli.standin.client")

local _M = {}
local Server = {}
Server.__index = Server

local obj, array, null = json.obj, json.array, json.null
local ipairs, pairs, next, tonumber, format, concat = ipairs, pairs, next, tonumber, string.format, table.concat
local gettime, setmetatable = socket.gettime, setmetatable

local MAX_LOG = 1000

------------------------------------------------------------------------------
-- The server (runs in the child process)
------------------------------------------------------------------------------

local function echo(req, conn_id)
  local headers = obj()
  for _, h in ipairs(req.header_list) do
    if headers[h[1]] == nil then json.set(headers, h[1], req.headers[h[1]]) end
  end
  return obj("method", req.method, "path", req.path, "query", req.query_raw or null, "target", req.target,
    "headers", headers, "body", req.body or null, "connection", conn_id)
end

local function answer(status, headers, body, chunked)
  local lines = { format("HTTP/1.1 %d %s", status, http.reason(status)) }
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  lines[#lines + 1] = "X-Upstream: echo"
  lines[#lines + 1] = "Connection: close"
  if body == nil then return concat(lines, "\r\n") .. "\r\n\r\n" end
  if chunked then
    lines[#lines + 1] = "Transfer-Encoding: chunked"
    local half = math.floor(#body / 2)
    return concat(lines, "\r\n") .. "\r\n\r\n" .. format("%x\r\n%s\r\n", half, body:sub(1, half))
      .. format("%x\r\n%s\r\n", #body - half, body:sub(half + 1)) .. "0\r\n\r\n"
  end
  lines[#lines + 1] = "Content-Length: " .. #body
  return concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

-- Returns bytes, delay (seconds) or nil, "shutdown".
local function respond(state, req, conn_id)
  if req.path == "/__upstream/requests" then
    return answer(200, { { "Content-Type", "application/json" } }, json.encode(array(state.log))), 0
  end
  if req.path == "/__upstream/shutdown" then
    state.stopping = true
    return answer(200, { { "Content-Type", "application/json" } }, '{"success":true}'), 0
  end
  local entry = echo(req, conn_id)
  state.log[#state.log + 1] = entry
  if #state.log > MAX_LOG then table.remove(state.log, 1) end
  local body = json.encode(entry)
  local headers = { { "Content-Type", "application/json" } }
  local status = tonumber(req.path:match("^/status/(%d%d%d)$") or "") or 200
  if status < 200 or status == 204 or status == 304 then body = nil end
  local delay = tonumber(req.path:match("^/delay/([%d.]+)$") or "") or 0
  if req.path == "/hop" then
    for _, h in ipairs({ { "Connection", "X-Hop" }, { "X-Hop", "hop-value" }, { "Keep-Alive", "timeout=5" },
      { "Proxy-Authenticate", 'Basic realm="upstream"' } }) do headers[#headers + 1] = h end
  end
  return answer(status, headers, body, req.path == "/chunked"), delay
end

local function write_port_file(path, port)
  if not path then return end
  local f = assert(io.open(path .. ".tmp", "wb"))
  f:write(tostring(port))
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

function _M.serve(opts)
  opts = opts or {}
  local listener = assert(socket.bind(opts.host or "127.0.0.1", opts.port or 0, 64))
  listener:settimeout(0)
  local _, port = listener:getsockname()
  write_port_file(opts.port_file, port)
  local deadline = gettime() + (opts.max_lifetime or 300)
  local state, conns, next_id = { log = {} }, {}, 0
  local function close(c)
    c.sock:close()
    conns[c.sock] = nil
  end
  local function flush(c)
    while c.out ~= "" do
      local i, err, last = c.sock:send(c.out)
      c.out = c.out:sub((i or last or 0) + 1)
      if err == "timeout" then return end
      if err then return close(c) end
    end
    if c.done then close(c) end
  end
  while gettime() < deadline and not (state.stopping and next(conns) == nil) do
    local now = gettime()
    local recvt, sendt, wait = { listener }, {}, 0.5
    for sock, c in pairs(conns) do
      if c.due and c.due <= now then
        c.out, c.due, c.done = c.out .. c.pending, nil, true
        flush(c)
      elseif c.due then
        wait = math.min(wait, c.due - now)
      end
      if conns[sock] then
        if not c.done and not c.due then recvt[#recvt + 1] = sock end
        if c.out ~= "" then sendt[#sendt + 1] = sock end
        if now - c.last > 60 then close(c) end
      end
    end
    local readable, writable = socket.select(recvt, sendt, wait > 0 and wait or 0)
    for _, sock in ipairs(readable) do
      if sock == listener then
        local s = listener:accept()
        if s then
          s:settimeout(0)
          next_id = next_id + 1
          conns[s] = { sock = s, inbuf = "", out = "", id = next_id, last = gettime() }
        end
      elseif conns[sock] then
        local c = conns[sock]
        local data, err, partial = sock:receive(65536)
        c.inbuf, c.last = c.inbuf .. (data or partial or ""), gettime()
        local req, extra = http.take_request(c)
        if req then
          local bytes, delay = respond(state, req, c.id)
          if delay > 0 then
            c.pending, c.due = bytes, gettime() + delay
          else
            c.out, c.done = c.out .. bytes, true
          end
        elseif req == false then
          c.out, c.done = answer(extra, {}, ""), true
        elseif extra == "continue" then
          c.out = c.out .. http.CONTINUE
        elseif err == "closed" then
          close(c)
        end
        if conns[sock] then flush(c) end
      end
    end
    for _, sock in ipairs(writable) do
      if conns[sock] then flush(conns[sock]) end
    end
  end
  for _, c in pairs(conns) do c.sock:close() end
  listener:close()
end

------------------------------------------------------------------------------
-- The launcher (runs in the test's process)
------------------------------------------------------------------------------

local shell_quote, read_file = process.shell_quote, process.read_file

-- The Lua tree this module was loaded from (lua/ in a checkout), which the
-- child puts first on its package.path.
local function module_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)[/\\][^/\\]*$") or "."
  return dir .. "/../.."
end

-- opts: lua ("lua5.4": the interpreter that runs the server), host
-- ("127.0.0.1"), port (0: a free one), max_lifetime (300), timeout (10 s
-- to start), package_path and package_cpath (set in the child; default:
-- this module's tree first on the child's own path).
function _M.start(opts)
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local port_file, err_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local root = module_root()
  local preset = opts.package_path and format("package.path=%q;", opts.package_path)
    or format("package.path=%q .. package.path;", root .. "/?.lua;" .. root .. "/?/init.lua;")
  if opts.package_cpath then preset = preset .. format("package.cpath=%q;", opts.package_cpath) end
  local code = preset .. format("require('onecli.standin.upstream').serve({ host=%q, port=%d, port_file=%q, "
    .. "max_lifetime=%s })", host, tonumber(opts.port) or 0, port_file, tostring(tonumber(opts.max_lifetime) or 300))
  local cmd = (opts.lua or "lua5.4") .. " -e " .. shell_quote(code) .. " </dev/null >/dev/null 2>"
    .. shell_quote(err_file) .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local srv = setmetatable({ pid = pid, host = host, files = { port_file, port_file .. ".tmp", err_file } }, Server)
  local port
  process.wait_until(opts.timeout or 10, function()
    port = tonumber(read_file(port_file) or "")
    return port ~= nil or not (pid and process.alive(pid))
  end)
  if not port then
    local stderr = read_file(err_file) or ""
    srv:stop()
    error("upstream echo server failed to start: " .. stderr, 2)
  end
  srv.port = port
  srv.url = format("http://%s:%d", host, port)
  return srv
end

-- Every request the server received (echo entries), oldest first.
function Server:requests()
  local res, err = client.request(self.port, { host = self.host, method = "GET", path = "/__upstream/requests",
    timeout = 5 })
  if not res then error("upstream echo server: " .. tostring(err), 2) end
  return json.decode(res.body)
end

-- The first request received for `path` (an echo entry), or nil.
function Server:saw(path)
  for _, r in ipairs(self:requests()) do
    if r.path == path then return r end
  end
  return nil
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    process.stop(self.pid, self.port and function()
      client.request(self.port, { host = self.host, method = "POST", path = "/__upstream/shutdown", timeout = 2 })
    end)
  end
  for _, f in ipairs(self.files) do os.remove(f) end
end

return _M
