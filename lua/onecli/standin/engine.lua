-- Single-threaded event loop: socket.select over the two listeners (API and
-- gateway) and every client connection, HTTP/1.1 keep-alive and pipelining,
-- timers for delayed answers, held long polls (gateway approvals), idle
-- timeouts, and a bounded lifetime.
--
-- The gateway listener is also a forward proxy (onecli.standin.proxy):
-- absolute-form requests and CONNECT go to the proxy, which opens
-- non-blocking upstream sockets the loop watches too (watch/unwatch), keeps
-- a client connection "busy" while its request is upstream or held for
-- approval, and turns it into a "tunnel" after CONNECT.
local socket = require("onecli.standin.socket")
local http = require("onecli.standin.http")
local api_mod = require("onecli.standin.api")
local gateway_mod = require("onecli.standin.gateway")
local control_mod = require("onecli.standin.control")
local proxy_mod = require("onecli.standin.proxy")
local reply = require("onecli.standin.reply")
local json = require("onecli.standin.json")

local _M = {}
_M.__index = _M

local gettime, select, ipairs, pairs, setmetatable = socket.gettime, socket.select, ipairs, pairs, setmetatable
local min, sort, remove = math.min, table.sort, table.remove

local PARTIAL_REQUEST_TIMEOUT = 60
local SHUTDOWN_GRACE = 2

-- opts: mode, edition, api_key, org_key, project_id, version, max_lifetime,
-- poll_hold, quiet, log (function)
function _M.new(opts)
  local api = api_mod.new(opts)
  local gateway = gateway_mod.new(api, { poll_hold = opts.poll_hold })
  local self = setmetatable({
    mode = opts.mode, api = api, gateway = gateway, control = control_mod.new(api, gateway),
    listeners = {}, conns = {}, timers = {}, waiters = {}, next_conn_id = 0,
    -- other sockets the loop serves (the proxy's upstream connections):
    -- sock -> handler with wants_read(), wants_write(), on_readable(), on_writable()
    watched = {},
    deadline = gettime() + opts.max_lifetime, quiet = opts.quiet,
    log_fn = opts.log or function(line) io.stderr:write(line, "\n") end,
    running = true,
  }, _M)
  self.proxy = proxy_mod.new(self)
  return self
end

function _M:log(line)
  if not self.quiet then self.log_fn(line) end
end

-- The accept queue holds 1024 connections: with a shorter one, 200 calls
-- connecting at once while the loop is busy overflow it, and the kernel's
-- SYN retransmission adds a second to some of them.
local function bind(host, port)
  local listener, err = socket.bind(host, port, 1024)
  if not listener then return nil, err end
  listener:settimeout(0)
  local _, bound_port = listener:getsockname()
  return listener, tonumber(bound_port)
end

-- The API listener. Returns the port or nil, error.
function _M:listen(host, port)
  local listener, bound = bind(host, port)
  if not listener then return nil, bound end
  self.listener, self.port = listener, bound
  self.listeners[listener] = "api"
  return bound
end

-- The gateway listener (approvals). Returns the port or nil, error.
function _M:listen_gateway(host, port)
  local listener, bound = bind(host, port)
  if not listener then return nil, bound end
  self.gateway_listener, self.gateway_port = listener, bound
  self.listeners[listener] = "gateway"
  local public = (host == "0.0.0.0" or host == "*" or host == "::") and "127.0.0.1" or host
  self.api.gateway_origin = "http://" .. public .. ":" .. bound
  self.control.gateway_port = bound
  return bound
end

------------------------------------------------------------------------------
-- Connections
------------------------------------------------------------------------------

function _M:accept(listener)
  while true do
    local sock = listener:accept()
    if not sock then return end
    sock:settimeout(0)
    sock:setoption("tcp-nodelay", true)
    self.next_conn_id = self.next_conn_id + 1
    self.conns[sock] = {
      sock = sock, id = self.next_conn_id, inbuf = "", out = "",
      state = "read", last = gettime(), kind = self.listeners[listener],
    }
    self.control:on_accept()
  end
end

function _M:close(conn)
  if conn.closed then return end
  conn.closed = true
  conn.sock:close()
  self.conns[conn.sock] = nil
  if conn.on_close then conn.on_close() end   -- a tunnel's upstream side
end

-- Serve another socket in the loop (see self.watched).
function _M:watch(sock, handler)
  self.watched[sock] = handler
end

function _M:unwatch(sock)
  self.watched[sock] = nil
end

function _M:flush(conn)
  while conn.out ~= "" do
    local i, err, last = conn.sock:send(conn.out)
    local sent = i or last or 0
    conn.out = conn.out:sub(sent + 1)
    if err == "timeout" then return end
    if err then self:close(conn); return end
  end
  if conn.state == "closing" or (conn.peer_closed and conn.state ~= "busy") then self:close(conn) end
end

function _M:write(conn, bytes)
  if conn.closed then return end
  conn.out = conn.out .. bytes
  conn.last = gettime()
  self:flush(conn)
end

function _M:on_readable(conn)
  local data, err, partial = conn.sock:receive(65536)
  local chunk = data or partial
  if conn.state == "tunnel" then
    if chunk and chunk ~= "" then conn.last = gettime() end
    return conn.tunnel:from_client(chunk, err)
  end
  if chunk and chunk ~= "" then
    conn.last = gettime()
    if conn.state ~= "hung" then conn.inbuf = conn.inbuf .. chunk end
  end
  if err == "closed" then
    conn.peer_closed = true
    -- the client went away before its answer (a cancelled call): the log says so
    if conn.state == "busy" and conn.entry then json.set(conn.entry, "client_closed", true) end
  end
  if err and err ~= "timeout" and err ~= "closed" then self:close(conn); return end
  if conn.state == "read" then self:process(conn) end
  if conn.peer_closed and not conn.closed and conn.out == "" and conn.state ~= "busy" then self:close(conn) end
end

------------------------------------------------------------------------------
-- Requests
------------------------------------------------------------------------------

function _M:process(conn)
  while conn.state == "read" and not conn.closed do
    local req, extra = http.take_request(conn)
    if req == false then
      local res = reply.envelope(extra, http.reason(extra), "invalid_request_error")
      self:respond(conn, { keepalive = false, method = "GET", version = "1.1", path = "(unparsable)" }, res)
      conn.state = "closing"
      return
    end
    if not req then
      if extra == "continue" then self:write(conn, http.CONTINUE) end
      return
    end
    self:dispatch(conn, req)
  end
end

function _M:respond(conn, req, res, mode)
  local keepalive = req.keepalive and not self.stopping
  mode = mode or (conn.kind == "gateway" and "gateway" or self.mode)
  local bytes = http.serialize(res, {
    mode = mode, keepalive = keepalive, version = req.version,
    method = req.method, deprecation = res.deprecation,
  })
  if not keepalive then conn.state = "closing" end
  self:log((conn.kind == "gateway" and "gateway " or "") .. api_mod.describe(req, res))
  self:write(conn, bytes)
end

function _M:dispatch(conn, req)
  -- absolute-form and CONNECT on the gateway port: the forward proxy
  if conn.kind == "gateway" and proxy_mod.is_proxy_request(req) then return self.proxy:handle(conn, req) end
  if conn.kind == "api" and control_mod.is_control(req.path) then
    local res, action = self.control:handle(req)
    if action == "shutdown" then
      self.stopping = gettime()
      req.keepalive = false
    end
    self:respond(conn, req, res, "control")
    return self:wake()
  end
  local gateway = conn.kind == "gateway"
  self.control:record(req, conn, gateway)
  local norm = gateway and req.path or (api_mod.normalize(req.path) or req.path)
  local fault = self.control:take_fault(req.method, norm, gateway)
  if fault then return self:apply_fault(conn, req, fault) end
  self:serve(conn, req)
end

-- Answer req from the API or the gateway; a gateway long poll with nothing
-- to hand out is held (the connection stays busy, others are served).
function _M:serve(conn, req)
  if conn.kind ~= "gateway" then
    local res = self.api:handle(req)
    if res.open then return self:open_stream(conn, req, res) end
    self:respond(conn, req, res)
    return self:wake()
  end
  local res = self.gateway:handle(req)
  if res.hold then return self:hold(conn, req, res.hold) end
  self:respond(conn, req, res)
  self:wake()
end

function _M:apply_fault(conn, req, fault)
  self:log(req.method .. " " .. req.path .. " fault:" .. fault.kind)
  if fault.kind == "drop" then return self:close(conn) end
  if fault.kind == "hang" then
    conn.state, conn.inbuf = "hung", ""
    return
  end
  if fault.kind == "delay" then
    conn.state = "busy"
    return self:after(fault.seconds, function()
      if conn.closed then return end
      conn.state = "read"
      self:serve(conn, req)
      if conn.state == "read" then self:process(conn) end
    end)
  end
  self:respond(conn, req, control_mod.fault_reply(fault, req))
end

------------------------------------------------------------------------------
-- Open streams (server-sent events with a turn in flight)
------------------------------------------------------------------------------

-- res: a chunked reply with open = seconds: its head and body go out now,
-- the last chunk after that many seconds (the connection is busy until
-- then; a client that stops listening closes it).
function _M:open_stream(conn, req, res)
  local bytes = http.serialize(res, { mode = self.mode, keepalive = false, version = req.version,
    method = req.method, deprecation = res.deprecation })
  local last = "0\r\n\r\n"
  if bytes:sub(-#last) == last then bytes = bytes:sub(1, -#last - 1) end
  self:log(api_mod.describe(req, res) .. " (stream open)")
  conn.state = "busy"
  self:write(conn, bytes)
  self:after(res.open, function()
    if conn.closed then return end
    conn.state = "closing"
    self:write(conn, last)
  end)
end

------------------------------------------------------------------------------
-- Held long polls
------------------------------------------------------------------------------

-- h: { seconds, poll = fn -> reply|nil, timeout = fn -> reply }
function _M:hold(conn, req, h)
  conn.state = "busy"
  local waiter = { conn = conn, req = req, poll = h.poll }
  self.waiters[#self.waiters + 1] = waiter
  self:after(h.seconds, function() self:release(waiter, h.timeout()) end)
end

function _M:release(waiter, res)
  if waiter.done then return end
  waiter.done = true
  for i, w in ipairs(self.waiters) do
    if w == waiter then remove(self.waiters, i); break end
  end
  local conn = waiter.conn
  if conn.closed then return end
  conn.state = "read"
  self:respond(conn, waiter.req, res)
  self:process(conn)
end

-- Hand newly enqueued approvals to the polls waiting for them, and let
-- the proxy release the requests it holds whose approval was decided.
function _M:wake()
  self.proxy:check_held()
  if #self.waiters == 0 then return end
  local list = {}
  for i, w in ipairs(self.waiters) do list[i] = w end
  for _, w in ipairs(list) do
    if not w.done then
      local res = w.poll()
      if res then self:release(w, res) end
    end
  end
end

------------------------------------------------------------------------------
-- Timers and the loop
------------------------------------------------------------------------------

function _M:after(seconds, fn)
  self.timers[#self.timers + 1] = { at = gettime() + seconds, fn = fn }
end

function _M:run_timers(now)
  local due, keep = {}, {}
  for _, t in ipairs(self.timers) do
    if t.at <= now then due[#due + 1] = t else keep[#keep + 1] = t end
  end
  if #due == 0 then return end
  self.timers = keep
  sort(due, function(a, b) return a.at < b.at end)
  for _, t in ipairs(due) do t.fn() end
end

function _M:reap_idle(now)
  for _, conn in pairs(self.conns) do
    if conn.state == "read" and conn.out == "" then
      local pending = conn.inbuf ~= "" or conn.head
      local idle = http.KEEPALIVE[conn.kind == "gateway" and "gateway" or self.mode]
      local limit = pending and PARTIAL_REQUEST_TIMEOUT or idle
      if now - conn.last > limit then self:close(conn) end
    elseif conn.state == "tunnel" and now - conn.last > proxy_mod.TUNNEL_IDLE then
      self:close(conn)
    end
  end
end

function _M:socket_sets()
  local recvt, sendt = {}, {}
  if not self.stopping then
    for listener in pairs(self.listeners) do recvt[#recvt + 1] = listener end
  end
  for sock, conn in pairs(self.conns) do
    -- a busy connection is watched too: a client that gives up closes it
    if (conn.state == "read" or conn.state == "hung" or conn.state == "busy") and not conn.peer_closed then
      recvt[#recvt + 1] = sock
    elseif conn.state == "tunnel" and conn.tunnel:client_can_read() then
      recvt[#recvt + 1] = sock    -- not while the upstream side's buffer is full
    end
    if conn.out ~= "" then sendt[#sendt + 1] = sock end
  end
  for sock, h in pairs(self.watched) do
    if h:wants_read() then recvt[#recvt + 1] = sock end
    if h:wants_write() then sendt[#sendt + 1] = sock end
  end
  return recvt, sendt
end

function _M:next_timeout(now)
  local t = min(1, self.deadline - now)
  for _, timer in ipairs(self.timers) do t = min(t, timer.at - now) end
  if self.stopping then t = min(t, 0.05) end
  return t > 0 and t or 0
end

function _M:drained()
  for _, conn in pairs(self.conns) do
    if conn.out ~= "" then return false end
  end
  return true
end

-- One turn of the loop: due timers, then whatever the sockets have, waiting
-- for them at most max_wait seconds (default: until the next timer, at most
-- 1 s). step(0) never blocks: a host's own loop (onecli.testing's
-- in-process server) calls it.
function _M:step(max_wait)
  local now = gettime()
  self:run_timers(now)
  self:reap_idle(now)
  local recvt, sendt = self:socket_sets()
  local wait = self:next_timeout(now)
  if max_wait and max_wait < wait then wait = max_wait end
  local readable, writable = select(recvt, sendt, wait)
  for _, sock in ipairs(readable) do
    if self.listeners[sock] then
      self:accept(sock)
    elseif self.conns[sock] then
      self:on_readable(self.conns[sock])
    elseif self.watched[sock] then
      self.watched[sock]:on_readable()
    end
  end
  for _, sock in ipairs(writable) do
    if self.conns[sock] then
      self:flush(self.conns[sock])
    elseif self.watched[sock] then
      self.watched[sock]:on_writable()
    end
  end
end

function _M:run()
  while true do
    local now = gettime()
    if now >= self.deadline then
      self:log("onecli-standin: max lifetime reached, exiting")
      break
    end
    if self.stopping and (self:drained() or now - self.stopping > SHUTDOWN_GRACE) then break end
    self:step()
  end
  self:close_all()
end

-- Closes every connection and both listeners (idempotent).
function _M:close_all()
  for _, conn in pairs(self.conns) do conn.sock:close() end
  self.conns = {}
  for sock in pairs(self.watched) do sock:close() end
  self.watched = {}
  for listener in pairs(self.listeners) do listener:close() end
  self.listeners = {}
end

return _M
