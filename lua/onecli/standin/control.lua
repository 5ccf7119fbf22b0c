-- Test hooks under /__control/ (no auth, both modes, API port only): fault
-- injection, request log, statistics, reset, shutdown, gateway approvals.
--
--   POST   /__control/faults      {kind, method?, path?, count?, gateway?, ...}
--          kind: status {status, headers?, body?, ctype?, retry_after?}
--                (retry_after: seconds or an HTTP date, sent as Retry-After),
--                delay {seconds} (then the normal answer), drop (close the
--                connection, no answer), hang (never answer), html {status?
--                (502), body?} (an HTML error page, as a proxy in front
--                would send), html502 (= html with 502), bad_json (a 200 with
--                malformed JSON), echo_key (a 401 that echoes the key: for
--                redaction tests)
--   GET    /__control/faults      DELETE /__control/faults
--   GET    /__control/requests    (gateway requests carry gateway=true; those
--                                  of the gateway's forward proxy also
--                                  proxied=true, url, agentId, decision,
--                                  injected (header names), status; a
--                                  Proxy-Authorization value is never kept)
--   DELETE /__control/requests    forget the requests received (data stays)
--   GET    /__control/stats       GET /__control/info
--   POST   /__control/reset       POST /__control/shutdown
--   POST   /__control/approvals   {method?, url?, agent?, expires_in?, id?,
--                                  project_id?, headers?, body?, summary?}
--   GET    /__control/approvals   every approval with state and decisions
--   GET|POST /__control/approvals/settings  {poll_hold?, approval_timeout?,
--                                  upstream_timeout?} (seconds: a poll's
--                                  hold; how long a proxied request held for
--                                  approval waits, the polls' timeoutSeconds
--                                  and the default expires_in of the
--                                  approvals enqueued here; a proxied
--                                  request's time upstream)
--   GET|POST /__control/instance  {licensed?, runner?} (v2: Enterprise
--                                  licence, registered runner; reset restores
--                                  the launch values)
--   POST   /__control/partner/claim  {orgId}  (v1 cloud: a partner-created
--                                  organization becomes claimed)
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")
local pages = require("onecli.standin.pages")
local http = require("onecli.standin.http")
local approvals = require("onecli.standin.approvals")
local partner = require("onecli.standin.partner")

local _M = {}
_M.__index = _M

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, remove, setmetatable, floor = ipairs, table.remove, setmetatable, math.floor

_M.PREFIX = "/__control/"
local MAX_LOG = 10000

local KINDS = { status = true, delay = true, drop = true, hang = true, html = true, html502 = true,
  bad_json = true, echo_key = true }
local KIND_LIST = "status, delay, drop, hang, html, html502, bad_json, echo_key"

-- api: the onecli.standin.api instance (for reset and info); gateway: the
-- onecli.standin.gateway instance (poll_hold setting)
function _M.new(api, gateway)
  local self = setmetatable({ api = api, gateway = gateway, epoch = 0 }, _M)
  self:reset()
  return self
end

function _M:reset()
  self.faults, self.log = {}, {}
  self.requests, self.connections, self.accepted = 0, 0, 0
  self.epoch = self.epoch + 1
  self.next_fault_id = 1
end

function _M.is_control(path)
  return path:sub(1, #_M.PREFIX) == _M.PREFIX
end

------------------------------------------------------------------------------
-- Bookkeeping called by the engine
------------------------------------------------------------------------------

function _M:on_accept()
  self.accepted = self.accepted + 1
end

-- The request's headers as an object; a Proxy-Authorization value (an
-- agent's token) is never kept.
local function logged_headers(req)
  local headers = obj()
  for _, h in ipairs(req.header_list) do
    if headers[h[1]] == nil then
      json.set(headers, h[1], h[1] == "proxy-authorization" and "[redacted]" or req.headers[h[1]])
    end
  end
  return headers
end

local function count(self, conn)
  self.requests = self.requests + 1
  if conn.counted_epoch ~= self.epoch then
    conn.counted_epoch = self.epoch
    self.connections = self.connections + 1
  end
end

local function append(self, conn, entry)
  self.log[#self.log + 1] = entry
  conn.entry = entry    -- the engine marks it if the client leaves early
  if #self.log > MAX_LOG then remove(self.log, 1) end
  return entry
end

function _M:record(req, conn, gateway)
  count(self, conn)
  append(self, conn, obj("method", req.method, "path", req.path, "query", req.query_raw,
    "headers", logged_headers(req), "body", req.body or null, "connection", conn.id, "gateway", gateway or nil))
end

-- A request to the gateway's forward proxy (onecli.standin.proxy): path
-- and query of the target, url (the target without its query; CONNECT:
-- host:port), gateway = proxied = true. Returns the entry, which the
-- proxy completes (agentId, decision, injected, approvalId, status).
function _M:record_proxied(req, conn, target)
  count(self, conn)
  return append(self, conn, obj("method", req.method, "path", target.path, "query", target.query,
    "url", target.url, "headers", logged_headers(req), "body", req.body or null, "connection", conn.id,
    "gateway", true, "proxied", true))
end

-- First matching fault (insertion order); consumes one use of it. Faults
-- with gateway=true apply to gateway requests only, the others to the API.
function _M:take_fault(method, norm_path, gateway)
  for i, f in ipairs(self.faults) do
    if (not f.method or f.method == method) and (not f.path or f.path == norm_path)
      and (f.gateway == true) == (gateway == true) then
      f.count = f.count - 1
      if f.count <= 0 then remove(self.faults, i) end
      return f
    end
  end
  return nil
end

------------------------------------------------------------------------------
-- Fault replies
------------------------------------------------------------------------------

local function default_status_body(status)
  if status == 204 or status == 304 then return nil end
  if status == 500 then return json.encode(obj("error", obj("message", "An unexpected error occurred.",
    "type", "api_error"))) end
  if status == 429 then return json.encode(obj("error", obj("message", "Too many requests. Try again shortly.",
    "type", "rate_limit_error"))) end
  if status == 503 then return json.encode(obj("error", "Service Unavailable")) end
  return json.encode(obj("error", obj("message", http.reason(status), "type", reply.type_for_status(status))))
end

local function bearer(req)
  return (req.headers.authorization or ""):match("^[Bb]earer%s+(.*)$") or ""
end

-- The headers of a fault's answer: its headers, then Retry-After.
local function fault_headers(fault)
  local headers = {}
  for _, k in ipairs(json.keys(fault.headers or {})) do headers[#headers + 1] = { k, fault.headers[k] } end
  if fault.retry_after ~= nil then headers[#headers + 1] = { "Retry-After", tostring(fault.retry_after) } end
  return headers
end

-- Reply for the kinds that answer (status, html, html502, bad_json, echo_key).
function _M.fault_reply(fault, req)
  if fault.kind == "html502" or fault.kind == "html" then
    local status = fault.kind == "html" and fault.status or 502
    return { status = status, body = fault.body or pages.html_error(status), ctype = "text/html",
      headers = fault_headers(fault) }
  elseif fault.kind == "bad_json" then
    return { status = 200, body = '{"id":"abc","name":', ctype = "application/json" }
  elseif fault.kind == "echo_key" then
    return reply.unauthorized("Invalid API key or token: " .. bearer(req))
  end
  local body = fault.body
  if body == nil then body = default_status_body(fault.status) end
  return { status = fault.status, body = body, ctype = fault.ctype or "application/json",
    headers = fault_headers(fault) }
end

------------------------------------------------------------------------------
-- Control endpoints
------------------------------------------------------------------------------

local function bad(msg) return reply.json(400, obj("error", msg)) end

local function is_int(x) return typeof(x) == "number" and x == floor(x) end

local function check_headers(h)
  if h == nil then return true end
  if typeof(h) ~= "object" then return false end
  for _, k in ipairs(json.keys(h)) do
    if typeof(h[k]) ~= "string" then return false end
  end
  return true
end

local function validate_fault(b)
  if typeof(b) ~= "object" then return "body must be a JSON object" end
  if not KINDS[b.kind] then return "kind must be one of " .. KIND_LIST end
  if b.count ~= nil and not (is_int(b.count) and b.count >= 1) then return "count must be an integer >= 1" end
  if b.method ~= nil and typeof(b.method) ~= "string" then return "method must be a string" end
  if b.path ~= nil and typeof(b.path) ~= "string" then return "path must be a string" end
  if b.kind == "status" and not (is_int(b.status) and b.status >= 100 and b.status <= 599) then
    return "status kind needs an integer status (100-599)"
  end
  if b.kind == "html" and b.status ~= nil and not (is_int(b.status) and b.status >= 100 and b.status <= 599) then
    return "html kind: status must be an integer (100-599)"
  end
  if b.retry_after ~= nil and not ((typeof(b.retry_after) == "number" and b.retry_after >= 0)
    or (typeof(b.retry_after) == "string" and b.retry_after ~= "" and not b.retry_after:find("[\r\n]"))) then
    return "retry_after must be seconds >= 0 or an HTTP date"
  end
  if b.ctype ~= nil and typeof(b.ctype) ~= "string" then return "ctype must be a string" end
  if b.kind == "delay" and not (typeof(b.seconds) == "number" and b.seconds >= 0) then
    return "delay kind needs seconds >= 0"
  end
  if not check_headers(b.headers) then return "headers must be an object of strings" end
  if b.body ~= nil and typeof(b.body) ~= "string" then return "body must be a string" end
  if b.gateway ~= nil and typeof(b.gateway) ~= "boolean" then return "gateway must be a boolean" end
  return nil
end

function _M:add_fault(body)
  local b = json.decode(body or "")
  local err = validate_fault(b)
  if err then return bad(err) end
  local fault = {
    id = self.next_fault_id, kind = b.kind, method = b.method and b.method:upper(), path = b.path,
    count = b.count or 1, status = b.status, seconds = b.seconds, headers = b.headers, body = b.body,
    gateway = b.gateway, retry_after = b.retry_after, ctype = b.ctype,
  }
  self.next_fault_id = self.next_fault_id + 1
  self.faults[#self.faults + 1] = fault
  return reply.json(201, obj("id", fault.id, "pending", #self.faults))
end

function _M:list_faults()
  local out = array()
  for i, f in ipairs(self.faults) do
    out[i] = obj("id", f.id, "kind", f.kind, "method", f.method or null, "path", f.path or null,
      "count", f.count, "status", f.status, "seconds", f.seconds, "gateway", f.gateway == true)
  end
  return reply.ok(out)
end

function _M:info()
  local api = self.api
  local project = api:main_project()
  local default = nil
  for _, a in ipairs(project.agents) do
    if a.is_default then default = a.id end
  end
  return reply.ok(obj("mode", api.mode, "edition", api.edition, "api_key", project.api_key,
    "org_key", api.org.org_key, "project_id", project.id, "version", api.version, "default_agent_id", default,
    "gateway_port", self.gateway_port, "gateway_url", api.gateway_origin, "poll_hold", self.gateway.poll_hold,
    "partner_key", api.partner and api.partner.key or nil, "licensed", api.licensed, "runner", api.runner))
end

------------------------------------------------------------------------------
-- Approvals
------------------------------------------------------------------------------

function _M:add_approval(body)
  local b = json.decode(body or "")
  if typeof(b) == "object" and b.expires_in == nil then json.set(b, "expires_in", self.gateway.approval_timeout) end
  local a, err = approvals.enqueue(self.api.org, self.api:main_project(), b)
  if not a then
    if err and err:find("already exists", 1, true) then return reply.json(409, obj("error", err)) end
    return bad(err)
  end
  return reply.json(201, approvals.control_shape(a, self.api.mode))
end

function _M:approval_settings(method, body)
  if method == "POST" then
    local b = json.decode(body or "")
    if typeof(b) ~= "object" then return bad("body must be a JSON object") end
    for _, k in ipairs({ "poll_hold", "approval_timeout", "upstream_timeout" }) do
      if b[k] ~= nil and (typeof(b[k]) ~= "number" or b[k] < 0) then return bad(k .. " must be seconds >= 0") end
    end
    for _, k in ipairs({ "poll_hold", "approval_timeout", "upstream_timeout" }) do
      if b[k] ~= nil then self.gateway[k] = b[k] end
    end
  end
  local g = self.gateway
  return reply.ok(obj("poll_hold", g.poll_hold, "timeout_seconds", g.approval_timeout,
    "approval_timeout", g.approval_timeout, "upstream_timeout", g.upstream_timeout))
end

function _M:stats()
  return reply.ok(obj("connections", self.connections, "requests", self.requests, "accepted", self.accepted,
    "faults", #self.faults))
end

-- Returns reply, action ("shutdown" or nil).
function _M:handle(req)
  local name = req.path:sub(#_M.PREFIX + 1)
  local m = req.method
  if name == "faults" and m == "POST" then return self:add_fault(req.body) end
  if name == "faults" and m == "GET" then return self:list_faults() end
  if name == "faults" and m == "DELETE" then self.faults = {}; return reply.success() end
  if name == "requests" and m == "GET" then return reply.ok(array(self.log)) end
  if name == "requests" and m == "DELETE" then self.log = {}; return reply.success() end
  if name == "stats" and m == "GET" then return self:stats() end
  if name == "info" and m == "GET" then return self:info() end
  if name == "approvals" and m == "POST" then return self:add_approval(req.body) end
  if name == "approvals" and m == "GET" then return reply.ok(approvals.list(self.api.org, self.api.mode)) end
  if name == "approvals/settings" and (m == "GET" or m == "POST") then
    return self:approval_settings(m, req.body)
  end
  if name == "instance" and (m == "GET" or m == "POST") then
    if m == "POST" then
      local b = json.decode(req.body or "")
      if typeof(b) ~= "object" then return bad("body must be a JSON object") end
      for _, k in ipairs({ "licensed", "runner" }) do
        if b[k] ~= nil and type(b[k]) ~= "boolean" then return bad(k .. " must be a boolean") end
      end
      self.api:set_instance(b.licensed, b.runner)
    end
    return reply.ok(obj("licensed", self.api.licensed, "runner", self.api.runner))
  end
  if name == "partner/claim" and m == "POST" then
    local b = json.decode(req.body or "")
    if typeof(b) ~= "object" or typeof(b.orgId) ~= "string" then return bad("orgId must be a string") end
    local ok, err = partner.claim(self.api, b.orgId)
    if not ok then return reply.json(404, obj("error", err)) end
    return reply.success()
  end
  if name == "reset" and m == "POST" then
    self.api:reset()
    self:reset()
    return reply.success()
  end
  if name == "shutdown" and m == "POST" then return reply.success(), "shutdown" end
  return reply.json(404, obj("error", "unknown control endpoint: " .. m .. " " .. req.path))
end

return _M
