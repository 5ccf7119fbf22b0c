-- The C core against hostile answers and input (issue 7): error objects
-- stay one bounded line with a machine-token type and a finite
-- Retry-After; redaction survives glued and escaped keys; base URLs and
-- path segments cannot change where a request goes; one decision says
-- whether a failed request may have been sent.
-- Assertions never print a credential: failures name the case.

local core = require("onecli.core")

local function fake_key(prefix, seed, n)
  local x, out = seed, {}
  for i = 1, n or 64 do
    x = (x * 75 + 74) % 65537
    out[i] = string.format("%x", x % 16)
  end
  return prefix .. table.concat(out)
end

local KEY = fake_key("oc_", 11)

-- every \uXXXX (ASCII) and %XX decoded once
local function decoded(s)
  s = s:gsub("\\u00([0-7]%x)", function(h) return string.char(tonumber(h, 16)) end)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function survives(s, secret)
  if type(s) ~= "string" then return false end
  local body = secret:gsub("^oc_org_", ""):gsub("^a?oc_", "")
  for _, form in ipairs({ s, decoded(s) }) do
    if form:find(secret, 1, true) or form:find(body, 1, true) then return true end
  end
  return false
end

local function one_line(s)
  return not s:find("[%z\1-\31\127]") and not s:find("\226\128[\168\169]")
end

describe("error objects from hostile answers", function()
  it("a body type that is not a machine token is not used (no forged log line)", function()
    for _, t in ipairs({ "x\nINFO forged", "", "  ", "Not_Found", "a b", string.rep("a", 65),
                         "type\r\nX: y", "\226\128\168sep" }) do
      local body = core.json_encode({ error = { message = "bad", type = t } })
      local err = core.normalize("GET", "/v1/x", 400, {}, body)
      assert.are.equal("invalid_request_error", err.type, "type " .. string.format("%q", t))
      assert.is_true(one_line(tostring(err)), "tostring is one line for type " .. string.format("%q", t))
    end
    local err = core.normalize("GET", "/v1/x", 403, {},
      '{"error":{"message":"m","type":"enterprise_license_required"}}')
    assert.are.equal("enterprise_license_required", err.type)
  end)

  it("an empty or blank message falls back to the reason phrase", function()
    for _, m in ipairs({ "", "   ", "\n\t" }) do
      local err = core.normalize("GET", "/v1/x", 400, {}, core.json_encode({ error = m }))
      assert.are.equal("Bad Request", err.message)
      assert.matches("^onecli: 400 invalid_request_error: Bad Request ", tostring(err))
    end
  end)

  it("tostring folds every control character and Unicode line break of every field", function()
    local err = core.new_error({ status = 500, type = "api\nerror",
                                 message = "a\0b\rc\27[31md\127e\194\133f\226\128\169g",
                                 method = "GET\n", path = "/v1/\r\nx", request_id = "r\n1", hint = "h\nh" })
    local line = tostring(err)
    assert.is_true(one_line(line), "not one line")
    assert.is_nil(line:find("\194\133", 1, true))
  end)

  it("Retry-After of 400 nines is finite (capped at 2^31 - 1)", function()
    local err = core.normalize("GET", "/v1/x", 429, { ["retry-after"] = string.rep("9", 400) }, "")
    assert.are.equal(2147483647, err.retry_after)
    assert.are.equal(2147483647, core.parse_retry_after(string.rep("9", 400)))
    assert.are.equal(2147483647, core.parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", 0))
    assert.are.equal(120, core.parse_retry_after("120"))
  end)

  it("a 1 MB path, message or request id makes a bounded error and a bounded line", function()
    local huge = "/v1/agents/" .. string.rep("a", 1024 * 1024)
    local err = core.normalize("GET", huge, 404, { ["x-request-id"] = string.rep("r", 100000) },
                               '{"error":{"message":"' .. string.rep("m", 1024 * 1024)
                               .. '","type":"not_found_error"}}')
    assert.is_true(#err.path <= 1024, "path " .. #err.path)
    assert.are.equal("...", err.path:sub(-3))
    assert.is_true(#err.message <= 2048, "message " .. #err.message)
    assert.is_true(#err.request_id <= 128)
    assert.is_true(#err.body <= 4096)
    assert.is_true(err.body_truncated)
    assert.is_true(#tostring(err) <= 4096, "tostring " .. #tostring(err))
    local t = core.transport_error("GET", huge, "COULDNT_CONNECT", string.rep("x", 100000))
    assert.is_true(#t.path <= 1024 and #t.message <= 2048 and #tostring(t) <= 4096)
  end)

  it("a cut never splits a UTF-8 character", function()
    local err = core.normalize("GET", "/v1/" .. string.rep("\195\169", 2000), 404, {}, "")
    assert.is_nil(err.path:sub(1, -4):find("[\192-\255]$"), "ends inside a character")
  end)

  it("a workspace header refusal carries a hint naming the option and the variables", function()
    for _, m in ipairs({ "X-Project-Id header is required",
                         "X-Workspace-Id (formerly X-Project-Id) header is required" }) do
      local err = core.normalize("GET", "/v1/agents", 401, {},
        '{"error":{"message":"' .. m .. '","type":"authentication_error"}}')
      assert.matches("project_id", err.hint, 1, true)
      assert.matches("ONECLI_WORKSPACE_ID", tostring(err), 1, true)
    end
  end)
end)

describe("redaction of keys glued, escaped and encoded", function()
  it("a key glued to another key-shaped token (the shape match ate its 'oc')", function()
    local s = "token oc_AAAAAAAAAAAAAAAA" .. KEY .. " end"
    for _, secret in ipairs({ KEY, false }) do
      local out = core.redact(s, secret or nil)
      assert.is_false(survives(out, KEY), "with" .. (secret and "" or "out") .. " the secret")
      assert.matches("^token ", out)
      assert.matches(" end$", out)
    end
  end)

  it("a key echoed JSON-escaped, percent-encoded, or mixed", function()
    local function json_escaped(k, every)
      return (k:gsub("()(.)", function(i, c)
        if every or i % 2 == 0 then return string.format("\\u%04x", c:byte()) end
      end))
    end
    local function percent(k, upper)
      return (k:gsub(".", function(c) return string.format(upper and "%%%02X" or "%%%02x", c:byte()) end))
    end
    local forms = { json_escaped(KEY, true), json_escaped(KEY, false), percent(KEY, true), percent(KEY, false),
                    KEY:sub(1, 10) .. percent(KEY:sub(11, 30)) .. json_escaped(KEY:sub(31), true) }
    for i, form in ipairs(forms) do
      local body = '{"error":"Invalid key ' .. form .. '"}'
      assert.is_false(survives(core.redact(body, KEY), KEY), "form " .. i .. " with the secret")
      assert.is_false(survives(core.redact(body), KEY), "form " .. i .. " by shape")
      local err = core.normalize("GET", "/v1/x", 401, {}, body, { secret = KEY })
      assert.is_false(survives(err.body, KEY), "form " .. i .. " in err.body")
      assert.is_false(survives(err.message, KEY), "form " .. i .. " in err.message")
      local decoded_body = require("cjson.safe").decode(err.body)
      assert.is_false(survives(decoded_body and decoded_body.error or "", KEY), "form " .. i .. " decoded")
    end
  end)

  it("the secret's body without its prefix, and a secret that is not key-shaped", function()
    assert.is_false(survives(core.redact("id=" .. KEY:sub(4) .. ";", KEY), KEY))
    local secret = "correct horse battery staple"
    assert.are.equal("x[REDACTED]y", core.redact("x" .. secret .. "y", secret))
    -- glued inside a key-shaped run, the exact secret still goes first
    local odd = "mysecret-123"
    local out = core.redact("oc_AAAAAAAAAAAAAAAAA" .. odd, odd)
    assert.is_nil(out:find("123", 1, true))
  end)

  it("text that only looks like keys split by underscores is left alone (fuzzer finding)", function()
    for _, s in ipairs({ "aoc_AAAAoc_6AQAAAoc_AAQAAAoc", "oc_6AQAAAoc_AAQAAAoc",
                         '"type":"inoc_valid_request_error"' }) do
      assert.are.equal(s, core.redact(s))
    end
  end)

  it("an error body is redacted in a bounded window, then cut", function()
    local body = string.rep("z", 5000) .. KEY .. string.rep("y", 10 * 1024 * 1024)
    local err = core.normalize("GET", "/v1/x", 500, {}, body, { secret = KEY })
    assert.are.equal(4096, #err.body)
    assert.is_true(err.body_truncated)
    local cut = core.normalize("GET", "/v1/x", 500, {}, string.rep("z", 4090) .. KEY, { secret = KEY })
    assert.is_false(survives(cut.body, KEY), "a key across the cut")
  end)
end)

describe("core.normalize_url", function()
  it("never repeats credentials or key-shaped text in its messages", function()
    local secret = fake_key("oc_", 23)
    for _, u in ipairs({ "user:" .. secret .. "@127.0.0.1:10256", "https://u:" .. secret .. "@h/v1",
                         secret, "ftp://" .. secret .. "@h", "http://h/" .. secret .. "/?q",
                         "/://" .. secret .. "@", "\1://" .. secret .. "@h" }) do
      local url, msg = core.normalize_url(u)
      assert.is_nil(url)
      assert.is_false(survives(msg, secret), "message repeats the secret")
      assert.is_true(one_line(msg))
    end
  end)

  it("refuses what would send the request elsewhere", function()
    for _, u in ipairs({ "http://h/a/../v1", "http://h/./v1", "http://h/%2e%2E/v1", "http://h/.%2e",
                         "http://h\\@evil/v1", "http://h/v1\r\nX: y", "http://h/v1\0", "http://h /v1",
                         "http://:80", "http://h:80x", "http://[::1/v1", "http://h/v1?x=1",
                         "http://h/v1#f", "http://h\195\169/v1", "javascript://h", "" }) do
      local url, msg = core.normalize_url(u)
      assert.is_nil(url, u)
      assert.is_string(msg)
    end
  end)

  it("normalizes and is idempotent", function()
    for _, c in ipairs({ { "HTTP://Host:80//", "http://Host:80/v1", "/v1" },
                         { "https://api.onecli.sh", "https://api.onecli.sh/v1", "/v1" },
                         { "http://[::1]:10254/api/", "http://[::1]:10254/api", "/api" },
                         { "http://h/a...b/v1", "http://h/a...b/v1", "/a...b/v1" } }) do
      local url, base = core.normalize_url(c[1])
      assert.are.equal(c[2], url)
      assert.are.equal(c[3], base)
      assert.are.equal(url, (core.normalize_url(url)))
    end
  end)
end)

describe("core.path_segment", function()
  it("refuses dot segments and the empty string", function()
    for _, s in ipairs({ ".", "..", "" }) do
      local seg, msg = core.path_segment(s)
      assert.is_nil(seg)
      assert.is_string(msg)
    end
  end)

  it("encodes everything but the unreserved characters, and decodes back", function()
    for _, s in ipairs({ "...", "a/b", "%2e%2e", "a b", "\0\255", "~-._", "?#[]@", "\\" }) do
      local seg = core.path_segment(s)
      assert.matches("^[%w%-%._~%%]+$", seg)
      assert.are.equal(s, (seg:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
    end
    assert.are.equal("%2E%2E", (core.path_segment("%2E%2E"):gsub("%%25", "%%")))
  end)
end)

describe("core.request_sent: may a failed request have reached the server?", function()
  it("never, when the transport counted that it did not start", function()
    for _, code in ipairs({ "COULDNT_CONNECT", "OPERATION_TIMEDOUT", "RECV_ERROR", "GOT_NOTHING",
                            "UNSUPPORTED_PROTOCOL", "WEIRD_SERVER_REPLY", "SSL_CONNECT_ERROR" }) do
      assert.is_false(core.request_sent(code, { sends = 0, bytes = 0 }), code)
    end
  end)

  it("may have, once it started or wrote bytes, whatever libcurl's code", function()
    for _, code in ipairs({ "COULDNT_CONNECT", "UNSUPPORTED_PROTOCOL", "URL_MALFORMAT",
                            "OPERATION_TIMEDOUT", "GOT_NOTHING", "WEIRD_SERVER_REPLY" }) do
      assert.is_true(core.request_sent(code, { sends = 1, bytes = 0 }), code .. " started")
      assert.is_true(core.request_sent(code, { bytes = 120 }), code .. " bytes")
    end
  end)

  it("without a count, only the codes of a failure before sending mean 'not sent'", function()
    local before = {}
    for _, code in ipairs(core.before_send_codes) do
      before[code] = true
      assert.is_false(core.request_sent(code, { bytes = 0 }), code)
      assert.is_false(core.request_sent(code), code)
    end
    for _, code in ipairs({ "OPERATION_TIMEDOUT", "GOT_NOTHING", "RECV_ERROR", "SEND_ERROR",
                            "WEIRD_SERVER_REPLY", "PARTIAL_FILE", "HTTP2", "SOMETHING_NEW" }) do
      assert.is_nil(before[code], code .. " is not a before-sending code")
      assert.is_true(core.request_sent(code), code)
    end
  end)

  it("the README's table lists exactly the before-sending codes", function()
    local f = assert(io.open("README.md", "rb"))
    local readme = f:read("*a")
    f:close()
    local section = readme:match("\n### May it have been sent%?\n(.-)\n## ")
    assert.is_string(section, "README has no 'May it have been sent?' section")
    local listed = {}
    for row in section:gmatch("\n| `([A-Z_0-9]+)` |[^\n]*before") do
      listed[row] = true
    end
    local want = {}
    for _, code in ipairs(core.before_send_codes) do want[code] = true end
    assert.are.same(want, listed)
  end)
end)
