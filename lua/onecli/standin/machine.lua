-- The v2.0.1 routes the client does not wrap (reference §14.3, §14.6,
-- §14.10-14.13): the browser session and the CLI login handshake, the
-- runner / channel-adapter / 1Password-gateway / Slack machine surfaces
-- (they only ever refuse: the stand-in issues none of their tokens), the
-- cloud-only routers, /favicon, e-mail unsubscribe, /migrate/import, the
-- install scripts, /onboarding/install-complete, the agent-group tombstones
-- and the legacy /org/apps/connections* and /org/app-config/* aliases.
--
-- Sessions: any non-empty `better-auth.session_token` cookie is the
-- stand-in's signed-in owner, in its first workspace. The dashboard origin
-- (auth_url, script URLs) is `http://<Host header>`.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")
local apps = require("onecli.standin.apps").scoped
local secrets = require("onecli.standin.secrets").scoped

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, pairs, format, concat = ipairs, pairs, string.format, table.concat
local gettime = require("onecli.standin.socket").gettime

local ORG = "organization"
local CLI_TTL = 300 -- seconds a CLI login code stays valid

local function unauthorized() return reply.flat(401, "Unauthorized") end

local function origin(ctx) return "http://" .. (ctx.req.headers.host or "127.0.0.1") end

-- A non-JSON answer (text/plain scripts, HTML pages, empty bodies).
local function text(status, body, ctype, headers)
  return { status = status, body = body, ctype = ctype, headers = headers }
end

local function signed_in(ctx)
  local value = (ctx.req.headers.cookie or ""):match("better%-auth%.session_token=([^;]*)")
  return value ~= nil and util.trim(value) ~= ""
end

local function message_of(res)
  local body = res.body and json.decode(res.body)
  if typeof(body) ~= "object" then return "Internal server error" end
  if typeof(body.error) == "object" then return body.error.message end
  return body.error
end

------------------------------------------------------------------------------
-- Browser session and CLI login (§14.3)
------------------------------------------------------------------------------

local function workspace_list(org)
  local out = array()
  for i, p in ipairs(org.projects) do out[i] = obj("id", p.id, "name", p.name) end
  return out
end

local function get_session(ctx)
  if not signed_in(ctx) then return reply.flat(401, "Not authenticated") end
  local org, ws = ctx.org, ctx.app:main_project()
  return reply.ok(obj("id", org.user.id, "email", org.user.email, "name", org.user.name,
    "workspaceId", ws.id, "organizationId", org.id, "projectId", ws.id))
end

local function cli_sessions(ctx)
  ctx.org.cli_sessions = ctx.org.cli_sessions or {}
  return ctx.org.cli_sessions
end

local function cli_session(ctx)
  local code = util.hex(32)
  cli_sessions(ctx)[code] = { expires = gettime() + CLI_TTL }
  return reply.ok(obj("code", code, "auth_url", origin(ctx) .. "/auth/cli?code=" .. code))
end

local function cli_poll(ctx)
  local code = ctx.query.code
  if code == nil or code == "" then return reply.flat(400, "Missing code") end
  local s = cli_sessions(ctx)[code]
  if not s or s.expires < gettime() then return reply.ok(obj("status", "expired")) end
  if s.confirmed and not s.delivered then
    s.delivered = true
    return reply.ok(obj("status", "ok", "api_key", s.api_key, "workspace_id", s.workspace_id))
  end
  return reply.ok(obj("status", "pending"))
end

local function cli_options(ctx)
  if not signed_in(ctx) then return unauthorized() end
  local list = workspace_list(ctx.org)
  return reply.ok(obj("organizations", array({
    obj("id", ctx.org.id, "name", ctx.org.name or "Default Organization", "workspaces", list, "projects", list),
  })))
end

-- The key handed to the poller: the caller's own user key, or the
-- workspace owner's when an org key names the workspace.
local function caller_key(ctx)
  local token = (ctx.req.headers.authorization or ""):match("^Bearer (.*)$")
  if ctx.key_kind == "project" then return token end
  return ctx.state.api_key
end

local function cli_confirm(ctx)
  local sent = ctx.req.headers.origin
  if sent and origin(ctx):sub(1, #sent) ~= sent then
    local res = reply.flat(403, "Forbidden")
    res.headers = { { "access-control-allow-origin", sent } }
    return res
  end
  local code = typeof(ctx.body) == "object" and ctx.body.code
  if typeof(code) ~= "string" or code == "" then return reply.flat(400, "Missing code") end
  local s = cli_sessions(ctx)[code]
  if not s then return reply.flat(404, "Session not found") end
  if s.expires < gettime() then return reply.flat(400, "Session expired") end
  if s.confirmed then return reply.flat(409, "Session already confirmed") end
  local key = caller_key(ctx)
  if not key then return reply.flat(404, "No API key for this workspace") end
  s.confirmed, s.api_key, s.workspace_id = true, key, ctx.state.id
  return reply.ok(obj("status", "ok"))
end

------------------------------------------------------------------------------
-- Machine surfaces: runner, channel adapter, gateway internals, Slack (§14.11)
------------------------------------------------------------------------------

local RUNNER_REGISTER = v.object({
  { "name", v.string():min(1) },
  { "capabilities", v.object({
    { "maxSandboxes", v.int():min(1) },
    { "backend", v.string() },
    { "homeDurability", v.string() },
  }) },
})

-- Registration validates the body before the token (`RUNNER_TOKEN`, which
-- the stand-in never has): a valid body still gets 401.
local function runner_register(ctx)
  local ok, err = RUNNER_REGISTER:parse(ctx.body)
  if not ok then return reply.flat(400, err) end
  return unauthorized()
end

local function gateway_internal()
  return reply.envelope(401, "unauthorized", "authentication_error")
end

local SLACK_INVALID = '<!doctype html><meta charset="utf-8"><title>Slack install</title>'
  .. '<body style="font-family:system-ui;padding:2rem;max-width:32rem;margin:auto">'
  .. "<p>This install link is not valid.</p><p>Close this window and try again from the dashboard.</p></body>"

-- Only Slack's url_verification handshake is answered without a signature;
-- the stand-in has no signing secret, so every other event is unsigned.
local function slack_events(ctx)
  local body = ctx.body
  if typeof(body) == "object" and body.type == "url_verification" then
    return reply.ok(obj("challenge", body.challenge))
  end
  return unauthorized()
end

local function slack_callback()
  return text(400, SLACK_INVALID, "text/html; charset=UTF-8")
end

------------------------------------------------------------------------------
-- Small public routes: cloud-only routers, favicon, unsubscribe (§14.10)
------------------------------------------------------------------------------

local function billing()
  return reply.envelope(404, "Billing is not available on this deployment", "invalid_request_error")
end

local function cloud_only()
  return reply.envelope(404, "Not available on this deployment", "invalid_request_error")
end

local function valid_domain(d)
  return type(d) == "string" and #d <= 253 and d:match("^[%w][%w%-]*%.[%w%-%.]*[%w]$") ~= nil
    and not d:find("..", 1, true)
end

-- The real route proxies Google's favicon service; the stand-in never
-- calls out, so a valid domain answers as a failed fetch would.
local function favicon(ctx)
  if not valid_domain(ctx.query.domain) then
    local res = text(400, "", "text/plain; charset=UTF-8")
    res.chunked = true
    return res
  end
  return { status = 502 }
end

local UNSUBSCRIBE_INVALID = concat({
  "<!DOCTYPE html>",
  "<html><head><title>Unsubscribe - OneCLI</title></head>",
  "<body style=\"font-family: -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, sans-serif; "
    .. "max-width: 440px; margin: 80px auto; text-align: center; color: #111827;\">",
  '  <h2 style="font-size: 20px; font-weight: 600;">Invalid link</h2>',
  '  <p style="font-size: 15px; line-height: 1.6; color: #4b5563;">This unsubscribe link is invalid or has '
    .. "expired. Contact team@onecli.sh if you need help.</p>",
  "</body></html>",
}, "\n")

-- The stand-in sends no e-mail, so no unsubscribe token is ever valid.
local function unsubscribe_page()
  return text(200, UNSUBSCRIBE_INVALID, "text/html")
end

local function unsubscribe_post(ctx)
  if (ctx.req.headers.accept or ""):find("text/html", 1, true) then return unsubscribe_page() end
  return reply.ok(obj("status", "OK"))
end

local function onboarding_complete(ctx)
  local key = ctx.req.headers["x-api-key"]
  if typeof(key) ~= "string" or key:sub(1, 3) ~= "oc_" then
    return reply.flat(401, "Missing or invalid API key")
  end
  if not ctx.app:project_for_key(key) then return reply.flat(401, "API key not found") end
  local ok, err = v.object({ { "type", v.enum({ "install", "migrate", "cli-install" }):optional() } })
    :parse(ctx.body == null and obj() or ctx.body)
  if not ok then return reply.flat(400, err) end
  return reply.ok(obj("ok", true))
end

------------------------------------------------------------------------------
-- /migrate/import: the receiving end of a v1 server's export (§14.10)
------------------------------------------------------------------------------

local function any_object()
  return v.custom(function(x)
    if typeof(x) == "object" then return true, x end
    return false, "Invalid input: expected object, received " .. typeof(x)
  end, "object")
end

local IMPORT = v.object({
  { "secrets", v.array(v.object({
    { "name", v.string():min(1):max(255) },
    { "type", v.enum({ "anthropic", "openai", "generic" }) },
    { "value", v.string() },
    { "hostPattern", v.string():min(1) },
    { "pathPattern", v.string():nullable():optional() },
    { "injectionConfig", any_object():nullable():optional() },
    { "metadata", any_object():nullable():optional() },
  })):optional() },
  { "agents", v.array(v.object({
    { "name", v.string():min(1):max(255) },
    { "identifier", v.string():min(1):max(50) },
    { "isDefault", v.boolean():optional() },
    { "secretMode", v.enum({ "all", "selective" }):optional() },
  })):optional() },
  { "agentSecrets", v.array(v.object({
    { "agentIdentifier", v.string() },
    { "secretName", v.string() },
  })):optional() },
  { "rules", v.array(any_object()):optional() },
})

local LEGACY_ONLY = "This payload contains only legacy policy rules and per-agent credential grants, neither of "
  .. "which this deployment can import (the policy engine manages both now). Nothing would be created. "
  .. "Re-author them in the Policy console (/v1/policy)."
local GRANTS_REASON = "Not migrated: per-agent credential access is granted by policy rules now. "
  .. "Grant this agent its credentials in the Policy console (/v1/policy)."
local ALL_MODE_REASON = "Not migrated: this agent had access to every workspace credential (legacy \"all\" "
  .. "mode). Grant it the credentials it needs in the Policy console (/v1/policy)."
local RULE_REASON = "Not migrated: legacy policy rules are replaced by the policy engine. "
  .. "Re-author this rule in the Policy console (/v1/policy)."
local EXISTS = "already exists"

local function count(list) return list and #list or 0 end

local function skip(list, kind, name, reason)
  list[#list + 1] = obj("type", kind, "name", name, "reason", reason)
end

local function import_agents(ctx, agents, skipped)
  local n = 0
  for _, a in ipairs(agents or {}) do
    if store.find_by(ctx.state.agents, "identifier", a.identifier) then
      skip(skipped, "agent", a.name, EXISTS)
    else
      store.add_agent(ctx.state, { name = a.name, identifier = a.identifier, kind = "byo" })
      n = n + 1
    end
  end
  return n
end

-- Secrets go through the workspace's own create (its value rules and
-- derived metadata); one the create refuses is listed with its message.
local function import_secrets(ctx, list, skipped)
  local n = 0
  for _, s in ipairs(list or {}) do
    if store.find_by(ctx.state.secrets, "name", s.name) then
      skip(skipped, "secret", s.name, EXISTS)
    else
      local res = secrets.create({ mode = ctx.mode, state = ctx.state, org = ctx.org, body = obj(
        "name", s.name, "type", s.type, "value", s.value, "hostPattern", s.hostPattern,
        "pathPattern", s.pathPattern, "injectionConfig", s.injectionConfig) }, nil)
      if res.status == 201 then n = n + 1 else skip(skipped, "secret", s.name, message_of(res)) end
    end
  end
  return n
end

-- Grants, grouped per agent in payload order, then rules and "all"-mode agents.
local function list_legacy(body, skipped)
  local order, per_agent = {}, {}
  for _, g in ipairs(body.agentSecrets or {}) do
    if not per_agent[g.agentIdentifier] then order[#order + 1] = g.agentIdentifier end
    per_agent[g.agentIdentifier] = (per_agent[g.agentIdentifier] or 0) + 1
  end
  for _, id in ipairs(order) do
    local n = per_agent[id]
    skip(skipped, "agentSecrets", format("%s (%d credential%s)", id, n, n == 1 and "" or "s"), GRANTS_REASON)
  end
  for _, r in ipairs(body.rules or {}) do
    skip(skipped, "rule", typeof(r.name) == "string" and r.name or "rule", RULE_REASON)
  end
  for _, a in ipairs(body.agents or {}) do
    if a.secretMode == "all" then skip(skipped, "agentSecrets", a.identifier, ALL_MODE_REASON) end
  end
end

local function migrate_import(ctx)
  local body = ctx.body
  if typeof(body) ~= "object" then
    return reply.flat(400, "Invalid input: expected object, received " .. typeof(body))
  end
  if body.version ~= 1 then return reply.flat(400, "Invalid input: expected 1") end
  local ok, parsed = IMPORT:parse(body)
  if not ok then return reply.flat(400, parsed) end
  if count(parsed.secrets) + count(parsed.agents) == 0
    and count(parsed.agentSecrets) + count(parsed.rules) > 0 then
    return reply.flat(410, LEGACY_ONLY)
  end
  local skipped = array()
  local agents = import_agents(ctx, parsed.agents, skipped)
  local imported = import_secrets(ctx, parsed.secrets, skipped)
  list_legacy(parsed, skipped)
  return reply.ok(obj("imported", obj("secrets", imported, "agents", agents, "agentSecrets", 0, "rules", 0),
    "skipped", skipped))
end

------------------------------------------------------------------------------
-- Install scripts: /migrate/nanoclaw and /install/cli (§14.10)
------------------------------------------------------------------------------

-- The recorded scripts, cut where they vary: {{URL}} (ONECLI_URL: the
-- `url` query or the API origin), {{API}} (this server), {{DASH}} (the
-- dashboard), {{KEY}} (the `key` query). Without a key the script logs in
-- through the CLI handshake (DEVICE_AUTH); with one it uses it directly.
-- luacheck: push no max line length
local NANOCLAW_HEAD = [==[
#!/bin/sh
set -e

echo ""
echo "  ╔══════════════════════════════════════╗"
echo "  ║      Migrate to OneCLI Cloud         ║"
echo "  ╚══════════════════════════════════════╝"
echo ""

ONECLI_URL="{{URL}}"
DASHBOARD_URL="{{DASH}}"
ONECLI_API_KEY="{{KEY}}"
ONECLI_WORKSPACE_ID=""

]==]

local INSTALL_HEAD = [==[
#!/bin/sh
set -e

echo ""
echo "  ╔════════════════════════════════════╗"
echo "  ║         OneCLI CLI Setup           ║"
echo "  ╚════════════════════════════════════╝"
echo ""

ONECLI_URL="{{URL}}"
ONECLI_API_KEY="{{KEY}}"
ONECLI_WORKSPACE_ID=""

]==]

local DEVICE_AUTH = [==[
# ── Device authentication ──
echo "  Authenticating with OneCLI..."
echo ""

RESPONSE=$(curl -fsSL -X POST "{{API}}/v1/auth/cli/session" -H "Content-Type: application/json" 2>/dev/null)

# Parse JSON response (POSIX-compatible, no jq needed)
CODE=$(echo "$RESPONSE" | grep -o '"code":"[^"]*"' | head -1 | cut -d'"' -f4)
AUTH_URL=$(echo "$RESPONSE" | grep -o '"auth_url":"[^"]*"' | head -1 | cut -d'"' -f4)

if [ -z "$CODE" ]; then
  echo "  Failed to create auth session. Check your network connection."
  exit 1
fi

echo "  Open this URL to authenticate:"
echo ""
echo "    $AUTH_URL"
echo ""
echo "  Waiting for confirmation..."

# Try to open the URL automatically
if command -v open >/dev/null 2>&1; then
  open "$AUTH_URL" 2>/dev/null || true
elif command -v xdg-open >/dev/null 2>&1; then
  xdg-open "$AUTH_URL" 2>/dev/null || true
fi

# Poll every 2 seconds, timeout after 5 minutes
ELAPSED=0
while [ $ELAPSED -lt 300 ]; do
  POLL=$(curl -fsSL "{{API}}/v1/auth/cli/poll?code=$CODE" 2>/dev/null || echo '{"status":"error"}')
  STATUS=$(echo "$POLL" | grep -o '"status":"[^"]*"' | head -1 | cut -d'"' -f4)

  if [ "$STATUS" = "ok" ]; then
    ONECLI_API_KEY=$(echo "$POLL" | grep -o '"api_key":"[^"]*"' | head -1 | cut -d'"' -f4)
    ONECLI_WORKSPACE_ID=$(echo "$POLL" | grep -o '"workspace_id":"[^"]*"' | head -1 | cut -d'"' -f4)
    echo "  Authenticated!"
    break
  elif [ "$STATUS" = "expired" ]; then
    echo "  Session expired. Please try again."
    exit 1
  fi

  sleep 2
  ELAPSED=$((ELAPSED + 2))
done

if [ -z "$ONECLI_API_KEY" ]; then
  echo "  Timed out waiting for authentication."
  exit 1
fi

]==]

local NANOCLAW_BODY = [==[
# ── Detect local secrets before switching ──
CONFIG_DIR="$HOME/.onecli"
CONFIG_FILE="$CONFIG_DIR/config.json"
LOCAL_API_KEY=""
CURRENT_HOST=""

if [ -f "$CONFIG_FILE" ]; then
  CURRENT_HOST=$(grep '"api-host"' "$CONFIG_FILE" | sed 's/.*: *"\(.*\)".*/\1/')
fi
if [ -f "$CONFIG_DIR/credentials/api-key" ]; then
  LOCAL_API_KEY=$(cat "$CONFIG_DIR/credentials/api-key")
fi

if [ -n "$CURRENT_HOST" ] && [ "$CURRENT_HOST" != "$ONECLI_URL" ]; then
  echo "  Current api-host: $CURRENT_HOST"
fi

# ── Update local OneCLI Docker (if running) ──
COMPOSE_FILE="$HOME/.onecli/docker-compose.yml"
if command -v docker >/dev/null 2>&1 && [ -f "$COMPOSE_FILE" ]; then
  if docker compose -p onecli ps -q 2>/dev/null | grep -q .; then
    echo "  Updating local OneCLI Docker image..."
    PULL_ERR=$(docker compose -p onecli -f "$COMPOSE_FILE" pull 2>&1) || echo "  Warning: docker pull failed: $PULL_ERR"
    echo "  Restarting local OneCLI..."
    UP_ERR=$(docker compose -p onecli -f "$COMPOSE_FILE" up -d --wait 2>&1) || echo "  Warning: docker restart failed: $UP_ERR"
    HEALTH_URL="${CURRENT_HOST:-{{DASH}}}/v1/health"
    for i in 1 2 3 4 5 6 7 8 9 10; do
      sleep 2
      if curl -fsSL "$HEALTH_URL" >/dev/null 2>&1; then
        echo "  Local OneCLI is ready"
        break
      fi
    done
  fi
fi

# ── Ensure latest OneCLI CLI ──
echo "  Updating OneCLI CLI..."
CLI_ERR=$(curl -fsSL https://onecli.sh/cli/install 2>/dev/null | sh 2>&1) || echo "  Warning: CLI update failed: $CLI_ERR"
export PATH="$HOME/.local/bin:$PATH"

if command -v onecli >/dev/null 2>&1 && [ -n "$CURRENT_HOST" ] && [ -n "$LOCAL_API_KEY" ]; then
  # Ensure CLI is pointed at the local instance for export
  onecli config set api-host "$CURRENT_HOST" >/dev/null 2>&1 || true
  echo "$LOCAL_API_KEY" | onecli auth login >/dev/null 2>&1 || true
  echo ""
  echo "  Migrating data to cloud..."
  CLOUD_URL_FLAG=""
  if [ "$ONECLI_URL" != "https://api.onecli.sh" ]; then
    CLOUD_URL_FLAG="--cloud-url $ONECLI_URL"
  fi
  MIGRATE_ERR=$(onecli migrate --cloud-key "$ONECLI_API_KEY" $CLOUD_URL_FLAG 2>&1) && MIGRATE_OK=1 || MIGRATE_OK=0
  if [ "$MIGRATE_OK" = "1" ]; then
    echo "  Data migrated successfully"
  else
    echo "  Data migration skipped (you can add secrets manually in the dashboard)"
    if [ -n "$MIGRATE_ERR" ]; then
      echo "  Error: $MIGRATE_ERR"
    fi
  fi
fi

# ── Update CLI config ──

mkdir -p "$CONFIG_DIR"
printf '{
  "api-host": "%s"
}
' "$ONECLI_URL" > "$CONFIG_FILE"
echo "  Updated ~/.onecli/config.json"

# ── Store API key ──
if command -v onecli >/dev/null 2>&1; then
  echo "$ONECLI_API_KEY" | onecli auth login >/dev/null 2>&1
else
  mkdir -p "$CONFIG_DIR/credentials"
  printf '%s' "$ONECLI_API_KEY" > "$CONFIG_DIR/credentials/api-key"
  chmod 600 "$CONFIG_DIR/credentials/api-key"
fi
echo "  API key stored"

# ── Find all NanoClaw instances ──
NANOCLAW_DIRS=""

add_nc_dir() {
  [ -d "$1" ] || return 0
  case ":$NANOCLAW_DIRS:" in
    *":$1:"*) return 0 ;;
  esac
  NANOCLAW_DIRS="${NANOCLAW_DIRS:+$NANOCLAW_DIRS:}$1"
}

# macOS: check all launchd plists mentioning nanoclaw
if [ "$(uname -s)" = "Darwin" ]; then
  for PLIST in "$HOME/Library/LaunchAgents/"*nanoclaw*; do
    [ -f "$PLIST" ] || continue
    DIR=$(/usr/libexec/PlistBuddy -c "Print :WorkingDirectory" "$PLIST" 2>/dev/null || true)
    [ -n "$DIR" ] && add_nc_dir "$DIR"
  done
fi

# Linux/WSL: check systemd units
if command -v systemctl >/dev/null 2>&1; then
  UNITS=$(systemctl --user list-unit-files 2>/dev/null | grep nanoclaw | awk '{ print $1 }')
  for UNIT in $UNITS; do
    DIR=$(systemctl --user show "$UNIT" -p WorkingDirectory 2>/dev/null | cut -d= -f2)
    [ -n "$DIR" ] && add_nc_dir "$DIR"
  done
fi

# Search common installation directories
for D in "$HOME"/ClawAgents/nanoclaw* "$HOME"/nanoclaw* "$PWD"/nanoclaw*; do
  [ -f "$D/.env" ] && add_nc_dir "$D"
done

# ── Update all NanoClaw instances ──

if [ -n "$NANOCLAW_DIRS" ]; then

  # Clear cached gateway CA (shared across all instances)
  rm -f /tmp/onecli-gateway-ca.pem /tmp/onecli-combined-ca.pem
  echo "  Cleared cached gateway CA"

  SAVE_IFS="$IFS"
  IFS=":"
  for NC_DIR in $NANOCLAW_DIRS; do
    IFS="$SAVE_IFS"
    echo ""
    echo "  Found NanoClaw at: $NC_DIR"

    ENV_FILE="$NC_DIR/.env"
    if [ -f "$ENV_FILE" ]; then
      grep -v "^ONECLI_URL=" "$ENV_FILE" | grep -v "^ONECLI_API_KEY=" > "$ENV_FILE.tmp"
      mv "$ENV_FILE.tmp" "$ENV_FILE"
    fi
    echo "ONECLI_URL=$ONECLI_URL" >> "$ENV_FILE"
    echo "ONECLI_API_KEY=$ONECLI_API_KEY" >> "$ENV_FILE"
    echo "  Updated NanoClaw .env"

    # Sync .env to container env (containers read from data/env/env)
    if [ -d "$NC_DIR/data/env" ]; then
      cp "$ENV_FILE" "$NC_DIR/data/env/env"
      echo "  Synced container env"
    fi

    # Restart NanoClaw service (launchd on macOS, systemd on Linux)
    NC_BASENAME=$(basename "$NC_DIR")
    RESTARTED=0
    if [ "$(uname -s)" = "Darwin" ]; then
      for PLIST in "$HOME/Library/LaunchAgents/"*nanoclaw*; do
        [ -f "$PLIST" ] || continue
        PLIST_DIR=$(/usr/libexec/PlistBuddy -c "Print :WorkingDirectory" "$PLIST" 2>/dev/null || true)
        if [ "$PLIST_DIR" = "$NC_DIR" ]; then
          LABEL=$(/usr/libexec/PlistBuddy -c "Print :Label" "$PLIST" 2>/dev/null || true)
          if [ -n "$LABEL" ]; then
            launchctl kickstart -k "gui/$(id -u)/$LABEL" 2>/dev/null \
              && echo "  Restarted service: $LABEL" \
              || echo "  Could not restart service: $LABEL"
            RESTARTED=1
          fi
        fi
      done
    elif command -v systemctl >/dev/null 2>&1; then
      UNITS=$(systemctl --user list-unit-files 2>/dev/null | grep nanoclaw | awk '{ print $1 }')
      for UNIT in $UNITS; do
        UNIT_DIR=$(systemctl --user show "$UNIT" -p WorkingDirectory 2>/dev/null | cut -d= -f2)
        if [ "$UNIT_DIR" = "$NC_DIR" ]; then
          systemctl --user restart "$UNIT" 2>/dev/null \
            && echo "  Restarted service: $UNIT" \
            || echo "  Could not restart service: $UNIT"
          RESTARTED=1
        fi
      done
    fi
    if [ "$RESTARTED" = "0" ]; then
      # Fallback: try Docker Compose if no system service found
      if command -v docker >/dev/null 2>&1; then
        for F in "$NC_DIR/docker-compose.yml" "$NC_DIR/compose.yml"; do
          if [ -f "$F" ]; then
            docker compose -f "$F" down 2>/dev/null || true
            docker compose -f "$F" up -d 2>/dev/null \
              && echo "  Restarted NanoClaw containers" \
              || echo "  Could not restart. Run: cd $NC_DIR && docker compose up -d"
            RESTARTED=1
            break
          fi
        done
      fi
    fi
    if [ "$RESTARTED" = "0" ]; then
      echo "  Note: Could not find service to restart. Restart NanoClaw manually."
    fi
  done
  IFS="$SAVE_IFS"
else
  echo ""
  echo "  NanoClaw not found (skipped)."
  echo "  If installed elsewhere, update your .env manually:"
  echo "    ONECLI_URL=$ONECLI_URL"
  echo "    ONECLI_API_KEY=$ONECLI_API_KEY"
fi

# ── Verify ──
echo ""
if command -v onecli >/dev/null 2>&1; then
  STATUS=$(onecli auth status 2>&1)
  EMAIL=$(echo "$STATUS" | grep -o '"email":"[^"]*"' | head -1 | cut -d'"' -f4)
  if [ -n "$EMAIL" ]; then
    echo "  Connected as: $EMAIL"
  else
    echo "  Run \"onecli auth status\" to verify."
  fi
fi

# ── Stop local OneCLI Docker (if running) ──
if docker compose -p onecli ps -q 2>/dev/null | grep -q .; then
  echo ""
  echo "  Local OneCLI Docker is still running."
  echo "  To stop it: docker compose -p onecli -f ~/.onecli/docker-compose.yml down"
fi

DASH_PREFIX=""
if [ -n "$ONECLI_WORKSPACE_ID" ]; then
  DASH_PREFIX="/w/$ONECLI_WORKSPACE_ID"
fi

echo ""
echo "  ╔══════════════════════════════════════╗"
echo "  ║    Migrated to OneCLI Cloud!         ║"
echo "  ╚══════════════════════════════════════╝"
echo ""
echo "  Dashboard: $DASHBOARD_URL$DASH_PREFIX"
echo ""
echo "  Reconnect your app integrations:"
echo "  $DASHBOARD_URL$DASH_PREFIX/connections"
echo ""

# ── Notify OneCLI Cloud ──
curl -fsSL -X POST "$ONECLI_URL/v1/onboarding/install-complete" \
  -H "X-API-Key: $ONECLI_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"type":"migrate"}' >/dev/null 2>&1 || true]==]

local INSTALL_BODY = [==[
# ── Install OneCLI CLI ──
echo "  Installing OneCLI CLI..."
curl -fsSL https://onecli.sh/cli/install 2>/dev/null | sh >/dev/null 2>&1
export PATH="$HOME/.local/bin:$PATH"

# ── Configure and authenticate CLI ──
onecli config set api-host "$ONECLI_URL" >/dev/null 2>&1 || true
onecli auth login --api-key "$ONECLI_API_KEY" >/dev/null 2>&1 || true

echo ""
echo "  ╔════════════════════════════════════╗"
echo "  ║      ✓ OneCLI CLI is ready!        ║"
echo "  ╚════════════════════════════════════╝"
echo ""
echo "  You can now use the OneCLI CLI:"
echo ""
echo "    onecli --help"
echo ""
]==]

local INSTALL_ALIAS = [==[
# ── Shell alias suggestion ──
SHELL_RC_NAME=".bashrc"
if [ -n "$ZSH_VERSION" ] || [ "$(basename "$SHELL" 2>/dev/null)" = "zsh" ]; then
  SHELL_RC_NAME=".zshrc"
fi

echo "  ─────────────────────────────────────"
echo ""
echo "  💡 Add a shortcut for {{LABEL}}:"
echo ""
echo "    echo 'alias {{CMD}}=\"onecli run{{AGENT}} -- {{CMD}}\"' >> ~/$SHELL_RC_NAME"
echo ""
echo "  Then reload your shell:"
echo ""
echo "    source ~/$SHELL_RC_NAME"
echo ""
echo "  After that, just run: {{CMD}}"
echo ""
echo ""

]==]

local INSTALL_NOTIFY = [==[
# ── Notify OneCLI Cloud ──
curl -fsSL -X POST "$ONECLI_URL/v1/onboarding/install-complete" \
  -H "X-API-Key: $ONECLI_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"type":"cli-install"}' >/dev/null 2>&1 || true]==]
-- luacheck: pop

-- Tools the install script can set up: what the alias tip calls.
local TOOLS = {
  ["claude-code"] = { "Claude Code", "claude" }, cursor = { "Cursor", "cursor-agent" },
  codex = { "Codex", "codex" }, hermes = { "Hermes", "hermes" }, opencode = { "OpenCode", "opencode" },
  openclaw = { "OpenClaw", "openclaw" }, ["github-copilot"] = { "GitHub Copilot", "copilot" },
}

local function fill(template, vars)
  return (template:gsub("{{(%u+)}}", vars))
end

-- Checks the shared `key` and `url` queries; returns vars or nil, error reply.
local function script_vars(ctx)
  local q = ctx.query
  if q.key ~= nil and not (#q.key == 67 and q.key:match("^oc_%x+$")) then
    return nil, reply.flat(400, "Invalid API key format")
  end
  if q.url ~= nil and not q.url:match("^https?://[^%s/?#]+[^%s]*$") then
    return nil, reply.flat(400, "Invalid URL format")
  end
  local here = origin(ctx)
  return { URL = q.url or here, API = here, DASH = here, KEY = q.key or "" }
end

local function script(parts, vars)
  local out = {}
  for _, p in ipairs(parts) do
    if p == DEVICE_AUTH and vars.KEY ~= "" then p = "" end
    out[#out + 1] = fill(p, vars)
  end
  return text(200, concat(out), "text/plain; charset=utf-8", { { "cache-control", "no-cache" } })
end

local function nanoclaw(ctx)
  local vars, err = script_vars(ctx)
  if not vars then return err end
  return script({ NANOCLAW_HEAD, DEVICE_AUTH, NANOCLAW_BODY }, vars)
end

local function valid_identifier(s)
  return #s >= 1 and #s <= 50 and s:match("^[a-z0-9][a-z0-9-]*$") ~= nil
end

local function install_cli(ctx)
  local vars, err = script_vars(ctx)
  if not vars then return err end
  local tool, agent = ctx.query.tool, ctx.query.agent
  if tool == nil and agent ~= nil and TOOLS[agent] then tool, agent = agent, nil end
  if tool ~= nil and not TOOLS[tool] then return reply.flat(400, "Invalid tool identifier") end
  if agent ~= nil and not valid_identifier(agent) then return reply.flat(400, "Invalid agent identifier") end
  local parts = { INSTALL_HEAD, DEVICE_AUTH, INSTALL_BODY }
  if tool then
    vars.LABEL, vars.CMD = TOOLS[tool][1], TOOLS[tool][2]
    vars.AGENT = agent and (" --agent " .. agent) or ""
    parts[#parts + 1] = INSTALL_ALIAS
  end
  parts[#parts + 1] = INSTALL_NOTIFY
  return script(parts, vars)
end

------------------------------------------------------------------------------
-- Tombstones (§14.13) and legacy organization aliases (§14.6)
------------------------------------------------------------------------------

local AGENT_GROUPS_GONE = " was removed. Agent groups were removed: organize people with user groups "
  .. "(/v1/org/groups); organization policy rules target users or user groups."

local function agent_groups_gone(ctx)
  return reply.gone(ctx.norm_path .. AGENT_GROUPS_GONE)
end

-- The /org/apps/connections* alias shares the organization connections
-- router, whose missing connection is a service error (404 envelope).
local function org_scoped(fn)
  return function(ctx)
    local res = fn(ctx, ORG)
    if res.status == 404 then return reply.not_found(message_of(res)) end
    return res
  end
end

local function org_connections_of(ctx)
  local q = {}
  for k, val in pairs(ctx.query) do q[k] = val end
  q.provider = ctx.params.provider
  ctx.query = q
  return apps.list_connections(ctx, ORG)
end

-- /org/app-config/* forwards to /org/apps/* outside the API's error
-- handler: a service error (an envelope) turns into a bare 500, a method the
-- target lacks into a bare 404; flat route errors pass through.
local function forward(targets)
  return function(ctx)
    local fn = targets[ctx.req.method]
    if not fn then return text(404, "404 Not Found", "text/plain; charset=UTF-8") end
    local res = fn(ctx, ORG)
    if res.status >= 400 then
      local body = res.body and json.decode(res.body)
      if typeof(body) == "object" and typeof(body.error) == "object" then
        return text(500, "Internal Server Error", "text/plain; charset=UTF-8")
      end
    end
    return res
  end
end

------------------------------------------------------------------------------
-- Routes
------------------------------------------------------------------------------

local N, U, P = "none", "user", "project"

local routes = {
  -- §14.3
  { method = "GET", pattern = "/auth/session", auth = N, handler = get_session, body = false },
  { method = "POST", pattern = "/auth/cli/session", auth = N, handler = cli_session, body = false },
  { method = "GET", pattern = "/auth/cli/poll", auth = N, handler = cli_poll, body = false },
  { method = "GET", pattern = "/auth/cli/options", auth = N, handler = cli_options, body = false },
  { method = "POST", pattern = "/auth/cli/confirm", auth = P, handler = cli_confirm },
  -- §14.11
  { method = "POST", pattern = "/runner/register", auth = N, handler = runner_register },
  { method = "*", pattern = "/runner/*", auth = N, handler = unauthorized, body = false },
  { method = "*", pattern = "/channel-adapter/*", auth = N, handler = unauthorized, body = false },
  { method = "POST", pattern = "/internal/onepassword/*", auth = N, handler = gateway_internal, body = false },
  { method = "POST", pattern = "/channels/slack/events", auth = N, handler = slack_events },
  { method = "POST", pattern = "/channels/slack/interactivity", auth = N, handler = unauthorized, body = false },
  { method = "GET", pattern = "/channels/slack/oauth/callback", auth = N, handler = slack_callback, body = false },
  -- §14.10
  { method = "GET", pattern = "/favicon", auth = N, handler = favicon, body = false },
  { method = "GET", pattern = "/webhooks/unsubscribe", auth = N, handler = unsubscribe_page, body = false },
  { method = "POST", pattern = "/webhooks/unsubscribe", auth = N, handler = unsubscribe_post, body = false },
  { method = "POST", pattern = "/migrate/import", auth = P, handler = migrate_import },
  { method = "GET", pattern = "/migrate/nanoclaw", auth = N, handler = nanoclaw, body = false },
  { method = "GET", pattern = "/install/cli", auth = N, handler = install_cli, body = false },
  { method = "POST", pattern = "/onboarding/install-complete", auth = N, handler = onboarding_complete },
  -- §14.6 legacy aliases
  { method = "GET", pattern = "/org/apps/connections", auth = U, handler = function(ctx)
    return apps.list_connections(ctx, ORG)
  end, body = false },
  { method = "GET", pattern = "/org/apps/connections/:provider", auth = U, handler = org_connections_of,
    body = false },
  { method = "PATCH", pattern = "/org/apps/connections/:id", auth = U, handler = org_scoped(apps.rename_connection) },
  { method = "DELETE", pattern = "/org/apps/connections/:id", auth = U, handler = org_scoped(apps.delete_connection),
    body = false },
  { method = "*", pattern = "/org/app-config/configured", auth = U, handler = forward({ GET = apps.configured }) },
  { method = "*", pattern = "/org/app-config/:provider", auth = U, handler = forward({
    GET = apps.get_config, POST = apps.post_config, DELETE = apps.delete_config }) },
  { method = "*", pattern = "/org/app-config/:provider/toggle", auth = U, handler = forward({
    PATCH = apps.toggle_config }) },
}

-- Cloud-only routers (§14.2 rule 2) and the agent-group tombstones (§14.13):
-- every method and path under the mount, no authentication.
local function mount(prefix, handler)
  routes[#routes + 1] = { method = "*", pattern = prefix, auth = N, handler = handler, body = false }
  routes[#routes + 1] = { method = "*", pattern = prefix .. "/*", auth = N, handler = handler, body = false }
end

mount("/billing", billing)
for _, prefix in ipairs({ "/webhooks/resend", "/webhooks/inbound", "/webhooks/stripe", "/reviewer" }) do
  mount(prefix, cloud_only)
end
mount("/org/agent-groups", agent_groups_gone)
mount("/org/agents", agent_groups_gone)

for _, r in ipairs(routes) do r.mode = "v2" end

return routes
