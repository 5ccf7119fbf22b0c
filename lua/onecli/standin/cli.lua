-- The stand-in's command line: the entry script (onecli/standin/server.lua,
-- which the launcher spawns) and the installed command onecli-standin both
-- call main(argv). See USAGE below for the options.
--
-- Imitates OneCLI v1.41.0 (--mode v1: local mode, or with --edition cloud
-- the cloud server of that time: strict keys, /projects, /org/*) or v2.0.1
-- (--mode v2) from memory, plus the gateway's approval endpoints on a
-- second port. Modules (onecli.standin.*): engine (event loop), http (wire
-- format), api (routing, auth), agents, secrets, rules, apps, access,
-- blocklist, setup, org, policy, account and the v2 route modules (routes),
-- gateway and approvals (gateway), control (/__control/* test hooks).
--
-- Ports: the API port is printed and written to --port-file; the gateway
-- port is printed too and written to FILE.gateway (before FILE appears).
-- Exits after --max-lifetime seconds or on POST /__control/shutdown (and,
-- as any process, on SIGINT/SIGTERM). Never prints API keys: log lines
-- (stderr) show method, path and status only; --quiet silences them.
local util = require("onecli.standin.util")
local engine_mod = require("onecli.standin.engine")

local _M = {}

-- The default keys: fixed, so a test can be written against them; pass
-- --api-key for another one.
_M.DEFAULTS = {
  mode = "v1",
  edition = "oss",
  host = "127.0.0.1",
  port = 0,
  gateway_port = 0,
  poll_hold = 30,
  max_lifetime = 600,
  api_key = "oc_" .. string.rep("7e57", 16),
  org_key = "oc_org_" .. string.rep("0a9e", 16),
  -- the partner account's key (v1 cloud edition only)
  partner_key = "oc_partner_" .. string.rep("9a27", 16),
  project_id = "standinprojectaa",
}

local USAGE = [[
usage: %s [--mode v1|v2] [--edition oss|cloud] [--host H] [--port N]
       [--gateway-port N] [--port-file FILE]
       [--api-key oc_<hex>] [--org-key oc_org_<hex>]
       [--project-id ID] [--partner-key oc_partner_<hex>]
       [--server-version V] [--poll-hold S]
       [--licensed] [--runner] [--max-lifetime S] [--quiet] [--help]
]]

local DETAILS = [[

A OneCLI API stand-in for tests: serves the management API from memory on
H:N (default 127.0.0.1, a free port), the gateway's approvals on a second
port, and test hooks under /__control/ (faults, the requests received,
approvals, reset). Prints its URL and the gateway's, then runs until
interrupted (Ctrl-C) or --max-lifetime seconds (%s).

  --mode v1|v2        OneCLI v1.41.0 or v2.0.1 (default %s)
  --edition oss|cloud v1 only: the open-source server (local mode, no key
                      needed) or the cloud server of that time
  --port N            the API port (0: a free one)
  --gateway-port N    the gateway's port (0: a free one)
  --port-file FILE    write the API port to FILE (and the gateway's to
                      FILE.gateway) once listening
  --api-key KEY       the key the server accepts (default oc_7e57...7e57)
  --licensed          v2: an Enterprise licence (ENTERPRISE_ENABLED)
  --runner            v2: a registered runner (hosted agents)
  --poll-hold S       seconds a gateway poll is held (default 30)
  --max-lifetime S    exit after S seconds
  --quiet             no log lines (method, path, status) on stderr
]]

local function usage(name, defaults, short)
  if short then return USAGE:format(name) .. "(--help lists every option)\n" end
  local lifetime = defaults.max_lifetime == math.huge and "default: no limit"
    or ("default " .. tostring(defaults.max_lifetime))
  return USAGE:format(name) .. DETAILS:format(lifetime, defaults.mode)
end

local OPTIONS = {
  ["--mode"] = "mode", ["--host"] = "host", ["--port"] = "port", ["--port-file"] = "port_file",
  ["--api-key"] = "api_key", ["--org-key"] = "org_key", ["--project-id"] = "project_id",
  ["--partner-key"] = "partner_key",
  ["--server-version"] = "version", ["--max-lifetime"] = "max_lifetime",
  ["--edition"] = "edition", ["--gateway-port"] = "gateway_port", ["--poll-hold"] = "poll_hold",
}

-- Returns the options, or nil, message (a usage error), or "help".
function _M.parse_args(argv, defaults)
  local opts = {}
  for k, v in pairs(defaults or _M.DEFAULTS) do opts[k] = v end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if name == "--quiet" then
      opts.quiet = true
    elseif name == "--licensed" then
      opts.licensed = true       -- v2: an Enterprise licence (ENTERPRISE_ENABLED)
    elseif name == "--runner" then
      opts.runner = true         -- v2: a registered runner (hosted agents)
    elseif name == "--help" or name == "-h" then
      return "help"
    elseif OPTIONS[name] then
      local value = inline
      if value == nil then i = i + 1; value = argv[i] end
      if value == nil then return nil, "missing value for " .. name end
      opts[OPTIONS[name]] = value
    else
      return nil, "unknown argument " .. a
    end
    i = i + 1
  end
  return opts
end

-- Returns nil or the message of the first invalid option.
function _M.check(opts)
  if opts.mode ~= "v1" and opts.mode ~= "v2" then return "--mode must be v1 or v2" end
  if opts.edition ~= "oss" and opts.edition ~= "cloud" then return "--edition must be oss or cloud" end
  opts.port = tonumber(opts.port)
  if not opts.port or opts.port < 0 or opts.port > 65535 then return "--port must be 0-65535" end
  opts.gateway_port = tonumber(opts.gateway_port)
  if not opts.gateway_port or opts.gateway_port < 0 or opts.gateway_port > 65535 then
    return "--gateway-port must be 0-65535"
  end
  opts.poll_hold = tonumber(opts.poll_hold)
  if not opts.poll_hold or opts.poll_hold < 0 then return "--poll-hold must be >= 0" end
  opts.max_lifetime = tonumber(opts.max_lifetime)
  if not opts.max_lifetime or opts.max_lifetime <= 0 then return "--max-lifetime must be > 0" end
  if not opts.api_key:match("^oc_%x+$") then return "--api-key must look like oc_<hex>" end
  if not opts.org_key:match("^oc_org_%x+$") then return "--org-key must look like oc_org_<hex>" end
  if not opts.partner_key:match("^oc_partner_%x+$") then return "--partner-key must look like oc_partner_<hex>" end
  if not opts.project_id:match("^[%w-]+$") then return "--project-id must be letters, digits or '-'" end
  return nil
end

local function write_port_file(path, port)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(tostring(port), "\n")
  f:close()
  assert(os.rename(tmp, path))
end

--- Runs the stand-in as a program: parses argv, listens, prints the URLs,
-- serves until its lifetime ends; exits the process (0, or 1 when it cannot
-- listen, 2 on a usage error). name: the program's name in messages;
-- defaults: overrides of DEFAULTS (onecli-standin: no lifetime limit, v2).
function _M.main(argv, name, defaults)
  name = name or "onecli-standin"
  local d = {}
  for k, v in pairs(_M.DEFAULTS) do d[k] = v end
  for k, v in pairs(defaults or {}) do d[k] = v end
  local opts, perr = _M.parse_args(argv or {}, d)
  if opts == "help" then
    io.stdout:write(usage(name, d))
    os.exit(0)
  end
  local bad = perr or _M.check(opts)
  if bad then
    io.stderr:write(name, ": ", bad, "\n", usage(name, d, true))
    os.exit(2)
  end
  util.seed()
  local engine = engine_mod.new(opts)
  local port, err = engine:listen(opts.host, opts.port)
  if not port then
    io.stderr:write(name, ": cannot listen on ", opts.host, ":", tostring(opts.port), ": ",
      tostring(err), "\n")
    os.exit(1)
  end
  local gw_port, gw_err = engine:listen_gateway(opts.host, opts.gateway_port)
  if not gw_port then
    io.stderr:write(name, ": cannot listen (gateway) on ", opts.host, ":", tostring(opts.gateway_port),
      ": ", tostring(gw_err), "\n")
    os.exit(1)
  end
  if opts.port_file then
    write_port_file(opts.port_file .. ".gateway", gw_port)
    write_port_file(opts.port_file, port)
  end
  local edition = opts.mode == "v1" and (", " .. opts.edition .. " edition") or ""
  io.stdout:write(string.format("onecli-standin listening on http://%s:%d (mode %s%s)\n", opts.host, port,
    opts.mode, edition))
  io.stdout:write(string.format("onecli-standin gateway on http://%s:%d\n", opts.host, gw_port))
  io.stdout:flush()
  -- Ctrl-C (SIGINT): the standalone interpreter raises "interrupted!" in
  -- the loop; the sockets are closed and the process ends without a
  -- traceback
  local ok, run_err = pcall(engine.run, engine)
  engine:close_all()
  if not ok then
    if tostring(run_err):find("interrupted", 1, true) then
      io.stderr:write(name, ": interrupted, stopped\n")
      os.exit(0)
    end
    error(run_err, 0)
  end
  os.exit(0)
end

return _M
