-- App catalog of the stand-in, copied from the recorded `GET /apps` responses
-- (v1.41.0 and v2.0.1, in their order). `v1`/`v2` = connectionType in that
-- mode (nil = the app does not exist there). available = not cloud_only;
-- configurable (BYOC) = oauth — both hold for every recorded app.
--
-- Direct-connect fields and OAuth endpoints are not in the captures; they
-- are plausible stand-ins (see FIELDS, AUTHORIZE_URLS).
local _M = {}

_M.apps = {
  { id = "gmail", name = "Gmail", v1 = "oauth", v2 = "oauth" },
  { id = "github", name = "GitHub", v1 = "oauth", v2 = "oauth" },
  { id = "github-app", name = "GitHub App", v1 = "oauth", v2 = "oauth" },
  { id = "gitlab", name = "GitLab", v1 = "oauth", v2 = "oauth" },
  { id = "google-drive", name = "Google Drive", v1 = "oauth", v2 = "oauth" },
  { id = "google-calendar", name = "Google Calendar", v1 = "oauth", v2 = "oauth" },
  { id = "google-chat", name = "Google Chat", v1 = "oauth", v2 = "oauth" },
  { id = "google-contacts", name = "Google Contacts", v1 = "oauth", v2 = "oauth" },
  { id = "resend", name = "Resend", v1 = "api_key", v2 = "api_key" },
  { id = "google-admin", name = "Google Admin", v1 = "oauth", v2 = "oauth" },
  { id = "google-analytics", name = "Google Analytics", v1 = "oauth", v2 = "oauth" },
  { id = "google-classroom", name = "Google Classroom", v1 = "oauth", v2 = "oauth" },
  { id = "google-docs", name = "Google Docs", v1 = "oauth", v2 = "oauth" },
  { id = "google-forms", name = "Google Forms", v1 = "oauth", v2 = "oauth" },
  { id = "google-meet", name = "Google Meet", v1 = "oauth", v2 = "oauth" },
  { id = "google-photos", name = "Google Photos", v1 = "oauth", v2 = "oauth" },
  { id = "google-search-console", name = "Google Search Console", v1 = "oauth", v2 = "oauth" },
  { id = "google-sheets", name = "Google Sheets", v1 = "oauth", v2 = "oauth" },
  { id = "google-slides", name = "Google Slides", v1 = "oauth", v2 = "oauth" },
  { id = "google-tasks", name = "Google Tasks", v1 = "oauth", v2 = "oauth" },
  { id = "notion", name = "Notion", v1 = "oauth", v2 = "oauth" },
  { id = "jira", name = "Jira", v1 = "oauth", v2 = "oauth" },
  { id = "confluence", name = "Confluence", v1 = "oauth", v2 = "oauth" },
  { id = "docker", name = "Docker Hub", v1 = "credentials_import", v2 = "credentials_import" },
  { id = "youtube", name = "YouTube", v1 = "oauth", v2 = "oauth" },
  { id = "vertex-ai", name = "Vertex AI", v1 = "credentials_import", v2 = "credentials_import",
    stub = "vertex" },
  { id = "todoist", name = "Todoist", v1 = "oauth", v2 = "oauth" },
  { id = "cloudflare", name = "Cloudflare", v1 = "api_key", v2 = "api_key" },
  { id = "flyio", name = "Fly.io", v1 = "api_key", v2 = "api_key" },
  { id = "dropbox", name = "Dropbox", v1 = "oauth", v2 = "oauth" },
  { id = "aws", name = "AWS", v1 = "credentials_import", v2 = "credentials_import" },
  { id = "monday", name = "monday.com", v1 = "oauth", v2 = "oauth" },
  { id = "mongodb-atlas", name = "MongoDB Atlas", v1 = "credentials_import", v2 = "credentials_import" },
  { id = "supabase", name = "Supabase", v1 = "oauth", v2 = "oauth" },
  { id = "linkedin", name = "LinkedIn", v1 = "oauth", v2 = "oauth" },
  { id = "trello", name = "Trello", v1 = "oauth", v2 = "oauth" },
  { id = "vercel", name = "Vercel", v1 = "api_key", v2 = "api_key" },
  { id = "jfrog-artifactory", name = "JFrog Artifactory", v1 = "api_key", v2 = "api_key" },
  { id = "datadog", name = "Datadog", v1 = "cloud_only", v2 = "api_key" },
  { id = "outlook-mail", name = "Outlook Mail", v1 = "cloud_only", v2 = "oauth" },
  { id = "outlook-calendar", name = "Outlook Calendar", v1 = "cloud_only", v2 = "oauth" },
  { id = "microsoft-word", name = "Microsoft Word", v1 = "cloud_only", v2 = "oauth" },
  { id = "microsoft-onenote", name = "Microsoft OneNote", v1 = "cloud_only", v2 = "oauth" },
  { id = "aws-role", name = "AWS Role", v1 = "cloud_only", v2 = "credentials_import" },
  { id = "affinity", name = "Affinity", v1 = "cloud_only", v2 = "api_key" },
  { id = "zoom", name = "Zoom", v1 = "cloud_only", v2 = "oauth" },
  { id = "sentry", name = "Sentry", v1 = "cloud_only", v2 = "oauth" },
  { id = "hubspot", name = "HubSpot", v1 = "cloud_only", v2 = "oauth" },
  { id = "granola", name = "Granola", v1 = nil, v2 = "api_key" },
  { id = "linear", name = "Linear", v1 = "cloud_only", v2 = "oauth" },
  { id = "attio", name = "Attio", v1 = "cloud_only", v2 = "oauth" },
  { id = "x", name = "X", v1 = "cloud_only", v2 = "oauth" },
  { id = "fathom", name = "Fathom", v1 = "cloud_only", v2 = "oauth" },
  { id = "slack", name = "Slack", v1 = "cloud_only", v2 = "oauth" },
  { id = "fireflies", name = "Fireflies", v1 = "cloud_only", v2 = "api_key" },
  { id = "zoho-crm", name = "Zoho CRM", v1 = nil, v2 = "oauth" },
}

-- Credential fields for direct connect ({ name, label }); default: API key.
local API_KEY = { { "apiKey", "API Key" } }
local API_TOKEN = { { "apiToken", "API Token" } }

_M.fields = {
  resend = API_KEY,
  cloudflare = API_TOKEN,
  flyio = API_TOKEN,
  vercel = API_TOKEN,
  ["jfrog-artifactory"] = { { "url", "Instance URL" }, { "accessToken", "Access Token" } },
  datadog = { { "apiKey", "API Key" }, { "appKey", "Application Key" } },
  docker = { { "username", "Username" }, { "accessToken", "Personal Access Token" } },
  aws = { { "accessKeyId", "Access Key ID" }, { "secretAccessKey", "Secret Access Key" } },
  ["aws-role"] = { { "roleArn", "Role ARN" } },
  ["mongodb-atlas"] = { { "publicKey", "Public Key" }, { "privateKey", "Private Key" } },
  ["vertex-ai"] = { { "credentials", "Application Default Credentials" } },
}
_M.default_fields = API_KEY

-- BYOC (app config) fields: { name, label, secret }.
_M.config_fields = {
  default = { { "clientId", "Client ID", false }, { "clientSecret", "Client Secret", true } },
  ["github-app"] = {
    { "appId", "App ID", false }, { "appSlug", "App Slug", false }, { "privateKey", "Private Key", true },
  },
}

local GOOGLE = "https://accounts.google.com/o/oauth2/v2/auth"
_M.authorize_urls = {
  github = "https://github.com/login/oauth/authorize",
  gitlab = "https://gitlab.com/oauth/authorize",
  notion = "https://api.notion.com/v1/oauth/authorize",
  jira = "https://auth.atlassian.com/authorize",
  confluence = "https://auth.atlassian.com/authorize",
  dropbox = "https://www.dropbox.com/oauth2/authorize",
  todoist = "https://todoist.com/oauth/authorize",
  slack = "https://slack.com/oauth/v2/authorize",
  linear = "https://linear.app/oauth/authorize",
}
_M.google_authorize_url = GOOGLE

_M.scopes = {
  github = "repo read:user user:email",
  gmail = "https://www.googleapis.com/auth/gmail.modify",
}

-- App-permission tool definitions (PUT /rules/permissions/{provider}).
_M.permissions = {
  github = {
    "list_repositories", "get_repository", "list_issues", "get_issue",
    "create_issue", "comment_on_issue", "create_pull_request", "merge_pull_request",
  },
  gmail = { "list_messages", "get_message", "send_message", "delete_message" },
}

function _M.stub(kind)
  if kind ~= "vertex" then return nil end
  local json = require("standin.json")
  local m = "onecli-managed"
  return json.obj(
    "path", "~/.config/gcloud/application_default_credentials.json",
    "content", json.obj("account", m, "client_id", m, "client_secret", m, "quota_project_id", m,
      "refresh_token", m, "type", "authorized_user", "universe_domain", "googleapis.com"))
end

function _M.find(id, mode)
  for _, app in ipairs(_M.apps) do
    if app.id == id and app[mode] then return app end
  end
  return nil
end

return _M
