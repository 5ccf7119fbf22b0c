-- The stand-in gateway's forward proxy.
--
-- NOT RECORDED FROM A REAL SERVER: the OneCLI reference has no capture of
-- the gateway's proxy behaviour. This is the stand-in's own protocol,
-- modelled on the gateway's role (an HTTP(S) forward proxy that an agent
-- reaches as http://x:<agent access token>@<gateway>, reference §7.9, which
-- injects the agent's credentials, applies policy, §6.4, and holds requests
-- for a person's approval, §6.14), so that a client acting as an agent can
-- be tested end to end on 127.0.0.1.
--
-- 1. Where. The gateway listener (srv.gateway_url, the port of the
--    approvals API) also takes
--    - absolute-form requests, any method, bodies with Content-Length or
--      chunked (`GET http://127.0.0.1:8080/path?q HTTP/1.1`; http:// only:
--      https goes through CONNECT, anything else is a 400
--      unsupported_scheme). Forwarded to host:port with Host set from the
--      target, the hop-by-hop headers (Connection and the headers it names,
--      Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Expect) and
--      every Proxy-* header removed, the body re-sent with Content-Length,
--      and `Connection: close` upstream. The answer is relayed: status,
--      reason, headers minus the hop-by-hop ones, body with Content-Length.
--      The client's connection stays open (keep-alive) unless it asked not.
--    - `CONNECT host:port HTTP/1.1`: after authentication (and host-level
--      block rules, point 4) `HTTP/1.1 200 Connection Established`, then a
--      blind tunnel: bytes both ways, bounded buffers (a side is not read
--      while the other's queue is full), no TLS interception, so nothing is
--      injected or held inside it; either side closing closes both; idle for
--      TUNNEL_IDLE seconds closes it. A refused CONNECT closes the
--      connection.
--    Origin-form requests (`GET /v1/approvals/pending`, ...) stay the
--    approvals API (onecli.standin.gateway).
-- 2. Authentication: `Proxy-Authorization: Basic base64(user ":" token)`,
--    any user, token an agent's access token (`aoc_` + 64 hex; GET
--    /v1/agents accessToken, the container config's HTTPS_PROXY) in any
--    project of the stand-in. Missing or unknown: 407, `Proxy-Authenticate:
--    Basic realm="OneCLI Gateway"`, `X-OneCLI-Gateway-Error:
--    invalid_agent_token`, {"error":"invalid_agent_token","message":...}.
-- 3. Injection (absolute-form only) from the secrets that apply to the
--    agent: v1 secretMode "all": every secret of its project and
--    organization; v1 "selective" and v2: the ones assigned (PUT
--    /v1/agents/{id}/secrets) or granted (v2 PUT
--    /v1/agents/{id}/grants/secrets/{secretId}). A secret applies when its
--    hostPattern matches the host (case-insensitive; exact, or
--    `*.example.com` = any subdomain; a pattern with :port must match the
--    port too) and its pathPattern, if any, the path (`*` = anything).
--    injectionConfig {headerName, valueFormat} sets that header (replacing
--    the client's own) to valueFormat with {value} replaced; {paramName,
--    paramFormat} appends a query parameter; the path variants are not
--    applied. Without injectionConfig: anthropic -> x-api-key (an OAuth
--    token: Authorization: Bearer), openai -> Authorization: Bearer. For
--    one header the newest secret wins. 1Password secrets (no value kept)
--    are skipped.
-- 4. Policy: the matching rules (enabled; hostPattern as in 3; pathPattern;
--    method; agentId nil or the agent; body conditions "contains"), across
--      v1: the project's and organization's /rules (blocklist rows too;
--          app-permission rows have no host and never match),
--      v2: the same stored rows (blocklist) and the organization policy's
--          PUBLISHED rules (POST /v1/org/policy/publish) with a network
--          target: block -> block, allow + requireApproval ->
--          manual_approval, allow + rateLimit -> rate_limit, allow -> allow;
--          identities empty or naming the org's user; the Default Rule is
--          not applied (workspace grants are not compiled into rules here);
--          their ruleId is the rule's logicalId (stable across publishes),
--    the strongest wins: block > manual_approval > rate_limit > allow.
--    - block: 403, `X-OneCLI-Gateway-Error: blocked_by_policy`,
--      {"error":"blocked_by_policy","message":...,"ruleId":...}
--    - manual_approval: held. An approval joins the gateway's queue
--      (onecli.standin.approvals; the client's headers minus the
--      authorization ones, bodyPreview, the agent, expiresAt = now +
--      approval_timeout: 180 s, POST /__control/approvals/settings
--      {approval_timeout = s}), waiting long polls get it at once, the
--      client's connection waits (the loop goes on). Approve: forwarded as
--      in 1. Deny: 403 approval_denied, expiry: 403 approval_expired, both
--      {"error":...,"message":...,"approvalId":...}.
--    - rate_limit (not counted), allow, no rule: forwarded.
--    CONNECT: only block rules without path, method or conditions apply.
-- 5. Upstream failures: refused or not connected within CONNECT_TIMEOUT:
--    502 upstream_unreachable; no complete answer within upstream_timeout
--    (60 s; settings {upstream_timeout = s}): 504 upstream_timeout; an
--    answer that is not HTTP or larger than MAX_RESPONSE: 502
--    bad_upstream_response. Each with X-OneCLI-Gateway-Error and a JSON
--    body {"error":...,"message":...}. Host names are resolved with a
--    blocking lookup (IPv4 first).
-- 6. The request log (/__control/requests): gateway = proxied = true, url
--    (the target without its query; CONNECT: host:port), path, query,
--    headers (Proxy-Authorization as "[redacted]"), agentId, ruleId,
--    approvalId, injected (header NAMES), injected_params (names), status,
--    decision: forwarded, tunnel, blocked, held (while waiting), approved
--    (then forwarded), denied, expired, unauthorized, unreachable, timeout,
--    bad_response, bad_request. Log lines (stderr) show method, url without
--    query, status and decision. Never a token or an injected value.
local socket = require("onecli.standin.socket")
local json = require("onecli.standin.json")
local http = require("onecli.standin.http")
local util = require("onecli.standin.util")
local store = require("onecli.standin.store")
local approvals = require("onecli.standin.approvals")

local _M = {}
local Proxy = {}
Proxy.__index = Proxy
local Upstream = {}
Upstream.__index = Upstream
local Tunnel = {}
Tunnel.__index = Tunnel

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, tonumber, setmetatable, type, floor = ipairs, tonumber, setmetatable, type, math.floor
local concat, format, char, gettime = table.concat, string.format, string.char, socket.gettime

_M.REALM = 'Basic realm="OneCLI Gateway"'
_M.ERROR_HEADER = "X-OneCLI-Gateway-Error"
_M.CONNECT_TIMEOUT = 10
_M.TUNNEL_IDLE = 300
_M.TUNNEL_BUFFER = 256 * 1024
_M.MAX_RESPONSE = http.MAX_BODY

local READ_SIZE = 65536
local ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n"
local RANK = { allow = 1, rate_limit = 2, manual_approval = 3, block = 4 }
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }
local NO_BODY = { [204] = true, [304] = true }

-- Never forwarded, either way (plus Proxy-* and what Connection names).
local HOP = {
  connection = true, ["keep-alive"] = true, te = true, trailer = true, ["transfer-encoding"] = true,
  upgrade = true, expect = true, ["content-length"] = true,
}

function _M.new(engine)
  return setmetatable({ engine = engine, held = {} }, Proxy)
end

-- Absolute-form or CONNECT: the proxy's, not the approvals API's.
function _M.is_proxy_request(req)
  return req.method == "CONNECT" or req.target:match("^%a[%w+.-]*://") ~= nil
end

------------------------------------------------------------------------------
-- Parsing helpers
------------------------------------------------------------------------------

local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[alphabet:byte(i)] = i - 1 end
end

local function b64decode(s)
  s = s:gsub("=+$", "")
  if s:find("[^%w+/]") then return nil end
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    bits = bits * 64 + B64[s:byte(i)]
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local b = floor(bits / 2 ^ nbits)
      out[#out + 1] = char(b)
      bits = bits - b * 2 ^ nbits
    end
  end
  return concat(out)
end

-- "host:port", "[v6]:port", "host" -> host (lower case), port | nil
local function split_authority(authority, default_port)
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:/?#%s%[%]@]+):?(%d*)$") end
  if not host then return nil end
  port = port ~= "" and tonumber(port) or default_port
  if not port or port < 1 or port > 65535 then return nil end
  return host:lower(), port
end

-- An absolute-form target -> { scheme, host, port, authority, path (no
-- query), query|nil, url (no query), full (with query) } | nil
local function parse_absolute(target)
  local scheme, rest = target:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil end
  local authority, tail = rest:match("^([^/?#]*)(.*)$")
  authority = authority:gsub("^.*@", "")   -- never keep userinfo
  tail = tail:gsub("#.*$", "")
  local path, query = tail:match("^([^?]*)%??(.*)$")
  if path == "" then path = "/" end
  scheme = scheme:lower()
  local host, port = split_authority(authority, scheme == "https" and 443 or 80)
  if not host then return nil end
  local has_query = tail:find("?", 1, true) ~= nil
  local url = scheme .. "://" .. authority .. path
  return { scheme = scheme, host = host, port = port, authority = authority, path = path,
    query = has_query and query or nil, url = url, full = has_query and (url .. "?" .. query) or url }
end

-- Lower-case names a Connection header lists (hop-by-hop too).
local function connection_tokens(headers)
  local set = {}
  for token in (headers.connection or ""):gmatch("[^,%s]+") do set[token:lower()] = true end
  return set
end

local function hop_by_hop(lname, named)
  return HOP[lname] or named[lname] or lname:sub(1, 6) == "proxy-"
end

local function absent(x) return x == nil or x == null or x == "" end

local function host_matches(pattern, host, port)
  if absent(pattern) then return false end
  pattern = pattern:lower()
  if pattern == "*" then return true end
  local bare, pport = pattern:match("^(.-):(%d+)$")
  if bare and not bare:find(":", 1, true) then
    if tonumber(pport) ~= port then return false end
    pattern = bare
  end
  local suffix = pattern:match("^%*(%..+)$")
  if suffix then return #host > #suffix and host:sub(-#suffix) == suffix end
  return pattern == host
end

-- pathPattern: absent = every path; "*" = any run of characters.
local function glob_matches(pattern, s)
  if absent(pattern) then return true end
  local lua_pattern = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  return s:match(lua_pattern) ~= nil
end

-- Body conditions (every one must hold): {target: "body", operator:
-- "contains", value, key?}; with key, the JSON body's member of that name.
local function conditions_hold(conditions, body)
  if typeof(conditions) ~= "array" then return true end   -- absent, or a v2 session policy
  body = body or ""
  local doc
  for _, c in ipairs(conditions) do
    local hay = body
    if not absent(c.key) then
      if doc == nil then doc = json.decode(body) or false end
      local member = typeof(doc) == "object" and doc[c.key] or nil
      if type(member) == "string" then hay = member
      elseif member ~= nil then hay = json.encode(member)
      else hay = "" end
    end
    if type(c.value) ~= "string" or not hay:find(c.value, 1, true) then return false end
  end
  return true
end

------------------------------------------------------------------------------
-- Replies of the proxy itself
------------------------------------------------------------------------------

-- extra: more body members ("ruleId", id, ...); headers: more headers.
local function error_reply(status, code, message, extra, headers)
  local body = obj("error", code, "message", message)
  for i = 1, #(extra or {}), 2 do json.set(body, extra[i], extra[i + 1]) end
  local list = { { _M.ERROR_HEADER, code } }
  for _, h in ipairs(headers or {}) do list[#list + 1] = h end
  return { status = status, body = json.encode(body), ctype = "application/json", headers = list }
end

-- Hand bytes to the client and end the exchange x (once). A synchronous
-- answer (conn.proxy_sync) lets the engine's own loop read the next
-- pipelined request; a later one restarts reading here.
function Proxy:finish(conn, req, x, bytes, status, decision, keepalive)
  if x.done then return end
  x.done = true
  if x.upstream then x.upstream:close() end
  json.set(x.entry, "status", status)
  json.set(x.entry, "decision", decision)
  self.engine:log(format("gateway proxy %s %s %d %s", req.method, x.url, status, decision))
  if conn.closed then return end
  keepalive = keepalive and req.keepalive and not self.engine.stopping
  conn.state = keepalive and "read" or "closing"
  self.engine:write(conn, bytes)
  if conn.state == "read" and not conn.proxy_sync then self.engine:process(conn) end
end

-- close: end the connection after this answer (a refused CONNECT).
function Proxy:reply(conn, req, x, res, decision, close)
  local keepalive = not close and req.keepalive and not self.engine.stopping
  local bytes = http.serialize(res, { mode = "gateway", keepalive = keepalive, version = req.version,
    method = req.method })
  self:finish(conn, req, x, bytes, res.status, decision, keepalive)
end

------------------------------------------------------------------------------
-- Agents, policy, injection
------------------------------------------------------------------------------

-- The agent whose token the request carries: agent, project | nil.
function Proxy:agent_for(req)
  local cred = (req.headers["proxy-authorization"] or ""):match("^[Bb][Aa][Ss][Ii][Cc]%s+(%S+)%s*$")
  local decoded = cred and b64decode(cred)
  local token = decoded and decoded:match("^[^:]*:(.+)$")
  if not token or token:sub(1, 4) ~= "aoc_" then return nil end
  for _, org in ipairs(self.engine.api:orgs()) do
    for _, project in ipairs(org.projects) do
      for _, agent in ipairs(project.agents) do
        if agent.access_token == token then return agent, project end
      end
    end
  end
  return nil
end

local function identities_apply(identities, org)
  if identities == nil or #identities == 0 then return true end
  for _, i in ipairs(identities) do
    if i.type == "user" and i.id == org.user.id then return true end
  end
  return false
end

local function v2_action(r)
  if r.action == "block" then return "block" end
  if r.require_approval then return "manual_approval" end
  if r.rate_limit then return "rate_limit" end
  return "allow"
end

-- The strongest matching rule: { action, id, name } | nil. connect: a
-- CONNECT (host only: block rules without path, method, conditions).
local function policy(x, req, connect)
  local t, agent, project = x.t, x.agent, x.project
  local org = project.org
  local best
  local function consider(action, id, name)
    if not RANK[action] or (connect and action ~= "block") then return end
    if not best or RANK[action] > RANK[best.action] then best = { action = action, id = id, name = name } end
  end
  local function fits(path_pattern, method, conditions)
    if connect then return absent(path_pattern) and absent(method) and typeof(conditions) ~= "array" end
    return glob_matches(path_pattern, t.path) and (absent(method) or method == req.method)
      and conditions_hold(conditions, req.body)
  end
  for _, list in ipairs({ project.rules, org.rules }) do
    for _, r in ipairs(list) do
      if r.enabled ~= false and r.host_pattern and (r.agent_id == nil or r.agent_id == agent.id)
        and host_matches(r.host_pattern, t.host, t.port) and fits(r.path_pattern, r.method, r.conditions) then
        consider(r.action, r.id, r.name)
      end
    end
  end
  if org.mode == "v2" and org.policy then
    for _, r in ipairs(org.policy.published or {}) do
      if r.enabled ~= false and not r.is_default and identities_apply(r.identities, org)
        and (connect or conditions_hold(r.conditions, req.body)) then
        for _, target in ipairs(r.targets or {}) do
          if target.kind == "network" and host_matches(target.hostPattern, t.host, t.port)
            and fits(target.pathPattern, target.method, connect and r.conditions or nil) then
            consider(v2_action(r), r.logical_id or r.id, r.name)
          end
        end
      end
    end
  end
  return best
end

-- Secrets that apply to the agent, newest first.
local function agent_secrets(agent, project)
  if project.mode == "v1" and agent.secret_mode == "all" then return store.with_org(project, "secrets") end
  local own = {}
  for _, id in ipairs(agent.secret_ids) do
    local s = store.find_visible(project, "secrets", id)
    if s then own[#own + 1] = s end
  end
  return store.newest_first(own)
end

-- kind ("header"|"param"), name, format, value | nil
local function injection_of(s)
  local inj, value = s.injection, s.value
  if inj and inj ~= null then
    if inj.headerName then return "header", inj.headerName, inj.valueFormat or "{value}", value end
    if inj.paramName then return "param", inj.paramName, inj.paramFormat or "{value}", value end
    return nil
  end
  local oauth = typeof(s.metadata) == "object" and s.metadata.authMode == "oauth"
  if s.type == "anthropic" then
    if oauth then return "header", "Authorization", "Bearer {value}", value end
    return "header", "x-api-key", "{value}", value
  end
  if s.type == "openai" then
    if oauth then
      local doc = json.decode(value)
      local tokens = typeof(doc) == "object" and doc.tokens
      value = typeof(tokens) == "object" and type(tokens.access_token) == "string" and tokens.access_token or value
    end
    return "header", "Authorization", "Bearer {value}", value
  end
  return nil
end

-- The injections for exchange x: { {kind, name, value} } (one per name).
local function injections(x)
  local t, out, seen = x.t, {}, {}
  for _, s in ipairs(agent_secrets(x.agent, x.project)) do
    if type(s.value) == "string" and host_matches(s.host_pattern, t.host, t.port)
      and glob_matches(s.path_pattern, t.path) then
      local kind, name, fmt, value = injection_of(s)
      local key = kind and (kind .. ":" .. name:lower())
      if key and not seen[key] then
        seen[key] = true
        value = fmt:gsub("{value}", function() return value end):gsub("[\r\n]", "")
        out[#out + 1] = { kind = kind, name = name, value = value }
      end
    end
  end
  return out
end

-- The request for the upstream, injected.
local function upstream_request(req, t, list)
  local target = t.path .. (t.query and ("?" .. t.query) or "")
  local replaced = {}
  for _, inj in ipairs(list) do
    if inj.kind == "header" then
      replaced[inj.name:lower()] = true
    else
      target = target .. (target:find("?", 1, true) and "&" or "?") .. util.percent_encode(inj.name) .. "="
        .. util.percent_encode(inj.value)
    end
  end
  local lines = { format("%s %s HTTP/1.1", req.method, target), "Host: " .. t.authority }
  local named = connection_tokens(req.headers)
  for _, h in ipairs(req.header_list) do
    local lname = h[1]
    if lname ~= "host" and not hop_by_hop(lname, named) and not replaced[lname] then
      lines[#lines + 1] = lname .. ": " .. h[2]
    end
  end
  for _, inj in ipairs(list) do
    if inj.kind == "header" then lines[#lines + 1] = inj.name .. ": " .. inj.value end
  end
  local body = req.body
  if body or BODY_METHODS[req.method] then lines[#lines + 1] = "Content-Length: " .. #(body or "") end
  lines[#lines + 1] = "Connection: close"
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

------------------------------------------------------------------------------
-- Upstream connections (non-blocking, served by the engine's loop)
------------------------------------------------------------------------------

-- cb: on_data(up, chunk), on_close(up, err|nil, while_connecting),
-- on_connect(up)?, can_read()? -> bool. Returns up | nil, err.
function Proxy:open(host, port, cb)
  local addr = host
  local v6 = host:find(":", 1, true) ~= nil
  if not v6 and not host:match("^[%d.]+$") then addr = socket.dns.toip(host) or host end
  local sock, err = (v6 and socket.tcp6 or socket.tcp)()
  if not sock then return nil, err end
  sock:settimeout(0)
  local ok
  ok, err = sock:connect(addr, port)
  if not ok and err ~= "timeout" then
    sock:close()
    return nil, err
  end
  -- connected or not, the first writable event finishes the connect
  local up = setmetatable({ engine = self.engine, sock = sock, addr = addr, port = port, connecting = true,
    out = "", cb = cb }, Upstream)
  self.engine:watch(sock, up)
  return up
end

function Upstream:wants_read()
  return not self.connecting and not self.closed and (not self.cb.can_read or self.cb.can_read())
end

function Upstream:wants_write()
  return not self.closed and (self.connecting or self.out ~= "")
end

function Upstream:on_writable()
  if self.connecting then
    local ok, err = self.sock:connect(self.addr, self.port)
    if not ok and err ~= "already connected" then return self:fail(err or "connection failed", true) end
    self.connecting = false
    self.sock:setoption("tcp-nodelay", true)
    if self.cb.on_connect then self.cb.on_connect(self) end
    if self.closed then return end
  end
  self:flush()
end

function Upstream:flush()
  while self.out ~= "" and not self.closed do
    local i, err, last = self.sock:send(self.out)
    local sent = i or last or 0
    self.out = self.out:sub(sent + 1)
    if err == "timeout" then return end
    if err then return self:fail(err) end
  end
  if self.closing then self:close() end
end

function Upstream:send(bytes)
  if self.closed then return end
  self.out = self.out .. bytes
  if not self.connecting then self:flush() end
end

function Upstream:on_readable()
  for _ = 1, 16 do
    if self.closed then return end
    local data, err, partial = self.sock:receive(READ_SIZE)
    local chunk = data or partial
    if chunk and chunk ~= "" then self.cb.on_data(self, chunk) end
    if self.closed or err == "timeout" then return end
    if err then return self:fail(err ~= "closed" and err or nil) end
    if self.cb.can_read and not self.cb.can_read() then return end
  end
end

function Upstream:fail(err, while_connecting)
  if self.closed then return end
  self:close()
  self.cb.on_close(self, err, while_connecting)
end

function Upstream:close()
  if self.closed then return end
  self.closed = true
  self.engine:unwatch(self.sock)
  self.sock:close()
end

-- Close once everything queued is sent.
function Upstream:close_after_drain()
  if self.out == "" or self.connecting then return self:close() end
  self.closing = true
end

------------------------------------------------------------------------------
-- Upstream answers
------------------------------------------------------------------------------

local function parse_response_head(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local status, reason = (lines[1] or ""):match("^HTTP/%d%.%d (%d%d%d) ?(.*)$")
  if not status then return nil end
  local list, map = {}, {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if name then
      list[#list + 1] = { name, value }
      local lname = name:lower()
      map[lname] = map[lname] and (map[lname] .. ", " .. value) or value
    end
  end
  return { status = tonumber(status), reason = reason, list = list, headers = map }
end

-- One answer from res.buf: head with body | nil (more data needed) |
-- false, why. eof: the upstream has closed.
local function take_response(res, method, eof)
  while not res.head do
    local s, e = res.buf:find("\r?\n\r?\n")
    if not s then
      if #res.buf > http.MAX_HEAD then return false, "the upstream's answer head is too large" end
      if eof then return false, "the upstream closed the connection without an answer" end
      return nil
    end
    local head = parse_response_head(res.buf:sub(1, s - 1))
    if not head then return false, "the upstream's answer is not HTTP" end
    res.buf = res.buf:sub(e + 1)
    if head.status >= 200 then res.head = head end   -- 1xx interim answers are dropped
  end
  local head, buf = res.head, res.buf
  local te = (head.headers["transfer-encoding"] or ""):lower()
  local length = head.headers["content-length"]
  if method == "HEAD" or NO_BODY[head.status] then
    head.body = ""
  elseif te:find("chunked", 1, true) then
    local body, rest = http.take_chunked(buf)
    if body == false then
      return false, rest == 413 and "the upstream's answer is too large" or "bad chunked encoding upstream"
    end
    if body == nil then
      if eof then return false, "the upstream closed the connection mid-answer" end
      return nil
    end
    head.body = body
  elseif length then
    local n = length:match("^%d+$") and tonumber(length)
    if not n then return false, "bad Content-Length upstream" end
    if n > _M.MAX_RESPONSE then return false, "the upstream's answer is too large" end
    if #buf < n then
      if eof then return false, "the upstream closed the connection mid-answer" end
      return nil
    end
    head.body = buf:sub(1, n)
  else
    if #buf > _M.MAX_RESPONSE then return false, "the upstream's answer is too large" end
    if not eof then return nil end
    head.body = buf
  end
  return head
end

-- The answer as the client gets it.
local function relay_bytes(head, req, keepalive)
  local named = connection_tokens(head.headers)
  local reason = head.reason ~= "" and head.reason or http.reason(head.status)
  local lines = { format("HTTP/1.1 %d %s", head.status, reason) }
  local no_body = req.method == "HEAD" or NO_BODY[head.status]
  for _, h in ipairs(head.list) do
    local lname = h[1]:lower()
    if not hop_by_hop(lname, named) or (lname == "content-length" and no_body) then
      lines[#lines + 1] = h[1] .. ": " .. h[2]
    end
  end
  if not no_body then lines[#lines + 1] = "Content-Length: " .. #head.body end
  if not keepalive then lines[#lines + 1] = "Connection: close" end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (no_body and "" or head.body)
end

------------------------------------------------------------------------------
-- Forwarding (absolute-form)
------------------------------------------------------------------------------

local function unreachable(x, err)
  return error_reply(502, "upstream_unreachable", format("Could not connect to %s: %s", x.t.authority,
    tostring(err or "connection failed")))
end

function Proxy:forward(conn, req, x)
  local list = injections(x)
  local names, params = array(), array()
  for _, inj in ipairs(list) do
    if inj.kind == "header" then names[#names + 1] = inj.name else params[#params + 1] = inj.name end
  end
  json.set(x.entry, "injected", names)
  if #params > 0 then json.set(x.entry, "injected_params", params) end
  local res = { buf = "" }
  local function complete(eof)
    local head, why = take_response(res, req.method, eof)
    if head == nil then return end
    if head == false then
      return self:reply(conn, req, x, error_reply(502, "bad_upstream_response", why), "bad_response")
    end
    local keepalive = req.keepalive and not self.engine.stopping
    self:finish(conn, req, x, relay_bytes(head, req, keepalive), head.status, "forwarded", keepalive)
  end
  local up, err = self:open(x.t.host, x.t.port, {
    on_data = function(_, chunk)
      res.buf = res.buf .. chunk
      complete(false)
    end,
    on_close = function(_, e, while_connecting)
      if while_connecting then return self:reply(conn, req, x, unreachable(x, e), "unreachable") end
      complete(true)
    end,
  })
  if not up then return self:reply(conn, req, x, unreachable(x, err), "unreachable") end
  up.out = upstream_request(req, x.t, list)
  x.upstream = up
  local engine = self.engine
  engine:after(_M.CONNECT_TIMEOUT, function()
    if not x.done and up.connecting then
      self:reply(conn, req, x, unreachable(x, "timed out connecting"), "unreachable")
    end
  end)
  local limit = engine.gateway.upstream_timeout
  engine:after(limit, function()
    if x.done then return end
    self:reply(conn, req, x, error_reply(504, "upstream_timeout",
      format("%s did not answer within %s seconds", x.t.authority, tostring(limit))), "timeout")
  end)
end

------------------------------------------------------------------------------
-- Requests held for approval
------------------------------------------------------------------------------

function Proxy:hold(conn, req, x)
  local timeout = self.engine.gateway.approval_timeout
  local headers = obj("host", x.t.authority)
  local named = connection_tokens(req.headers)
  for _, h in ipairs(req.header_list) do
    if h[1] ~= "host" and not hop_by_hop(h[1], named) and headers[h[1]] == nil then
      json.set(headers, h[1], req.headers[h[1]])
    end
  end
  local a, err = approvals.enqueue(x.project.org, x.project, obj("project_id", x.project.id, "agent", x.agent.id,
    "method", req.method, "url", x.t.full, "headers", headers, "body", req.body or null, "expires_in", timeout))
  if not a then
    return self:reply(conn, req, x, error_reply(500, "internal_error", "could not hold the request: " .. err),
      "bad_request")
  end
  json.set(x.entry, "decision", "held")
  json.set(x.entry, "approvalId", a.id)
  self.engine:log(format("gateway proxy %s %s held %s", req.method, x.url, a.id))
  self.held[#self.held + 1] = { conn = conn, req = req, x = x, approval = a }
  self.engine:after(timeout + 0.01, function() self:check_held() end)
  self.engine:wake()   -- the polls waiting for approvals get it now
end

-- Release the held requests whose approval was decided or expired (the
-- engine calls this after every API and gateway request, and a timer at
-- each expiry).
function Proxy:check_held()
  if #self.held == 0 then return end
  local now, keep, due = gettime(), {}, {}
  for _, h in ipairs(self.held) do
    h.state = approvals.state(h.approval, now)
    if h.state == "pending" then keep[#keep + 1] = h else due[#due + 1] = h end
  end
  if #due == 0 then return end
  self.held = keep
  for _, h in ipairs(due) do self:resolve(h) end
end

function Proxy:resolve(h)
  local conn, req, x, id = h.conn, h.req, h.x, h.approval.id
  if h.state == "approved" then
    json.set(x.entry, "decision", "approved")
    if conn.closed or conn.peer_closed then   -- nobody is waiting for the answer
      x.done = true
      self.engine:log(format("gateway proxy %s %s approved, client gone", req.method, x.url))
      return self.engine:close(conn)
    end
    return self:forward(conn, req, x)
  end
  if h.state == "denied" then
    return self:reply(conn, req, x, error_reply(403, "approval_denied", "The request was denied by a reviewer.",
      { "approvalId", id }), "denied")
  end
  self:reply(conn, req, x, error_reply(403, "approval_expired",
    "No decision was made before the approval request expired.", { "approvalId", id }), "expired")
end

------------------------------------------------------------------------------
-- Entry points
------------------------------------------------------------------------------

local function invalid_token()
  return error_reply(407, "invalid_agent_token", "Proxy authentication required: send Proxy-Authorization: Basic "
    .. "base64(x:<agent access token>), e.g. the proxy URL http://x:<token>@host:port of the agent's "
    .. "container config.", nil, { { "Proxy-Authenticate", _M.REALM } })
end

local function blocked(rule)
  return error_reply(403, "blocked_by_policy", format('Blocked by policy rule "%s".', tostring(rule.name or rule.id)),
    { "ruleId", rule.id })
end

function Proxy:handle(conn, req)
  conn.state = "busy"
  conn.proxy_sync = true
  if req.method == "CONNECT" then self:connect(conn, req) else self:absolute(conn, req) end
  conn.proxy_sync = nil
end

function Proxy:authenticate(req, x)
  local agent, project = self:agent_for(req)
  if not agent then return false end
  x.agent, x.project = agent, project
  json.set(x.entry, "agentId", agent.id)
  return true
end

function Proxy:absolute(conn, req)
  local t = parse_absolute(req.target)
  local x = { t = t, url = t and t.url or "(bad target)" }
  x.entry = self.engine.control:record_proxied(req, conn, { path = t and t.path or req.path,
    query = t and t.query or nil, url = x.url })
  if not t then
    return self:reply(conn, req, x, error_reply(400, "bad_proxy_request", "The request target is not a valid URL."),
      "bad_request")
  end
  if t.scheme ~= "http" then
    return self:reply(conn, req, x, error_reply(400, "unsupported_scheme",
      "Only http:// targets can be forwarded; use CONNECT for https."), "bad_request")
  end
  if not self:authenticate(req, x) then return self:reply(conn, req, x, invalid_token(), "unauthorized") end
  local rule = policy(x, req, false)
  if rule then json.set(x.entry, "ruleId", rule.id) end
  if rule and rule.action == "block" then return self:reply(conn, req, x, blocked(rule), "blocked") end
  if rule and rule.action == "manual_approval" then return self:hold(conn, req, x) end
  self:forward(conn, req, x)
end

function Proxy:connect(conn, req)
  local host, port = split_authority(req.target, nil)
  local x = { t = { host = host, port = port, authority = req.target, path = req.target }, url = req.target }
  x.entry = self.engine.control:record_proxied(req, conn, { path = req.target, url = req.target })
  if not host then
    return self:reply(conn, req, x, error_reply(400, "bad_proxy_request", "CONNECT needs host:port."),
      "bad_request", true)
  end
  if not self:authenticate(req, x) then return self:reply(conn, req, x, invalid_token(), "unauthorized", true) end
  local rule = policy(x, req, true)
  if rule then
    json.set(x.entry, "ruleId", rule.id)
    return self:reply(conn, req, x, blocked(rule), "blocked", true)
  end
  local tunnel = setmetatable({ proxy = self, engine = self.engine, conn = conn, req = req, x = x }, Tunnel)
  local up, err = self:open(host, port, {
    on_connect = function() tunnel:established() end,
    on_data = function(_, chunk) tunnel:from_upstream(chunk) end,
    on_close = function(_, e, while_connecting)
      if while_connecting then return self:reply(conn, req, x, unreachable(x, e), "unreachable", true) end
      tunnel:upstream_closed()
    end,
    can_read = function() return tunnel:upstream_can_read() end,
  })
  if not up then return self:reply(conn, req, x, unreachable(x, err), "unreachable", true) end
  tunnel.up, x.upstream = up, up
  self.engine:after(_M.CONNECT_TIMEOUT, function()
    if not x.done and up.connecting then
      self:reply(conn, req, x, unreachable(x, "timed out connecting"), "unreachable", true)
    end
  end)
end

------------------------------------------------------------------------------
-- CONNECT tunnels
------------------------------------------------------------------------------

function Tunnel:established()
  local conn, x, up = self.conn, self.x, self.up
  x.done = true
  json.set(x.entry, "status", 200)
  json.set(x.entry, "decision", "tunnel")
  self.engine:log(format("gateway proxy CONNECT %s 200 tunnel", x.url))
  if conn.closed then return up:close() end
  conn.state, conn.tunnel = "tunnel", self
  conn.on_close = function() up:close_after_drain() end
  local early = conn.inbuf   -- bytes the client sent right behind CONNECT
  conn.inbuf = ""
  self.engine:write(conn, ESTABLISHED)
  if early ~= "" then up:send(early) end
  if conn.peer_closed then self.engine:close(conn) end
end

function Tunnel:from_client(chunk, err)
  if chunk and chunk ~= "" then self.up:send(chunk) end
  if err and err ~= "timeout" then self.engine:close(self.conn) end   -- the upstream side drains, then closes
end

function Tunnel:from_upstream(chunk)
  self.engine:write(self.conn, chunk)
end

function Tunnel:upstream_closed()
  local conn = self.conn
  if conn.closed then return end
  conn.state = "closing"
  self.engine:write(conn, "")   -- closes once what is queued has gone out
end

function Tunnel:client_can_read()
  return not self.up.closed and #self.up.out < _M.TUNNEL_BUFFER
end

function Tunnel:upstream_can_read()
  return not self.conn.closed and #self.conn.out < _M.TUNNEL_BUFFER
end

return _M
