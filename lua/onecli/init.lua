--- lua-onecli: the Lua client for the OneCLI API.
--
--   local onecli = require("onecli")
--   local client = onecli.new{ url = "http://127.0.0.1:10254", api_key = "oc_..." }
--   for _, agent in ipairs(client.agents:list()) do print(agent.name) end
--
-- See README.md for configuration, errors and retries, and
-- onecli/endpoints.lua for every method.

local core = require("onecli.core")
local client = require("onecli.client")
local helpers = require("onecli.helpers")
local nginx = require("onecli.nginx")
require("onecli.approvals")
require("onecli.batch")
local agent = require("onecli.agent")
require("onecli.agent_run")
require("onecli.gateway_agent")

local pcall, error = pcall, error
local is_error = core.is_error

local _M = {
  _VERSION = core._VERSION,
  VERSION = core._VERSION,

  --- Creates a client (see README "Configuration").
  new = client.new,

  --- JSON null: send it to clear a nullable field ({ pathPattern = onecli.null }),
  -- and compare against it in responses (agent.lastSeenAt == onecli.null).
  null = core.null,

  --- Marks a table as a JSON array so that an empty one is sent as [].
  array = core.array,

  --- An empty JSON array ([]), read-only.
  empty_array = core.empty_array,

  --- true if v is a OneCLI error object.
  is_error = is_error,

  json_encode = core.json_encode,
  json_decode = core.json_decode,

  --- The endpoint table the methods are generated from.
  endpoints = client.endpoints,

  user_agent = core.user_agent,

  --- container_config() -> `docker run` arguments (see onecli.helpers).
  docker_args = helpers.docker_args,

  --- docker_command(config, opts, image, ...) -> one sh-safe `docker run` line, argv.
  docker_command = helpers.docker_command,

  --- shell_quote(words) -> the words as one POSIX sh command line.
  shell_quote = helpers.shell_quote,

  --- env_list(env) -> sorted { "K=V", ... } (for vim.system, jobstart, uv.spawn, ngx.pipe).
  env_list = agent.env_list,

  --- env_command(env, argv[, { complete = true }]) -> a shell line running argv with env.
  env_command = agent.env_command,

  --- Neovim: configures the :OneCLI command and the approvals watch
  -- (onecli.nvim: the options of onecli.new plus the editor's own). Loaded
  -- on first use, so plain Lua never loads the Neovim code.
  ---@param opts? onecli.nvim.Options
  setup = function(opts)
    return require("onecli.nvim").setup(opts)
  end,
}

local function settle(ok, ...)
  if ok then
    return ...
  end
  local err = ...
  if is_error(err) then
    return nil, err
  end
  local object = nginx.error_of(err)     -- raised as a string inside nginx
  if object then
    return nil, object
  end
  error(err, 0)   -- programming errors stay errors
end

--- Calls fn(...) and turns a raised OneCLI error into nil, err. Other
-- errors (bugs, misuse) are raised again. Inside nginx, where a client
-- with raise = true raises the error's one-line string (nginx prints
-- nothing else), it returns the error object too.
--   local agents, err = onecli.try(client.agents.list, client.agents)
function _M.try(fn, ...)
  return settle(pcall(fn, ...))
end

--- The error object a string raised inside nginx stands for (one of the
-- last 32 raised in this worker), or nil.
_M.error_of = nginx.error_of

return _M
