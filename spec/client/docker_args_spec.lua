-- onecli.docker_args against the Node SDK's applyContainerConfig, and the
-- shell quoting around it (onecli.shell_quote, onecli.docker_command).
--
-- spec/fixtures/docker_args/expected.json is what @onecli-sh/sdk 2.2.1 did
-- with the stand-in's container configs (standin-*.json, recorded bodies),
-- written by running the SDK under node (sdk-args.js there says how to
-- regenerate it). Neither node nor the network is needed here.
local onecli = require("onecli")
local helpers = require("onecli.helpers")

local FIXTURES = "spec/fixtures/docker_args/"
local COMBINED_ENV = { "-e", "SSL_CERT_FILE=/tmp/onecli-combined-ca.pem",
                       "-e", "DENO_CERT=/tmp/onecli-combined-ca.pem" }
local HOST_MAPPING = { "--add-host", "host.docker.internal:host-gateway" }
local PROXY_VARS = { "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy" }
local NO_SYSTEM_CA = { "/nonexistent/onecli-spec/cert.pem" }

local unpack = table.unpack or unpack   -- luacheck: ignore 143

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function config_of(name)
  return onecli.json_decode(read(FIXTURES .. name))
end

local function make_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 '" .. dir .. "'"))
  return dir
end

local function files_in(dir)
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

local function replace_plain(s, from, to)
  local i, j = s:find(from, 1, true)
  if not i then return s end
  return s:sub(1, i - 1) .. to .. s:sub(j + 1)
end

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

-- Runs cmd through /bin/sh and returns the words it printed, each ended by NUL.
local function words_printed(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local words = {}
  for w in out:gmatch("(%Z*)%z") do words[#words + 1] = w end
  return words
end

local expected = onecli.json_decode(read(FIXTURES .. "expected.json"))

-- docker_args options for one recorded case: the SDK's options under their
-- Lua names; the host bundle the node script served as Debian's.
local function options_for(case, dir)
  local system_ca = { "/nonexistent/onecli-spec/cert.pem" }
  if case.system_ca ~= onecli.null then
    system_ca[2] = FIXTURES .. case.system_ca
  end
  local args = {}
  for i, a in ipairs(case.initial_args) do args[i] = a end
  local opts = { dir = dir, platform = case.platform, system_ca = system_ca, args = args }
  if case.options.combineCaBundle ~= nil then opts.combine_ca_bundle = case.options.combineCaBundle end
  if case.options.addHostMapping ~= nil then opts.add_host_mapping = case.options.addHostMapping end
  return opts
end

-- The SDK's arguments with "$DIR" made ours. The one difference: the SDK puts
-- stubs in a subdirectory of the shared temp dir, docker_args flat in dir.
local function sdk_args(case, dir)
  local out = {}
  for i, a in ipairs(case.args) do
    a = replace_plain(a, "$DIR/onecli-stubs/", "$DIR/")
    out[i] = replace_plain(a, "$DIR", dir)
  end
  return out
end

local function sdk_files(case)
  local out = {}
  for name, content in pairs(case.files) do
    out[(name:gsub("^onecli%-stubs/", ""))] = content
  end
  return out
end

describe("onecli.docker_args matches the Node SDK's applyContainerConfig", function()
  local dir
  before_each(function() dir = make_dir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("was recorded from @onecli-sh/sdk 2.2.1 (MIT)", function()
    assert.are.equal("@onecli-sh/sdk 2.2.1", expected.sdk)
    assert.are.equal("MIT", expected.sdk_license)
    assert.is_true(#expected.cases >= 8)
  end)

  for _, case in ipairs(expected.cases) do
    it("for the stand-in's config: " .. case.name, function()
      local opts = options_for(case, dir)
      local args = onecli.docker_args(config_of(case.input), opts)
      assert.are.equal(opts.args, args)                 -- appended to, like the SDK's array
      assert.are.same(sdk_args(case, dir), args)
      local want = sdk_files(case)
      local names = {}
      for name, content in pairs(want) do
        names[#names + 1] = name
        assert.are.equal(content, read(dir .. "/" .. name), name)
      end
      table.sort(names)
      assert.are.same(names, files_in(dir))
    end)
  end

  it("for a live stand-in's container config too", function()
    local ok, launcher = pcall(require, "onecli.standin.launcher")
    if not ok then ok, launcher = pcall(require, "standin.launcher") end
    assert(ok, "no stand-in launcher: " .. tostring(launcher))
    local srv = launcher.start({ mode = "v2" })
    local client = onecli.new({ url = srv.url, api_key = srv.api_key, max_retries = 0,
                                getenv = function() end })
    local ok2, err = pcall(function()
      client.agents:create({ name = "Container bot", identifier = "container-bot" })
      local live = client:container_config({ agent = "container-bot" })
      local recorded = config_of("standin-v2.json")
      local live_proxy, recorded_proxy = live.env.HTTPS_PROXY, recorded.env.HTTPS_PROXY
      assert.matches("^http://x:aoc_%x+@127%.0%.0%.1:%d+$", live_proxy)
      for _, name in ipairs(PROXY_VARS) do
        assert.are.equal(live_proxy, live.env[name])
        recorded.env[name] = live_proxy
      end
      assert.are.same(recorded, live)     -- the recording is still what the stand-in serves

      local case = expected.cases[1]
      assert.are.equal("standin-v2.json", case.input)
      local args = onecli.docker_args(live, options_for(case, dir))
      local want = sdk_args(case, dir)
      for i, a in ipairs(want) do want[i] = replace_plain(a, recorded_proxy, live_proxy) end
      assert.are.same(want, args)
    end)
    client:close()
    srv:stop()
    assert(ok2, err)
  end)
end)

describe("onecli.docker_args", function()
  local dir
  before_each(function() dir = make_dir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local v1 = config_of("standin-v1.json")
  local gateway_ca = v1.caCertificate

  it("writes the host's CA bundle, then the gateway's CA, into one file", function()
    local system = read(FIXTURES .. "system-ca.pem")
    onecli.docker_args(v1, { dir = dir, system_ca = { "/nonexistent/x.pem", FIXTURES .. "system-ca.pem" } })
    local combined = read(dir .. "/onecli-combined-ca.pem")
    local trimmed = system:gsub("[ \n]+$", "")
    assert.are.equal(trimmed .. "\n" .. gateway_ca, combined)
    assert.are.equal(1, select(2, combined:gsub("# ISRG Root X1", "")))
    assert.is_true(combined:find("-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----", 1, true) ~= nil)
    assert.are.equal(gateway_ca, read(dir .. "/onecli-proxy-ca.pem"))
  end)

  it("trims both parts as the SDK does (trimEnd, one newline each)", function()
    local config = { env = {}, caCertificate = "GATEWAY CA\n\n \t\n" }
    onecli.docker_args(config, { dir = dir, system_ca = FIXTURES .. "system-ca.pem" })
    local system = read(FIXTURES .. "system-ca.pem"):gsub("[ \n]+$", "")
    assert.are.equal(system .. "\nGATEWAY CA\n", read(dir .. "/onecli-combined-ca.pem"))
    assert.are.equal(config.caCertificate, read(dir .. "/onecli-proxy-ca.pem"))   -- as given
  end)

  it("finds the host's bundle where the SDK looks for it", function()
    local paths = { "/etc/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt" }
    local found
    for _, p in ipairs(paths) do
      local f = io.open(p, "rb")
      local data = f and f:read("*a")
      if f then f:close() end
      if data then found = data break end
    end
    local args = onecli.docker_args(v1, { dir = dir })
    if not found then
      assert.is_false(contains(args, COMBINED_ENV[2]))
      return
    end
    assert.is_true(contains(args, COMBINED_ENV[2]))
    local combined = read(dir .. "/onecli-combined-ca.pem")
    assert.are.equal(#found:gsub("%s+$", "") + 1 + #gateway_ca, #combined)
    assert.are.equal(gateway_ca, combined:sub(-#gateway_ca))
  end)

  it("leaves the bundle out when asked, or when the host has none", function()
    for _, opts in ipairs({ { combine_ca_bundle = false }, { system_ca = NO_SYSTEM_CA },
                            { system_ca = "/nonexistent/onecli-spec/one.pem" } }) do
      opts.dir = dir
      local args = onecli.docker_args(v1, opts)
      assert.is_false(contains(args, COMBINED_ENV[2]))
      assert.is_false(contains(args, COMBINED_ENV[4]))
      assert.is_false(exists(dir .. "/onecli-combined-ca.pem"))
    end
  end)

  it("maps host.docker.internal on Linux only, unless told not to", function()
    local env_only = { env = { A = "1" } }
    assert.are.same({ "-e", "A=1", unpack(HOST_MAPPING) },
                    onecli.docker_args(env_only, { platform = "linux" }))
    assert.are.same({ "-e", "A=1" }, onecli.docker_args(env_only, { platform = "darwin" }))
    assert.are.same({ "-e", "A=1" }, onecli.docker_args(env_only, { platform = "win32" }))
    assert.are.same({ "-e", "A=1" },
                    onecli.docker_args(env_only, { platform = "linux", add_host_mapping = false }))
    local p = io.popen("uname -s 2>/dev/null")
    local host = p and p:read("*l")
    if p then p:close() end
    local args = onecli.docker_args(env_only)
    assert.are.equal(host == "Linux", contains(args, HOST_MAPPING[2]))
  end)

  it("keeps the server's order for known variables, sorts the rest after them", function()
    local config = { env = { ZED = "z", OPENAI_API_KEY = "placeholder", HTTPS_PROXY = "p", ALPHA = "a",
                             NODE_USE_ENV_PROXY = "1" } }
    assert.are.same({ "-e", "HTTPS_PROXY=p", "-e", "NODE_USE_ENV_PROXY=1", "-e", "OPENAI_API_KEY=placeholder",
                      "-e", "ALPHA=a", "-e", "ZED=z" },
                    onecli.docker_args(config, { platform = "darwin" }))
  end)

  it("writes numbers and booleans as JavaScript would", function()
    assert.are.same({ "-e", "A=1", "-e", "B=true", "-e", "C=0.1" },
                    onecli.docker_args({ env = { A = 1, B = true, C = 0.1 } }, { add_host_mapping = false }))
  end)

  it("encodes a stub given as a table, and keeps stubs with the same name apart", function()
    local config = {
      env = {},
      credentialStubs = {
        { containerPath = "/root/.codex/auth.json", content = { OPENAI_API_KEY = "x" } },
        { containerPath = "/home/agent/.codex/auth.json", content = "{\"second\":true}" },
      },
    }
    local args = onecli.docker_args(config, { dir = dir, add_host_mapping = false })
    assert.are.same({ "-v", dir .. "/onecli-stub-auth.json:/root/.codex/auth.json:ro",
                      "-v", dir .. "/onecli-stub-2-auth.json:/home/agent/.codex/auth.json:ro" }, args)
    assert.are.same({ OPENAI_API_KEY = "x" }, onecli.json_decode(read(dir .. "/onecli-stub-auth.json")))
    assert.are.equal("{\"second\":true}", read(dir .. "/onecli-stub-2-auth.json"))
  end)

  it("mounts the CA at the default path when the config names none", function()
    local args = onecli.docker_args({ env = {}, caCertificate = gateway_ca },
                                    { dir = dir, combine_ca_bundle = false, add_host_mapping = false })
    assert.are.same({ "-v", dir .. "/onecli-proxy-ca.pem:/tmp/onecli-gateway-ca.pem:ro" }, args)
  end)

  it("makes a relative dir absolute", function()
    local pwd = assert(os.getenv("PWD"))
    local rel = "build/docker-args-spec-" .. tostring(os.time()) .. "-" .. math.random(1e6)
    assert(os.execute("mkdir -p '" .. rel .. "'"))
    local ok, args = pcall(onecli.docker_args, { env = {}, caCertificate = gateway_ca },
                           { dir = "./" .. rel, combine_ca_bundle = false, add_host_mapping = false })
    os.execute("rm -rf '" .. rel .. "'")
    assert(ok, args)
    assert.are.equal(pwd:gsub("/$", "") .. "/" .. rel .. "/onecli-proxy-ca.pem:/tmp/onecli-gateway-ca.pem:ro",
                     args[2])
  end)

  describe("refuses bad input, pointing at the caller", function()
    local function fails(pattern, ...)
      local ok, err = pcall(onecli.docker_args, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
      -- the level makes the message name this file, not helpers.lua
      local ok2, err2 = pcall(function(...)
        local r = onecli.docker_args(...)      -- not a tail call: the caller is this line
        return r
      end, ...)
      assert.is_false(ok2)
      assert.matches("docker_args_spec%.lua:%d+:", err2)
    end

    it("a value that is not a container config", function()
      fails("expected the table returned by client:container_config", nil)
      fails("expected the table returned by client:container_config", {})
      fails("expected the table returned by client:container_config", { env = "A=1" })
    end)

    it("bad env names and values", function()
      fails("env%.A must be a string %(got table%)", { env = { A = {} } })
      fails("env%.A must be a string %(got null%)", { env = { A = onecli.null } })
      fails("bad env name \"A=B\"", { env = { ["A=B"] = "1" } })
      fails("bad env name \"\"", { env = { [""] = "1" } })
      fails("env names must be strings", { env = { "A=1" } })
      fails("NUL", { env = { A = "x\0y" } })
    end)

    it("bad options", function()
      fails("options must be a table", { env = {} }, "/tmp")
      fails("unknown option combineCaBundle %(the Lua name is combine_ca_bundle%)",
            { env = {} }, { combineCaBundle = false })
      fails("add_host_mapping must be a boolean", { env = {} }, { add_host_mapping = "no" })
      fails("system_ca must be a path or a list of paths", { env = {} }, { system_ca = { 1 } })
      fails("opts%.dir %(a host directory%) is needed", v1)
      fails("opts%.dir %(a host directory%) is needed", v1, { dir = "" })
      fails("must not contain ':'", v1, { dir = "/tmp/a:b" })
    end)

    it("bad files to mount", function()
      fails("caCertificateContainerPath must be a path",
            { env = {}, caCertificate = "x", caCertificateContainerPath = 7 }, { dir = "/tmp" })
      fails("credentialStubs%[1%]%.containerPath must be a path",
            { env = {}, credentialStubs = { { content = "x" } } }, { dir = "/tmp" })
      fails("credentialStubs%[1%]%.content must be a string",
            { env = {}, credentialStubs = { { containerPath = "/a" } } }, { dir = "/tmp" })
      fails("credentialStubs must be a list", { env = {}, credentialStubs = "x" }, { dir = "/tmp" })
      fails("must not contain ':'", { env = {}, credentialStubs = { { containerPath = "/a:b", content = "" } } },
            { dir = "/tmp" })
      fails("cannot write", { env = {}, caCertificate = "x" }, { dir = "/nonexistent/onecli-spec" })
    end)

    it("and writes or appends nothing then", function()
      local into = { "run" }
      local config = { env = { A = "1" }, caCertificate = gateway_ca,
                       credentialStubs = { { containerPath = "/ok", content = "x" }, { content = "x" } } }
      assert.has_error(function() onecli.docker_args(config, { dir = dir, args = into }) end)
      assert.are.same({ "run" }, into)
      assert.are.same({}, files_in(dir))
    end)
  end)
end)

describe("onecli.shell_quote", function()
  local NASTY = {
    "plain", "", " ", "two words", "it's", "'", "''", "\"double\"", "$HOME", "${x:-y}", "`id`",
    "$(id)", "a\\b", "back\\", "semi;colon", "a&b", "a|b", "<in", ">out", "*", "?", "[a]", "~",
    "~root", "#comment", "!bang", "new\nline", "tab\there", "\r", "-e", "--", "A=1", "=", "%s",
    "ünïcødé", "\255\1\127", "{a,b}", "x=$(touch /nonexistent/onecli-spec)",
  }

  it("round-trips every word through sh", function()
    local words = { "printf", "%s\\0" }
    for _, w in ipairs(NASTY) do words[#words + 1] = w end
    local line = onecli.shell_quote(words)
    assert.are.same(NASTY, words_printed(line))
    -- twice quoted: sh -c '<line>'
    assert.are.same(NASTY, words_printed("sh -c " .. onecli.shell_quote(line)))
  end)

  it("leaves plain words alone and quotes the rest", function()
    assert.are.equal("docker run -e A=1 -v /a/b.pem:/c.pem:ro host.docker.internal:host-gateway",
                     onecli.shell_quote({ "docker", "run", "-e", "A=1", "-v", "/a/b.pem:/c.pem:ro",
                                          "host.docker.internal:host-gateway" }))
    assert.are.equal("''", onecli.shell_quote(""))
    assert.are.equal("'it'\\''s'", onecli.shell_quote("it's"))
    assert.are.equal("echo 'a b' 3", onecli.shell_quote({ "echo", "a b", 3 }))
    assert.are.equal("", onecli.shell_quote({}))
  end)

  it("quotes a first word sh would read as a keyword or an assignment", function()
    assert.are.equal("'if' then", onecli.shell_quote({ "if", "then" }))
    assert.are.equal("'A=1' B=2", onecli.shell_quote({ "A=1", "B=2" }))
    assert.are.equal("'A=1'", onecli.shell_quote("A=1"))
  end)

  it("refuses what no shell word can hold", function()
    assert.has_error(function() onecli.shell_quote(nil) end,
                     "onecli.shell_quote: expected a string or a list of strings")
    assert.has_error(function() onecli.shell_quote({ "a", {} }) end,
                     "onecli.shell_quote: word 2 is a table, not a string")
    assert.has_error(function() onecli.shell_quote("a\0b") end,
                     "onecli.shell_quote: word 1 contains a NUL byte, which no shell can pass")
  end)

  it("is exported from onecli", function()
    assert.are.equal(helpers.shell_quote, onecli.shell_quote)
    assert.are.equal(helpers.docker_command, onecli.docker_command)
  end)
end)

describe("onecli.docker_command", function()
  local dir
  before_each(function() dir = make_dir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local v1 = config_of("standin-v1.json")
  local token = v1.env.HTTPS_PROXY:match("^http://x:([^@]+)@")

  it("is docker run, the run arguments, docker_args, the image and its command", function()
    local opts = { dir = dir, run_args = { "--rm", "-i" }, system_ca = NO_SYSTEM_CA, platform = "linux" }
    local cmd, argv = onecli.docker_command(v1, opts, "node:20", "sh", "-c", "echo \"it's $HOME\"")
    local args = onecli.docker_args(v1, { dir = dir, system_ca = NO_SYSTEM_CA, platform = "linux" })
    local want = { "docker", "run", "--rm", "-i" }
    for _, a in ipairs(args) do want[#want + 1] = a end
    for _, a in ipairs({ "node:20", "sh", "-c", "echo \"it's $HOME\"" }) do want[#want + 1] = a end
    assert.are.same(want, argv)
    assert.are.equal(onecli.shell_quote(argv), cmd)
    -- sh reads cmd back as argv
    assert.are.same(argv, words_printed("set -- " .. cmd .. "; printf '%s\\0' \"$@\""))
  end)

  it("carries the agent's token only in the proxy variables; mask = true hides it", function()
    local opts = { dir = dir, system_ca = NO_SYSTEM_CA }
    local cmd, argv = onecli.docker_command(v1, opts, "alpine")
    for i, a in ipairs(argv) do
      if a:find(token, 1, true) then
        assert.are.equal("-e", argv[i - 1])
        assert.is_true(contains(PROXY_VARS, a:match("^([^=]+)=")))
      end
    end
    assert.is_truthy(cmd:find(token, 1, true))
    opts.mask = true
    local shown, real = onecli.docker_command(v1, opts, "alpine")
    assert.is_nil(shown:find(token, 1, true))
    assert.is_truthy(shown:find("'HTTPS_PROXY=http://x:***@127.0.0.1:", 1, true))
    assert.are.same(argv, real)          -- argv stays runnable
  end)

  it("takes another program", function()
    local cmd = onecli.docker_command({ env = { A = "1" } }, { docker = "podman", platform = "darwin" }, "alpine")
    assert.are.equal("podman run -e A=1 alpine", cmd)
  end)

  it("refuses bad input before writing anything", function()
    local function fails(pattern, ...)
      local ok, err = pcall(function(...)
        local r = onecli.docker_command(...)   -- not a tail call: the caller is this line
        return r
      end, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("docker_args_spec%.lua:%d+:", err)
    end
    fails("needs an image name", v1, { dir = dir })
    fails("needs an image name", v1, { dir = dir }, "")
    fails("options must be a table", v1, "x", "alpine")
    fails("use run_args", v1, { dir = dir, args = {} }, "alpine")
    fails("run_args must be a table", v1, { dir = dir, run_args = "--rm" }, "alpine")
    fails("command word 2 is nil", v1, { dir = dir }, "alpine", "a", nil, "c")
    fails("word 2 is a table", v1, { dir = dir }, "alpine", {})
    fails("onecli%.docker_command: unknown option combineCaBundle", v1, { dir = dir, combineCaBundle = 1 },
          "alpine")
    fails("onecli%.docker_command: expected the table returned by", nil, {}, "alpine")
    assert.are.same({}, files_in(dir))
  end)
end)
