-- /apps (catalog, direct connect, OAuth authorize/callback, BYOC config)
-- and /connections routes (reference §6.5–6.7, messages §9.5).
local json = require("standin.json")
local util = require("standin.util")
local reply = require("standin.reply")
local store = require("standin.store")
local catalog = require("standin.catalog")
local v = require("standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, format, concat = ipairs, string.format, table.concat

local CONNECT = v.object({
  { "fields", v.record():optional() },
  { "connectionId", v.string():optional() },
  { "label", v.string():optional() },
  { "method", v.string():optional() },
})

local TOGGLE = v.object({ { "enabled", v.boolean() } })

local function dashboard(ctx)
  if ctx.mode == "v1" then return "http://localhost:10254", "/p/" .. ctx.state.project_id end
  return "http://127.0.0.1:10254", "/w/" .. ctx.state.project_id
end

local function app_type(ctx, app) return app[ctx.mode] end

local function unknown(provider) return reply.flat(404, "Unknown provider: " .. provider) end

local function provider_connections(ctx, provider)
  return store.newest_first(ctx.state.connections, function(c) return c.provider == provider end)
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

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------

local function app_shape(ctx, app)
  local t = app_type(ctx, app)
  local cfg = ctx.state.app_configs[app.id]
  local conns = provider_connections(ctx, app.id)
  local items = array()
  for i, c in ipairs(conns) do
    items[i] = obj("id", c.id, "label", c.label or null, "status", c.status, "scopes", array(c.scopes),
      "connectedAt", c.connected_at)
  end
  local first = conns[1]
  return obj("id", app.id, "name", app.name, "available", t ~= "cloud_only",
    "connectionType", t, "configurable", t == "oauth",
    "config", cfg and obj("hasCredentials", has_credentials(app.id, cfg.settings), "enabled", cfg.enabled) or null,
    "connection", first and obj("status", first.status, "scopes", array(first.scopes),
      "connectedAt", first.connected_at) or null,
    "connections", items,
    "credentialStubs", array({ catalog.stub(app.stub) }))
end

local function hint(ctx, app)
  local base, prefix = dashboard(ctx)
  local url = format("%s%s/connections?connect=%s", base, prefix, app.id)
  local t = app_type(ctx, app)
  local cfg = ctx.state.app_configs[app.id]
  if #provider_connections(ctx, app.id) > 0 then
    return format("%s is connected. Manage the connection at %s.", app.name, url)
  end
  if t == "oauth" and not (cfg and cfg.enabled and has_credentials(app.id, cfg.settings)) then
    return format("This app is not configured yet. Go to %s to set up your credentials.", url)
  end
  if t == "cloud_only" then return format("%s is only available in OneCLI Cloud.", app.name) end
  return format("This app is not connected yet. Go to %s to connect it.", url)
end

local function list(ctx)
  local out = array()
  for _, app in ipairs(catalog.apps) do
    if app[ctx.mode] then out[#out + 1] = app_shape(ctx, app) end
  end
  return reply.ok(out)
end

local function get_one(ctx)
  local app = catalog.find(ctx.params.provider, ctx.mode)
  if not app then return unknown(ctx.params.provider) end
  local shape = app_shape(ctx, app)
  json.set(shape, "hint", hint(ctx, app))
  return reply.ok(shape)
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

local function check_connect(ctx, app, body)
  local provider, t = app.id, app_type(ctx, app)
  if t == "cloud_only" then
    return reply.flat(400, format('Provider "%s" is only available in OneCLI Cloud', provider))
  end
  if ctx.req.headers["x-organization-id"] then
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

local function find_same_label(ctx, provider, label)
  for _, c in ipairs(ctx.state.connections) do
    if c.provider == provider and (c.label or ""):lower() == label:lower() then return c end
  end
  return nil
end

local function connect(ctx)
  local app = catalog.find(ctx.params.provider, ctx.mode)
  if not app then return unknown(ctx.params.provider) end
  local ok, body = CONNECT:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local err = check_connect(ctx, app, body)
  if err then return err end
  local label = derive_label(body, app, body.fields)
  local metadata = body.fields.username and obj("username", body.fields.username) or nil
  local existing
  if body.connectionId then
    existing = store.find(ctx.state.connections, body.connectionId)
    if not existing or existing.provider ~= app.id then return reply.not_found("Connection not found") end
  else
    existing = find_same_label(ctx, app.id, label)
  end
  if existing then
    existing.label, existing.metadata, existing.status = label, metadata, "connected"
    store.touch(ctx.state, existing)
  else
    store.add_connection(ctx.state, { provider = app.id, label = label, metadata = metadata })
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

local function authorize(ctx)
  local provider = ctx.params.provider
  local app = catalog.find(provider, ctx.mode)
  if not app then return unknown(provider) end
  local t = app_type(ctx, app)
  if t == "cloud_only" then return reply.flat(400, format('Provider "%s" is not available', provider)) end
  if ctx.req.headers["x-organization-id"] then
    return reply.flat(400, "Organization-scoped connections are not supported on this server")
  end
  if t ~= "oauth" then
    return reply.flat(400, format('Provider "%s" has no "oauth" connection method', provider))
  end
  local cfg = ctx.state.app_configs[provider]
  if not (cfg and cfg.enabled and has_credentials(provider, cfg.settings)) then
    return reply.flat(400, app.name .. " is not configured. Missing required credentials.")
  end
  local state = util.hex(32)
  ctx.state.oauth_states[state] = {
    provider = provider, connection_id = ctx.query.connectionId,
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
  local pending = ctx.query.state and ctx.state.oauth_states[ctx.query.state]
  if not pending or pending.provider ~= provider or not ctx.query.code then
    return reply.redirect(target .. "?status=error&message=" .. util.percent_encode("Invalid OAuth state"))
  end
  ctx.state.oauth_states[ctx.query.state] = nil
  local conn = pending.connection_id and store.find(ctx.state.connections, pending.connection_id)
    or find_same_label(ctx, provider, "standin-user")
  if conn then
    store.touch(ctx.state, conn)
  else
    store.add_connection(ctx.state, {
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

local function get_config(ctx)
  local cfg = ctx.state.app_configs[ctx.params.provider]
  if not cfg then return reply.ok(obj("hasCredentials", false, "enabled", false)) end
  local settings = obj()
  for _, f in ipairs(config_fields(ctx.params.provider)) do
    if not f[3] and cfg.settings[f[1]] then json.set(settings, f[1], cfg.settings[f[1]]) end
  end
  return reply.ok(obj("settings", settings, "hasCredentials", has_credentials(ctx.params.provider, cfg.settings),
    "enabled", cfg.enabled))
end

local function post_config(ctx)
  local provider = ctx.params.provider
  local app = catalog.find(provider, ctx.mode)
  if not app or app_type(ctx, app) ~= "oauth" then
    return reply.flat(400, format('Provider "%s" does not support app configuration', provider))
  end
  local ok = v.record():parse(ctx.body)
  if not ok then return reply.flat(400, "Invalid request body") end
  local old = ctx.state.app_configs[provider]
  local settings = {}
  for _, f in ipairs(config_fields(provider)) do
    local val = ctx.body[f[1]]
    if f[3] and (val == nil or val == "") and old then val = old.settings[f[1]] end
    settings[f[1]] = val
  end
  ctx.state.app_configs[provider] = { settings = settings, enabled = true }
  store.delete_connections(ctx.state, provider)
  return reply.created(obj("success", true))
end

local function delete_config(ctx)
  local provider = ctx.params.provider
  if not ctx.state.app_configs[provider] then return reply.not_found("App config not found") end
  ctx.state.app_configs[provider] = nil
  store.delete_connections(ctx.state, provider)
  return reply.no_content()
end

local function toggle_config(ctx)
  local ok, body = TOGGLE:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local cfg = ctx.state.app_configs[ctx.params.provider]
  if not cfg then return reply.not_found("App config not found") end
  cfg.enabled = body.enabled
  store.delete_connections(ctx.state, ctx.params.provider)
  return reply.success()
end

------------------------------------------------------------------------------
-- Connections
------------------------------------------------------------------------------

local function connection_shape(ctx, c)
  return obj("id", c.id, "provider", c.provider, "label", c.label or null, "status", c.status,
    "scopes", array(c.scopes), "scope", ctx.mode == "v1" and "project" or "workspace",
    "metadata", c.metadata or null, "connectedAt", c.connected_at)
end

local function list_connections(ctx)
  local provider = ctx.query.provider
  local out = array()
  local conns = store.newest_first(ctx.state.connections, function(c)
    return not provider or provider == "" or c.provider == provider
  end)
  for i, c in ipairs(conns) do out[i] = connection_shape(ctx, c) end
  return reply.ok(out)
end

local function rename_connection(ctx)
  local label = typeof(ctx.body) == "object" and ctx.body.label
  if typeof(label) ~= "string" or util.trim(label) == "" then return reply.flat(400, "Label is required") end
  local c = store.find(ctx.state.connections, ctx.params.id)
  if not c then return reply.flat(404, "Connection not found") end
  c.label = util.trim(label)
  return reply.ok(obj("id", c.id, "provider", c.provider, "status", c.status, "label", c.label))
end

local function delete_connection(ctx)
  if not store.find(ctx.state.connections, ctx.params.id) then return reply.flat(404, "Connection not found") end
  store.remove(ctx.state.connections, ctx.params.id)
  store.remove_everywhere(ctx.state, "connection_ids", ctx.params.id)
  return reply.no_content()
end

local P = "project"

return {
  { method = "GET", pattern = "/apps", auth = P, handler = list, body = false },
  { method = "GET", pattern = "/apps/:provider", auth = P, handler = get_one, body = false },
  { method = "POST", pattern = "/apps/:provider/connect", auth = "project400", handler = connect },
  { method = "GET", pattern = "/apps/:provider/authorize", auth = P, handler = authorize, body = false },
  { method = "GET", pattern = "/apps/:provider/callback", auth = "none", handler = callback, body = false },
  { method = "GET", pattern = "/apps/:provider/config", auth = P, handler = get_config, body = false },
  { method = "POST", pattern = "/apps/:provider/config", auth = P, handler = post_config },
  { method = "DELETE", pattern = "/apps/:provider/config", auth = P, handler = delete_config, body = false },
  { method = "PATCH", pattern = "/apps/:provider/config/toggle", auth = P, handler = toggle_config },
  { method = "GET", pattern = "/connections", auth = P, handler = list_connections, body = false },
  { method = "PATCH", pattern = "/connections/:id", auth = P, handler = rename_connection },
  { method = "DELETE", pattern = "/connections/:id", auth = P, handler = delete_connection, body = false },
}
