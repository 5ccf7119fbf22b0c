-- Capture claims of the "workspace" area for spec/routes_replay_spec.lua:
-- discovery, skills, organization skills, invitations, organization
-- channels, policy reflections, the organization's default rule and
-- connections by provider (reference §14.3, §14.5-14.7). Each setup builds
-- the state the recording server was in and maps recorded ids to live ones.

-- Recorded ids the captures refer to.
local REC = {
  skill = "30f1d0a0-078e-48b7-82ca-cb55f17ba004",
  org_skill = "06a92952-1523-4336-ba11-f209e9fdfac7",
  org = "vslresmtstqjhnba",
  agent = "ef675b4e-c876-48f0-821e-b553d8f5a40a",
  connection = "ec409858-1e1c-40b8-b4d1-9170a5473ede",
  invitation = "f2c26fcb-0c53-4e0d-a33c-14118a942278",
}

local function org_headers(t) return { { "Authorization", "Bearer " .. t.srv.org_key } } end

local function request_of(t, name) return t.json.decode(t.capture(name).request.body) end

-- The workspace skill of skills-create.
local function workspace_skill(t)
  local status, made = t.call("POST", "/v1/skills", request_of(t, "skills-create"))
  assert(status == 201, "skills-create setup: " .. status)
  t.map[REC.skill] = made.id
  return made
end

-- The organization skill of org-skills-create (maps its id and the org id).
local function org_skill(t)
  local status, made = t.call("POST", "/v1/org/skills", request_of(t, "org-skills-create"), org_headers(t))
  assert(status == 201, "org-skills-create setup: " .. status)
  t.map[REC.org_skill], t.map[REC.org] = made.id, made.organizationId
  return made
end

-- The stand-in's organization id, learnt from a skill made and dropped.
local function map_org_id(t)
  local status, made = t.call("POST", "/v1/org/skills", { name = "probe", description = "p", content = "p" },
    org_headers(t))
  assert(status == 201, "org id probe: " .. status)
  t.map[REC.org] = made.organizationId
  t.call("DELETE", "/v1/org/skills/" .. made.id, nil, org_headers(t))
end

local function byo_agent(t, name)
  local status, made = t.call("POST", "/v1/agents", { name = name or "Capture Extra", identifier = "capture-extra" })
  assert(status == 201, "agent setup: " .. status)
  t.map[REC.agent] = made.id
  return made.id
end

local function granola_connection(t)
  local status = t.call("POST", "/v1/apps/granola/connect", { fields = { apiKey = "grn_capture_test" },
    label = "capture" })
  assert(status == 200, "granola connect setup: " .. status)
  local _, list = t.call("GET", "/v1/connections?provider=granola")
  t.map[REC.connection] = list[1].id
  return list[1].id
end

-- The recording organization had published an allow Default Rule.
local function publish_allow(t)
  assert(t.call("PATCH", "/v1/org/policy/default", { action = "allow" }) == 200)
  local status, res = t.call("POST", "/v1/org/policy/publish")
  assert(status == 200, "publish setup: " .. status)
  return res.generation
end

local function invitation(t)
  local status, made = t.call("POST", "/v1/org/invitations", request_of(t, "org-invitations-create"),
    org_headers(t))
  assert(status == 201, "invitation setup: " .. status)
  t.map[REC.invitation] = made.id
  t.map["<INVITE_TOKEN>"] = made.joinUrl:match("token=(%x+)$")
end

-- The organization's granola connection; the stand-in's direct connect
-- keeps its own metadata, which the expected body takes over.
local function org_granola(t)
  local status = t.call("POST", "/v1/org/apps/granola/connect", request_of(t, "org-apps-connect-granola"),
    org_headers(t))
  assert(status == 200, "org granola connect setup: " .. status)
  local _, list = t.call("GET", "/v1/org/connections?provider=granola", nil, org_headers(t))
  t.map['"metadata":{"name":"API Key"}'] = '"metadata":' .. t.json.encode(list[1].metadata)
end

return {
  ["instance-get"] = {},

  -- skills
  ["skills-list"] = {},
  ["skills-list-org-key-no-workspace"] = {},
  ["skills-list-after-create"] = { setup = workspace_skill },
  ["skills-list-with-org-skill"] = { setup = function(t)
    org_skill(t)
    t.call("PATCH", "/v1/org/skills/" .. t.map[REC.org_skill], request_of(t, "org-skills-patch"), org_headers(t))
  end },
  ["skills-create"] = {},
  ["skills-create-duplicate"] = { setup = workspace_skill },
  ["skills-create-bad-name"] = {},
  ["skills-create-reserved-name"] = {},
  ["skills-create-unknown-field"] = {},
  ["skills-create-agent-byo"] = { setup = function(t) byo_agent(t) end },
  ["skills-get"] = { setup = workspace_skill },
  ["skills-get-not-found"] = {},
  ["skills-patch"] = { setup = workspace_skill },
  ["skills-patch-empty"] = { setup = workspace_skill },
  ["skills-patch-name"] = { setup = workspace_skill },
  ["skills-patch-org-skill"] = { setup = org_skill },
  ["skills-delete"] = { setup = workspace_skill },
  ["skills-delete-not-found"] = {},

  -- organization skills
  ["org-skills-list"] = {},
  ["org-skills-create"] = { setup = map_org_id },
  ["org-skills-create-with-agent"] = {},
  ["org-skills-create-too-large"] = {},
  ["org-skills-get"] = { setup = org_skill },
  ["org-skills-get-not-found"] = {},
  ["org-skills-patch"] = { setup = org_skill },
  ["org-skills-delete"] = { setup = org_skill },

  -- invitations
  ["org-invitations-list"] = {},
  ["org-invitations-list-after-create"] = { setup = invitation },
  ["org-invitations-create"] = {},
  ["org-invitations-create-bad-email"] = {},
  ["org-invitations-create-owner-role"] = {},
  ["org-invitations-create-existing-member"] = {},
  ["org-invitations-delete"] = { setup = invitation },
  ["org-invitations-delete-not-found"] = {},
  ["invitations-accept-api-key"] = {},
  ["invitations-accept-missing-token"] = {},
  ["invitations-accept-bad-token"] = {},
  ["invitations-accept-wrong-account"] = { setup = invitation },

  -- organization channels
  ["org-channels-list"] = {},
  ["org-channels-credentials-missing"] = {},
  ["org-channels-unknown-provider"] = {},
  ["org-channels-delete-not-connected"] = {},
  ["org-channels-user-links-not-connected"] = {},
  ["org-channels-user-links-delete-not-found"] = {},

  -- policy reflections
  ["policy-effective-app-permissions"] = { setup = function(t)
    granola_connection(t)
    publish_allow(t)
  end },
  ["policy-effective-app-permissions-agent-connection"] = { setup = function(t)
    byo_agent(t)
    granola_connection(t)
    publish_allow(t)
  end },
  ["policy-effective-app-permissions-missing-provider"] = {},
  ["policy-effective-app-permissions-unknown-provider"] = {},
  ["policy-effective-app-permissions-unknown-agent"] = {},
  ["policy-effective-app-permissions-org-key-no-workspace"] = {},
  ["agents-effective-credentials"] = { setup = function(t) byo_agent(t) end },
  ["agents-effective-credentials-not-found"] = {},
  ["connections-effective-agents"] = { setup = function(t)
    byo_agent(t, "Capture Extra")
    granola_connection(t)
    publish_allow(t)
  end },
  ["connections-effective-agents-not-found"] = {},
  ["org-policy-effective-app-permissions"] = {},
  ["org-policy-effective-app-permissions-missing-provider"] = {},

  -- the organization's default rule and rules by status
  ["org-policy-default-get-published"] = { setup = function(t)
    t.map['"generation":46'] = '"generation":' .. publish_allow(t)
  end },
  ["org-policy-default-get-bad-status"] = {},
  ["org-policy-rules-list-published"] = {},

  -- organization connections by provider
  ["org-connections-by-provider"] = { setup = org_granola },
  ["org-connections-by-provider-user-key"] = { setup = org_granola },
  ["org-connections-by-provider-none"] = {},
}
