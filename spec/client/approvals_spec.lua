-- The approvals handler loop, end to end against the stand-in's gateway:
-- several pending requests, a handler that fails once, a request that
-- expires before its decision (410), one left for a human, and stop().
local launcher = require("onecli.standin.launcher")
local api = require("support.api")
local core = require("onecli.core")

describe("client.approvals", function()
  local srv, client

  setup(function()
    srv = launcher.start({ mode = "v2" })
    srv:gateway_settings({ poll_hold = 1 })
    client = api.client(srv, { api_key = srv.api_key, max_retries = 0, backoff_base = 0.05 })
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)
  before_each(function()
    srv:reset()
    srv:gateway_settings({ poll_hold = 1 })
  end)

  it("logs a handler that raised, with the request it was handling (never silent)", function()
    local a = srv:approval({ method = "POST", url = "https://api.example.com/v1/charge?token=tok_secret_99" })
    local lines = {}
    local logged = api.client(srv, { api_key = srv.api_key, max_retries = 0, backoff_base = 0.05,
      log = function(l) lines[#lines + 1] = l end, log_level = "error" })
    local runner = logged.approvals:runner(function() error("handler boom") end,
      { max_polls = 1 })
    local stats = runner:run()
    logged:close()
    assert.are.equal(1, stats.errors)
    assert.are.equal(1, #lines, table.concat(lines, "\n"))
    assert.matches("approvals: handling request " .. a.id .. " (POST https://api.example.com/v1/charge?...",
                   lines[1], 1, true)
    assert.matches("handler boom", lines[1], 1, true)
    assert.is_nil(lines[1]:find("tok_secret_99", 1, true))
    assert.is_nil(lines[1]:find(srv.api_key, 1, true))

    -- a client that logs nothing, and no on_error: the host's default sink (stderr)
    srv:reset()
    srv:gateway_settings({ poll_hold = 1 })
    srv:approval({ method = "GET", url = "https://api.example.com/v1/me" })
    local written = {}
    local real = io.stderr
    -- luacheck: push ignore 122
    io.stderr = { write = function(_, ...) for _, x in ipairs({ ... }) do written[#written + 1] = x end end }
    -- luacheck: pop
    local quiet = api.client(srv, { api_key = srv.api_key, max_retries = 0, backoff_base = 0.05 })
    local ok, err = pcall(function()
      return quiet.approvals:runner(function() error("quiet boom") end, { max_polls = 1 }):run()
    end)
    io.stderr = real -- luacheck: ignore 122
    quiet:close()
    assert.is_true(ok, tostring(err))
    local text = table.concat(written)
    assert.matches("onecli: approvals: handling request .* %(GET https://api%.example%.com/v1/me, agent ", text)
    assert.matches("quiet boom", text, 1, true)
  end)

  it("finds the gateway through GET /gateway-url", function()
    assert.are.equal(srv.gateway_url, client:gateway_origin())
  end)

  it("pending waits for the hold time when nothing is pending, then answers empty", function()
    local t0 = core.now()
    local r = client.approvals:pending()
    assert.are.same({}, r.requests)
    assert.is_true(core.now() - t0 >= 0.5)
  end)

  it("decide: a gone request is a 404 with the gateway's code", function()
    local err = api.raised(client.approvals.decide, client.approvals, "nope", "approve")
    assert.are.equal(404, err.status)
    assert.are.equal("approval_not_found", err.code)
    assert.are.equal("not_found_error", err.type)
    assert.has_error(function() client.approvals:decide("x") end)   -- decision required
  end)

  it("runs a handler over several requests until stopped", function()
    local a = srv:approval({ method = "GET", url = "https://api.github.com/user" })
    local b = srv:approval({ method = "POST", url = "https://api.github.com/repos" })
    local c = srv:approval({ method = "DELETE", url = "https://api.github.com/repos/x", expires_in = 1 })
    local d = srv:approval({ method = "PUT", url = "https://api.github.com/human" })
    local calls = { [a.id] = 0, [b.id] = 0, [c.id] = 0, [d.id] = 0 }
    local errors = {}
    local runner
    runner = client.approvals:runner(function(request)
      calls[request.id] = calls[request.id] + 1
      if request.id == b.id and calls[b.id] == 1 then
        error("the handler fails once")
      elseif request.id == c.id then
        core.sleep(1.5)                 -- too slow: the request expires meanwhile
        return "approve"
      elseif request.id == d.id then
        return nil                      -- leave it for a human
      end
      return request.method == "GET"    -- true = approve, false = deny
    end, {
      max_polls = 20,
      on_error = function(err) errors[#errors + 1] = tostring(err) end,
      stop = function()
        return calls[a.id] >= 1 and calls[b.id] >= 2 and calls[c.id] >= 1 and calls[d.id] >= 1
      end,
    })
    local stats = runner:run()

    assert.are.equal(1, calls[a.id])
    assert.are.equal(2, calls[b.id])    -- handed again after failing
    assert.are.equal(1, calls[c.id])
    assert.are.equal(1, calls[d.id])    -- never again: it was left undecided
    assert.are.equal(1, stats.approved)
    assert.are.equal(1, stats.denied)
    assert.are.equal(1, stats.expired)
    assert.are.equal(1, stats.skipped)
    assert.is_true(stats.polls < 20)
    assert.matches("the handler fails once", errors[1])

    local state = {}
    for _, x in ipairs(srv:approvals()) do state[x.id] = x end
    assert.are.equal("approved", state[a.id].state)
    assert.are.equal("denied", state[b.id].state)
    assert.are.equal("expired", state[c.id].state)
    assert.are.equal("pending", state[d.id].state)

    -- after d was left undecided, later polls excluded it
    local excluded = false
    for _, r in ipairs(srv:requests()) do
      if r.gateway and r.path:find("/approvals/pending", 1, true) and r.query
          and r.query:find(d.id, 1, true) then
        excluded = true
      end
    end
    assert.is_true(excluded, "the undecided request was not excluded from later polls")
  end)

  it("stop() from the handler ends the loop", function()
    srv:approval({ method = "GET", url = "https://example.com/1" })
    srv:approval({ method = "GET", url = "https://example.com/2" })
    local handled = 0
    local runner
    runner = client.approvals:runner(function(_, r)
      handled = handled + 1
      r:stop()
      return "approve"
    end, { max_polls = 10 })
    runner:run()
    assert.are.equal(1, handled)
    assert.are.equal(1, runner.stats.polls)
  end)

  it("max_polls bounds the loop and polling failures back off", function()
    local delays = {}
    local c2 = api.client(srv, { api_key = "oc_" .. string.rep("0", 64), max_retries = 0,
      gateway_url = srv.gateway_url,
      sleep = function(s) delays[#delays + 1] = s end })
    local errs = {}
    local stats = c2.approvals:run(function() return "approve" end,
      { max_polls = 3, on_error = function(e) errs[#errs + 1] = e end })
    assert.are.equal(3, stats.polls)
    assert.are.equal(3, #errs)
    -- the gateway's plain-text 401 normalizes like the API's errors
    assert.are.equal(401, errs[1].status)
    assert.are.equal("authentication_error", errs[1].type)
    assert.is_false(errs[1].retryable)
    assert.is_falsy(errs[1].message:find("<", 1, true))
    assert.are.equal(3, #delays)
    assert.is_true(delays[2] >= delays[1] * 0.5)
    c2:close()
  end)

  it("checks its arguments", function()
    assert.has_error(function() client.approvals:runner("x") end)
    assert.has_error(function() client.approvals:runner(print, { bogus = 1 }) end)
  end)
end)
