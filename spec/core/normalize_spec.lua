-- Specs for the error normalizer of the C core: core.normalize,
-- core.transport_error, core.new_error, core.is_error, core.reason_phrase.
--
-- Ground truth: ../shared/reference/onecli-api.md §5 and the recorded server
-- exchanges in ../shared/reference/captures (parsed by spec/support/captures).
-- Expected values are either hard-coded literals or computed by the small
-- oracle below, which is written from the contract and decodes JSON with
-- lua-cjson directly (never with the module under test).

local core = require("onecli.core")
local captures = require("support.captures")
local cjson = require("cjson.safe")

local PHRASES = {
  [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local RETRYABLE = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

local PROXY_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
  .. "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

-- Deterministic fake credential: prefix + 64 lowercase hex digits.
local function fake_key(prefix, seed)
  local x, out = seed, {}
  for i = 1, 64 do
    x = (x * 75 + 74) % 65537
    out[i] = string.format("%x", x % 16)
  end
  return prefix .. table.concat(out)
end

local function plain_find(s, needle)
  return type(s) == "string" and s:find(needle, 1, true) ~= nil
end

-- Fails (without ever printing the key) if the key, or any 12-byte fragment
-- of it, appears in any string field of err or in tostring(err). The failure
-- message lists every leaking place by name.
local function assert_no_key(err, key, label)
  local texts = { ["tostring(err)"] = tostring(err) }
  for k, v in pairs(err) do
    if type(v) == "string" then texts["err." .. tostring(k)] = v end
  end
  local leaks = {}
  for where, text in pairs(texts) do
    if plain_find(text, key) then
      leaks[#leaks + 1] = where .. " (whole secret)"
    else
      for i = 1, #key - 11 do
        if plain_find(text, key:sub(i, i + 11)) then
          leaks[#leaks + 1] = where .. " (12-byte fragment)"
          break
        end
      end
    end
  end
  table.sort(leaks)
  assert.is_true(#leaks == 0, (label or "") .. ": secret leaked in " .. table.concat(leaks, ", "))
end

-- ---------------------------------------------------------------------------
-- Oracle: the contract's extraction rules, written independently of the module.
-- ---------------------------------------------------------------------------
local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function is_token(s)
  return s:match("^[a-z][a-z0-9]*_[a-z0-9_]*$") ~= nil
end

local function type_for(status, is_json)
  if status >= 200 and status < 300 then return "decode_error" end
  if status == 401 or status == 403 then return "authentication_error" end
  if status == 404 then return is_json and "not_found_error" or "invalid_request_error" end
  if status == 422 then return "validation_error" end
  if status == 429 then return "rate_limit_error" end
  if status >= 500 then return "api_error" end
  return "invalid_request_error"
end

local function oracle(status, headers, body, reason)
  local fallback = reason or PHRASES[status]
  local exp = { status = status, request_id = headers["x-request-id"], retryable = RETRYABLE[status] == true }
  local doc = (body and body ~= "") and cjson.decode(body) or nil
  local is_json = doc ~= nil
  local message, code, etype
  if type(doc) == "table" then
    local e = doc.error
    if type(e) == "string" then
      if type(doc.message) == "string" then
        message, code = doc.message, e
      else
        message = e
        if type(doc.code) == "string" then code = doc.code
        elseif is_token(e) then code = e end
      end
    elseif type(e) == "table" then
      message, etype = e.message, e.type
      code = (type(e.code) == "string" and e.code) or (type(doc.code) == "string" and doc.code) or nil
    elseif type(doc.message) == "string" then
      message = doc.message
      if type(doc.code) == "string" then code = doc.code end
    end
  end
  if not message then
    local text = trim(body or "")
    local ct = headers["content-type"] or ""
    local html = text:sub(1, 1) == "<" or ct:lower():find("text/html", 1, true) ~= nil
    if text ~= "" and not html and #text <= 200 and not text:find("[\r\n]") then
      message = text
    else
      message = fallback
    end
    exp.hint_expected = html or nil
  end
  exp.message, exp.code = message, code
  exp.type = etype or type_for(status, is_json)
  if exp.type == "enterprise_license_required" then exp.hint_expected = true end
  return exp
end

-- ---------------------------------------------------------------------------

describe("onecli.core", function()
  it("reports its version", function()
    assert.are.equal("0.1.0", core._VERSION)
  end)
end)

describe("core.reason_phrase", function()
  it("returns the standard phrase for common statuses", function()
    for status, phrase in pairs(PHRASES) do
      assert.are.equal(phrase, core.reason_phrase(status), "status " .. status)
    end
  end)

  it("names 422 (either the RFC 4918 or the RFC 9110 wording)", function()
    local p = core.reason_phrase(422)
    assert.is_true(p == "Unprocessable Entity" or p == "Unprocessable Content", tostring(p))
  end)

  it("returns nil for unknown statuses", function()
    assert.is_nil(core.reason_phrase(599))
    assert.is_nil(core.reason_phrase(799))
    assert.is_nil(core.reason_phrase(0))
  end)
end)

describe("core.normalize on every recorded error response", function()
  local all = captures.all({ "v1.41.0", "v2.0.1", "v2.0.1-routes" })
  local count = 0
  for _, cap in ipairs(all) do
    local r = cap.response
    if r.status >= 400 then
      count = count + 1
      it(cap.version .. "/" .. cap.name .. " (" .. r.status .. ")", function()
        local exp = oracle(r.status, r.headers, r.body, r.reason)
        local err = core.normalize(cap.request.method, cap.request.path, r.status, r.headers, r.body,
          { reason = r.reason })
        assert.is_true(core.is_error(err))
        assert.are.equal(exp.status, err.status)
        assert.are.equal(exp.type, err.type)
        assert.are.equal(exp.message, err.message)
        assert.are.equal(exp.retryable, err.retryable)
        assert.are.equal(exp.code, err.code)
        assert.are.equal(exp.request_id, err.request_id)
        assert.are.equal(cap.request.method, err.method)
        assert.are.equal(cap.request.path, err.path)
        assert.are.equal(1, err.attempts)
        assert.is_nil(err.retry_after)
        if r.body == "" then
          assert.is_nil(err.body)     -- an empty body (GET /favicon's 400) is no body
        elseif #r.body <= 4096 then
          assert.are.equal(r.body, err.body)
        else
          assert.is_true(#err.body <= 4096, "body is " .. #err.body .. " bytes")
          assert.are.equal(r.body:sub(1, 64), err.body:sub(1, 64))
        end
        if exp.hint_expected then
          assert.are.equal("string", type(err.hint))
        end
        assert.is_falsy(err.message:match("^%s*<"), "message is HTML")
      end)
    end
  end

  it("found the captures (at least 90 + 171 error responses)", function()
    assert.is_true(count >= 261, "only " .. count .. " error captures")
  end)
end)

describe("core.normalize on representative captures (hard-coded expectations)", function()
  -- { version, name, status, type, message, retryable, code, request_id }
  local CASES = {
    { "v1.41.0", "agents-create-bad-identifier", 400, "invalid_request_error",
      "Identifier must be 1-50 characters, start with a letter or number, and contain only lowercase letters, "
        .. "numbers, and hyphens", false, nil, nil },
    { "v1.41.0", "agents-create-duplicate-identifier", 409, "invalid_request_error",
      "An agent with this identifier already exists", false, nil, nil },
    { "v1.41.0", "agents-delete-not-found", 404, "not_found_error", "Agent not found", false, nil, nil },
    { "v1.41.0", "apps-get-unknown-provider", 404, "not_found_error",
      "Unknown provider: no-such-provider", false, nil, nil },
    { "v1.41.0", "auth-org-key-with-unknown-project", 401, "authentication_error",
      "Invalid API key or token.", false, nil, nil },
    { "v1.41.0", "unknown-route-v1", 404, "invalid_request_error",
      "Unrecognized request URL (GET: /v1/no-such-route). Please see https://onecli.sh/docs/api-reference "
        .. "for available endpoints.", false, nil, nil },
    { "v1.41.0", "rules-create-bad-action", 400, "invalid_request_error",
      'Invalid option: expected one of "block"|"rate_limit"|"manual_approval"|"allow"', false, nil, nil },
    { "v1.41.0", "rules-delete-not-found", 404, "not_found_error", "Policy rule not found", false, nil, nil },
    { "v1.41.0", "empty-body-post", 400, "invalid_request_error",
      "Invalid input: expected object, received null", false, nil, nil },
    { "v1.41.0", "unknown-route-root", 404, "invalid_request_error", "Not Found", false, nil, nil },
    { "v2.0.1", "agents-create-duplicate-identifier", 409, "invalid_request_error",
      "An agent with this identifier already exists", false, nil, "f5d4f62b-f9e0-453b-afea-df34bf819fc1" },
    { "v2.0.1", "agents-get-not-found", 404, "not_found_error", "Agent not found", false, nil,
      "03aeb6d9-b566-4f3e-9051-2e6058cd0ee9" },
    { "v2.0.1", "agents-get-default", 410, "invalid_request_error",
      "GET /v1/agents/default was removed: the default-agent concept is retired. List agents with GET /v1/agents "
        .. "and pass one explicitly to /v1/container-config (`agent=`, or pin with `onecli config set agent "
        .. "<identifier>`).", false, nil, "ed7e2459-9aae-489c-87b2-6977cf248cfd" },
    { "v2.0.1", "rules-list", 410, "invalid_request_error",
      "/v1/rules was removed. Workspace access is granted per agent: PUT /v1/agents/:agentId/grants/connections/"
        .. ":connectionId and /v1/agents/:agentId/grants/secrets/:secretId.", false, nil,
      "98769334-c5d3-435d-accf-0e37a1ee0570" },
    { "v2.0.1", "auth-invalid-oc-key", 401, "authentication_error", "Invalid API key or token.", false, nil,
      "19aaaea8-3627-4e19-879c-00282c6280f6" },
    { "v2.0.1", "auth-org-key-without-workspace-header", 401, "authentication_error",
      "X-Workspace-Id (formerly X-Project-Id) header is required", false, nil,
      "659cea93-dddd-480e-b85b-fe9fc0bcb83f" },
    { "v2.0.1", "auth-org-key-api-key-get-without-workspace", 400, "invalid_request_error",
      "X-Workspace-Id (formerly X-Project-Id) header is required", false, nil,
      "e7b8b656-d88e-4bdf-8c8f-5e1dbc227cbc" },
    { "v2.0.1", "better-auth-sign-in-wrong-password", 401, "authentication_error",
      "Invalid email or password", false, "INVALID_EMAIL_OR_PASSWORD", "33f192c6-7798-463a-8ffc-beea96eb0a22" },
    { "v2.0.1", "better-auth-sign-up-existing-email", 422, "validation_error",
      "User already exists. Use another email.", false, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
      "54bbb6d2-8084-4439-82f4-c5e7ed1a6c70" },
    { "v2.0.1", "org-policy-rules-create-rate-limit-action", 422, "validation_error",
      'Invalid option: expected one of "allow"|"block"', false, nil, "340b748c-6ba5-405c-b43a-274b6cbb1d50" },
    { "v2.0.1", "org-policy-rules-patch-not-found", 404, "not_found_error", "Policy rule not found.", false, nil,
      "175cc627-bd94-4441-9bec-eba467203536" },
    { "v2.0.1", "apps-get-unknown-provider", 404, "not_found_error", "Unknown provider: no-such-provider", false,
      nil, "738af139-0c8d-4cd6-b844-55857a960c23" },
    { "v2.0.1", "agents-rename-empty-body", 400, "invalid_request_error",
      "At least one field to update is required", false, nil, "4ea4b259-7391-4dd9-9b22-c1bdf6aaa1bc" },
    { "v2.0.1-routes", "org-members-list-no-auth", 403, "enterprise_license_required",
      "Members directory API requires a OneCLI Enterprise license.", false, nil,
      "c7cdd8bd-2f32-4995-892f-ed5f2b738a3d" },
    { "v2.0.1-routes", "skills-create-bad-name", 422, "validation_error",
      'Skill names are lowercase words separated by single hyphens, like "release-checklist"', false, nil,
      "a8e67c7a-b4af-49e0-b590-6efeebb25b51" },
    { "v2.0.1-routes", "agents-image-put-too-large", 413, "invalid_request_error", "Images are capped at 1MB.",
      false, nil, "c401aee0-93fb-46f0-842f-bbc3a599b825" },
    { "v2.0.1-routes", "org-app-config-delete-not-found", 500, "api_error", "Internal Server Error", true, nil,
      "06223dcf-4ad0-4cb0-b929-785d96994668" },
    { "v2.0.1-routes", "runner-work-user-key", 401, "authentication_error", "Unauthorized", false, nil,
      "af48daba-2c24-42a3-84e1-d46f57422c95" },
    { "v2.0.1-routes", "org-agents-removed", 410, "invalid_request_error",
      "/v1/org/agents was removed. Agent groups were removed: organize people with user groups "
        .. "(/v1/org/groups); organization policy rules target users or user groups.", false, nil,
      "ad37d55d-c120-41b3-9a7d-341f10088b76" },
    { "v2.0.1-routes", "billing-checkout", 404, "invalid_request_error",
      "Billing is not available on this deployment", false, nil, "1753884e-2a3a-4c7d-9e7a-8f15bf80a08b" },
    { "v2.0.1", "unknown-route-root", 404, "invalid_request_error",
      "Unrecognized request URL (GET: /no-such-route). Please see https://onecli.sh/docs/api-reference "
        .. "for available endpoints.", false, nil, "3028a8ed-1478-4d8b-8f52-495f24d59432" },
  }

  for _, c in ipairs(CASES) do
    local version, name, status, etype, message, retryable, code, request_id =
      c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    it(version .. "/" .. name, function()
      local cap = captures.get(version, name)
      local r = cap.response
      -- Without opts.reason: the module must fall back to its own phrase table.
      local err = core.normalize(cap.request.method, cap.request.path, r.status, r.headers, r.body)
      assert.are.equal(status, err.status)
      assert.are.equal(etype, err.type)
      assert.are.equal(message, err.message)
      assert.are.equal(retryable, err.retryable)
      assert.are.equal(code, err.code)
      assert.are.equal(request_id, err.request_id)
      assert.are.equal(cap.request.method, err.method)
      assert.are.equal(cap.request.path, err.path)
    end)
  end

  it("v1.41.0/unknown-route-root is an HTML page: reason phrase, hint, truncated body", function()
    local cap = captures.get("v1.41.0", "unknown-route-root")
    local r = cap.response
    assert.is_true(#r.body > 4096) -- precondition: the capture is the 10 KB Next.js page
    local err = core.normalize("GET", "/no-such-route", r.status, r.headers, r.body)
    assert.are.equal("Not Found", err.message)
    assert.are.equal("invalid_request_error", err.type)
    assert.are.equal("string", type(err.hint))
    assert.is_truthy(err.hint:lower():find("base[ _]?url"), err.hint)
    assert.is_true(#err.body <= 4096)
    assert.are.equal("<!DOCTYPE html>", err.body:sub(1, 15))
  end)
end)

describe("core.normalize body shapes (reference §5.1)", function()
  local JSON = { ["content-type"] = "application/json" }
  local TEXT = { ["content-type"] = "text/plain; charset=utf-8" }
  local HTML = { ["content-type"] = "text/html" }

  it("F: flat error string", function()
    local err = core.normalize("POST", "/v1/apps/github/connections", 400, JSON, '{"error":"Label is required"}')
    assert.are.equal("Label is required", err.message)
    assert.are.equal("invalid_request_error", err.type)
    assert.is_nil(err.code)
    assert.is_false(err.retryable)
  end)

  it("F: flat sentences are not mistaken for machine tokens", function()
    for _, m in ipairs({ "Unauthorized", "Internal server error", "Not found", "Invalid URL" }) do
      local err = core.normalize("GET", "/v1/x", 400, JSON, cjson.encode({ error = m }))
      assert.are.equal(m, err.message)
      assert.is_nil(err.code, m)
    end
  end)

  it("F with status 500 is an api_error and retryable", function()
    local err = core.normalize("GET", "/v1/container-config", 500, JSON, '{"error":"Internal server error"}')
    assert.are.equal("Internal server error", err.message)
    assert.are.equal("api_error", err.type)
    assert.is_true(err.retryable)
  end)

  it("E: envelope message and type", function()
    local err = core.normalize("DELETE", "/v1/secrets/abc", 404, JSON,
      '{"error":{"message":"Secret not found","type":"not_found_error"}}')
    assert.are.equal("Secret not found", err.message)
    assert.are.equal("not_found_error", err.type)
    assert.is_nil(err.code)
  end)

  it("E: the envelope's type wins over the status mapping", function()
    local err = core.normalize("GET", "/v1/org/sso", 403, JSON,
      '{"error":{"message":"SSO requires a OneCLI Enterprise license.","type":"enterprise_license_required"}}')
    assert.are.equal("enterprise_license_required", err.type)
    assert.are.equal("SSO requires a OneCLI Enterprise license.", err.message)
    assert.is_false(err.retryable)
  end)

  it("E+code: code inside the envelope", function()
    local err = core.normalize("GET", "/v1/agents", 403, JSON,
      '{"error":{"message":"Single sign-on is required","type":"authentication_error","code":"sso_required"}}')
    assert.are.equal("Single sign-on is required", err.message)
    assert.are.equal("authentication_error", err.type)
    assert.are.equal("sso_required", err.code)
  end)

  it("E+code: code at top level", function()
    local err = core.normalize("GET", "/v1/agents", 403, JSON,
      '{"error":{"message":"Single sign-on is required","type":"authentication_error"},"code":"sso_required"}')
    assert.are.equal("Single sign-on is required", err.message)
    assert.are.equal("sso_required", err.code)
  end)

  it("F+code: container-config AGENT_NOT_FOUND", function()
    local msg = 'No agent with identifier "x" exists in this workspace. Create it first via POST /v1/agents.'
    local body = cjson.encode({ error = msg, code = "AGENT_NOT_FOUND", agentIdentifier = "x" })
    local err = core.normalize("GET", "/v1/container-config?agent=x", 404, JSON, body)
    assert.are.equal(msg, err.message)
    assert.are.equal("AGENT_NOT_FOUND", err.code)
    assert.are.equal("not_found_error", err.type)
    assert.is_false(err.retryable)
  end)

  it("{error = <code>, message = m}", function()
    local err = core.normalize("POST", "/v1/x", 400, JSON, '{"error":"bad_request","message":"Missing field"}')
    assert.are.equal("Missing field", err.message)
    assert.are.equal("bad_request", err.code)
    assert.are.equal("invalid_request_error", err.type)
  end)

  it("{message = m, code = c} (better-auth)", function()
    local err = core.normalize("POST", "/auth/sign-in/email", 401, JSON,
      '{"message":"Invalid email or password","code":"INVALID_EMAIL_OR_PASSWORD"}')
    assert.are.equal("Invalid email or password", err.message)
    assert.are.equal("INVALID_EMAIL_OR_PASSWORD", err.code)
    assert.are.equal("authentication_error", err.type)
  end)

  it("gateway token approval_not_found (404)", function()
    local err = core.normalize("GET", "/v1/approvals/123", 404, JSON, '{"error":"approval_not_found"}')
    assert.are.equal("approval_not_found", err.message)
    assert.are.equal("approval_not_found", err.code)
    assert.are.equal("not_found_error", err.type)
    assert.is_false(err.retryable)
  end)

  it("gateway token approval_expired (410)", function()
    local err = core.normalize("POST", "/v1/approvals/123/decision", 410, JSON, '{"error":"approval_expired"}')
    assert.are.equal("approval_expired", err.message)
    assert.are.equal("approval_expired", err.code)
    assert.are.equal("invalid_request_error", err.type)
    assert.is_false(err.retryable)
  end)

  it("gateway plain-text 401", function()
    local err = core.normalize("GET", "/v1/approvals/pending", 401, TEXT, "no project found")
    assert.are.equal("no project found", err.message)
    assert.are.equal("authentication_error", err.type)
    assert.is_nil(err.code)
    assert.is_false(err.retryable)
    assert.are.equal("no project found", err.body)
  end)

  it("gateway plain-text 401 with a trailing newline is trimmed", function()
    local err = core.normalize("GET", "/v1/approvals/pending", 401, TEXT, "  internal error\n")
    assert.are.equal("internal error", err.message)
  end)

  it("gateway plain-text 422", function()
    local err = core.normalize("POST", "/v1/approvals/1/decision", 422, TEXT, "invalid decision")
    assert.are.equal("invalid decision", err.message)
    assert.are.equal("validation_error", err.type)
    assert.is_false(err.retryable)
  end)

  it("gateway unknown route: 400 with empty body", function()
    local err = core.normalize("GET", "/v1/nope", 400, {}, "")
    assert.are.equal("Bad Request", err.message)
    assert.are.equal("invalid_request_error", err.type)
    assert.is_nil(err.body)
  end)

  it("a non-JSON 404 is a route problem, not a missing resource", function()
    local err = core.normalize("GET", "/v1/nope", 404, TEXT, "404 page not found")
    assert.are.equal("404 page not found", err.message)
    assert.are.equal("invalid_request_error", err.type)
    err = core.normalize("GET", "/v1/nope", 404, {}, "")
    assert.are.equal("Not Found", err.message)
    assert.are.equal("invalid_request_error", err.type)
  end)

  it("proxy HTML 502 (nginx)", function()
    local err = core.normalize("GET", "/v1/agents", 502, HTML, PROXY_502)
    assert.are.equal("Bad Gateway", err.message)
    assert.are.equal("api_error", err.type)
    assert.is_true(err.retryable)
    assert.are.equal("string", type(err.hint))
    assert.are.equal(PROXY_502, err.body)
  end)

  it("HTML is recognised by its first byte even without a content-type", function()
    local err = core.normalize("GET", "/v1/agents", 502, {}, "\r\n  " .. PROXY_502)
    assert.are.equal("Bad Gateway", err.message)
    assert.are.equal("string", type(err.hint))
  end)

  it("HTML is recognised by content-type even when the body does not start with <", function()
    local err = core.normalize("GET", "/v1/agents", 503, { ["content-type"] = "text/html; charset=utf-8" },
      "Service is down for maintenance")
    assert.are.equal("Service Unavailable", err.message)
    assert.are.equal("string", type(err.hint))
  end)

  it("opts.reason overrides the standard phrase for fallbacks", function()
    local err = core.normalize("GET", "/v1/agents", 502, HTML, PROXY_502, { reason = "Upstream Dead" })
    assert.are.equal("Upstream Dead", err.message)
    err = core.normalize("GET", "/v1/agents", 503, {}, "", { reason = "Back Soon" })
    assert.are.equal("Back Soon", err.message)
  end)

  it("empty body 503", function()
    local err = core.normalize("GET", "/v1/gateway/ca", 503, {}, "")
    assert.are.equal("Service Unavailable", err.message)
    assert.are.equal("api_error", err.type)
    assert.is_true(err.retryable)
    assert.is_nil(err.body)
    assert.is_nil(err.code)
  end)

  it("nil body behaves like an empty body", function()
    local err = core.normalize("DELETE", "/v1/agents/x", 504, {}, nil)
    assert.are.equal("Gateway Timeout", err.message)
    assert.are.equal("api_error", err.type)
    assert.is_true(err.retryable)
    assert.is_nil(err.body)
  end)

  it("whitespace-only body falls back to the reason phrase", function()
    local err = core.normalize("GET", "/v1/agents", 500, {}, " \r\n\t ")
    assert.are.equal("Internal Server Error", err.message)
  end)

  it("long plain text (> 200 bytes) falls back to the reason phrase", function()
    local err = core.normalize("GET", "/v1/agents", 500, TEXT, string.rep("a", 201))
    assert.are.equal("Internal Server Error", err.message)
    err = core.normalize("GET", "/v1/agents", 500, TEXT, string.rep("a", 200))
    assert.are.equal(string.rep("a", 200), err.message)
  end)

  it("multi-line plain text falls back to the reason phrase", function()
    local err = core.normalize("GET", "/v1/agents", 500, TEXT, "Traceback:\n  at foo\n  at bar")
    assert.are.equal("Internal Server Error", err.message)
  end)

  it("long JSON of an unknown shape falls back to the reason phrase", function()
    local err = core.normalize("GET", "/v1/agents", 500, JSON,
      cjson.encode({ detail = string.rep("x", 300) }))
    assert.are.equal("Internal Server Error", err.message)
    assert.are.equal("api_error", err.type)
  end)

  it("short JSON of an unknown shape gives the reason phrase or the body text, never nil", function()
    local err = core.normalize("GET", "/v1/agents", 400, JSON, '{"detail":"nope"}')
    assert.is_true(err.message == "Bad Request" or err.message == '{"detail":"nope"}', err.message)
    assert.are.equal("invalid_request_error", err.type)
  end)

  it("a 200 with invalid JSON is a decode_error", function()
    local err = core.normalize("GET", "/v1/agents", 200, JSON, '[{"id":"a",')
    assert.are.equal(200, err.status)
    assert.are.equal("decode_error", err.type)
    assert.is_truthy(err.message:lower():find("json", 1, true), err.message)
    assert.is_false(err.retryable)
    assert.are.equal('[{"id":"a",', err.body)
  end)

  it("a 200 with an HTML page is a decode_error whose message is not HTML, with a hint", function()
    local body = "<!DOCTYPE html><html><body>OneCLI dashboard</body></html>"
    local err = core.normalize("GET", "/v1/agents", 200, HTML, body)
    assert.are.equal("decode_error", err.type)
    assert.is_falsy(err.message:find("<", 1, true), err.message)
    assert.is_false(err.retryable)
    assert.are.equal("string", type(err.hint))
  end)

  it("the message is never HTML, whatever the status", function()
    for _, status in ipairs({ 400, 401, 403, 404, 409, 500, 502, 503 }) do
      local err = core.normalize("GET", "/v1/x", status, {}, "<p>" .. status .. "</p>")
      assert.are.equal(PHRASES[status], err.message)
      assert.are.equal("string", type(err.hint))
    end
  end)

  it("429 with Retry-After: 7", function()
    local body = '{"error":{"message":"Too many requests. Try again shortly.","type":"rate_limit_error"}}'
    local err = core.normalize("POST", "/v1/org/sso/lookup", 429,
      { ["content-type"] = "application/json", ["retry-after"] = "7" }, body)
    assert.are.equal(7, err.retry_after)
    assert.is_true(err.retryable)
    assert.are.equal("rate_limit_error", err.type)
    assert.are.equal("Too many requests. Try again shortly.", err.message)
  end)

  it("429 with no Retry-After and no body", function()
    local err = core.normalize("GET", "/v1/x", 429, {}, "")
    assert.is_nil(err.retry_after)
    assert.is_true(err.retryable)
    assert.are.equal("rate_limit_error", err.type)
    assert.are.equal("Too Many Requests", err.message)
  end)

  it("503 with an HTTP-date Retry-After two minutes ahead", function()
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 120)
    local err = core.normalize("GET", "/v1/gateway/ca", 503, { ["retry-after"] = when }, "")
    assert.are.equal("number", type(err.retry_after))
    assert.is_true(err.retry_after >= 110 and err.retry_after <= 121, tostring(err.retry_after))
    assert.is_true(err.retryable)
  end)

  it("503 with an HTTP-date Retry-After in the past gives 0", function()
    local err = core.normalize("GET", "/v1/gateway/ca", 503,
      { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, "")
    assert.are.equal(0, err.retry_after)
  end)

  it("an unparsable Retry-After is ignored", function()
    local err = core.normalize("GET", "/v1/x", 503, { ["retry-after"] = "soon" }, "")
    assert.is_nil(err.retry_after)
    assert.is_true(err.retryable)
  end)
end)

describe("core.normalize type and retryable mapping by status", function()
  -- status -> { type for a JSON flat body, retryable }
  local MAP = {
    [400] = { "invalid_request_error", false }, [401] = { "authentication_error", false },
    [403] = { "authentication_error", false }, [404] = { "not_found_error", false },
    [405] = { "invalid_request_error", false }, [408] = { "invalid_request_error", true },
    [409] = { "invalid_request_error", false }, [410] = { "invalid_request_error", false },
    [413] = { "invalid_request_error", false }, [415] = { "invalid_request_error", false },
    [418] = { "invalid_request_error", false }, [422] = { "validation_error", false },
    [429] = { "rate_limit_error", true }, [500] = { "api_error", true }, [501] = { "api_error", false },
    [502] = { "api_error", true }, [503] = { "api_error", true }, [504] = { "api_error", true },
    [505] = { "api_error", false }, [599] = { "api_error", false },
  }
  for status, want in pairs(MAP) do
    it(tostring(status), function()
      local err = core.normalize("GET", "/v1/x", status, { ["content-type"] = "application/json" },
        '{"error":"Something happened"}')
      assert.are.equal(status, err.status)
      assert.are.equal(want[1], err.type)
      assert.are.equal(want[2], err.retryable)
      assert.are.equal("Something happened", err.message)
    end)
  end

  it("an unknown status without body falls back to a non-empty message", function()
    local err = core.normalize("GET", "/v1/x", 599, {}, "")
    assert.are.equal("string", type(err.message))
    assert.is_true(#err.message > 0)
  end)
end)

describe("core.normalize fields", function()
  it("request_id comes from x-request-id", function()
    local err = core.normalize("GET", "/v1/x", 404, { ["x-request-id"] = "req-42" },
      '{"error":{"message":"Agent not found","type":"not_found_error"}}')
    assert.are.equal("req-42", err.request_id)
    err = core.normalize("GET", "/v1/x", 404, {}, '{"error":{"message":"Agent not found","type":"not_found_error"}}')
    assert.is_nil(err.request_id)
  end)

  it("attempts defaults to 1 and takes opts.attempts", function()
    local err = core.normalize("GET", "/v1/x", 503, {}, "", {})
    assert.are.equal(1, err.attempts)
    err = core.normalize("GET", "/v1/x", 503, {}, "", { attempts = 4 })
    assert.are.equal(4, err.attempts)
  end)

  it("keeps method and path", function()
    local err = core.normalize("PATCH", "/v1/secrets/b30857f7", 400, {}, '{"error":"No fields"}')
    assert.are.equal("PATCH", err.method)
    assert.are.equal("/v1/secrets/b30857f7", err.path)
  end)

  it("truncates a 100 KB body to at most 4096 bytes", function()
    local big = string.rep("0123456789abcdefghij", 5120) -- 102400 bytes
    local err = core.normalize("GET", "/v1/x", 500, { ["content-type"] = "text/plain" }, big)
    assert.are.equal("string", type(err.body))
    assert.is_true(#err.body <= 4096, "body is " .. #err.body .. " bytes")
    assert.is_true(#err.body >= 1024, "body is only " .. #err.body .. " bytes")
    assert.are.equal(big:sub(1, 100), err.body:sub(1, 100))
    assert.are.equal("Internal Server Error", err.message)
  end)

  it("truncates a 100 KB JSON body but still extracts its message", function()
    local body = cjson.encode({ error = { message = "Too big", type = "invalid_request_error" },
      padding = string.rep("p", 102400) })
    local err = core.normalize("POST", "/v1/x", 400, {}, body)
    assert.are.equal("Too big", err.message)
    assert.is_true(#err.body <= 4096)
  end)

  it("does not modify the headers table", function()
    local headers = { ["x-request-id"] = "r1", ["retry-after"] = "3" }
    core.normalize("GET", "/v1/x", 503, headers, "")
    assert.are.same({ ["x-request-id"] = "r1", ["retry-after"] = "3" }, headers)
  end)
end)

describe("tostring(err)", function()
  it("is one line with status, type, message, method, path and request id", function()
    local err = core.normalize("POST", "/v1/agents", 409, { ["x-request-id"] = "abc123" },
      '{"error":{"message":"An agent with this identifier already exists","type":"invalid_request_error"}}')
    local s = tostring(err)
    assert.are.equal("onecli: ", s:sub(1, 8))
    assert.is_falsy(s:find("\n", 1, true))
    for _, part in ipairs({ "409", "invalid_request_error", "An agent with this identifier already exists",
      "POST", "/v1/agents", "abc123" }) do
      assert.is_truthy(s:find(part, 1, true), "missing " .. part .. " in " .. s)
    end
  end)

  it("has no 'nil' when there is no request id", function()
    local s = tostring(core.normalize("GET", "/v1/agents", 500, {}, '{"error":"Internal server error"}'))
    assert.are.equal("onecli: ", s:sub(1, 8))
    assert.is_falsy(s:find("nil", 1, true), s)
    assert.is_truthy(s:find("500", 1, true), s)
    assert.is_truthy(s:find("Internal server error", 1, true), s)
  end)

  it("stays on one line when the message contains newlines", function()
    local err = core.normalize("GET", "/v1/x", 500, {},
      '{"error":{"message":"line one\\nline two\\r\\nline three","type":"api_error"}}')
    local s = tostring(err)
    assert.is_falsy(s:find("[\r\n]"), s)
    assert.is_truthy(s:find("line one", 1, true), s)
    assert.is_truthy(s:find("line three", 1, true), s)
  end)

  it("works for transport errors (no status, no 'nil')", function()
    local err = core.transport_error("GET", "/v1/agents", "COULDNT_CONNECT",
      "Failed to connect to localhost port 10254: Connection refused")
    local s = tostring(err)
    assert.are.equal("onecli: ", s:sub(1, 8))
    assert.is_falsy(s:find("\n", 1, true))
    assert.is_falsy(s:find("nil", 1, true), s)
    for _, part in ipairs({ "connection_error", "Connection refused", "GET", "/v1/agents" }) do
      assert.is_truthy(s:find(part, 1, true), "missing " .. part .. " in " .. s)
    end
  end)
end)

describe("redaction in error objects", function()
  local KEY = fake_key("oc_", 7)
  local ORG_KEY = fake_key("oc_org_", 11)
  local AGENT_TOKEN = fake_key("aoc_", 13)
  local ECHO = '{"error":{"message":"Invalid API key or token: ' .. KEY .. '","type":"authentication_error"}}'

  it("masks the secret given in opts.secret everywhere", function()
    local err = core.normalize("GET", "/v1/agents?_token=" .. KEY, 401, { ["x-request-id"] = "r-" .. KEY }, ECHO,
      { secret = KEY })
    assert.are.equal(401, err.status)
    assert.are.equal("authentication_error", err.type)
    assert.is_truthy(err.message:find("Invalid API key or token: ", 1, true), "message lost its text")
    assert.is_truthy(err.path:find("/v1/agents", 1, true), "path lost its text")
    assert_no_key(err, KEY, "with secret")
  end)

  it("masks OneCLI-shaped keys when no secret is given", function()
    local err = core.normalize("GET", "/v1/agents", 401, {}, ECHO)
    assert.is_truthy(err.message:find("Invalid API key or token: ", 1, true), "message lost its text")
    assert_no_key(err, KEY, "without secret")
  end)

  it("masks org keys and agent tokens when no secret is given", function()
    local body = cjson.encode({ error = { message = "bad " .. ORG_KEY .. " and " .. AGENT_TOKEN,
      type = "authentication_error" } })
    local err = core.normalize("GET", "/v1/agents", 401, {}, body)
    assert_no_key(err, ORG_KEY, "org key")
    assert_no_key(err, AGENT_TOKEN, "agent token")
  end)

  it("masks a secret of any shape given in opts.secret, in flat and plain-text bodies", function()
    local secret = "s3cr3t-Value.with%magic+chars"
    local err = core.normalize("POST", "/v1/x", 400, {}, cjson.encode({ error = "Bad key " .. secret }),
      { secret = secret })
    assert.is_falsy(plain_find(err.message, secret), "message leaks the secret")
    assert.is_falsy(plain_find(err.body, secret), "body leaks the secret")
    assert.is_falsy(plain_find(tostring(err), secret), "tostring leaks the secret")
    assert.is_truthy(err.message:find("Bad key ", 1, true))
    err = core.normalize("POST", "/v1/x", 401, { ["content-type"] = "text/plain" }, "token " .. secret,
      { secret = secret })
    assert.is_falsy(plain_find(err.message, secret), "message leaks the secret")
    assert.is_falsy(plain_find(err.body, secret), "body leaks the secret")
  end)

  it("masks the secret in a code and a type echoed from the body", function()
    local body = cjson.encode({ error = { message = "m", type = "t_" .. KEY, code = "c_" .. KEY } })
    local err = core.normalize("GET", "/v1/x", 400, {}, body, { secret = KEY })
    assert_no_key(err, KEY, "code/type")
  end)

  it("masks a key that straddles the 4096-byte cut of the body", function()
    -- Redact, then truncate: the part of the key before the cut must not survive.
    local body = string.rep("x", 4096 - 31) .. " " .. KEY .. string.rep("y", 5000)
    local err = core.normalize("GET", "/v1/x", 500, {}, body, { secret = KEY })
    assert.is_true(#err.body <= 4096)
    assert_no_key(err, KEY, "truncated body, with secret")
    err = core.normalize("GET", "/v1/x", 500, {}, body)
    assert.is_true(#err.body <= 4096)
    assert_no_key(err, KEY, "truncated body, without secret")
  end)

  it("masks a secret of any shape that straddles the 4096-byte cut of the body", function()
    local secret = "correct-horse-battery-staple-42-xyz" -- 35 bytes, 20 of them before the cut
    local body = string.rep("x", 4096 - 20) .. secret .. string.rep("y", 5000)
    local err = core.normalize("GET", "/v1/x", 500, {}, body, { secret = secret })
    assert.is_true(#err.body <= 4096)
    assert_no_key(err, secret, "truncated body, custom secret")
  end)

  it("masks the secret in transport errors", function()
    local err = core.transport_error("GET", "/v1/agents?_token=" .. KEY, "COULDNT_CONNECT",
      "Failed to connect with Bearer " .. KEY, { secret = KEY })
    assert_no_key(err, KEY, "transport, with secret")
    err = core.transport_error("GET", "/v1/agents", "COULDNT_CONNECT", "Failed to connect with Bearer " .. KEY)
    assert_no_key(err, KEY, "transport, without secret")
    assert.is_truthy(err.message:find("Failed to connect with Bearer ", 1, true))
  end)
end)

describe("core.transport_error", function()
  local CASES = {
    { "COULDNT_CONNECT", "connection_error", true },
    { "COULDNT_RESOLVE_HOST", "connection_error", true },
    { "GOT_NOTHING", "connection_error", true },
    { "RECV_ERROR", "connection_error", true },
    { "OPERATION_TIMEDOUT", "timeout_error", true },
    { "PEER_FAILED_VERIFICATION", "tls_error", false },
    { "SSL_CONNECT_ERROR", "tls_error", false },
    { "SSL_CACERT_BADFILE", "tls_error", false },
  }
  for _, c in ipairs(CASES) do
    local code, etype, retryable = c[1], c[2], c[3]
    it(code, function()
      local msg = "curl says: " .. code:lower()
      local err = core.transport_error("GET", "/v1/agents", code, msg, { attempts = 2, request_sent = false })
      assert.is_true(core.is_error(err))
      assert.is_nil(err.status)
      assert.are.equal(etype, err.type)
      assert.are.equal(retryable, err.retryable)
      assert.are.equal(code, err.code)
      assert.are.equal(msg, err.message)
      assert.are.equal("GET", err.method)
      assert.are.equal("/v1/agents", err.path)
      assert.are.equal(2, err.attempts)
      assert.is_nil(err.request_id)
      assert.is_nil(err.body)
    end)
  end

  it("defaults attempts to 1", function()
    local err = core.transport_error("DELETE", "/v1/agents/x", "GOT_NOTHING", "Empty reply from server")
    assert.are.equal(1, err.attempts)
    assert.are.equal("Empty reply from server", err.message)
  end)

  it("shares the metatable of normalize's errors", function()
    local a = core.transport_error("GET", "/", "COULDNT_CONNECT", "refused")
    local b = core.normalize("GET", "/", 500, {}, "")
    assert.are.equal(getmetatable(a), getmetatable(b))
    assert.is_not_nil(getmetatable(a))
  end)
end)

describe("core.new_error and core.is_error", function()
  it("new_error gives a table the shared metatable and returns it", function()
    local t = { status = 418, type = "invalid_request_error", message = "I'm a teapot", method = "GET",
      path = "/v1/tea", retryable = false, attempts = 1 }
    local err = core.new_error(t)
    assert.are.equal(t, err)
    assert.is_true(core.is_error(err))
    assert.are.equal(getmetatable(core.normalize("GET", "/", 400, {}, "")), getmetatable(err))
    local s = tostring(err)
    assert.are.equal("onecli: ", s:sub(1, 8))
    assert.is_truthy(s:find("I'm a teapot", 1, true), s)
    assert.is_truthy(s:find("418", 1, true), s)
  end)

  it("is_error is false for anything else", function()
    assert.is_false(core.is_error(nil))
    assert.is_false(core.is_error("onecli: 500 api_error"))
    assert.is_false(core.is_error(42))
    assert.is_false(core.is_error({ status = 500, type = "api_error", message = "x" }))
    assert.is_false(core.is_error(setmetatable({}, { __tostring = function() return "onecli: x" end })))
    assert.is_false(core.is_error(core.null))
  end)

  it("normalize and transport_error return errors", function()
    assert.is_true(core.is_error(core.normalize("GET", "/", 404, {}, "")))
    assert.is_true(core.is_error(core.transport_error("GET", "/", "COULDNT_CONNECT", "x")))
  end)
end)
