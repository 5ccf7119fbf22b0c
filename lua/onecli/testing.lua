--- Test your own code against a OneCLI stand-in: a server that imitates
-- OneCLI v1.41.0 or v2.0.1 from memory on 127.0.0.1 (every management
-- endpoint, with the real servers' validation, status codes and messages;
-- the gateway's approvals on a second port), can be told to fail (statuses
-- with Retry-After, delays, dropped connections, hangs, HTML error pages,
-- malformed JSON) and tells what it received.
--
--   local onecli  = require("onecli")
--   local testing = require("onecli.testing")
--
--   local srv = testing.start{ mode = "v2" }       -- a child process, free ports
--   local client = onecli.new(srv:client_options{ max_retries = 0 })
--   srv:seed{ agents = { { name = "Bot", identifier = "bot" } } }
--   srv:fault{ kind = "status", status = 503, retry_after = 1, path = "/v1/agents" }
--   ... call the code under test ...
--   local seen = srv:requests{ method = "GET", path = "/v1/agents" }
--   srv:reset()                                   -- between tests
--   srv:stop()                                    -- in teardown
--
-- Needs LuaSocket (Debian: lua-socket; LuaRocks: luasocket), which the
-- library itself never loads: require("onecli.testing") fails with a
-- message naming it when it is missing. The server runs in a child process
-- (a Lua interpreter running onecli/standin/server.lua from the same tree
-- as this module), so the blocking libcurl transport can call it. With
-- `in_process = true` it runs in the calling process instead, driven by
-- srv:step() from the host's own event loop (a luv loop, Neovim, copas):
-- only for clients whose calls do not block that loop (onecli.transport.uv
-- and .nvim); a blocking call to an in-process server runs into its
-- timeout, since nothing serves it while the call blocks. On luv:
--
--   local srv = testing.start{ in_process = true }
--   local timer = uv.new_timer()
--   timer:start(0, 1, function() srv:step(0) end)  -- every millisecond
--   local client = require("onecli.transport.uv").client(srv:client_options())
--
-- A child exits by itself after max_lifetime (600 s) if srv:stop() is
-- never called; on Lua 5.4, `local srv <close> = testing.start{}` stops it
-- at the end of the block.
--
-- Keys and ids: the server accepts one API key (srv.api_key; the fixed
-- default oc_7e57…7e57 unless start{ api_key = } names another), a v2
-- organization key (srv.org_key) and, in v1, a default agent. Data lives in
-- memory: srv:reset() forgets everything made since start (and makes the
-- start seed again).
--
-- The same server as a command for tests outside Lua: `onecli-standin
-- --mode v2 --port 10254` (--help lists the options); its test hooks are
-- HTTP endpoints under /__control/ (see onecli/standin/control.lua).
local launcher = require("onecli.standin.launcher")
local json = require("onecli.standin.json")
local cli = require("onecli.standin.cli")

local _M = {}

local Server = {}
Server.__index = Server

local type, pairs, ipairs, tostring, error, format = type, pairs, ipairs, tostring, error, string.format
local setmetatable = setmetatable

---@alias onecli.testing.Mode "v1"|"v2"
---@alias onecli.testing.FaultKind "status"|"delay"|"drop"|"hang"|"html"|"bad_json"|"html502"

---@class onecli.testing.StartOptions
---@field mode? onecli.testing.Mode         OneCLI v1.41.0 or v2.0.1 (default "v2")
---@field edition? "oss"|"cloud"             v1 only: the open-source server in local mode (no key
---                                          needed) or the cloud server of that time (default "oss")
---@field port? integer                      API port (default 0: a free port)
---@field gateway_port? integer              the gateway's port (default 0: a free port)
---@field host? string                       address to listen on (default "127.0.0.1")
---@field api_key? string                    the key the server accepts, "oc_" and hex (default a fixed key)
---@field org_key? string                    v2: the organization key, "oc_org_" and hex
---@field project_id? string                 the project (workspace) id
---@field licensed? boolean                  v2: an Enterprise licence (default false)
---@field runner? boolean                    v2: a registered runner, so hosted agents can be made (default false)
---@field seed? onecli.testing.Seed          data made through the API once started (and again after each reset)
---@field poll_hold? number                  seconds the gateway holds a poll with nothing to hand out (default 30)
---@field max_lifetime? number               the child exits after this many seconds (default 600)
---@field lua? string                        interpreter running the child (default: the running one;
---                                          the environment's ONECLI_STANDIN_LUA)
---@field timeout? number                    seconds to wait for the child to listen (default 10)
---@field quiet? boolean                     false: the child logs method, path and status to a file (srv.log_file)
---@field in_process? boolean                run in this process, driven by srv:step() (see the module header)

---@class onecli.testing.Seed
---@field agents? table[]    bodies of POST /agents, e.g. { name = "Bot", identifier = "bot" }
---@field secrets? table[]   bodies of POST /secrets

---@class onecli.testing.Fault
--- kind: status: answer `status` (with a JSON error body like the servers'); delay: answer
--- normally after `seconds`; drop: close the connection without an answer; hang: never answer;
--- html: an nginx HTML error page with `status` (default 502); bad_json: a 200 whose JSON is cut
--- short (html502 = html with 502; echo_key: a 401 echoing the key, for redaction tests).
---@field kind onecli.testing.FaultKind
---@field status? integer        status and html kinds
---@field retry_after? number|string  sent as Retry-After (seconds or an HTTP date)
---@field seconds? number        delay kind
---@field path? string           only requests to this path, as the server sees it ("/v1/agents"; no query)
---@field method? string         only this method
---@field count? integer         how many requests it applies to (default 1)
---@field headers? table<string,string>  extra response headers
---@field body? string           the response body (status and html kinds)
---@field gateway? boolean       true: applies to the gateway's port instead of the API's

---@class onecli.testing.Request
---@field method string
---@field path string             without the query
---@field query string|nil        the raw query string
---@field headers table<string,string>  lower-case names
---@field body string|nil
---@field connection integer      the server's number for the TCP connection it came on
---@field gateway boolean|nil     true: received on the gateway's port
---@field client_closed boolean|nil  the client went away before the answer

---@class onecli.testing.Approval
---@field method? string          the held request's method (default "GET")
---@field url? string             its URL
---@field agent? string|table     an agent's identifier or id, or { id, name } (default: the first agent)
---@field expires_in? number      seconds until it expires
---@field headers? table<string,string>
---@field body? string
---@field summary? string
---@field id? string

---@class onecli.testing.Server
---@field url string             the API base URL, "http://127.0.0.1:PORT/v1" (onecli.new{ url = })
---@field origin string          "http://127.0.0.1:PORT"
---@field gateway_url string     "http://127.0.0.1:GWPORT" (approvals)
---@field api_key string         the key the server accepts
---@field org_key string         v2: the organization key
---@field project_id string      the project (workspace) id
---@field mode onecli.testing.Mode
---@field edition "oss"|"cloud"
---@field port integer
---@field gateway_port integer
---@field pid integer|nil        the child's process id (nil in process)
---@field log_file string|nil    the child's log (start{ quiet = false })

------------------------------------------------------------------------------
-- Where the child runs
------------------------------------------------------------------------------

local function command_exists(name)
  local ok, a, _, c = pcall(os.execute, "command -v '" .. name:gsub("'", "") .. "' >/dev/null 2>&1")
  if not ok then return false end
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

-- The running interpreter when it is a Lua one (Linux), else its Debian
-- name (lua5.4, luajit), else "lua". Second value: true when it is the same
-- Lua as this one (then the child gets this process's package paths).
local function default_lua()
  local env = os.getenv("ONECLI_STANDIN_LUA")
  if env and env ~= "" then return env, false end
  local exe
  local probe = io.open("/proc/self/exe", "rb")
  if probe then
    probe:close()
    local p = io.popen("readlink /proc/self/exe 2>/dev/null")
    exe = p and p:read("*l")
    if p then p:close() end
  end
  local base = exe and exe:match("[^/]+$")
  if base and (base:match("^lua[%d.]*$") or base:match("^luajit[%w.%-]*$")) then return exe, true end
  local name = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  if command_exists(name) then return name, true end
  return "lua", false
end

------------------------------------------------------------------------------
-- Starting
------------------------------------------------------------------------------

local START_OPTIONS = {
  mode = "string", edition = "string", port = "number", gateway_port = "number", host = "string",
  api_key = "string", org_key = "string", project_id = "string", licensed = "boolean", runner = "boolean",
  seed = "table", poll_hold = "number", max_lifetime = "number", lua = "string", timeout = "number",
  quiet = "boolean", in_process = "boolean", partner_key = "string",
}

local function check_start(opts, level)
  if opts ~= nil and type(opts) ~= "table" then
    error("onecli.testing.start: options must be a table, got " .. type(opts), level)
  end
  opts = opts or {}
  for k, v in pairs(opts) do
    if not START_OPTIONS[k] then error("onecli.testing.start: unknown option '" .. tostring(k) .. "'", level) end
    if type(v) ~= START_OPTIONS[k] then
      error(format("onecli.testing.start: option '%s' must be a %s, got %s", k, START_OPTIONS[k], type(v)), level)
    end
  end
  if opts.mode ~= nil and opts.mode ~= "v1" and opts.mode ~= "v2" then
    error("onecli.testing.start: mode must be \"v1\" or \"v2\"", level)
  end
  if opts.edition ~= nil and opts.edition ~= "oss" and opts.edition ~= "cloud" then
    error("onecli.testing.start: edition must be \"oss\" or \"cloud\"", level)
  end
  return opts
end

local InProcess = {}   -- the in-process engine behind a Server (see start_in_process)

--- Starts a stand-in and returns it, listening and ready. Raises when it
--- cannot start (with the child's stderr).
---@param opts? onecli.testing.StartOptions
---@return onecli.testing.Server
function _M.start(opts)
  opts = check_start(opts, 3)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.mode = o.mode or "v2"
  local seed = o.seed
  o.seed = nil
  local self
  if o.in_process then
    self = InProcess.start(o)
  else
    if o.lua == nil then
      local same
      o.lua, same = default_lua()
      if same then o.package_path, o.package_cpath = package.path, package.cpath end
    end
    o.max_lifetime = o.max_lifetime or 600
    if o.quiet == nil then o.quiet = true end
    local ok, srv = pcall(launcher.start, o)
    if not ok then error((tostring(srv):gsub("^[%w_./\\-]+%.lua:%d+: ", "")), 2) end
    self = setmetatable({ srv = srv, pid = srv.pid, log_file = (not o.quiet) and srv.err_file or nil }, Server)
  end
  local s = self.srv
  self.url, self.origin, self.gateway_url = s.url, s.origin, s.gateway_url
  self.port, self.gateway_port = s.port, s.gateway_port
  self.mode, self.edition = s.mode, s.edition
  self.api_key, self.org_key, self.project_id = s.api_key, s.org_key, s.project_id
  self.partner_key = s.partner_key
  self.start_seed = seed
  if seed then
    self:seed(seed)
    self:clear_requests()
  end
  return self
end

------------------------------------------------------------------------------
-- Test hooks (/__control/*)
------------------------------------------------------------------------------

-- POST/GET/DELETE on /__control/<name>; raises on anything but a 2xx.
local function control(self, method, name, body, level)
  local status, data = self.srv:control(method, "/__control/" .. name, body)
  if not status or status >= 300 then
    error(format("onecli.testing: %s /__control/%s failed: %s %s", method, name, tostring(status),
      type(data) == "table" and (data.error or json.encode(data)) or tostring(data)), level + 1)
  end
  return data
end

local FAULT_FIELDS = {
  kind = "string", status = "number", retry_after = true, seconds = "number", path = "string",
  method = "string", count = "number", headers = "table", body = "string", gateway = "boolean", ctype = "string",
}
local FAULT_KINDS = { status = true, delay = true, drop = true, hang = true, html = true, html502 = true,
  bad_json = true, echo_key = true }

--- Makes the next `count` (1) matching requests fail. Faults apply in the
--- order they were added; each matching request uses up one.
---@param f onecli.testing.Fault
---@return integer id
function Server:fault(f)
  if type(f) ~= "table" then error("srv:fault: expects a table { kind = ... }", 2) end
  for k, v in pairs(f) do
    local want = FAULT_FIELDS[k]
    if not want then error("srv:fault: unknown field '" .. tostring(k) .. "'", 2) end
    if want ~= true and type(v) ~= want then
      error(format("srv:fault: field '%s' must be a %s, got %s", k, want, type(v)), 2)
    end
  end
  if not FAULT_KINDS[f.kind] then
    error("srv:fault: kind must be one of status, delay, drop, hang, html, bad_json (got "
      .. tostring(f.kind) .. ")", 2)
  end
  if f.kind == "status" and not f.status then error("srv:fault: kind \"status\" needs status =", 2) end
  if f.kind == "delay" and not f.seconds then error("srv:fault: kind \"delay\" needs seconds =", 2) end
  local rt = f.retry_after
  if rt ~= nil and type(rt) ~= "number" and type(rt) ~= "string" then
    error("srv:fault: retry_after must be seconds or an HTTP date", 2)
  end
  return control(self, "POST", "faults", f, 2).id
end

--- Removes every fault not used up yet.
function Server:clear_faults()
  control(self, "DELETE", "faults", nil, 2)
end

--- The faults not used up yet: { { id, kind, method, path, count, ... }, ... }.
function Server:faults()
  return control(self, "GET", "faults", nil, 2)
end

--- What the server received (API and gateway; not the test hooks), oldest
--- first; with a filter, only the requests that match all of its fields.
---@param filter? { method?: string, path?: string, gateway?: boolean }
---@return onecli.testing.Request[]
function Server:requests(filter)
  if filter ~= nil and type(filter) ~= "table" then error("srv:requests: filter must be a table", 2) end
  local all = control(self, "GET", "requests", nil, 2)
  local out = {}
  for _, r in ipairs(all) do
    local keep = not filter
      or ((filter.method == nil or filter.method:upper() == r.method)
        and (filter.path == nil or filter.path == r.path)
        and (filter.gateway == nil or filter.gateway == (r.gateway == true)))
    if keep then out[#out + 1] = r end
  end
  return out
end

--- Forgets the requests received (the data stays).
function Server:clear_requests()
  control(self, "DELETE", "requests", nil, 2)
end

--- Counters since the last reset: { requests, connections, accepted, faults }.
function Server:stats()
  return control(self, "GET", "stats", nil, 2)
end

--- Back to the state start left it in: data, keys, faults, the request log
--- and the instance switches; the start seed is made again.
function Server:reset()
  control(self, "POST", "reset", nil, 2)
  local info = control(self, "GET", "info", nil, 2)
  self.api_key, self.partner_key = info.api_key, info.partner_key
  self.srv.api_key, self.srv.partner_key = info.api_key, info.partner_key
  if self.start_seed then
    self:seed(self.start_seed)
    self:clear_requests()
  end
end

--- Puts a request in the gateway's approvals queue, as an agent's call
--- held for approval would; returns it (with its id).
---@param a? onecli.testing.Approval
function Server:approval(a)
  return control(self, "POST", "approvals", a or json.obj(), 2)
end

--- Every approval the gateway knows, with its state and decisions.
function Server:approvals()
  return control(self, "GET", "approvals", nil, 2)
end

--- v2 instance switches: { licensed = bool?, runner = bool? }; returns both.
function Server:instance(t)
  return control(self, "POST", "instance", t or json.obj(), 2)
end

--- The gateway's settings: { poll_hold = seconds }; returns them.
function Server:gateway_settings(t)
  return control(self, "POST", "approvals/settings", t or json.obj(), 2)
end

------------------------------------------------------------------------------
-- Data through the API
------------------------------------------------------------------------------

--- One call to the stand-in's API with its key (and, v1 cloud, its project):
--- path relative to srv.url ("/agents"). Returns status, decoded JSON body
--- (or the raw body), headers. Its request shows in srv:requests().
---@param method string
---@param path string
---@param body? table|string
function Server:api(method, path, body)
  if type(method) ~= "string" or type(path) ~= "string" then error("srv:api(method, path, body?)", 2) end
  local headers = { { "Authorization", "Bearer " .. self.api_key } }
  if self.edition == "cloud" and self.mode == "v1" and self.project_id then
    headers[#headers + 1] = { "X-Project-Id", self.project_id }
  end
  local payload = body
  if type(body) == "table" then payload = json.encode(body) end
  if payload ~= nil then headers[#headers + 1] = { "Content-Type", "application/json" } end
  local res, err = self.srv:raw(method, "/v1" .. path, headers, payload)
  if not res then error("onecli.testing: " .. method .. " " .. path .. ": " .. tostring(err), 2) end
  local decoded = json.decode(res.body or "")
  if decoded == nil then decoded = res.body end
  return res.status, decoded, res.headers
end

local function created(self, what, path, bodies)
  local out = {}
  for i, body in ipairs(bodies or {}) do
    local status, data = self:api("POST", path, body)
    if status ~= 200 and status ~= 201 then
      error(format("onecli.testing: seeding %s #%d: %s %s", what, i, tostring(status),
        type(data) == "table" and json.encode(data) or tostring(data)), 3)
    end
    out[i] = data
  end
  return out
end

--- Makes data through the API (POST /agents, POST /secrets, in order) and
--- returns what the server answered: { agents = {...}, secrets = {...} }.
---@param data onecli.testing.Seed
function Server:seed(data)
  if type(data) ~= "table" then error("srv:seed: expects { agents = {...}, secrets = {...} }", 2) end
  for k in pairs(data) do
    if k ~= "agents" and k ~= "secrets" then error("srv:seed: unknown field '" .. tostring(k) .. "'", 2) end
  end
  return {
    agents = created(self, "agents", "/agents", data.agents),
    secrets = created(self, "secrets", "/secrets", data.secrets),
  }
end

------------------------------------------------------------------------------
-- Configuring clients
------------------------------------------------------------------------------

--- Options for onecli.new pointing at this server (url, api_key,
--- gateway_url; v1 cloud: project_id), merged with `extra`.
---@param extra? table
---@return table
function Server:client_options(extra)
  local o = { url = self.url, api_key = self.api_key, gateway_url = self.gateway_url }
  if self.mode == "v1" and self.edition == "cloud" then o.project_id = self.project_id end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- The environment a script configured by ONECLI_* variables needs:
--- { ONECLI_URL =, ONECLI_API_KEY =, ONECLI_GATEWAY_URL = } (v1 cloud: ONECLI_PROJECT_ID).
function Server:env()
  local e = { ONECLI_URL = self.url, ONECLI_API_KEY = self.api_key, ONECLI_GATEWAY_URL = self.gateway_url }
  if self.mode == "v1" and self.edition == "cloud" then e.ONECLI_PROJECT_ID = self.project_id end
  return e
end

------------------------------------------------------------------------------
-- Running, stopping
------------------------------------------------------------------------------

--- Whether the server still runs.
function Server:running()
  return self.srv:running()
end

--- Stops the server (idempotent): asks it to shut down, then kills the child
--- if it does not go.
function Server:stop()
  self.srv:stop()
end

--- In process only: one turn of the server's loop, waiting for its
--- sockets at most `max_wait` seconds (default 0: never blocks). Call it
--- from the host's loop (a luv timer, a copas thread). A child server
--- needs no stepping: step() returns at once.
---@param max_wait? number
function Server:step(max_wait)
  if self.srv.engine then self.srv.engine:step(max_wait or 0) end
end

Server.__close = Server.stop     -- Lua 5.4: local srv <close> = testing.start{}

-- For tests of this module: the Server metatable.
_M.Server = Server

------------------------------------------------------------------------------
-- In process (in_process = true)
------------------------------------------------------------------------------

-- Looks like a launcher's server (control, raw, running, stop) but holds
-- the engine itself; its test hooks are called directly, not over HTTP (a
-- request to itself would wait for the loop it blocks).
InProcess.__index = InProcess

function InProcess.start(o)
  local engine_mod = require("onecli.standin.engine")
  require("onecli.standin.util").seed()
  local opts = {}
  for k, v in pairs(cli.DEFAULTS) do opts[k] = v end
  for k, v in pairs(o) do opts[k] = v end
  opts.max_lifetime = o.max_lifetime or math.huge
  if o.quiet == nil then opts.quiet = true end
  opts.port, opts.gateway_port = o.port or 0, o.gateway_port or 0
  local bad = cli.check(opts)
  if bad then error("onecli.testing.start: " .. bad:gsub("^%-%-", ""), 3) end
  local engine = engine_mod.new(opts)
  local port, err = engine:listen(opts.host, opts.port)
  if not port then error("onecli.testing.start: cannot listen on " .. opts.host .. ": " .. tostring(err), 3) end
  local gw_port, gerr = engine:listen_gateway(opts.host, opts.gateway_port)
  if not gw_port then
    engine:close_all()
    error("onecli.testing.start: cannot listen (gateway) on " .. opts.host .. ": " .. tostring(gerr), 3)
  end
  local srv = setmetatable({ engine = engine, mode = opts.mode, edition = opts.edition, port = port,
    gateway_port = gw_port }, InProcess)
  local origin = format("http://%s:%d", opts.host, port)
  srv.origin, srv.url, srv.gateway_url = origin, origin .. "/v1", format("http://%s:%d", opts.host, gw_port)
  local _, info = srv:control("GET", "/__control/info")
  srv.api_key, srv.org_key, srv.project_id, srv.partner_key = info.api_key, info.org_key, info.project_id,
    info.partner_key
  return setmetatable({ srv = srv }, Server)
end

function InProcess:control(method, path, body)
  local payload = body ~= nil and json.encode(body) or nil
  local res = self.engine.control:handle({ method = method, path = path, body = payload, headers = {},
    header_list = {} })
  local decoded = json.decode(res.body or "")
  if decoded == nil then decoded = res.body end
  return res.status, decoded, res
end

-- An API call (srv:api, srv:seed): handed to the API directly, since a
-- request over HTTP to this process would wait for the loop it blocks.
-- Not in srv:requests().
function InProcess:raw(method, path, headers, body)
  local hmap = {}
  for _, h in ipairs(headers or {}) do hmap[h[1]:lower()] = h[2] end
  local p, q = path:match("^([^?]*)%??(.*)$")
  local res = self.engine.api:handle({ method = method, path = p, query_raw = q ~= "" and q or nil,
    headers = hmap, header_list = headers or {}, body = body })
  return { status = res.status, body = res.body or "", headers = {} }
end

function InProcess:running()
  return not self.stopped
end

function InProcess:stop()
  if self.stopped then return end
  self.stopped = true
  self.engine:close_all()
end

return _M
