-- Being the agent, end to end through the stand-in's gateway (v2): a
-- request of this process (client:as_agent) and of a child process
-- (client:run with curl) reaches an upstream echo server with the
-- credential the gateway injected; the gateway's refusals (policy block,
-- denied or expired approval) are typed error objects; a request held for
-- approval completes after client.approvals:decide in the same test, on
-- luv's loop, which keeps running meanwhile. No assertion message holds
-- the agent's token or the secret.
local launcher = require("onecli.standin.launcher")
local upstream = require("onecli.standin.upstream")
local onecli = require("onecli")
local net = require("support.net")

local has_luv, uv = pcall(require, "luv")
local uvt = has_luv and require("onecli.transport.uv") or nil

local SECRET = "sk-agent-gateway-" .. ("9a7e"):rep(6)
local SLOW = os.getenv("ONECLI_VALGRIND") and 20 or 1

describe("being the agent through the gateway", function()
  local srv, up, client, dir, bundle

  setup(function()
    srv = launcher.start({ mode = "v2" })
    up = upstream.start({ lua = "lua5.4" })
    dir = os.tmpname()
    os.remove(dir)
    assert(net.run_ok("mkdir -p -m 700 " .. net.shell_quote(dir)))
    bundle = dir .. "/bundle.pem"
  end)

  teardown(function()
    if up then up:stop() end
    if srv then srv:stop() end
    if dir then net.run_ok("rm -rf " .. net.shell_quote(dir)) end
  end)

  local function new_client(extra)
    local opts = { url = srv.url, api_key = srv.api_key, gateway_url = srv.gateway_url,
                   max_retries = 0, getenv = function() return nil end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return onecli.new(opts)
  end

  before_each(function()
    srv:reset()
    srv:gateway_settings({ poll_hold = 1, approval_timeout = 180 })
    client = new_client()
    -- the agent, its secret (granted: v2), a block rule and an approval rule
    local bot = client.agents:create({ name = "Bot", identifier = "bot" })
    local secret = client.secrets:create({ name = "upstream key", type = "generic", value = SECRET,
      hostPattern = "127.0.0.1", injectionConfig = { headerName = "X-Api-Key", valueFormat = "Key {value}" } })
    client:request("PUT", "/agents/" .. bot.id .. "/grants/secrets/" .. secret.id)
    client.org.policy:create_rule({ name = "No blocked paths", action = "block",
      targets = { { kind = "network", hostPattern = "127.0.0.1", pathPattern = "/blocked/*" } } })
    client.org.policy:create_rule({ name = "Review held paths", action = "allow", requireApproval = true,
      targets = { { kind = "network", hostPattern = "127.0.0.1", pathPattern = "/held/*" } } })
    client.org.policy:publish()
  end)

  after_each(function()
    client:close()
  end)


  -- No field of err, nor its string form, holds the token or the secret.
  local function clean(err)
    for k, v in pairs(err) do
      assert.is_nil(tostring(v):find("aoc_%x"), "a token in err." .. tostring(k))
      assert.is_nil(tostring(v):find(SECRET, 1, true), "the secret in err." .. tostring(k))
    end
    assert.is_nil(tostring(err):find("aoc_%x"), "a token in tostring(err)")
  end

  it("gets an answer of the upstream, which saw the injected credential and no token", function()
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    local status, headers, body = agent:request("POST", up.url .. "/v1/echo?q=1",
      { headers = { ["Content-Type"] = "application/json" }, body = '{"hello":"world"}' })
    agent:close()
    assert.equal(200, status)
    assert.equal("table", type(headers))
    assert.matches("hello", body, 1, true)
    local seen = assert(up:saw("/v1/echo"))
    assert.equal("POST", seen.method)
    assert.equal("Key " .. SECRET, seen.headers["x-api-key"])
    assert.is_nil(seen.headers["proxy-authorization"])
    assert.is_nil(onecli.json_encode(up:requests()):find("aoc_", 1, true))
  end)

  it("gives a policy_error for a request the policy blocks, and the upstream never sees it", function()
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    local ok, err = pcall(agent.request, agent, "GET", up.url .. "/blocked/thing")
    local status, err2 = agent:request("GET", up.url .. "/blocked/other", { raise = false })
    agent:close()
    assert.is_false(ok)
    assert.is_true(onecli.is_error(err))
    assert.equal("policy_error", err.type)
    assert.equal("blocked_by_policy", err.code)
    assert.equal(403, err.status)
    assert.is_true(err.gateway)
    assert.is_false(err.retryable)
    assert.equal("/blocked/thing", err.path)
    assert.is_nil(status)
    assert.equal("policy_error", err2.type)
    clean(err)
    assert.is_nil(up:saw("/blocked/thing"))
    assert.is_nil(up:saw("/blocked/other"))
  end)

  it("gives an authentication_error when the agent's token is no longer valid", function()
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    client.agents:regenerate_token(client.agents:list()[1].id)
    local _, err = agent:request("GET", up.url .. "/after-rotation", { raise = false })
    agent:close()
    assert.equal("authentication_error", err.type)
    assert.equal("invalid_agent_token", err.code)
    assert.equal(407, err.status)
    clean(err)
    assert.is_nil(up:saw("/after-rotation"))
  end)

  it("types the gateway's refusal of an https:// tunnel too (CONNECT: status and headers, no body)", function()
    client.org.policy:create_rule({ name = "No such host", action = "block",
      targets = { { kind = "network", hostPattern = "blocked.invalid" } } })
    client.org.policy:publish()
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    local _, blocked = agent:request("GET", "https://blocked.invalid/v1/x", { raise = false })
    client.agents:regenerate_token(client.agents:list()[1].id)
    local _, denied = agent:request("GET", "https://127.0.0.1:" .. up.port .. "/tls", { raise = false })
    agent:close()
    assert.equal("policy_error", blocked.type)
    assert.equal("blocked_by_policy", blocked.code)
    assert.equal(403, blocked.status)
    assert.is_true(blocked.gateway)
    assert.equal("/v1/x", blocked.path)
    assert.equal("authentication_error", denied.type)
    assert.equal("invalid_agent_token", denied.code)
    assert.equal(407, denied.status)
    clean(blocked)
    clean(denied)
  end)

  it("keeps a proxy's refused CONNECT in the core's error: proxy_status and proxy_headers", function()
    local core = require("onecli.core")
    local t = core.new_transport({ proxy = "http://x:aoc_" .. ("0"):rep(64) .. "@127.0.0.1:" .. srv.gateway_port,
                                   timeout = 10 })
    local status, err = t:request({ method = "GET", url = "https://127.0.0.1:9/", path = "/" })
    t:close()
    assert.is_nil(status)
    assert.equal(407, err.proxy_status)
    assert.equal("invalid_agent_token", err.proxy_headers["x-onecli-gateway-error"])
    assert.is_false(err.request_sent)
    assert.is_nil(tostring(err):find("aoc_", 1, true))
  end)

  it("gives an approval_expired_error when nobody decides in the gateway's time", function()
    srv:gateway_settings({ approval_timeout = 1 })
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    local t0 = os.time()
    local _, err = agent:request("GET", up.url .. "/held/expire-me", { raise = false })
    agent:close()
    assert.equal("approval_expired_error", err.type)
    assert.equal("approval_expired", err.code)
    assert.equal("string", type(err.approval_id))
    assert.is_true(os.time() - t0 <= 10 * SLOW)
    clean(err)
    assert.is_nil(up:saw("/held/expire-me"))
  end)

  it("refuses a timeout that is not a positive number", function()
    assert.has_error(function() client:as_agent("bot", { ca_bundle = bundle, timeout = 0 }) end,
      "onecli: as_agent: option 'timeout' must be a positive number of seconds")
    local agent = client:as_agent("bot", { ca_bundle = bundle })
    assert.has_error(function() agent:request("GET", up.url .. "/x", { bogus = true }) end,
      "onecli: agent:request: unknown option 'bogus'")
    assert.has_error(function() agent:request("GET", up.url .. "/x y") end)
    agent:close()
    assert.has_error(function() agent:request("GET", up.url .. "/x") end,
      "onecli: agent:request: the agent was closed")
  end)

  describe("on luv's loop", function()
    if not has_luv then
      pending("luv is not installed (apt-get install -y lua-luv)")
      return
    end

    local run_until = require("support.luv").run_until

    -- The pending approval of `path`, looked for while the loop runs
    -- (the held request needs it to reach the gateway).
    local function held(h, path)
      local found
      for _ = 1, 50 * SLOW do
        h:wait(100)
        for _, r in ipairs(client.approvals:pending().requests) do
          if r.path == path then found = r end
        end
        if found then return found end
      end
      error("the gateway never held " .. path)
    end

    local function luv_agent()
      local aclient = uvt.client({ url = srv.url, api_key = srv.api_key, max_retries = 0,
                                   getenv = function() return nil end })
      local agent, err
      local h = aclient:as_agent("bot", { ca_bundle = bundle,
        callback = function(a, e) agent, err = a, e end })
      assert.equal("onecli.Handle", getmetatable(h).__name)
      run_until(function() return agent ~= nil or err ~= nil end, 10 * SLOW)
      assert(agent, "as_agent failed: " .. tostring(err))
      return aclient, agent
    end

    it("waits for a held request without blocking the loop, and completes once it is approved", function()
      local aclient, agent = luv_agent()
      local got, ticks = nil, 0
      local ticker = uv.new_timer()
      ticker:start(10, 10, function() ticks = ticks + 1 end)
      local h = agent:request("GET", up.url .. "/held/approve-me", {
        callback = function(res, err) got = { res = res, err = err } end })
      local pending_one = held(h, "/held/approve-me")
      assert.equal("GET", pending_one.method)
      assert.is_false(h:is_done())
      assert.is_nil(up:saw("/held/approve-me"))
      local ticks_before = ticks
      client.approvals:decide(pending_one.id, "approve")
      run_until(function() return got ~= nil end, 10 * SLOW)
      ticker:close()
      agent:close()
      aclient:close()
      assert.is_truthy(got, "the callback was not called")
      assert.is_nil(got.err)
      assert.equal(200, got.res.status)
      assert.is_true(ticks_before > 0, "the loop's timer did not run while the request was held")
      local seen = assert(up:saw("/held/approve-me"))
      assert.equal("Key " .. SECRET, seen.headers["x-api-key"])
    end)

    it("gives an approval_denied_error with the approval's id once it is denied", function()
      local aclient, agent = luv_agent()
      local got
      local h = agent:request("DELETE", up.url .. "/held/deny-me", {
        callback = function(res, err) got = { res = res, err = err } end })
      local pending_one = held(h, "/held/deny-me")
      client.approvals:decide(pending_one.id, "deny")
      run_until(function() return got ~= nil end, 10 * SLOW)
      agent:close()
      aclient:close()
      assert.is_truthy(got, "the callback was not called")
      assert.is_nil(got.res)
      assert.equal("approval_denied_error", got.err.type)
      assert.equal("approval_denied", got.err.code)
      assert.equal(pending_one.id, got.err.approval_id)
      assert.equal(403, got.err.status)
      clean(got.err)
      assert.is_nil(up:saw("/held/deny-me"))
    end)

    it("suspends the calling coroutine instead, without a callback", function()
      local aclient, agent = luv_agent()
      local result
      uvt.run(function()
        local status, _, body = agent:request("GET", up.url .. "/in-a-coroutine")
        return status, body
      end, function(ok, status, body)
        result = { ok = ok, status = status, body = body }
      end)
      assert.is_nil(result)      -- the request is in flight: run() returned at once
      run_until(function() return result ~= nil end, 10 * SLOW)
      agent:close()
      aclient:close()
      assert.is_true(result.ok, tostring(result.status))
      assert.equal(200, result.status)
      assert.is_truthy(up:saw("/in-a-coroutine"))
    end)

    it("hands an agent that cannot be made to the callback as an error object", function()
      local aclient = uvt.client({ url = srv.url, api_key = srv.api_key, max_retries = 0,
                                   getenv = function() return nil end })
      local got
      aclient:as_agent("nobody-by-that-name", { ca_bundle = bundle,
        callback = function(a, e) got = { agent = a, err = e } end })
      run_until(function() return got ~= nil end, 10 * SLOW)
      aclient:close()
      assert.is_truthy(got, "the callback was not called")
      assert.is_nil(got.agent)
      assert.is_true(onecli.is_error(got.err))
      assert.equal(404, got.err.status)
    end)

    it("says so when called outside a coroutine without a callback", function()
      local aclient, agent = luv_agent()
      local ok, err = pcall(agent.request, agent, "GET", up.url .. "/nowhere")
      agent:close()
      aclient:close()
      assert.is_false(ok)
      assert.matches("coroutine", tostring(err))
    end)
  end)

  describe("a child process run as the agent", function()
    local function has(cmd)
      local p = io.popen("command -v " .. cmd .. " 2>/dev/null")
      local out = p:read("*a")
      p:close()
      return out ~= ""
    end

    it("reaches the upstream through the gateway with curl; the credential never was in its environment", function()
      if not has("curl") then
        pending("curl is not installed")
        return
      end
      -- (an ASan run preloads the sanitizer runtime: curl must not get it)
      local result = client:run({ "sh", "-c",
        'env | sed -e "s/aoc_[0-9a-f]*/<token>/g"; echo ---;'
        .. ' exec env -u LD_PRELOAD curl -s -i --max-time 10 "$0/via-curl"', up.url },
        { agent = "bot", ca_bundle = bundle })
      assert.equal(0, result.status)
      local env_part, curl_part = result.output:match("^(.-)\n%-%-%-\n(.*)$")
      assert.is_truthy(env_part, "no output")
      assert.matches("HTTPS_PROXY=http://x:<token>@", env_part, 1, true)
      assert.matches("HTTP_PROXY=http://x:<token>@", env_part, 1, true)
      assert.matches("CURL_CA_BUNDLE=" .. bundle, env_part, 1, true)
      assert.is_nil(env_part:find(SECRET, 1, true), "the secret was in the child's environment")
      assert.is_nil(env_part:find("ANTHROPIC_API_KEY=", 1, true))
      assert.matches("^HTTP/1%.1 200", curl_part)
      local seen = assert(up:saw("/via-curl"), "the upstream never saw curl's request")
      assert.equal("Key " .. SECRET, seen.headers["x-api-key"])
      assert.is_nil(seen.headers["proxy-authorization"])
    end)

    it("gets the gateway's refusal in the child's output, as curl prints it", function()
      if not has("curl") then
        pending("curl is not installed")
        return
      end
      local result = client:run({ "env", "-u", "LD_PRELOAD", "curl", "-s", "-i", "--max-time", "10",
        up.url .. "/blocked/by-curl" }, { agent = "bot", ca_bundle = bundle })
      assert.equal(0, result.status)
      assert.matches("^HTTP/1%.1 403", result.output)
      assert.matches("X%-OneCLI%-Gateway%-Error: blocked_by_policy", result.output)
      assert.is_nil(up:saw("/blocked/by-curl"))
    end)
  end)
end)
