--- Helpers users reach for, beyond one endpoint per method:
--
--   client.agents:ensure{ name =, identifier = }   create, or get the existing agent
--   onecli.docker_args(config, { dir = "/tmp/x" })  container_config() -> `docker run` args
--   onecli.docker_command(config, opts, image, ...)  the same, as one sh-safe command
--   onecli.shell_quote(words)                        POSIX sh quoting

local core = require("onecli.core")
local client_mod = require("onecli.client")

local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error, tostring
local tonumber, select, rawget = tonumber, select, rawget
local sort, concat = table.sort, table.concat
local fmt, byte = string.format, string.byte
local floor = math.floor

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

------------------------------------------------------------------------------
-- docker_args: what the Node SDK's applyContainerConfig does
-- (@onecli-sh/sdk 2.2.1), on a config the caller fetched with
-- client:container_config(). Re-implemented from its published code; the
-- spec compares both on the stand-in's configs
-- (spec/fixtures/docker_args/).
------------------------------------------------------------------------------

-- The order the server writes env in (reference §7.9), which is the order
-- the SDK pushes it (Object.entries of the JSON body). A decoded Lua table
-- has lost that order: names a newer server adds come after these, sorted.
local ENV_ORDER = {
  "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NODE_EXTRA_CA_CERTS",
  "NODE_USE_ENV_PROXY", "GIT_TERMINAL_PROMPT", "GIT_HTTP_PROXY_AUTHMETHOD",
  "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY", "CODEX_HOME",
}

-- Where the SDK looks for the host's CA bundle; the first readable wins.
local SYSTEM_CA_PATHS = {
  "/etc/ssl/cert.pem",                      -- macOS
  "/etc/ssl/certs/ca-certificates.crt",     -- Debian, Ubuntu
  "/etc/pki/tls/certs/ca-bundle.crt",       -- RHEL, Fedora
}

local CA_FILE = "onecli-proxy-ca.pem"                 -- host file names: the SDK's
local COMBINED_FILE = "onecli-combined-ca.pem"
local STUB_PREFIX = "onecli-stub-"
local CA_CONTAINER_PATH = "/tmp/onecli-gateway-ca.pem"   -- when the config names none
local COMBINED_CONTAINER_PATH = "/tmp/onecli-combined-ca.pem"
local COMBINED_ENV = { "SSL_CERT_FILE", "DENO_CERT" }
local HOST_MAPPING = "host.docker.internal:host-gateway"

-- docker_args options and the type each takes ("list": strings or a table of them).
local OPTIONS = {
  dir = "string", args = "table", combine_ca_bundle = "boolean",
  add_host_mapping = "boolean", platform = "string", system_ca = "list",
}
local SDK_NAMES = { combineCaBundle = "combine_ca_bundle", addHostMapping = "add_host_mapping" }

local JIT_OS = { Linux = "linux", OSX = "darwin", Windows = "win32", BSD = "freebsd" }

local host_platform_name

-- Node's process.platform names: "linux", "darwin", "win32", …; LuaJIT
-- says (jit.os); plain Lua reads /proc ("linux" or "unknown": only "linux"
-- matters here).
local function host_platform()
  if not host_platform_name then
    local jit = rawget(_G, "jit")
    if package.config:sub(1, 1) == "\\" then
      host_platform_name = "win32"
    elseif type(jit) == "table" and type(jit.os) == "string" then
      host_platform_name = JIT_OS[jit.os] or jit.os:lower()
    else
      local f = io.open("/proc/sys/kernel/ostype", "r")
      local ostype = f and f:read("*l")
      if f then
        f:close()
      end
      host_platform_name = ostype == "Linux" and "linux" or "unknown"
    end
  end
  return host_platform_name
end

local function absolute(dir)
  if dir:sub(1, 1) == "/" then
    return dir
  end
  local pwd = os.getenv("PWD")
  if not pwd then
    return nil, "onecli.docker_args: dir must be an absolute path"
  end
  return (pwd:gsub("/$", "")) .. "/" .. dir:gsub("^%./", "")
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")     -- nil for a directory
  f:close()
  return data
end

local function write_file(path, content)
  local f, err = io.open(path, "wb")
  if not f then
    return nil, "onecli.docker_args: cannot write " .. path .. ": " .. tostring(err)
  end
  local ok, werr = f:write(content)
  f:close()
  if not ok then
    return nil, "onecli.docker_args: cannot write " .. path .. ": " .. tostring(werr)
  end
  return true
end

-- JavaScript's trimEnd, for the ASCII white space a PEM file can end with.
local function trim_end(s)
  local i = #s
  while i > 0 do
    local b = byte(s, i)
    if b ~= 32 and (b < 9 or b > 13) then
      break
    end
    i = i - 1
  end
  return s:sub(1, i)
end

-- An env value as JavaScript's `${value}` writes it; strings, numbers and
-- booleans only (the server sends strings).
local function env_value(name, v)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "number" and v == v and v > -2^53 and v < 2^53 then
    if v == floor(v) then
      return fmt("%d", v)
    end
    for digits = 14, 17 do
      local s = fmt("%." .. digits .. "g", v)
      if tonumber(s) == v then
        return s
      end
    end
  end
  return nil, fmt("onecli.docker_args: env.%s must be a string (got %s)", name,
                  v == core.null and "null" or t)
end

local function check_options(opts)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    return nil, "onecli.docker_args: options must be a table"
  end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then
      local hint = SDK_NAMES[k] and " (the Lua name is " .. SDK_NAMES[k] .. ")" or ""
      return nil, "onecli.docker_args: unknown option " .. tostring(k) .. hint
    end
    if want == "list" then
      local ok = type(v) == "string"
      if type(v) == "table" then
        ok = true
        for _, p in ipairs(v) do
          ok = ok and type(p) == "string"
        end
      end
      if not ok then
        return nil, "onecli.docker_args: " .. k .. " must be a path or a list of paths"
      end
    elseif type(v) ~= want then
      return nil, fmt("onecli.docker_args: %s must be a %s (got %s)", k, want, type(v))
    end
  end
  return opts
end

-- "-e" arguments: known names in the server's order, then the others sorted.
local function env_args(env, out)
  local names, known = {}, {}
  for _, name in ipairs(ENV_ORDER) do
    known[name] = true
    if env[name] ~= nil then
      names[#names + 1] = name
    end
  end
  local rest = {}
  for name in pairs(env) do
    if type(name) ~= "string" then
      return nil, "onecli.docker_args: env names must be strings (got " .. type(name) .. ")"
    end
    if not known[name] then
      rest[#rest + 1] = name
    end
  end
  sort(rest)
  for _, name in ipairs(rest) do
    names[#names + 1] = name
  end
  for _, name in ipairs(names) do
    if name == "" or name:find("[=%z]") then
      return nil, fmt("onecli.docker_args: bad env name %q", name)
    end
    local value, err = env_value(name, env[name])
    if not value then
      return nil, err
    end
    if value:find("%z") then
      return nil, "onecli.docker_args: env." .. name .. " contains a NUL byte"
    end
    out[#out + 1] = "-e"
    out[#out + 1] = name .. "=" .. value
  end
  return out
end

-- The host's CA bundle followed by the gateway's, as the SDK joins them;
-- nil when no bundle is readable (the SDK then skips it silently).
local function combined_bundle(ca, paths)
  if type(paths) == "string" then
    paths = { paths }
  end
  for _, path in ipairs(paths) do
    local system = read_file(path)
    if system then
      return trim_end(system) .. "\n" .. trim_end(ca) .. "\n"
    end
  end
  return nil
end

-- Stub host file: the SDK's name, made unique when two stubs share a base name.
local function stub_name(container_path, i, used)
  local base = container_path:gsub("/+$", ""):match("([^/]*)$")
  if base == "" then
    base = "stub"
  end
  local name = STUB_PREFIX .. base
  if used[name] then
    name = STUB_PREFIX .. i .. "-" .. base
  end
  used[name] = true
  return name
end

-- Returns args (opts.args, appended to, or a new list) | nil, message.
-- Nothing is written or appended unless everything checks.
local function build(config, opts)
  if type(config) ~= "table" or type(config.env) ~= "table" then
    return nil, "onecli.docker_args: expected the table returned by client:container_config()"
  end
  local err
  opts, err = check_options(opts)
  if not opts then
    return nil, err
  end
  local args
  args, err = env_args(config.env, {})
  if not args then
    return nil, err
  end

  -- mounts, in the SDK's order: CA, combined bundle (with its two -e), stubs
  local files = {}      -- { host file name, content, container path }
  local ca = config.caCertificate
  if type(ca) == "string" then
    local ca_path = config.caCertificateContainerPath
    if ca_path == nil or ca_path == core.null then
      ca_path = CA_CONTAINER_PATH
    elseif type(ca_path) ~= "string" or ca_path == "" then
      return nil, "onecli.docker_args: caCertificateContainerPath must be a path"
    end
    files[#files + 1] = { CA_FILE, ca, ca_path }
    if opts.combine_ca_bundle ~= false then
      local bundle = combined_bundle(ca, opts.system_ca or SYSTEM_CA_PATHS)
      if bundle then
        files[#files + 1] = { COMBINED_FILE, bundle, COMBINED_CONTAINER_PATH, env = COMBINED_ENV }
      end
    end
  end
  local stubs = config.credentialStubs
  if stubs ~= nil and stubs ~= core.null then
    if type(stubs) ~= "table" then
      return nil, "onecli.docker_args: credentialStubs must be a list"
    end
    local used = {}
    for i, stub in ipairs(stubs) do
      local path = type(stub) == "table" and stub.containerPath
      if type(path) ~= "string" or path == "" then
        return nil, fmt("onecli.docker_args: credentialStubs[%d].containerPath must be a path", i)
      end
      local content = stub.content
      if type(content) == "table" then
        content = core.json_encode(content)
      elseif type(content) ~= "string" then
        return nil, fmt("onecli.docker_args: credentialStubs[%d].content must be a string", i)
      end
      files[#files + 1] = { stub_name(path, i, used), content, path }
    end
  end

  if #files > 0 then
    if type(opts.dir) ~= "string" or opts.dir == "" then
      return nil, "onecli.docker_args: opts.dir (a host directory) is needed to write "
        .. "the CA certificate and credential stubs to mount"
    end
    local dir
    dir, err = absolute(opts.dir)
    if not dir then
      return nil, err
    end
    dir = dir:gsub("/+$", "")
    for _, f in ipairs(files) do
      f.host = dir .. "/" .. f[1]
      if f.host:find(":", 1, true) or f[3]:find(":", 1, true) then
        return nil, "onecli.docker_args: paths must not contain ':' (" .. f.host .. ":" .. f[3] .. ")"
      end
    end
    for _, f in ipairs(files) do
      local ok, werr = write_file(f.host, f[2])
      if not ok then
        return nil, werr
      end
      for _, name in ipairs(f.env or {}) do
        args[#args + 1] = "-e"
        args[#args + 1] = name .. "=" .. f[3]
      end
      args[#args + 1] = "-v"
      args[#args + 1] = concat({ f.host, f[3], "ro" }, ":")
    end
  end

  if opts.add_host_mapping ~= false and (opts.platform or host_platform()) == "linux" then
    args[#args + 1] = "--add-host"
    args[#args + 1] = HOST_MAPPING
  end

  local out = opts.args
  if not out then
    return args
  end
  for _, a in ipairs(args) do
    out[#out + 1] = a
  end
  return out
end

--- Turns a container config (client:container_config()) into `docker run`
-- arguments, as the Node SDK's applyContainerConfig does:
--   "-e", "NAME=value"   every variable (the server's order, see ENV_ORDER)
--   "-v", "<dir>/onecli-proxy-ca.pem:<caCertificateContainerPath>:ro"
--   "-e", "SSL_CERT_FILE=/tmp/onecli-combined-ca.pem", "-e", "DENO_CERT=…",
--   "-v", "<dir>/onecli-combined-ca.pem:/tmp/onecli-combined-ca.pem:ro"
--                        the host's CA bundle followed by the gateway's CA
--                        (combine_ca_bundle = false: not built; no host
--                        bundle found: skipped)
--   "-v", "<dir>/onecli-stub-<name>:<containerPath>:ro"   each credential stub
--   "--add-host", "host.docker.internal:host-gateway"      on Linux
--                        (add_host_mapping = false: never; platform = "linux"
--                        or another process.platform name: instead of the host's)
-- Files are written into opts.dir (required when there is one to mount).
-- opts.args: a list to append to (returned), like the SDK's args array;
-- opts.system_ca: the host bundle path(s) to try instead of the SDK's list.
-- The agent's gateway token is in the proxy variables' URLs.
-- To print or run the command: onecli.shell_quote(args), onecli.docker_command.
function _M.docker_args(config, opts)
  local args, err = build(config, opts)
  if not args then
    error(err, 2)
  end
  return args
end

------------------------------------------------------------------------------
-- Shell quoting
------------------------------------------------------------------------------

-- Words sh reads as themselves in command position are still quoted when
-- they would be taken as a keyword or an assignment.
local RESERVED = {}
local KEYWORDS = "case do done elif else esac fi for if in then until while function select time"
for w in KEYWORDS:gmatch("%S+") do
  RESERVED[w] = true
end

local function quote_word(s, command_position)
  if s ~= "" and not s:find("[^A-Za-z0-9%%+,./:=@_-]") then
    if not command_position or (not s:find("=", 1, true) and not RESERVED[s]) then
      return s
    end
  end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function quote_all(words, fname)
  if type(words) == "string" then
    words = { words }
  elseif type(words) ~= "table" then
    return nil, fname .. ": expected a string or a list of strings"
  end
  local out = {}
  for i, w in ipairs(words) do
    if type(w) == "number" then
      w = tostring(w)
    elseif type(w) ~= "string" then
      return nil, fmt("%s: word %d is a %s, not a string", fname, i, type(w))
    end
    if w:find("%z") then
      return nil, fmt("%s: word %d contains a NUL byte, which no shell can pass", fname, i)
    end
    out[i] = quote_word(w, i == 1)
  end
  return concat(out, " ")
end

--- One POSIX sh word per argument, joined by spaces: plain words stay as
-- they are, anything else is single-quoted ('it'\''s'). The first word is
-- quoted too if sh would read it as a keyword or an assignment. A string
-- is quoted as one word.
--   os.execute("docker run " .. onecli.shell_quote(args) .. " " .. onecli.shell_quote(image))
function _M.shell_quote(words)
  local s, err = quote_all(words, "onecli.shell_quote")
  if not s then
    error(err, 2)
  end
  return s
end

-- Userinfo passwords in URLs: the agent's token in the proxy variables.
local function masked(s)
  return (s:gsub("(%a[%w+.-]*://[^/@:%s]*:)[^/@%s]+@", "%1***@"))
end

local COMMAND_OPTIONS = { docker = "string", run_args = "table", mask = "boolean" }

--- The whole `docker run` command for a container config:
--   local cmd, argv = onecli.docker_command(config, { dir = dir, run_args = { "--rm", "-i" } },
--                                           "node:20", "node", "agent.js")
-- cmd is one sh-safe string, "docker run <run_args> <docker_args> <image> <command…>";
-- argv the same as a list. Options: those of docker_args (but args), plus
-- docker (the program, "docker"), run_args (words after "run") and mask
-- (true: cmd shows URL passwords, the agent's token, as *** — for printing;
-- argv stays real).
function _M.docker_command(config, opts, image, ...)
  local fname = "onecli.docker_command"
  if opts ~= nil and type(opts) ~= "table" then
    error(fname .. ": options must be a table", 2)
  end
  if type(image) ~= "string" or image == "" then
    error(fname .. ": needs an image name (argument 3)", 2)
  end
  local args_opts, own = {}, {}
  for k, v in pairs(opts or {}) do
    if k == "args" then
      error(fname .. ": use run_args for the words after `run`", 2)
    elseif COMMAND_OPTIONS[k] then
      if type(v) ~= COMMAND_OPTIONS[k] then
        error(fmt("%s: %s must be a %s (got %s)", fname, k, COMMAND_OPTIONS[k], type(v)), 2)
      end
      own[k] = v
    else
      args_opts[k] = v
    end
  end
  local head, tail = { own.docker or "docker", "run" }, { image }
  for _, w in ipairs(own.run_args or {}) do
    head[#head + 1] = w
  end
  for i = 1, select("#", ...) do
    local w = (select(i, ...))
    if w == nil then
      error(fmt("%s: command word %d is nil", fname, i), 2)
    end
    tail[#tail + 1] = w
  end
  -- every word checks before docker_args writes a file
  local _, err = quote_all(head, fname)
  if not err then
    _, err = quote_all(tail, fname)
  end
  if err then
    error(err, 2)
  end
  args_opts.args = head
  local argv
  argv, err = build(config, args_opts)
  if not argv then
    error((err:gsub("^onecli%.docker_args", fname)), 2)
  end
  for _, w in ipairs(tail) do
    argv[#argv + 1] = w
  end
  local shown = argv
  if own.mask then
    shown = {}
    for i, w in ipairs(argv) do
      shown[i] = masked(tostring(w))
    end
  end
  return (quote_all(shown, fname)), argv
end

client_mod.extend("agents", "ensure", _M.ensure_agent)

-- for onecli.agent (a local process's environment): the same bundle
_M.SYSTEM_CA_PATHS = SYSTEM_CA_PATHS
_M.combined_ca_bundle = combined_bundle

return _M
