-- Lossless round trips: json_encode(json_decode(x)) is x, modulo key order
-- and whitespace, for every JSON body in ../shared/reference/captures (all
-- three directories, requests and responses).
--
-- "Modulo key order and whitespace" is checked with a small JSON reader
-- written here in Lua, independent of the C decoder: it turns a text into
-- a canonical one (keys sorted, no whitespace, strings with their escapes
-- resolved, numbers as their literal text). A body that this reader
-- refuses must be refused by core.json_decode too.

local core = require("onecli.core")
local captures = require("support.captures")

-- canonical(text) -> canonical text | nil, message
local function canonical(text)
  local pos = 1
  local function fail(what) error({ at = pos, what = what }, 0) end
  local function space() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function utf8_char(c)
    local function div(a, b) return math.floor(a / b) end
    if c < 0x80 then return string.char(c) end
    if c < 0x800 then return string.char(0xC0 + div(c, 64), 0x80 + c % 64) end
    if c < 0x10000 then
      return string.char(0xE0 + div(c, 4096), 0x80 + div(c, 64) % 64, 0x80 + c % 64)
    end
    return string.char(0xF0 + div(c, 262144), 0x80 + div(c, 4096) % 64, 0x80 + div(c, 64) % 64, 0x80 + c % 64)
  end
  local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c:byte() < 0x20 then fail("control character") end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        if ESC[e] then
          out[#out + 1] = ESC[e]; pos = pos + 2
        elseif e == "u" then
          local h = text:sub(pos + 2, pos + 5)
          if not h:match("^%x%x%x%x$") then fail("bad \\u") end
          local u = tonumber(h, 16)
          pos = pos + 6
          if u >= 0xDC00 and u <= 0xDFFF then fail("lone low surrogate") end
          if u >= 0xD800 and u <= 0xDBFF then
            local l = text:match("^\\u(%x%x%x%x)", pos)
            local lo = l and tonumber(l, 16)
            if not lo or lo < 0xDC00 or lo > 0xDFFF then fail("lone high surrogate") end
            u = 0x10000 + (u - 0xD800) * 1024 + (lo - 0xDC00)
            pos = pos + 6
          end
          out[#out + 1] = utf8_char(u)
        else
          fail("bad escape")
        end
      else
        out[#out + 1] = c; pos = pos + 1
      end
    end
    return table.concat(out)
  end
  -- a string in one canonical spelling: every byte < 0x20, '"' and '\' escaped as \u00XX
  local function quote(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
      return c:byte() < 0x20 and string.format("\\u%04x", c:byte()) or (c == "\127" and c or "\\" .. c)
    end) .. '"'
  end
  function value()
    space()
    local c = text:sub(pos, pos)
    if c == "{" then
      pos = pos + 1; space()
      local members = {}
      if text:sub(pos, pos) == "}" then pos = pos + 1; return "{}" end
      while true do
        space()
        if text:sub(pos, pos) ~= '"' then fail("member name") end
        local k = str(); space()
        if text:sub(pos, pos) ~= ":" then fail("':'") end
        pos = pos + 1
        members[k] = value(); space()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "}" then break elseif d ~= "," then fail("',' or '}'") end
      end
      local keys = {}
      for k in pairs(members) do keys[#keys + 1] = k end
      table.sort(keys)
      for i, k in ipairs(keys) do keys[i] = quote(k) .. ":" .. members[k] end
      return "{" .. table.concat(keys, ",") .. "}"
    elseif c == "[" then
      pos = pos + 1; space()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return "[]" end
      local items = {}
      while true do
        items[#items + 1] = value(); space()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "]" then break elseif d ~= "," then fail("',' or ']'") end
      end
      return "[" .. table.concat(items, ",") .. "]"
    elseif c == '"' then
      return quote(str())
    end
    for _, word in ipairs({ "true", "false", "null" }) do
      if text:sub(pos, pos + #word - 1) == word then pos = pos + #word; return word end
    end
    local n = text:match("^-?%d+", pos)
    if not n then fail("value") end
    if n:match("^-?0%d") then fail("number with a leading zero") end
    local start = pos
    pos = pos + #n
    pos = pos + #(text:match("^%.%d+", pos) or "")
    pos = pos + #(text:match("^[eE][-+]?%d+", pos) or "")
    return text:sub(start, pos - 1)
  end
  local ok, result = pcall(function()
    local v = value(); space()
    if pos <= #text then fail("text after the value") end
    return v
  end)
  if not ok then
    if type(result) == "table" then return nil, result.what .. " at " .. result.at end
    error(result, 0)
  end
  return result
end

local function json_bodies()
  local bodies = {}
  for _, cap in ipairs(captures.all({ "v1.41.0", "v2.0.1", "v2.0.1-routes" })) do
    local place = cap.version .. "/" .. cap.name
    local ctype = cap.response.headers["content-type"] or ""
    local body = cap.response.body
    if ctype:find("json", 1, true) or body:match("^%s*[%[{]") then
      bodies[#bodies + 1] = { place .. " (response)", body }
    end
    local req = cap.request.body
    if req and req:match("^%s*[%[{\"]") then
      bodies[#bodies + 1] = { place .. " (request)", req }
    end
  end
  return bodies
end

describe("JSON round trips", function()
  it("the canonical reader itself tells apart what it should", function()
    assert.are.equal('{"a":[],"b":{},"c":[1,null,"x"]}', canonical(' { "c" : [1, null, "x"], "b": {}, "a": [ ] } '))
    assert.are_not.equal(canonical("[]"), canonical("{}"))
    assert.are.equal(canonical('"\\u00e9\\/"'), canonical('"\195\169/"'))
    assert.is_nil(canonical("[1,]"))
    assert.is_nil(canonical("01"))
    assert.is_nil(canonical('{"a":1} x'))
  end)

  if not captures.root then
    pending("the captures are not here (../shared/reference/captures): set ONECLI_CAPTURES")
    return
  end

  local bodies = json_bodies()

  it("finds the capture bodies (several hundred)", function()
    assert.is_true(#bodies > 300, #bodies .. " bodies")
  end)

  it("json_encode(json_decode(x)) == x modulo key order and whitespace, for every capture body", function()
    local checked, failures = 0, {}
    for _, item in ipairs(bodies) do
      local place, body = item[1], item[2]
      local want, why = canonical(body)
      local value, err = core.json_decode(body)
      if not want then
        if value ~= nil then
          failures[#failures + 1] = place .. ": decoded, but it is not JSON (" .. why .. ")"
        end
      elseif value == nil then
        failures[#failures + 1] = place .. ": not decoded: " .. tostring(err)
      else
        local ok, text = pcall(core.json_encode, value)
        if not ok then
          failures[#failures + 1] = place .. ": not encoded: " .. tostring(text)
        elseif canonical(text) ~= want then
          failures[#failures + 1] = place .. ": differs\n  got  " .. canonical(text):sub(1, 300)
            .. "\n  want " .. want:sub(1, 300)
        else
          checked = checked + 1
        end
      end
    end
    assert.are.equal(0, #failures, table.concat(failures, "\n"))
    assert.is_true(checked > 300, checked .. " checked")
  end)

  it("keeps [] and {} apart, in every place", function()
    local text = '{"a":[],"b":{},"c":[[],{},[[]]],"d":{"e":[]}}'
    assert.are.equal(canonical(text), canonical(core.json_encode(core.json_decode(text))))
    local v = core.json_decode(text)
    assert.is_true(core.is_array(v.a))
    assert.is_false(core.is_array(v.b))
    assert.is_true(core.is_array(v.c[3][1]))
    assert.is_false(core.is_array(v.c[2]))
  end)

  it("a decoded array stays an array after it is changed", function()
    local v = core.json_decode('{"ids":["a","b"],"tags":[]}')
    v.ids[1], v.ids[2] = nil, nil
    v.name = "x"
    assert.are.equal(canonical('{"ids":[],"tags":[],"name":"x"}'), canonical(core.json_encode(v)))
  end)

  it("null round-trips as onecli.null, in objects and in arrays", function()
    local v = core.json_decode('{"a":null,"b":[null,1,null]}')
    assert.are.equal(core.null, v.a)
    assert.are.equal(3, #v.b)
    assert.are.equal(canonical('{"a":null,"b":[null,1,null]}'), canonical(core.json_encode(v)))
  end)
end)
