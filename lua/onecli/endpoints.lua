--- The OneCLI API surface, as data.
--
-- One line per endpoint; the client generates a method from each. Fields:
--
--   [1] name       "namespace.method" (client.namespace:method(...)), or a
--                  bare "method" (client:method(...))
--   [2] method     HTTP verb
--   [3] path       template relative to the API base; {param} segments are
--                  positional arguments, URL-escaped
--   [4] scope      "project": needs a project (project key, or org key +
--                  project id); "any": works without one; "none": no
--                  authentication at all (the key is not sent)
--   body           "required" | "optional" (absent: the call takes no body)
--   shorthand      body field a non-table argument stands for:
--                  agents:rename(id, "New name") == {name = "New name"}
--   arrays         body fields that must encode as JSON arrays even when
--                  empty (`{}` would be sent as an object otherwise)
--   query          names of the query parameters the call accepts
--   response       "json" (default) | "redirect" (returns the Location URL)
--   idempotent     overrides the verb's default for automatic retries
--   after          "switch_key": adopt the returned apiKey (see client.lua)
--   doc            one line for the API reference
--
-- Adding an endpoint is adding one line here.

local P, ANY, NONE = "project", "any", "none"

return {
  { "health", "GET", "/health", NONE,
    doc = "Server health and version" },

  -- agents
  { "agents.list", "GET", "/agents", P,
    doc = "List agents (default agent first)" },
  { "agents.get", "GET", "/agents/{agentId}", P,
    doc = "Get one agent (v1.45+ and v2)" },
  { "agents.create", "POST", "/agents", P, body = "required",
    doc = "Create an agent: {name=, identifier=, parentIdentifier=?}" },
  { "agents.rename", "PATCH", "/agents/{agentId}", P, body = "required", shorthand = "name",
    doc = "Rename an agent" },
  { "agents.update", "PATCH", "/agents/{agentId}", P, body = "required",
    doc = "Update an agent's fields (v2: name, instructions, model, effort)" },
  { "agents.delete", "DELETE", "/agents/{agentId}", P,
    doc = "Delete an agent" },
  { "agents.get_default", "GET", "/agents/default", P,
    doc = "Get the project's default agent (v1)" },
  { "agents.set_default", "POST", "/agents/{agentId}/set-default", P, idempotent = true,
    doc = "Make an agent the default (v1)" },
  { "agents.regenerate_token", "POST", "/agents/{agentId}/regenerate-token", P,
    doc = "Issue a new access token; the old one stops working" },
  { "agents.set_secret_mode", "PATCH", "/agents/{agentId}/secret-mode", P,
    body = "required", shorthand = "mode",
    doc = "Set secret mode: \"all\" or \"selective\" (v1)" },
  { "agents.get_secrets", "GET", "/agents/{agentId}/secrets", P,
    doc = "IDs of the secrets assigned to an agent (v1)" },
  { "agents.set_secrets", "PUT", "/agents/{agentId}/secrets", P,
    body = "required", shorthand = "secretIds", arrays = { "secretIds" },
    doc = "Replace the secrets assigned to an agent (v1)" },

  -- secrets
  { "secrets.list", "GET", "/secrets", P,
    doc = "List secrets (values are never returned)" },
  { "secrets.create", "POST", "/secrets", P, body = "required",
    doc = "Create a secret: {name=, type=, value=, hostPattern=, ...}" },
  { "secrets.update", "PATCH", "/secrets/{secretId}", P, body = "required",
    doc = "Update a secret's fields" },
  { "secrets.delete", "DELETE", "/secrets/{secretId}", P,
    doc = "Delete a secret" },

  -- policy rules and app permissions (v1; 410 on v2)
  { "rules.list", "GET", "/rules", P,
    doc = "List policy rules" },
  { "rules.create", "POST", "/rules", P, body = "required", arrays = { "conditions" },
    doc = "Create a rule: {name=, hostPattern=, action=, enabled=, ...}" },
  { "rules.get", "GET", "/rules/{ruleId}", P,
    doc = "Get one rule" },
  { "rules.update", "PATCH", "/rules/{ruleId}", P, body = "required", arrays = { "conditions" },
    doc = "Update a rule's fields" },
  { "rules.delete", "DELETE", "/rules/{ruleId}", P,
    doc = "Delete a rule" },
  { "rules.get_permissions", "GET", "/rules/permissions/{provider}", P,
    doc = "App permission states of a provider" },
  { "rules.set_permissions", "PUT", "/rules/permissions/{provider}", P,
    body = "required", arrays = { "changes", "conditions" },
    doc = "Change app permissions: {changes={{toolId=, permission=}}, agentId=?}" },

  -- apps
  { "apps.list", "GET", "/apps", P,
    doc = "List the app catalog with connection state" },
  { "apps.get", "GET", "/apps/{provider}", P,
    doc = "Get one app, with setup hint" },
  { "apps.connect", "POST", "/apps/{provider}/connect", P, body = "required",
    doc = "Connect an app with credentials: {fields={...}, label=?, connectionId=?}" },
  { "apps.authorize_url", "GET", "/apps/{provider}/authorize", P,
    response = "redirect", query = { "connectionId", "agent_name" },
    doc = "URL of the provider's OAuth consent page (the redirect is not followed)" },
  { "apps.get_config", "GET", "/apps/{provider}/config", P,
    doc = "Bring-your-own OAuth client config of an app" },
  { "apps.set_config", "POST", "/apps/{provider}/config", P, body = "required", idempotent = true,
    doc = "Set (upsert) an app's OAuth client config; drops its connections" },
  { "apps.delete_config", "DELETE", "/apps/{provider}/config", P,
    doc = "Delete an app's OAuth client config; drops its connections" },
  { "apps.toggle_config", "PATCH", "/apps/{provider}/config/toggle", P,
    body = "required", shorthand = "enabled",
    doc = "Enable or disable an app's OAuth client config" },

  -- connections
  { "connections.list", "GET", "/connections", P, query = { "provider" },
    doc = "List app connections (project and organization)" },
  { "connections.rename", "PATCH", "/connections/{connectionId}", P,
    body = "required", shorthand = "label",
    doc = "Relabel a connection" },
  { "connections.delete", "DELETE", "/connections/{connectionId}", P,
    doc = "Delete a connection" },

  -- user and API key
  { "user.get", "GET", "/user", ANY,
    doc = "The calling user" },
  { "user.update", "PATCH", "/user", ANY, body = "required", shorthand = "name",
    doc = "Update the calling user's name" },
  { "user.get_api_key", "GET", "/user/api-key", P,
    doc = "The caller's project API key (created on first call)" },
  { "user.regenerate_api_key", "POST", "/user/api-key/regenerate", P, after = "switch_key",
    doc = "Replace the caller's project API key; the client adopts the new key" },
}
