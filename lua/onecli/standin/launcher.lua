-- Start and stop the stand-in server as a background process (what
-- onecli.testing, the public API, is built on; the specs use it directly).
--
--   local launcher = require("onecli.standin.launcher")
--   local srv = launcher.start{ mode = "v2", lua = "luajit", max_lifetime = 300 }
--   srv.url        -- "http://127.0.0.1:PORT/v1"
--   srv.origin     -- "http://127.0.0.1:PORT"
--   srv.gateway_url -- "http://127.0.0.1:GWPORT" (approvals; srv.gateway_port)
--   srv.port, srv.mode, srv.edition, srv.api_key, srv.org_key, srv.project_id, srv.pid
--   srv.partner_key -- v1 cloud edition only (nil otherwise): the partner API's key
--   srv:control(method, path, body_table_or_nil) -> status, decoded JSON
--   srv:raw(method, path, headers, body) -> response (client.request) or nil, err
--   srv:fault{ kind = "status", status = 500, path = "/v1/agents" }
--   srv:fault{ kind = "status", status = 502, path = "/v1/approvals/pending", gateway = true }
--   srv:requests(), srv:stats(), srv:info(), srv:reset()
--   srv:approval{ url = "https://api.github.com/user", expires_in = 5 } -> the approval (with id)
--   srv:approvals()                  -- every approval with state and decisions
--   srv:gateway_settings{ poll_hold = 1 }  -- seconds a poll is held
--   srv:partner_claim(org_id)        -- v1 cloud: mark a partner-created org claimed
--   srv:instance{ licensed = true, runner = true }  -- v2 instance switches
--   srv:stop()     -- idempotent; kills the process if shutdown does not work
--
-- Options of start: mode ("v1"), edition ("oss"; "cloud" = v1 cloud
-- server), lua ("lua5.4": the interpreter that runs the server), max_lifetime (300), host ("127.0.0.1"),
-- port and gateway_port (0: free ports), api_key, org_key, project_id,
-- partner_key, poll_hold (30), quiet (true), timeout (10 s
-- to wait for the port file), licensed and runner (v2: an Enterprise
-- licence, a registered runner; both false, as the recordings; srv:instance
-- changes them, srv:reset() restores them), package_path and
-- package_cpath (set in the server process before its script runs: the
-- caller's own paths when it runs the same Lua).
--
-- The server process runs onecli/standin/server.lua, found on package.path
-- (the checkout's lua/ or an installed tree's share/lua/5.x).
local json = require("onecli.standin.json")
local client = require("onecli.standin.client")
local process = require("onecli.standin.process")

local _M = {}
local Server = {}
Server.__index = Server

local format, tostring, tonumber, setmetatable = string.format, tostring, tonumber, setmetatable
local wait_until = process.wait_until

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- package.searchpath (Lua 5.2+, LuaJIT), done by hand on PUC Lua 5.1.
local function searchpath(name, path)
  if package.searchpath then return (package.searchpath(name, path)) end
  name = name:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local file = template:gsub("%?", name)
    if exists(file) then return file end
  end
  return nil
end

-- The server's entry script: onecli/standin/server.lua on package.path,
-- else beside this file (a launcher loaded some other way).
local function find_server()
  local found = searchpath("onecli.standin.server", package.path)
  if found then return found end
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return (src:match("^(.*)[/\\][^/\\]*$") or ".") .. "/server.lua"
end

_M.server_path = find_server()

local shell_quote, read_file = process.shell_quote, process.read_file

-- Alive and not a zombie (PID 1 in a container may never reap it).
_M.alive = process.alive

-- Leak scanning (.ci/leak-scan.lua, run by .ci/test-all): when the
-- environment variable ONECLI_SPEC_KEYS_FILE names a file, every key this
-- launcher gives a stand-in or reads from one (api_key, org_key,
-- partner_key) is appended to it as "<kind> <key>", so the scanner can look
-- for each key in everything the suite printed. Unset: nothing is written.
local function record_keys(t)
  local path = os.getenv("ONECLI_SPEC_KEYS_FILE")
  if not path or path == "" or type(t) ~= "table" then return end
  local lines = {}
  for _, kind in ipairs({ "api_key", "org_key", "partner_key" }) do
    if type(t[kind]) == "string" and t[kind] ~= "" then lines[#lines + 1] = kind .. " " .. t[kind] .. "\n" end
  end
  local f = #lines > 0 and io.open(path, "a")
  if f then
    f:write(table.concat(lines))
    f:close()
  end
end

local function spawn(opts, port_file, err_file)
  local args = { opts.lua or "lua5.4" }
  local preset = {}
  if opts.package_path then preset[#preset + 1] = format("package.path=%q", opts.package_path) end
  if opts.package_cpath then preset[#preset + 1] = format("package.cpath=%q", opts.package_cpath) end
  if #preset > 0 then args[#args + 1] = "-e " .. shell_quote(table.concat(preset, ";")) end
  for _, a in ipairs({
    shell_quote(_M.server_path),
    "--mode", shell_quote(opts.mode or "v1"),
    "--edition", shell_quote(opts.edition or "oss"),
    "--host", shell_quote(opts.host or "127.0.0.1"),
    "--port", tostring(tonumber(opts.port) or 0), "--port-file", shell_quote(port_file),
    "--gateway-port", tostring(tonumber(opts.gateway_port) or 0),
    "--max-lifetime", tostring(opts.max_lifetime or 300),
  }) do args[#args + 1] = a end
  for _, o in ipairs({ { "api_key", "--api-key" }, { "org_key", "--org-key" }, { "project_id", "--project-id" },
    { "partner_key", "--partner-key" },
    { "poll_hold", "--poll-hold" } }) do
    if opts[o[1]] then args[#args + 1] = o[2] .. " " .. shell_quote(opts[o[1]]) end
  end
  if opts.quiet ~= false then args[#args + 1] = "--quiet" end
  if opts.licensed then args[#args + 1] = "--licensed" end
  if opts.runner then args[#args + 1] = "--runner" end
  local cmd = table.concat(args, " ") .. " </dev/null >/dev/null 2>" .. shell_quote(err_file) .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = p:read("*l")
  p:close()
  return tonumber(pid)
end

function _M.start(opts)
  opts = opts or {}
  record_keys(opts)   -- leak scanning, see record_keys
  local port_file, err_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local pid = spawn(opts, port_file, err_file)
  local srv = setmetatable({
    pid = pid, mode = opts.mode or "v1", edition = opts.edition or "oss", host = opts.host or "127.0.0.1",
    files = { port_file, port_file .. ".tmp", port_file .. ".gateway", port_file .. ".gateway.tmp", err_file },
    err_file = err_file,
  }, Server)
  local port
  wait_until(opts.timeout or 10, function()
    port = tonumber(read_file(port_file) or "")
    return port ~= nil or not (pid and _M.alive(pid))
  end)
  if not port then
    local stderr = read_file(err_file) or ""
    srv:stop()
    error(format("onecli stand-in failed to start (pid %s): %s", tostring(pid), stderr), 2)
  end
  srv.port = port
  srv.origin = format("http://%s:%d", srv.host, port)
  srv.url = srv.origin .. "/v1"
  local status, info = srv:info()
  if status ~= 200 then
    srv:stop()
    error("onecli stand-in does not answer /__control/info: " .. tostring(status), 2)
  end
  record_keys(info)   -- leak scanning, see record_keys
  srv.api_key, srv.org_key, srv.project_id = info.api_key, info.org_key, info.project_id
  srv.partner_key = info.partner_key
  srv.gateway_port = tonumber(info.gateway_port) or tonumber(read_file(port_file .. ".gateway") or "")
  srv.gateway_url = srv.gateway_port and format("http://%s:%d", srv.host, srv.gateway_port)
  return srv
end

-- Raw control call; returns status, decoded JSON (or raw body), response.
function Server:control(method, path, body)
  local res, err = client.request(self.port, {
    host = self.host, method = method, path = path, timeout = 5,
    headers = body ~= nil and { { "Content-Type", "application/json" } } or nil,
    body = body ~= nil and json.encode(body) or nil,
  })
  if not res then return nil, err end
  local decoded = json.decode(res.body)
  if decoded == nil then decoded = res.body end
  return res.status, decoded, res
end

local function checked(self, method, path, body)
  local status, data = self:control(method, path, body)
  if not status or status >= 300 then
    error(format("stand-in control %s %s failed: %s %s", method, path, tostring(status),
      type(data) == "table" and json.encode(data) or tostring(data)), 3)
  end
  return data
end

-- One request to the API port (a fresh connection, Connection: close);
-- returns the response (status, headers: lower-case map, body) or nil, err.
function Server:raw(method, path, headers, body)
  return client.request(self.port, { host = self.host, method = method, path = path, headers = headers,
    body = body, timeout = 10 })
end

function Server:fault(tbl) return checked(self, "POST", "/__control/faults", tbl) end
function Server:requests() return checked(self, "GET", "/__control/requests") end
function Server:stats() return checked(self, "GET", "/__control/stats") end
function Server:reset()
  checked(self, "POST", "/__control/reset")
  local info = checked(self, "GET", "/__control/info")
  record_keys(info)   -- leak scanning, see record_keys
  self.api_key, self.partner_key = info.api_key, info.partner_key
  return info
end
function Server:info() return self:control("GET", "/__control/info") end
function Server:approval(tbl) return checked(self, "POST", "/__control/approvals", tbl or json.obj()) end
function Server:approvals() return checked(self, "GET", "/__control/approvals") end
function Server:gateway_settings(tbl)
  return checked(self, "POST", "/__control/approvals/settings", tbl or json.obj())
end

-- v2 instance switches: { licensed = bool?, runner = bool? }; returns both.
function Server:instance(tbl)
  return checked(self, "POST", "/__control/instance", tbl or json.obj())
end

function Server:partner_claim(org_id)
  return checked(self, "POST", "/__control/partner/claim", { orgId = org_id })
end

function Server:running()
  return self.pid ~= nil and _M.alive(self.pid)
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    process.stop(self.pid, self.port and function() self:control("POST", "/__control/shutdown") end)
  end
  for _, f in ipairs(self.files) do os.remove(f) end
end

return _M
