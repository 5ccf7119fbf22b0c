-- Agent setup and utility routes (reference §6.10–6.12, §7.9, §8.3):
-- /container-config, /credential-stubs[/{agent}], /skill/gateway,
-- /gateway-url, /gateway/ca, /counts, /vaults, /migrate/export.
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local util = require("onecli.standin.util")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, format, concat = ipairs, string.format, table.concat

local _M = {}

-- A real self-signed CA certificate (its key was thrown away): the gateway
-- stand-in does not intercept TLS, clients only need a well-formed PEM.
_M.CA_PEM = concat({
  "-----BEGIN CERTIFICATE-----",
  "MIIB5zCCAY2gAwIBAgIUD2YWgTFjRxu1kFg3Am90VFyHsaMwCgYIKoZIzj0EAwIw",
  "QTElMCMGA1UEAwwcT25lQ0xJIEdhdGV3YXkgQ0EgKHN0YW5kLWluKTEYMBYGA1UE",
  "CgwPT25lQ0xJIHN0YW5kLWluMB4XDTI2MTEyMzExMDUzNVoXDTM2MTEyMDExMDUz",
  "NVowQTElMCMGA1UEAwwcT25lQ0xJIEdhdGV3YXkgQ0EgKHN0YW5kLWluKTEYMBYG",
  "A1UECgwPT25lQ0xJIHN0YW5kLWluMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
  "bJns7JShzEZ8H6q7er7CW9X7Pgqul8h8Z4nh50vwuGp79tFyt1M1Y0BDX8j1WXot",
  "gXpqMfGXo2FCRm6pvqNC+KNjMGEwHQYDVR0OBBYEFPJE1tAjXjwQWNkcHA9tdKV4",
  "c5nIMB8GA1UdIwQYMBaAFPJE1tAjXjwQWNkcHA9tdKV4c5nIMA8GA1UdEwEB/wQF",
  "MAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMCA0gAMEUCIQCwfWsp66D9",
  "s2EI9y840A0hhZh6IToiBOKyBYOg+suixwIgCUy77I0OUNdJchQy+czVT/Md17vd",
  "IUJuvKk16a/ymn4=",
  "-----END CERTIFICATE-----",
  "",
}, "\n")

local CA_PATH = "/tmp/onecli-gateway-ca.pem"
local CODEX_HOME = "/tmp/onecli-codex"
local PLACEHOLDER = "placeholder"

local function gateway_hostport(ctx)
  return (ctx.app.gateway_origin:gsub("^%a+://", ""))
end

------------------------------------------------------------------------------
-- Container config
------------------------------------------------------------------------------

local function not_found_agent(ctx, identifier)
  local msg
  if ctx.mode == "v1" then
    msg = format('No agent with identifier "%s" exists in this project. Create it first via POST /api/agents, '
      .. 'or omit the "agent" query parameter to use the project\'s default agent.', identifier)
  else
    msg = format('No agent with identifier "%s" exists in this workspace. Create it first via POST /v1/agents.',
      identifier)
  end
  return reply.json(404, obj("error", msg, "code", "AGENT_NOT_FOUND", "agentIdentifier", identifier))
end

-- v1: the default agent, created when the project has none.
local function default_agent_v1(state)
  local agent = store.default_agent(state)
  if agent then return agent end
  agent = store.find_by(state.agents, "identifier", "default")
  if agent then
    agent.is_default = true
    return agent
  end
  return store.add_agent(state, { name = "Default Agent", identifier = "default", is_default = true })
end

-- Returns agent | nil, error reply.
local function pick_agent(ctx)
  local identifier = ctx.query.agent
  if identifier and identifier ~= "" then
    local agent = store.find_by(ctx.state.agents, "identifier", identifier)
    if not agent then return nil, not_found_agent(ctx, identifier) end
    return agent
  end
  if ctx.mode == "v1" then return default_agent_v1(ctx.state) end
  if #ctx.state.agents == 0 then
    return nil, reply.json(404, obj("error", "This workspace has no agents yet. Create one with POST /v1/agents, "
      .. "then pass its identifier as ?agent=<identifier>.", "code", "NO_AGENTS"))
  end
  return nil, reply.json(404, obj("error", "No agent specified and this workspace has no default agent. "
    .. "Pass ?agent=<identifier> (GET /v1/agents lists them).", "code", "AGENT_REQUIRED"))
end

-- Secrets the agent may use: v1 mode "all" = every project and org secret;
-- "selective" and v2 grants = the assigned ones.
local function agent_secrets(ctx, agent)
  if ctx.mode == "v1" and agent.secret_mode == "all" then return store.with_org(ctx.state, "secrets") end
  local out = {}
  for _, id in ipairs(agent.secret_ids) do
    local s = store.find_visible(ctx.state, "secrets", id)
    if s then out[#out + 1] = s end
  end
  return out
end

local function first_of_type(secrets, t)
  for _, s in ipairs(secrets) do
    if s.type == t then return s end
  end
  return nil
end

local function is_oauth(secret)
  return secret ~= nil and secret.metadata ~= nil and secret.metadata.authMode == "oauth"
end

local function codex_auth_json(secret)
  if not is_oauth(secret) then return json.encode(obj("OPENAI_API_KEY", PLACEHOLDER)) end
  local account = secret.metadata.accountId or PLACEHOLDER
  return json.encode(obj("OPENAI_API_KEY", null,
    "tokens", obj("id_token", PLACEHOLDER, "access_token", PLACEHOLDER, "refresh_token", PLACEHOLDER,
      "account_id", account),
    "last_refresh", util.iso()))
end

local function container_config(ctx)
  local agent, err = pick_agent(ctx)
  if not agent then return err end
  local proxy = format("http://x:%s@%s", agent.access_token, gateway_hostport(ctx))
  local env = obj("HTTPS_PROXY", proxy, "HTTP_PROXY", proxy, "https_proxy", proxy, "http_proxy", proxy,
    "NODE_EXTRA_CA_CERTS", CA_PATH, "NODE_USE_ENV_PROXY", "1", "GIT_TERMINAL_PROMPT", "0",
    "GIT_HTTP_PROXY_AUTHMETHOD", "basic")
  local secrets = agent_secrets(ctx, agent)
  local anthropic, openai = first_of_type(secrets, "anthropic"), first_of_type(secrets, "openai")
  if is_oauth(anthropic) then
    json.set(env, "CLAUDE_CODE_OAUTH_TOKEN", PLACEHOLDER)
  else
    json.set(env, "ANTHROPIC_API_KEY", PLACEHOLDER)
  end
  local stubs
  if is_oauth(openai) then
    json.set(env, "CODEX_HOME", CODEX_HOME)
    stubs = array({ obj("containerPath", CODEX_HOME .. "/auth.json", "content", codex_auth_json(openai)) })
  elseif openai then
    json.set(env, "OPENAI_API_KEY", PLACEHOLDER)
  end
  local warnings
  if not anthropic then
    warnings = array({ "No Anthropic credentials configured — the agent will use its own API key if available. "
      .. "Add one at " .. (ctx.req.headers.origin or "") .. "/secrets" })
  end
  return reply.ok(obj("env", env, "caCertificate", _M.CA_PEM, "caCertificateContainerPath", CA_PATH,
    "credentialStubs", stubs, "warnings", warnings))
end

------------------------------------------------------------------------------
-- Credential stubs, skill, gateway
------------------------------------------------------------------------------

local function credential_stubs()
  return reply.ok(obj("agents", array({ "codex" })))
end

local function credential_stub(ctx)
  local agent = ctx.params.agent
  if agent ~= "codex" then return reply.flat(404, format('No credential stub for agent "%s"', agent)) end
  local openai = store.with_org(ctx.state, "secrets", function(s) return s.type == "openai" end)[1]
  return reply.ok(obj("agent", "codex", "filePath", "~/.codex/auth.json", "content", codex_auth_json(openai),
    "authMode", is_oauth(openai) and "oauth" or "api-key", "permissions", "0600"))
end

local function skill(ctx)
  local framework = (ctx.query.agent_framework or ""):lower()
  local lines = {
    "# OneCLI gateway",
    "",
    "Your HTTP(S) traffic goes through the OneCLI gateway at " .. ctx.app.gateway_origin .. ".",
    "The gateway injects credentials: never ask the user for API keys or tokens, and use the",
    "placeholder values in your environment as they are.",
    "",
    "## When a request is blocked",
    "",
    "- `403` from the gateway: a policy rule blocks the host, path or method. Tell the user which",
    "  request was blocked; do not retry it in a loop.",
    "- A request that needs approval waits until someone approves or denies it in OneCLI.",
    "",
  }
  if framework ~= "" then
    lines[#lines + 1] = "## Agent framework: " .. framework
    lines[#lines + 1] = ""
    if framework == "codex" then
      lines[#lines + 1] = "Codex reads its credential stub from `$CODEX_HOME/auth.json`; leave it unchanged."
    elseif framework == "claude" then
      lines[#lines + 1] = "Claude Code uses `ANTHROPIC_API_KEY=placeholder`; the gateway swaps in the real key."
    else
      lines[#lines + 1] = "Configure " .. framework .. " to use the proxy variables of its environment."
    end
    lines[#lines + 1] = ""
  end
  return { status = 200, body = concat(lines, "\n"), ctype = "text/markdown; charset=utf-8" }
end

local function gateway_url(ctx)
  return reply.ok(obj("url", ctx.app.gateway_origin))
end

local function gateway_ca()
  return { status = 200, body = _M.CA_PEM, ctype = "application/x-pem-file",
    headers = { { "content-disposition", 'attachment; filename="onecli-gateway-ca.pem"' } } }
end

------------------------------------------------------------------------------
-- Utility and migration
------------------------------------------------------------------------------

local function counts(ctx)
  local secrets = store.with_org(ctx.state, "secrets")
  local llms, generic = 0, 0
  for _, s in ipairs(secrets) do
    if s.type == "generic" then generic = generic + 1 else llms = llms + 1 end
  end
  local apps = #store.with_org(ctx.state, "connections", function(c) return c.status == "connected" end)
  return reply.ok(obj("agents", #ctx.state.agents, "apps", apps, "llms", llms, "secrets", generic))
end

local function vaults()
  return reply.ok(array())
end

local function valid_url(s)
  return s:match("^%a[%w+.-]*://[^%s/?#]+[^%s]*$") ~= nil
end

-- Simulated: counts what would be copied and never calls out (use a fault
-- to see a failing import).
local function migrate_export(ctx)
  if ctx.mode == "v1" and ctx.edition == "cloud" then return reply.flat(404, "Not found") end
  local body = ctx.body
  if typeof(body) ~= "object" then
    return reply.flat(400, "Invalid input: expected object, received " .. typeof(body))
  end
  local key = body.cloudApiKey
  if typeof(key) ~= "string" or util.trim(key) == "" then return reply.flat(400, "Cloud API key is required") end
  local url = body.cloudUrl
  if url ~= nil and (typeof(url) ~= "string" or not valid_url(url)) then return reply.flat(400, "Invalid URL") end
  local skipped, secrets, moved = array(), 0, {}
  for _, s in ipairs(store.newest_first(ctx.state.secrets)) do
    if s.value_source == "onepassword" then
      skipped[#skipped + 1] = obj("type", "secret", "name", s.name,
        "reason", "1Password secrets are not migrated; add them again in OneCLI Cloud")
    else
      secrets = secrets + 1
      moved[s.id] = true
    end
  end
  local assigned = 0
  for _, a in ipairs(ctx.state.agents) do
    for _, id in ipairs(a.secret_ids) do
      if moved[id] then assigned = assigned + 1 end
    end
  end
  return reply.ok(obj("imported", obj("secrets", secrets, "agents", #ctx.state.agents,
    "agentSecrets", assigned, "rules", #ctx.state.rules), "skipped", skipped))
end

local P = "project"

local routes = {
  { method = "GET", pattern = "/container-config", auth = P, handler = container_config, body = false },
  { method = "GET", pattern = "/credential-stubs", auth = P, handler = credential_stubs, body = false },
  { method = "GET", pattern = "/credential-stubs/:agent", auth = P, handler = credential_stub, body = false },
  { method = "GET", pattern = "/skill/gateway", auth = P, handler = skill, body = false },
  { method = "GET", pattern = "/gateway-url", auth = P, handler = gateway_url, body = false },
  { method = "GET", pattern = "/gateway/ca", auth = "none", handler = gateway_ca, body = false },
  { method = "GET", pattern = "/counts", auth = P, handler = counts, body = false },
  { method = "GET", pattern = "/vaults", auth = P, handler = vaults, body = false },
  { method = "POST", pattern = "/migrate/export", auth = P, handler = migrate_export },
}

routes.CA_PEM = _M.CA_PEM

return routes
