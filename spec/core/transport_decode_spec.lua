-- What the C transports return for a request with decode = true and
-- response_headers = "errors" (what the pipeline sends): a 2xx JSON object
-- or array decoded straight from libcurl's buffer (no body string), only the
-- headers a success needs; everything else exactly as without them.
local core = require("onecli.core")
local hostile = require("hostile.launcher")

local srv

local function lean(path, extra)
  local req = { method = "GET", url = srv.origin .. path, path = path, decode = true,
                response_headers = "errors" }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

-- Drives m until its transfers are done (bounded); returns them by id.
local function drain(m)
  local out = {}
  local deadline = core.now() + 20
  while m:pending() > 0 and core.now() < deadline do
    m:perform()
    for _, d in ipairs(m:collect()) do out[d.id] = d end
    if m:pending() > 0 then m:wait(50) end
  end
  return out
end

describe("transport requests with decode and response_headers", function()
  setup(function() srv = hostile.start({ max_lifetime = 120 }) end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("a 2xx JSON array comes back decoded (status, headers, nil, value), marked as an array", function()
    local t = core.new_transport()
    local n = select("#", t:request(lean("/v1/agents")))
    local status, headers, body, value = t:request(lean("/v1/agents"))
    assert.are.equal(4, n)
    assert.are.equal(200, status)
    assert.is_nil(body)
    assert.are.equal("a1", value[1].id)
    assert.is_true(core.is_array(value))
    assert.are.equal("application/json", headers["content-type"])
    assert.is_nil(headers["content-length"])     -- not what a success needs
    assert.is_nil(headers.connection)
    t:close()
  end)

  it("without them, the same answer is status, every header, the body", function()
    local t = core.new_transport()
    local n = select("#", t:request({ method = "GET", url = srv.origin .. "/v1/agents" }))
    local status, headers, body = t:request({ method = "GET", url = srv.origin .. "/v1/agents" })
    assert.are.equal(3, n)
    assert.are.equal(200, status)
    assert.are.equal('[{"id":"a1","name":"n","identifier":"i"}]', body)
    assert.is_string(headers["content-length"])
    t:close()
  end)

  it("a 2xx bare scalar comes back as the body, for the pipeline's decode_error", function()
    local t = core.new_transport()
    for _, case in ipairs({ { "scalar_number", "42" }, { "scalar_string", '"hello"' },
                            { "scalar_null", "null" } }) do
      srv:fault(case[1])
      local status, _, body, value = t:request(lean("/v1/agents"))
      assert.are.equal(200, status)
      assert.are.equal(case[2], body)
      assert.is_nil(value)
    end
    t:close()
  end)

  it("an error answer keeps every header and its body", function()
    local t = core.new_transport()
    srv:fault("status_429_retry_after")
    local status, headers, body, value = t:request(lean("/v1/agents"))
    assert.are.equal(429, status)
    assert.are.equal("0", headers["retry-after"])
    assert.is_string(headers["content-length"])
    assert.are.equal('{"error":"slow down"}', body)
    assert.is_nil(value)
    t:close()
  end)

  it("refuses a response_headers that is not \"all\" or \"errors\", before sending", function()
    local t = core.new_transport()
    for _, bad in ipairs({ "none", 1, true, {} }) do
      assert.has_error(function() t:request(lean("/v1/agents", { response_headers = bad })) end,
        'request response_headers must be "all" or "errors"')
    end
    assert.are.equal(0, srv:stats().total)
    t:close()
  end)

  it("the multi driver gives value instead of body the same way", function()
    local m = core.new_multi()
    local a = m:add(lean("/v1/agents"))
    local b = m:add({ method = "GET", url = srv.origin .. "/v1/agents" })
    local out = drain(m)
    assert.are.equal("a1", out[a].value[1].id)
    assert.is_nil(out[a].body)
    assert.is_nil(out[a].headers["content-length"])
    assert.are.equal('[{"id":"a1","name":"n","identifier":"i"}]', out[b].body)
    assert.is_nil(out[b].value)
    m:close()
  end)
end)
