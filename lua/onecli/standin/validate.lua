-- A tiny zod-v4 look-alike: just enough to produce the first-issue messages
-- the OneCLI server returns for invalid bodies (reference §9.1).
--
--   local v = require("onecli.standin.validate")
--   local schema = v.object({ { "name", v.string():trim():min(1):max(255) } })
--   local ok, value_or_message = schema:parse(body)
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")

local _M = {}

local typeof, NULL, floor = json.typeof, json.null, math.floor
local format, concat, ipairs, pairs, setmetatable = string.format, table.concat, ipairs, pairs, setmetatable

local Schema = {}
Schema.__index = Schema

local function new(kind, extra)
  local s = setmetatable({ kind = kind, checks = {} }, Schema)
  for k, val in pairs(extra or {}) do s[k] = val end
  return s
end

local function type_error(expected, value)
  return format("Invalid input: expected %s, received %s", expected, typeof(value))
end

function Schema:optional() self.is_optional = true; return self end
function Schema:nullable() self.is_nullable = true; return self end

-- Checks run in the order they were declared; the first failure is reported.
function Schema:add(fn) self.checks[#self.checks + 1] = fn; return self end

function Schema:trim()
  return self:add(function(s) return true, util.trim(s) end)
end

function Schema:min(n, msg)
  local kind = self.kind
  return self:add(function(value)
    if kind == "string" and util.ulen(value) < n then
      return false, msg or format("Too small: expected string to have >=%d characters", n)
    elseif kind == "array" and #value < n then
      return false, msg or format("Too small: expected array to have >=%d items", n)
    elseif kind == "number" and value < n then
      return false, msg or format("Too small: expected number to be >=%d", n)
    end
    return true, value
  end)
end

function Schema:max(n, msg)
  local kind = self.kind
  return self:add(function(value)
    if kind == "string" and util.ulen(value) > n then
      return false, msg or format("Too big: expected string to have <=%d characters", n)
    elseif kind == "array" and #value > n then
      return false, msg or format("Too big: expected array to have <=%d items", n)
    elseif kind == "number" and value > n then
      return false, msg or format("Too big: expected number to be <=%d", n)
    end
    return true, value
  end)
end

-- fn(value) -> truthy when valid. Used for regexes and hand-written refinements.
function Schema:refine(fn, msg)
  return self:add(function(value)
    if fn(value) then return true, value end
    return false, msg or "Invalid input"
  end)
end

local function run_checks(self, value)
  for _, check in ipairs(self.checks) do
    local ok, res = check(value)
    if not ok then return false, res end
    value = res
  end
  return true, value
end

local parsers = {}

function parsers.string(_, value)
  if typeof(value) ~= "string" then return false, type_error("string", value) end
  return true, value
end

function parsers.number(self, value)
  if typeof(value) ~= "number" then return false, type_error(self.int and "int" or "number", value) end
  if self.int and value ~= floor(value) then return false, type_error("int", value) end
  return true, value
end

function parsers.boolean(_, value)
  if typeof(value) ~= "boolean" then return false, type_error("boolean", value) end
  return true, value
end

local function quoted_list(values)
  local q = {}
  for i, val in ipairs(values) do q[i] = '"' .. val .. '"' end
  return concat(q, "|")
end

function parsers.enum(self, value)
  for _, allowed in ipairs(self.values) do
    if value == allowed then return true, value end
  end
  return false, "Invalid option: expected one of " .. quoted_list(self.values)
end

function parsers.literal(self, value)
  if value == self.value then return true, value end
  return false, format('Invalid input: expected "%s"', self.value)
end

function parsers.array(self, value)
  if typeof(value) ~= "array" then return false, type_error("array", value) end
  local out = json.array({})
  for i = 1, #value do
    local ok, res = self.item:parse(value[i])
    if not ok then return false, res end
    out[i] = res
  end
  return true, out
end

function parsers.object(self, value)
  if typeof(value) ~= "object" then return false, type_error("object", value) end
  local out = json.obj()
  local known = {}
  for _, field in ipairs(self.shape) do
    local name, schema = field[1], field[2]
    known[name] = true
    local ok, res = schema:parse(value[name])
    if not ok then return false, res end
    if res ~= nil then json.set(out, name, res) end
  end
  if self.strict then
    for _, k in ipairs(json.keys(value)) do
      if not known[k] then return false, format('Unrecognized key: "%s"', k) end
    end
  end
  return true, out
end

-- Every value must be a string (BYOC settings).
function parsers.record(_, value)
  if typeof(value) ~= "object" then return false, type_error("object", value) end
  for _, k in ipairs(json.keys(value)) do
    if typeof(value[k]) ~= "string" then return false, type_error("string", value[k]) end
  end
  return true, value
end

function parsers.union(self, value)
  for _, option in ipairs(self.options) do
    local ok, res = option:parse(value)
    if ok then return true, res end
  end
  return false, "Invalid input"
end

-- fn(value) -> true, parsed | false, message
function parsers.custom(self, value)
  return self.fn(value)
end

function Schema:parse(value)
  if value == nil then
    if self.is_optional then return true, nil end
    if self.kind ~= "enum" and self.kind ~= "literal" then
      return false, self.required_msg or type_error(self.expected or self.kind, value)
    end
  elseif value == NULL and self.is_nullable then
    return true, NULL
  end
  local ok, res = parsers[self.kind](self, value)
  if not ok then return false, res end
  return run_checks(self, res)
end

function _M.string() return new("string") end
function _M.number() return new("number") end
function _M.int() return new("number", { int = true, expected = "int" }) end
function _M.boolean() return new("boolean") end
function _M.enum(values) return new("enum", { values = values }) end
function _M.literal(value) return new("literal", { value = value }) end
function _M.array(item) return new("array", { item = item }) end
function _M.record() return new("record", { expected = "object" }) end
function _M.custom(fn, expected) return new("custom", { fn = fn, expected = expected }) end
function _M.union(options) return new("union", { options = options, required_msg = "Invalid input" }) end

-- shape: list of { name, schema } in declaration order.
function _M.object(shape, opts)
  return new("object", { shape = shape, strict = opts and opts.strict })
end

return _M
