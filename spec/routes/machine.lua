-- Capture claims of the "machine" area for spec/routes_replay_spec.lua: the
-- routes the client does not wrap (browser session, CLI login, machine-only
-- surfaces, cloud-only routers, migration and install scripts, tombstones,
-- legacy organization aliases) and the changed app routes (reference
-- §14.3, §14.6, §14.10-14.13). Setups rebuild the recorded state and map
-- recorded ids and names to the stand-in's.

local CODE = "<CLI_AUTH_CODE>"
local REC = {
  org = "vslresmtstqjhnba",
  org_connection = "e8e9cbcc-26b7-42ec-9578-b3cf8b6a7c81",
}

local function org_headers(t) return { { "Authorization", "Bearer " .. t.srv.org_key } } end

local function session_headers() return { { "Cookie", "better-auth.session_token=standin-session" } } end

local function request_of(t, name) return t.json.decode(t.capture(name).request.body) end

-- The recorded instance called its organization, workspace and user
-- "Acceptance"; the stand-in's names are learnt from the live answers.
local function map_session(t)
  local status, me = t.call("GET", "/v1/auth/session", nil, session_headers())
  assert(status == 200, "session setup: " .. status)
  t.map[REC.org] = me.organizationId
  t.map['"name":"Acceptance"'] = '"name":"' .. me.name .. '"'
end

local function map_options(t)
  local status, opts = t.call("GET", "/v1/auth/cli/options", nil, session_headers())
  assert(status == 200, "options setup: " .. status)
  local org = opts.organizations[1]
  t.map['"id":"' .. REC.org .. '","name":"Acceptance"'] = '"id":"' .. org.id .. '","name":"' .. org.name .. '"'
  t.map['"name":"Acceptance"}'] = '"name":"' .. org.workspaces[1].name .. '"}'
end

-- A CLI login session (mapped to the capture's code), optionally confirmed
-- and then polled.
local function cli(confirm, polls)
  return function(t)
    local status, made = t.call("POST", "/v1/auth/cli/session", nil, {})
    assert(status == 200, "cli session setup: " .. status)
    t.map[CODE] = made.code
    if confirm then
      status = t.call("POST", "/v1/auth/cli/confirm", { code = made.code })
      assert(status == 200, "cli confirm setup: " .. status)
    end
    for _ = 1, polls or 0 do t.call("GET", "/v1/auth/cli/poll?code=" .. made.code, nil, {}) end
  end
end

-- The scripts use the shell variable $ONECLI_API_KEY, which the harness
-- would otherwise read as the recorded key placeholder.
local function literal_key_variable(t)
  t.map["$ONECLI_API_KEY"] = nil
end

local function migrated(t)
  local status = t.call("POST", "/v1/migrate/import", request_of(t, "migrate-import"))
  assert(status == 200, "migrate-import setup: " .. status)
end

-- The organization granola connection of org-apps-connect-granola.
local function org_granola(t)
  local status = t.call("POST", "/v1/org/apps/granola/connect", request_of(t, "org-apps-connect-granola"),
    org_headers(t))
  assert(status == 200, "org granola setup: " .. status)
  local _, list = t.call("GET", "/v1/org/connections?provider=granola", nil, org_headers(t))
  t.map[REC.org_connection] = list[1].id
end

local function org_granola_deleted(t)
  org_granola(t)
  local status = t.call("DELETE", "/v1/org/apps/connections/" .. t.map[REC.org_connection], nil, org_headers(t))
  assert(status == 204, "org granola delete setup: " .. status)
end

return {
  ["auth-session-get"] = { setup = map_session },
  ["auth-session-no-session"] = {},
  ["auth-session-api-key"] = {},
  ["auth-cli-session"] = {},
  ["auth-cli-poll-pending"] = { setup = cli(false) },
  ["auth-cli-poll-confirmed"] = { setup = cli(true) },
  ["auth-cli-poll-consumed"] = { setup = cli(true, 1) },
  ["auth-cli-poll-unknown-code"] = {},
  ["auth-cli-poll-missing-code"] = {},
  ["auth-cli-options"] = { setup = map_options },
  ["auth-cli-options-no-session"] = {},
  ["auth-cli-options-api-key"] = {},
  ["auth-cli-confirm"] = { setup = cli(false) },
  ["auth-cli-confirm-again"] = { setup = cli(true) },
  ["auth-cli-confirm-foreign-origin"] = { setup = cli(false) },
  ["auth-cli-confirm-missing-code"] = {},
  ["auth-cli-confirm-unknown-code"] = {},
  ["runner-work-no-token"] = {},
  ["runner-work-user-key"] = {},
  ["runner-register-invalid-body"] = {},
  ["runner-register-unknown-token"] = {},
  ["channel-adapter-config-no-token"] = {},
  ["channel-adapter-register-unknown-token"] = {},
  ["internal-onepassword-validate-no-secret"] = {},
  ["channels-slack-events-url-verification"] = {},
  ["channels-slack-events-unsigned"] = {},
  ["channels-slack-oauth-callback-invalid"] = {},
  ["webhooks-resend"] = {},
  ["webhooks-inbound"] = {},
  ["webhooks-stripe"] = {},
  ["webhooks-unsubscribe-get-no-token"] = {},
  ["webhooks-unsubscribe-post-no-token"] = {},
  ["billing-checkout"] = {},
  ["reviewer-login-notify"] = {},
  ["favicon-missing-domain"] = {},   -- a chunked empty body (reply.chunked)
  ["migrate-import"] = {},
  ["migrate-import-again"] = { setup = migrated },
  ["migrate-import-invalid"] = {},
  ["migrate-import-legacy-only"] = {},
  ["migrate-nanoclaw"] = { setup = literal_key_variable },
  ["migrate-nanoclaw-bad-key"] = {},
  ["install-cli"] = { setup = literal_key_variable },
  ["install-cli-bad-tool"] = {},
  ["onboarding-install-complete-missing-key"] = {},
  ["org-agent-groups-removed"] = {},
  ["org-agents-removed"] = {},
  ["org-apps-connections-list"] = { setup = org_granola },
  ["org-apps-connections-by-provider"] = { setup = org_granola },
  ["org-apps-connections-patch"] = { setup = org_granola },
  ["org-apps-connections-patch-no-label"] = { setup = org_granola },
  ["org-apps-connections-patch-not-found"] = {},
  ["org-apps-connections-delete"] = { setup = org_granola },
  ["org-apps-connections-delete-not-found"] = { setup = org_granola_deleted },
  ["org-app-config-configured"] = {},
  ["org-app-config-get"] = {},
  ["org-app-config-delete-not-found"] = {},
  ["org-app-config-toggle-missing-enabled"] = {},
  ["org-app-config-unsupported-method"] = {},
  ["org-apps-config-delete-not-found"] = {},
  ["org-apps-connect-granola"] = {},
  ["apps-connect-granola"] = {},
  ["apps-blocklist-create-custom-host"] = {},
}
