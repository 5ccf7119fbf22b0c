-- The gateway side of the stand-in (reference §6.14, error shape G of
-- §5.1): approvals long poll and decisions, on the gateway's own port.
--
--   GET  /v1/approvals/pending[?exclude=id,id]   (also /api/...)
--   POST /v1/approvals/{id}/decision             {"decision":"approve"|"deny"}
--   GET  /v1/org/approvals/pending               (org key; v1 cloud edition, v2)
--
-- Conventions of the real gateway (an axum server): machine-token JSON
-- errors ({"error":"approval_not_found"}), plain-text 401/415/422 bodies,
-- 400 with an empty body for unknown routes. A poll with nothing pending
-- is held (see engine.lua) until an approval arrives or poll_hold passes.
--
-- The same listener is the gateway's HTTP forward proxy (absolute-form
-- requests and CONNECT, authenticated with an agent's access token): see
-- onecli.standin.proxy, which the engine hands those requests to. Its
-- settings live here: approval_timeout (how long a request held for
-- approval waits: the polls' timeoutSeconds) and upstream_timeout.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local store = require("onecli.standin.store")
local approvals = require("onecli.standin.approvals")

local _M = {}
local G = {}
G.__index = G

local obj, array, typeof = json.obj, json.array, json.typeof
local ipairs, format, setmetatable = ipairs, string.format, setmetatable

_M.DEFAULT_POLL_HOLD = 30
-- Seconds a proxied request may take upstream (connect, send, answer).
_M.DEFAULT_UPSTREAM_TIMEOUT = 60

local TEXT = "text/plain; charset=utf-8"
local NO_PROJECT = "no project found"
local DECODE = "Failed to deserialize the JSON body into the target type: "

-- api: the onecli.standin.api instance (state, mode, edition); opts.poll_hold,
-- opts.approval_timeout, opts.upstream_timeout
function _M.new(api, opts)
  opts = opts or {}
  return setmetatable({ api = api, poll_hold = opts.poll_hold or _M.DEFAULT_POLL_HOLD,
    approval_timeout = opts.approval_timeout or approvals.TIMEOUT_SECONDS,
    upstream_timeout = opts.upstream_timeout or _M.DEFAULT_UPSTREAM_TIMEOUT }, G)
end

local function text(status, body)
  return { status = status, body = body, ctype = TEXT }
end

local function json_reply(status, value)
  return { status = status, body = json.encode(value), ctype = "application/json" }
end

local function empty(status)
  return { status = status, body = "" }
end

------------------------------------------------------------------------------
-- Authentication: returns { project = p } / { org = true } or nil, reply.
------------------------------------------------------------------------------

function G:auth(req, org_route)
  local api, org = self.api, self.api.org
  local token = (req.headers.authorization or ""):match("^[Bb]earer (.+)$")
  local header = req.headers["x-project-id"]
  if api.mode == "v2" then header = req.headers["x-workspace-id"] or header end
  if not api:strict() then
    -- v1 local mode: the local admin's project, whatever the key
    local main = api:main_project()
    if token == org.org_key and header and header ~= main.id then return nil, text(401, NO_PROJECT) end
    return { project = main }
  end
  if not token then return nil, text(401, NO_PROJECT) end
  if token == org.org_key then
    if org_route then return { org = true } end
    local project = header and store.find(org.projects, header)
    if not project then return nil, text(401, NO_PROJECT) end
    return { project = project }
  end
  local project = token:sub(1, 3) == "oc_" and store.project_for_key(org, token)
  if not project then return nil, text(401, NO_PROJECT) end
  if org_route then return nil, text(403, "organization API key required") end
  return { project = project }
end

------------------------------------------------------------------------------
-- Pending (long poll)
------------------------------------------------------------------------------

local function exclude_set(q)
  local set = {}
  for id in (q or ""):gmatch("[^,]+") do set[util.trim(id)] = true end
  return set
end

function G:pending_reply(project_id, exclude)
  local list = approvals.pending(self.api.org, project_id, exclude)
  if #list == 0 then return nil end
  local out = array()
  for i, a in ipairs(list) do out[i] = approvals.shape(a, self.api.mode) end
  return json_reply(200, obj("requests", out, "timeoutSeconds", self.approval_timeout))
end

-- Returns a reply, or { hold = { seconds, poll = fn -> reply|nil, timeout = fn -> reply } }.
function G:pending(req, org_route)
  local grant, denied = self:auth(req, org_route)
  if not grant then return denied end
  local project_id = grant.project and grant.project.id
  local exclude = exclude_set(util.parse_query(req.query_raw).exclude)
  local res = self:pending_reply(project_id, exclude)
  if res then return res end
  local function poll() return self:pending_reply(project_id, exclude) end
  local function timeout()
    return json_reply(200, obj("requests", array(), "timeoutSeconds", self.approval_timeout))
  end
  return { hold = { seconds = self.poll_hold, poll = poll, timeout = timeout } }
end

------------------------------------------------------------------------------
-- Decision
------------------------------------------------------------------------------

local function is_json_type(ctype)
  local essence = (ctype or ""):lower():match("^%s*([^;%s]+)")
  if not essence then return false end
  return essence == "application/json" or essence:match("^application/[%w.-]+%+json$") ~= nil
end

-- 1-based line and column of byte position pos in text.
local function line_col(s, pos)
  local line, last_nl = 1, 0
  for i = 1, pos - 1 do
    if s:byte(i) == 10 then line, last_nl = line + 1, i end
  end
  return line, pos - last_nl
end

local function at(raw, pos)
  local line, col = line_col(raw, pos)
  return format(" at line %d column %d", line, col)
end

local function serde_type(value)
  local t = typeof(value)
  if t == "number" then
    if value == math.floor(value) then return format("integer `%d`", value) end
    return format("floating point `%s`", tostring(value))
  end
  if t == "boolean" then return format("boolean `%s`", tostring(value)) end
  if t == "array" then return "sequence" end
  if t == "object" then return "map" end
  if t == "null" then return "null" end
  return "string"
end

-- serde-style 422 for a body that is JSON but not {decision: approve|deny}.
local function check_decision(raw, body)
  if typeof(body) ~= "object" then
    return text(422, DECODE .. "invalid type: " .. serde_type(body) .. ", expected struct DecisionRequest"
      .. at(raw, #raw))
  end
  local d = body.decision
  if d == nil then
    local close = raw:match(".*()}") or #raw
    return text(422, DECODE .. "missing field `decision`" .. at(raw, close))
  end
  local _, value_end = raw:find('"decision"%s*:%s*"[^"]*"')
  local pos = value_end or #raw
  if typeof(d) ~= "string" then
    return text(422, DECODE .. "decision: invalid type: " .. serde_type(d) .. ", expected variant identifier"
      .. at(raw, pos))
  end
  if d ~= "approve" and d ~= "deny" then
    return text(422, DECODE .. format("decision: unknown variant `%s`, expected `approve` or `deny`", d)
      .. at(raw, pos))
  end
  return nil
end

function G:decide(req, id)
  local grant, denied = self:auth(req, false)
  if not grant then return denied end
  if not is_json_type(req.headers["content-type"]) then
    return text(415, "Expected request with `Content-Type: application/json`")
  end
  local raw = req.body or ""
  local body, err = json.decode(raw)
  if body == nil then
    return text(400, "Failed to parse the request body as JSON: " .. tostring(err or "EOF while parsing a value"))
  end
  local bad = check_decision(raw, body)
  if bad then return bad end
  local a = approvals.find(self.api.org, id)
  if not a or a.project_id ~= grant.project.id then return json_reply(404, obj("error", "approval_not_found")) end
  if approvals.state(a) == "expired" then return json_reply(410, obj("error", "approval_expired")) end
  -- A repeated decision (a client retry) succeeds again; the first one stands.
  a.decision = a.decision or body.decision
  a.decisions = a.decisions + 1
  return json_reply(200, obj("success", true))
end

------------------------------------------------------------------------------
-- Routing
------------------------------------------------------------------------------

local function normalize(path)
  if path:sub(1, 5) == "/api/" then return "/v1/" .. path:sub(6) end
  return path
end

function G:handle(req)
  local path = normalize(req.path)
  local m = req.method
  if path == "/v1/approvals/pending" and m == "GET" then return self:pending(req, false) end
  if path == "/v1/org/approvals/pending" and m == "GET" and self.api:strict() then
    return self:pending(req, true)
  end
  local id = path:match("^/v1/approvals/([^/]+)/decision$")
  if id and m == "POST" then return self:decide(req, util.percent_decode(id)) end
  return empty(400)
end

return _M
