-- Single-threaded event loop: socket.select over the listener and every
-- client connection, HTTP/1.1 keep-alive and pipelining, timers for delayed
-- answers, idle timeouts, and a bounded lifetime.
local socket = require("socket")
local http = require("standin.http")
local api_mod = require("standin.api")
local control_mod = require("standin.control")
local reply = require("standin.reply")

local _M = {}
_M.__index = _M

local gettime, select, ipairs, pairs, setmetatable = socket.gettime, socket.select, ipairs, pairs, setmetatable
local min, sort = math.min, table.sort

local PARTIAL_REQUEST_TIMEOUT = 60
local SHUTDOWN_GRACE = 2

-- opts: mode, api_key, org_key, project_id, version, max_lifetime, quiet, log (function)
function _M.new(opts)
  local api = api_mod.new(opts)
  local self = setmetatable({
    mode = opts.mode, api = api, control = control_mod.new(api),
    conns = {}, timers = {}, next_conn_id = 0,
    deadline = gettime() + opts.max_lifetime, quiet = opts.quiet,
    log_fn = opts.log or function(line) io.stderr:write(line, "\n") end,
    running = true,
  }, _M)
  return self
end

function _M:log(line)
  if not self.quiet then self.log_fn(line) end
end

function _M:listen(host, port)
  local listener, err = socket.bind(host, port, 64)
  if not listener then return nil, err end
  listener:settimeout(0)
  self.listener = listener
  local _, bound_port = listener:getsockname()
  self.port = tonumber(bound_port)
  return self.port
end

------------------------------------------------------------------------------
-- Connections
------------------------------------------------------------------------------

function _M:accept()
  while true do
    local sock = self.listener:accept()
    if not sock then return end
    sock:settimeout(0)
    sock:setoption("tcp-nodelay", true)
    self.next_conn_id = self.next_conn_id + 1
    self.conns[sock] = {
      sock = sock, id = self.next_conn_id, inbuf = "", out = "",
      state = "read", last = gettime(),
    }
    self.control:on_accept()
  end
end

function _M:close(conn)
  if conn.closed then return end
  conn.closed = true
  conn.sock:close()
  self.conns[conn.sock] = nil
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
  if chunk and chunk ~= "" then
    conn.last = gettime()
    if conn.state ~= "hung" then conn.inbuf = conn.inbuf .. chunk end
  end
  if err == "closed" then conn.peer_closed = true end
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
  local bytes = http.serialize(res, {
    mode = mode or self.mode, keepalive = keepalive, version = req.version,
    method = req.method, deprecation = res.deprecation,
  })
  if not keepalive then conn.state = "closing" end
  self:log(api_mod.describe(req, res))
  self:write(conn, bytes)
end

function _M:dispatch(conn, req)
  if control_mod.is_control(req.path) then
    local res, action = self.control:handle(req)
    if action == "shutdown" then
      self.stopping = gettime()
      req.keepalive = false
    end
    return self:respond(conn, req, res, "control")
  end
  self.control:record(req, conn)
  local fault = self.control:take_fault(req.method, api_mod.normalize(req.path) or req.path)
  if fault then return self:apply_fault(conn, req, fault) end
  self:respond(conn, req, self.api:handle(req))
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
      self:respond(conn, req, self.api:handle(req))
      self:process(conn)
    end)
  end
  self:respond(conn, req, control_mod.fault_reply(fault, req))
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
  local idle = http.KEEPALIVE[self.mode]
  for _, conn in pairs(self.conns) do
    if conn.state == "read" and conn.out == "" then
      local pending = conn.inbuf ~= "" or conn.head
      local limit = pending and PARTIAL_REQUEST_TIMEOUT or idle
      if now - conn.last > limit then self:close(conn) end
    end
  end
end

function _M:socket_sets()
  local recvt, sendt = { self.listener }, {}
  if self.stopping then recvt = {} end
  for sock, conn in pairs(self.conns) do
    if (conn.state == "read" or conn.state == "hung") and not conn.peer_closed then recvt[#recvt + 1] = sock end
    if conn.out ~= "" then sendt[#sendt + 1] = sock end
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

function _M:step()
  local now = gettime()
  self:run_timers(now)
  self:reap_idle(now)
  local recvt, sendt = self:socket_sets()
  local readable, writable = select(recvt, sendt, self:next_timeout(now))
  for _, sock in ipairs(readable) do
    if sock == self.listener then
      self:accept()
    elseif self.conns[sock] then
      self:on_readable(self.conns[sock])
    end
  end
  for _, sock in ipairs(writable) do
    if self.conns[sock] then self:flush(self.conns[sock]) end
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
  for _, conn in pairs(self.conns) do conn.sock:close() end
  self.conns = {}
  self.listener:close()
end

return _M
