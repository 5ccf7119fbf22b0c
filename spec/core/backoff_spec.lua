-- Specs for the retry arithmetic of the C core: core.parse_retry_after and
-- core.backoff. Expected values are worked out by hand from the contract.

local core = require("onecli.core")

local EPS = 1e-9

local function is_finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

describe("core.parse_retry_after with delay-seconds", function()
  it("parses whole seconds", function()
    assert.are.equal(3, core.parse_retry_after("3"))
    assert.are.equal(0, core.parse_retry_after("0"))
    assert.are.equal(120, core.parse_retry_after("120"))
    assert.are.equal(86400, core.parse_retry_after("86400"))
  end)

  it("returns a number, not a string", function()
    assert.are.equal("number", type(core.parse_retry_after("7")))
  end)

  it("accepts 1.5 as 1.5 or rejects it with nil", function()
    local v = core.parse_retry_after("1.5")
    assert.is_true(v == nil or v == 1.5, tostring(v))
  end)

  it("returns nil for garbage", function()
    local bad = {}
    for _, s in ipairs({ "", " ", "soon", "3abc", "abc3", "-1", "-0.5", "+3", "0x10", "nan", "NaN", "inf",
      "infinity", "1e3", "3 seconds", "Wed, 32 Oct 2015 07:28:00 GMT", "Wed, 21 Xyz 2015 07:28:00 GMT",
      "21 Oct 2015" }) do
      local v = core.parse_retry_after(s)
      if v ~= nil then bad[#bad + 1] = string.format("%q -> %s", s, tostring(v)) end
    end
    assert.is_true(#bad == 0, "not rejected: " .. table.concat(bad, ", "))
  end)

  it("returns nil when the header is absent", function()
    assert.is_nil(core.parse_retry_after(nil))
  end)

  it("never returns a negative or non-finite value for long digit strings", function()
    local v = core.parse_retry_after("99999999999999999999999")
    assert.is_true(v == nil or (is_finite(v) and v >= 0), tostring(v))
  end)
end)

describe("core.parse_retry_after with an HTTP-date", function()
  -- Epoch seconds worked out independently (date -u -d ... +%s).
  local DATES = {
    { "Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 },
    { "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000 },
    { "Sun, 31 Dec 2028 23:59:59 GMT", 1861919999 },
    { "Mon, 01 Jan 2001 00:00:00 GMT", 978307200 },
    { "Mon, 01 Mar 1999 00:00:00 GMT", 920246400 },
    { "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648 },
  }

  it("Wed, 21 Oct 2015 07:28:00 GMT seen 10 s before is 10", function()
    assert.are.equal(10, core.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 10))
  end)

  for _, d in ipairs(DATES) do
    it(d[1], function()
      assert.are.equal(10, core.parse_retry_after(d[1], d[2] - 10))
      assert.are.equal(3600, core.parse_retry_after(d[1], d[2] - 3600))
      assert.are.equal(0, core.parse_retry_after(d[1], d[2]))
    end)
  end

  it("a date in the past gives 0", function()
    assert.are.equal(0, core.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 1))
    assert.are.equal(0, core.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 86400 * 365))
    assert.are.equal(0, core.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"))
  end)

  it("uses the current time when now is not given", function()
    local when = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600)
    local v = core.parse_retry_after(when)
    assert.is_true(type(v) == "number" and v >= 3590 and v <= 3601, tostring(v))
  end)
end)

describe("core.backoff without retry_after", function()
  -- d = min(max, base * 2^(attempt-1)); result = d/2 + r*d/2
  local CASES = {
    -- attempt, opts, expected
    { 1, { random = 0 }, 0.25 },
    { 1, { random = 0.5 }, 0.375 },
    { 2, { random = 0 }, 0.5 },
    { 2, { random = 0.5 }, 0.75 },
    { 3, { random = 0 }, 1 },
    { 3, { random = 0.25 }, 1.25 },
    { 4, { random = 0 }, 2 },
    { 5, { random = 0 }, 4 },
    { 5, { random = 0.5 }, 6 },
    { 6, { random = 0 }, 4 },     -- d capped at 8
    { 6, { random = 0.75 }, 7 },
    { 5, { base = 1, max = 30, random = 0.25 }, 10 }, -- d = 16
    { 6, { base = 1, max = 30, random = 0 }, 15 },    -- d = min(30, 32)
    { 1, { base = 10, max = 3, random = 0 }, 1.5 },   -- max below base
    { 3, { base = 0.1, max = 8, random = 0.5 }, 0.3 }, -- d = 0.4
  }
  for _, c in ipairs(CASES) do
    local attempt, opts, expected = c[1], c[2], c[3]
    local label = string.format("attempt %d base=%s max=%s random=%s -> %s", attempt, tostring(opts.base),
      tostring(opts.max), tostring(opts.random), tostring(expected))
    it(label, function()
      assert.is_near(expected, core.backoff(attempt, opts), EPS)
    end)
  end

  it("random close to 1 stays below d", function()
    local v = core.backoff(6, { random = 0.999999 })
    assert.is_true(v > 7.99 and v <= 8, tostring(v))
  end)

  it("uses defaults when opts is empty or missing", function()
    for _ = 1, 50 do
      local v = core.backoff(3, {})
      assert.is_true(v >= 1 - EPS and v <= 2 + EPS, tostring(v))
      v = core.backoff(1)
      assert.is_true(v >= 0.25 - EPS and v <= 0.5 + EPS, tostring(v))
    end
  end)

  it("jitters with the internal PRNG, within [d/2, d]", function()
    local seen, distinct = {}, 0
    for _ = 1, 200 do
      local v = core.backoff(4, { base = 0.5, max = 8 }) -- d = 4
      assert.is_true(v >= 2 - EPS and v <= 4 + EPS, tostring(v))
      if not seen[v] then seen[v] = true; distinct = distinct + 1 end
    end
    assert.is_true(distinct >= 10, "only " .. distinct .. " distinct delays in 200 draws")
  end)

  it("does not overflow for huge attempts", function()
    for _, attempt in ipairs({ 31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 10000, 1000000 }) do
      local v = core.backoff(attempt, { random = 0 })
      assert.is_true(is_finite(v), "attempt " .. attempt .. " gave " .. tostring(v))
      assert.is_near(4, v, EPS)
      v = core.backoff(attempt, { random = 0.999 })
      assert.is_true(is_finite(v) and v <= 8 and v >= 7.99, "attempt " .. attempt .. " gave " .. tostring(v))
    end
    assert.is_near(30, core.backoff(10000, { base = 1, max = 60, random = 0 }), EPS)
  end)

  it("is never negative and never above max", function()
    for attempt = 1, 40 do
      for _, r in ipairs({ 0, 0.1, 0.5, 0.9, 0.999 }) do
        local v = core.backoff(attempt, { base = 0.5, max = 8, random = r })
        assert.is_true(v >= 0 and v <= 8, "attempt " .. attempt .. " r " .. r .. " gave " .. tostring(v))
      end
    end
  end)
end)

describe("core.backoff with retry_after", function()
  it("returns retry_after, without jitter", function()
    assert.are.equal(7, core.backoff(1, { retry_after = 7 }))
    assert.are.equal(7, core.backoff(1, { retry_after = 7, random = 0 }))
    assert.are.equal(7, core.backoff(1, { retry_after = 7, random = 0.9 }))
    assert.are.equal(7, core.backoff(5, { retry_after = 7, random = 0.3 }))
  end)

  it("may exceed max (the server asked for it)", function()
    assert.are.equal(20, core.backoff(1, { retry_after = 20, max = 8, random = 0 }))
  end)

  it("caps at max_retry_after (default 60)", function()
    assert.are.equal(60, core.backoff(1, { retry_after = 120 }))
    assert.are.equal(60, core.backoff(1, { retry_after = 1e12, random = 0.5 }))
    assert.are.equal(120, core.backoff(1, { retry_after = 120, max_retry_after = 300 }))
    assert.are.equal(10, core.backoff(1, { retry_after = 120, max_retry_after = 10 }))
  end)

  it("retry_after 0 means retry now", function()
    assert.are.equal(0, core.backoff(3, { retry_after = 0, random = 0.5 }))
  end)

  it("keeps fractions", function()
    assert.is_near(1.5, core.backoff(1, { retry_after = 1.5 }), EPS)
  end)

  it("never returns a negative delay for a negative retry_after (it may reject it as misuse)", function()
    local ok, v = pcall(core.backoff, 1, { retry_after = -5, random = 0 })
    if ok then
      assert.is_true(type(v) == "number" and v >= 0 and v <= 60, tostring(v))
    else
      assert.are.equal("string", type(v))
    end
  end)
end)
