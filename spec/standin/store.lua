-- In-memory data of the stand-in (one project/workspace, one user).
local util = require("standin.util")

local _M = {}

local ipairs, remove, sort, gettime = ipairs, table.remove, table.sort, require("socket").gettime

-- opts: mode, api_key, org_key, project_id
function _M.new(opts)
  local now = gettime()
  local state = {
    mode = opts.mode,
    api_key = opts.api_key,
    org_key = opts.org_key,
    project_id = opts.project_id,
    seq = 0,
    user = {
      id = "5ee1d1b5-6c7a-4e43-9a51-0d2b8f0c5a11",
      email = opts.mode == "v1" and "admin@localhost" or "acceptance@example.com",
      name = opts.mode == "v1" and "Local Admin" or "Acceptance User",
      created_at = util.iso(now - 3600),
    },
    agents = {}, secrets = {}, rules = {}, connections = {},
    app_configs = {}, oauth_states = {},
  }
  if opts.mode == "v1" then
    _M.add_agent(state, { name = "Default Agent", identifier = "default", is_default = true })
  end
  return state
end

function _M.next_seq(state)
  state.seq = state.seq + 1
  return state.seq
end

local function stamp(state, record)
  record.id = record.id or util.uuid4()
  record.seq = _M.next_seq(state)
  record.created_at = record.created_at or util.iso()
  return record
end

function _M.new_token()
  return "aoc_" .. util.hex(64)
end

function _M.add_agent(state, fields)
  local agent = stamp(state, {
    name = fields.name, identifier = fields.identifier,
    access_token = _M.new_token(),
    is_default = fields.is_default or false,
    secret_mode = fields.secret_mode or "all",
    secret_ids = fields.secret_ids or {},
    connection_ids = fields.connection_ids or {},
    kind = fields.kind or "byo",
    harness = fields.harness, model = fields.model, instructions = fields.instructions,
  })
  state.agents[#state.agents + 1] = agent
  return agent
end

function _M.find(list, id)
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

function _M.remove_everywhere(state, field, id)
  for _, agent in ipairs(state.agents) do
    local ids = agent[field]
    for i = #ids, 1, -1 do
      if ids[i] == id then remove(ids, i) end
    end
  end
end

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
