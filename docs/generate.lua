--- Generates the API reference (docs/api.md) and the LuaLS/EmmyLua
-- definition file (lua/onecli/meta.lua) from the endpoint table.
--
--   lua5.4 docs/generate.lua           -- from the repository root: writes both
--   lua5.4 docs/generate.lua --check   -- exits 1 if either file is stale
--
-- Required as a module (spec/docs_spec.lua does), it only returns its
-- builders and writes nothing:
--
--   local gen = assert(loadfile("docs/generate.lua"))("docs.generate")
--   local markdown = gen.api_markdown(gen.endpoints())
--
-- Everything about a generated method comes from the compiled endpoint
-- table (require("onecli").endpoints); the data below adds only what the
-- table does not say: the shapes of the answers (reference section 7),
-- the options, and the hand-written helpers.

local modname = ...
local as_script = modname == nil or modname:sub(1, 1) == "-"

if as_script then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  package.cpath = "build/lua5.4/?.so;" .. package.cpath
end

local concat, sort = table.concat, table.sort
local fmt = string.format
local ipairs, pairs, tostring = ipairs, pairs, tostring

local _M = {}

_M.API_PATH = "docs/api.md"
_M.META_PATH = "lua/onecli/meta.lua"

---------------------------------------------------------------------------
-- data the endpoint table does not carry

-- v1 names of namespaces v2 renamed (methods.lua's ALIASES)
_M.ALIASES = { { "projects", "workspaces" } }

-- Headings of the namespaces; a namespace missing here is titled by name.
local NAMESPACE_TITLES = {
  [""] = "Top-level methods: health, agent setup, utilities",
  agents = "Agents, their tokens and what they may use",
  secrets = "Secrets (values go in, never come back)",
  rules = "Policy rules and app permissions (v1; 410 on v1.43+ and v2: see client.org.policy)",
  apps = "Apps: catalog, connect, OAuth client config, blocklist",
  connections = "App connections and their grants",
  user = "The calling user and their API key",
  workspaces = "Workspaces (\"projects\" on v1 cloud: client.projects is the same object)",
  team = "Team provisioning (cloud, EE)",
  ["org.secrets"] = "Organization secrets (organization key, admin)",
  ["org.connections"] = "Organization connections (organization key, admin)",
  ["org.apps"] = "Organization apps: connect, OAuth client config, blocklist (organization key, admin)",
  ["org.rules"] = "Organization rules (v1 cloud; 410 on v1.43+ and v2)",
  ["org.settings"] = "Organization settings (v1 cloud; 410 on v1.43+ and v2)",
  ["org.policy"] = "Organization policy rules (v2)",
  ["agents.channels"] = "Hosted agents: their channel presences (v2)",
  ["agents.crons"] = "Hosted agents: schedules (v2)",
  ["agents.memories"] = "Hosted agents: memories and their revisions (v2)",
  conversations = "Conversations with hosted agents: transcripts, attachments, turns (v2)",
  turns = "Turns of a conversation (v2)",
  policy = "What the published policy allows (v1.43+, v2)",
  skills = "Skills of the workspace and its hosted agents (v2)",
  ["org.skills"] = "Organization skills (v2)",
  ["org.invitations"] = "Invitations to the organization (v2)",
  ["org.channels"] = "Organization channel integrations (v2)",
  ["org.members"] = "Members directory (v2, Enterprise licence)",
  ["org.groups"] = "User groups (v2, Enterprise licence)",
  ["org.role_mappings"] = "Group-to-role mappings (v2, Enterprise licence)",
  ["org.domains"] = "Claimed email domains (v2, Enterprise licence)",
  ["org.sso.connections"] = "Single sign-on connections (v2, Enterprise licence)",
  ["org.sso.enforcement"] = "Single sign-on enforcement (v2, Enterprise licence)",
  ["org.scim.tokens"] = "SCIM tokens (v2, Enterprise licence)",
  ["org.app_availability"] = "Which apps which people may use (v2, Enterprise licence)",
  ["org.partner"] = "The organization's partner (v1 cloud partner API, removed Aug 2026)",
  ["partner.orgs"] = "Partner API: managed organizations (v1 cloud, removed Aug 2026)",
  ["partner.secrets"] = "Partner API: partner secrets (v1 cloud, removed Aug 2026)",
  ["partner.members"] = "Partner API: members of the partner account (v1 cloud, removed Aug 2026)",
  approvals = "Approvals (served by the gateway)",
}

-- The two kinds of paginated lists (onecli.pagination): what a page call
-- answers, the list the iterator walks, and how it goes on.
local PAGES = {
  cursor = { items = "data", param = "cursor", next = "nextCursor",
    shape = "{ data: table[], nextCursor: string|onecli.null }",
    follows = "follows `nextCursor` (sent back as `cursor`) until it is null" },
  transcript = { items = "events", param = "since", next = "nextSince",
    shape = "{ events: table[], nextSince: integer, hasMore: boolean }",
    follows = "follows `nextSince` (sent back as `since`) while `hasMore` is true",
    item_note = "each `{ seq, turnId, type, payload }`" },
}

-- What a method returns, where reference section 7 knows the shape.
-- Keys must be endpoint names (spec/docs_spec.lua checks).
_M.RETURNS = {
  ["health"] = "onecli.Health",
  ["agents.list"] = "onecli.Agent[]",
  ["agents.get"] = "onecli.Agent",
  ["agents.create"] = "onecli.Agent",
  ["agents.get_default"] = "onecli.Agent",
  ["agents.regenerate_token"] = "{ accessToken: string }",
  ["agents.get_secrets"] = "string[]",
  ["agents.granular_access"] = "onecli.GranularAccessEntry[]",
  ["agents.get_grants"] = "onecli.Grants",
  ["agents.grant_secret"] = "onecli.Grants",
  ["agents.grant_connection"] = "onecli.Grants",
  ["secrets.list"] = "onecli.Secret[]",
  ["secrets.create"] = "onecli.SecretCreated",
  ["rules.list"] = "onecli.Rule[]",
  ["rules.create"] = "onecli.Rule",
  ["rules.get"] = "onecli.Rule",
  ["rules.overlap"] = "{ count: integer }",
  ["apps.list"] = "onecli.App[]",
  ["apps.get"] = "onecli.App",
  ["apps.available"] = "onecli.App[]",
  ["apps.configured"] = "string[]",
  ["apps.env_defaults"] = "string[]",
  ["apps.permission_definitions"] = "onecli.PermissionDefinition[]",
  ["apps.permission_definition"] = "onecli.PermissionDefinition",
  ["apps.list_blocklist"] = "onecli.BlocklistHostState[]",
  ["apps.block"] = "onecli.BlocklistHostState",
  ["apps.list_connections"] = "{ connections: onecli.Connection[] }",
  ["apps.provider_connections"] = "{ connections: onecli.Connection[] }",
  ["connections.list"] = "onecli.Connection[]",
  ["user.get"] = "onecli.User",
  ["user.update"] = "onecli.User",
  ["user.get_api_key"] = "{ apiKey: string }",
  ["user.regenerate_api_key"] = "{ apiKey: string }",
  ["container_config"] = "onecli.ContainerConfig",
  ["credential_stubs"] = "{ agents: string[] }",
  ["gateway_url"] = "{ url: string }",
  ["counts"] = "{ agents: integer, apps: integer, llms: integer, secrets: integer }",
  ["workspaces.list"] = "onecli.Workspace[]",
  ["workspaces.create"] = "onecli.Workspace",
  ["workspaces.get"] = "onecli.Workspace",
  ["workspaces.update"] = "onecli.Workspace",
  ["org.secrets.list"] = "onecli.Secret[]",
  ["org.secrets.create"] = "onecli.SecretCreated",
  ["org.connections.list"] = "onecli.Connection[]",
  ["org.apps.configured"] = "string[]",
  ["org.apps.list_blocklist"] = "onecli.BlocklistHostState[]",
  ["org.apps.block"] = "onecli.BlocklistHostState",
  ["org.rules.list"] = "onecli.Rule[]",
  ["org.rules.create"] = "onecli.Rule",
  ["org.rules.get"] = "onecli.Rule",
  ["approvals.pending"] = "onecli.PendingApprovals",
  ["approvals.org_pending"] = "onecli.PendingApprovals",
  -- v2 (reference section 14)
  ["instance"] = "{ edition: \"onprem\"|\"cloud\", entitled: boolean, version: string, "
    .. "runners: { registered: boolean, online: boolean } }",
  ["agents.set_image"] = "{ imageUrl: string }",
  ["turns.abort"] = "{ aborted: boolean, delivered: boolean }",
  ["org.connections.by_provider"] = "onecli.Connection[]",
  ["skills.list"] = "{ skills: onecli.Skill[] }",
  ["skills.create"] = "onecli.Skill",
  ["skills.get"] = "onecli.Skill",
  ["skills.update"] = "onecli.Skill",
  ["org.skills.list"] = "{ skills: onecli.Skill[] }",
  ["org.skills.create"] = "onecli.Skill",
  ["org.skills.get"] = "onecli.Skill",
  ["org.skills.update"] = "onecli.Skill",
  ["org.invitations.list"] = "onecli.Invitation[]",
  ["org.invitations.create"] = "{ id: string, joinUrl: string, emailed: boolean }",
  ["org.members.list"] = "{ data: onecli.Member[], nextCursor: string|onecli.null }",
  ["org.members.groups"] = "{ data: onecli.Group[], nextCursor: string|onecli.null }",
  ["org.members.create"] = "onecli.Member",
  ["org.groups.list"] = "{ data: onecli.Group[], nextCursor: string|onecli.null }",
  ["org.groups.create"] = "onecli.Group",
  ["org.groups.get"] = "onecli.Group",
  ["org.groups.update"] = "onecli.Group",
  ["org.groups.members"] = "{ data: onecli.GroupMember[], nextCursor: string|onecli.null }",
}

-- LuaLS type of a shorthand argument (the value that stands for a
-- one-field body): onecli.methods checks calls against the same table;
-- arrays default to string[], others to string.
local SHORTHAND_TYPES = require("onecli.methods").SHORTHAND_TYPES

-- onecli.new options (config.lua CLIENT_OPTIONS; spec/docs_spec.lua checks
-- that onecli.new accepts each).
_M.CLIENT_OPTIONS = {
  { "url", "string", "`ONECLI_URL`, else `https://api.onecli.sh/v1`",
    "API base; an origin without a path gets `/v1`" },
  { "api_key", "string", "`ONECLI_API_KEY`", "sent as `Authorization: Bearer …`" },
  { "project_id", "string", "`ONECLI_PROJECT_ID`",
    "sent as `X-Project-Id` and `X-Workspace-Id` (needed with an organization key)" },
  { "workspace_id", "string", "`ONECLI_WORKSPACE_ID`",
    "v2's name for `project_id` (give one of the two)" },
  { "gateway_url", "string", "`ONECLI_GATEWAY_URL`, else `GET /gateway-url`",
    "origin of the gateway (approvals)" },
  { "timeout", "number", "`30`", "seconds for one attempt (a whole request)" },
  { "connect_timeout", "number", "`10`", "seconds to connect" },
  { "deadline", "number", "none", "seconds for a whole call: every attempt and every wait between them" },
  { "max_retries", "integer", "`2`", "automatic retries, 0–10" },
  { "backoff_base", "number", "`0.5`", "exponential backoff base, seconds" },
  { "backoff_max", "number", "`8`", "backoff cap, seconds" },
  { "max_retry_after", "number", "`30`", "cap on a server's `Retry-After`, seconds" },
  { "ca_file", "string", "system CAs", "PEM bundle to verify the server with" },
  { "insecure", "boolean", "`false`", "`true` turns TLS verification off" },
  { "raise", "boolean", "`true`", "`false`: methods return `nil, err` instead of raising" },
  { "log_level", "\"off\"|\"error\"|\"warn\"|\"info\"|\"debug\"|\"trace\"",
    "`ONECLI_LOG`, else off (`debug` with a `log` function)",
    "how much is logged: failures, attempts, decisions, bodies (README \"Seeing what it does\")" },
  { "log", "fun(line: string, level: string)", "none; with a level, stderr / `ngx.log` / Neovim's log file",
    "called with each log line (never the key)" },
  { "on_request", "fun(info: table)", "none",
    "called before every attempt: method, url, path, headers (Authorization masked), attempt, batch" },
  { "on_response", "fun(info: table)", "none",
    "called after every attempt: + status, duration, request_id, error, retry_in, the answer's headers" },
  { "user_agent", "string", "none", "your product token, appended to the client's" },
  { "sleep", "fun(seconds: number)", "`core.sleep`, or the transport's `sleep`",
    "how the retry loop waits" },
  { "transport", "onecli.Transport", "libcurl (cosockets inside OpenResty)",
    "any object with `:request(req)`" },
  { "getenv", "fun(name: string): string?", "`os.getenv`", "where the defaults are read from" },
  { "headers", "table<string, string>", "none", "headers sent with every call (a call's own win)" },
  { "pool_size", "integer", "`16`", "inside nginx: connections kept per pool" },
  { "keepalive_timeout", "number", "`60`", "inside nginx: seconds an idle pooled connection is kept" },
  { "backlog", "integer", "none", "inside nginx: connects that wait for a full pool" },
  { "ssl_server_name", "string", "the URL's host", "inside nginx: TLS server name (SNI) and name verified" },
  { "send_timeout", "number", "what is left of `timeout`", "inside nginx: seconds for each send" },
  { "read_timeout", "number", "what is left of `timeout`", "inside nginx: seconds for each read" },
}

-- Per-call options (config.lua CALL_OPTIONS; checked the same way).
_M.CALL_OPTIONS = {
  { "project_id", "string", "project (workspace) for this call, overriding the client's" },
  { "workspace_id", "string", "v2's name for `project_id`" },
  { "timeout", "number", "seconds for this call (default: the client's, or the method's own **Timeout** when larger)" },
  { "connect_timeout", "number", "seconds to connect" },
  { "deadline", "number", "seconds for this whole call, attempts and waits together" },
  { "max_retries", "integer", "automatic retries for this call, 0–10" },
  { "headers", "table<string, string>", "extra request headers (one-line values)" },
  { "raise", "boolean", "`false`: return `nil, err` instead of raising" },
  { "callback", "fun(result: any, err: onecli.Error?, meta: table?)",
    "asynchronous transports only (Neovim): run the call in the background and call this" },
  { "meta", "boolean", "`true`: return `result, meta` (status, headers, request_id, attempts, duration)" },
  { "on_request", "fun(info: table)", "a hook for this call's attempts, after the client's" },
  { "on_response", "fun(info: table)", "a hook for this call's attempts, after the client's" },
}

-- Object shapes (reference sections 6.14, 7 and 8.3): name, description,
-- fields { name, LuaLS type, note }.
_M.OBJECTS = {
  { "Agent", "An agent (list item of `agents:list`; `agents:get` and `agents:create` "
      .. "return a subset plus v2 detail fields).", {
    { "id", "string", "UUID" },
    { "name", "string" },
    { "identifier", "string", "unique per project" },
    { "accessToken", "string?", "`aoc_…`: the agent's gateway credential (sensitive; list only)" },
    { "createdAt", "string", "ISO 8601" },
    { "isDefault", "boolean?", "v1" },
    { "secretMode", '"all"|"selective"?', "v1" },
    { "_count", "{ agentSecrets: integer, agentAppConnections: integer }?", "v1" },
    { "kind", '"byo"|"hosted"?', "v2" },
    { "harness", "string?", "v2" },
    { "model", "string?", "v2" },
    { "instructions", "string?", "v2" },
    { "channels", "table[]?", "v2" },
    { "imageUrl", "string|onecli.null?", "v2" },
    { "lastSeenAt", "string|onecli.null?", "v2, list" },
    { "recentRequestAt", "string|onecli.null?", "v2, `agents:get`" },
    { "workingInBackground", "boolean?", "v2" },
    { "llmKeys", "string[]?", "v2, `agents:create`: secret ids" },
    { "grantsSummary", '{ mode: "grants"|"all", entries: table[], total: integer }?',
      "v2, `agents:list{ include = \"grants-summary\" }` only" },
  } },
  { "Secret", "A secret (list item). Values are never returned.", {
    { "id", "string" },
    { "name", "string" },
    { "type", '"anthropic"|"openai"|"generic"' },
    { "typeLabel", "string" },
    { "valueSource", '"inline"|"onepassword"' },
    { "opRef", "string|onecli.null" },
    { "hostPattern", "string" },
    { "pathPattern", "string|onecli.null" },
    { "injectionConfig", "table|onecli.null" },
    { "metadata", "table|onecli.null" },
    { "scope", "string", "`project`/`workspace` or `organization`" },
    { "createdAt", "string" },
  } },
  { "SecretCreated", "The answer of `secrets:create`.", {
    { "id", "string" },
    { "name", "string" },
    { "type", "string" },
    { "valueSource", "string" },
    { "opRef", "string|onecli.null" },
    { "hostPattern", "string" },
    { "pathPattern", "string|onecli.null" },
    { "createdAt", "string" },
    { "preview", "string?", "inline values: first 4 characters, bullets, last 4" },
    { "attachedAgents", "string[]?", "v2: agent ids" },
  } },
  { "Rule", "A v1 policy rule. App-permission and blocklist rows have no "
      .. "`hostPattern`, `pathPattern` or `method`.", {
    { "id", "string" },
    { "name", "string" },
    { "hostPattern", "string?" },
    { "pathPattern", "string|onecli.null?" },
    { "method", "string|onecli.null?" },
    { "action", '"block"|"rate_limit"|"manual_approval"|"allow"' },
    { "enabled", "boolean" },
    { "agentId", "string|onecli.null" },
    { "rateLimit", "integer|onecli.null" },
    { "rateLimitWindow", "string|onecli.null", "`minute`, `hour` or `day`" },
    { "scope", '"project"|"organization"?' },
    { "metadata", "table|onecli.null?" },
    { "conditions", "table[]|onecli.null" },
    { "createdAt", "string" },
  } },
  { "Connection", "An app connection.", {
    { "id", "string" },
    { "provider", "string" },
    { "label", "string|onecli.null" },
    { "status", "string", "`connected`, …" },
    { "scopes", "string[]" },
    { "scope", "string" },
    { "metadata", "table|onecli.null", "email, username, name" },
    { "connectedAt", "string" },
  } },
  { "App", "An app of the catalog.", {
    { "id", "string", "provider id" },
    { "name", "string" },
    { "available", "boolean" },
    { "connectionType", '"oauth"|"api_key"|"credentials_import"|"cloud_only"' },
    { "configurable", "boolean", "supports a bring-your-own OAuth client" },
    { "config", "{ hasCredentials: boolean, enabled: boolean, source: string? }|onecli.null" },
    { "connection", "table|onecli.null", "deprecated: the first connection" },
    { "connections", "table[]", "`{ id, label, status, scopes, connectedAt }`" },
    { "credentialStubs", "table[]", "`{ path, content }`" },
    { "hint", "string?", "`apps:get` only: setup instructions" },
  } },
  { "User", "The calling user.", {
    { "id", "string" },
    { "email", "string" },
    { "name", "string|onecli.null" },
    { "createdAt", "string?", "not in the answer of `user:update`" },
  } },
  { "BlocklistHostState", "A blocked (or blockable) host of an app.", {
    { "hostId", "string", "predefined id, or `custom:<host>`" },
    { "ruleId", "string|onecli.null", "null: a predefined host never activated" },
    { "enabled", "boolean" },
    { "custom", "boolean" },
    { "name", "string" },
    { "hostPattern", "string" },
    { "scope", "string|onecli.null" },
  } },
  { "PermissionDefinition", "The tools of an app, for app permissions.", {
    { "provider", "string" },
    { "groups", "{ category: string, tools: table[], wildcard: table? }[]",
      "tool ids are what permission `changes[].toolId` take" },
  } },
  { "ContainerConfig", "What an agent needs to run in a container (`client:container_config`); "
      .. "`onecli.docker_args` turns it into `docker run` arguments.", {
    { "env", "table<string, string>",
      "`HTTPS_PROXY`, `HTTP_PROXY` (with the agent's token), `NODE_EXTRA_CA_CERTS`, …" },
    { "caCertificate", "string", "PEM" },
    { "caCertificateContainerPath", "string", "`/tmp/onecli-gateway-ca.pem`" },
    { "credentialStubs", "{ containerPath: string, content: string|table }[]?" },
    { "warnings", "string[]?" },
  } },
  { "GranularAccessEntry", "Per-connection access policy of an agent (v1.37–v1.42).", {
    { "agentId", "string" },
    { "agentName", "string" },
    { "connectionId", "string" },
    { "provider", "string" },
    { "connectionLabel", "string|onecli.null" },
    { "policy", "table", "provider-specific" },
  } },
  { "Grants", "What an agent may use (v1.44+, v2).", {
    { "agentId", "string" },
    { "mode", '"grants"' },
    { "connections", "onecli.ConnectionGrant[]" },
    { "secrets", "{ secretId: string, name: string, type: string, scope: string }[]" },
  } },
  { "ConnectionGrant", "A connection an agent may use.", {
    { "connectionId", "string" },
    { "provider", "string" },
    { "label", "string|onecli.null" },
    { "scope", "string" },
    { "access", '"full"|"custom"' },
    { "allow", "string[]", "tool ids allowed" },
    { "ask", "string[]", "tool ids that need an approval" },
    { "resources", "table|onecli.null" },
  } },
  { "PendingApproval", "A request held by the gateway until someone approves or denies it.", {
    { "id", "string" },
    { "projectId", "string" },
    { "workspaceId", "string?", "v2" },
    { "method", "string" },
    { "url", "string" },
    { "host", "string" },
    { "path", "string" },
    { "headers", "table<string, string>", "authentication headers removed" },
    { "bodyPreview", "string|onecli.null" },
    { "summary", "table|onecli.null" },
    { "agent", "{ id: string, name: string, externalId: string|onecli.null }",
      "`externalId` is the agent's identifier" },
    { "createdAt", "string" },
    { "expiresAt", "string" },
  } },
  { "PendingApprovals", "The answer of `approvals:pending`.", {
    { "requests", "onecli.PendingApproval[]" },
    { "timeoutSeconds", "integer",
      "how long a held request waits for a decision before it is denied" },
  } },
  { "Workspace", "A workspace (a project on v1).", {
    { "id", "string" },
    { "name", "string" },
    { "slug", "string" },
    { "createdAt", "string" },
    { "apiKey", "string|onecli.null?", "`workspaces:create` only: your key for it, shown once" },
  } },
  { "Health", "The answer of `client:health()`.", {
    { "status", "string", "`ok`" },
    { "version", "string" },
    { "timestamp", "string" },
  } },
  { "SseEvent", "One server-sent event of a `text/event-stream` answer (`conversations:stream`).", {
    { "id", "string?", "the last id the stream sent (SSE keeps it across events); absent before the first" },
    { "event", "string", "the event's name: `message` when the stream names none (the transcript "
      .. "stream sends `transcript` events)" },
    { "data", "table|string", "JSON-decoded when it is a JSON object or array, else the text "
      .. "(several data lines joined with newlines)" },
  } },
  { "Skill", "A skill (v2): instructions materialized into hosted agents' sandboxes. List items "
      .. "carry `fileCount` instead of `content` and `files`.", {
    { "id", "string" },
    { "scope", '"workspace"|"agent"|"organization"' },
    { "agentId", "string|onecli.null", "set on agent skills" },
    { "workspaceId", "string|onecli.null", "null on organization skills" },
    { "organizationId", "string|onecli.null", "set on organization skills" },
    { "name", "string", "lower-case words and hyphens; cannot be changed" },
    { "description", "string", "one line: how an agent decides to load it" },
    { "content", "string?", "not in list items" },
    { "enabled", "boolean" },
    { "createdByEmail", "string" },
    { "createdAt", "string" },
    { "updatedAt", "string" },
    { "files", "{ path: string, content: string }[]?", "not in list items" },
    { "fileCount", "integer?", "list items only" },
  } },
  { "Invitation", "An invitation to the organization (`org.invitations:list`).", {
    { "id", "string" },
    { "email", "string" },
    { "role", "string", "`admin` or `member`" },
    { "invitedByEmail", "string" },
    { "expiresAt", "string" },
    { "createdAt", "string" },
    { "status", '"pending"|"expired"' },
  } },
  { "Member", "A member of the organization (v2, Enterprise licence).", {
    { "userId", "string" },
    { "email", "string" },
    { "name", "string|onecli.null" },
    { "role", "string" },
    { "status", '"active"|"suspended"' },
    { "ssoExempt", "boolean?", "not in the answer of `org.members:create`" },
    { "joinedAt", "string" },
  } },
  { "Group", "A user group (v2, Enterprise licence).", {
    { "id", "string" },
    { "name", "string" },
    { "source", '"manual"|"scim"', "`scim` groups are managed by the identity provider" },
    { "externalId", "string|onecli.null" },
    { "memberCount", "integer" },
    { "createdAt", "string" },
    { "updatedAt", "string" },
  } },
  { "GroupMember", "A member of a user group (`org.groups:members`).", {
    { "userId", "string" },
    { "email", "string" },
    { "name", "string|onecli.null" },
    { "addedAt", "string" },
  } },
}

-- The hand-written methods and functions (not in the endpoint table).
-- `check` names what spec/docs_spec.lua looks for, to keep this honest.
_M.HELPERS = {
  { title = "client.agents:ensure", check = "client.agents.ensure",
    forms = { "local agent, created = client.agents:ensure{ name =, identifier = [, parentIdentifier =] }",
              "client.agents:ensure(spec, opts)" },
    text = "Creates the agent, or returns the one that already has this identifier: a 409 "
      .. "(or an answer lost after the create) is settled by listing the agents, without a "
      .. "second error. Returns the agent and whether it was created. Other errors are raised "
      .. "(or returned) as usual." },
  { title = "client:container_config and onecli.docker_args", check = "onecli.docker_args",
    forms = { "local config = client:container_config{ agent = \"research-bot\" }",
              "local args = onecli.docker_args(config, { dir = \"/tmp/onecli\" })" },
    text = "`container_config` (generated, see [client:container_config](#clientcontainer_config)) "
      .. "returns a [ContainerConfig](#containerconfig). `onecli.docker_args` turns it into the "
      .. "`docker run` arguments the Node SDK's `applyContainerConfig` (`@onecli-sh/sdk` 2.2.1) "
      .. "pushes: `-e NAME=value` per variable (server order), the gateway CA mount, a combined "
      .. "CA bundle (host CAs then the gateway CA; `SSL_CERT_FILE`, `DENO_CERT`), each credential "
      .. "stub, and `--add-host host.docker.internal:host-gateway` on Linux. Files are written "
      .. "into `dir`. Options: `combine_ca_bundle`, `add_host_mapping`, `platform`, `system_ca`, "
      .. "`args`." },
  { title = "onecli.docker_command and onecli.shell_quote", check = "onecli.docker_command",
    forms = { "local cmd, argv = onecli.docker_command(config, { dir = dir, run_args = { \"--rm\" }, mask = true }, image, ...)",
              "local line = onecli.shell_quote({ \"echo\", \"it's\" })" },
    text = "`docker_command` is the whole `docker run` command as one POSIX-sh-safe string, and "
      .. "its argument list; `mask = true` shows the agent's token (inside the proxy variables) "
      .. "as `***` in the string only. `shell_quote` quotes any list of words." },
  { title = "Being the agent: client:gateway_env, client:run, client:gateway_proxy, client:as_agent",
    check = "client.as_agent",
    forms = { "local env, warnings = client:gateway_env([agent [, { gateway =, ca_bundle =, inherit = }]])",
              "local list = onecli.env_list(env)   local line = onecli.env_command(env, argv)",
              "local result = client:run(argv, { agent =, inherit =, callback = })   -- { status, output, warnings }",
              "local p = client:gateway_proxy(agent)   -- { proxy =, ca_file =, warnings = }",
              "local agent = client:as_agent(agent [, { timeout =, callback = }])",
              "local status, headers, body = agent:request(method, url [, { headers =, body =, callback = }])" },
    text = "What the Go CLI's `onecli run` does, from Lua. `gateway_env` is a child process's "
      .. "environment: the agent's proxy on the gateway host seen from here (never "
      .. "`host.docker.internal`), every CA variable on one bundle of the system CAs and the "
      .. "gateway CA, no `ANTHROPIC_API_KEY` placeholder, and with `inherit` the current "
      .. "environment minus every proxy, `NO_PROXY` and CA variable. `run` starts a command "
      .. "with exactly that environment (Neovim, with `callback`: a handle, `jobstart`; nginx: "
      .. "`ngx.pipe` or a detached shell polled with `ngx.sleep`). `gateway_proxy` is for the "
      .. "host's own HTTP clients. `as_agent` sends requests through the gateway with libcurl "
      .. "on the client's kind of transport (not inside an nginx worker); the gateway's "
      .. "refusals are `authentication_error`, `policy_error`, `approval_denied_error`, "
      .. "`approval_expired_error` with `gateway = true`. The agent's token is never in an "
      .. "error or a log line." },
  { title = "client.approvals:runner and :run", check = "client.approvals.runner",
    forms = { "local runner = client.approvals:runner(handler [, opts])",
              "local stats = client.approvals:run(handler [, opts])   -- runner(...):run()" },
    text = "A handler loop over the gateway's pending approval requests ([approvals:pending]"
      .. "(#clientapprovalspending) long-polls, [approvals:decide](#clientapprovalsdecide) "
      .. "submits). `handler(request, runner)` is called once per "
      .. "[PendingApproval](#pendingapproval) and returns `\"approve\"`, `\"deny\"`, `true`, "
      .. "`false`, or `nil` to leave the request to a human (it is then excluded from later "
      .. "polls until it expires). A request is never handed to the handler twice while it "
      .. "is in flight; one whose handler raised comes again on a later poll. Failures back "
      .. "off exponentially. Options: `max_polls`, `stop` (a function: stop when it returns "
      .. "true), `on_error(err, request)`, `project_id`, `backoff_base`, `backoff_max`. The "
      .. "runner has `:run()` (loops until done, returns the stats), `:step()` (one poll; "
      .. "returns true when done, for event loops), `:stop()` (ends the loop after the "
      .. "current step) and `.stats` (`polls`, `handled`, `approved`, `denied`, `skipped`, "
      .. "`expired`, `errors`)." },
  { title = "client:batch and client:batch_start", check = "client.batch",
    forms = { "local results, failed = client:batch(calls [, { concurrency = N }])",
              "local b = client:batch_start(calls [, { concurrency = N }])" },
    text = "Runs many calls at once and returns their results in the order of `calls`, and "
      .. "how many failed: each result is the resource, or an error object (check with "
      .. "`onecli.is_error`) — a failed call does not stop the others. A call is an endpoint "
      .. "name followed by the arguments of its method (`{ \"agents.get\", id }`, "
      .. "`{ \"secrets.create\", { name = … }, { timeout = 5 } }`) or a raw request "
      .. "`{ method =, path = [, body =, query =, response =] }` plus per-call options. At "
      .. "most `concurrency` calls (default 8, at most 100) are in flight; each is retried as "
      .. "a single call would be. Misuse raises before anything is sent. With the default "
      .. "transport the calls share one libcurl multi handle; with another transport they run "
      .. "one after the other. `batch_start` returns the batch without waiting, for event "
      .. "loops: `b:step()` (never blocks; true once every call is done), `b:next_wakeup()` "
      .. "(seconds until it wants to be stepped again), `b:wait([max_seconds])`, `b:done()`, "
      .. "`b:results()` and `b:cancel()`." },
  { title = "client:request", check = "client.request",
    forms = { "client:request(method, path [, opts])" },
    text = "Any endpoint by HTTP method and path (relative to the base URL): `opts` takes "
      .. "`body` (a table, or a string sent as is), `query` (a table), `response` (`\"json\"`, "
      .. "`\"text\"`, `\"binary\"`, `\"events\"`, `\"redirect\"`: what the generated methods "
      .. "return for each) and the per-call options. Retried like a generated method of the same "
      .. "verb." },
  { title = "client:close, client:has_api_key, client:gateway_origin", check = "client.gateway_origin",
    forms = { "client:close()", "client:has_api_key()", "local origin, err = client:gateway_origin([opts])" },
    text = "`close` releases the connection (idempotent; also on garbage collection and "
      .. "`<close>`). `has_api_key` says whether a key is configured (the key itself is never "
      .. "exposed). `gateway_origin` is the gateway origin approvals are sent to: the "
      .. "`gateway_url` option, `ONECLI_GATEWAY_URL`, or `GET /gateway-url` once (cached); "
      .. "it returns `nil, err` rather than raising." },
  { title = "onecli.try", check = "onecli.try",
    forms = { "local result, err = onecli.try(fn, ...)" },
    text = "Calls `fn(...)` and turns a raised OneCLI error into `nil, err`; any other error "
      .. "(a bug, a misuse) is raised again." },
  { title = "onecli.null, onecli.array, onecli.empty_array", check = "onecli.array",
    forms = { "client.secrets:update(id, { pathPattern = onecli.null })",
              "{ ids = onecli.array(t) }, { ids = onecli.empty_array }" },
    text = "`onecli.null` is JSON `null` (send it to clear a nullable field; compare against "
      .. "it in answers). `onecli.array(t)` marks a table as a JSON array so that an empty one "
      .. "is sent as `[]`; `onecli.empty_array` is a read-only `[]`. `onecli.is_error(v)` "
      .. "tells error objects apart." },
  { title = "Transports", check = "transports",
    forms = { "onecli.new{ transport = require(\"onecli.transport.resty\").new{ timeout = 10 } }",
              "local nvim = require(\"onecli.transport.nvim\")",
              "local client = nvim.client{ url = … }   -- onecli.new options, Neovim transport",
              "local h = client.agents:list{ callback = function(agents, err) … end }",
              "h:cancel()   h:wait(timeout_ms)   h:is_done()",
              "nvim.run(function() local agents = client.agents:list() end)",
              "local client = require(\"onecli.transport.uv\").client{ url = … }   -- a luv loop" },
    text = "`onecli.transport.resty` (nginx cosockets; retries wait with `ngx.sleep`) is "
      .. "selected automatically for a client created inside nginx (outside the init phases). "
      .. "`onecli.transport.nvim` runs the transfers in a libcurl multi handle woken by its "
      .. "sockets (`vim.loop` poll handles and one timer, nothing active while idle): a call "
      .. "made inside a coroutine (`nvim.run(fn)`) waits there without blocking the editor, and "
      .. "a call with the per-call option `callback = function(result, err) end` returns a "
      .. "handle at once and calls it on the main loop. `h:cancel()` ends that call only "
      .. "(`err.code == \"CANCELLED\"`), `h:wait(ms)` waits for it (`vim.wait`; on timeout a "
      .. "`timeout_error`, code `WAIT_TIMEOUT`, and the call goes on). `client:batch` runs its "
      .. "calls side by side inside a coroutine. `onecli.transport.uv` is the same driver on a "
      .. "plain luv loop." },
  { title = "onecli.setup (Neovim)", check = "onecli.setup",
    forms = { "require(\"onecli\").setup{ url = …, list = \"buffer\", approvals = { handler = … } }" },
    text = "Configures the `:OneCLI` command (`agents`, `secrets`, `rules`, `approvals`, "
      .. "`approvals watch`, `approvals stop`, `health`); takes the options of `onecli.new` "
      .. "except `transport`. See the README's Neovim section." },
}

---------------------------------------------------------------------------
-- helpers

--- The compiled endpoint table.
function _M.endpoints()
  return require("onecli").endpoints
end

local function split_name(name)
  local ns, method = name:match("^(.+)%.([%w_]+)$")
  if ns then
    return ns, method
  end
  return "", name
end
_M.split_name = split_name

local function receiver(ns)
  if ns == "" then
    return "client:"
  end
  return "client." .. ns .. ":"
end

--- The call form of an endpoint: client.agents:get(agentId [, opts]).
local function call_form(ep, shorthand)
  local ns, method = split_name(ep.name)
  local required, optional = {}, {}
  for _, p in ipairs(ep.params) do
    required[#required + 1] = p
  end
  if ep.body == "binary" then
    required[#required + 1] = "bytes"
  elseif ep.body then
    local body = shorthand and ep.shorthand or "body"
    if ep.body == "required" then
      required[#required + 1] = body
    else
      optional[#optional + 1] = body
    end
  end
  -- a binary body may be followed by the query (methods.lua parse_args)
  if ep.query_names and (not ep.body or ep.body == "binary") then
    optional[#optional + 1] = "query"
  end
  optional[#optional + 1] = "opts"
  local s = concat(required, ", ")
  for _, o in ipairs(optional) do
    s = s == "" and ("[" .. o) or (s .. " [, " .. o)
  end
  s = s .. string.rep("]", #optional)
  return receiver(ns) .. method .. "(" .. s .. ")"
end
_M.call_form = call_form

--- The iterator of a paginated endpoint, as a pseudo-endpoint named
-- "org.members.each" (the page call is its `page`), or nil.
local function iterator_of(ep)
  if not ep.each then
    return nil
  end
  local ns = split_name(ep.name)
  return {
    name = (ns == "" and "" or (ns .. ".")) .. ep.each, page = ep, params = ep.params,
    query_names = ep.query_names, method = ep.method, path = ep.path, base = ep.base,
    scope = ep.scope, since = ep.since, idempotent = ep.idempotent,
  }
end
_M.iterator_of = iterator_of

--- The call form of an iterator: client.org.groups:each_member(groupId [, query [, opts]]).
function _M.iterator_form(ep)
  return call_form(iterator_of(ep))
end

-- GitHub's heading anchors
local function slug(s)
  return (s:lower():gsub("[^%w%- _]", ""):gsub(" ", "-"))
end
_M.slug = slug

local function shorthand_is_array(ep)
  for _, a in ipairs(ep.arrays or {}) do
    if a == ep.shorthand then
      return true
    end
  end
  return false
end

local function route(ep)
  if ep.base == "gateway" then
    return ep.method .. " {gateway}" .. ep.path
  end
  return ep.method .. " /v1" .. ep.path
end
_M.route = route

local function fallback_route(ep)
  return ep.method .. " /v1" .. ep.fallback
end

-- A LuaLS type as markdown: in backquotes, with links to the object shapes
-- it names (onecli.null is no shape).
local function shape_md(shape)
  local links, seen = {}, {}
  for n in shape:gmatch("onecli%.([%w_]+)") do
    if n ~= "null" and not seen[n] then
      seen[n] = true
      links[#links + 1] = "[" .. n .. "](#" .. n:lower() .. ")"
    end
  end
  local s = "`" .. shape:gsub("onecli%.", "") .. "`"
  if #links > 0 then
    s = s .. " (see " .. concat(links, ", ") .. ")"
  end
  return s
end

-- What a page call answers (its RETURNS, or the kind's generic page).
local function page_shape(ep)
  return _M.RETURNS[ep.name] or PAGES[ep.paginate].shape
end

-- The LuaLS type of what an iterator yields: the item type of its pages'
-- list when RETURNS knows it.
local function item_type(ep)
  local kind = PAGES[ep.paginate]
  return page_shape(ep):match(kind.items .. ": ([%w_%.]+)%[%]") or "table"
end

local function method_heading(ep)
  local ns, method = split_name(ep.name)
  return receiver(ns) .. method
end

local function method_link(ep)
  local h = method_heading(ep)
  return "[`" .. h .. "`](#" .. slug(h) .. ")"
end

local function returns_md(ep)
  if ep.response == "text" then
    return "string: the response body (text, not JSON)"
  elseif ep.response == "binary" then
    return "string: the response body's bytes, as sent (not decoded)"
  elseif ep.response == "events" then
    return "`SseEvent[]` (see [SseEvent](#sseevent)): the `text/event-stream` answer, read until the "
      .. "server ends it or the call's `timeout` passes (a timeout once the answer began ends the "
      .. "stream, it is not an error; an event cut short is dropped), parsed into its events in "
      .. "order (`{ id =, event =, data = }`)"
  elseif ep.response == "redirect" then
    return "string: the URL of the redirect's `Location` (the redirect is not followed)"
  elseif ep.method == "DELETE" then
    return "`true` (204 No Content)"
  end
  if ep.paginate then
    local it = iterator_of(ep)
    return shape_md(page_shape(ep)) .. ": one page; " .. method_link(it) .. " iterates over every page"
  end
  local shape = _M.RETURNS[ep.name]
  if not shape then
    return "a table decoded from JSON (`true` if the server answers 204)"
  end
  return shape_md(shape)
end

local function returns_lua(ep)
  if ep.response == "text" or ep.response == "redirect" or ep.response == "binary" then
    return "string"
  elseif ep.response == "events" then
    return "onecli.SseEvent[]"
  elseif ep.method == "DELETE" then
    return "true"
  end
  if ep.paginate then
    return page_shape(ep)
  end
  local shape = _M.RETURNS[ep.name]
  if shape then
    return shape
  end
  return "table"
end

local function scope_md(ep)
  if ep.scope == "project" then
    return "project (a project key, or an organization key with `project_id`)"
  elseif ep.scope == "any" then
    return "any (no project needed; an organization key works alone)"
  end
  return "none (no authentication: the key is not sent)"
end

local function retried_md(ep)
  if ep.idempotent then
    if ep.method == "POST" then
      return "yes (marked idempotent: repeating it cannot create a duplicate)"
    end
    return "yes, on retryable errors"
  end
  return "only when the request provably never reached the server, or on 429/503 with "
    .. "`Retry-After` (repeating it could create a duplicate)"
end

local function md_cell(s)
  return (tostring(s):gsub("|", "\\|"))
end


--- Namespaces in order of first appearance: list of { ns =, eps = {} }.
local function group(endpoints)
  local groups, by_ns = {}, {}
  for _, ep in ipairs(endpoints) do
    local ns = split_name(ep.name)
    local g = by_ns[ns]
    if not g then
      g = { ns = ns, eps = {} }
      by_ns[ns] = g
      groups[#groups + 1] = g
    end
    g.eps[#g.eps + 1] = ep
  end
  -- the top level first
  local ordered = {}
  if by_ns[""] then
    ordered[1] = by_ns[""]
  end
  for _, g in ipairs(groups) do
    if g.ns ~= "" then
      ordered[#ordered + 1] = g
    end
  end
  return ordered
end
_M.group = group

local function ns_heading(ns)
  if ns == "" then
    return "client"
  end
  return "client." .. ns
end

---------------------------------------------------------------------------
-- iterators (onecli.pagination)

local function query_md(ep)
  local names = {}
  for _, q in ipairs(ep.query_names) do
    names[#names + 1] = q .. " ="
  end
  return "`{ " .. concat(names, ", ") .. " }` (other keys raise)"
end

-- One line for the namespace's table and the LuaLS stub.
local function iterator_doc(ep)
  local _, method = split_name(ep.name)
  return fmt("Iterator: every item of `%s` of every page of `:%s`", PAGES[ep.paginate].items, method)
end

-- What the iterator yields and how it goes through the pages.
local function iterator_text(ep, page_ref)
  local kind = PAGES[ep.paginate]
  return fmt("Every item of every page of %s, one at a time: the iterator calls it page after "
    .. "page, yields each item of `%s`, and %s. `limit` is the page size, sent with every page; "
    .. "a `%s` in the query is where it starts.", page_ref, kind.items, kind.follows, kind.param)
end

local function iterator_md(w, ep)
  local it = iterator_of(ep)
  local kind = PAGES[ep.paginate]
  w("### ", method_heading(it))
  w("")
  w("```lua")
  w(call_form(it))
  w("for item in ", method_heading(it), "(", concat(ep.params, ", "), ") do … end")
  w("```")
  w("")
  w(iterator_text(ep, method_link(ep)))
  w("")
  w("- **HTTP**: `", route(ep), "`, once per page")
  w("- **Scope**: ", scope_md(ep))
  w("- **Servers**: ", ep.since or "—")
  if ep.query_names then
    w("- **Query**: ", query_md(ep), ", as for ", method_link(ep))
  end
  local item, note = item_type(ep), ""
  if item ~= "table" then
    local n = item:gsub("^onecli%.", "")
    note = fmt(" (a [%s](#%s))", n, n:lower())
  elseif kind.item_note then
    note = " (" .. kind.item_note .. ")"
  end
  w("- **Yields**: each item of `", kind.items, "`", note,
    ", then `nil` after the last page. A failed page raises in the middle of the loop; with "
    .. "`raise = false` the loop gets `false, err` once and stops. A server that hands back the `",
    kind.param, "` it was given fails the page with a `decode_error` (rather than being asked forever)")
  w("- **Options**: the [per-call options](#per-call-options), for every page, except `callback` "
    .. "(raises: call ", method_link(ep), " page by page for that)")
  w("- **Retried**: each page, as the page call: ", retried_md(ep))
  w("")
end

---------------------------------------------------------------------------
-- docs/api.md

function _M.api_markdown(endpoints)
  local out = {}
  local function w(...)
    out[#out + 1] = concat({ ... })
  end
  local groups = group(endpoints)
  local iterators = {}
  for _, g in ipairs(groups) do
    local n = 0
    for _, ep in ipairs(g.eps) do
      n = n + (ep.each and 1 or 0)
    end
    iterators[g] = n
    iterators.total = (iterators.total or 0) + n
  end

  w("# lua-onecli API reference")
  w("")
  w("<!-- Generated by docs/generate.lua from lua/onecli/endpoints.lua: do not edit.")
  w("     Regenerate with `lua5.4 docs/generate.lua` from the repository root. -->")
  w("")
  w(fmt("Every method of this reference but the [hand-written helpers](#hand-written-helpers) is "
        .. "generated from one line of `lua/onecli/endpoints.lua`: %d methods, and %d iterators over "
        .. "paginated lists, in %d groups. "
        .. "Configuration, errors and retries are described in the [README](../README.md).",
        #endpoints, iterators.total or 0, #groups))
  w("")
  w("## Reading this reference")
  w("")
  w("- **Call**: path parameters come first, in the order of the route, and are URL-escaped "
    .. "(integers are accepted); then the body (a table; for an upload, a string of bytes, which "
    .. "the query may follow) or the query (a table); then the "
    .. "[per-call options](#per-call-options). Arguments in brackets are optional; pass `nil` "
    .. "for a skipped one to reach the options (`client.connections:list(nil, { timeout = 5 })`). "
    .. "Where the query would be the last argument, a table whose keys are all option names is "
    .. "taken as the options: `client.agents:list{ project_id = \"…\" }` (no query parameter has "
    .. "an option's name). "
    .. "Where a one-field body has a shorthand, the value alone stands for the table: "
    .. "`client.agents:rename(id, \"New name\")` sends `{\"name\":\"New name\"}`.")
  w("- **HTTP**: the route relative to the server, for the default base `…/v1` (a base such "
    .. "as `…/api` replaces the `/v1`). `{gateway}` is the gateway origin (the `gateway_url` "
    .. "option, `ONECLI_GATEWAY_URL`, or `GET /v1/gateway-url`).")
  w("- **Scope**: *project* needs a project (a project key, or an organization key and a "
    .. "`project_id`); *any* works without one; *none* sends no credentials.")
  w("- **Servers**: the server versions that serve the route, as recorded in the endpoint "
    .. "table (`v1` = v1.29–v1.45; `—` = no restriction recorded). Older or newer servers "
    .. "answer 404 `invalid_request_error` (unknown route) or 410 (route retired).")
  w("- **Returns**: the decoded JSON answer as plain Lua tables (shapes under "
    .. "[Object shapes](#object-shapes)); `true` for a 204; a string for text, binary and "
    .. "redirect answers; a list of [events](#sseevent) for an event stream. Failures raise an "
    .. "error object (`err.status`, `err.type`, `err.message`, …), "
    .. "or return `nil, err` with `raise = false`.")
  w("- **Iterators**: a paginated list (pages of `{ data =, nextCursor = }` or `{ events =, "
    .. "nextSince =, hasMore = }`) also gives its namespace an iterator, documented right after "
    .. "its page call: `for member in client.org.members:each{ q = \"ann\" } do … end` asks for "
    .. "page after page and yields each item.")
  w("- **Retried**: whether a failed call is repeated automatically (up to `max_retries`, "
    .. "with backoff) on retryable errors: 408, 429, 5xx, connection and timeout errors.")
  w("")
  w("## Contents")
  w("")
  for _, g in ipairs(groups) do
    local h = ns_heading(g.ns)
    w(fmt("- [%s](#%s) — %s (%d)", h, slug(h), NAMESPACE_TITLES[g.ns] or h, #g.eps + iterators[g]))
  end
  w("- [Hand-written helpers](#hand-written-helpers)")
  w("- [Per-call options](#per-call-options)")
  w("- [Client options](#client-options)")
  w("- [Object shapes](#object-shapes)")
  w("")

  for _, g in ipairs(groups) do
    local h = ns_heading(g.ns)
    w("## ", h)
    w("")
    w(NAMESPACE_TITLES[g.ns] or h, ".")
    if g.ns == "workspaces" then
      for _, a in ipairs(_M.ALIASES) do
        w("")
        w(fmt("`client.%s` is the same object as `client.%s`.", a[1], a[2]))
      end
    end
    w("")
    w("| method | HTTP | servers | |")
    w("|---|---|---|---|")
    for _, ep in ipairs(g.eps) do
      local mh = method_heading(ep)
      w(fmt("| [`%s`](#%s) | `%s` | %s | %s |", mh:match("(:[%w_]+)$"), slug(mh),
            md_cell(route(ep)), md_cell(ep.since or "—"), md_cell(ep.doc or "")))
      local it = iterator_of(ep)
      if it then
        local ih = method_heading(it)
        w(fmt("| [`%s`](#%s) | `%s` | %s | %s |", ih:match("(:[%w_]+)$"), slug(ih),
              md_cell(route(ep)), md_cell(ep.since or "—"), md_cell(iterator_doc(ep))))
      end
    end
    w("")
    for _, ep in ipairs(g.eps) do
      w("### ", method_heading(ep))
      w("")
      w("```lua")
      w(call_form(ep))
      if ep.shorthand then
        w(call_form(ep, true), shorthand_is_array(ep)
          and fmt("   -- a list stands for { %s = list }", ep.shorthand)
          or fmt("   -- stands for { %s = %s }", ep.shorthand, ep.shorthand))
      end
      w("```")
      w("")
      if ep.doc then
        w(ep.doc, ep.doc:find("[.!?]$") and "" or ".")
        w("")
      end
      w("- **HTTP**: `", route(ep), "`")
      w("- **Scope**: ", scope_md(ep))
      w("- **Servers**: ", ep.since or "—")
      if ep.body == "binary" then
        w("- **Body**: required string of bytes (the file itself, not JSON), sent as "
          .. "`application/octet-stream` (the `headers` option may set another `Content-Type`)")
      elseif ep.body then
        local b = ep.body == "required" and "required table" or "optional table"
        if ep.shorthand then
          b = b .. fmt(", or the value of `%s` alone", ep.shorthand)
        end
        if ep.arrays then
          local names = {}
          for _, a in ipairs(ep.arrays) do
            names[#names + 1] = "`" .. a .. "`"
          end
          b = b .. "; " .. concat(names, ", ") .. " always sent as JSON arrays, even empty"
        end
        w("- **Body**: ", b)
      end
      if ep.query_names then
        w("- **Query**: ", query_md(ep))
      end
      w("- **Returns**: ", returns_md(ep))
      w("- **Retried**: ", retried_md(ep))
      if ep.timeout then
        w(fmt("- **Timeout**: at least %d s by default (the client's `timeout` if larger)", ep.timeout))
      end
      if ep.fallback then
        w("- **v1 fallback**: `", fallback_route(ep), "` when the server does not know the "
          .. "route (404 unknown route); the client then remembers to use it")
      end
      if ep.after == "switch_key" then
        w("- **After**: the client switches to the returned key (not when it uses an "
          .. "organization key, which is not rotated)")
      end
      w("")
      if ep.each then
        iterator_md(w, ep)
      end
    end
  end

  w("## Hand-written helpers")
  w("")
  w("Methods and functions that are not one endpoint each.")
  w("")
  for _, hp in ipairs(_M.HELPERS) do
    w("### ", hp.title)
    w("")
    w("```lua")
    for _, f in ipairs(hp.forms) do
      w(f)
    end
    w("```")
    w("")
    w(hp.text)
    w("")
  end

  w("## Per-call options")
  w("")
  w("Every generated method takes a last, optional options table for one call "
    .. "(`client.agents:list{ timeout = 5 }`); unknown options and wrong types raise.")
  w("")
  w("| option | type | meaning |")
  w("|---|---|---|")
  for _, o in ipairs(_M.CALL_OPTIONS) do
    w(fmt("| `%s` | `%s` | %s |", o[1], md_cell(o[2]), md_cell(o[3])))
  end
  w("")
  w("## Client options")
  w("")
  w("`onecli.new(opts)`: every option is optional; unknown options and wrong types raise.")
  w("")
  w("| option | type | default | meaning |")
  w("|---|---|---|---|")
  for _, o in ipairs(_M.CLIENT_OPTIONS) do
    w(fmt("| `%s` | `%s` | %s | %s |", o[1], md_cell(o[2]), md_cell(o[3]), md_cell(o[4])))
  end
  w("")
  w("## Object shapes")
  w("")
  w("The main shapes of the answers: fields marked v1 or v2 appear only there, a type "
    .. "ending in `?` means the field may be absent, and JSON `null` comes back as "
    .. "`onecli.null`.")
  w("")
  for _, obj in ipairs(_M.OBJECTS) do
    w("### ", obj[1])
    w("")
    w(obj[2])
    w("")
    w("| field | type | |")
    w("|---|---|---|")
    for _, f in ipairs(obj[3]) do
      w(fmt("| `%s` | `%s` | %s |", f[1], md_cell(f[2]), md_cell(f[3] or "")))
    end
    w("")
  end
  -- one trailing newline
  while out[#out] == "" do
    out[#out] = nil
  end
  return concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- lua/onecli/meta.lua

local function ident(ns)
  return "onecli_" .. ns:gsub("%.", "_")
end

local function class_name(ns)
  return "onecli." .. ns
end

local function lua_comment_lines(w, text)
  for line in (text .. "\n"):gmatch("(.-)\n") do
    w(line == "" and "---" or ("---" .. line))
  end
end

local function query_type(ep)
  local fields = {}
  for _, q in ipairs(ep.query_names) do
    fields[#fields + 1] = q .. "?: string|number|boolean"
  end
  return "{ " .. concat(fields, ", ") .. " }"
end

local function body_type(ep)
  if not ep.shorthand then
    return "table"
  end
  local t = SHORTHAND_TYPES[ep.shorthand]
  if not t then
    t = shorthand_is_array(ep) and "string[]" or "string"
  end
  return "table|" .. t
end

local function method_stub(w, ep)
  local ns, method = split_name(ep.name)
  local doc = ep.doc or ep.name
  local desc = { doc .. (doc:find("[.!?]$") and "" or ".") }
  local facts = { "`" .. route(ep) .. "`", "scope: " .. ep.scope }
  if ep.since then
    facts[#facts + 1] = "servers: " .. ep.since
  end
  facts[#facts + 1] = ep.idempotent and "retried automatically" or "not retried once sent"
  desc[#desc + 1] = ""
  desc[#desc + 1] = concat(facts, " · ")
  if ep.fallback then
    desc[#desc + 1] = ""
    desc[#desc + 1] = "v1 fallback: `" .. fallback_route(ep) .. "`"
  end
  if ep.shorthand then
    desc[#desc + 1] = ""
    desc[#desc + 1] = fmt("Shorthand: the value of `%s` alone stands for `{ %s = value }`.",
                          ep.shorthand, ep.shorthand)
  end
  desc[#desc + 1] = ""
  desc[#desc + 1] = "Endpoint `" .. ep.name .. "`."
  lua_comment_lines(w, concat(desc, "\n"))
  local args = {}
  for _, p in ipairs(ep.params) do
    w("---@param ", p, " string")
    args[#args + 1] = p
  end
  if ep.body == "binary" then
    w("---@param bytes string the bytes to upload (sent as application/octet-stream)")
    args[#args + 1] = "bytes"
  elseif ep.body then
    w("---@param body", ep.body == "required" and "" or "?", " ", body_type(ep))
    args[#args + 1] = "body"
  end
  if ep.query_names and (not ep.body or ep.body == "binary") then
    w("---@param query? ", query_type(ep))
    args[#args + 1] = "query"
  end
  w("---@param opts? onecli.CallOptions")
  args[#args + 1] = "opts"
  w("---@return ", returns_lua(ep), " result")
  w("---@return onecli.Error? err only with `raise = false` (then result is nil)")
  if ns == "" then
    w("function Client:", method, "(", concat(args, ", "), ") end")
  else
    w("function ", ident(ns), ":", method, "(", concat(args, ", "), ") end")
  end
  w("")
  if ep.each then
    local it = iterator_of(ep)
    desc = { iterator_doc(ep) .. ".", "",
      iterator_text(ep, "`" .. method_heading(ep) .. "`"),
      "A failed page raises; with `raise = false` the loop gets `false, err` once and stops. "
        .. "No `callback` option.",
      "",
      "`" .. route(ep) .. "` once per page · scope: " .. ep.scope
        .. (ep.since and (" · servers: " .. ep.since) or "")
        .. (ep.idempotent and " · each page retried automatically" or ""),
      "",
      "Iterator of endpoint `" .. ep.name .. "`." }
    lua_comment_lines(w, concat(desc, "\n"))
    args = {}
    for _, p in ipairs(ep.params) do
      w("---@param ", p, " string")
      args[#args + 1] = p
    end
    if ep.query_names then
      w("---@param query? ", query_type(ep))
      args[#args + 1] = "query"
    end
    w("---@param opts? onecli.CallOptions for every page (no callback)")
    args[#args + 1] = "opts"
    w("---@return fun(): ", item_type(ep), "|false|nil, onecli.Error? iterator yields each item; "
      .. "false, err once on a failed page with raise = false")
    local _, each = split_name(it.name)
    w("function ", ident(ns), ":", each, "(", concat(args, ", "), ") end")
    w("")
  end
end

function _M.meta_lua(endpoints)
  local out = {}
  local function w(...)
    out[#out + 1] = concat({ ... })
  end
  local groups = group(endpoints)

  -- every namespace level, and the children of each
  local namespaces, children, seen = {}, {}, {}
  local function add_ns(ns)
    if seen[ns] then
      return
    end
    seen[ns] = true
    local parent, child = ns:match("^(.+)%.([%w_]+)$")
    if parent then
      add_ns(parent)
      children[parent] = children[parent] or {}
      local list = children[parent]
      list[#list + 1] = child
    end
    namespaces[#namespaces + 1] = ns
  end
  for _, g in ipairs(groups) do
    if g.ns ~= "" then
      add_ns(g.ns)
    end
  end
  local eps_of = {}
  for _, g in ipairs(groups) do
    eps_of[g.ns] = g.eps
  end

  w("---@meta onecli")
  w("-- LuaLS / EmmyLua definitions of lua-onecli, for completion and type checks in")
  w("-- editors (Neovim with lua_ls, VS Code with sumneko.lua). Generated by")
  w("-- docs/generate.lua from lua/onecli/endpoints.lua: do not edit; regenerate with")
  w("-- `lua5.4 docs/generate.lua`. Loading it at run time does nothing useful: every")
  w("-- function below is an empty stub.")
  w("-- luacheck: ignore")
  w("")

  -- the module
  w("---@class onecli")
  w("---@field VERSION string")
  w("---@field _VERSION string")
  w("---@field user_agent string")
  w("---@field null onecli.null JSON null: send it to clear a nullable field, compare against it")
  w("---@field empty_array table a read-only empty JSON array")
  w("---@field endpoints onecli.Endpoint[] the compiled endpoint table the methods come from")
  w("local onecli = {}")
  w("")
  w("---Creates a client. Every option is optional; `url`, `api_key`, `project_id` and")
  w("---`gateway_url` default to `ONECLI_URL`, `ONECLI_API_KEY`, `ONECLI_PROJECT_ID` and")
  w("---`ONECLI_GATEWAY_URL`.")
  w("---@param opts? onecli.Options")
  w("---@return onecli.Client")
  w("function onecli.new(opts) end")
  w("")
  w("---Calls `fn(...)` and turns a raised OneCLI error into `nil, err`; other errors are")
  w("---raised again.")
  w("---@param fn function")
  w("---@param ... any")
  w("---@return any result")
  w("---@return onecli.Error? err")
  w("function onecli.try(fn, ...) end")
  w("")
  w("---Marks a table as a JSON array, so that an empty one is sent as `[]`.")
  w("---@generic T: table")
  w("---@param t T")
  w("---@return T")
  w("function onecli.array(t) end")
  w("")
  w("---Whether `v` is a OneCLI error object.")
  w("---@param v any")
  w("---@return boolean")
  w("function onecli.is_error(v) end")
  w("")
  w("---Turns a container config into the `docker run` arguments of the Node SDK's")
  w("---`applyContainerConfig`: `-e NAME=value` per variable (server order), the gateway CA and")
  w("---a combined CA bundle (host CAs, then the gateway CA) mounted from `opts.dir`, each")
  w("---credential stub, and `--add-host host.docker.internal:host-gateway` on Linux.")
  w("---@param config onecli.ContainerConfig")
  w("---@param opts? { dir?: string, combine_ca_bundle?: boolean, add_host_mapping?: boolean, platform?: string, system_ca?: string|string[], args?: string[] }")
  w("---@return string[]")
  w("function onecli.docker_args(config, opts) end")
  w("")
  w("---The `docker run` command for a container config as one POSIX-sh-safe string, and its")
  w("---argument list. `mask = true` hides the agent's token in the string only.")
  w("---@param config onecli.ContainerConfig")
  w("---@param opts? { dir?: string, docker?: string, run_args?: string[], mask?: boolean }")
  w("---@param image string")
  w("---@param ... string the command run in the container")
  w("---@return string command")
  w("---@return string[] argv")
  w("function onecli.docker_command(config, opts, image, ...) end")
  w("")
  w("---Quotes words for POSIX sh, as one command line.")
  w("---@param words string[]")
  w("---@return string")
  w("function onecli.shell_quote(words) end")
  w("")
  w("---An environment as a sorted list of `\"K=V\"` strings (vim.system, jobstart, uv.spawn, ngx.pipe).")
  w("---@param env table<string, string>")
  w("---@return string[]")
  w("function onecli.env_list(env) end")
  w("")
  w("---A quoted `env ... cmd args` line for os.execute; `complete = true`: `env -i`.")
  w("---@param env table<string, string>")
  w("---@param argv string[]")
  w("---@param opts? { complete?: boolean }")
  w("---@return string")
  w("function onecli.env_command(env, argv, opts) end")
  w("")
  w("---Sends requests through the OneCLI gateway as an agent (client:as_agent).")
  w("---@class onecli.GatewayAgent")
  w("---@field warnings string[] the server's, from the agent's container config")
  w("local GatewayAgent = {}")
  w("")
  w("---Any request through the gateway: the upstream's status, headers and body, or nil and")
  w("---the error object of the gateway's refusal. With `callback`, a handle is returned and")
  w("---`callback({ status =, headers =, body = }, err)` is called.")
  w("---@param method string")
  w("---@param url string an absolute http:// or https:// URL")
  w("---@param opts? { headers?: table<string, string>, body?: string, timeout?: number, raise?: boolean, callback?: fun(response: { status: integer, headers: table<string, string>, body: string }?, err: onecli.Error?) }")
  w("---@return integer|onecli.Handle|nil status")
  w("---@return table<string, string>|onecli.Error|nil headers")
  w("---@return string? body")
  w("function GatewayAgent:request(method, url, opts) end")
  w("")
  w("---Closes its connections to the gateway.")
  w("function GatewayAgent:close() end")
  w("")
  w("---Neovim: configures the `:OneCLI` command (onecli.nvim); the client is made on first use.")
  w("---@param opts? onecli.nvim.Options")
  w("function onecli.setup(opts) end")
  w("")
  w("---@param value any")
  w("---@return string")
  w("function onecli.json_encode(value) end")
  w("")
  w("---@param text string")
  w("---@return any")
  w("function onecli.json_decode(text) end")
  w("")
  w("---@class onecli.null: userdata")
  w("")

  -- options
  w("---Options of `onecli.new`.")
  w("---@class onecli.Options")
  for _, o in ipairs(_M.CLIENT_OPTIONS) do
    w("---@field ", o[1], "? ", o[2], " ", (o[4]:gsub("`", "")))
  end
  w("")
  w("---Options of one call: the last argument of every method.")
  w("---@class onecli.CallOptions")
  for _, o in ipairs(_M.CALL_OPTIONS) do
    w("---@field ", o[1], "? ", o[2], " ", (o[3]:gsub("`", "")))
  end
  w("")
  w("---Options of `client:request`.")
  w("---@class onecli.RequestOptions: onecli.CallOptions")
  w("---@field body? table|string a table is encoded as JSON, a string is sent as is")
  w("---@field query? table<string, string|number|boolean>")
  w("---@field response? \"json\"|\"text\"|\"binary\"|\"events\"|\"redirect\"")
  w("")
  w("---A transport: `request(req)` returns `status, headers, body` or `nil, err`.")
  w("---@class onecli.Transport")
  w("---@field async? boolean true: request() may suspend the running coroutine")
  w("---@field request fun(self: onecli.Transport, req: table): integer?, table|onecli.Error, string?")
  w("---@field close? fun(self: onecli.Transport)")
  w("---@field sleep? fun(seconds: number)")
  w("---@field schedule? fun(fn: function)")
  w("")
  w("---A compiled endpoint (`onecli.endpoints`).")
  w("---@class onecli.Endpoint")
  w("---@field name string")
  w("---@field method string")
  w("---@field path string")
  w("---@field scope \"project\"|\"any\"|\"none\"")
  w("---@field params string[]")
  w("---@field body? \"required\"|\"optional\"|\"binary\"")
  w("---@field shorthand? string")
  w("---@field arrays? string[]")
  w("---@field query_names? string[]")
  w("---@field response \"json\"|\"json_or_null\"|\"text\"|\"binary\"|\"events\"|\"redirect\"")
  w("---@field nullable? boolean the JSON answer may be null (onecli.null)")
  w("---@field idempotent boolean")
  w("---@field base? \"gateway\"")
  w("---@field fallback? string")
  w("---@field timeout? number")
  w("---@field since? string")
  w("---@field doc? string")
  w("---@field paginate? \"cursor\"|\"transcript\" a paginated list")
  w("---@field each? string the name of its iterator method")
  w("")

  -- the error object
  w("---Every failure of the network or the server. `tostring(err)` is one line.")
  w("---@class onecli.Error")
  w("---@field status integer? HTTP status; nil when no response came")
  w("---@field type string invalid_request_error, authentication_error, not_found_error,"
    .. " validation_error, rate_limit_error, api_error, decode_error, connection_error,"
    .. " timeout_error or tls_error")
  w("---@field message string the server's message, verbatim (at most 2048 bytes)")
  w("---@field retryable boolean whether trying again can help")
  w("---@field code string? the server's code, or libcurl's name for a transport failure")
  w("---@field request_id string? the x-request-id header (v2)")
  w("---@field method string the request's HTTP method")
  w("---@field path string the path that was sent, e.g. /v1/agents (at most 1024 bytes)")
  w("---@field retry_after number? seconds, from a Retry-After header (at most 2^31 - 1)")
  w("---@field attempts integer how many tries were made")
  w("---@field body string? the raw response body, at most 4096 bytes")
  w("---@field body_truncated boolean? true when body was cut")
  w("---@field hint string? what the failure probably means (an HTML page, a missing workspace)")
  w("---@field request_sent boolean? transport failures: false when the request provably never left")
  w("---@field connection_reused boolean? a reused connection closed before answering")
  w("---@field deadline number? the call's deadline (seconds) when it ended the call")
  w("---@field headers table<string, string>? the last answer's headers (lower-cased names)")
  w("---@field duration number? seconds the whole call took")
  w("---@field where string? raised errors: file:line of the user's code that made the call")
  w("---@field traceback string? raised errors: a traceback from that frame")
  w("")

  -- the client
  w("---A OneCLI client (`onecli.new`).")
  w("---@class onecli.Client")
  w("---@field url string the API base, e.g. http://localhost:10254/v1")
  w("---@field project_id string?")
  w("---@field timeout number")
  w("---@field connect_timeout number")
  w("---@field max_retries integer")
  w("---@field backoff_base number")
  w("---@field backoff_max number")
  w("---@field max_retry_after number")
  w("---@field raise boolean")
  w("---@field insecure boolean")
  for _, ns in ipairs(namespaces) do
    if not ns:find(".", 1, true) then
      w("---@field ", ns, " ", class_name(ns))
    end
  end
  for _, a in ipairs(_M.ALIASES) do
    w("---@field ", a[1], " ", class_name(a[2]), " alias of client.", a[2])
  end
  w("local Client = {}")
  w("")
  w("---Calls any endpoint: `client:request(\"GET\", \"/counts\")`,")
  w("---`client:request(\"POST\", \"/agents\", { body = {...} })`.")
  w("---@param method \"GET\"|\"POST\"|\"PUT\"|\"PATCH\"|\"DELETE\"")
  w("---@param path string relative to the base URL, starting with /")
  w("---@param opts? onecli.RequestOptions")
  w("---@return any result")
  w("---@return onecli.Error? err")
  w("function Client:request(method, path, opts) end")
  w("")
  w("---Runs many calls at once; returns their results in order (each the resource or an")
  w("---error object) and how many failed. A call is `{ \"agents.get\", id }` (an endpoint")
  w("---name and its method's arguments) or `{ method =, path =, body =?, query =? }`.")
  w("---@param calls table[]")
  w("---@param opts? { concurrency?: integer }")
  w("---@return any[] results")
  w("---@return integer failed")
  w("function Client:batch(calls, opts) end")
  w("")
  w("---Starts a batch without waiting, for event loops; see `onecli.Batch`.")
  w("---@param calls table[]")
  w("---@param opts? { concurrency?: integer }")
  w("---@return onecli.Batch")
  w("function Client:batch_start(calls, opts) end")
  w("")
  w("---Releases the connection(s). Idempotent.")
  w("function Client:close() end")
  w("")
  w("---Whether an API key is configured (the key itself is never exposed).")
  w("---@return boolean")
  w("function Client:has_api_key() end")
  w("")
  w("---The environment of the Go CLI's `onecli run` for a child process run as `agent` (an")
  w("---identifier or an id; nil: the default agent), and the server's warnings.")
  w("---@param agent? string")
  w("---@param opts? { gateway?: string, ca_bundle?: string, inherit?: boolean, project_id?: string, raise?: boolean }")
  w("---@return table<string, string>? env")
  w("---@return string[]|onecli.Error warnings")
  w("function Client:gateway_env(agent, opts) end")
  w("")
  w("---Runs argv as the agent with exactly the gateway's environment. In Neovim, with")
  w("---`callback`, returns a handle at once and calls `callback(result, err)`.")
  w("---@param argv string[]")
  w("---@param opts? { agent?: string, gateway?: string, ca_bundle?: string, inherit?: boolean, callback?: fun(result: { status: integer, output: string, warnings: string[] }?, err: onecli.Error?), project_id?: string, raise?: boolean }")
  w("---@return { status: integer, output: string, warnings: string[] }|onecli.Handle|nil result")
  w("---@return onecli.Error? err")
  w("function Client:run(argv, opts) end")
  w("")
  w("---The agent's proxy URL (its token inside) and the CA bundle, for the host's own HTTP clients.")
  w("---@param agent? string")
  w("---@param opts? { gateway?: string, ca_bundle?: string, project_id?: string, raise?: boolean }")
  w("---@return { proxy: string, ca_file: string?, warnings: string[] }? proxy")
  w("---@return onecli.Error? err")
  w("function Client:gateway_proxy(agent, opts) end")
  w("")
  w("---An object that sends requests through the gateway as `agent`. On the Neovim and luv")
  w("---transports pass `callback(agent, err)` (a handle is returned) or call it in a coroutine.")
  w("---@param agent? string")
  w("---@param opts? { gateway?: string, ca_bundle?: string, timeout?: number, connect_timeout?: number, callback?: fun(agent: onecli.GatewayAgent?, err: onecli.Error?), project_id?: string, raise?: boolean }")
  w("---@return onecli.GatewayAgent|onecli.Handle|nil agent")
  w("---@return onecli.Error? err")
  w("function Client:as_agent(agent, opts) end")
  w("")
  w("---The gateway origin approvals are sent to (gateway_url, ONECLI_GATEWAY_URL or")
  w("---GET /gateway-url, cached). Returns nil, err instead of raising.")
  w("---@param opts? onecli.CallOptions")
  w("---@return string? origin")
  w("---@return onecli.Error? err")
  w("function Client:gateway_origin(opts) end")
  w("")
  for _, ep in ipairs(eps_of[""] or {}) do
    method_stub(w, ep)
  end

  -- namespaces
  for _, ns in ipairs(namespaces) do
    w("---", NAMESPACE_TITLES[ns] or ("client." .. ns), ".")
    w("---@class ", class_name(ns))
    for _, child in ipairs(children[ns] or {}) do
      w("---@field ", child, " ", class_name(ns .. "." .. child))
    end
    w("local ", ident(ns), " = {}")
    w("")
    for _, ep in ipairs(eps_of[ns] or {}) do
      method_stub(w, ep)
    end
    if ns == "agents" then
      w("---Creates the agent, or returns the existing one with this identifier (a 409")
      w("---is settled without a second error).")
      w("---@param spec { name: string, identifier: string, parentIdentifier?: string }")
      w("---@param opts? onecli.CallOptions")
      w("---@return onecli.Agent agent")
      w("---@return boolean|onecli.Error created whether it was created (an error with `raise = false`)")
      w("function onecli_agents:ensure(spec, opts) end")
      w("")
    elseif ns == "approvals" then
      w("---A handler loop over pending approval requests; see `onecli.ApprovalRunner`.")
      w("---@param handler fun(request: onecli.PendingApproval, runner: onecli.ApprovalRunner):"
        .. " (\"approve\"|\"deny\"|boolean|nil)")
      w("---@param opts? onecli.RunnerOptions")
      w("---@return onecli.ApprovalRunner")
      w("function onecli_approvals:runner(handler, opts) end")
      w("")
      w("---`client.approvals:runner(handler, opts):run()`: loops until stopped, returns the stats.")
      w("---@param handler fun(request: onecli.PendingApproval, runner: onecli.ApprovalRunner):"
        .. " (\"approve\"|\"deny\"|boolean|nil)")
      w("---@param opts? onecli.RunnerOptions")
      w("---@return onecli.RunnerStats")
      w("function onecli_approvals:run(handler, opts) end")
      w("")
    end
  end

  w("---@class onecli.RunnerOptions")
  w("---@field max_polls? integer stop after this many polls")
  w("---@field stop? fun(): boolean stop when it returns true")
  w("---@field on_error? fun(err: onecli.Error|string, request: onecli.PendingApproval?)")
  w("---@field project_id? string")
  w("---@field backoff_base? number")
  w("---@field backoff_max? number")
  w("")
  w("---@class onecli.RunnerStats")
  w("---@field polls integer")
  w("---@field handled integer")
  w("---@field approved integer")
  w("---@field denied integer")
  w("---@field skipped integer left to a human (the handler returned nil)")
  w("---@field expired integer")
  w("---@field errors integer")
  w("")
  w("---@class onecli.ApprovalRunner")
  w("---@field stats onecli.RunnerStats")
  w("local ApprovalRunner = {}")
  w("")
  w("---Polls and handles until done; returns the stats.")
  w("---@return onecli.RunnerStats")
  w("function ApprovalRunner:run() end")
  w("")
  w("---One poll and the handling of what it returned; true when the runner is done.")
  w("---@return boolean done")
  w("function ApprovalRunner:step() end")
  w("")
  w("---Ends the loop after the current step.")
  w("function ApprovalRunner:stop() end")
  w("")
  w("---Whether the runner is done (stopped, opts.stop() or max_polls).")
  w("---@return boolean")
  w("function ApprovalRunner:done() end")
  w("")

  w("---A batch of calls in flight (`client:batch_start`).")
  w("---@class onecli.Batch")
  w("local Batch = {}")
  w("")
  w("---Advances every call without blocking; true once every call is done.")
  w("---@return boolean done")
  w("function Batch:step() end")
  w("")
  w("---Seconds until the batch wants to be stepped again.")
  w("---@return number")
  w("function Batch:next_wakeup() end")
  w("")
  w("---Blocks until a transfer has news or a timer is due, at most `max_seconds` (1 s).")
  w("---@param max_seconds? number")
  w("function Batch:wait(max_seconds) end")
  w("")
  w("---Whether every call is done.")
  w("---@return boolean")
  w("function Batch:done() end")
  w("")
  w("---The results so far, in call order, and how many are errors.")
  w("---@return any[] results")
  w("---@return integer failed")
  w("function Batch:results() end")
  w("")
  w("---Ends every call not done yet (each gets a connection_error, code CANCELLED).")
  w("function Batch:cancel() end")
  w("")

  -- object shapes
  for _, obj in ipairs(_M.OBJECTS) do
    lua_comment_lines(w, (obj[2]:gsub("`", "")))
    w("---@class onecli.", obj[1])
    for _, f in ipairs(obj[3]) do
      local name, t = f[1], f[2]
      local optional = t:sub(-1) == "?"
      if optional then
        t = t:sub(1, -2)
      end
      w("---@field ", name, optional and "? " or " ", t, f[3] and (" " .. f[3]:gsub("`", "")) or "")
    end
    w("")
  end

  w("return onecli")
  return concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- files

local function read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end
_M.read = read

--- Both outputs, by path.
function _M.build(endpoints)
  endpoints = endpoints or _M.endpoints()
  return {
    [_M.API_PATH] = _M.api_markdown(endpoints),
    [_M.META_PATH] = _M.meta_lua(endpoints),
  }
end

local function main(args)
  local check = args[1] == "--check"
  local files = _M.build()
  local paths = {}
  for path in pairs(files) do
    paths[#paths + 1] = path
  end
  sort(paths)
  local stale = 0
  for _, path in ipairs(paths) do
    if read(path) ~= files[path] then
      stale = stale + 1
      if check then
        io.stderr:write(path, " is stale: run lua5.4 docs/generate.lua\n")
      else
        local f = assert(io.open(path, "wb"))
        f:write(files[path])
        f:close()
        print("wrote " .. path)
      end
    elseif not check then
      print(path .. " is up to date")
    end
  end
  if check and stale > 0 then
    os.exit(1)
  end
end

if as_script then
  main({ ... })
else
  return _M
end
