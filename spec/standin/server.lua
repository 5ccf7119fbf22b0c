-- OneCLI API stand-in server (for tests and demos).
--
--   lua5.4 spec/standin/server.lua [--mode v1|v2] [--edition oss|cloud]
--       [--host 127.0.0.1] [--port 0] [--gateway-port 0] [--port-file FILE]
--       [--api-key oc_<64 hex>] [--org-key oc_org_<64 hex>]
--       [--project-id <16 lowercase letters>] [--partner-key oc_partner_<64 hex>]
--       [--server-version STRING]
--       [--poll-hold SECONDS] [--max-lifetime SECONDS] [--quiet]
--
-- Imitates OneCLI v1.41.0 (--mode v1: local mode, or with --edition cloud
-- the cloud server of that time: strict keys, /projects, /org/*) or v2.0.1
-- (--mode v2) from memory, plus the gateway's approval endpoints on a
-- second port. Modules (spec/standin/): engine.lua (event loop), http.lua
-- (wire format), api.lua (routing/auth), agents, secrets, rules, apps,
-- access, blocklist, setup, org, policy, account (routes), gateway.lua and
-- approvals.lua (gateway), control.lua (/__control/* test hooks).
--
-- Ports: the API port is printed and written to --port-file; the gateway
-- port is printed too and written to FILE.gateway (before FILE appears).
-- Exits after --max-lifetime seconds (default 600) or on
-- POST /__control/shutdown. Never prints API keys: log lines (stderr) show
-- method, path and status only; --quiet silences them.

local script_dir = (arg and arg[0] or ""):match("^(.*)[/\\][^/\\]*$") or "."
package.path = script_dir .. "/../?.lua;" .. package.path

local util = require("standin.util")
local engine_mod = require("standin.engine")

local DEFAULTS = {
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
usage: server.lua [--mode v1|v2] [--edition oss|cloud] [--host H] [--port N]
                  [--gateway-port N] [--port-file FILE]
                  [--api-key oc_<64 hex>] [--org-key oc_org_<64 hex>]
                  [--project-id ID] [--partner-key oc_partner_<64 hex>]
                  [--server-version V] [--poll-hold S]
                  [--licensed] [--runner] [--max-lifetime S] [--quiet]
]]

local function die(msg)
  io.stderr:write("onecli-standin: ", msg, "\n", USAGE)
  os.exit(2)
end

local OPTIONS = {
  ["--mode"] = "mode", ["--host"] = "host", ["--port"] = "port", ["--port-file"] = "port_file",
  ["--api-key"] = "api_key", ["--org-key"] = "org_key", ["--project-id"] = "project_id",
  ["--partner-key"] = "partner_key",
  ["--server-version"] = "version", ["--max-lifetime"] = "max_lifetime",
  ["--edition"] = "edition", ["--gateway-port"] = "gateway_port", ["--poll-hold"] = "poll_hold",
}

local function parse_args(argv)
  local opts = {}
  for k, v in pairs(DEFAULTS) do opts[k] = v end
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
      io.stdout:write(USAGE)
      os.exit(0)
    elseif OPTIONS[name] then
      local value = inline
      if value == nil then i = i + 1; value = argv[i] end
      if value == nil then die("missing value for " .. name) end
      opts[OPTIONS[name]] = value
    else
      die("unknown argument " .. a)
    end
    i = i + 1
  end
  return opts
end

local function check(opts)
  if opts.mode ~= "v1" and opts.mode ~= "v2" then die("--mode must be v1 or v2") end
  if opts.edition ~= "oss" and opts.edition ~= "cloud" then die("--edition must be oss or cloud") end
  opts.port = tonumber(opts.port)
  if not opts.port or opts.port < 0 or opts.port > 65535 then die("--port must be 0-65535") end
  opts.gateway_port = tonumber(opts.gateway_port)
  if not opts.gateway_port or opts.gateway_port < 0 or opts.gateway_port > 65535 then
    die("--gateway-port must be 0-65535")
  end
  opts.poll_hold = tonumber(opts.poll_hold)
  if not opts.poll_hold or opts.poll_hold < 0 then die("--poll-hold must be >= 0") end
  opts.max_lifetime = tonumber(opts.max_lifetime)
  if not opts.max_lifetime or opts.max_lifetime <= 0 then die("--max-lifetime must be > 0") end
  if not opts.api_key:match("^oc_%x+$") then die("--api-key must look like oc_<hex>") end
  if not opts.org_key:match("^oc_org_%x+$") then die("--org-key must look like oc_org_<hex>") end
  if not opts.partner_key:match("^oc_partner_%x+$") then die("--partner-key must look like oc_partner_<hex>") end
  if not opts.project_id:match("^[%w-]+$") then die("--project-id must be letters, digits or '-'") end
end

local function write_port_file(path, port)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(tostring(port), "\n")
  f:close()
  assert(os.rename(tmp, path))
end

local function main(argv)
  local opts = parse_args(argv)
  check(opts)
  util.seed()
  local engine = engine_mod.new(opts)
  local port, err = engine:listen(opts.host, opts.port)
  if not port then
    io.stderr:write("onecli-standin: cannot listen on ", opts.host, ":", tostring(opts.port), ": ",
      tostring(err), "\n")
    os.exit(1)
  end
  local gw_port, gw_err = engine:listen_gateway(opts.host, opts.gateway_port)
  if not gw_port then
    io.stderr:write("onecli-standin: cannot listen (gateway) on ", opts.host, ":", tostring(opts.gateway_port),
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
  engine:run()
  os.exit(0)
end

main(arg or {})
