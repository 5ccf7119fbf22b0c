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

-- App-permission tool definitions (GET /apps/{p}/permission-definition,
-- PUT /rules/permissions/{provider}, v2 grants): groups of { id, name,
-- description } and an optional group wildcard. github and vercel carry the
-- real server's tool ids; gmail and google-drive are plausible stand-ins.
local function tools(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = { id = t[1], name = t[2], description = t[3] } end
  return out
end

local function wildcard(category)
  return { id = category .. "_all", name = "All " .. category .. " operations",
    description = "Every " .. category .. " operation of the app" }
end

local GITHUB = {
  { category = "read", tools = tools({
    { "git_clone", "Git clone / pull", "Clone or pull repository contents via git over HTTPS" },
    { "get_repo", "Read repository", "Get repository details, files, and metadata" },
    { "list_repos", "List repositories", "List repositories for the authenticated user" },
    { "list_pulls", "List pull requests", "List pull requests in a repository" },
    { "list_issues", "List issues", "List issues in a repository" },
    { "search", "Search", "Search issues, pull requests, code, repositories, and users" },
    { "graphql_query", "GraphQL API (queries)", "Read-only GraphQL queries" },
    { "read_raw_content", "Read raw file content", "Fetch raw file contents from raw.githubusercontent.com" },
  }) },
  { category = "write", tools = tools({
    { "git_push", "Git push", "Push commits to a repository via git over HTTPS" },
    { "create_pull", "Create pull request", "Create a new pull request" },
    { "create_comment", "Create comment", "Comment on an issue or pull request" },
    { "create_issue", "Create issue", "Create a new issue in a repository" },
    { "update_issue", "Update issue", "Edit, close, or reopen an issue, or edit an issue comment" },
    { "update_pull", "Update pull request", "Edit, close, or reopen a pull request, or edit a review comment" },
    { "graphql_mutation", "GraphQL API (mutations)", "GraphQL writes" },
    { "delete_branch", "Delete branch", "Delete a git branch reference" },
  }) },
}

_M.permission_groups = {
  github = GITHUB,
  ["github-app"] = GITHUB,
  vercel = {
    { category = "read", tools = tools({
      { "list_projects", "List projects", "List all projects" },
      { "get_project", "Get project", "Get a specific project" },
      { "list_deployments", "List deployments", "List deployments" },
      { "get_deployment", "Get deployment", "Get a specific deployment" },
      { "list_env_vars", "List env vars", "List environment variables for a project" },
      { "list_domains", "List domains", "List all domains" },
      { "get_user", "Get user", "Get the authenticated user" },
      { "list_teams", "List teams", "List teams" },
    }) },
    { category = "write", tools = tools({
      { "create_deployment", "Create deployment", "Create a new deployment" },
      { "create_env_var", "Create env var", "Create an environment variable" },
      { "update_env_var", "Update env var", "Update an environment variable" },
      { "delete_env_var", "Delete env var", "Delete an environment variable" },
      { "add_domain", "Add domain", "Add a domain" },
      { "remove_domain", "Remove domain", "Remove a domain" },
    }) },
  },
  gmail = {
    { category = "read", wildcard = wildcard("read"), tools = tools({
      { "list_messages", "List messages", "Search and list messages" },
      { "get_message", "Get message", "Read one message" },
    }) },
    { category = "write", wildcard = wildcard("write"), tools = tools({
      { "send_message", "Send message", "Send an email" },
      { "delete_message", "Delete message", "Move a message to the trash" },
    }) },
  },
  ["google-drive"] = {
    { category = "read", wildcard = wildcard("read"), tools = tools({
      { "list_files", "List files", "List and search files" },
      { "download_file", "Download file", "Read a file's content" },
    }) },
    { category = "write", wildcard = wildcard("write"), tools = tools({
      { "upload_file", "Upload file", "Create or replace a file" },
      { "share_file", "Share file", "Change who can access a file" },
    }) },
  },
}

-- Tool ids a provider's rules may name (wildcards included), and the
-- concrete ones a v2 grant may name (no wildcards).
_M.permissions, _M.concrete_tools = {}, {}
for provider, groups in pairs(_M.permission_groups) do
  local ids, concrete = {}, {}
  for _, g in ipairs(groups) do
    for _, t in ipairs(g.tools) do
      ids[#ids + 1] = t.id
      concrete[#concrete + 1] = t.id
    end
    if g.wildcard then ids[#ids + 1] = g.wildcard.id end
  end
  _M.permissions[provider], _M.concrete_tools[provider] = ids, concrete
end

-- Hosts each app talks to (GET /rules/overlap/{provider}).
_M.hosts = {
  github = { "api.github.com", "github.com", "uploads.github.com", "gist.github.com" },
  ["github-app"] = { "api.github.com", "github.com" },
  gitlab = { "gitlab.com" },
  gmail = { "gmail.googleapis.com" },
  ["google-drive"] = { "www.googleapis.com", "drive.googleapis.com" },
  ["google-calendar"] = { "www.googleapis.com" },
  notion = { "api.notion.com" },
  resend = { "api.resend.com" },
  cloudflare = { "api.cloudflare.com" },
  vercel = { "api.vercel.com" },
  slack = { "slack.com" },
}

-- Predefined blocklist hosts: { id, name, hostPattern }. Other apps have none.
_M.blocklist = {
  github = {
    { id = "github-uploads", name = "Release and asset uploads", hostPattern = "uploads.github.com" },
    { id = "github-gists", name = "Gists", hostPattern = "gist.github.com" },
    { id = "github-raw", name = "Raw file downloads", hostPattern = "raw.githubusercontent.com" },
  },
  gitlab = {
    { id = "gitlab-registry", name = "Container registry", hostPattern = "registry.gitlab.com" },
  },
  gmail = {
    { id = "gmail-web", name = "Gmail web interface", hostPattern = "mail.google.com" },
  },
  ["google-drive"] = {
    { id = "google-drive-content", name = "File downloads", hostPattern = "drive.usercontent.google.com" },
    { id = "google-drive-docs", name = "Docs export", hostPattern = "docs.google.com" },
  },
  notion = {
    { id = "notion-files", name = "File downloads", hostPattern = "file.notion.so" },
  },
  slack = {
    { id = "slack-files", name = "File downloads", hostPattern = "files.slack.com" },
  },
}

function _M.stub(kind)
  if kind ~= "vertex" then return nil end
  local json = require("onecli.standin.json")
  local m = "onecli-managed"
  return json.obj(
    "path", "~/.config/gcloud/application_default_credentials.json",
    "content", json.obj("account", m, "client_id", m, "client_secret", m, "quota_project_id", m,
      "refresh_token", m, "type", "authorized_user", "universe_domain", "googleapis.com"))
end

-- connectionType of app for a server; nil = not in its catalog. The v1
-- cloud edition has the cloud-only apps for real (with their v2 types).
function _M.type_of(app, mode, edition)
  local t = app[mode]
  if mode == "v1" and edition == "cloud" and t == "cloud_only" then return app.v2 end
  return t
end

function _M.find(id, mode, edition)
  for _, app in ipairs(_M.apps) do
    if app.id == id and _M.type_of(app, mode, edition) then return app end
  end
  return nil
end

return _M
