-- Small JSON codec for the OneCLI stand-in server and its specs.
--
-- Unlike lua-cjson it keeps what a JavaScript server (and a zod validator)
-- can see: arrays and objects stay distinguishable even when empty, object
-- keys keep their order, `null` is a real value (`_M.null`), and strings are
-- escaped the way JSON.stringify does it ("/" and non-ASCII are not escaped).
--
--   json.obj("id", id, "name", name)   ordered object; nil values are left out
--   json.array({...})                  marks a table as an array ([] when empty)
--   json.encode(value), json.decode(text) -> value | nil, err
--   json.typeof(value)                 "object", "array", "string", "number",
--                                      "boolean", "null" or "undefined" (nil)
local _M = {}

local byte, char, concat, format = string.byte, string.char, table.concat, string.format
local floor, huge, type, select = math.floor, math.huge, type, select
local getmetatable, setmetatable, tostring, tonumber = getmetatable, setmetatable, tostring, tonumber
local pairs, ipairs, error, sort = pairs, ipairs, error, table.sort

local ARRAY = { __jsontype = "array" }
local NULL = setmetatable({}, { __jsontype = "null", __tostring = function() return "null" end })
_M.null = NULL

local function object_mt(keys)
  return { __jsontype = "object", __keys = keys }
end

function _M.array(t)
  return setmetatable(t or {}, ARRAY)
end

function _M.obj(...)
  local n = select("#", ...)
  local t, keys = {}, {}
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    if v ~= nil then
      keys[#keys + 1] = k
      t[k] = v
    end
  end
  return setmetatable(t, object_mt(keys))
end

-- Set (or add) a key on an ordered object, keeping insertion order.
function _M.set(t, k, v)
  local mt = getmetatable(t)
  if mt and mt.__keys and t[k] == nil and v ~= nil then
    mt.__keys[#mt.__keys + 1] = k
  end
  t[k] = v
  return t
end

function _M.is_null(v) return v == NULL end

local function is_array(t)
  local mt = getmetatable(t)
  if mt then return mt.__jsontype == "array" end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

function _M.typeof(v)
  if v == nil then return "undefined" end
  if v == NULL then return "null" end
  local t = type(v)
  if t == "table" then return is_array(v) and "array" or "object" end
  if t == "string" or t == "number" or t == "boolean" then return t end
  return t
end

-- Keys of an object in a stable order: recorded order first, then the rest sorted.
function _M.keys(t)
  local mt = getmetatable(t)
  local out, seen = {}, {}
  if mt and mt.__keys then
    for _, k in ipairs(mt.__keys) do
      if t[k] ~= nil and not seen[k] then out[#out + 1] = k; seen[k] = true end
    end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = tostring(k) end
  end
  sort(rest)
  for _, k in ipairs(rest) do out[#out + 1] = k end
  return out
end

------------------------------------------------------------------------------
-- Encoder
------------------------------------------------------------------------------

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return ESCAPES[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. s:gsub('[%z\1-\31"\\]', escape_char) .. '"'
end

local function encode_number(n)
  if n ~= n or n == huge or n == -huge then return "null" end
  if n == floor(n) and n > -1e15 and n < 1e15 then
    return format("%d", n)
  end
  for precision = 1, 17 do
    local s = format("%." .. precision .. "g", n)
    if tonumber(s) == n then return s end
  end
  return format("%.17g", n)
end

local encode_value

local function encode_array(t, out)
  out[#out + 1] = "["
  for i = 1, #t do
    if i > 1 then out[#out + 1] = "," end
    encode_value(t[i], out)
  end
  out[#out + 1] = "]"
end

local function encode_object(t, out)
  out[#out + 1] = "{"
  local first = true
  for _, k in ipairs(_M.keys(t)) do
    if not first then out[#out + 1] = "," end
    first = false
    out[#out + 1] = encode_string(tostring(k))
    out[#out + 1] = ":"
    encode_value(t[k], out)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, out)
  local t = type(v)
  if v == nil or v == NULL then
    out[#out + 1] = "null"
  elseif t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "number" then
    out[#out + 1] = encode_number(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "table" then
    if is_array(v) then encode_array(v, out) else encode_object(v, out) end
  else
    error("cannot encode a " .. t .. " as JSON")
  end
end

function _M.encode(v)
  local out = {}
  encode_value(v, out)
  return concat(out)
end

------------------------------------------------------------------------------
-- Decoder (strict RFC 8259, like JSON.parse)
------------------------------------------------------------------------------

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then
    return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
  end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local Decoder = {}
Decoder.__index = Decoder

function Decoder:fail(msg)
  error({ json_error = msg .. " at position " .. self.pos }, 0)
end

function Decoder:skip_ws()
  self.pos = self.text:find("[^ \t\r\n]", self.pos) or (#self.text + 1)
end

function Decoder:peek()
  return self.text:sub(self.pos, self.pos)
end

local SIMPLE_ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

function Decoder:read_hex4()
  local hex = self.text:sub(self.pos, self.pos + 3)
  if not hex:match("^%x%x%x%x$") then self:fail("bad unicode escape") end
  self.pos = self.pos + 4
  return tonumber(hex, 16)
end

function Decoder:read_escape(parts)
  local c = self.text:sub(self.pos, self.pos)
  self.pos = self.pos + 1
  if SIMPLE_ESC[c] then parts[#parts + 1] = SIMPLE_ESC[c]; return end
  if c ~= "u" then self:fail("bad escape") end
  local cp = self:read_hex4()
  if cp >= 0xD800 and cp <= 0xDBFF and self.text:sub(self.pos, self.pos + 1) == "\\u" then
    local save = self.pos
    self.pos = self.pos + 2
    local low = self:read_hex4()
    if low >= 0xDC00 and low <= 0xDFFF then
      cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
    else
      self.pos = save
    end
  end
  parts[#parts + 1] = utf8_char(cp)
end

function Decoder:read_string()
  self.pos = self.pos + 1 -- opening quote
  local parts = {}
  while true do
    local s, e = self.text:find('["\\%z\1-\31]', self.pos)
    if not s then self:fail("unterminated string") end
    parts[#parts + 1] = self.text:sub(self.pos, s - 1)
    local c = self.text:sub(s, e)
    self.pos = e + 1
    if c == '"' then return concat(parts) end
    if c ~= "\\" then self:fail("control character in string") end
    self:read_escape(parts)
  end
end

function Decoder:read_number()
  local text, start = self.text, self.pos
  local _, e = text:find("^-?%d+", start)
  if not e then self:fail("bad number") end
  local int = text:sub(start, e):gsub("^-", "")
  if #int > 1 and int:sub(1, 1) == "0" then self:fail("bad number") end
  local _, fe = text:find("^%.%d+", e + 1)
  if fe then e = fe elseif text:sub(e + 1, e + 1) == "." then self:fail("bad number") end
  local _, ee = text:find("^[eE][-+]?%d+", e + 1)
  if ee then e = ee elseif text:find("^[eE]", e + 1) then self:fail("bad number") end
  self.pos = e + 1
  return tonumber(text:sub(start, e))
end

function Decoder:read_literal(word, value)
  if self.text:sub(self.pos, self.pos + #word - 1) ~= word then self:fail("unexpected token") end
  self.pos = self.pos + #word
  return value
end

function Decoder:read_array()
  self.pos = self.pos + 1
  local arr = _M.array({})
  self:skip_ws()
  if self:peek() == "]" then self.pos = self.pos + 1; return arr end
  while true do
    arr[#arr + 1] = self:read_value()
    self:skip_ws()
    local c = self:peek()
    self.pos = self.pos + 1
    if c == "]" then return arr end
    if c ~= "," then self:fail("expected , or ]") end
  end
end

function Decoder:read_object()
  self.pos = self.pos + 1
  local keys = {}
  local obj = setmetatable({}, object_mt(keys))
  self:skip_ws()
  if self:peek() == "}" then self.pos = self.pos + 1; return obj end
  while true do
    self:skip_ws()
    if self:peek() ~= '"' then self:fail("expected string key") end
    local k = self:read_string()
    self:skip_ws()
    if self:peek() ~= ":" then self:fail("expected :") end
    self.pos = self.pos + 1
    local v = self:read_value()
    if obj[k] == nil then keys[#keys + 1] = k end
    obj[k] = v
    self:skip_ws()
    local c = self:peek()
    self.pos = self.pos + 1
    if c == "}" then return obj end
    if c ~= "," then self:fail("expected , or }") end
  end
end

function Decoder:read_value()
  self:skip_ws()
  local c = self:peek()
  if c == "{" then return self:read_object() end
  if c == "[" then return self:read_array() end
  if c == '"' then return self:read_string() end
  if c == "t" then return self:read_literal("true", true) end
  if c == "f" then return self:read_literal("false", false) end
  if c == "n" then return self:read_literal("null", NULL) end
  if c == "-" or c:match("%d") then return self:read_number() end
  self:fail("unexpected " .. (c == "" and "end of input" or "character"))
end

function _M.decode(text)
  if type(text) ~= "string" then return nil, "not a string" end
  local d = setmetatable({ text = text, pos = 1 }, Decoder)
  local ok, res = pcall(function()
    local v = d:read_value()
    d:skip_ws()
    if d.pos <= #text then d:fail("trailing data") end
    return v
  end)
  if ok then return res end
  if type(res) == "table" and res.json_error then return nil, res.json_error end
  error(res, 0)
end

------------------------------------------------------------------------------
-- Deep comparison (used by specs): strict about arrays vs objects and null.
------------------------------------------------------------------------------

function _M.equal(a, b)
  local ta, tb = _M.typeof(a), _M.typeof(b)
  if ta ~= tb then return false end
  if ta == "array" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not _M.equal(a[i], b[i]) then return false end
    end
    return true
  end
  if ta == "object" then
    for k, v in pairs(a) do
      if not _M.equal(v, b[k]) then return false end
    end
    for k in pairs(b) do
      if a[k] == nil then return false end
    end
    return true
  end
  return a == b
end

return _M
