-- on_request / on_response hooks (client option and per call): one pair
-- per attempt with what a metric or a trace span needs, Authorization
-- masked, and a hook that raises never changing a call.
local launcher = require("onecli.standin.launcher")
local onecli = require("onecli")

describe("hooks", function()
  local srv

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  local function new_client(extra)
    local opts = { url = srv.url, api_key = srv.api_key, backoff_base = 0.01, backoff_max = 0.02,
                   getenv = function() return nil end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return onecli.new(opts)
  end

  -- 20 calls: 5 answered 503 once (retried), 3 missing agents (404), the
  -- rest plain lists.
  local function batch_calls()
    srv:fault({ path = "/v1/health", kind = "status", status = 503, count = 5, retry_after = 0 })
    local calls = {}
    for i = 1, 20 do
      if i <= 5 then
        calls[i] = { "health" }
      elseif i <= 8 then
        calls[i] = { "agents.get", "missing-" .. i }
      else
        calls[i] = { "agents.list" }
      end
    end
    return calls
  end

  it("counts calls, statuses and durations of a batch of 20 through on_response", function()
    local requests, statuses, durations, retried, ids, masked, problems = 0, {}, {}, 0, {}, 0, {}
    local client = new_client({
      on_request = function(info)
        requests = requests + 1
        -- (GET /health goes without credentials)
        if info.headers.Authorization then
          if info.headers.Authorization == "Bearer ***" then masked = masked + 1 end
        elseif info.path ~= "/v1/health" then
          problems[#problems + 1] = "no Authorization on " .. info.path
        end
        if info.batch ~= true then problems[#problems + 1] = "not marked batch" end
      end,
      on_response = function(info)
        statuses[info.status] = (statuses[info.status] or 0) + 1
        durations[#durations + 1] = info.duration
        if info.retry_in then retried = retried + 1 end
        if info.request_id then ids[#ids + 1] = info.request_id end
      end,
    })
    local results, failed = client:batch(batch_calls(), { concurrency = 6 })
    assert.equal(20, #results)
    assert.equal(3, failed)
    assert.equal(25, requests)                   -- 20 calls, 5 of them twice
    assert.same({ [200] = 17, [404] = 3, [503] = 5 }, statuses)
    assert.equal(5, retried)
    assert.equal(25, #durations)
    for _, d in ipairs(durations) do
      assert.is_true(type(d) == "number" and d >= 0 and d < 10)
    end
    assert.equal(25, #ids)
    assert.equal(15, masked)
    assert.same({}, problems)
    client:close()
  end)

  it("a raising hook changes no call's result, and is reported once", function()
    local plain = new_client()
    local expected, expected_failed = plain:batch(batch_calls(), { concurrency = 6 })
    plain:close()
    srv:reset()
    local lines = {}
    local client = new_client({
      log = function(l) lines[#lines + 1] = l end, log_level = "error",
      on_request = function() error("request hook broke") end,
      on_response = function() error("response hook broke") end,
    })
    local results, failed = client:batch(batch_calls(), { concurrency = 6 })
    assert.equal(expected_failed, failed)
    for i = 1, 20 do
      assert.equal(onecli.is_error(expected[i]), onecli.is_error(results[i]), "call " .. i)
      if onecli.is_error(results[i]) then
        assert.equal(expected[i].type, results[i].type)
      end
    end
    -- single calls too, with a per-call hook that raises
    local agents = client.agents:list({ on_response = function() error("call hook broke") end })
    assert.equal("table", type(agents))
    local reported = {}
    for _, l in ipairs(lines) do
      local name = l:match("the (on_%a+) hook raised")
      if name then reported[name] = (reported[name] or 0) + 1 end
    end
    -- once per hook name, though they raised dozens of times
    assert.same({ on_request = 1, on_response = 1 }, reported)
    client:close()
  end)

  it("calls the client's hook then the call's, per attempt, with the retry decision", function()
    srv:fault({ path = "/v1/agents", kind = "status", status = 503, count = 1, retry_after = 0 })
    local seen, problems = {}, {}
    local function check(ok, what)
      if not ok then problems[#problems + 1] = what end
    end
    local client = new_client({
      on_request = function(info) seen[#seen + 1] = "client request " .. info.attempt end,
      on_response = function(info)
        seen[#seen + 1] = ("client response %d %d %s"):format(info.attempt, info.status,
          info.retry_in and "retry" or "final")
      end,
    })
    client.agents:list({
      on_request = function(info)
        seen[#seen + 1] = "call request " .. info.attempt
        check(info.method == "GET", "method")
        check(info.url == srv.url .. "/agents", "url " .. tostring(info.url))
        check(info.path == "/v1/agents", "path")
        check(info.headers.Authorization == "Bearer ***", "authorization masked")
      end,
      on_response = function(info)
        seen[#seen + 1] = "call response " .. info.attempt
        if info.status == 503 then
          check(onecli.is_error(info.error) and info.error.type == "api_error", "503 error")
        else
          check(info.error == nil, "no error")
          check(type(info.request_id) == "string", "request id")
          check(type(info.headers["x-request-id"]) == "string", "headers")
        end
      end,
    })
    assert.same({}, problems)
    assert.same({
      "client request 1", "call request 1", "client response 1 503 retry", "call response 1",
      "client request 2", "call request 2", "client response 2 200 final", "call response 2",
    }, seen)
    client:close()
  end)

  it("never hands a hook the key", function()
    local dump = {}
    local function walk(v, depth)
      if depth > 4 then return end
      if type(v) == "table" then
        for k, x in pairs(v) do walk(k, depth + 1); walk(x, depth + 1) end
      else
        dump[#dump + 1] = tostring(v)
      end
    end
    local client = new_client({
      on_request = function(info) walk(info, 0) end,
      on_response = function(info) walk(info, 0) end,
    })
    client.agents:list()
    pcall(client.agents.get, client.agents, "missing")
    local text = table.concat(dump, "\n")
    assert.is_nil(text:find(srv.api_key, 1, true))
    assert.matches("Bearer %*%*%*", text)
    client:close()
  end)

  it("refuses hooks that are not functions", function()
    assert.has_error(function() new_client({ on_response = true }) end)
    local client = new_client()
    assert.has_error(function() client.agents:list({ on_request = "x" }) end)
    client:close()
  end)
end)
