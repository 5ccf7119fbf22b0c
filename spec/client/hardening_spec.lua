-- The client against hostile input and answers (issue 7): ids that would
-- change the route, header injection, answers that are not resources,
-- options and arguments that cannot work, a closed client, text that is
-- not UTF-8, shorthand values of the wrong type, credentials in the URL,
-- the call deadline, and connections that close before answering.
-- Every test starts from a reset stand-in and stands alone.
local onecli = require("onecli")
local core = require("onecli.core")
local client_mod = require("onecli.client")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")
local socket = require("socket")

local srv

local function new_client(opts)
  opts = opts or {}
  if opts.api_key == nil then opts.api_key = srv.api_key end
  return api.client(srv, opts)
end

local function sent()
  return #srv:requests()
end

-- Calls fn(...), expects a plain (misuse) error message, returns it.
local function misuse(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  assert.are.equal("string", type(msg), "expected a message, got " .. tostring(msg))
  return msg
end

-- The namespace object and method name of an endpoint of client c.
local function method_of(c, name)
  local obj, method = c, name
  local ns, m = name:match("^(.+)%.([%w_]+)$")
  if ns then
    method = m
    for part in ns:gmatch("[%w_]+") do obj = obj[part] end
  end
  return obj, method
end

-- A transport double: answers from a list, records each request.
local function scripted(answers)
  local t = { seen = {} }
  function t.request(_, req)
    t.seen[#t.seen + 1] = { timeout = req.timeout, connect_timeout = req.connect_timeout,
                            path = req.path, url = req.url, body = req.body }
    local a = answers[math.min(#t.seen, #answers)]
    if type(a) == "function" then return a(req) end
    return a[1], a[2], a[3]
  end
  return t
end

local function recording_sleep()
  local delays = {}
  return delays, function(s) delays[#delays + 1] = s end
end

describe("hostile input and answers", function()
  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)
  teardown(function()
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
  end)

  describe("ids are path segments", function()
    it("'.' and '..' are refused for every path parameter of every endpoint, naming it", function()
      local c = new_client()
      local before, checked = sent(), 0
      for _, ep in ipairs(client_mod.endpoints) do
        for i, param in ipairs(ep.params) do
          for _, bad in ipairs({ ".", ".." }) do
            local args = {}
            for j = 1, #ep.params do args[j] = (j == i) and bad or "x" end
            local obj, method = method_of(c, ep.name)
            local msg = misuse(obj[method], obj, (table.unpack or unpack)(args))
            assert.matches("^onecli: " .. ep.name:gsub("%.", "%%.") .. ": argument #" .. i
                           .. " %(" .. param .. "%) must name a resource: \"" .. bad:gsub("%.", "%%.")
                           .. "\" is a dot segment", msg)
            checked = checked + 1
          end
        end
      end
      assert.is_true(checked > 100, "only " .. checked .. " cases")
      assert.are.equal(before, sent(), "something was sent")
      c:close()
    end)

    it("err.path is the path that was sent", function()
      local c = new_client({ raise = false })
      local _, err = c.agents:get("a b/c?d#e")
      assert.are.equal(404, err.status)
      local log = srv:requests()
      assert.are.equal("/v1/agents/a%20b%2Fc%3Fd%23e", log[#log].path)
      assert.are.equal(log[#log].path, err.path)
      c:close()
    end)

    it("client:request and raw batch calls refuse paths that would change the route", function()
      local c = new_client()
      local before = sent()
      for _, p in ipairs({ "/agents/..", "/agents/.", "/agents/%2e%2E", "/x/.%2e/y", "/agents?x=1",
                           "/agents#f", "/a b", "/a\r\nX-Injected: 1", "/a\\b" }) do
        assert.matches("^onecli: request: path must", misuse(c.request, c, "GET", p))
        assert.matches("call #1", misuse(c.batch, c, { { method = "GET", path = p } }))
      end
      assert.are.equal(before, sent())
      -- dots that are not a whole segment are fine
      local ok, err = pcall(c.request, c, "GET", "/agents/a...b")
      assert.is_false(ok)
      assert.are.equal(404, err.status)
      c:close()
    end)

    it("the libcurl transport sends a path as it is (no dot segment removal)", function()
      local t = core.new_transport({ timeout = 5 })
      local status = t:request({ method = "GET", url = srv.origin .. "/v1/agents/../health",
                                 headers = { Authorization = "Bearer " .. srv.api_key } })
      assert.is_number(status)
      local log = srv:requests()
      assert.are.equal("/v1/agents/../health", log[#log].path)
      t:close()
    end)

    it("integer ids are accepted; numbers that are not exact integers are refused", function()
      local c = new_client({ raise = false })
      local _, err = c.agents:get(42)
      assert.are.equal("/v1/agents/42", err.path)
      _, err = c.agents:get(2 ^ 40)
      assert.are.equal("/v1/agents/1099511627776", err.path)
      assert.matches("argument #1 %(agentId%) must be a non%-empty string or an integer",
                     misuse(c.agents.get, c.agents, 2 ^ 63))
      assert.matches("argument #1 %(agentId%)", misuse(c.agents.get, c.agents, 1.5))
      assert.matches("argument #1 %(agentId%)", misuse(c.agents.get, c.agents, 0 / 0))
      assert.matches("argument #1 %(agentId%)", misuse(c.agents.get, c.agents, math.huge))
      c:close()
    end)

    it("a 1 MB id makes a bounded error and a bounded line", function()
      local c = onecli.new({ url = "http://127.0.0.1:1", api_key = srv.api_key, raise = false,
                             getenv = function() end,
                             transport = scripted({ { 404, {}, '{"error":{"message":"Agent not found",'
                                                      .. '"type":"not_found_error"}}' } }) })
      local _, err = c.agents:get(string.rep("a", 1024 * 1024))
      assert.are.equal(404, err.status)
      assert.is_true(#err.path <= 1024, "path of " .. #err.path)
      assert.is_true(#tostring(err) <= 4096, "tostring of " .. #tostring(err))
      -- and so is a log line about it
      local lines = {}
      c = onecli.new({ url = "http://127.0.0.1:1", raise = false, getenv = function() end,
                       log = function(l) lines[#lines + 1] = l end, max_retries = 0,
                       transport = scripted({ { 404, {}, "" } }) })
      c.agents:get(string.rep("a", 1024 * 1024))
      assert.is_true(#lines > 0)
      for _, l in ipairs(lines) do assert.is_true(#l <= 2048, "a log line of " .. #l) end
    end)
  end)

  describe("requests carry only what the user meant", function()
    it("user_agent cannot inject a header", function()
      for _, ua in ipairs({ "app/1.0\r\nX-Injected: yes", "app/1.0\nX: y", "app\0x", string.rep("u", 300) }) do
        assert.matches("^onecli.new: option 'user_agent' must be one line",
                       misuse(onecli.new, { url = srv.url, user_agent = ua, getenv = function() end }))
      end
      assert.matches("user_agent", misuse(core.new_transport, { user_agent = "a\r\nX-Injected: yes" }))
      local c = new_client({ user_agent = "my-app/1.0 (+https://example.com)" })
      c.agents:list()
      local log = srv:requests()
      assert.is_nil(log[#log].headers["x-injected"])
      assert.matches(" my%-app/1%.0 %(%+https://example%.com%)$", log[#log].headers["user-agent"])
      c:close()
    end)

    it("strings that are not UTF-8 are refused at the call, never sent as invalid JSON", function()
      local c = new_client()
      local before = sent()
      local msg = misuse(c.secrets.create, c.secrets,
                         { name = "n", type = "generic", value = "v\255", hostPattern = "api.example.com" })
      assert.matches("^onecli: secrets.create: argument #1 %(body%): the body cannot be encoded as "
                     .. "JSON: the value at %.value: the string is not valid UTF%-8", msg)
      assert.matches("agents.rename", misuse(c.agents.rename, c.agents, "id", "caf\233"))
      assert.are.equal(before, sent())
      c:close()
    end)

    it("shorthand values are type-checked", function()
      local c = new_client()
      local before = sent()
      assert.matches("argument #2 %(body%): the body must be a table, or a list standing for "
                     .. "{ secretIds = list }, got string",
                     misuse(c.agents.set_secrets, c.agents, "A", "s1"))
      assert.matches("argument #2 %(body%): the body must be a table, or a string standing for "
                     .. "{ name = value }, got number", misuse(c.agents.rename, c.agents, "A", 42))
      assert.matches("a boolean standing for { enabled = value }, got string",
                     misuse(c.apps.toggle_config, c.apps, "github", "false"))
      assert.matches("a string standing for { mode = value }, got boolean",
                     misuse(c.agents.set_secret_mode, c.agents, "A", true))
      assert.are.equal(before, sent())
      -- the right types still go out as one-field bodies
      local agent = c.agents:create({ name = "n", identifier = "shorthand-ok" })
      c.agents:rename(agent.id, "renamed")
      local log = srv:requests()
      assert.are.equal('{"name":"renamed"}', log[#log].body)
      c:close()
    end)

    it("credentials in the URL are never repeated in the error", function()
      local secret = "oc_" .. string.rep("ab12", 16)
      for _, url in ipairs({ "user:" .. secret .. "@127.0.0.1:10256", "http://user:" .. secret .. "@127.0.0.1",
                             secret }) do
        local msg = misuse(onecli.new, { url = url, getenv = function() end })
        assert.is_nil(msg:find("ab12ab12", 1, true), "the key is in the message")
        local env = { ONECLI_URL = url }
        msg = misuse(onecli.new, { getenv = function(k) return env[k] end })
        assert.is_nil(msg:find("ab12ab12", 1, true), "the key (from the environment) is in the message")
      end
    end)
  end)

  describe("answers that are not resources", function()
    it("a 200 whose JSON is a bare string, number, boolean or null is a decode_error", function()
      local c = new_client({ raise = false, max_retries = 0 })
      for _, body in ipairs({ '"hello"', "42", "true", "null", "  false " }) do
        srv:fault({ kind = "status", status = 200, body = body, path = "/v1/agents" })
        local agents, err = c.agents:list()
        assert.is_nil(agents, body)
        assert.are.equal("decode_error", err.type, body)
        assert.are.equal(200, err.status)
        assert.is_false(err.retryable)
      end
      c:close()
    end)
  end)

  describe("options and calls that cannot work are refused where they are made", function()
    it("negative, NaN and infinite numbers in onecli.new", function()
      for _, o in ipairs({ { "backoff_base", -1 }, { "backoff_max", -5 }, { "max_retry_after", -1 },
                           { "timeout", 0 / 0 }, { "timeout", math.huge }, { "connect_timeout", 0 / 0 },
                           { "connect_timeout", -math.huge }, { "deadline", 0 }, { "deadline", 0 / 0 },
                           { "backoff_base", 0 / 0 }, { "max_retries", 0 / 0 }, { "max_retries", math.huge } }) do
        local msg = misuse(onecli.new, { url = srv.url, getenv = function() end, [o[1]] = o[2] })
        assert.matches("^onecli.new: option '" .. o[1] .. "' must be", msg)
      end
    end)

    it("a raise = false client still gets a clean error when the server asks for a wait", function()
      -- these options used to reach the backoff arithmetic and raise a plain string
      local delays, sleep = recording_sleep()
      local c = new_client({ raise = false, backoff_base = 0, backoff_max = 0, max_retry_after = 0,
                             sleep = sleep })
      srv:fault({ kind = "status", status = 429, count = 1, path = "/v1/agents" })
      assert.is_table(c.agents:list())
      assert.are.same({}, delays, "a wait of 0 is no wait")
      c:close()
    end)

    it("per-call numbers are checked at the call, naming the method", function()
      local c = new_client()
      assert.matches("^onecli: agents.list: option 'timeout' must be",
                     misuse(c.agents.list, c.agents, { timeout = 0 / 0 }))
      assert.matches("^onecli: agents.list: option 'deadline' must be",
                     misuse(c.agents.list, c.agents, { deadline = math.huge }))
      assert.matches("^onecli: agents.list: option 'connect_timeout' must be",
                     misuse(c.agents.list, c.agents, { connect_timeout = -1 }))
      c:close()
    end)

    it("a call on a closed client says so at the call", function()
      local c = new_client({ raise = false })
      c:close()
      assert.matches("^onecli: agents.list: the client is closed", misuse(c.agents.list, c.agents))
      assert.matches("^onecli: health: the client is closed", misuse(c.health, c))
      assert.matches("^onecli: request: the client is closed", misuse(c.request, c, "GET", "/agents"))
      assert.matches("^onecli: batch: the client is closed", misuse(c.batch, c, { { "agents.list" } }))
      c:close()   -- still idempotent
    end)

    it("an organization key without a workspace is refused in a batch too", function()
      local c = new_client({ api_key = srv.org_key })
      assert.matches("call #2 %(agents.list%): an organization key",
                     misuse(c.batch, c, { { "user.get" }, { "agents.list" } }))
      local results = c:batch({ { "agents.list", { project_id = srv.project_id } } })
      assert.is_table(results[1])
      assert.is_false(onecli.is_error(results[1]))
      c:close()
    end)
  end)

  describe("a deadline bounds a whole call", function()
    it("cuts each attempt's timeouts to what is left", function()
      local t = scripted({ { 503, {}, "" } })
      local c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                             timeout = 30, connect_timeout = 10, deadline = 2, raise = false,
                             sleep = function() end })
      local _, err = c.agents:list()
      assert.are.equal(503, err.status)
      assert.is_true(t.seen[1].timeout <= 2 and t.seen[1].timeout > 1.5, tostring(t.seen[1].timeout))
      assert.is_true(t.seen[1].connect_timeout <= 2)
      -- without one, the timeouts are the client's
      c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                       timeout = 30, raise = false, max_retries = 0 })
      c.agents:list()
      assert.are.equal(30, t.seen[#t.seen].timeout)
    end)

    it("does not start a wait that would end past it (Retry-After)", function()
      local delays, sleep = recording_sleep()
      local c = new_client({ raise = false, sleep = sleep, deadline = 2 })
      srv:fault({ kind = "status", status = 429, count = 3, path = "/v1/agents",
                  headers = { ["Retry-After"] = "20" } })
      local _, err = c.agents:list()
      assert.are.equal(429, err.status)
      assert.are.equal(20, err.retry_after)
      assert.are.equal(2, err.deadline)
      assert.are.equal(1, err.attempts)
      assert.are.same({}, delays)
      assert.matches("deadline of 2 s reached", tostring(err))
      -- the per-call option overrides the client's
      srv:reset()
      srv:fault({ kind = "status", status = 429, count = 1, path = "/v1/agents",
                  headers = { ["Retry-After"] = "20" } })
      assert.is_table(c.agents:list({ deadline = 60 }))
      assert.are.same({ 20 }, delays)
      c:close()
    end)

    it("ends a call against a silent server on time, attempts and waits together", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 10 })
      local c = new_client({ raise = false, timeout = 30, deadline = 1 })
      local t0 = socket.gettime()
      local _, err = c.agents:list()
      local took = socket.gettime() - t0
      assert.are.equal("timeout_error", err.type)
      assert.are.equal(1, err.deadline)
      assert.is_true(took < 3, "took " .. took .. " s")
      c:close()
    end)

    it("holds in a batch, for every call", function()
      srv:fault({ kind = "hang", path = "/v1/agents", count = 10 })
      local c = new_client({ timeout = 30 })
      local t0 = socket.gettime()
      local results, failed = c:batch({ { "agents.list", { deadline = 1 } }, { "agents.list", { deadline = 1 } },
                                        { "user.get" } }, { concurrency = 2 })
      local took = socket.gettime() - t0
      assert.are.equal(2, failed)
      assert.are.equal("timeout_error", results[1].type)
      assert.are.equal(1, results[1].deadline)
      assert.are.equal(1, results[2].deadline)
      assert.is_string(results[3].email)
      assert.is_true(took < 3.5, "took " .. took .. " s")
      c:close()
    end)

    it("holds in a batch over a transport of its own", function()
      local delays, sleep = recording_sleep()
      local t = scripted({ { 429, { ["retry-after"] = "20" }, "" } })
      local c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                             deadline = 2, sleep = sleep })
      local results, failed = c:batch({ { "agents.list" }, { "agents.list" } })
      assert.are.equal(2, failed)
      assert.are.equal(2, results[1].deadline)
      assert.are.same({}, delays)
    end)
  end)

  describe("a connection that closes before answering", function()
    local function reused_error(req)
      local err = core.transport_error(req.method, req.path, "GOT_NOTHING", "closed",
                                       { request_sent = true, secret = req.secret })
      err.connection_reused = true
      return nil, err
    end

    it("is retried at once, as an attempt that counts", function()
      local delays, sleep = recording_sleep()
      local t = scripted({ reused_error, { 200, {}, "[]" } })
      local c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                             sleep = sleep, max_retries = 2 })
      assert.are.same({}, c.agents:list())
      assert.are.equal(2, #t.seen)
      assert.are.same({}, delays, "no backoff before it")
    end)

    it("is not retried when max_retries = 0, nor for a POST that may have been received", function()
      local t = scripted({ reused_error, { 200, {}, "[]" } })
      local c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                             sleep = function() end, max_retries = 0, raise = false })
      local _, err = c.agents:list()
      assert.are.equal("GOT_NOTHING", err.code)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #t.seen)
      t = scripted({ reused_error, { 201, {}, "{}" } })
      c = onecli.new({ url = "http://127.0.0.1:1", transport = t, getenv = function() end,
                       sleep = function() end, max_retries = 2, raise = false })
      _, err = c.agents:create({ name = "n", identifier = "i" })
      assert.are.equal("GOT_NOTHING", err.code)
      assert.are.equal(1, #t.seen)
    end)
  end)
end)
