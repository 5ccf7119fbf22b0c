-- Start, drive and stop the hostile server (spec/hostile/server.lua) as a
-- background process.
--
--   local hostile = require("hostile.launcher")
--   local srv = hostile.start{ lua = "lua5.4", max_lifetime = 300 }
--   srv.port, srv.control_port, srv.origin ("http://127.0.0.1:PORT"), srv.pid
--   srv:fault("head_rst")            -- every request
--   srv:fault("stall", "/v1/secrets")  -- one path (request-stage faults)
--   srv:reset()                      -- zero the counters, every fault back to "ok"
--   srv:drop()                       -- close every open connection
--   srv:stats() -> { total =, accepted =, verbs = { GET = n, ... },
--                    conns = { { id =, port =, requests =, new = }, ... },
--                    tags = { [tag] = n }, paths = { ["GET /v1/agents"] = n }, log = { ... } }
--   srv:faults() -> { { name =, stage = }, ... }
--   srv:stop()                       -- idempotent; kills the process if STOP does not work
--
-- Every wait is bounded: the control connection has a 5 s timeout, start
-- waits at most `timeout` (10 s) for the port file, stop at most 4 s.
local socket = require("socket")
local net = require("support.net")
local process = require("onecli.standin.process")
local wait_until = process.wait_until

local _M = {}
local Server = {}
Server.__index = Server


local function own_dir()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)[/\\][^/\\]*$") or "."
end

_M.server_path = own_dir() .. "/server.lua"

-- Alive and not a zombie.
_M.alive = process.alive

function _M.start(opts)
  opts = opts or {}
  local port_file, err_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local cmd = table.concat({
    opts.lua or os.getenv("HOSTILE_LUA") or "lua5.4", net.shell_quote(_M.server_path),
    "--port-file", net.shell_quote(port_file),
    "--max-lifetime", tostring(opts.max_lifetime or 300),
    opts.quiet == false and "" or "--quiet",
  }, " ") .. " </dev/null >/dev/null 2>" .. net.shell_quote(err_file) .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local srv = setmetatable({ pid = pid, files = { port_file, port_file .. ".tmp", err_file },
                             err_file = err_file }, Server)
  local ports
  wait_until(opts.timeout or 10, function()
    ports = net.read_file(port_file)
    return (ports and ports:find("\n")) or not (pid and _M.alive(pid))
  end)
  local port, control_port = (ports or ""):match("^(%d+) (%d+)")
  if not port then
    local stderr = net.read_file(err_file) or ""
    srv:stop()
    error("hostile server failed to start (pid " .. tostring(pid) .. "): " .. stderr, 2)
  end
  srv.port, srv.control_port = tonumber(port), tonumber(control_port)
  srv.origin = "http://127.0.0.1:" .. srv.port
  return srv
end

--- Sends one control command; returns its answer lines (without "END"),
-- or nil and a message.
function Server:command(line)
  local sock = socket.tcp()
  sock:settimeout(5)
  local ok, err = sock:connect("127.0.0.1", self.control_port)
  if not ok then
    sock:close()
    return nil, "control connect: " .. tostring(err)
  end
  ok, err = sock:send(line .. "\n")
  if not ok then
    sock:close()
    return nil, "control send: " .. tostring(err)
  end
  local lines = {}
  for _ = 1, 100000 do
    local l, rerr = sock:receive("*l")
    if not l then
      sock:close()
      return nil, "control receive: " .. tostring(rerr)
    end
    if l == "END" then
      sock:close()
      return lines
    end
    lines[#lines + 1] = l
  end
  sock:close()
  return nil, "control: answer too long"
end

local function checked(self, line)
  local lines, err = self:command(line)
  if not lines then error("hostile server: " .. err, 3) end
  if lines[1] and lines[1]:match("^ERR") then
    error("hostile server: " .. line .. ": " .. lines[1], 3)
  end
  return lines
end

function Server:fault(name, scope)
  checked(self, "FAULT " .. (scope or "*") .. " " .. name)
end

function Server:reset() checked(self, "RESET") end
function Server:drop() checked(self, "DROP") end

function Server:faults()
  local list = {}
  for _, l in ipairs(checked(self, "FAULTS")) do
    local name, stage = l:match("^fault (%S+) (%S+)$")
    if name then list[#list + 1] = { name = name, stage = stage } end
  end
  return list
end

function Server:stats()
  local s = { total = 0, accepted = 0, verbs = {}, conns = {}, tags = {}, paths = {}, log = {} }
  for _, l in ipairs(checked(self, "STATS")) do
    local kind, rest = l:match("^(%S+) (.*)$")
    if kind == "total" or kind == "accepted" then
      s[kind] = tonumber(rest)
    elseif kind == "verb" then
      local verb, n = rest:match("^(%S+) (%d+)$")
      s.verbs[verb] = tonumber(n)
    elseif kind == "conn" then
      local id, port, n, new = rest:match("^(%d+) (%d+) (%d+) (%a+)$")
      s.conns[#s.conns + 1] = { id = tonumber(id), port = tonumber(port), requests = tonumber(n),
                                new = new == "new" }
    elseif kind == "tag" then
      local tag, n = rest:match("^(%S+) (%d+)$")
      s.tags[tag] = tonumber(n)
    elseif kind == "path" then
      local key, n = rest:match("^(.-) (%d+)$")
      s.paths[key] = tonumber(n)
    elseif kind == "log" then
      s.log[#s.log + 1] = rest
    end
  end
  return s
end

function Server:running()
  return self.pid ~= nil and _M.alive(self.pid)
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  if self.pid then
    process.stop(self.pid, self.control_port and function() self:command("STOP") end)
  end
  for _, f in ipairs(self.files) do os.remove(f) end
end

return _M
