-- Specs for the JSON bridge of the C core: core.json_encode, core.json_decode,
-- core.null, core.array, core.empty_array.

local core = require("onecli.core")
local process = require("onecli.standin.process")

local HAS_INTEGERS = math.type ~= nil -- Lua 5.3/5.4; false on LuaJIT

-- Deep comparison that also distinguishes integer from float subtypes on 5.3+.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" and HAS_INTEGERS and math.type(a) ~= math.type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function raises_string(f)
  local ok, msg = pcall(f)
  return not ok and type(msg) == "string", msg
end

describe("core.null", function()
  it("is the lua-cjson null sentinel", function()
    assert.are.equal(require("cjson").null, core.null)
    assert.are.equal("userdata", type(core.null))
  end)

  it("decodes from JSON null", function()
    assert.are.equal(core.null, core.json_decode('{"a":null}').a)
    assert.are.equal(core.null, core.json_decode("[null]")[1])
    assert.are.equal(core.null, core.json_decode("null"))
  end)

  it("encodes as JSON null", function()
    assert.are.equal('{"a":null}', core.json_encode({ a = core.null }))
    assert.are.equal("[1,null,3]", core.json_encode({ 1, core.null, 3 }))
    assert.are.equal("null", core.json_encode(core.null))
  end)
end)

describe("core.json_decode numbers", function()
  if HAS_INTEGERS then
    it("gives Lua integers for JSON integers", function()
      local v = core.json_decode("[100]")[1]
      assert.are.equal("integer", math.type(v))
      assert.are.equal(100, v)
    end)

    it("gives integers for 0, negatives and nested values", function()
      local doc = core.json_decode('{"a":0,"b":-42,"c":{"d":[7,{"e":123456789012}]},"f":-0}')
      assert.are.equal("integer", math.type(doc.a))
      assert.are.equal(0, doc.a)
      assert.are.equal("integer", math.type(doc.b))
      assert.are.equal(-42, doc.b)
      assert.are.equal("integer", math.type(doc.c.d[1]))
      assert.are.equal(7, doc.c.d[1])
      assert.are.equal("integer", math.type(doc.c.d[2].e))
      assert.are.equal(123456789012, doc.c.d[2].e)
    end)

    it("gives integers up to 2^53 - 1 exactly", function()
      local v = core.json_decode("[9007199254740991, -9007199254740991]")
      assert.are.equal("integer", math.type(v[1]))
      assert.are.equal(9007199254740991, v[1])
      assert.are.equal("integer", math.type(v[2]))
      assert.are.equal(-9007199254740991, v[2])
    end)

    it("a top-level integer is an integer", function()
      assert.are.equal("integer", math.type(core.json_decode("3")))
    end)

    it("gives every integer of the 64-bit range exactly, floats for fractions (the acceptance text)", function()
      local v = core.json_decode(
        '{"a":9007199254740993,"b":9223372036854775807,"c":-9223372036854775808,"d":1.5,"e":1e400}')
      assert.are.equal("integer", math.type(v.a))
      assert.are.equal(9007199254740993, v.a)
      assert.are.equal("9007199254740993", string.format("%d", v.a))
      assert.are.equal("integer", math.type(v.b))
      assert.are.equal(math.maxinteger, v.b)
      assert.are.equal("integer", math.type(v.c))
      assert.are.equal(math.mininteger, v.c)
      assert.are.equal("float", math.type(v.d))
      assert.are.equal(1.5, v.d)
      assert.are.equal("float", math.type(v.e))
      assert.are.equal(math.huge, v.e)   -- beyond the double range: math.huge (documented)
      assert.are.equal(-math.huge, core.json_decode("[-1e400]")[1])
    end)

    it("integers near 2^53 and 2^63 are exact, and they round-trip", function()
      for _, text in ipairs({ "9007199254740992", "9007199254740993", "-9007199254740993",
                              "9223372036854775806", "-9223372036854775807", "1234567890123456789" }) do
        local v = core.json_decode("[" .. text .. "]")[1]
        assert.are.equal("integer", math.type(v), text)
        assert.are.equal(text, string.format("%d", v))
        assert.are.equal("[" .. text .. "]", core.json_encode(core.json_decode("[" .. text .. "]")))
      end
    end)

    it("one past the 64-bit range is a float", function()
      local v = core.json_decode("[9223372036854775808, -9223372036854775809, 12345678901234567890123]")
      for i = 1, 3 do assert.are.equal("float", math.type(v[i])) end
      assert.are.equal(2 ^ 63, v[1])
      assert.are.equal(-(2 ^ 63), v[2])
      assert.are.equal(1.2345678901234568e22, v[3])
    end)

    it("integral literals with a fraction or an exponent are integers below 2^53", function()
      local v = core.json_decode("[1.0, 1e3, -2.5e1, 1e300, 9007199254740993.0]")
      assert.are.equal("integer", math.type(v[1]))
      assert.are.equal(1, v[1])
      assert.are.equal("integer", math.type(v[2]))
      assert.are.equal(1000, v[2])
      assert.are.equal("integer", math.type(v[3]))
      assert.are.equal(-25, v[3])
      assert.are.equal("float", math.type(v[4]))
      assert.are.equal("float", math.type(v[5]))
      assert.are.equal(2 ^ 53, v[5])
    end)

    it("keeps values beyond 2^64 as floats", function()
      local v = core.json_decode("[18446744073709551616, -100000000000000000000]")
      assert.are.equal("float", math.type(v[1]))
      assert.are.equal(2 ^ 64, v[1])
      assert.are.equal("float", math.type(v[2]))
      assert.are.equal(-1e20, v[2])
    end)

    it("keeps fractions as floats", function()
      local v = core.json_decode("[1.5, -0.25]")
      assert.are.equal("float", math.type(v[1]))
      assert.are.equal(1.5, v[1])
      assert.are.equal("float", math.type(v[2]))
      assert.are.equal(-0.25, v[2])
    end)
  else
    it("gives plain numbers on LuaJIT", function()
      local doc = core.json_decode('{"a":[100,-42,0],"b":1.5}')
      assert.are.equal(100, doc.a[1])
      assert.are.equal(-42, doc.a[2])
      assert.are.equal(0, doc.a[3])
      assert.are.equal(1.5, doc.b)
      assert.are.equal(9007199254740991, core.json_decode("[9007199254740991]")[1])
    end)

    it("gives the nearest double for integers above 2^53 (the acceptance text)", function()
      local v = core.json_decode(
        '{"a":9007199254740993,"b":9223372036854775807,"c":-9223372036854775808,"d":1.5,"e":1e400}')
      assert.are.equal(9007199254740992, v.a)          -- 2^53 + 1 rounds to 2^53
      assert.are.equal(2 ^ 63, v.b)
      assert.are.equal(-(2 ^ 63), v.c)
      assert.are.equal(1.5, v.d)
      assert.are.equal(math.huge, v.e)
      -- correctly rounded, as strtod would: 2^53 + 3 rounds up to 2^53 + 4
      assert.are.equal(9007199254740996, core.json_decode("[9007199254740995]")[1])
      assert.are.equal(1e20, core.json_decode("[100000000000000000000]")[1])
    end)
  end
end)

describe("core.json_decode values", function()
  it("decodes objects, arrays, strings and booleans", function()
    local doc = core.json_decode('{"s":"x","t":true,"f":false,"a":[1,"two",{"three":3}],"o":{}}')
    assert.is_true(same({ s = "x", t = true, f = false, a = { 1, "two", { three = 3 } }, o = {} }, doc))
  end)

  it("decodes escapes and UTF-8", function()
    assert.are.equal('a"b\\c/d\n\t', core.json_decode('"a\\"b\\\\c\\/d\\n\\t"'))
    assert.are.equal("\195\169", core.json_decode('"\\u00e9"'))
    assert.are.equal("\240\159\142\137", core.json_decode('"\\ud83c\\udf89"'))
    local utf8_text = "h\195\169llo \230\151\165\230\156\172"
    assert.are.equal(utf8_text, core.json_decode('"' .. utf8_text .. '"'))
  end)

  it("decodes arrays and objects larger than the part built on the stack (256), last key wins", function()
    local parts = {}
    for i = 1, 1000 do parts[i] = tostring(i) end
    local a = core.json_decode("[" .. table.concat(parts, ",") .. "]")
    assert.are.equal(1000, #a)
    for i = 1, 1000 do assert.are.equal(i, a[i]) end
    assert.is_true(core.is_array(a))
    local members = {}
    for i = 1, 600 do members[i] = string.format('"k%d":%d', i % 300, i) end   -- every key twice
    local o = core.json_decode("{" .. table.concat(members, ",") .. "}")
    local n = 0
    for _ in pairs(o) do n = n + 1 end
    assert.are.equal(300, n)
    for i = 1, 300 do assert.are.equal(i + 300, o["k" .. (i % 300)]) end
    assert.are.equal(3, core.json_decode('{"a":1,"a":2,"b":[],"a":3}').a)
  end)

  it("decodes a real capture body", function()
    local doc = core.json_decode(
      '{"error":{"message":"Agent not found","type":"not_found_error"}}')
    assert.are.equal("Agent not found", doc.error.message)
    assert.are.equal("not_found_error", doc.error.type)
  end)
end)

describe("core.json_decode on invalid input", function()
  local BAD = {
    "", " ", "{", "}", "[1,]", "[1 2]", "nul", "tru", "{'a':1}", '{"a":}', '"unterminated',
    "[1] trailing", '{"a":1}}', "<html></html>", "\0", "-", "NaN", "Infinity", "[-Infinity]", "0x10",
  }
  for _, s in ipairs(BAD) do
    it(string.format("returns nil and a message for %q", s), function()
      local ok, v, msg = pcall(core.json_decode, s)
      assert.is_true(ok, "raised: " .. tostring(v))
      assert.is_nil(v)
      assert.are.equal("string", type(msg))
      assert.is_true(#msg > 0)
    end)
  end

  it("returns nil and a message for absurdly deep nesting", function()
    local ok, v, msg = pcall(core.json_decode, string.rep("[", 100000) .. string.rep("]", 100000))
    assert.is_true(ok, "raised: " .. tostring(v))
    assert.is_nil(v)
    assert.are.equal("string", type(msg))
  end)

  local STRICT = {
    ["01"] = "leading zero", ["-01"] = "leading zero", ["1."] = "no digit after the point",
    [".5"] = "no digit before the point", ["1e"] = "no exponent digits", ["+1"] = "a plus sign",
    ['"\\u12"'] = "short \\u", ['"\\ud800"'] = "lone high surrogate", ['"\\udc00"'] = "lone low surrogate",
    ['"\\ud800\\u0041"'] = "high surrogate and no low one", ['"a\\qb"'] = "unknown escape",
    ['"a\\tb\\'] = "escape at the end", ['"a\\nb'] = "unterminated after an escape",
    ['"tab\there"'] = "raw tab", ['["\\u0000"] x'] = "text after the value",
    ["[1,2,]"] = "trailing comma", ['{"a":1,}'] = "trailing comma", ['{"a" 1}'] = "missing colon",
    ["{1:2}"] = "number key", ["[true false]"] = "missing comma", ["/* c */ 1"] = "comment",
    ["truex"] = "text after true", ["[nul]"] = "short null", ["\239\187\191{}"] = "a byte-order mark",
  }
  for text, why in pairs(STRICT) do
    it(string.format("refuses %q (%s) with the byte it stopped at", text, why), function()
      local v, msg = core.json_decode(text)
      assert.is_nil(v)
      assert.matches("at byte %d+", msg)
    end)
  end

  it("nests 1000 levels deep, not 1001", function()
    assert.is_table(core.json_decode(string.rep("[", 1000) .. string.rep("]", 1000)))
    local v, msg = core.json_decode(string.rep('{"a":', 1000) .. "[]" .. string.rep("}", 1000))
    assert.is_nil(v)
    assert.matches("1000 levels", msg)
  end)

  it("keeps NUL bytes and escapes, and decodes surrogate pairs", function()
    assert.are.equal("a\0b", core.json_decode('"a\\u0000b"'))
    assert.are.equal("\0", core.json_decode('"\\u0000"'))
    assert.are.equal("\240\144\128\128", core.json_decode('"\\ud800\\udc00"'))
    assert.are.equal("\244\143\191\191", core.json_decode('"\\udbff\\udfff"'))
    assert.are.equal("\239\191\191", core.json_decode('"\\uFFFF"'))
    local long = string.rep("x\\n", 5000)
    assert.are.equal(string.rep("x\n", 5000), core.json_decode('"' .. long .. '"'))
  end)

  it("reads numbers the same in any LC_NUMERIC locale (a child with de_DE's decimal comma)", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(process.run_ok("mkdir " .. dir))
    finally(function() process.run_ok("rm -rf " .. dir) end)
    if not process.run_ok("localedef -i de_DE -f UTF-8 " .. dir .. "/de_DE.UTF-8 >/dev/null 2>&1") then
      pending("localedef cannot make de_DE.UTF-8 (Debian package locales)")
      return
    end
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local core = require("onecli.core")
      assert(os.setlocale("de_DE.UTF-8", "numeric"), "setlocale")
      assert(os.setlocale(nil, "numeric") == "de_DE.UTF-8", "the locale is not in effect")
      io.write(core.json_encode(core.json_decode("[1.5,2.25e2,0.125,-3.75e-1]")))
    ]])
    f:close()
    local exe = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
    local p = assert(io.popen(string.format("LOCPATH='%s' LUA_CPATH='%s' %s '%s' 2>&1",
      dir, package.cpath, exe, script)))
    local out = p:read("*a")
    p:close()
    assert.are.equal("[1.5,225,0.125,-0.375]", out)
  end)

  it("still decodes after an error", function()
    core.json_decode("{")
    assert.are.equal(1, core.json_decode('{"a":1}').a)
  end)
end)

describe("core.json_encode", function()
  it("encodes integers without a fraction", function()
    assert.are.equal('{"n":3}', core.json_encode({ n = 3 }))
    assert.are.equal("[0,-7,1000000]", core.json_encode({ 0, -7, 1000000 }))
    assert.are.equal("42", core.json_encode(42))
  end)

  it("encodes epoch milliseconds exactly", function()
    assert.are.equal("[1751234567890]", core.json_encode({ 1751234567890 }))
  end)

  it("encodes integers up to 2^53 - 1 exactly, without exponent", function()
    local bad = {}
    for _, c in ipairs({
      { 100000000000000, "100000000000000" },
      { 123456789012345, "123456789012345" },
      { 1751234567890123, "1751234567890123" },
      { 9007199254740991, "9007199254740991" },
      { -9007199254740991, "-9007199254740991" },
    }) do
      local got = core.json_encode({ c[1] })
      if got ~= "[" .. c[2] .. "]" then bad[#bad + 1] = c[2] .. " -> " .. got end
    end
    assert.is_true(#bad == 0, "inexact: " .. table.concat(bad, ", "))
  end)

  it("encodes fractions", function()
    assert.are.equal('{"x":1.5}', core.json_encode({ x = 1.5 }))
    assert.are.equal("[-0.25]", core.json_encode({ -0.25 }))
  end)

  it("encodes scalars and booleans", function()
    assert.are.equal('"x"', core.json_encode("x"))
    assert.are.equal("true", core.json_encode(true))
    assert.are.equal("[true,false]", core.json_encode({ true, false }))
  end)

  it("encodes an unmarked empty table as an object", function()
    assert.are.equal("{}", core.json_encode({}))
    assert.are.equal('{"a":{}}', core.json_encode({ a = {} }))
  end)

  it("encodes a plain sequence as an array", function()
    assert.are.equal('["a","b","c"]', core.json_encode({ "a", "b", "c" }))
  end)

  it("encodes objects with several keys (checked by decoding)", function()
    local s = core.json_encode({ name = "My Agent", identifier = "my-agent", n = 2, ok = false })
    assert.are.equal("{", s:sub(1, 1))
    local doc = require("cjson").decode(s)
    assert.are.equal("My Agent", doc.name)
    assert.are.equal("my-agent", doc.identifier)
    assert.are.equal(2, doc.n)
    assert.are.equal(false, doc.ok)
  end)

  it("round-trips strings with quotes, backslashes, control characters and UTF-8", function()
    local strings = {
      'he said "hi"', "C:\\path\\to", "a/b", "tab\there", "nl\nand\rcr", "\0nul\0",
      "\1\2\3\31\127", "h\195\169llo \230\151\165\230\156\172 \240\159\142\137", "",
      string.rep("x", 70000),
    }
    for i, s in ipairs(strings) do
      local enc = core.json_encode({ v = s })
      assert.is_falsy(enc:find("[%z\1-\31]"), "raw control byte in encoding of string " .. i)
      assert.are.equal(s, core.json_decode(enc).v, "string " .. i)
      assert.are.equal(s, require("cjson").decode(enc).v, "string " .. i .. " (decoded by lua-cjson)")
    end
  end)

  it("escapes quotes and backslashes", function()
    assert.are.equal('"a\\"b\\\\c"', core.json_encode('a"b\\c'))
  end)

  it("encodes an API request body", function()
    local s = core.json_encode({ name = "Bot", identifier = "bot" })
    local doc = core.json_decode(s)
    assert.is_true(same({ name = "Bot", identifier = "bot" }, doc))
  end)
end)

describe("core.array and core.empty_array", function()
  it("marks an empty table as an array", function()
    assert.are.equal('{"secretIds":[]}', core.json_encode({ secretIds = core.array({}) }))
  end)

  it("returns the table it was given", function()
    local t = {}
    assert.are.equal(t, core.array(t))
    local u = { 1, 2 }
    assert.are.equal(u, core.array(u))
  end)

  it("creates a new array when called without a table", function()
    local a = core.array()
    assert.are.equal("table", type(a))
    assert.are.equal("[]", core.json_encode(a))
    assert.are_not.equal(a, core.array())
  end)

  it("core.empty_array encodes as []", function()
    assert.are.equal("[]", core.json_encode(core.empty_array))
    assert.are.equal('{"connections":[]}', core.json_encode({ connections = core.empty_array }))
  end)

  it("nested empty arrays inside arrays and objects", function()
    assert.are.equal("[[],[]]", core.json_encode(core.array({ core.array(), core.empty_array })))
    assert.are.equal("[[],[]]", core.json_encode({ core.array(), core.empty_array }))
    assert.are.equal('{"a":{"b":[]}}', core.json_encode({ a = { b = core.array() } }))
    assert.are.equal('{"a":[[[]]]}', core.json_encode({ a = core.array({ core.array({ core.array() }) }) }))
  end)

  it("a marked non-empty array encodes its elements", function()
    assert.are.equal("[1,2]", core.json_encode(core.array({ 1, 2 })))
    assert.are.equal('{"agentIds":["a","b"]}', core.json_encode({ agentIds = core.array({ "a", "b" }) }))
  end)

  it("encoding the same marked table twice gives the same result", function()
    local t = { ids = core.array({}) }
    local first = core.json_encode(t)
    assert.are.equal('{"ids":[]}', first)
    assert.are.equal(first, core.json_encode(t))
    assert.are.equal("[]", core.json_encode(core.empty_array))
    assert.are.equal("[]", core.json_encode(core.empty_array))
  end)

  it("encoding does not modify the input tables", function()
    local inner = core.array({})
    local mt = getmetatable(inner)
    local outer = { a = inner, b = { 1, 2 }, c = {} }
    core.json_encode(outer)
    assert.are.equal(mt, getmetatable(inner))
    assert.is_nil(next(inner))
    assert.is_nil(next(outer.c))
    assert.is_nil(getmetatable(outer))
    assert.is_nil(getmetatable(outer.c))
    local keys = 0
    for _ in pairs(outer) do keys = keys + 1 end
    assert.are.equal(3, keys)
    assert.are.equal(2, #outer.b)
  end)

  it("an unmarked empty table next to a marked one still encodes as {}", function()
    local s = core.json_encode(core.array({ {}, core.array() }))
    assert.are.equal("[{},[]]", s)
  end)
end)

describe("core.json_encode rejects values JSON cannot hold", function()
  local cyclic = {}
  cyclic.self = cyclic
  local cyclic_array = {}
  cyclic_array[1] = cyclic_array
  local CASES = {
    { "a function", function() end },
    { "a function in a table", { f = print } },
    { "a coroutine", coroutine.create(function() end) },
    { "a file handle (userdata)", io.stdout },
    { "a cyclic table", cyclic },
    { "a cyclic array", cyclic_array },
    { "NaN", 0 / 0 },
    { "NaN in a table", { x = 0 / 0 } },
    { "infinity", math.huge },
    { "-infinity in an array", { -math.huge } },
    { "a mixed table", { 1, 2, a = 3 } },
    { "a sparse array", { [1] = 1, [5] = 5 } },
    { "a sparse array with one hole", { [1] = "a", [3] = "c" } },
    { "an array starting at 2", { [2] = "b" } },
    { "a boolean key", { [true] = 1 } },
  }
  for _, c in ipairs(CASES) do
    it(c[1], function()
      local ok, msg = raises_string(function() return core.json_encode(c[2]) end)
      assert.is_true(ok, "did not raise a string error: " .. tostring(msg))
    end)
  end

  it("still encodes after an error", function()
    pcall(core.json_encode, cyclic)
    assert.are.equal('{"a":[]}', core.json_encode({ a = core.array() }))
  end)
end)

describe("core.json_encode is right for every input", function()
  local cjson = require("cjson")

  it("refuses strings that are not UTF-8, naming where they are", function()
    local CASES = {
      { { value = "v\255" }, "%.value", "byte 2 of 2" },
      { { a = { "ok", "\192\175" } }, "%.a%[2%]", "byte 1 of 2" },          -- overlong '/'
      { { s = "\237\160\128" }, "%.s", "byte 1" },                            -- a surrogate
      { { s = "\244\144\128\128" }, "%.s", "byte 1" },                        -- above U+10FFFF
      { { s = "abc\226\130" }, "%.s", "byte 4 of 5" },                        -- cut short
      { { ["k\200"] = 1 }, "a key", "byte 2" },
      { "\128", "the value", "byte 1 of 1" },
    }
    for i, c in ipairs(CASES) do
      local ok, msg = pcall(core.json_encode, c[1])
      assert.is_false(ok, "case " .. i .. " was encoded")
      assert.matches("^cannot encode JSON: ", msg)
      assert.matches(c[2], msg, 1, false)
      assert.matches(c[3], msg, 1, true)
      assert.matches("not valid UTF%-8", msg)
    end
  end)

  it("the refusal never repeats the string (it may be a secret)", function()
    local ok, msg = pcall(core.json_encode, { value = "tok_secret_value\255" })
    assert.is_false(ok)
    assert.is_nil(msg:find("tok_secret_value", 1, true))
  end)

  it("accepts every valid UTF-8 form, 1 to 4 bytes, and round-trips it", function()
    local s = "a\194\128\223\191\224\160\128\237\159\191\238\128\128\240\144\128\128\244\143\191\191"
    assert.are.equal(s, cjson.decode(core.json_encode({ s = s })).s)
  end)

  it("round-trips strings and keys that look like its old placeholders", function()
    local v = { ["onecli-raw-0123abcd0123abcd-1"] = "onecli-raw-0123abcd0123abcd-2",
                list = core.array({ "onecli-raw-", "x" .. "onecli-raw-deadbeef-7" .. "\"" }),
                n = 12345678901234567 }
    local text = core.json_encode(v)
    local back = cjson.decode(text)
    assert.are.equal("onecli-raw-0123abcd0123abcd-2", back["onecli-raw-0123abcd0123abcd-1"])
    assert.are.equal("onecli-raw-", back.list[1])
    assert.are.equal(v.list[2], back.list[2])
  end)

  it("round-trips strings that contain any marker of its own (issue 7: placeholders)", function()
    -- an encoder that swaps parts for marker strings and back (as this one
    -- once did, with a random prefix kept in the registry) breaks on input
    -- that contains the marker: use every string the registry holds
    local markers = { "onecli-raw-" }
    for _, v in pairs(debug.getregistry()) do
      if type(v) == "string" and #v < 100 then markers[#markers + 1] = v end
    end
    for _, m in ipairs(markers) do
      for _, s in ipairs({ m .. "1", m .. "1" .. m .. "2", "[" .. m .. "]" }) do
        local text = core.json_encode({ [s] = s, list = core.array({ s, 123456789012345678 }) })
        local back = cjson.decode(text)
        assert.are.equal(s, back[s], "value " .. s)
        assert.are.equal(s, back.list[1], "array element " .. s)
      end
    end
  end)

  it("writes integers in full, to the ends of the 64-bit range on 5.3+", function()
    if not HAS_INTEGERS then
      assert.are.equal("[9007199254740992]", core.json_encode({ 2 ^ 53 }))
      return
    end
    assert.are.equal("[9223372036854775807,-9223372036854775808]",
                     core.json_encode({ math.maxinteger, math.mininteger }))
  end)

  it("writes floats with the fewest digits that read back the same", function()
    for _, d in ipairs({ 0.1, 1 / 3, 2 ^ -1074, 1.7976931348623157e308, 1e300, -2.5e-8, 123.456 }) do
      local text = core.json_encode({ d })
      assert.are.equal(d, tonumber(text:sub(2, -2)), text)
      assert.are.equal(d, cjson.decode(text)[1], text)
    end
    assert.are.equal("[0.1]", core.json_encode({ 0.1 }))
    assert.are.equal("[1e+300]", core.json_encode({ 1e300 }))
  end)

  it("names where a refused value is", function()
    local _, msg = pcall(core.json_encode, { a = { b = { 1, 0 / 0 } } })
    assert.matches("the value at %.a%.b%[2%]: NaN", msg)
    _, msg = pcall(core.json_encode, { f = print })
    assert.matches("the value at %.f: a value of type function", msg)
  end)

  it("a value that contains itself is refused, not looped on", function()
    local t = {}
    t.t = t
    local ok, msg = pcall(core.json_encode, t)
    assert.is_false(ok)
    assert.matches("nested deeper than 128", msg)
  end)
end)
