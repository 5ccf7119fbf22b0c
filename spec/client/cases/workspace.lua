-- Cases of spec/client/every_endpoint_spec.lua for the "workspace" area of
-- reference §14: instance, skills, organization skills, invitations,
-- organization channels, policy reflections, org connections by provider.
-- None is an Enterprise route; the v1 stand-ins do not serve any (404).
-- The server is shared between cases: names are unique per case.
return function(case, kit)
  local V2X, is = kit.V2X, kit.is
  local ABSENT = { absent = kit.V1 }

  local function v2(name, call, check)
    case(name, V2X, call, check, ABSENT)
  end

  local function skill(name)
    return { name = name, description = "Case skill " .. name, content = "Steps for " .. name .. "." }
  end

  v2("instance", function(ctx) return ctx.client:instance() end,
    function(r) return r.edition == "onprem" and r.entitled == true and r.runners.registered == true end)

  -- skills
  v2("skills.list", function(ctx) return ctx.client.skills:list() end,
    function(r) return type(r.skills) == "table" end)
  v2("skills.create", function(ctx) return ctx.client.skills:create(skill("case-skill-create")) end,
    function(r) return r.scope == "workspace" and r.name == "case-skill-create" end)
  v2("skills.get", function(ctx)
    return ctx.client.skills:get(ctx.client.skills:create(skill("case-skill-get")).id)
  end, function(r) return r.name == "case-skill-get" and type(r.files) == "table" end)
  v2("skills.update", function(ctx)
    return ctx.client.skills:update(ctx.client.skills:create(skill("case-skill-update")).id, { enabled = false })
  end, function(r) return r.enabled == false end)
  v2("skills.delete", function(ctx)
    return ctx.client.skills:delete(ctx.client.skills:create(skill("case-skill-delete")).id)
  end, is.yes)

  -- organization skills
  v2("org.skills.list", function(ctx) return ctx.org.org.skills:list() end,
    function(r) return type(r.skills) == "table" end)
  v2("org.skills.create", function(ctx) return ctx.org.org.skills:create(skill("case-org-create")) end,
    function(r) return r.scope == "organization" end)
  v2("org.skills.get", function(ctx)
    return ctx.org.org.skills:get(ctx.org.org.skills:create(skill("case-org-get")).id)
  end, function(r) return r.name == "case-org-get" end)
  v2("org.skills.update", function(ctx)
    return ctx.org.org.skills:update(ctx.org.org.skills:create(skill("case-org-update")).id, { content = "New." })
  end, function(r) return r.content == "New." end)
  v2("org.skills.delete", function(ctx)
    return ctx.org.org.skills:delete(ctx.org.org.skills:create(skill("case-org-delete")).id)
  end, is.yes)

  -- invitations
  v2("org.invitations.list", function(ctx) return ctx.org.org.invitations:list() end, is.list)
  v2("org.invitations.create", function(ctx)
    return ctx.org.org.invitations:create({ email = "case-create@example.com", role = "member" })
  end, function(r) return r.joinUrl:match("/join%?token=%x+$") ~= nil and r.emailed == false end)
  v2("org.invitations.delete", function(ctx)
    local inv = ctx.org.org.invitations:create({ email = "case-delete@example.com", role = "admin" })
    return ctx.org.org.invitations:delete(inv.id)
  end, is.yes)

  -- organization channels (the stand-in takes xoxb- tokens as Slack's)
  local TOKEN = "xoxb-4242-1-case"

  -- connects slack and drops the links earlier cases left
  local function slack(ctx)
    local ch = ctx.org.org.channels
    ch:set_credentials("slack", TOKEN)
    for _, l in ipairs(ch:list().userLinks) do ch:unlink_user("slack", l.id) end
    return ch
  end

  v2("org.channels.list", function(ctx) return ctx.org.org.channels:list() end,
    function(r) return type(r.integrations) == "table" and r.adapter.online == false end)
  v2("org.channels.set_credentials", function(ctx) return ctx.org.org.channels:set_credentials("slack", TOKEN) end,
    function(r) return r.provider == "slack" and r.tenant == "T4242" end)
  v2("org.channels.delete", function(ctx) return slack(ctx):delete("slack") end, is.yes)
  v2("org.channels.link_user", function(ctx)
    return slack(ctx):link_user("slack", { externalUserId = "UCASE1", userId = ctx.client.user:get().id })
  end, function(r) return r.externalUserId == "UCASE1" end)
  v2("org.channels.unlink_user", function(ctx)
    local ch = slack(ctx)
    local link = ch:link_user("slack", { externalUserId = "UCASE2", userId = ctx.client.user:get().id })
    return ch:unlink_user("slack", link.id)
  end, is.yes)

  -- policy reflections
  v2("policy.effective_app_permissions", function(ctx)
    return ctx.client.policy:effective_app_permissions({ provider = "github" })
  end, function(r) return r.provider == "github" and r.basis.scope == "workspace" end)
  v2("agents.effective_credentials", function(ctx) return ctx.client.agents:effective_credentials(ctx.agent) end,
    function(r, ctx) return r.agentId == ctx.agent and r.mode == "selective" end)
  v2("connections.effective_agents", function(ctx)
    return ctx.client.connections:effective_agents(ctx.connection)
  end, function(r, ctx) return r.connectionId == ctx.connection and r.catalog == false end)
  v2("org.policy.effective_app_permissions", function(ctx)
    return ctx.org.org.policy:effective_app_permissions({ provider = "github" })
  end, function(r) return r.basis.scope == "organization" end)
  v2("org.connections.by_provider", function(ctx) return ctx.org.org.connections:by_provider("resend") end, is.list)
end
