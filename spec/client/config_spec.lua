-- Configuration: options, environment defaults, URL handling, and the
-- argument checks of generated methods. No server needed: a recording
-- transport stands in for libcurl.
local onecli = require("onecli")
local core = require("onecli.core")

local KEY = "oc_" .. string.rep("5e", 32)

-- A transport that records requests and answers from a queue.
local function recorder(answers)
  local t = { requests = {} }
  function t:request(req)
    self.requests[#self.requests + 1] = req
    local a = table.remove(answers or {}, 1) or { 200, {}, "[]" }
    return a[1], a[2], a[3]
  end
  return t
end

-- Calls fn, expects it to raise, returns the message.
local function err_of(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return msg
end

local function env(vars)
  return function(name) return vars[name] end
end

describe("onecli.new", function()
  it("defaults to the cloud API when nothing is configured", function()
    local c = onecli.new({ getenv = env({}) })
    assert.are.equal("https://api.onecli.sh/v1", c.url)
    assert.is_false(c:has_api_key())
    assert.is_nil(c.project_id)
    assert.are.equal(30, c.timeout)
    assert.are.equal(2, c.max_retries)
  end)

  it("reads ONECLI_API_KEY, ONECLI_URL and ONECLI_PROJECT_ID", function()
    local t = recorder()
    local c = onecli.new({ transport = t, getenv = env({
      ONECLI_API_KEY = KEY, ONECLI_URL = "http://127.0.0.1:10254",
      ONECLI_PROJECT_ID = "qwertyuiopasdfgh" }) })
    assert.are.equal("http://127.0.0.1:10254/v1", c.url)
    assert.are.equal("qwertyuiopasdfgh", c.project_id)
    c.agents:list()
    local req = t.requests[1]
    assert.are.equal("http://127.0.0.1:10254/v1/agents", req.url)
    assert.are.equal("Bearer " .. KEY, req.headers.Authorization)
    assert.are.equal("qwertyuiopasdfgh", req.headers["X-Project-Id"])
    assert.are.equal("qwertyuiopasdfgh", req.headers["X-Workspace-Id"])
  end)

  it("prefers explicit options over the environment", function()
    local c = onecli.new({ url = "https://example.test/api", project_id = "abc",
      getenv = env({ ONECLI_URL = "http://other.test", ONECLI_PROJECT_ID = "zzz" }) })
    assert.are.equal("https://example.test/api", c.url)
    assert.are.equal("abc", c.project_id)
  end)

  it("treats empty environment variables as unset", function()
    local c = onecli.new({ getenv = env({ ONECLI_URL = "", ONECLI_API_KEY = "" }) })
    assert.are.equal("https://api.onecli.sh/v1", c.url)
    assert.is_false(c:has_api_key())
  end)

  describe("url", function()
    local cases = {
      { "http://localhost:10254", "http://localhost:10254/v1" },
      { "http://localhost:10254/", "http://localhost:10254/v1" },
      { "https://api.onecli.sh", "https://api.onecli.sh/v1" },
      { "http://localhost:10254/api", "http://localhost:10254/api" },
      { "http://localhost:10254/api/", "http://localhost:10254/api" },
      { "http://127.0.0.1:10256/v1//", "http://127.0.0.1:10256/v1" },
      { "HTTPS://api.onecli.sh/v1", "https://api.onecli.sh/v1" },
    }
    for _, case in ipairs(cases) do
      it("normalizes " .. case[1], function()
        assert.are.equal(case[2], onecli.new({ url = case[1], getenv = env({}) }).url)
      end)
    end

    for _, bad in ipairs({ "localhost:10254", "ftp://host/v1", "http://", "http://h/v1?x=1",
                           "http://user:pw@h/v1", "http://h /v1" }) do
      it("rejects " .. bad, function()
        assert.has_error(function() onecli.new({ url = bad, getenv = env({}) }) end)
      end)
    end
  end)

  it("rejects unknown options and wrong types, naming them", function()
    local msg = err_of(onecli.new, { timout = 3 })
    assert.matches("unknown option 'timout'", msg)
    msg = err_of(onecli.new, { timeout = "3" })
    assert.matches("'timeout' must be a number", msg)
    msg = err_of(onecli.new, { max_retries = 99 })
    assert.matches("max_retries", msg)
    msg = err_of(onecli.new, { insecure = "yes" })
    assert.matches("'insecure' must be a boolean", msg)
  end)

  it("never shows the API key when printed or when misconfigured", function()
    local c = onecli.new({ api_key = KEY, getenv = env({}) })
    assert.is_nil(tostring(c):find(KEY, 1, true))
    for k, v in pairs(c) do
      assert.is_false(v == KEY, "key stored in field " .. tostring(k))
    end
    local msg = err_of(onecli.new, { api_key = KEY .. " x" })
    assert.is_nil(msg:find(KEY, 1, true))
  end)

  it("adds the caller's product to the User-Agent", function()
    local c = onecli.new({ user_agent = "myapp/1.2", url = "http://127.0.0.1:9", getenv = env({}) })
    assert.matches(" myapp/1%.2$", c:_transport_now():options().user_agent)
    assert.matches("^lua%-onecli/%d+%.%d+%.%d+ ", core.user_agent)
    assert.matches(" libcurl/%d", core.user_agent)
  end)
end)

describe("generated methods", function()
  local t, c
  before_each(function()
    t = recorder()
    c = onecli.new({ transport = t, api_key = KEY, url = "http://h.test", getenv = env({}) })
  end)

  it("URL-escapes path parameters", function()
    c.agents:delete("a b/../c?d")
    assert.are.equal("http://h.test/v1/agents/a%20b%2F..%2Fc%3Fd", t.requests[1].url)
    assert.are.equal("DELETE", t.requests[1].method)
  end)

  it("raises at the call site for a missing or wrong path parameter", function()
    local msg = err_of(function() c.agents:delete() end)
    assert.matches("config_spec.lua:%d+: onecli: agents.delete: argument #1 %(agentId%) "
                   .. "must be a non%-empty string, got nil", msg)
    msg = err_of(function() c.agents:rename({}, "x") end)
    assert.matches("argument #1 %(agentId%) must be a non%-empty string, got table", msg)
    msg = err_of(function() c.agents:delete("") end)
    assert.matches("got an empty string", msg)
    assert.are.equal(0, #t.requests)
  end)

  it("requires a body where the endpoint needs one", function()
    local msg = err_of(function() c.agents:create() end)
    assert.matches("agents.create: argument #1 %(body%): a body table is required", msg)
    msg = err_of(function() c.secrets:create("x") end)
    assert.matches("the body must be a table, got string", msg)
  end)

  it("rejects bodies JSON cannot hold, naming the problem", function()
    local msg = err_of(function() c.agents:create({ name = print }) end)
    assert.matches("cannot be encoded as JSON", msg)
  end)

  it("accepts a shorthand value for one-field bodies", function()
    c.agents:rename("id1", "New name")
    c.apps:toggle_config("github", false)
    assert.are.same({ name = "New name" }, core.json_decode(t.requests[1].body))
    assert.are.equal('{"enabled":false}', t.requests[2].body)
  end)

  it("sends empty lists as JSON arrays for array fields", function()
    c.agents:set_secrets("id1", {})
    c.agents:set_secrets("id1", { secretIds = {} })
    c.agents:set_secrets("id1", { "s1", "s2" })
    assert.are.equal('{"secretIds":[]}', t.requests[1].body)
    assert.are.equal('{"secretIds":[]}', t.requests[2].body)
    assert.are.equal('{"secretIds":["s1","s2"]}', t.requests[3].body)
  end)

  it("does not modify the caller's body table", function()
    local body = { secretIds = {} }
    c.agents:set_secrets("id1", body)
    assert.is_nil(getmetatable(body.secretIds))
  end)

  it("encodes onecli.null as JSON null", function()
    c.secrets:update("s1", { pathPattern = onecli.null })
    assert.are.equal('{"pathPattern":null}', t.requests[1].body)
    assert.are.equal("application/json", t.requests[1].headers["Content-Type"])
  end)

  it("builds query strings from declared parameters only", function()
    c.connections:list({ provider = "git hub" })
    assert.are.equal("http://h.test/v1/connections?provider=git%20hub", t.requests[1].url)
    local msg = err_of(function() c.connections:list({ provder = "x" }) end)
    assert.matches("unknown query parameter 'provder' %(accepted: provider%)", msg)
  end)

  it("validates per-call options", function()
    local msg = err_of(function() c.secrets:list({ timeout = "1" }) end)
    assert.matches("'timeout' must be a number", msg)
    msg = err_of(function() c.secrets:list({ bogus = 1 }) end)
    assert.matches("unknown option 'bogus'", msg)
    msg = err_of(function() c.secrets:list({}, {}) end)
    assert.matches("too many arguments", msg)
    msg = err_of(function() c.agents:list({}, {}, {}) end)
    assert.matches("too many arguments", msg)
  end)

  it("reads a lone table of option names as the options of a call that takes a query", function()
    c.agents:list({ project_id = "p1", timeout = 3 })          -- options (v1 callers)
    assert.are.equal("http://h.test/v1/agents", t.requests[1].url)
    assert.are.equal("p1", t.requests[1].headers["X-Workspace-Id"])
    c.agents:list({ include = "grants-summary" })              -- the query
    assert.are.equal("http://h.test/v1/agents?include=grants-summary", t.requests[2].url)
    c.agents:list({ include = "grants-summary" }, { project_id = "p2" })
    assert.are.equal("p2", t.requests[3].headers["X-Workspace-Id"])
    local msg = err_of(function() c.agents:list({ include = "x", project_id = "p" }) end)
    assert.matches("unknown query parameter 'project_id' %(accepted: include%)", msg)
    msg = err_of(function() c.agents:list({ bogus = 1 }) end)
    assert.matches("unknown query parameter 'bogus'", msg)
  end)

  it("takes v2's workspace_id as a synonym of project_id", function()
    c.agents:list({ workspace_id = "ws1" })
    assert.are.equal("ws1", t.requests[1].headers["X-Workspace-Id"])
    assert.are.equal("ws1", t.requests[1].headers["X-Project-Id"])
    local c2 = onecli.new({ transport = t, url = "http://h.test", workspace_id = "ws2", getenv = env({}) })
    assert.are.equal("ws2", c2.project_id)
    local c3 = onecli.new({ transport = t, url = "http://h.test",
                            getenv = env({ ONECLI_WORKSPACE_ID = "ws3" }) })
    assert.are.equal("ws3", c3.workspace_id)
    local msg = err_of(function() c.agents:list({ workspace_id = "a", project_id = "b" }) end)
    assert.matches("name the same thing", msg)
  end)

  it("overrides the project per call", function()
    c.agents:list({ project_id = "other" })
    assert.are.equal("other", t.requests[1].headers["X-Project-Id"])
    assert.are.equal("other", t.requests[1].headers["X-Workspace-Id"])
  end)

  it("says how to call a method used with a dot", function()
    local msg = err_of(function() c.agents.list() end)
    assert.matches("call it with a colon: client.agents:list", msg)
  end)

  it("does not send the key to endpoints that need no authentication", function()
    t = recorder({ { 200, {}, '{"status":"ok"}' } })
    c = onecli.new({ transport = t, api_key = KEY, project_id = "p", url = "http://h.test", getenv = env({}) })
    assert.are.equal("ok", c:health().status)
    assert.is_nil(t.requests[1].headers.Authorization)
    assert.is_nil(t.requests[1].headers["X-Project-Id"])
  end)

  it("returns true for 204 and the Location for redirect endpoints", function()
    t = recorder({ { 204, {}, "" }, { 302, { location = "https://github.com/login/oauth/authorize?x=1" }, "" } })
    c = onecli.new({ transport = t, url = "http://h.test", getenv = env({}) })
    assert.is_true(c.secrets:delete("s1"))
    assert.are.equal("https://github.com/login/oauth/authorize?x=1", c.apps:authorize_url("github"))
  end)

  it("offers nil, err instead of a raise", function()
    t = recorder({ { 404, {}, '{"error":{"message":"Agent not found","type":"not_found_error"}}' },
                   { 404, {}, '{"error":{"message":"Agent not found","type":"not_found_error"}}' },
                   { 404, {}, '{"error":{"message":"Agent not found","type":"not_found_error"}}' } })
    c = onecli.new({ transport = t, url = "http://h.test", getenv = env({}), raise = false })
    local res, err = c.agents:delete("x")
    assert.is_nil(res)
    assert.are.equal("not_found_error", err.type)
    assert.has_error(function() c.agents:delete("x", { raise = true }) end)
    local c2 = onecli.new({ transport = t, url = "http://h.test", getenv = env({}) })
    res, err = onecli.try(c2.agents.delete, c2.agents, "x")
    assert.is_nil(res)
    assert.is_true(onecli.is_error(err))
    -- misuse is not turned into a value
    assert.has_error(function() onecli.try(c2.agents.delete, c2.agents) end)
  end)
end)

describe("client:request", function()
  it("calls endpoints outside the table", function()
    local t = recorder({ { 200, {}, '{"agents":1,"apps":0,"llms":0,"secrets":0}' } })
    local c = onecli.new({ transport = t, url = "http://h.test", getenv = env({}) })
    local counts = c:request("GET", "/counts")
    assert.are.equal(1, counts.agents)
    assert.are.equal("http://h.test/v1/counts", t.requests[1].url)
    assert.has_error(function() c:request("FETCH", "/x") end)
    assert.has_error(function() c:request("GET", "x") end)
  end)
end)

describe("the endpoint table", function()
  it("has one well-formed line per endpoint with unique names", function()
    local seen = {}
    for _, ep in ipairs(onecli.endpoints) do
      assert.is_nil(seen[ep.name], "duplicate " .. ep.name)
      seen[ep.name] = true
      assert.is_string(ep.doc, ep.name .. " has no doc line")
    end
  end)

  -- Every endpoint the reference tags CORE must be a method.
  it("covers every CORE endpoint of the reference", function()
    local ref
    for _, p in ipairs({ "../shared/reference/onecli-api.md", "../../shared/reference/onecli-api.md" }) do
      local f = io.open(p)
      if f then ref = f:read("*a"); f:close(); break end
    end
    if not ref then
      pending("reference not found beside the checkout")
      return
    end
    local have = {}
    for _, ep in ipairs(onecli.endpoints) do
      have[ep.method .. " " .. ep.path:gsub("{[%w_]+}", "{}")] = ep.name
    end
    local missing, n = {}, 0
    for line in ref:gmatch("[^\n]+") do
      local method, path, tag = line:match("^| (%u+) | `([^`]+)` | (CORE[^|]*) |")
      if method and tag then
        n = n + 1
        local key = method .. " " .. path:gsub("{[%w_]+}", "{}")
        if not have[key] then missing[#missing + 1] = key end
      end
    end
    assert.is_true(n >= 30, "found only " .. n .. " CORE rows")
    assert.are.same({}, missing)
  end)
end)
