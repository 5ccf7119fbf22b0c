-- .ci/leak-scan.lua finds a key in every encoding a log could hold it in,
-- passes a clean file, and never prints the key it found.
--
-- The keys are random, made here; the fixtures live in a temp dir that is
-- removed afterwards. The keys are also recorded in ONECLI_SPEC_KEYS_FILE
-- (when the suite sets it) like the stand-in's, so the suite's own scan
-- would find them if this spec ever printed one.
local support = require("suite.support")

local byte, format, floor = string.byte, string.format, math.floor

local function random_hex(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(floor(n / 2))
  f:close()
  return (bytes:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d = { floor(n / 262144) % 64, floor(n / 4096) % 64, floor(n / 64) % 64, n % 64 }
    out[#out + 1] = B64:sub(d[1] + 1, d[1] + 1) .. B64:sub(d[2] + 1, d[2] + 1)
      .. (b and B64:sub(d[3] + 1, d[3] + 1) or "=") .. (c and B64:sub(d[4] + 1, d[4] + 1) or "=")
  end
  return table.concat(out)
end

-- every character as \u00XX; which(i) says whether character i is escaped
local function json_escape(s, upper, which)
  local fmt = upper and "\\u%04X" or "\\u%04x"
  local i = 0
  return (s:gsub(".", function(c)
    i = i + 1
    if which and not which(i) then return c end
    return format(fmt, byte(c))
  end))
end

local function percent_escape(s, upper, which)
  local fmt = upper and "%%%02X" or "%%%02x"
  local i = 0
  return (s:gsub(".", function(c)
    i = i + 1
    if which and not which(i) then return c end
    return format(fmt, byte(c))
  end))
end

local function odd(i) return i % 2 == 1 end

describe("leak-scan (.ci/leak-scan.lua)", function()
  local dir, keys_file, api_key, org_key, api_body, org_body

  -- never show a key in an assertion message (it would land in the TAP)
  local function safe(s)
    s = tostring(s)
    for _, secret in ipairs({ api_key, org_key, api_body, org_body }) do
      if secret then s = s:gsub(secret:gsub("%W", "%%%0"), "<KEY>") end
    end
    return s
  end

  local function scan(name, content, extra_args)
    local file = support.write(dir .. "/" .. name, content)
    local args = { "--keys", keys_file }
    for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
    args[#args + 1] = file
    return support.script("leak-scan.lua", args)
  end

  local function expect_found(name, content, key_no, kind, encoding)
    local out, code = scan(name, content)
    assert.are.equal(1, code, safe(out))
    local pattern = "/" .. name:gsub("%W", "%%%0") .. ":%d+: key #" .. key_no .. " %(" .. kind .. ", "
    assert.truthy(out:find(pattern), "no finding naming the file, line and key in:\n" .. safe(out))
    assert.truthy(out:find(encoding, 1, true), "encoding '" .. encoding .. "' not named in:\n" .. safe(out))
    assert.are.equal(safe(out), out, "the scanner printed a key")
    return out
  end

  setup(function()
    dir = support.tmpdir()
    api_body, org_body = random_hex(64), random_hex(64)
    api_key, org_key = "oc_" .. api_body, "oc_org_" .. org_body
    keys_file = support.write(dir .. "/keys.txt", "api_key " .. api_key .. "\norg_key " .. org_key .. "\n")
    local suite_keys = os.getenv("ONECLI_SPEC_KEYS_FILE")
    if suite_keys and suite_keys ~= "" then
      local f = io.open(suite_keys, "a")
      if f then
        f:write("api_key " .. api_key .. "\norg_key " .. org_key .. "\n")
        f:close()
      end
    end
  end)

  teardown(function()
    support.rmdir(dir)
  end)

  it("passes a clean file, and a placeholder key", function()
    local out, code = scan("clean.log", "ok 1 - a test\nAuthorization: Bearer oc_" .. ("7e57"):rep(16)
      .. "\nkey oc_" .. ("0"):rep(64) .. " and oc_org_" .. ("0a9e"):rep(16) .. "\n")
    assert.are.equal(0, code, safe(out))
    assert.truthy(out:find("^no API key found %(1 files"), safe(out))
  end)

  it("finds the raw key and names file, line, key and kind", function()
    local out = expect_found("raw.log", "line one\nAuthorization: Bearer " .. api_key .. "\n", 1, "api_key", "raw")
    assert.truthy(out:find("/raw%.log:2: key #1 %(api_key, oc_<64 chars>%) raw"), safe(out))
  end)

  it("finds the second key by its number and kind", function()
    expect_found("org.log", "x-org: " .. org_key .. "\n", 2, "org_key", "raw")
  end)

  it("finds the key's body without its prefix", function()
    expect_found("body.log", "token=" .. api_body .. ";\n", 1, "api_key", "body without its oc_ prefix")
    expect_found("org-body.log", '"' .. org_body .. '"\n', 2, "org_key", "body without its oc_org_ prefix")
  end)

  it("finds the key with every character as \\u00XX, upper and lower hex", function()
    expect_found("json-upper.log", '{"api_key":"' .. json_escape(api_key, true) .. '"}\n', 1, "api_key",
      "JSON-escaped")
    expect_found("json-lower.log", '{"api_key":"' .. json_escape(api_key, false) .. '"}\n', 1, "api_key",
      "JSON-escaped")
  end)

  it("finds the key with \\u00XX escapes mixed with raw characters", function()
    expect_found("json-mixed.log", '{"k":"' .. json_escape(api_key, true, odd) .. '"}\n', 1, "api_key",
      "JSON-escaped")
    expect_found("json-org-mixed.log", json_escape(org_key, false, function(i) return i % 3 == 0 end) .. "\n",
      2, "org_key", "JSON-escaped")
  end)

  it("finds the key percent-encoded, upper, lower and mixed", function()
    expect_found("pct-upper.log", "GET /x?key=" .. percent_escape(api_key, true) .. "\n", 1, "api_key",
      "percent-encoded")
    expect_found("pct-lower.log", "GET /x?key=" .. percent_escape(api_key, false) .. "\n", 1, "api_key",
      "percent-encoded")
    expect_found("pct-mixed.log", "GET /x?key=" .. percent_escape(api_key, true, odd) .. "\n", 1, "api_key",
      "percent-encoded")
  end)

  it("finds the key in base64 on its own", function()
    expect_found("b64.log", "data: " .. base64(api_key) .. "\n", 1, "api_key", "base64 (alignment 0)")
  end)

  it("finds the key in the base64 of Basic auth, at each of the three alignments", function()
    -- "x:" puts the key 2 bytes after a 3-byte boundary, "abc:" 1, "ab:" 0
    expect_found("basic-x.log", "Authorization: Basic " .. base64("x:" .. api_key) .. "\n", 1, "api_key",
      "base64 (alignment 2)")
    expect_found("basic-abc.log", "Authorization: Basic " .. base64("abc:" .. api_key) .. "\n", 1, "api_key",
      "base64 (alignment 1)")
    expect_found("basic-ab.log", "Authorization: Basic " .. base64("ab:" .. org_key) .. "\n", 2, "org_key",
      "base64 (alignment 0)")
    expect_found("basic-user.log", "Authorization: Basic " .. base64("someone:" .. api_key) .. "\n", 1,
      "api_key", "base64")
  end)

  it("flags a key-shaped token that is not a known key, without printing it", function()
    local stranger = random_hex(64)
    local out, code = scan("unknown.log", "a\nb\nleaked oc_" .. stranger .. " here\n")
    assert.are.equal(1, code, safe(out))
    assert.truthy(out:find("/unknown%.log:3: unknown api_key%-shaped token %(oc_<64 chars>, fingerprint %x+%)"),
      safe(out))
    assert.falsy(out:find(stranger:sub(1, 16), 1, true), "the scanner printed the token")
    out, code = scan("unknown-org.log", "oc_org_" .. random_hex(64) .. "\n")
    assert.are.equal(1, code, safe(out))
    assert.truthy(out:find("unknown org_key%-shaped token"), safe(out))
  end)

  it("never prints any part of a key it found", function()
    local content = table.concat({ api_key, org_key, api_body, json_escape(api_key, true),
      percent_escape(org_key, false), base64("x:" .. api_key) }, "\n") .. "\n"
    local out, code = scan("all.log", content)
    assert.are.equal(1, code, safe(out))
    for _, secret in ipairs({ api_body, org_body }) do
      for i = 1, #secret - 11, 4 do
        assert.falsy(out:find(secret:sub(i, i + 11), 1, true), "the scanner printed part of a key")
      end
    end
  end)

  it("does not scan its keys file, and walks a directory", function()
    local sub = dir .. "/walk"
    assert.truthy(os.execute("mkdir -p " .. support.quote(sub)) ~= false)
    support.write(sub .. "/keys.txt", "api_key " .. api_key .. "\n")
    support.write(sub .. "/clean.tap", "ok 1 - fine\n1..1\n")
    support.write(sub .. "/binary.so", api_key)   -- not a log: skipped in a directory walk
    local out, code = support.script("leak-scan.lua", { "--keys", sub .. "/keys.txt", sub })
    assert.are.equal(0, code, safe(out))
    assert.truthy(out:find("^no API key found %(1 files"), safe(out))
    support.write(sub .. "/ci-test.log", "x " .. percent_escape(api_key, true) .. "\n")
    out, code = support.script("leak-scan.lua", { "--keys", sub .. "/keys.txt", sub })
    assert.are.equal(1, code, safe(out))
    assert.truthy(out:find("/ci%-test%.log:1: key #1"), safe(out))
  end)

  it("finds an agent token in a proxy URL and in Proxy-Authorization's base64", function()
    local token = "aoc_" .. random_hex(64)
    local kf = support.write(dir .. "/agent-keys.txt", "agent_token " .. token .. "\n")
    local function run(name, content)
      local file = support.write(dir .. "/" .. name, content)
      local out, code = support.script("leak-scan.lua", { "--keys", kf, "--require-kind", "agent_token", file })
      return out:gsub(token:gsub("%W", "%%%0"), "<TOKEN>"), code
    end
    local out, code = run("proxy-url.log", "HTTPS_PROXY=http://x:" .. token .. "@127.0.0.1:10255\n")
    assert.are.equal(1, code, out)
    assert.truthy(out:find("proxy%-url%.log:1: key #1 %(agent_token, "), out)
    out, code = run("proxy-auth.log", "> Proxy-Authorization: Basic " .. base64("x:" .. token) .. "\n")
    assert.are.equal(1, code, out)
    assert.truthy(out:find("proxy%-auth%.log:1: key #1 %(agent_token, "), out)
    assert.is_nil(out:find("<TOKEN>", 1, true), "the scanner printed the token")
    out, code = run("clean.log", "HTTPS_PROXY=http://x:<token>@127.0.0.1:10255\n")
    assert.are.equal(0, code, out)
  end)

  it("fails with --require-kind when no key of that kind was recorded", function()
    local out, code = support.script("leak-scan.lua", { "--keys", keys_file, "--require-kind", "agent_token",
      support.write(dir .. "/empty2.log", "nothing\n") })
    assert.are.equal(1, code, safe(out))
    assert.truthy(out:find("no key of kind agent_token recorded"), safe(out))
  end)

  it("fails with --require-keys when no key was recorded", function()
    local out, code = support.script("leak-scan.lua", { "--keys", dir .. "/none.txt", "--require-keys",
      support.write(dir .. "/empty.log", "nothing\n") })
    assert.are.equal(1, code, safe(out))
    assert.truthy(out:find("no key recorded"), safe(out))
  end)
end)
