-- /apps (catalog, permission definitions, direct connect, OAuth
-- authorize/callback, BYOC config), /connections and the legacy
-- /apps/connections* routes (reference §6.5–6.7, messages §9.5).
--
-- Most handlers work on a "scope": "project" (ctx.state, the default) or
-- "organization" (ctx.org); onecli.standin.org mounts the organization versions
-- under /org/apps and /org/connections through the `scoped` table below.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local catalog = require("onecli.standin.catalog")
local v = require("onecli.standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, format, concat = ipairs, string.format, table.concat

local ORG = "organization"

local CONNECT = v.object({
  { "fields", v.record():optional() },
  { "connectionId", v.string():optional() },
  { "label", v.string():optional() },
  { "method", v.string():optional() },
})

local TOGGLE = v.object({ { "enabled", v.boolean() } })

-- The table holding the scope's connections and app configs.
local function holder(ctx, scope)
  if scope == ORG then return ctx.org end
  return ctx.state
end

local function dashboard(ctx)
  if ctx.mode == "v1" then return "http://localhost:10254", "/p/" .. ctx.state.project_id end
  return "http://127.0.0.1:10254", "/w/" .. ctx.state.project_id
end

local function app_type(ctx, app) return catalog.type_of(app, ctx.mode, ctx.edition) end

local function find_app(ctx, provider) return catalog.find(provider, ctx.mode, ctx.edition) end

local function unknown(provider) return reply.flat(404, "Unknown provider: " .. provider) end

local function provider_connections(conns, provider)
  return store.newest_first(conns, function(c) return c.provider == provider end)
end

local function config_fields(provider)
  return catalog.config_fields[provider] or catalog.config_fields.default
end

local function has_credentials(provider, settings)
  for _, f in ipairs(config_fields(provider)) do
    if not settings[f[1]] or settings[f[1]] == "" then return false end
  end
  return true
end

local function usable(provider, cfg)
  return cfg ~= nil and cfg.enabled and has_credentials(provider, cfg.settings)
end

-- The config a project uses: its own, else an enabled organization config.
-- Returns cfg, source ("project"|"organization") or nil.
local function effective_config(ctx, provider, scope)
  if scope == ORG then
    local cfg = ctx.org.app_configs[provider]
    return cfg, cfg and ORG
  end
  local own = ctx.state.app_configs[provider]
  if own then return own, "project" end
  local inherited = ctx.org.app_configs[provider]
  if inherited and inherited.enabled then return inherited, ORG end
  return nil
end

local function config_shape(provider, cfg, source)
  if not cfg then return null end
  if source == ORG then
    return obj("hasCredentials", has_credentials(provider, cfg.settings), "enabled", true, "source", "organization")
  end
  return obj("hasCredentials", has_credentials(provider, cfg.settings), "enabled", cfg.enabled)
end

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------

local function app_shape(ctx, app, detail)
  local t = app_type(ctx, app)
  local conns
  if detail then
    conns = provider_connections(ctx.state.connections, app.id)
  else
    conns = store.with_org(ctx.state, "connections", function(c) return c.provider == app.id end)
  end
  local items = array()
  for i, c in ipairs(conns) do
    items[i] = obj("id", c.id, "label", c.label or null, "status", c.status, "scopes", array(c.scopes),
      "connectedAt", c.connected_at)
  end
  local first = conns[1]
  return obj("id", app.id, "name", app.name, "available", t ~= "cloud_only",
    "connectionType", t, "configurable", t == "oauth",
    "config", config_shape(app.id, effective_config(ctx, app.id)),
    "connection", first and obj("status", first.status, "scopes", array(first.scopes),
      "connectedAt", first.connected_at) or null,
    "connections", items,
    "credentialStubs", array({ catalog.stub(app.stub) }))
end

local function hint(ctx, app)
  local base, prefix = dashboard(ctx)
  local url = format("%s%s/connections?connect=%s", base, prefix, app.id)
  local t = app_type(ctx, app)
  if #provider_connections(ctx.state.connections, app.id) > 0 then
    return format("%s is connected. Manage the connection at %s.", app.name, url)
  end
  if t == "oauth" and not usable(app.id, effective_config(ctx, app.id)) then
    return format("This app is not configured yet. Go to %s to set up your credentials.", url)
  end
  if t == "cloud_only" then return format("%s is only available in OneCLI Cloud.", app.name) end
  return format("This app is not connected yet. Go to %s to connect it.", url)
end

local function each_app(ctx, fn)
  for _, app in ipairs(catalog.apps) do
    if app_type(ctx, app) then fn(app) end
  end
end

local function list(ctx)
  local out = array()
  each_app(ctx, function(app) out[#out + 1] = app_shape(ctx, app) end)
  return reply.ok(out)
end

local function get_one(ctx)
  local app = find_app(ctx, ctx.params.provider)
  if not app then return unknown(ctx.params.provider) end
  local shape = app_shape(ctx, app, true)
  json.set(shape, "hint", hint(ctx, app))
  return reply.ok(shape)
end

-- v2: the app-availability allowlist. The stand-in's organization is
-- "open" (no /org/app-availability restrictions): unrestricted, empty list.
local function available()
  return reply.ok(obj("restricted", false, "providers", array()))
end

local function configured(ctx, scope)
  local out = array()
  each_app(ctx, function(app)
    local own = scope ~= ORG and ctx.state.app_configs[app.id]
    local inherited = ctx.org.app_configs[app.id]
    if (own and own.enabled) or (inherited and inherited.enabled) then out[#out + 1] = app.id end
  end)
  return reply.ok(out)
end

-- No provider takes its OAuth client from the stand-in's environment.
local function env_defaults()
  return reply.ok(array())
end

local function definition(app)
  local groups = array()
  for _, g in ipairs(catalog.permission_groups[app.id]) do
    local tools = array()
    for i, t in ipairs(g.tools) do tools[i] = obj("id", t.id, "name", t.name, "description", t.description) end
    local w = g.wildcard
    groups[#groups + 1] = obj("category", g.category, "tools", tools,
      "wildcard", w and obj("id", w.id, "name", w.name, "description", w.description) or nil)
  end
  return obj("provider", app.id, "groups", groups)
end

local function permission_definitions(ctx)
  local out = array()
  each_app(ctx, function(app)
    if catalog.permission_groups[app.id] then out[#out + 1] = definition(app) end
  end)
  return reply.ok(out)
end

local function permission_definition(ctx)
  local provider = ctx.params.provider
  local app = find_app(ctx, provider)
  if not app then return unknown(provider) end
  if not catalog.permission_groups[provider] then
    return reply.flat(404, "No permission definition for provider: " .. provider)
  end
  return reply.ok(definition(app))
end

------------------------------------------------------------------------------
-- Direct connect
------------------------------------------------------------------------------

local function derive_label(body, app, fields)
  if body.label and util.trim(body.label) ~= "" then return util.trim(body.label) end
  if fields.username and fields.username ~= "" then return fields.username end
  if app.id == "jfrog-artifactory" and fields.url then return fields.url end
  return "API Key"
end

local function check_connect(ctx, app, body, scope)
  local provider, t = app.id, app_type(ctx, app)
  if t == "cloud_only" then
    return reply.flat(400, format('Provider "%s" is only available in OneCLI Cloud', provider))
  end
  if ctx.req.headers["x-organization-id"] and scope ~= ORG and ctx.mode == "v1" and ctx.edition ~= "cloud" then
    return reply.flat(400, "Organization-scoped connections are not supported on this server")
  end
  if body.method and body.method ~= t then
    return reply.flat(400, format('Provider "%s" has no "%s" connection method', provider, body.method))
  end
  if t == "oauth" then
    return reply.flat(400, format('Provider "%s" uses OAuth flow, not direct credentials', provider))
  end
  if body.fields == nil then return reply.flat(400, "Missing fields in request body") end
  for _, f in ipairs(catalog.fields[provider] or catalog.default_fields) do
    local val = body.fields[f[1]]
    if val == nil or util.trim(val) == "" then return reply.flat(400, f[2] .. " is required") end
  end
  return nil
end

local function find_same_label(conns, provider, label)
  for _, c in ipairs(conns) do
    if c.provider == provider and (c.label or ""):lower() == label:lower() then return c end
  end
  return nil
end

local function connect(ctx, scope)
  local app = find_app(ctx, ctx.params.provider)
  if not app then return unknown(ctx.params.provider) end
  local ok, body = CONNECT:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local err = check_connect(ctx, app, body, scope)
  if err then return err end
  local h = holder(ctx, scope)
  local label = derive_label(body, app, body.fields)
  local metadata = body.fields.username and obj("username", body.fields.username) or nil
  -- v2: an API-key connection records its method (reference §6.5 label derivation)
  if not metadata and ctx.mode == "v2" then metadata = obj("name", "API Key") end
  local existing
  if body.connectionId then
    existing = store.find(h.connections, body.connectionId)
    if not existing or existing.provider ~= app.id then return reply.not_found("Connection not found") end
  else
    existing = find_same_label(h.connections, app.id, label)
  end
  local conn = existing
  if existing then
    existing.label, existing.metadata, existing.status = label, metadata, "connected"
    store.touch(h, existing)
  else
    conn = store.add_connection(h, { provider = app.id, label = label, metadata = metadata })
  end
  -- v2 (reference §14.12): the workspace route names the connection
  if ctx.mode == "v2" and scope ~= ORG then
    return reply.ok(obj("success", true, "connection", obj("id", conn.id, "label", conn.label)))
  end
  return reply.success()
end

------------------------------------------------------------------------------
-- OAuth
------------------------------------------------------------------------------

local function query_string(params)
  local parts = {}
  for _, p in ipairs(params) do
    parts[#parts + 1] = util.percent_encode(p[1]) .. "=" .. util.percent_encode(p[2])
  end
  return concat(parts, "&")
end

local function authorize_url(ctx, app, settings, state)
  local host = ctx.req.headers.host or "127.0.0.1"
  local redirect = format("http://%s/v1/apps/%s/callback", host, app.id)
  if app.id == "github-app" then
    return format("https://github.com/apps/%s/installations/new?state=%s", settings.appSlug, state)
  end
  local google = app.id == "gmail" or app.id:match("^google%-") or app.id == "youtube"
  local base = catalog.authorize_urls[app.id] or (google and catalog.google_authorize_url)
    or format("https://auth.%s.example.com/oauth/authorize", app.id)
  local params = {
    { "client_id", settings.clientId }, { "redirect_uri", redirect }, { "response_type", "code" },
    { "scope", catalog.scopes[app.id] or "read" }, { "state", state },
  }
  if google then
    params[#params + 1] = { "access_type", "offline" }
    params[#params + 1] = { "prompt", "consent" }
  end
  return base .. "?" .. query_string(params)
end

local function authorize(ctx, scope)
  local provider = ctx.params.provider
  local app = find_app(ctx, provider)
  if not app then return unknown(provider) end
  local t = app_type(ctx, app)
  if t == "cloud_only" then return reply.flat(400, format('Provider "%s" is not available', provider)) end
  if ctx.req.headers["x-organization-id"] and scope ~= ORG and ctx.mode == "v1" and ctx.edition ~= "cloud" then
    return reply.flat(400, "Organization-scoped connections are not supported on this server")
  end
  if t ~= "oauth" then
    return reply.flat(400, format('Provider "%s" has no "oauth" connection method', provider))
  end
  local cfg = effective_config(ctx, provider, scope)
  if not usable(provider, cfg) then
    return reply.flat(400, app.name .. " is not configured. Missing required credentials.")
  end
  local state = util.hex(32)
  ctx.org.oauth_states[state] = {
    provider = provider, connection_id = ctx.query.connectionId, scope = scope,
    project_id = scope ~= ORG and ctx.state.id or nil,
    agent_name = ctx.query.agent_name and ctx.query.agent_name:sub(1, 128) or nil,
  }
  return reply.redirect(authorize_url(ctx, app, cfg.settings, state), {
    { "set-cookie", "oauth_state=" .. state .. "; Path=/; Max-Age=600; HttpOnly; SameSite=Lax" },
  })
end

-- Browser callback: with a state from /authorize it creates (or refreshes)
-- a connection labelled "standin-user" and redirects to the dashboard.
local function callback(ctx)
  local provider = ctx.params.provider
  local base = dashboard(ctx)
  local target = format("%s/app-connect/%s", base, provider)
  local pending = ctx.query.state and ctx.org.oauth_states[ctx.query.state]
  if not pending or pending.provider ~= provider or not ctx.query.code then
    return reply.redirect(target .. "?status=error&message=" .. util.percent_encode("Invalid OAuth state"))
  end
  ctx.org.oauth_states[ctx.query.state] = nil
  local h = pending.scope == ORG and ctx.org or store.find(ctx.org.projects, pending.project_id)
  if not h then
    return reply.redirect(target .. "?status=error&message=" .. util.percent_encode("Project not found"))
  end
  local conn = pending.connection_id and store.find(h.connections, pending.connection_id)
    or find_same_label(h.connections, provider, "standin-user")
  if conn then
    store.touch(h, conn)
  else
    store.add_connection(h, {
      provider = provider, label = "standin-user", scopes = { catalog.scopes[provider] or "read" },
      metadata = obj("username", "standin-user"),
    })
  end
  local extra = pending.agent_name and ("&agent_name=" .. util.percent_encode(pending.agent_name)) or ""
  return reply.redirect(target .. "?status=success" .. extra)
end

------------------------------------------------------------------------------
-- BYOC config
------------------------------------------------------------------------------

-- v2 organization config (reference §14.12): the connections that depend on it.
local function dependents(ctx, provider)
  local in_workspaces = 0
  for _, p in ipairs(ctx.org.projects) do
    in_workspaces = in_workspaces + #provider_connections(p.connections, provider)
  end
  return obj("orgConnections", #provider_connections(ctx.org.connections, provider),
    "workspaceConnections", in_workspaces)
end

local function get_config(ctx, scope)
  local provider = ctx.params.provider
  local cfg, source = effective_config(ctx, provider, scope)
  local deps = ctx.mode == "v2" and scope == ORG and dependents(ctx, provider) or nil
  if not cfg then return reply.ok(obj("hasCredentials", false, "enabled", false, "dependents", deps)) end
  if source == ORG and scope ~= ORG then return reply.ok(config_shape(provider, cfg, source)) end
  local settings = obj()
  for _, f in ipairs(config_fields(provider)) do
    if not f[3] and cfg.settings[f[1]] then json.set(settings, f[1], cfg.settings[f[1]]) end
  end
  return reply.ok(obj("settings", settings, "hasCredentials", has_credentials(provider, cfg.settings),
    "enabled", cfg.enabled, "dependents", deps))
end

local function post_config(ctx, scope)
  local provider = ctx.params.provider
  local app = find_app(ctx, provider)
  if not app or app_type(ctx, app) ~= "oauth" then
    return reply.flat(400, format('Provider "%s" does not support app configuration', provider))
  end
  local ok = v.record():parse(ctx.body)
  if not ok then return reply.flat(400, "Invalid request body") end
  local h = holder(ctx, scope)
  local old = h.app_configs[provider]
  local settings = {}
  for _, f in ipairs(config_fields(provider)) do
    local val = ctx.body[f[1]]
    if f[3] and (val == nil or val == "") and old then val = old.settings[f[1]] end
    settings[f[1]] = val
  end
  h.app_configs[provider] = { settings = settings, enabled = true }
  store.delete_connections(h, provider)
  return reply.created(obj("success", true))
end

local function delete_config(ctx, scope)
  local provider = ctx.params.provider
  local h = holder(ctx, scope)
  if not h.app_configs[provider] then return reply.not_found("App config not found") end
  h.app_configs[provider] = nil
  store.delete_connections(h, provider)
  return reply.no_content()
end

local function toggle_config(ctx, scope)
  local ok, body = TOGGLE:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local h = holder(ctx, scope)
  local cfg = h.app_configs[ctx.params.provider]
  if not cfg then return reply.not_found("App config not found") end
  cfg.enabled = body.enabled
  store.delete_connections(h, ctx.params.provider)
  return reply.success()
end

------------------------------------------------------------------------------
-- Connections
------------------------------------------------------------------------------

local function scope_name(ctx, c)
  if c.scope == ORG then return "organization" end
  return ctx.mode == "v1" and "project" or "workspace"
end

local function connection_shape(ctx, c)
  return obj("id", c.id, "provider", c.provider, "label", c.label or null, "status", c.status,
    "scopes", array(c.scopes), "scope", scope_name(ctx, c),
    "metadata", c.metadata or null, "connectedAt", c.connected_at)
end

local function connection_items(ctx, scope, provider)
  local filter = function(c) return not provider or provider == "" or c.provider == provider end
  local conns
  if scope == ORG then
    conns = store.newest_first(ctx.org.connections, filter)
  else
    conns = store.with_org(ctx.state, "connections", filter)
  end
  local out = array()
  for i, c in ipairs(conns) do out[i] = connection_shape(ctx, c) end
  return out
end

local function list_connections(ctx, scope)
  return reply.ok(connection_items(ctx, scope, ctx.query.provider))
end

-- Legacy wrappers: {connections: [...]}
local function legacy_list(ctx)
  return reply.ok(obj("connections", connection_items(ctx, nil, nil)))
end

local function legacy_provider(ctx)
  return reply.ok(obj("connections", connection_items(ctx, nil, ctx.params.provider)))
end

-- A project caller may rename/delete the organization's connections too.
local function find_connection(ctx, scope, id)
  if scope == ORG then return store.find(ctx.org.connections, id), ctx.org end
  local c = store.find(ctx.state.connections, id)
  if c then return c, ctx.state end
  c = store.find(ctx.org.connections, id)
  return c, c and ctx.org
end

local function rename_connection(ctx, scope)
  local label = typeof(ctx.body) == "object" and ctx.body.label
  if typeof(label) ~= "string" or util.trim(label) == "" then return reply.flat(400, "Label is required") end
  local c = find_connection(ctx, scope, ctx.params.id)
  if not c then return reply.flat(404, "Connection not found") end
  c.label = util.trim(label)
  return reply.ok(obj("id", c.id, "provider", c.provider, "status", c.status, "label", c.label))
end

-- When a provider's last connection goes, its blocklist rules go too.
local function drop_blocklist(h, provider)
  for i = #h.rules, 1, -1 do
    local m = h.rules[i].metadata
    if m and m.type == "blocklist" and m.provider == provider then table.remove(h.rules, i) end
  end
end

local function delete_connection(ctx, scope)
  local c, h = find_connection(ctx, scope, ctx.params.id)
  if not c then return reply.flat(404, "Connection not found") end
  store.remove(h.connections, c.id)
  store.remove_everywhere(ctx.org, "connection_ids", c.id)
  if #provider_connections(h.connections, c.provider) == 0 then drop_blocklist(h, c.provider) end
  return reply.no_content()
end

local P = "project"

local function project(fn) return function(ctx) return fn(ctx, nil) end end

local routes = {
  { method = "GET", pattern = "/apps", auth = P, handler = list, body = false },
  { method = "GET", pattern = "/apps/configured", auth = P, handler = project(configured), body = false },
  { method = "GET", pattern = "/apps/env-defaults", auth = "user", handler = env_defaults, body = false },
  { method = "GET", pattern = "/apps/permission-definitions", auth = "user", handler = permission_definitions,
    body = false },
  { mode = "v2", method = "GET", pattern = "/apps/available", auth = P, handler = available, body = false },
  { method = "GET", pattern = "/apps/connections", auth = P, handler = legacy_list, body = false },
  { method = "GET", pattern = "/apps/connections/:provider", auth = P, handler = legacy_provider, body = false },
  { method = "PATCH", pattern = "/apps/connections/:id", auth = P, handler = project(rename_connection) },
  { method = "DELETE", pattern = "/apps/connections/:id", auth = P, handler = project(delete_connection),
    body = false },
  { method = "GET", pattern = "/apps/:provider", auth = P, handler = get_one, body = false },
  { method = "GET", pattern = "/apps/:provider/permission-definition", auth = "user",
    handler = permission_definition, body = false },
  { method = "POST", pattern = "/apps/:provider/connect", auth = "project400", handler = project(connect) },
  { method = "GET", pattern = "/apps/:provider/authorize", auth = P, handler = project(authorize), body = false },
  { method = "GET", pattern = "/apps/:provider/callback", auth = "none", handler = callback, body = false },
  { method = "GET", pattern = "/apps/:provider/config", auth = P, handler = project(get_config), body = false },
  { method = "POST", pattern = "/apps/:provider/config", auth = P, handler = project(post_config) },
  { method = "DELETE", pattern = "/apps/:provider/config", auth = P, handler = project(delete_config),
    body = false },
  { method = "PATCH", pattern = "/apps/:provider/config/toggle", auth = P, handler = project(toggle_config) },
  { method = "GET", pattern = "/connections", auth = P, handler = project(list_connections), body = false },
  { method = "PATCH", pattern = "/connections/:id", auth = P, handler = project(rename_connection) },
  { method = "DELETE", pattern = "/connections/:id", auth = P, handler = project(delete_connection), body = false },
}

-- Handlers taking (ctx, scope), for the /org/* routes of onecli.standin.org.
routes.scoped = {
  connect = connect, authorize = authorize, configured = configured,
  get_config = get_config, post_config = post_config, delete_config = delete_config,
  toggle_config = toggle_config, list_connections = list_connections,
  rename_connection = rename_connection, delete_connection = delete_connection,
}

return routes
