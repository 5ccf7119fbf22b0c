--- Helpers users reach for, beyond one endpoint per method:
--
--   client.agents:ensure{ name =, identifier = }   create, or get the existing agent
--   onecli.docker_args(config, { dir = "/tmp/x" })  container_config() -> `docker run` args

local core = require("onecli.core")
local client_mod = require("onecli.client")

local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error, tostring
local sort, concat = table.sort, table.concat
local fmt = string.format

local _M = { _VERSION = core._VERSION }

local function without_raise(opts)
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.raise = false
  return o
end

local function find_agent(client, identifier, opts)
  local list = client.agents:list(without_raise(opts))
  if type(list) == "table" then
    for _, a in ipairs(list) do
      if a.identifier == identifier then
        return a
      end
    end
  end
  return nil
end

--- Creates the agent, or returns the one that already has this identifier.
-- Returns agent, created (boolean). A 409 (identifier taken), a 403 (a plan
-- quota, which the server checks only for new identifiers) or an answer
-- lost to a timeout after the create may all mean the agent exists: the
-- list then decides, without raising a second error.
function _M.ensure_agent(ns, spec, opts)
  if type(spec) ~= "table" or type(spec.name) ~= "string" or type(spec.identifier) ~= "string" then
    error("onecli: agents.ensure: needs a table { name = string, identifier = string }", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("onecli: agents.ensure: options must be a table", 2)
  end
  local client = ns._client
  local agent, err = client.agents:create(spec, without_raise(opts))
  if agent then
    return agent, true
  end
  if err.status == 409 or err.status == 403 or err.status == nil or err.status >= 500 then
    local existing = find_agent(client, spec.identifier, opts)
    if existing then
      return existing, false
    end
  end
  return client:_fail(err, opts or {})
end

local function absolute(dir)
  if dir:sub(1, 1) == "/" then
    return dir
  end
  local pwd = os.getenv("PWD")
  if not pwd then
    error("onecli.docker_args: dir must be an absolute path", 3)
  end
  return (pwd:gsub("/$", "")) .. "/" .. dir:gsub("^%./", "")
end

local function write_file(path, content)
  local f, err = io.open(path, "wb")
  if not f then
    error("onecli.docker_args: cannot write " .. path .. ": " .. tostring(err), 3)
  end
  f:write(content)
  f:close()
end

--- Turns a container config (client:container_config()) into `docker run`
-- arguments: "-e NAME=value" for every variable (sorted), and "-v" mounts
-- (read-only) for the gateway CA certificate and the credential stubs,
-- which are written into opts.dir on this host.
--   os.execute("docker run " .. table.concat(quoted(args), " ") .. " image")
function _M.docker_args(config, opts)
  if type(config) ~= "table" or type(config.env) ~= "table" then
    error("onecli.docker_args: expected the table returned by client:container_config()", 2)
  end
  opts = opts or {}
  local args = {}
  local names = {}
  for name in pairs(config.env) do
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    args[#args + 1] = "-e"
    args[#args + 1] = name .. "=" .. tostring(config.env[name])
  end
  local files = {}
  if type(config.caCertificate) == "string" then
    files[#files + 1] = { "onecli-gateway-ca.pem", config.caCertificate,
                          config.caCertificateContainerPath or "/tmp/onecli-gateway-ca.pem" }
  end
  for i, stub in ipairs(config.credentialStubs or {}) do
    local content = stub.content
    if type(content) == "table" then
      content = core.json_encode(content)
    end
    local base = tostring(stub.containerPath):match("([^/]+)$") or "stub"
    files[#files + 1] = { fmt("stub-%d-%s", i, base), tostring(content), stub.containerPath }
  end
  if #files > 0 then
    if type(opts.dir) ~= "string" or opts.dir == "" then
      error("onecli.docker_args: opts.dir (a host directory) is needed to write "
            .. "the CA certificate and credential stubs to mount", 2)
    end
    local dir = absolute(opts.dir):gsub("/$", "")
    for _, f in ipairs(files) do
      local host = dir .. "/" .. f[1]
      if host:find(":", 1, true) or tostring(f[3]):find(":", 1, true) then
        error("onecli.docker_args: paths must not contain ':' (" .. host .. ")", 2)
      end
      write_file(host, f[2])
      args[#args + 1] = "-v"
      args[#args + 1] = concat({ host, f[3], "ro" }, ":")
    end
  end
  return args
end

client_mod.extend("agents", "ensure", _M.ensure_agent)

return _M
