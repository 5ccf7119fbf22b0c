-- The transport and the retry loop against real sockets: retries and
-- backoff, Retry-After, timeouts, refused and dropped connections, TLS
-- verification, keep-alive, headers, and key redaction.
local onecli = require("onecli")
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")
local net = require("support.net")
local socket = require("socket")

local srv

local function new_client(opts)
  return api.client(srv, opts)
end
local raised = api.raised

-- Counts the requests the server saw for a path.
local function hits(path, method)
  return net.hits(srv, path, method)
end

-- A sleep that records the delays instead of waiting.
local function recording_sleep()
  local delays = {}
  return delays, function(s) delays[#delays + 1] = s end
end

local closed_port = net.closed_port

describe("transport and retries", function()
  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
  end)

  describe("retries", function()
    it("retries a GET after 500s and reports the attempts", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 500, count = 2 })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, max_retries = 2, sleep = sleep })
      assert.is_table(c.agents:list())
      assert.are.equal(3, hits("/v1/agents"))
      assert.are.equal(2, #delays)
      -- exponential with equal jitter: attempt n waits within [d/2, d], d = 0.5 * 2^(n-1)
      assert.is_true(delays[1] >= 0.25 and delays[1] <= 0.5, "delay 1: " .. delays[1])
      assert.is_true(delays[2] >= 0.5 and delays[2] <= 1.0, "delay 2: " .. delays[2])
      c:close()
    end)

    it("gives up after max_retries with err.attempts", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 503, count = 5 })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, max_retries = 2, sleep = sleep })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal(503, err.status)
      assert.is_true(err.retryable)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, hits("/v1/agents"))
      assert.are.equal(2, #delays)
      assert.matches("3 attempts", tostring(err))
      c:close()
    end)

    it("caps the exponential backoff at backoff_max", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 502, count = 6 })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, max_retries = 6, sleep = sleep,
        backoff_base = 1, backoff_max = 2 })
      assert.is_table(c.agents:list())
      for i, d in ipairs(delays) do
        assert.is_true(d <= 2, "delay " .. i .. " is " .. d)
      end
      assert.is_true(delays[6] >= 1, "capped delays keep their jitter floor")
      c:close()
    end)

    it("does not retry 4xx errors", function()
      local c = new_client({ api_key = srv.api_key, max_retries = 3, sleep = error })
      local err = raised(c.agents.delete, c.agents, "00000000-0000-0000-0000-000000000000")
      assert.are.equal(404, err.status)
      assert.are.equal(1, err.attempts)
      c:close()
    end)

    it("does not retry a POST after a 500: it may have been applied", function()
      srv:fault({ path = "/v1/secrets", kind = "status", status = 500 })
      local c = new_client({ api_key = srv.api_key, max_retries = 3, sleep = error })
      local err = raised(c.secrets.create, c.secrets, { name = "s", type = "anthropic",
        value = "sk-ant-123456789", hostPattern = "api.anthropic.com" })
      assert.are.equal(500, err.status)
      assert.is_true(err.retryable)     -- what the docs say ...
      assert.are.equal(1, err.attempts) -- ... but not repeated automatically
      assert.are.equal(1, hits("/v1/secrets", "POST"))
      c:close()
    end)

    it("retries a POST when the server asks with 429 + Retry-After, honouring it", function()
      srv:fault({ path = "/v1/agents", method = "POST", kind = "status", status = 429,
        headers = { ["Retry-After"] = "1" } })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, sleep = sleep })
      local a = c.agents:create({ name = "After 429", identifier = "after-429" })
      assert.are.equal("after-429", a.identifier)
      assert.are.same({ 1 }, delays)
      assert.are.equal(2, hits("/v1/agents", "POST"))
      c:close()
    end)

    it("caps a long Retry-After at max_retry_after", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 503,
        headers = { ["Retry-After"] = "3600" } })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, sleep = sleep, max_retry_after = 2 })
      assert.is_table(c.agents:list())
      assert.are.same({ 2 }, delays)
      c:close()
    end)

    it("reads an HTTP-date Retry-After", function()
      local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 5)
      srv:fault({ path = "/v1/agents", kind = "status", status = 503,
        headers = { ["Retry-After"] = when } })
      local delays, sleep = recording_sleep()
      local c = new_client({ api_key = srv.api_key, sleep = sleep })
      assert.is_table(c.agents:list())
      assert.is_true(delays[1] >= 3 and delays[1] <= 5.5, "delay " .. tostring(delays[1]))
      c:close()
    end)

    it("really sleeps by default (bounded)", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 500 })
      local c = new_client({ api_key = srv.api_key, backoff_base = 0.2 })
      local t0 = core.now()
      assert.is_table(c.agents:list())
      assert.is_true(core.now() - t0 >= 0.1)
      c:close()
    end)
  end)

  describe("failures", function()
    it("a refused connection is a retryable connection_error, retried even for POST", function()
      local delays, sleep = recording_sleep()
      local c = new_client({ url = "http://127.0.0.1:" .. closed_port(), sleep = sleep })
      local err = raised(c.agents.create, c.agents, { name = "x", identifier = "x" })
      assert.is_nil(err.status)
      assert.are.equal("connection_error", err.type)
      assert.are.equal("COULDNT_CONNECT", err.code)
      assert.is_true(err.retryable)
      assert.is_false(err.request_sent)
      assert.are.equal(3, err.attempts)
      assert.are.equal(2, #delays)
      assert.are.equal("POST", err.method)
      assert.are.equal("/v1/agents", err.path)
      c:close()
    end)

    it("a server that never answers is a timeout_error after the timeout", function()
      srv:fault({ path = "/v1/agents", kind = "hang", count = 2 })
      local c = new_client({ api_key = srv.api_key, timeout = 0.5, max_retries = 0 })
      local t0 = core.now()
      local err = raised(c.agents.list, c.agents)
      local elapsed = core.now() - t0
      assert.are.equal("timeout_error", err.type)
      assert.are.equal("OPERATION_TIMEDOUT", err.code)
      assert.is_true(err.retryable)
      assert.is_true(elapsed >= 0.4 and elapsed < 5, "took " .. elapsed .. " s")
      c:close()
    end)

    it("a listener that never accepts times out too", function()
      local listener = assert(socket.bind("127.0.0.1", 0))
      local _, port = listener:getsockname()
      local c = onecli.new({ url = "http://127.0.0.1:" .. port, timeout = 0.3,
        max_retries = 0, getenv = function() end })
      local err = raised(c.agents.list, c.agents)
      listener:close()
      assert.are.equal("timeout_error", err.type)
      c:close()
    end)

    it("a per-call timeout overrides the client's, and a timed-out POST is not retried", function()
      srv:fault({ path = "/v1/agents", method = "POST", kind = "delay", seconds = 2 })
      local c = new_client({ api_key = srv.api_key, timeout = 30, sleep = error })
      local err = raised(c.agents.create, c.agents, { name = "slow", identifier = "slow" },
        { timeout = 0.3 })
      assert.are.equal("timeout_error", err.type)
      assert.are.equal(1, err.attempts)
      c:close()
    end)

    it("a slow answer within the timeout succeeds", function()
      srv:fault({ path = "/v1/agents", kind = "delay", seconds = 0.3 })
      local c = new_client({ api_key = srv.api_key, timeout = 5 })
      assert.is_table(c.agents:list())
      c:close()
    end)

    it("a dropped connection is retried for GET, not for POST", function()
      srv:fault({ path = "/v1/agents", method = "GET", kind = "drop" })
      local c = new_client({ api_key = srv.api_key, sleep = function() end })
      assert.is_table(c.agents:list())
      assert.are.equal(2, hits("/v1/agents", "GET"))
      srv:fault({ path = "/v1/agents", method = "POST", kind = "drop" })
      local err = raised(c.agents.create, c.agents, { name = "d", identifier = "d" })
      assert.are.equal("connection_error", err.type)
      assert.are.equal("GOT_NOTHING", err.code)
      assert.is_true(err.request_sent)
      assert.are.equal(1, err.attempts)
      c:close()
    end)

    it("a proxy's HTML 502 page is an api_error with the reason phrase and a hint", function()
      srv:fault({ path = "/v1/agents", kind = "html502", count = 3 })
      local c = new_client({ api_key = srv.api_key, max_retries = 0 })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal(502, err.status)
      assert.are.equal("api_error", err.type)
      assert.are.equal("Bad Gateway", err.message)
      assert.is_true(err.retryable)
      assert.matches("proxy", err.hint)
      assert.matches("<html>", err.body)
      c:close()
    end)

    it("invalid JSON in a 200 is a decode_error", function()
      srv:fault({ path = "/v1/agents", kind = "bad_json" })
      local c = new_client({ api_key = srv.api_key })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal(200, err.status)
      assert.are.equal("decode_error", err.type)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      c:close()
    end)

    it("hitting the dashboard instead of the API says so", function()
      local c = new_client({ url = srv.origin .. "/dashboard", api_key = srv.api_key })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal(404, err.status)
      assert.are.equal("invalid_request_error", err.type)
      c:close()
    end)
  end)

  describe("TLS", function()
    local dir, server_pid, port

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem "
        .. "-out %s/cert.pem -days 1 -subj /CN=localhost "
        .. "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1"):format(dir, dir)))
      port = closed_port()
      local p = io.popen(("openssl s_server -quiet -www -accept %d -cert %s/cert.pem "
        .. "-key %s/key.pem >/dev/null 2>&1 & echo $!"):format(port, dir, dir))
      server_pid = p:read("*l")
      p:close()
      for _ = 1, 100 do   -- wait (bounded) until it listens
        local s = socket.tcp()
        s:settimeout(0.1)
        if s:connect("127.0.0.1", port) then s:close() break end
        s:close()
        socket.sleep(0.05)
      end
    end)

    teardown(function()
      if server_pid then os.execute("kill " .. server_pid .. " 2>/dev/null") end
      if dir then os.execute("rm -rf " .. dir) end
    end)

    it("refuses a certificate it cannot verify, with tls_error", function()
      local c = onecli.new({ url = "https://127.0.0.1:" .. port, max_retries = 2,
        sleep = error, getenv = function() end })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal("tls_error", err.type)
      assert.is_false(err.retryable)
      assert.are.equal(1, err.attempts)
      c:close()
    end)

    it("trusts it with ca_file", function()
      local c = onecli.new({ url = "https://127.0.0.1:" .. port, ca_file = dir .. "/cert.pem",
        max_retries = 0, getenv = function() end })
      local err = raised(c.agents.list, c.agents)
      -- the handshake passed: openssl's -www page is HTML, not the API
      assert.are_not.equal("tls_error", err.type)
      assert.is_number(err.status)
      c:close()
    end)

    it("skips verification only with insecure = true", function()
      local c = onecli.new({ url = "https://127.0.0.1:" .. port, insecure = true,
        max_retries = 0, getenv = function() end })
      local err = raised(c.agents.list, c.agents)
      assert.are_not.equal("tls_error", err.type)
      c:close()
    end)
  end)

  describe("the wire", function()
    it("reuses one connection across calls (keep-alive)", function()
      local c = new_client({ api_key = srv.api_key })
      for _ = 1, 5 do c.agents:list() end
      assert.are.equal(1, srv:stats().connections)
      assert.are.equal(5, srv:stats().requests)
      c:close()
    end)

    it("sends the User-Agent, Accept, and Content-Type with a body", function()
      local c = new_client({ api_key = srv.api_key, user_agent = "spec/1.0" })
      c.agents:create({ name = "UA", identifier = "ua" })
      local r = srv:requests()[1]
      assert.matches("^lua%-onecli/%d+%.%d+%.%d+ [%w%. %-]+ libcurl/[%d%.]+ spec/1%.0$",
        r.headers["user-agent"])
      assert.are.equal("application/json", r.headers["accept"])
      assert.are.equal("application/json", r.headers["content-type"])
      assert.is_true(r.headers["authorization"] == "Bearer " .. srv.api_key, "no bearer key sent")
      c:close()
    end)

    it("close() is idempotent and later calls raise", function()
      local c = new_client({ api_key = srv.api_key })
      c:close()
      c:close()
      assert.has_error(function() c.agents:list() end)
    end)
  end)

  describe("the API key", function()
    it("never appears in an error, its string form, or a log line, even when echoed", function()
      srv:fault({ path = "/v1/agents", kind = "echo_key" })
      local lines = {}
      local c = new_client({ api_key = srv.api_key, log = function(l) lines[#lines + 1] = l end })
      local err = raised(c.agents.list, c.agents)
      assert.are.equal(401, err.status)
      -- the server really echoed it ...
      assert.matches("Invalid API key or token: ", err.message)
      -- ... and it is masked everywhere
      for k, v in pairs(err) do
        if type(v) == "string" then
          assert.is_nil(v:find(srv.api_key, 1, true), "key in err." .. k)
        end
      end
      assert.is_nil(tostring(err):find(srv.api_key, 1, true))
      assert.is_true(#lines > 0)
      for _, l in ipairs(lines) do
        assert.is_nil(l:find(srv.api_key, 1, true), "key in a log line")
      end
      c:close()
    end)

    it("is masked in transport errors too", function()
      local c = new_client({ url = "http://127.0.0.1:" .. closed_port(), api_key = srv.api_key,
        max_retries = 0 })
      local err = raised(c.agents.list, c.agents)
      assert.is_nil(tostring(err):find(srv.api_key, 1, true))
      c:close()
    end)

    it("logs one line per attempt, with its retry decision", function()
      srv:fault({ path = "/v1/agents", kind = "status", status = 500 })
      local lines = {}
      local c = new_client({ api_key = srv.api_key, sleep = function() end,
        log = function(l) lines[#lines + 1] = l end })
      c.agents:list()
      assert.are.equal(2, #lines)
      assert.matches("^onecli: GET /v1/agents %-> 500 api_error %(request [%w%-]+, %d+ ms, attempt 1 "
                     .. "of 3; retrying in [%d%.]+ s%)$", lines[1])
      assert.matches("^onecli: GET /v1/agents %-> 200 %(request [%w%-]+, %d+ ms, attempt 2 of 3%)$",
                     lines[2])
      c:close()
    end)
  end)
end)
