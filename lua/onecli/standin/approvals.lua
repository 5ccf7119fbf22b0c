-- Gateway approval requests of the stand-in (reference §6.14): what the
-- gateway's long poll hands out and what the control API enqueues.
--
-- An approval: { id, project_id, method, url, host, path, headers (object),
-- body_preview, summary, agent {id, name, externalId}, created_at,
-- expires_at (epoch seconds), decision ("approve"|"deny"|nil),
-- decisions (how many decision calls succeeded) }.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local store = require("onecli.standin.store")

local _M = {}

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, gettime = ipairs, require("onecli.standin.socket").gettime

_M.TIMEOUT_SECONDS = 180
local DEFAULT_URL = "https://api.github.com/repos/onecli/onecli/issues"
local DEFAULT_BODY = '{"title":"Stand-in approval request","body":"Opened by an agent"}'
local SENSITIVE = { authorization = true, ["proxy-authorization"] = true, cookie = true, ["x-api-key"] = true }

-- "pending", "approved", "denied" or "expired".
function _M.state(a, now)
  if a.decision == "approve" then return "approved" end
  if a.decision == "deny" then return "denied" end
  if (now or gettime()) >= a.expires_at then return "expired" end
  return "pending"
end

function _M.find(org, id)
  return store.find(org.approvals, id)
end

-- Pending approvals of a project (project_id nil: of every project), oldest
-- first, skipping the ids in the set `exclude`.
function _M.pending(org, project_id, exclude)
  local now, out = gettime(), {}
  for _, a in ipairs(org.approvals) do
    if (not project_id or a.project_id == project_id) and not (exclude and exclude[a.id])
      and _M.state(a, now) == "pending" then
      out[#out + 1] = a
    end
  end
  return out
end

local function agent_shape(agent)
  return obj("id", agent.id, "name", agent.name, "externalId", agent.externalId or null)
end

-- PendingApproval (v2 adds workspaceId beside the legacy projectId).
function _M.shape(a, mode)
  return obj("id", a.id, "workspaceId", mode == "v2" and a.project_id or nil, "projectId", a.project_id,
    "method", a.method, "url", a.url, "host", a.host, "path", a.path, "headers", a.headers,
    "bodyPreview", a.body_preview or null, "summary", a.summary or null, "agent", agent_shape(a.agent),
    "createdAt", util.iso(a.created_at), "expiresAt", util.iso(a.expires_at))
end

-- The control API's view: the shape plus state, decision and decisions.
function _M.control_shape(a, mode)
  local out = _M.shape(a, mode)
  json.set(out, "state", _M.state(a))
  json.set(out, "decision", a.decision or null)
  json.set(out, "decisions", a.decisions)
  return out
end

function _M.list(org, mode)
  local out = array()
  for i, a in ipairs(org.approvals) do out[i] = _M.control_shape(a, mode) end
  return out
end

------------------------------------------------------------------------------
-- Enqueue (control API)
------------------------------------------------------------------------------

local function is_string_map(t)
  if typeof(t) ~= "object" then return false end
  for _, k in ipairs(json.keys(t)) do
    if typeof(t[k]) ~= "string" then return false end
  end
  return true
end

local function pick_agent(project, spec)
  if typeof(spec) == "object" then
    if typeof(spec.id) ~= "string" or typeof(spec.name) ~= "string" then
      return nil, "agent object needs string id and name"
    end
    return { id = spec.id, name = spec.name, externalId = typeof(spec.externalId) == "string" and spec.externalId }
  end
  if spec ~= nil and typeof(spec) ~= "string" then return nil, "agent must be an identifier, an id or an object" end
  local agent
  if spec then
    agent = store.find_by(project.agents, "identifier", spec) or store.find(project.agents, spec)
    if not agent then return nil, "no agent " .. spec .. " in project " .. project.id end
  else
    agent = store.agents_ordered(project)[1]
  end
  if not agent then
    return { id = "00000000-0000-4000-8000-000000000000", name = "Stand-in Agent", externalId = "standin-agent" }
  end
  return { id = agent.id, name = agent.name, externalId = agent.identifier }
end

local function check(b)
  if typeof(b) ~= "object" then return "body must be a JSON object" end
  if b.id ~= nil and (typeof(b.id) ~= "string" or b.id == "") then return "id must be a non-empty string" end
  if b.method ~= nil and typeof(b.method) ~= "string" then return "method must be a string" end
  if b.url ~= nil and (typeof(b.url) ~= "string" or not b.url:match("^%a[%w+.-]*://[^/?#]+")) then
    return "url must be an absolute URL"
  end
  if b.expires_in ~= nil and not (typeof(b.expires_in) == "number" and b.expires_in >= 0) then
    return "expires_in must be a number of seconds >= 0"
  end
  if b.project_id ~= nil and typeof(b.project_id) ~= "string" then return "project_id must be a string" end
  if b.headers ~= nil and not is_string_map(b.headers) then return "headers must be an object of strings" end
  if b.body ~= nil and b.body ~= null and typeof(b.body) ~= "string" then return "body must be a string or null" end
  if b.summary ~= nil and b.summary ~= null and typeof(b.summary) ~= "object" then
    return "summary must be an object or null"
  end
  return nil
end

local function clean_headers(h)
  local out = obj()
  if h == nil then
    json.set(out, "content-type", "application/json")
    json.set(out, "user-agent", "standin-agent/1.0")
    return out
  end
  for _, k in ipairs(json.keys(h)) do
    if not SENSITIVE[k:lower()] then json.set(out, k:lower(), h[k]) end
  end
  return out
end

-- Returns approval | nil, message.
function _M.enqueue(org, main, b)
  local err = check(b)
  if err then return nil, err end
  if b.id and _M.find(org, b.id) then return nil, "an approval with id " .. b.id .. " already exists" end
  local project = main
  if b.project_id then
    project = store.find(org.projects, b.project_id)
    if not project then return nil, "no project " .. b.project_id end
  end
  local agent
  agent, err = pick_agent(project, b.agent)
  if not agent then return nil, err end
  local method = (b.method or "POST"):upper()
  local url = b.url or DEFAULT_URL
  local host, path = url:match("^%a[%w+.-]*://([^/?#]+)([^?#]*)")
  local body = b.body
  if body == nil then body = method ~= "GET" and method ~= "HEAD" and method ~= "DELETE" and DEFAULT_BODY or nil end
  if body == null then body = nil end
  local now = gettime()
  local a = {
    id = b.id or util.uuid4(), project_id = project.id, method = method, url = url,
    host = host:gsub("^.*@", ""), path = path ~= "" and path or "/", headers = clean_headers(b.headers),
    body_preview = body and body:sub(1, 1000) or nil, summary = b.summary ~= null and b.summary or nil,
    agent = agent, created_at = now,
    expires_at = now + (b.expires_in or _M.TIMEOUT_SECONDS), decisions = 0,
  }
  org.approvals[#org.approvals + 1] = a
  return a
end

return _M
