-- The libcurl transport of the C core, used directly.
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local net = require("support.net")

local srv

local function lua_interpreter()
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

describe("core.new_transport", function()
  setup(function() srv = launcher.start({ mode = "v2" }) end)
  teardown(function() if srv then srv:stop() end end)

  it("returns status, lower-cased headers and the body", function()
    local t = core.new_transport()
    local status, headers, body = t:request({ method = "GET", url = srv.url .. "/health" })
    assert.are.equal(200, status)
    assert.are.equal("application/json", headers["content-type"])
    assert.is_string(headers["x-request-id"])
    for name in pairs(headers) do
      assert.are.equal(name:lower(), name)
    end
    assert.are.equal("ok", core.json_decode(body).status)
    t:close()
  end)

  it("rejects bad options and requests before sending anything", function()
    srv:reset()
    assert.has_error(function() core.new_transport({ timeout = "1" }) end)
    assert.has_error(function() core.new_transport({ timeout = -1 }) end)
    assert.has_error(function() core.new_transport({ insecure = "yes" }) end)
    local t = core.new_transport()
    assert.has_error(function() t:request({ method = "GET" }) end)
    assert.has_error(function() t:request({ method = "GET", url = srv.url, body = "x" }) end)
    assert.has_error(function()
      t:request({ method = "GET", url = srv.url, headers = { ["X-A"] = "a\r\nX-B: b" } })
    end)
    assert.has_error(function()
      t:request({ method = "GET", url = srv.url, headers = { ["Bad Name"] = "x" } })
    end)
    assert.has_error(function()
      t:request({ method = "GET", url = srv.url, headers = { ["X-A"] = {} } })
    end)
    t:close()
    assert.are.equal(0, srv:stats().requests)
  end)

  it("close() is idempotent; a closed transport raises", function()
    local t = core.new_transport()
    assert.is_false(t:is_closed())
    t:close()
    t:close()
    assert.is_true(t:is_closed())
    assert.matches("closed", tostring(t))
    assert.has_error(function() t:request({ method = "GET", url = srv.url }) end, "transport is closed")
  end)

  it("is closed by <close> on Lua 5.4", function()
    assert.is_true(net.closed_by_scope(core.new_transport, pending))
  end)

  it("refuses a response larger than max_response_size, without retrying", function()
    local t = core.new_transport({ max_response_size = 64 })
    local status, err = t:request({ method = "GET", url = srv.url .. "/health", path = "/v1/health" })
    assert.is_nil(status)
    assert.are.equal("RESPONSE_TOO_LARGE", err.code)
    assert.is_false(err.retryable)
    t:close()
  end)

  it("a request with a body sends it with its length", function()
    local t = core.new_transport()
    local status = t:request({ method = "POST", url = srv.url .. "/agents",
      body = '{"name":"T","identifier":"t"}',
      headers = { Authorization = "Bearer " .. srv.api_key, ["Content-Type"] = "application/json" } })
    assert.are.equal(201, status)
    local r = srv:requests()
    assert.are.equal('{"name":"T","identifier":"t"}', r[#r].body)
    assert.is_nil(r[#r].headers.expect)   -- no 100-continue round trip
    t:close()
  end)

  it("goes through the proxy named in the environment, as libcurl reads it", function()
    srv:reset()
    local script = ([[
      package.cpath = %q
      local core = require("onecli.core")
      local t = core.new_transport({ timeout = 5 })
      local status, err = t:request({ method = "GET",
                                      url = "http://onecli-proxy-check.invalid/v1/health" })
      io.write(status and "status" or err.code)
    ]]):format(package.cpath)
    local p = io.popen(("env -u no_proxy -u NO_PROXY http_proxy=http://127.0.0.1:%d %s -e %q"):format(
      srv.port, lua_interpreter(), script))
    local out = p:read("*a")
    p:close()
    assert.are.equal("status", out)   -- not COULDNT_RESOLVE_HOST: the proxy answered
    local seen = false
    for _, r in ipairs(srv:requests()) do
      if tostring(r.path):find("onecli-proxy-check.invalid", 1, true) then seen = true end
    end
    assert.is_true(seen, "the stand-in did not see the proxied request")
  end)
end)
