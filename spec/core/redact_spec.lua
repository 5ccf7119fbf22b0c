-- Specs for core.redact: the masking used by every error object.
-- Assertions never print a credential: failures name the case, not the value.

local core = require("onecli.core")

-- Deterministic fake credential: prefix + n characters from the alphabet.
local HEX = "0123456789abcdef"
local ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
local function fake(prefix, seed, n, alphabet)
  alphabet = alphabet or HEX
  local x, out = seed, {}
  for i = 1, n or 64 do
    x = (x * 75 + 74) % 65537
    local j = x % #alphabet + 1
    out[i] = alphabet:sub(j, j)
  end
  return prefix .. table.concat(out)
end

local function contains(s, needle)
  return s:find(needle, 1, true) ~= nil
end

local function starts(s, prefix)
  return s:sub(1, #prefix) == prefix
end

local function ends(s, suffix)
  return suffix == "" or s:sub(-#suffix) == suffix
end

-- true if s contains the key or any `len`-byte fragment of it
local function leaks(s, key, len)
  len = len or 12
  if contains(s, key) then return true end
  for i = 1, #key - len + 1 do
    if contains(s, key:sub(i, i + len - 1)) then return true end
  end
  return false
end

local KEY = fake("oc_", 3)
local ORG_KEY = fake("oc_org_", 5)
local AGENT_TOKEN = fake("aoc_", 9)

describe("core.redact with an explicit secret", function()
  it("masks the secret and keeps the surrounding text", function()
    local out = core.redact("Authorization: Bearer " .. KEY .. " (rejected)", KEY)
    assert.are.equal("string", type(out))
    assert.is_false(leaks(out, KEY), "output leaks the key")
    assert.is_true(starts(out, "Authorization: Bearer "), "prefix text lost")
    assert.is_true(ends(out, " (rejected)"), "suffix text lost")
    assert.is_true(#out > #"Authorization: Bearer  (rejected)", "the key was removed, not masked")
  end)

  it("masks a secret that is not shaped like a OneCLI key", function()
    local secret = "correct-horse-battery-staple-42"
    local out = core.redact("password=" .. secret .. "&user=bob", secret)
    assert.is_false(contains(out, secret), "output contains the secret")
    assert.is_false(leaks(out, secret, 8), "output leaks a fragment of the secret")
    assert.is_true(starts(out, "password="), "prefix lost")
    assert.is_true(ends(out, "&user=bob"), "suffix lost")
  end)

  it("masks every occurrence, including adjacent ones", function()
    local secret = "tok-Zq81xYw9"
    local out = core.redact(secret .. " then " .. secret .. secret .. " and /" .. secret, secret)
    assert.is_false(contains(out, secret), "an occurrence survived")
    assert.is_true(contains(out, " then "), "text between occurrences lost")
    assert.is_true(contains(out, " and /"), "text between occurrences lost")
  end)

  it("masks a secret occurring twice inside longer words", function()
    local secret = "Kx7Kx7Kx7q"
    local out = core.redact("pre" .. secret .. "post pre" .. secret .. "post", secret)
    assert.is_false(contains(out, secret), "an occurrence survived")
    assert.is_true(starts(out, "pre") and ends(out, "post"), "surrounding text lost")
  end)

  it("treats Lua pattern magic characters literally", function()
    local secret = "p%a.s-s*w+o?r[d]^$(x)"
    local out = core.redact("a " .. secret .. " b " .. secret, secret)
    assert.is_false(contains(out, secret), "an occurrence survived")
    assert.is_true(starts(out, "a ") and contains(out, " b "), "surrounding text lost")
  end)

  it("does not mask text that only matches the secret as a pattern", function()
    -- As a Lua pattern, "v.1-2" would also match "vX2"; redact must not.
    local secret = "v.1-2"
    local out = core.redact("vX1-2 vX2 v.1-2", secret)
    assert.is_true(starts(out, "vX1-2 vX2 "), "non-matching text was changed: " .. out)
    assert.is_false(contains(out, secret), "the real occurrence survived")
  end)

  it("handles a secret with a percent sign in a replacement-sensitive position", function()
    local secret = "100%%secret%1"
    local out = core.redact("x" .. secret .. "y", secret)
    assert.is_false(contains(out, secret), "the secret survived")
    assert.is_true(starts(out, "x") and ends(out, "y"), "surrounding text lost")
  end)

  it("works across embedded NUL bytes", function()
    local out = core.redact("a\0b " .. KEY .. " \0c", KEY)
    assert.is_false(leaks(out, KEY), "output leaks the key")
    assert.is_true(starts(out, "a\0b "), "bytes before the key lost")
    assert.is_true(ends(out, " \0c"), "bytes after the key lost")
  end)

  it("works on a long string with the secret at the very end", function()
    local s = string.rep("z", 1024 * 1024) .. KEY
    local out = core.redact(s, KEY)
    assert.is_false(contains(out, KEY), "output contains the key")
    assert.is_true(starts(out, string.rep("z", 1024 * 1024)), "prefix changed")
  end)

  it("returns the text unchanged when the secret does not occur", function()
    assert.are.equal("nothing to hide here", core.redact("nothing to hide here", "oc_notpresent"))
  end)

  it("an empty secret masks nothing", function()
    assert.are.equal("hello world", core.redact("hello world", ""))
  end)

  it("handles an empty string", function()
    assert.are.equal("", core.redact("", KEY))
    assert.are.equal("", core.redact(""))
  end)
end)

describe("core.redact without a secret", function()
  local SHAPES = {
    { "project key (oc_ + 64 hex)", KEY },
    { "org key (oc_org_ + 64 hex)", ORG_KEY },
    { "agent token (aoc_ + 64 hex)", AGENT_TOKEN },
    { "oc_ + 16 hex", fake("oc_", 17, 16) },
    { "oc_ + 32 alnum", fake("oc_", 19, 32, ALNUM) },
    { "aoc_ + 20 alnum", fake("aoc_", 23, 20, ALNUM) },
    { "oc_org_ + 16 alnum", fake("oc_org_", 29, 16, ALNUM) },
  }
  for _, c in ipairs(SHAPES) do
    local label, key = c[1], c[2]
    it("masks a " .. label, function()
      local out = core.redact("Invalid API key or token: " .. key .. ". Try again.")
      assert.is_false(leaks(out, key, 12), "output leaks the " .. label)
      assert.is_true(starts(out, "Invalid API key or token: "), "prefix lost")
      assert.is_true(ends(out, ". Try again."), "suffix lost")
    end)
  end

  it("masks a key right after a JSON escape or a percent-encoded byte", function()
    -- Raw bodies are JSON text: a message "...\noc_..." arrives as the bytes \ n o c _ ...;
    -- a URL echoed in a body may be percent-encoded (_token%3Doc_...).
    local bad = {}
    for _, prefix in ipairs({ "line\\n", "tab\\t", "quote\\u0022", "_token%3D", "Bearer%20" }) do
      local out = core.redact("{\"m\":\"" .. prefix .. KEY .. "\"}")
      if leaks(out, KEY) then bad[#bad + 1] = prefix end
      assert.is_true(contains(out, prefix), "text before the key lost after " .. prefix)
    end
    assert.is_true(#bad == 0, "key leaked after: " .. table.concat(bad, "  "))
  end)

  it("masks several keys of different kinds in one string", function()
    local s = "key=" .. KEY .. "&org=" .. ORG_KEY .. "\nproxy http://x:" .. AGENT_TOKEN .. "@localhost:10255"
    local out = core.redact(s)
    assert.is_false(leaks(out, KEY), "project key leaked")
    assert.is_false(leaks(out, ORG_KEY), "org key leaked")
    assert.is_false(leaks(out, AGENT_TOKEN), "agent token leaked")
    assert.is_true(contains(out, "&org="), "text between keys lost")
    assert.is_true(contains(out, "@localhost:10255"), "text after the token lost")
  end)

  it("masks a key inside JSON", function()
    local s = '{"error":{"message":"Invalid API key or token: ' .. KEY .. '","type":"authentication_error"}}'
    local out = core.redact(s)
    assert.is_false(leaks(out, KEY), "output leaks the key")
    assert.is_true(starts(out, '{"error":{"message":"Invalid API key or token: '), "prefix lost")
    assert.is_true(ends(out, '","type":"authentication_error"}}'), "suffix lost")
  end)

  it("leaves ordinary text unchanged", function()
    for _, s in ipairs({
      "Unknown provider: no-such-provider",
      "DELETE /v1/agents/9ce7a1a6-2938-4df9-83c4-f4f854c85673",
      "approval_not_found",
      "rate_limit and oc_ are words",
      "oc_<API_KEY> and aoc_<AGENT_TOKEN> are placeholders",
      "oc_short1234 is too short",
      "h\195\169llo \230\151\165\230\156\172",
      "",
    }) do
      assert.are.equal(s, core.redact(s))
      assert.are.equal(s, core.redact(s, nil))
    end
  end)

  it("masks the shaped keys and the given secret together", function()
    local secret = "my-own-secret-value"
    local out = core.redact(secret .. " " .. KEY, secret)
    assert.is_false(contains(out, secret), "secret survived")
    assert.is_false(leaks(out, KEY), "key survived")
  end)
end)
