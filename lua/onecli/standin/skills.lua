-- Skills (reference §14.7): instruction files for hosted agents, in three
-- tiers — organization, workspace, agent (hosted agents only).
--
--   GET/POST /skills, GET/PATCH/DELETE /skills/{id}          (workspace, P)
--     the list holds the workspace's, its agents' and the organization's
--     skills; organization skills are read-only here (403)
--   GET/POST /org/skills, GET/PATCH/DELETE /org/skills/{id}  (organization)
--
-- Body errors are 422 validation_error envelopes with the first zod issue
-- (bodies are strict); the per-tier limits, the duplicate-name 409 and the
-- hosted-agent 422 come from the service. Workspace and agent skills live
-- on the workspace table (state.skills), organization skills on the org.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null = json.obj, json.array, json.null
local ipairs, format = ipairs, string.format

local NOT_FOUND = "Skill not found"
local NAME_MSG = 'Skill names are lowercase words separated by single hyphens, like "release-checklist"'
local RESERVED_MSG = "That name is reserved for the built-in gateway skill"
local LINE_MSG = "Description is a single line. It is how the agent decides when to load the skill"
local UNIQUE_MSG = "File paths must be unique within a skill"
local BUDGET_MSG = "A skill's body and files together are limited to 32,000 characters"
-- stand-in wording (the reference names the rules, not these two messages)
local PATH_MSG = 'File paths are one or two lowercase segments, like "references/api.md"'
local SKILL_MD_MSG = "SKILL.md is the skill body itself: put it in content"
local ORG_READ_ONLY = "Organization skills are managed in organization settings"
local HOSTED_MSG = "Only hosted agents can hold skills"

local BUDGET = 32000
local LIMITS = { agent = 10, workspace = 20, organization = 20 }

------------------------------------------------------------------------------
-- Schemas
------------------------------------------------------------------------------

local function valid_name(s)
  return s:match("^[a-z0-9]+$") ~= nil or (s:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") ~= nil
    and not s:find("--", 1, true))
end

local function valid_path(p)
  local seg = "[a-z0-9_][a-z0-9_%.%-]*"
  return p:match("^" .. seg .. "$") ~= nil or p:match("^" .. seg .. "/" .. seg .. "$") ~= nil
end

local FILE = v.object({
  { "path", v.string():min(1):max(200):refine(valid_path, PATH_MSG)
    :refine(function(p) return p ~= "SKILL.md" and p:lower() ~= "skill.md" end, SKILL_MD_MSG) },
  { "content", v.string():min(1):max(24000) },
}, { strict = true })

local function unique_paths(files)
  local seen = {}
  for _, f in ipairs(files) do
    if seen[f.path] then return false end
    seen[f.path] = true
  end
  return true
end

local function files_schema() return v.array(FILE):max(5):refine(unique_paths, UNIQUE_MSG) end

local function single_line(s) return not s:find("[\r\n]") end

local function description() return v.string():min(1):max(500):refine(single_line, LINE_MSG) end

local function create_schema(with_agent)
  local shape = {
    { "name", v.string():min(1):max(64):refine(valid_name, NAME_MSG)
      :refine(function(s) return s ~= "onecli-gateway" end, RESERVED_MSG) },
    { "description", description() },
    { "content", v.string():min(1):max(24000) },
    { "enabled", v.boolean():optional() },
  }
  if with_agent then shape[#shape + 1] = { "agentId", v.string():min(1):optional() } end
  shape[#shape + 1] = { "files", files_schema():optional() }
  return v.object(shape, { strict = true })
end

local CREATE = create_schema(true)
local CREATE_ORG = create_schema(false)
local PATCH = v.object({
  { "description", description():optional() },
  { "content", v.string():min(1):max(24000):optional() },
  { "enabled", v.boolean():optional() },
  { "files", files_schema():optional() },
}, { strict = true })

local function size(content, files)
  local n = util.ulen(content)
  for _, f in ipairs(files) do n = n + util.ulen(f.content) end
  return n
end

------------------------------------------------------------------------------
-- Shapes and state
------------------------------------------------------------------------------

local function head(s)
  return obj("id", s.id, "scope", s.scope, "agentId", s.agent_id or null, "workspaceId", s.workspace_id or null,
    "organizationId", s.organization_id or null, "name", s.name, "description", s.description)
end

local function shape(s)
  local out = head(s)
  local files = array()
  for i, f in ipairs(s.files) do files[i] = obj("path", f.path, "content", f.content) end
  for _, kv in ipairs({ { "content", s.content }, { "enabled", s.enabled }, { "createdByEmail", s.created_by },
    { "createdAt", s.created_at }, { "updatedAt", s.updated_at }, { "files", files } }) do
    json.set(out, kv[1], kv[2])
  end
  return out
end

local function list_item(s)
  local out = head(s)
  for _, kv in ipairs({ { "enabled", s.enabled }, { "createdByEmail", s.created_by },
    { "createdAt", s.created_at }, { "updatedAt", s.updated_at }, { "fileCount", #s.files } }) do
    json.set(out, kv[1], kv[2])
  end
  return out
end

local function org_skills(ctx)
  ctx.org.skills = ctx.org.skills or {}
  return ctx.org.skills
end

-- Workspace and agent skills of the workspace; agent skills of a deleted
-- agent are gone with it.
local function workspace_skills(ctx)
  local list = ctx.state.skills or {}
  ctx.state.skills = list
  for i = #list, 1, -1 do
    if list[i].agent_id and not store.find(ctx.state.agents, list[i].agent_id) then table.remove(list, i) end
  end
  return list
end

local function copy_files(files)
  local out = {}
  for i, f in ipairs(files or {}) do out[i] = { path = f.path, content = f.content } end
  return out
end

-- The container a new skill goes to: its list, scope, agent (or nil, reply).
local function container(ctx, body, org)
  if org then return org_skills(ctx), "organization" end
  local list = workspace_skills(ctx)
  if body.agentId == nil then return list, "workspace" end
  local agent = store.find(ctx.state.agents, body.agentId)
  if not agent then return nil, reply.not_found("Agent not found") end
  if agent.kind ~= "hosted" then return nil, reply.unprocessable(HOSTED_MSG) end
  return list, "agent", agent
end

local function create(ctx, org)
  local ok, body = (org and CREATE_ORG or CREATE):parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if size(body.content, body.files or {}) > BUDGET then return reply.unprocessable(BUDGET_MSG) end
  local list, scope, agent = container(ctx, body, org)
  if not list then return scope end
  local agent_id = agent and agent.id
  local count = 0
  for _, s in ipairs(list) do
    if s.scope == scope and s.agent_id == agent_id then
      if s.name == body.name then return reply.conflict(format('A skill named "%s" already exists here', body.name)) end
      count = count + 1
    end
  end
  if count >= LIMITS[scope] then
    local holder = scope == "organization" and "This organization" or scope == "agent" and "This agent"
      or "This workspace"
    return reply.unprocessable(format("%s already holds %d skills. Delete one first", holder, LIMITS[scope]))
  end
  local now = util.iso()
  local s = {
    id = util.uuid4(), seq = store.next_seq(ctx.org), scope = scope, agent_id = agent_id,
    workspace_id = not org and ctx.state.id or nil, organization_id = org and ctx.org.id or nil,
    name = body.name, description = body.description, content = body.content, enabled = body.enabled ~= false,
    files = copy_files(body.files), created_by = ctx.org.user.email, created_at = now, updated_at = now,
  }
  list[#list + 1] = s
  return reply.created(shape(s))
end

-- The skill the route names: from the workspace route the organization's
-- skills are found too (read-only, second value true).
local function find(ctx, org)
  local id = ctx.params.id
  if org then return (store.find(org_skills(ctx), id)), false end
  local s = store.find(workspace_skills(ctx), id)
  if s then return s, false end
  s = store.find(org_skills(ctx), id)
  return s, s ~= nil
end

local function get_one(ctx, org)
  local s = find(ctx, org)
  if not s then return reply.not_found(NOT_FOUND) end
  return reply.ok(shape(s))
end

local function patch(ctx, org)
  local ok, body = PATCH:parse(ctx.body)
  if not ok then return reply.unprocessable(body) end
  if #json.keys(body) == 0 then return reply.unprocessable("Nothing to update") end
  local s, read_only = find(ctx, org)
  if not s then return reply.not_found(NOT_FOUND) end
  if read_only then return reply.envelope(403, ORG_READ_ONLY, "authentication_error") end
  local content, files = body.content or s.content, body.files or s.files
  if size(content, files) > BUDGET then return reply.unprocessable(BUDGET_MSG) end
  if body.description then s.description = body.description end
  if body.enabled ~= nil then s.enabled = body.enabled end
  s.content, s.files, s.updated_at = content, copy_files(files), util.iso()
  return reply.ok(shape(s))
end

local function delete(ctx, org)
  local s, read_only = find(ctx, org)
  if not s then return reply.not_found(NOT_FOUND) end
  if read_only then return reply.envelope(403, ORG_READ_ONLY, "authentication_error") end
  store.remove(org and org_skills(ctx) or workspace_skills(ctx), s.id)
  return reply.no_content()
end

local TIER_ORDER = { workspace = 1, agent = 2, organization = 3 }

local function sorted(list)
  local out = {}
  for i, s in ipairs(list) do out[i] = s end
  table.sort(out, function(a, b)
    if a.scope ~= b.scope then return TIER_ORDER[a.scope] < TIER_ORDER[b.scope] end
    return a.seq < b.seq
  end)
  return out
end

local function list_skills(ctx, org)
  local all = {}
  if not org then
    for _, s in ipairs(workspace_skills(ctx)) do all[#all + 1] = s end
  end
  for _, s in ipairs(org_skills(ctx)) do all[#all + 1] = s end
  local out = array()
  for i, s in ipairs(sorted(all)) do out[i] = list_item(s) end
  return reply.ok(obj("skills", out))
end

------------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------------

local function workspace(fn) return function(ctx) return fn(ctx, false) end end
local function organization(fn) return function(ctx) return fn(ctx, true) end end

local P, U = "project", "user"

local routes = {
  { method = "GET", pattern = "/skills", auth = P, handler = workspace(list_skills), body = false },
  { method = "POST", pattern = "/skills", auth = P, handler = workspace(create) },
  { method = "GET", pattern = "/skills/:id", auth = P, handler = workspace(get_one), body = false },
  { method = "PATCH", pattern = "/skills/:id", auth = P, handler = workspace(patch) },
  { method = "DELETE", pattern = "/skills/:id", auth = P, handler = workspace(delete), body = false },
  -- members read; writes take the admin role only where RBAC is on (the
  -- stand-in's one user owns the organization): any key of it
  { method = "GET", pattern = "/org/skills", auth = U, handler = organization(list_skills), body = false },
  { method = "POST", pattern = "/org/skills", auth = U, handler = organization(create) },
  { method = "GET", pattern = "/org/skills/:id", auth = U, handler = organization(get_one), body = false },
  { method = "PATCH", pattern = "/org/skills/:id", auth = U, handler = organization(patch) },
  { method = "DELETE", pattern = "/org/skills/:id", auth = U, handler = organization(delete), body = false },
}

for _, r in ipairs(routes) do r.mode = "v2" end

return routes
