-- In-memory data of the stand-in.
--
-- One organization (the "org" table: org key, the one user, org-level
-- secrets/rules/connections/app configs/settings, the v2 org policy, the
-- gateway's approvals) holding one or more projects (v2: workspaces). A
-- project table holds the project-scoped data (agents, secrets, rules,
-- connections, app configs) and a few references to its organization
-- (org, user, mode, org_key), so route handlers can keep using `ctx.state`.
local util = require("onecli.standin.util")

local _M = {}

local ipairs, remove, sort, gettime = ipairs, table.remove, table.sort, require("onecli.standin.socket").gettime

local function root(state) return state.org or state end

function _M.next_seq(state)
  local r = root(state)
  r.seq = r.seq + 1
  return r.seq
end

local function stamp(state, record)
  record.id = record.id or util.uuid4()
  record.seq = _M.next_seq(state)
  record.created_at = record.created_at or util.iso()
  return record
end

-- Leak scanning (.ci/leak-scan.lua): with ONECLI_SPEC_KEYS_FILE set, every
-- agent token the stand-in makes is recorded there as well, so the scanner
-- looks for each one in everything the suite printed.
local function record_token(token)
  local path = os.getenv("ONECLI_SPEC_KEYS_FILE")
  if path and path ~= "" then
    local f = io.open(path, "a")
    if f then
      f:write("agent_token ", token, "\n")
      f:close()
    end
  end
  return token
end

function _M.new_token()
  return record_token("aoc_" .. util.hex(64))
end

function _M.new_api_key()
  return "oc_" .. util.hex(64)
end

-- "My Project!" -> "my-project"
function _M.slugify(name)
  return (name:lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", ""))
end

-- opts: mode, edition, api_key, org_key, project_id
function _M.new(opts)
  local now = gettime()
  local org = {
    mode = opts.mode,
    edition = opts.edition or "oss",
    org_key = opts.org_key,
    id = "standinorganizat",
    seq = 0,
    user = {
      id = "5ee1d1b5-6c7a-4e43-9a51-0d2b8f0c5a11",
      email = opts.mode == "v1" and "admin@localhost" or "acceptance@example.com",
      name = opts.mode == "v1" and "Local Admin" or "Acceptance User",
      created_at = util.iso(now - 3600),
    },
    projects = {},
    -- organization-scoped resources (v1 cloud edition, v2)
    secrets = {}, rules = {}, connections = {}, app_configs = {}, oauth_states = {},
    settings = { policy_mode = "allow" },
    policy = { rules = {}, published = {}, generation = 0 },
    -- keys of provisioned team members: key -> project id
    member_keys = {},
    -- gateway approvals, in creation order
    approvals = {},
  }
  _M.add_project(org, {
    id = opts.project_id, api_key = opts.api_key,
    name = opts.mode == "v1" and "Default Project" or "Default Workspace",
    created_at = util.iso(now - 3600),
  })
  return org
end

-- The partner account of the v1 cloud edition (reference §6.15): its key,
-- members (one seeded owner), partner secrets and the organizations it
-- created (full organization tables, see onecli.standin.partner).
function _M.new_partner(key)
  return {
    key = key, seq = 0, projects = {}, secrets = {}, orgs = {},
    members = { {
      id = "7a1c0e2b-3f4d-4c5e-8a6b-9d0e1f2a3b4c", email = "owner@partner.example", role = "owner",
      created_at = util.iso(gettime() - 3600),
    } },
  }
end

function _M.add_project(org, fields)
  local project = stamp(org, {
    id = fields.id or util.lower_letters(16),
    name = fields.name, slug = _M.slugify(fields.name), created_at = fields.created_at,
    api_key = fields.api_key or _M.new_api_key(),
    org = org, user = org.user, mode = org.mode, edition = org.edition,
    agents = {}, secrets = {}, rules = {}, connections = {}, app_configs = {},
  })
  project.project_id = project.id
  org.projects[#org.projects + 1] = project
  if org.mode == "v1" then
    _M.add_agent(project, { name = "Default Agent", identifier = "default", is_default = true })
  end
  return project
end

-- The project the stand-in started with (or the oldest one left).
function _M.main_project(org, initial_id)
  return _M.find(org.projects, initial_id) or org.projects[1]
end

-- Project whose API key (owner's or a provisioned member's) is key.
function _M.project_for_key(org, key)
  for _, p in ipairs(org.projects) do
    if p.api_key == key then return p end
  end
  local id = org.member_keys[key]
  return id and _M.find(org.projects, id) or nil
end

function _M.add_agent(state, fields)
  local agent = stamp(state, {
    name = fields.name, identifier = fields.identifier,
    access_token = _M.new_token(),
    is_default = fields.is_default or false,
    secret_mode = fields.secret_mode or "all",
    secret_ids = fields.secret_ids or {},
    connection_ids = fields.connection_ids or {},
    -- v1: connection id -> session policy object; v2: connection id -> grant
    session_policies = fields.session_policies or {},
    grants = {},
    kind = fields.kind or "byo",
    harness = fields.harness, model = fields.model, instructions = fields.instructions,
  })
  state.agents[#state.agents + 1] = agent
  return agent
end

function _M.find(list, id)
  if id == nil then return nil end
  for i, item in ipairs(list) do
    if item.id == id then return item, i end
  end
  return nil
end

function _M.remove(list, id)
  local _, i = _M.find(list, id)
  if i then remove(list, i) end
  return i ~= nil
end

function _M.find_by(list, key, value)
  for _, item in ipairs(list) do
    if item[key] == value then return item end
  end
  return nil
end

-- Copy of list sorted newest first (by creation sequence).
function _M.newest_first(list, filter)
  local out = {}
  for _, item in ipairs(list) do
    if not filter or filter(item) then out[#out + 1] = item end
  end
  sort(out, function(a, b) return a.seq > b.seq end)
  return out
end

-- Project items followed by the organization's, newest first overall.
function _M.with_org(state, field, filter)
  local out = {}
  for _, item in ipairs(state[field]) do out[#out + 1] = item end
  if state.org then
    for _, item in ipairs(state.org[field]) do out[#out + 1] = item end
  end
  return _M.newest_first(out, filter)
end

-- A connection or secret visible to the project (its own or the org's).
function _M.find_visible(state, field, id)
  local item = _M.find(state[field], id)
  if item then return item, "project" end
  if state.org then
    item = _M.find(state.org[field], id)
    if item then return item, "organization" end
  end
  return nil
end

function _M.default_agent(state)
  return _M.find_by(state.agents, "is_default", true)
end

-- Agents: default first, then newest first (reference §4).
function _M.agents_ordered(state)
  local out = _M.newest_first(state.agents)
  sort(out, function(a, b)
    if a.is_default ~= b.is_default then return a.is_default end
    return a.seq > b.seq
  end)
  return out
end

local function each_agent(state, fn)
  for _, p in ipairs(root(state).projects) do
    for _, agent in ipairs(p.agents) do fn(agent) end
  end
end

-- Drop id from every agent's list `field` (secret_ids / connection_ids) in
-- every project of the organization.
function _M.remove_everywhere(state, field, id)
  each_agent(state, function(agent)
    local ids = agent[field]
    for i = #ids, 1, -1 do
      if ids[i] == id then remove(ids, i) end
    end
    if field == "connection_ids" then
      agent.session_policies[id] = nil
      agent.grants[id] = nil
    end
  end)
end

-- Delete the connections of provider from the list (project or org table).
function _M.delete_connections(state, provider)
  for i = #state.connections, 1, -1 do
    local conn = state.connections[i]
    if conn.provider == provider then
      _M.remove_everywhere(state, "connection_ids", conn.id)
      remove(state.connections, i)
    end
  end
end

function _M.add_connection(state, fields)
  local conn = stamp(state, {
    provider = fields.provider, label = fields.label, status = "connected",
    scopes = fields.scopes or {}, metadata = fields.metadata,
    scope = state.org and "project" or "organization",
  })
  conn.connected_at = conn.created_at
  state.connections[#state.connections + 1] = conn
  return conn
end

-- Re-stamp an overwritten connection (it becomes the newest).
function _M.touch(state, record)
  record.seq = _M.next_seq(state)
  record.connected_at = util.iso()
end

return _M
