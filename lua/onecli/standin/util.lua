-- Helpers shared by the stand-in modules: ids, times, URL decoding.
local socket = require("onecli.standin.socket")

local _M = {}

local random, floor, format, char = math.random, math.floor, string.format, string.char
local gettime, date, tonumber = socket.gettime, os.date, tonumber

local seeded = false

function _M.seed()
  if seeded then return end
  seeded = true
  local t = gettime()
  math.randomseed(floor((t % 100000) * 1000) + floor(t / 7))
  for _ = 1, 10 do random() end
end

function _M.hex(n)
  local out = {}
  for i = 1, n do out[i] = format("%x", random(0, 15)) end
  return table.concat(out)
end

function _M.uuid4()
  local variant = ({ "8", "9", "a", "b" })[random(1, 4)]
  return _M.hex(8) .. "-" .. _M.hex(4) .. "-4" .. _M.hex(3) .. "-" .. variant .. _M.hex(3)
    .. "-" .. _M.hex(12)
end

function _M.lower_letters(n)
  local out = {}
  for i = 1, n do out[i] = char(random(97, 122)) end
  return table.concat(out)
end

-- ISO-8601 UTC with milliseconds, e.g. 2026-07-01T12:34:56.789Z
function _M.iso(t)
  t = t or gettime()
  local sec = floor(t)
  local ms = floor((t - sec) * 1000)
  return date("!%Y-%m-%dT%H:%M:%S", sec) .. format(".%03dZ", ms)
end

-- RFC 7231 date for the Date header.
function _M.http_date(t)
  return date("!%a, %d %b %Y %H:%M:%S GMT", floor(t or gettime()))
end

local function hex_byte(h) return char(tonumber(h, 16)) end

function _M.percent_decode(s)
  return (s:gsub("%%(%x%x)", hex_byte))
end

-- Parse "a=b&c=d" like URLSearchParams: "+" is a space, values percent-decoded,
-- the first occurrence of a name wins.
function _M.parse_query(q)
  local out = {}
  if not q or q == "" then return out end
  for part in q:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    k = _M.percent_decode((k:gsub("+", " ")))
    v = _M.percent_decode((v:gsub("+", " ")))
    if out[k] == nil then out[k] = v end
  end
  return out
end

function _M.percent_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

-- Number of characters in a UTF-8 string (what a JS length check roughly sees).
function _M.ulen(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

-- The characters of a UTF-8 string as a list.
function _M.uchars(s)
  local out = {}
  for c in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do out[#out + 1] = c end
  return out
end

function _M.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

return _M
