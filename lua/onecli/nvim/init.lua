--- lua-onecli in Neovim: setup and the configuration behind :OneCLI.
--
--   require("onecli").setup{
--     url = "http://localhost:10254",      -- else $ONECLI_URL
--     -- api_key: else $ONECLI_API_KEY (better than writing it in init.lua)
--     approvals = { preview_length = 120 },
--   }
--
-- setup() takes every option of onecli.new (README "Configuration")
-- except `transport`, plus the options of the editor integration
-- (onecli.nvim.Options below). It
-- checks them at once and raises a clear message for a wrong one; the
-- client is made on first use, through onecli.transport.nvim, so setup
-- does no I/O. Calling setup() again replaces the configuration: the old
-- client is closed, and an approvals watch that runs is stopped (start it
-- again with :OneCLI approvals watch). Without setup(), :OneCLI uses the
-- environment (ONECLI_URL, ONECLI_API_KEY, ONECLI_PROJECT_ID,
-- ONECLI_GATEWAY_URL). setup() also defines :OneCLI when plugin/onecli.lua
-- did not (lua-onecli installed as a rock rather than as a plugin).
--
-- The API key is kept out of every table this module hands out, and every
-- message goes through the core's redaction with the configured key.

-- luacheck: globals vim

local type, pairs, tostring, error, pcall, require = type, pairs, tostring, error, pcall, require
local fmt = string.format

local _M = {}

-- approvals.handler(request, decide, info) decides each pending request
-- instead of vim.ui.select: it calls decide(decision) once, now or later,
-- or returns the decision ("approve"/"deny", true/false; nil leaves the
-- request undecided). info is what the prompt would show.
---@alias onecli.nvim.Decision "approve"|"deny"|boolean|nil
---@alias onecli.nvim.ApprovalHandler
---| fun(request: table, decide: fun(d: onecli.nvim.Decision), info: onecli.nvim.ApprovalInfo): onecli.nvim.Decision
---@class onecli.nvim.ApprovalsOptions
---@field handler? onecli.nvim.ApprovalHandler
---@field project_id? string the project (workspace) whose approvals are watched (default: the client's)
---@field preview_length? integer the longest body preview shown, in bytes (default 120)
---@field list_timeout? number how long `:OneCLI approvals` waits for a pending request, in seconds (default 5)
---@field backoff_base? number the runner's backoff after a failed poll (default: the client's)
---@field backoff_max? number the longest backoff (default: the client's)

---@class onecli.nvim.Options: onecli.Options
---@field approvals? onecli.nvim.ApprovalsOptions
---@field notify? fun(msg: string, level: integer, opts: table) how messages are shown (default vim.notify)
---@field list? "buffer"|"select" lists in a scratch buffer (default) or through vim.ui.select

-- option name -> expected type, for the editor's own options
local OWN_OPTIONS = {
  approvals = "table", notify = "function", list = "string",
}

local APPROVALS_OPTIONS = {
  handler = "function", project_id = "string", preview_length = "number",
  list_timeout = "number", backoff_base = "number", backoff_max = "number",
}

local LIST_MODES = { buffer = true, select = true }

-- the current configuration: client options (with the key), own options
local state = {
  client_opts = {},
  own = {},
  client = nil,
  key = nil,
}

local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do
    out[k] = v
  end
  return out
end

-- Checks the options; returns client_opts, own_opts or raises (level 3:
-- the caller of setup).
local function check(opts)
  if type(opts) ~= "table" then
    error("onecli.setup: options must be a table", 3)
  end
  local client_opts, own = {}, {}
  for k, v in pairs(opts) do
    if OWN_OPTIONS[k] then
      if type(v) ~= OWN_OPTIONS[k] then
        error(fmt("onecli.setup: option '%s' must be a %s, got %s", k, OWN_OPTIONS[k], type(v)), 3)
      end
      own[k] = v
    elseif k == "transport" then
      error("onecli.setup: option 'transport': the editor uses the Neovim transport "
            .. "(make a client of your own with onecli.new for another)", 3)
    else
      client_opts[k] = v
    end
  end
  if own.list and not LIST_MODES[own.list] then
    error("onecli.setup: option 'list' must be \"buffer\" or \"select\", got \"" .. own.list .. "\"", 3)
  end
  for k, v in pairs(own.approvals or {}) do
    local want = APPROVALS_OPTIONS[k]
    if want == nil then
      error(fmt("onecli.setup: unknown option 'approvals.%s'", tostring(k)), 3)
    elseif type(v) ~= want then
      error(fmt("onecli.setup: option 'approvals.%s' must be a %s, got %s", k, want, type(v)), 3)
    end
  end
  local a = own.approvals or {}
  for _, k in pairs({ "preview_length", "list_timeout" }) do
    if a[k] and not (a[k] > 0 and a[k] < math.huge) then
      error(fmt("onecli.setup: option 'approvals.%s' must be a positive number", k), 3)
    end
  end
  if a.project_id and not a.project_id:match("^[%w%-_]+$") then
    error("onecli.setup: option 'approvals.project_id' must be an id (letters, digits, '-', '_')", 3)
  end
  -- onecli.new's own checks, without making a client (no I/O)
  local config = require("onecli.config")
  local msg = config.check_options(client_opts, config.CLIENT_OPTIONS, "option")
  if not msg then
    local _
    _, msg = config.settings(client_opts)
  end
  if msg then
    error("onecli.setup: " .. msg, 3)
  end
  return client_opts, own
end

--- Configures :OneCLI (see the module comment). Returns the module.
---@param opts? onecli.nvim.Options
---@return table
function _M.setup(opts)
  local client_opts, own = check(opts or {})
  local old = state.client
  state = {
    client_opts = client_opts,
    own = own,
    client = nil,
    key = client_opts.api_key,
  }
  if old then
    old:close()
  end
  local approvals = package.loaded["onecli.nvim.approvals"]
  if approvals and approvals.is_watching() then
    approvals.stop("the configuration changed; start it again with :OneCLI approvals watch")
  end
  if vim.fn.exists(":OneCLI") ~= 2 then      -- installed as a rock: no plugin/ directory
    require("onecli.nvim.command").define()
  end
  return _M
end

--- The editor's options (a copy; the client options are not included, so
-- neither is the key).
---@return { approvals: onecli.nvim.ApprovalsOptions, list: "buffer"|"select", notify?: function }
function _M.options()
  local own = copy(state.own)
  own.approvals = copy(own.approvals)
  own.list = own.list or "buffer"
  return own
end

--- What require("onecli").setup{} set for one client option (url,
-- api_key, project_id, ...), or nil (also before setup). For
-- :checkhealth onecli, which shows where a setting came from.
---@param name string
---@return any
function _M.setting(name)
  local opts = state.client_opts
  return opts and opts[name]
end

--- A new client of the configured server through the Neovim transport
-- (the caller closes it). Raises on a configuration error.
---@return onecli.Client
function _M.new_client()
  return require("onecli.transport.nvim").client(copy(state.client_opts))
end

--- The shared client of :OneCLI, made on first use.
---@return onecli.Client
function _M.client()
  if state.client == nil then
    state.client = _M.new_client()
  end
  return state.client
end

-- The key messages are redacted with: the configured one, else the
-- environment's.
local function secret()
  local key = state.key
  if key == nil then
    key = os.getenv("ONECLI_API_KEY")
  end
  if key == "" then
    return nil
  end
  return key
end

--- Turns anything into a message fit to show: tostring() (error objects
-- print as one redacted line), then redacted with the configured key.
---@param msg any
---@return string
function _M.redact(msg)
  msg = tostring(msg)
  local ok, core = pcall(require, "onecli.core")
  if ok then
    return core.redact(msg, secret())
  end
  local key = secret()
  if key then
    msg = msg:gsub(key:gsub("%W", "%%%0"), "[REDACTED]")
  end
  return msg
end

--- Shows a message ("OneCLI: " first) through the configured notify
-- (default vim.notify), redacted.
---@param msg any
---@param level? integer vim.log.levels.* (default INFO)
function _M.notify(msg, level)
  local text = "OneCLI: " .. _M.redact(msg)
  level = level or vim.log.levels.INFO
  local notify = state.own.notify or vim.notify
  notify(text, level, { title = "OneCLI" })
end

--- Shows an error (an error object, or a message) at ERROR level.
---@param err any
---@param what? string what failed, e.g. "listing agents"
function _M.error(err, what)
  _M.notify((what and (what .. ": ") or "") .. tostring(err), vim.log.levels.ERROR)
end

return _M
