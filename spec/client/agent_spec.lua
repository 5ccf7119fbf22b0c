-- Being the agent (onecli.agent): client:gateway_env with the Go CLI's
-- `onecli run` semantics, onecli.env_list / env_command, client:run,
-- client:gateway_proxy, and the agent's token kept out of errors.
local launcher = require("onecli.standin.launcher")
local onecli = require("onecli")
local net = require("support.net")

local RUNTIME = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
local BUILD = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. RUNTIME)

describe("being the agent", function()
  local srv, client, dir

  setup(function()
    srv = launcher.start({ mode = "v2" })
    dir = os.tmpname()
    os.remove(dir)
    assert(net.run_ok("mkdir -p -m 700 " .. net.shell_quote(dir)))
  end)

  teardown(function()
    if srv then srv:stop() end
    if dir then net.run_ok("rm -rf " .. net.shell_quote(dir)) end
  end)

  before_each(function()
    srv:reset()
    client = onecli.new({ url = srv.url, api_key = srv.api_key, max_retries = 0,
                          getenv = function() return nil end })
    client.agents:create({ name = "Bot", identifier = "bot" })
  end)

  after_each(function()
    client:close()
  end)

  local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
  end

  local function count_certs(pem)
    local n = 0
    for _ in pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-") do n = n + 1 end
    return n
  end

  -- A container config as the real v2 server gives it: the proxy on
  -- host.docker.internal (the stand-in's own config names 127.0.0.1).
  local function docker_style_config()
    local real = client:container_config({ agent = "bot" })
    local env = {}
    for k, v in pairs(real.env) do
      env[k] = (v:gsub("@127%.0%.0%.1:", "@host.docker.internal:"))
    end
    real.env = env
    real.warnings = { "Agent bot has no secrets assigned" }
    srv:fault({ path = "/v1/container-config", kind = "status", status = 200,
                body = onecli.json_encode(real) })
    return real
  end

  it("gives the environment of `onecli run`: the gateway on the API's host, one CA bundle, no placeholder", function()
    local real = docker_style_config()
    local bundle = dir .. "/bundle.pem"
    local env, warnings = client:gateway_env("bot", { ca_bundle = bundle })
    local api_host = srv.url:match("^http://([^/:]+)")
    for _, name in ipairs({ "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy" }) do
      assert.matches("^http://x:aoc_%x+@" .. api_host:gsub("%p", "%%%0") .. ":%d+$", env[name])
      assert.is_nil(env[name]:find("host.docker.internal", 1, true))
    end
    for _, name in ipairs({ "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                            "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "DENO_CERT" }) do
      assert.equal(bundle, env[name])
    end
    assert.is_nil(env.ANTHROPIC_API_KEY)
    assert.equal("1", env.NODE_USE_ENV_PROXY)
    assert.same({ "Agent bot has no secrets assigned" }, warnings)
    -- the bundle: the system CAs, then the gateway's
    local pem = read(bundle)
    local system = read("/etc/ssl/certs/ca-certificates.crt")
    assert.equal(count_certs(system) + 1, count_certs(pem))
    local gateway_ca = real.caCertificate:gsub("%s+$", "")
    assert.equal(gateway_ca .. "\n", pem:sub(-#gateway_ca - 1))
    assert.equal(system:gsub("%s+$", ""), pem:sub(1, #system:gsub("%s+$", "")))
  end)

  it("takes the gateway host from opts.gateway, and an agent's id as well as its identifier", function()
    docker_style_config()
    local env = client:gateway_env("bot", { gateway = "gw.internal", ca_bundle = dir .. "/b.pem" })
    assert.matches("@gw%.internal:%d+$", env.HTTPS_PROXY)
    local env2 = client:gateway_env("bot", { gateway = "gw.internal:8443", ca_bundle = dir .. "/b.pem" })
    assert.matches("@gw%.internal:8443$", env2.HTTPS_PROXY)
    srv:reset()
    local agent = client.agents:create({ name = "Other", identifier = "other" })
    local by_id = client:gateway_env(agent.id, { ca_bundle = dir .. "/b.pem" })
    local by_ident = client:gateway_env("other", { ca_bundle = dir .. "/b.pem" })
    assert.equal(by_ident.HTTPS_PROXY, by_id.HTTPS_PROXY)
  end)

  it("runs a child with it: no inherited proxy or NO_PROXY, the gateway's instead", function()
    local script = dir .. "/child.lua"
    net.write_file(script, [[
      local onecli = require("onecli")
      local client = onecli.new{ max_retries = 0 }
      local r = client:run({ "sh", "-c",
        'echo "proxy=${HTTPS_PROXY%%@*}@${HTTPS_PROXY#*@}"; echo "no_proxy=${NO_PROXY:-none}";'
        .. ' echo "ca=$SSL_CERT_FILE"; echo "path=${PATH:+set}"' },
        { agent = "bot", ca_bundle = arg[1] })
      io.write(r.output)
      os.exit(r.status)
    ]])
    local cmd = table.concat({
      "env HTTPS_PROXY=http://stale.corp:3128 NO_PROXY=127.0.0.1,localhost",
      "LUA_PATH=" .. net.shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "LUA_CPATH=" .. net.shell_quote(BUILD .. "/?.so;;"),
      "ONECLI_URL=" .. net.shell_quote(srv.url), "ONECLI_API_KEY=" .. net.shell_quote(srv.api_key),
      "timeout 30", RUNTIME, net.shell_quote(script), net.shell_quote(dir .. "/run.pem"),
      "</dev/null 2>&1",
    }, " ")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local gw = srv.gateway_url:match("^http://(.*)$")
    assert.matches("proxy=http://x:aoc_%x+@" .. gw:gsub("%p", "%%%0"), out)
    assert.matches("no_proxy=none", out, 1, true)
    assert.matches("ca=" .. dir .. "/run.pem", out, 1, true)
    assert.matches("path=set", out, 1, true)          -- the rest of the environment is kept
    assert.is_nil(out:find("stale.corp", 1, true))
  end)

  it("quotes an environment and a command for the shell, and lists it for spawners", function()
    local env = { A = "it's", B = "x y" }
    assert.same({ "A=it's", "B=x y" }, onecli.env_list(env))
    local line = onecli.env_command(env, { "printf", "%s|%s", "$A", "$B" }, { complete = true })
    assert.equal("env -i 'A=it'\\''s' 'B=x y' printf '%s|%s' '$A' '$B'", line)
    local stripped = onecli.env_command({ HTTPS_PROXY = "http://gw:1" }, { "true" })
    assert.matches("-u NO_PROXY", stripped, 1, true)
    assert.matches("-u https_proxy", stripped, 1, true)
    assert.is_nil(stripped:find("-u HTTPS_PROXY ", 1, true))
    assert.has_error(function() onecli.env_command({}, {}) end)
  end)

  it("gives the proxy and CA file for the host's own HTTP clients", function()
    local p = client:gateway_proxy("bot", { ca_bundle = dir .. "/p.pem" })
    assert.matches("^http://x:aoc_%x+@", p.proxy)
    assert.equal(dir .. "/p.pem", p.ca_file)
  end)

  it("keeps the agent's token out of errors and their string form", function()
    -- a gateway that is not there: libcurl fails to reach the proxy
    local agent = client:as_agent("bot", { ca_bundle = dir .. "/a.pem", connect_timeout = 2,
                                           gateway = "127.0.0.1:" .. net.closed_port() })
    assert.is_nil(tostring(agent):find("aoc_", 1, true))
    local ok, err = pcall(agent.request, agent, "GET", "http://127.0.0.1:9/x")
    agent:close()
    assert.is_false(ok)
    assert.is_true(onecli.is_error(err))
    for k, v in pairs(err) do
      assert.is_nil(tostring(v):find("aoc_%x"), "the token is in err." .. tostring(k))
    end
    assert.is_nil(tostring(err):find("aoc_%x"))
  end)

  it("sends a request through the gateway as the agent: the upstream gets the injected credential", function()
    local upstream = require("onecli.standin.upstream")
    local up = upstream.start({ lua = "lua5.4" })
    local ok, why = pcall(function()
      local bot = client.agents:list()[1]
      local secret = client.secrets:create({ name = "upstream key", type = "generic",
        value = "sk-injected-value-42", hostPattern = "127.0.0.1",
        injectionConfig = { headerName = "X-Api-Key", valueFormat = "{value}" } })
      client:request("PUT", "/agents/" .. bot.id .. "/grants/secrets/" .. secret.id)
      local agent = client:as_agent("bot", { ca_bundle = dir .. "/e.pem" })
      local status, headers, body = agent:request("GET", up.url .. "/hello")
      agent:close()
      assert.equal(200, status)
      assert.equal("table", type(headers))
      assert.is_string(body)
      local seen = up:requests()
      assert.equal(1, #seen)
      assert.equal("sk-injected-value-42", seen[1].headers["x-api-key"])
      assert.is_nil(seen[1].headers["proxy-authorization"])
    end)
    up:stop()
    assert(ok, why)
  end)

  it("refuses a proxy that is not an http(s) URL, in the core", function()
    assert.has_error(function() require("onecli.core").new_transport({ proxy = "socks5://h:1" }) end,
      "option 'proxy' must be an http:// or https:// URL")
  end)

  it("waits as long as the gateway may hold a request (180 s), not the client's 30 s, unless told", function()
    local agent = client:as_agent("bot", { ca_bundle = dir .. "/t.pem" })
    assert.equal(195, agent.timeout)
    agent:close()
    local short = client:as_agent("bot", { ca_bundle = dir .. "/t.pem", timeout = 5 })
    assert.equal(5, short.timeout)
    short:close()
  end)

  it("refuses bad arguments clearly", function()
    assert.has_error(function() client:gateway_env(42) end,
      "onecli: gateway_env: agent must be an identifier or id (a non-empty string) or nil")
    assert.has_error(function() client:gateway_env("bot", { bogus = 1 }) end,
      "onecli: gateway_env: unknown option 'bogus'")
    assert.has_error(function() client:run({}) end)
    local agent = client:as_agent("bot", { ca_bundle = dir .. "/a.pem" })
    assert.has_error(function() agent:request("get", "http://x") end)
    assert.has_error(function() agent:request("GET", "/relative") end)
    agent:close()
  end)
end)
