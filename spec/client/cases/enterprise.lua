-- Cases of spec/client/every_endpoint_spec.lua for the "enterprise" area of
-- reference §14.9: the members directory, user groups, role mappings,
-- domains, SSO, SCIM tokens, app availability, workspace access and
-- Dropbox folders. All are Enterprise routes: the unlicensed v2 stand-in
-- answers 403 enterprise_license_required, the v1 stand-ins 404. The
-- server is shared between cases: names and emails are unique per case.
return function(case, kit)
  local V2X, is = kit.V2X, kit.is
  local EE = { absent = kit.V1, unlicensed = kit.V2 }

  local function ee(name, call, check)
    case(name, V2X, call, check, { absent = EE.absent, unlicensed = EE.unlicensed })
  end

  local function member(ctx, tag)
    return ctx.org.org.members:create({ email = "case-" .. tag .. "@corp.example", name = "Case " .. tag }).userId
  end

  local function group(ctx, name) return ctx.org.org.groups:create("Case " .. name) end

  local function page(r) return type(r) == "table" and type(r.data) == "table" and r.nextCursor ~= nil end

  -- members
  ee("org.members.list", function(ctx) return ctx.org.org.members:list({ limit = 1 }) end,
    function(r) return page(r) and #r.data == 1 end)
  ee("org.members.groups", function(ctx) return ctx.org.org.members:groups(member(ctx, "groups")) end, page)
  ee("org.members.create", function(ctx) return ctx.org.org.members:create({ email = "case-create@corp.example" }) end,
    function(r) return r.status == "active" and r.role == "member" end)
  ee("org.members.update", function(ctx)
    return ctx.org.org.members:update(member(ctx, "update"), { status = "suspended" })
  end, function(r) return r.status == "suspended" end)
  ee("org.members.delete", function(ctx) return ctx.org.org.members:delete(member(ctx, "delete")) end, is.yes)

  -- groups
  ee("org.groups.list", function(ctx) return ctx.org.org.groups:list({ source = "manual" }) end, page)
  ee("org.groups.create", function(ctx) return ctx.org.org.groups:create("Case create") end,
    function(r) return r.source == "manual" and r.memberCount == 0 end)
  ee("org.groups.get", function(ctx) return ctx.org.org.groups:get(group(ctx, "get").id) end,
    function(r) return r.name == "Case get" end)
  ee("org.groups.update", function(ctx) return ctx.org.org.groups:update(group(ctx, "update").id, "Case renamed") end,
    function(r) return r.name == "Case renamed" end)
  ee("org.groups.delete", function(ctx) return ctx.org.org.groups:delete(group(ctx, "delete").id) end, is.yes)
  ee("org.groups.members", function(ctx) return ctx.org.org.groups:members(group(ctx, "members").id) end, page)
  ee("org.groups.set_members", function(ctx)
    return ctx.org.org.groups:set_members(group(ctx, "set").id, { member(ctx, "set") })
  end, function(r) return r.added == 1 end)
  ee("org.groups.add_member", function(ctx)
    return ctx.org.org.groups:add_member(group(ctx, "add").id, member(ctx, "add"))
  end, is.yes)
  ee("org.groups.remove_member", function(ctx)
    local g, id = group(ctx, "remove"), member(ctx, "remove")
    ctx.org.org.groups:add_member(g.id, id)
    return ctx.org.org.groups:remove_member(g.id, id)
  end, is.yes)

  -- role mappings
  local function mapping(ctx, name, role)
    return ctx.org.org.role_mappings:create({ groupId = group(ctx, name).id, role = role or "member" })
  end
  ee("org.role_mappings.list", function(ctx) return ctx.org.org.role_mappings:list() end, is.list)
  ee("org.role_mappings.create", function(ctx) return mapping(ctx, "map create", "admin") end,
    function(r) return r.role == "admin" and r.groupName == "Case map create" end)
  ee("org.role_mappings.reorder", function(ctx)
    mapping(ctx, "map order")
    local ids = {}
    for i, m in ipairs(ctx.org.org.role_mappings:list()) do ids[i] = m.id end
    local reversed = {}
    for i = #ids, 1, -1 do reversed[#reversed + 1] = ids[i] end
    return ctx.org.org.role_mappings:reorder(reversed)
  end, function(r) return is.list(r) and #r >= 1 and r[1].priority == 0 end)
  ee("org.role_mappings.preview", function(ctx)
    return ctx.org.org.role_mappings:preview({ groupId = group(ctx, "preview").id, role = "admin" })
  end, function(r) return type(r.changes) == "table" end)
  ee("org.role_mappings.update", function(ctx)
    return ctx.org.org.role_mappings:update(mapping(ctx, "map update").id, { role = "admin" })
  end, function(r) return r.role == "admin" end)
  ee("org.role_mappings.delete", function(ctx)
    return ctx.org.org.role_mappings:delete(mapping(ctx, "map delete").id)
  end, is.yes)

  -- domains
  ee("org.domains.list", function(ctx) return ctx.org.org.domains:list() end, is.list)
  ee("org.domains.create", function(ctx) return ctx.org.org.domains:create("case-create.example") end,
    function(r) return r.domain == "case-create.example" and is.string(r.verificationToken) end)
  ee("org.domains.verify", function(ctx)
    return ctx.org.org.domains:verify(ctx.org.org.domains:create("case.verified.test").id)
  end, function(r) return is.string(r.verifiedAt) end)
  ee("org.domains.delete", function(ctx)
    return ctx.org.org.domains:delete(ctx.org.org.domains:create("case-delete.example").id)
  end, is.yes)

  -- SSO (one connection per organization: each case makes and drops its own)
  local function sso(ctx)
    return ctx.org.org.sso.connections:create({ type = "oidc", displayName = "Case IdP",
      issuer = "https://idp.case.example", clientId = "case", clientSecret = "secret" })
  end
  local function dropping(ctx, fn)
    local c = sso(ctx)
    local ok, r = pcall(fn, c)
    ctx.org.org.sso.connections:delete(c.id)
    if not ok then error(r, 0) end
    return r
  end
  ee("org.sso.connections.list", function(ctx) return ctx.org.org.sso.connections:list() end, is.list)
  ee("org.sso.connections.create", function(ctx)
    return dropping(ctx, function(c) return c end)
  end, function(r) return r.type == "oidc" and r.status == "pending" end)
  ee("org.sso.connections.update", function(ctx)
    return dropping(ctx, function(c) return ctx.org.org.sso.connections:update(c.id, { displayName = "Renamed" }) end)
  end, function(r) return r.displayName == "Renamed" end)
  ee("org.sso.connections.delete", function(ctx) return ctx.org.org.sso.connections:delete(sso(ctx).id) end, is.yes)
  ee("org.sso.connections.test", function(ctx)
    return dropping(ctx, function(c) return ctx.org.org.sso.connections:test(c.id) end)
  end, function(r) return r.ok == true and type(r.checks) == "table" end)
  ee("org.sso.enforcement.get", function(ctx) return ctx.org.org.sso.enforcement:get() end,
    function(r) return r.ssoRequired == false and type(r.canRequire) == "boolean" end)
  ee("org.sso.enforcement.update", function(ctx)
    return ctx.org.org.sso.enforcement:update({ ssoRequired = false })
  end, function(r) return r.ssoRequired == false end)

  -- SCIM tokens
  ee("org.scim.tokens.list", function(ctx) return ctx.org.org.scim.tokens:list() end, is.list)
  ee("org.scim.tokens.create", function(ctx) return ctx.org.org.scim.tokens:create("Case create") end,
    function(r) return r.token:match("^oc_scim_%x+$") ~= nil and #r.token == 56 end)
  ee("org.scim.tokens.delete", function(ctx)
    return ctx.org.org.scim.tokens:delete(ctx.org.org.scim.tokens:create("Case delete").id)
  end, is.yes)

  -- app availability
  ee("org.app_availability.get", function(ctx) return ctx.org.org.app_availability:get() end,
    function(r) return is.string(r.mode) and type(r.rules) == "table" end)
  ee("org.app_availability.set", function(ctx)
    return ctx.org.org.app_availability:set({ mode = "open", rules = {
      { userIds = {}, groupIds = {}, providers = { "github" } } } })
  end, function(r) return r.mode == "open" and #r.rules == 1 end)

  -- workspace access
  ee("workspaces.get_access", function(ctx) return ctx.client.workspaces:get_access(ctx.srv.project_id) end,
    function(r) return #r.users >= 1 and type(r.groups) == "table" end)
  ee("workspaces.set_access", function(ctx)
    return ctx.client.workspaces:set_access(ctx.srv.project_id, { users = {}, groupIds = {} })
  end, function(r) return type(r.added) == "number" and type(r.roleChanged) == "number" end)

  -- Dropbox folders: the stand-in has no Dropbox token; the case checks
  -- the route answers (a resend connection is not a Dropbox one)
  ee("apps.dropbox_folders", function(ctx)
    local ok, err = pcall(ctx.client.apps.dropbox_folders, ctx.client.apps, { connectionId = ctx.connection })
    if not ok and type(err) == "table" and err.status == 404 and err.message == "Connection not found" then
      return { refused = true }
    end
    if ok then return err end
    error(err, 0)
  end, function(r) return r.refused == true end)
end
