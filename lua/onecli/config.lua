--- Client configuration: the options onecli.new and each call accept,
-- their checks, the defaults, the environment variables they fall back
-- to, and the base URL's normal form. Pure functions: nothing here does
-- I/O or keeps state.

local core = require("onecli.core")
local nginx = require("onecli.nginx")

local type, pairs, tostring = type, pairs, tostring
local fmt = string.format

local _M = { _VERSION = core._VERSION }

_M.DEFAULT_URL = "https://api.onecli.sh/v1"

_M.DEFAULTS = {
  timeout = 30,
  connect_timeout = 10,
  max_retries = 2,
  backoff_base = 0.5,
  backoff_max = 8,
  max_retry_after = 30,
}

-- option name -> expected type
_M.CLIENT_OPTIONS = {
  url = "string", api_key = "string", project_id = "string",
  timeout = "number", connect_timeout = "number", max_retries = "number",
  backoff_base = "number", backoff_max = "number", max_retry_after = "number",
  ca_file = "string", insecure = "boolean", user_agent = "string",
  raise = "boolean", transport = "transport", sleep = "function",
  log = "function", getenv = "function", gateway_url = "string",
  workspace_id = "string", deadline = "number", log_level = "string",
  on_request = "function", on_response = "function",
}

-- Options of the OpenResty transport, accepted inside nginx only.
_M.NGINX_OPTIONS = {
  pool_size = "number", keepalive_timeout = "number", backlog = "number",
  ssl_server_name = "string", send_timeout = "number", read_timeout = "number",
}
for name, want in pairs(_M.NGINX_OPTIONS) do
  _M.CLIENT_OPTIONS[name] = want
end
_M.CLIENT_OPTIONS.headers = "table"   -- sent with every call (a call's own win)

_M.CALL_OPTIONS = {
  project_id = "string", timeout = "number", connect_timeout = "number",
  max_retries = "number", headers = "table", raise = "boolean",
  callback = "function", workspace_id = "string", deadline = "number",
  on_request = "function", on_response = "function", meta = "boolean",
}

-- Bounds of the numeric options: { low, high, low is allowed }. NaN and
-- infinities fail every one of them.
local MAX_SECONDS = 2000000        -- what the transports accept (23 days)
local RANGES = {
  timeout = { 0, MAX_SECONDS, false },
  connect_timeout = { 0, MAX_SECONDS, false },
  send_timeout = { 0, MAX_SECONDS, false },
  read_timeout = { 0, MAX_SECONDS, false },
  keepalive_timeout = { 0, MAX_SECONDS, false },
  deadline = { 0, MAX_SECONDS, false },
  backoff_base = { 0, 86400, true },
  backoff_max = { 0, 86400, true },
  max_retry_after = { 0, 86400, true },
}

local function out_of_range(v, range)
  if range[3] then
    return not (v >= range[1] and v <= range[2])
  end
  return not (v > range[1] and v <= range[2])
end

--- Checks an option table against a spec; returns an error message or nil.
-- Headers the client sets on each call, which client-wide default
-- headers may not replace (the key, the project, the framing).
local CLIENT_OWN_HEADERS = {
  authorization = true, ["x-project-id"] = true, ["x-workspace-id"] = true,
  ["content-type"] = true, ["content-length"] = true, ["transfer-encoding"] = true,
  host = true, connection = true,
}

function _M.check_options(opts, spec, what)
  for k, v in pairs(opts) do
    local want = spec[k]
    if want == nil then
      return fmt("unknown %s '%s'", what, tostring(k))
    end
    if want == "transport" then
      if (type(v) ~= "table" and type(v) ~= "userdata") or v.request == nil then
        return fmt("%s 'transport' must be an object with a request method", what)
      end
    elseif type(v) ~= want then
      return fmt("%s '%s' must be a %s, got %s", what, k, want, type(v))
    end
  end
  for name, range in pairs(RANGES) do
    local v = opts[name]
    if v ~= nil and out_of_range(v, range) then
      return fmt("%s '%s' must be %s number of seconds, at most %d (got %s)", what, name,
                 range[3] and "a non-negative" or "a positive", range[2], tostring(v))
    end
  end
  if opts.pool_size and not (opts.pool_size >= 1 and opts.pool_size <= 10000
      and opts.pool_size % 1 == 0) then
    return what .. " 'pool_size' must be an integer from 1 to 10000"
  end
  if opts.backlog and not (opts.backlog >= 0 and opts.backlog <= 100000
      and opts.backlog % 1 == 0) then
    return what .. " 'backlog' must be an integer from 0 to 100000"
  end
  if opts.max_retries and not (opts.max_retries >= 0 and opts.max_retries <= 10
      and opts.max_retries % 1 == 0) then
    return what .. " 'max_retries' must be an integer from 0 to 10"
  end
  if opts.project_id and not opts.project_id:match("^[%w%-_]+$") then
    return what .. " 'project_id' must be an id (letters, digits, '-', '_')"
  end
  if opts.workspace_id and not opts.workspace_id:match("^[%w%-_]+$") then
    return what .. " 'workspace_id' must be an id (letters, digits, '-', '_')"
  end
  if opts.workspace_id and opts.project_id and opts.workspace_id ~= opts.project_id then
    return what .. "s 'project_id' and 'workspace_id' name the same thing (v1 and v2 names) "
           .. "and differ"
  end
  if opts.headers then
    local seen = {}
    for name, value in pairs(opts.headers) do
      if type(name) ~= "string" or not name:match("^[%w%-]+$") then
        return what .. " 'headers' has an invalid header name"
      end
      if type(value) ~= "string" or value:find("[%z\1-\8\10-\31\127]") then
        return fmt("%s 'headers': header '%s' must be a one-line string", what, name)
      end
      local lname = name:lower()
      if seen[lname] then
        return fmt("%s 'headers' names one header twice ('%s' and '%s')", what, seen[lname], name)
      end
      seen[lname] = name
      if spec == _M.CLIENT_OPTIONS and CLIENT_OWN_HEADERS[lname] then
        return fmt("%s 'headers': '%s' is set by the client itself (a call's own headers may "
                   .. "still set it)", what, name)
      end
    end
  end
  if opts.user_agent and (opts.user_agent:find("[%z\1-\31\127]") or #opts.user_agent > 256) then
    -- one header line: a CR or LF would start a header of its own
    return what .. " 'user_agent' must be one line of printable text (at most 256 bytes)"
  end
  return nil
end

--- Normalizes a base URL: an origin without a path gets /v1; a full base
-- (http://host:10254/api) is used as given; trailing slashes go. Returns
-- url, base_path or nil, message (core.normalize_url: no credentials, no
-- query, no dot segments; the message never repeats a credential).
_M.normalize_url = core.normalize_url

--- Reads onecli.new's options (checked already) and the environment into
-- the client's settings. Returns the settings, or nil and a message.
function _M.settings(opts)
  local getenv = opts.getenv or os.getenv
  local function env(name)
    local v = getenv(name)
    if v == "" then
      return nil
    end
    return v
  end
  local DEFAULTS = _M.DEFAULTS

  local url, base_path = _M.normalize_url(opts.url or env("ONECLI_URL") or _M.DEFAULT_URL)
  if not url then
    return nil, base_path
  end
  local gateway_url = opts.gateway_url or env("ONECLI_GATEWAY_URL")
  if gateway_url then
    local gw, gmsg = _M.normalize_url(gateway_url)
    if not gw then
      return nil, "gateway_url: " .. gmsg
    end
    gateway_url = gw:gsub("/v1$", "")
  end
  local api_key = opts.api_key or env("ONECLI_API_KEY")
  if api_key ~= nil and (api_key == "" or api_key:find("[%s%c]")) then
    return nil, "api_key must be a non-empty string without white space"
  end
  local project_id = opts.project_id or opts.workspace_id or env("ONECLI_PROJECT_ID")
                     or env("ONECLI_WORKSPACE_ID")
  if project_id and not project_id:match("^[%w%-_]+$") then
    return nil, "project_id must be an id (letters, digits, '-', '_')"
  end
  if opts.insecure ~= nil and opts.ca_file ~= nil and opts.insecure then
    return nil, "ca_file and insecure = true contradict each other"
  end
  for name in pairs(_M.NGINX_OPTIONS) do
    if opts[name] ~= nil and opts.transport ~= nil then
      return nil, fmt("option '%s' is an option of the OpenResty transport: it has no meaning "
                      .. "with a transport of your own", name)
    elseif opts[name] ~= nil and not nginx.inside() then
      return nil, fmt("option '%s' applies inside nginx only (the OpenResty transport); "
                      .. "outside nginx calls go through libcurl", name)
    end
  end
  if opts.ssl_server_name and not (url:match("^https:") or (gateway_url or ""):match("^https:")) then
    return nil, "option 'ssl_server_name' names the TLS server, but neither url nor gateway_url "
                .. "is https"
  end
  return {
    url = url,
    base_path = base_path,
    gateway_url = gateway_url,
    api_key = api_key,
    project_id = project_id,
    timeout = opts.timeout or DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or DEFAULTS.connect_timeout,
    max_retries = opts.max_retries or DEFAULTS.max_retries,
    backoff_base = opts.backoff_base or DEFAULTS.backoff_base,
    backoff_max = opts.backoff_max or DEFAULTS.backoff_max,
    max_retry_after = opts.max_retry_after or DEFAULTS.max_retry_after,
    deadline = opts.deadline,
  }
end

return _M
