--[=[
properties.lua - what the libFuzzer targets of onecli.core check.

Loaded once by driver.c (built into build/fuzz/<target>, see fuzz.mk); it
returns one function per target, called with each fuzz input as a string,
and setup(target). A failed property calls fuzz_fail(id, message), which
aborts: libFuzzer keeps the input (build/fuzz/crashes/<target>/). Messages
never print a secret: the fuzz-made credential shows as <SECRET> and its
part after the prefix as <SECRET-BODY>.

Targets, how each input is read, and the properties (the contract):

normalize  core.normalize(method, path, status, headers, body, opts)
  input    an HTTP exchange in text form (the seeds are real captures):
             line 1     request line "METHOD PATH" (empty: both nil)
             line 2     status line; its first number (after HTTP/x.y)
                        picks the status, folded into 100..599
             lines      "name: value" headers until an empty line;
                        names are lower-cased. Pseudo-headers, taken out:
                        x-fuzz-secret (derives the secret), x-fuzz-reason
                        (opts.reason), x-fuzz-attempts (opts.attempts),
                        x-fuzz-code (the curl code for transport_error)
             rest       the body (nil when there was no empty line)
           The secret is "oc_" + 64 hex (fixed, or derived from
           x-fuzz-secret; a 16-digit unit repeated, see FIXED_SECRET). It
           is spliced into path, method, header values, reason and body
           wherever a marker stands: $ONECLI_API_KEY,
           oc_<API_KEY>, aoc_<AGENT_TOKEN> and {{key}} raw; {{key.u}} /
           {{key.U}} each character as \u00xx / \u00XX; {{key.p}} /
           {{key.P}} each as %xx / %XX; {{key.some}} some characters
           escaped either way; {{key.bare}} without "oc_"; {{key.glued}}
           right after another key-shaped token.
  checks   it returns an error object (core.is_error); tostring(err) is
           one line (no byte < 0x20, no 0x7f) of at most 4096 bytes;
           err.type matches ^[a-z][a-z0-9_]*$; err.retry_after is nil or a
           finite number in [0, 2147483647]; err.body <= 4096 bytes,
           err.path <= 1024, err.message <= 4096; the secret (see redact)
           survives in no string field of err and not in tostring(err).
           The same input also goes through core.transport_error(method,
           path, curl code, body as the message, opts), whose error object
           must hold the same invariants (ids transport_error.*); method
           and code, which only the library supplies, are cut to upper-case
           letters (and digits and _ in the code).

json       core.json_decode / core.json_encode
  input    first decoded as JSON text; then read again as a recipe that
           builds Lua values (nested tables, core.array(), core.empty_array,
           core.null, booleans, integers near 1e14, 2^53 and +-2^63, floats
           from raw bits incl. inf/NaN, strings cut from the input incl.
           invalid UTF-8 and the encoder's placeholder prefix onecli-raw-,
           and shapes JSON cannot hold: sparse, mixed, odd keys, functions,
           cycles, nesting past the depth limit).
  checks   json_decode never raises (a value, or nil + a string). For a
           decoded value v and for every built value: json_encode(v) either
           raises an error containing "cannot encode JSON" (never another
           error) or returns text that json_decode reads back deep-equal to
           v (numbers with ==, integers to 2^63 exactly, core.null as
           itself, arrays marked as arrays: for a decoded value every table
           keeps its mark, so [] and {} stay apart; for a built value an
           empty table keeps its mark); json_encode(i) == ("%d"):format(i).
           A value holding a string (or key) with invalid UTF-8 must be
           refused.

redact     core.redact(s, secret)
  input    byte 1: prefix (oc_ / oc_org_ / aoc_), number of insertions
           (1-3), alphabet of the secret; byte 2: secret length after the
           prefix (16-64); bytes 3-4: seed of the secret's characters; then
           per insertion 4 bytes: position (2, little endian, modulo the
           text length + 1), encoding, mask; the rest is the text.
           Encodings: raw; every / some characters as \u00XX (upper or
           lower hex); every / some as %XX; glued right after another
           key-shaped token; the part after the prefix alone, raw or with
           some characters escaped; each character raw, \u or %.
  checks   redact never raises and returns a string; after decoding every
           \uXXXX (< 0x80) and %XX once, the output contains neither the
           secret nor its part after the prefix (nor does the raw output);
           a text with no key-shaped token (oc_, oc_org_, aoc_ + 16
           alphanumerics) and without the secret, raw or decoded, comes
           back unchanged, with and without a secret given.

url        core.path_segment(s), core.normalize_url(s) (skipped, with a
           "fuzz: SKIP" note, while the core lacks them)
  input    the string itself, for both functions.
  checks   path_segment: nil + a string exactly for "", "." and ".."; else
           a string matching ^[A-Za-z0-9%-._~]+$, every % followed by two
           upper-case hex digits, never "." or "..", that percent-decodes
           back to s. normalize_url: on success url, base_path with url
           starting http:// or https://, no byte <= 0x20 or 0x7f, no @ in
           the authority, no ? or #, no . or .. path segment, ending with
           base_path (which starts with / and does not end with /), and
           normalize_url(url) gives url again. On failure a message string
           with no byte < 0x20, no key-shaped token, and not the userinfo of
           the input (between :// and the last @ before the next /, when it
           is 4 bytes or more; when it has letters or digits, the message
           for the input with those rotated (a -> b) must hold the rotated
           userinfo too, so that the function's own words never count).

retry_after  core.parse_retry_after(s, now)
  input    bytes 1-4: now (little endian, 0 .. 2^32-1); the rest is s.
  checks   nil or a finite number in [0, 2147483647]; never raises. The
           same value as a retry-after header of a 429 through
           core.normalize gives an err.retry_after within the same bounds.

FUZZ_IGNORE (environment, comma-separated property ids; "json.*" ignores a
family) turns the named failures into one note each on stderr instead of a
crash: for exploring past a known bug, never for `make fuzz` results.
]=]

local core = require("onecli.core")

local byte, char, sub, find, fmt, rep = string.byte, string.char, string.sub,
  string.find, string.format, string.rep
local concat, sort = table.concat, table.sort
local mtype = math.type

local M = {}

---------------------------------------------------------------------------
-- reporting

local IGNORE, noted = {}, {}
for id in (os.getenv("FUZZ_IGNORE") or ""):gmatch("[^,%s]+") do
  IGNORE[id] = true
end

local function ignored(id)
  if IGNORE[id] then
    return true
  end
  for i in id:gmatch("()%.") do
    if IGNORE[sub(id, 1, i) .. "*"] then
      return true
    end
  end
  return false
end

-- Strings shown in messages: the current secret masked (before anything
-- is cut, so no part of it shows either), control and non-ASCII bytes as
-- \xNN, cut to max bytes.
local masks = {}

local function masked(s)
  for _, m in ipairs(masks) do
    local from = 1
    while true do
      local i, j = find(s, m[1], from, true)
      if not i then break end
      s = sub(s, 1, i - 1) .. m[2] .. sub(s, j + 1)
      from = i + #m[2]
    end
  end
  return s
end

local function show(s, max)
  if type(s) ~= "string" then
    return tostring(s)
  end
  s = masked(s)
  max = max or 160
  local cut = #s > max
  if cut then
    s = sub(s, 1, max)
  end
  s = s:gsub("[^\32-\126]", function(c) return fmt("\\x%02x", byte(c)) end)
  return '"' .. s .. '"' .. (cut and "..." or "")
end

-- The part of s around byte i (where a leak starts).
local function around(s, i, width)
  width = width or 60
  i = #masked(sub(s, 1, i - 1)) + 1
  s = masked(s)
  local from = math.max(1, i - width)
  return (from > 1 and "..." or "") .. show(sub(s, from, i + width + 40), 2 * width + 40)
end

local function fail(id, msg)
  if ignored(id) then
    if not noted[id] then
      noted[id] = true
      io.stderr:write("fuzz: ignoring ", id, ": ", msg, "\n")
    end
    return
  end
  fuzz_fail(id, msg) -- luacheck: ignore (global set by driver.c)
end

---------------------------------------------------------------------------
-- shared helpers

-- Reads an input front to back; past the end every byte reads as 0.
local function reader(s)
  local pos, n = 1, #s
  local r = {}
  function r.left()
    return n - pos + 1
  end
  function r.u8()
    if pos > n then return 0 end
    pos = pos + 1
    return byte(s, pos - 1)
  end
  function r.u16()
    local lo = r.u8()
    return lo | (r.u8() << 8)
  end
  function r.bytes(k)
    local t = sub(s, pos, pos + k - 1)
    pos = math.min(pos + k, n + 1)
    return t
  end
  function r.rest()
    local t = sub(s, pos)
    pos = n + 1
    return t
  end
  return r
end

local function lcg(x)
  return (x * 1103515245 + 12345) & 0x7fffffff
end

-- Decodes every %XX and every \uXXXX below 0x80, once, left to right.
local function decode_once(s)
  if not find(s, "[%%\\]") then
    return s
  end
  local out, i, n = {}, 1, #s
  while i <= n do
    local p = find(s, "[%%\\]", i)
    if not p then
      out[#out + 1] = sub(s, i)
      break
    end
    if p > i then
      out[#out + 1] = sub(s, i, p - 1)
    end
    if byte(s, p) == 37 then -- %
      local h = sub(s, p + 1, p + 2)
      if find(h, "^%x%x$") then
        out[#out + 1] = char(tonumber(h, 16))
        i = p + 3
      else
        out[#out + 1] = "%"
        i = p + 1
      end
    else -- backslash
      local h = sub(s, p + 1, p + 5)
      local code = find(h, "^u%x%x%x%x$") and tonumber(sub(h, 2), 16)
      if code and code < 0x80 then
        out[#out + 1] = char(code)
        i = p + 6
      else
        out[#out + 1] = "\\"
        i = p + 1
      end
    end
  end
  return concat(out)
end

local W16 = rep("%w", 16)
local KEY_SHAPE, ORG_KEY_SHAPE = "oc_" .. W16, "oc_org_" .. W16

-- oc_, oc_org_ or aoc_ followed by 16 or more alphanumerics
local function has_key_token(s)
  return find(s, KEY_SHAPE) ~= nil or find(s, ORG_KEY_SHAPE) ~= nil
end

-- Where needle occurs in s raw or in s decoded once: position, text.
local function find_leak(s, needle)
  local p = find(s, needle, 1, true)
  if p then
    return p, s
  end
  local d = decode_once(s)
  p = find(d, needle, 1, true)
  if p then
    return p, d
  end
  return nil
end

-- \u00xx escapes (upper or lower hex) and %xx escapes of one character
local function u_escape(c, upper)
  return fmt(upper and "\\u%04X" or "\\u%04x", byte(c))
end

local function p_escape(c, upper)
  return fmt(upper and "%%%02X" or "%%%02x", byte(c))
end

-- Re-writes s character by character; pick() returns "u", "p" or nil (raw)
-- and case() true for upper-case hex.
local function encode_chars(s, pick, case)
  return (s:gsub(".", function(c)
    local how = pick()
    if how == "u" then
      return u_escape(c, case())
    elseif how == "p" then
      return p_escape(c, case())
    end
    return c
  end))
end

local MAX_DELAY = 2147483647

-- nil when v is a valid delay (nil, or a finite number in range)
local function bad_delay(v)
  if v == nil then
    return nil
  end
  if mtype(v) == nil then
    return "a " .. type(v) .. ", not a number"
  end
  if v ~= v then
    return "NaN"
  end
  if v < 0 or v > MAX_DELAY then
    return fmt("%.17g, outside [0, 2147483647]", v)
  end
  return nil
end

---------------------------------------------------------------------------
-- normalize

-- "oc_" + 64 hex digits, a 16-digit unit four times: .ci/leak-scan.lua
-- (make test scans build/, fuzz logs included) takes such a repeating
-- body for a placeholder, so a libFuzzer log that shows an input holding
-- the secret (learnt from the core's comparisons) is not an unknown key.
local FIXED_SECRET = "oc_" .. rep("3f9a0c51d7e24b68", 4)

-- the same shape, its unit derived from s
local function derive_secret(s)
  local x, t = 5381, {}
  for i = 1, #s do
    x = (x * 33 + byte(s, i)) & 0x7fffffff
  end
  for i = 1, 16 do
    x = lcg(x)
    t[i] = fmt("%x", (x >> 16) & 15)
  end
  return "oc_" .. rep(concat(t), 4)
end

local CURL_CODES = {
  "COULDNT_CONNECT", "OPERATION_TIMEDOUT", "SSL_CONNECT_ERROR", "PEER_FAILED_VERIFICATION",
  "COULDNT_RESOLVE_HOST", "SEND_ERROR", "RECV_ERROR", "GOT_NOTHING", "",
}

local function upper_hex() return true end
local function lower_hex() return false end

-- marker variant -> function(secret, body) returning the text to splice
local MARKERS = {
  [""] = function(secret) return secret end,
  [".u"] = function(secret)
    return encode_chars(secret, function() return "u" end, lower_hex)
  end,
  [".U"] = function(secret)
    return encode_chars(secret, function() return "u" end, upper_hex)
  end,
  [".p"] = function(secret)
    return encode_chars(secret, function() return "p" end, lower_hex)
  end,
  [".P"] = function(secret)
    return encode_chars(secret, function() return "p" end, upper_hex)
  end,
  [".some"] = function(secret)
    local i = 0
    return encode_chars(secret, function()
      i = i + 1
      return (i % 3 == 0 and "u") or (i % 5 == 0 and "p") or nil
    end, function() return i % 2 == 0 end)
  end,
  [".bare"] = function(_, body) return body end,
  [".glued"] = function(secret) return "oc_AAAAAAAAAAAAAAAA" .. secret end,
}

local function splice_markers(s, secret, body)
  if s == nil or not (find(s, "{{key", 1, true) or find(s, "_KEY", 1, true)
                      or find(s, "_TOKEN>", 1, true)) then
    return s
  end
  s = s:gsub("{{key([%.%a]*)}}", function(v)
    return (MARKERS[v] or MARKERS[""])(secret, body)
  end)
  s = s:gsub("%$ONECLI_API_KEY", function() return secret end)
  s = s:gsub("a?oc_<[%u_]+>", function() return secret end)
  return s
end

-- Reads the input as described at the top: method, path, status,
-- headers (or nil), body (or nil), pseudo-headers.
local function parse_exchange(data)
  local pos, n = 1, #data
  local function line()
    if pos > n then return nil end
    local e = find(data, "\n", pos, true)
    local l
    if e then
      l, pos = sub(data, pos, e - 1), e + 1
    else
      l, pos = sub(data, pos), n + 1
    end
    if sub(l, -1) == "\r" then
      l = sub(l, 1, -2)
    end
    return l
  end

  local request = line() or ""
  local method, path = request:match("^([^ ]*) ?(.*)$")
  local status_line = line() or ""
  local digits = status_line:gsub("^HTTP/%S*", "", 1):match("%d+")
  local status = digits and tonumber(sub(digits, 1, 9))
  if status == nil then
    status = 100 + (#status_line * 7 + (byte(status_line, 1) or 0)) % 500
  elseif status < 100 or status > 599 then
    status = 100 + status % 500
  end

  local headers, pseudo, count, ended = {}, {}, 0, false
  while true do
    local l = line()
    if l == nil then break end
    if l == "" then
      ended = true
      break
    end
    local name, value = l:match("^([^:]*):[ \t]*(.*)$")
    if name then
      name = name:lower():match("^%s*(.-)%s*$")
      if name:match("^x%-fuzz%-") then
        pseudo[name] = value
      else
        headers[name] = value
        count = count + 1
      end
    end
  end
  local body = ended and sub(data, pos) or nil
  return (method ~= "" and method or nil), (path ~= "" and path or nil), status,
    (count > 0 and headers or nil), body, pseudo
end

-- The invariants of every error object; ids start with fn ("normalize",
-- "transport_error"), what names the case in messages.
local function check_error_object(fn, err, secret, body_part, what)
  if not core.is_error(err) then
    fail(fn .. ".is_error", fmt("%s: %s returned %s, not an error object",
      what, fn, show(tostring(err))))
    return
  end
  local ok, line = pcall(tostring, err)
  if not ok or type(line) ~= "string" then
    fail(fn .. ".tostring", fmt("%s: tostring(err) raised or is not a string: %s",
      what, show(tostring(line))))
    return
  end
  local bad = find(line, "[\0-\31\127]")
  if bad then
    fail(fn .. ".tostring.one_line", fmt("%s: tostring(err) has byte 0x%02x at %d: %s",
      what, byte(line, bad), bad, around(line, bad)))
  end
  if #line > 4096 then
    fail(fn .. ".tostring.length", fmt("%s: tostring(err) is %d bytes (max 4096)",
      what, #line))
  end
  if type(err.type) ~= "string" or not err.type:match("^[a-z][a-z0-9_]*$") then
    fail(fn .. ".type", fmt("%s: err.type is %s", what, show(err.type)))
  end
  local why = bad_delay(err.retry_after)
  if why then
    fail(fn .. ".retry_after", fmt("%s: err.retry_after is %s", what, why))
  end
  local limits = { body = 4096, path = 1024, message = 4096 }
  for _, field in ipairs({ "body", "path", "message" }) do
    local v = err[field]
    if v ~= nil and (type(v) ~= "string" or #v > limits[field]) then
      fail(fn .. "." .. field .. "_length", fmt("%s: err.%s is %s (max %d bytes)",
        what, field, type(v) == "string" and #v .. " bytes" or type(v), limits[field]))
    end
  end
  if secret then
    local texts = { ["tostring(err)"] = line }
    for k, v in pairs(err) do
      if type(v) == "string" then
        texts["err." .. tostring(k)] = v
      end
    end
    local names = {}
    for name in pairs(texts) do names[#names + 1] = name end
    sort(names)
    for _, name in ipairs(names) do
      local p, text = find_leak(texts[name], body_part)
      if p then
        fail(fn .. ".secret", fmt("%s: the secret survives in %s at byte %d: %s",
          what, name, p, around(text, p)))
        break
      end
    end
  end
end

function M.normalize(data)
  local method, path, status, headers, body, pseudo = parse_exchange(data)
  local secret = pseudo["x-fuzz-secret"] and derive_secret(pseudo["x-fuzz-secret"])
                 or FIXED_SECRET
  local body_part = sub(secret, 4)
  masks = { { secret, "<SECRET>" }, { body_part, "<SECRET-BODY>" } }

  method = splice_markers(method, secret, body_part)
  path = splice_markers(path, secret, body_part)
  body = splice_markers(body, secret, body_part)
  if headers then
    for k, v in pairs(headers) do
      headers[k] = splice_markers(v, secret, body_part)
    end
  end
  local opts = {
    secret = secret,
    reason = splice_markers(pseudo["x-fuzz-reason"], secret, body_part),
    attempts = tonumber(pseudo["x-fuzz-attempts"] or ""),
  }

  local ok, err = pcall(core.normalize, method, path, status, headers, body, opts)
  if not ok then
    fail("normalize.raises", fmt("normalize raised: %s", show(tostring(err))))
  else
    check_error_object("normalize", err, secret, body_part, fmt("status %d", status))
  end

  -- the same exchange as a transport failure, message = body; the method
  -- and the curl code come from the library, never from a server: only
  -- upper-case letters (and digits, _ in a code) there
  local code = pseudo["x-fuzz-code"] and pseudo["x-fuzz-code"]:gsub("[^%u%d_]", "")
               or CURL_CODES[status % #CURL_CODES + 1]
  local verb = method and method:gsub("[^%u]", ""):sub(1, 16)
  opts.request_sent = status % 2 == 0
  ok, err = pcall(core.transport_error, verb, path, code, body, opts)
  if not ok then
    fail("transport_error.raises", fmt("transport_error raised: %s", show(tostring(err))))
  else
    check_error_object("transport_error", err, secret, body_part, "code " .. show(code, 40))
  end
end

---------------------------------------------------------------------------
-- json

-- the encoder's placeholder prefix, found in the registry when the core
-- keeps one there (json.c does); "onecli-raw-" otherwise
local placeholder = "onecli-raw-"

local function find_placeholder()
  for _, v in pairs(debug.getregistry()) do
    if type(v) == "string" and v:find("^onecli%-raw%-") then
      return v
    end
  end
  return nil
end

local BOUNDARY_INTS = {
  0, 1, -1, 99999999999999, 100000000000000, -99999999999999, -100000000000000,
  9007199254740991, 9007199254740992, 9007199254740993, -9007199254740993,
  2147483647, 2147483648, -2147483649, 4294967296, 9200000000000000000,
  -9200000000000000000, math.maxinteger, math.mininteger,
}

local BOUNDARY_FLOATS = {
  0.0, -0.0, 0.1, 1 / 3, 1e14, 1e14 - 0.5, 99999999999999.9, 9.2e18, 9.3e18,
  2.0 ^ 53, 2.0 ^ 53 + 2, 2.0 ^ 63, -(2.0 ^ 63), 1e300, -1e-300, 5e-324, 1e-7,
  123456789012345.6, 1e21, 1.5, -1e16, math.huge, -math.huge, 0 / 0,
}

local BAD_UTF8 = {
  "\xff", "\xc0\x80", "\xc1\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
  "\xe2\x82", "\x80", "a\xc3", "\xf8\x88\x80\x80\x80", "\xe0\x80\xaf", "\xfe\xff",
}

local HUGE_INDICES = { 3, 2 ^ 31, 2 ^ 31 + 1, 2 ^ 32, 3e9, 1e10, 2 ^ 40, 2 ^ 53, -1, 0 }

local function build_string(r)
  local k = r.u8()
  local mode, n = k >> 5, k & 31
  if mode <= 2 then
    return r.bytes(n)
  elseif mode == 3 then
    return r.bytes(n + 32 * (r.u8() % 8))
  elseif mode == 4 then
    -- the real placeholder, with a small index and maybe text around it
    local before = (n & 3 == 3) and r.bytes(r.u8() % 4) or ""
    local idx = (n >> 2) % 4
    local after = (n & 16 ~= 0) and r.bytes(r.u8() % 4) or ""
    return before .. placeholder .. (idx == 0 and "" or tostring(idx)) .. after
  elseif mode == 5 then
    return r.bytes(n % 4) .. "onecli-raw-" .. r.bytes(n >> 2)
  elseif mode == 6 then
    local t = {}
    for i = 1, n % 8 do
      local cp = r.u16() | ((r.u8() % 17) << 16)
      t[i] = utf8.char(cp)
    end
    return concat(t)
  end
  return r.bytes(n % 4) .. BAD_UTF8[n % #BAD_UTF8 + 1] .. r.bytes(n >> 3)
end

local build_value

-- values JSON cannot hold: encoding must refuse them
local function build_invalid(r, depth)
  local k = r.u8() % 10
  local v = build_value(r, depth + 1)
  if k == 0 then
    return { v, nil, v }
  elseif k == 1 then
    return { [1] = v, [HUGE_INDICES[r.u8() % #HUGE_INDICES + 1]] = v }
  elseif k == 2 then
    return { v, a = v }
  elseif k == 3 then
    return { [1.5] = v }
  elseif k == 4 then
    return { [true] = v }
  elseif k == 5 then
    return { f = print }
  elseif k == 6 then
    local t = { v }
    t[2] = t
    return t
  elseif k == 7 then
    return core.array({ a = v })
  elseif k == 8 then
    return { [{}] = v }
  end
  return { [HUGE_INDICES[r.u8() % #HUGE_INDICES + 1]] = v }
end

local function check_integer_text(i)
  local ok, t = pcall(core.json_encode, i)
  if not ok or t ~= fmt("%d", i) then
    fail("json.integer_text", fmt("json_encode(%d) gave %s", i, show(tostring(t))))
  end
end

function build_value(r, depth)
  local op = r.u8()
  local kind = op & 15
  if depth > 40 and kind >= 10 then
    kind = kind - 10
  end
  if kind == 0 then
    return op & 16 ~= 0
  elseif kind == 1 then
    return core.null
  elseif kind == 2 then
    local i = r.u8() - 128
    return i
  elseif kind == 3 then
    local i = string.unpack("<i8", r.bytes(8) .. rep("\0", 8))
    check_integer_text(i)
    return i
  elseif kind == 4 then
    -- a boundary +-8 (wrapping around at +-2^63, itself a boundary)
    local i = BOUNDARY_INTS[r.u8() % #BOUNDARY_INTS + 1] + ((op >> 4) - 8)
    check_integer_text(i)
    return i
  elseif kind == 5 then
    return (string.unpack("<d", r.bytes(8) .. rep("\0", 8)))
  elseif kind == 6 then
    local f = BOUNDARY_FLOATS[r.u8() % #BOUNDARY_FLOATS + 1]
    return f * (op & 16 ~= 0 and -1 or 1)
  elseif kind == 7 then
    return (r.u8() - 128) / (r.u8() + 1) * 10.0 ^ ((op >> 4) - 8)
  elseif kind == 8 or kind == 9 then
    return build_string(r)
  elseif kind == 10 then
    local t = {}
    for i = 1, r.u8() % 9 do
      t[i] = build_value(r, depth + 1)
    end
    return op & 16 ~= 0 and core.array(t) or t
  elseif kind == 11 then
    local t = {}
    for _ = 1, r.u8() % 9 do
      t[build_string(r)] = build_value(r, depth + 1)
    end
    return t
  elseif kind == 12 then
    return op & 16 ~= 0 and core.empty_array or core.array()
  elseif kind == 13 then
    -- a chain of nested tables around a leaf, past the depth limit or not
    local v = build_value(r, 41)
    for _ = 1, r.u8() + (op >> 4) do
      v = (op & 16 ~= 0) and { v } or { k = v }
    end
    return v
  elseif kind == 14 then
    return build_invalid(r, depth)
  end
  return build_string(r)
end

-- Walks v (no cycles: only called on values that encoded); calls f on
-- every string and every key, stops at the first true result.
local function find_string(v, f)
  if type(v) == "string" then
    return f(v) and v or nil
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      local hit = find_string(k, f) or find_string(x, f)
      if hit then return hit end
    end
  end
  return nil
end

local function invalid_utf8(s)
  return utf8.len(s) == nil
end

local function has_placeholder(s)
  return find(s, "onecli-raw-", 1, true) ~= nil
end

local function show_key(k)
  return type(k) == "string" and show(k, 40) or tostring(k)
end

-- true, or false and where the first difference is. strict: every table
-- keeps its array mark (a decoded value); otherwise only empty ones do.
local function deep_equal(a, b, where, strict)
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "number" then
    if a == b then
      return true
    end
    return false, fmt("%s (%s vs %s)", where, mtype(a) == "integer" and fmt("%d", a) or fmt("%.17g", a),
      mtype(b) == "integer" and fmt("%d", b) or fmt("%.17g", b))
  end
  if ta ~= tb then
    return false, fmt("%s (%s vs %s)", where, ta, tb)
  end
  if ta ~= "table" then
    if a == b then
      return true
    end
    return false, fmt("%s (%s vs %s)", where, show(tostring(a), 60), show(tostring(b), 60))
  end
  if (strict or next(a) == nil) and core.is_array(a) ~= core.is_array(b) then
    return false, fmt("%s (%s vs %s)", where, core.is_array(a) and "array" or "object",
      core.is_array(b) and "array" or "object")
  end
  local n = 0
  for k, v in pairs(a) do
    n = n + 1
    local same, diff = deep_equal(v, rawget(b, k), where .. "[" .. show_key(k) .. "]", strict)
    if not same then
      return false, diff
    end
  end
  for _ in pairs(b) do
    n = n - 1
  end
  if n ~= 0 then
    return false, where .. " (number of keys differs)"
  end
  return true
end

local function check_encode(v, origin, strict)
  local ok, t = pcall(core.json_encode, v)
  if not ok then
    if type(t) ~= "string" or not find(t, "cannot encode JSON", 1, true) then
      fail("json.encode.error", fmt("%s: json_encode raised an error without "
        .. "'cannot encode JSON': %s", origin, show(tostring(t))))
    end
    return
  end
  if type(t) ~= "string" then
    fail("json.encode.type", fmt("%s: json_encode returned a %s", origin, type(t)))
    return
  end
  local bad = find_string(v, invalid_utf8)
  if bad then
    fail("json.encode.invalid_utf8", fmt("%s: a string with invalid UTF-8 was "
      .. "encoded instead of refused: %s -> %s", origin, show(bad, 60), show(t)))
    return
  end
  -- a failure with the placeholder prefix in the value is the placeholder
  -- collision (the text no longer decodes, or decodes to something else)
  local collision = find_string(v, has_placeholder) ~= nil
  local back, msg = core.json_decode(t)
  if back == nil then
    fail(collision and "json.placeholder" or "json.encode.invalid_json", fmt("%s: json_encode gave text that does not "
      .. "decode (%s): %s", origin, show(tostring(msg), 80), show(t)))
    return
  end
  local same, where = deep_equal(v, back, "value", strict)
  if not same then
    fail(collision and "json.placeholder" or "json.roundtrip", fmt("%s: "
      .. "json_decode(json_encode(v)) differs from v at %s; text %s", origin, where, show(t)))
  end
end

function M.json(data)
  masks = {}
  local ok, v, msg = pcall(core.json_decode, data)
  if not ok then
    fail("json.decode.raises", fmt("json_decode raised: %s", show(tostring(v))))
  elseif v == nil then
    if type(msg) ~= "string" then
      fail("json.decode.message", fmt("json_decode failed with a %s message", type(msg)))
    end
  else
    check_encode(v, "decoded value", true)
  end

  local r = reader(data)
  local count = 0
  while r.left() > 0 and count < 16 do
    count = count + 1
    check_encode(build_value(r, 0), "built value " .. count)
  end
end

---------------------------------------------------------------------------
-- redact

local ALPHABETS = {
  "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
  "0123456789abcdef",
  "0123456789",
  "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
  "abcdefghijklmnopqrstuvwxyz",
  "0123456789ABCDEF",
}
local ALNUM = ALPHABETS[1]
local KEY_PREFIXES = { "oc_", "oc_org_", "aoc_" }
local KINDS = {
  "raw", "json-u", "json-u-some", "pct", "pct-some", "glued", "bare",
  "bare-escaped", "mixed",
}
local GLUE = {
  "oc_AAAAAAAAAAAAAAAA", "aoc_xxxxxxxxxxxxxxxx", "oc_org_0000000000000000",
}

local function make_body(style, len, seed)
  if style == 6 then
    local i = seed % #ALNUM + 1
    return rep(sub(ALNUM, i, i), len)
  end
  local alpha = ALPHABETS[style % #ALPHABETS + 1]
  local t, x = {}, seed
  for i = 1, len do
    x = lcg(x)
    local j = (x >> 16) % #alpha + 1
    t[i] = sub(alpha, j, j)
  end
  return concat(t)
end

-- The text an insertion splices in; enc: low 4 bits the kind (KINDS),
-- bit 4 upper-case hex, bit 5 hex case chosen per character.
local function encode_secret(ins, prefix, body)
  local secret = prefix .. body
  local kind = (ins.enc & 15) % #KINDS + 1
  local upper = ins.enc & 16 ~= 0
  local x = ins.mask * 2654435761 + 1
  local function coin()
    x = lcg(x)
    return (x >> 16) & 1 == 1
  end
  local case = (ins.enc & 32 ~= 0) and coin or function() return upper end
  local name = KINDS[kind]
  if name == "raw" then
    return secret, name
  elseif name == "json-u" then
    return encode_chars(secret, function() return "u" end, case), name
  elseif name == "json-u-some" then
    return encode_chars(secret, function() return coin() and "u" or nil end, case), name
  elseif name == "pct" then
    return encode_chars(secret, function() return "p" end, case), name
  elseif name == "pct-some" then
    return encode_chars(secret, function() return coin() and "p" or nil end, case), name
  elseif name == "glued" then
    return (GLUE[ins.mask % 4 + 1] or prefix .. rep("Z", 20)) .. secret, name
  elseif name == "bare" then
    return body, name
  elseif name == "bare-escaped" then
    return encode_chars(body, function()
      return coin() and (coin() and "u" or "p") or nil
    end, case), name
  end
  return encode_chars(secret, function()
    return coin() and (coin() and "u" or "p") or nil
  end, case), name
end

-- text with each insertion spliced in at its position; the list of kinds
local function splice(text, list, prefix, body)
  local order, kinds = {}, {}
  for i, ins in ipairs(list) do
    order[i] = { at = ins.pos % (#text + 1), i = i }
  end
  sort(order, function(a, b)
    if a.at ~= b.at then return a.at > b.at end
    return a.i > b.i
  end)
  for _, o in ipairs(order) do
    local piece, name = encode_secret(list[o.i], prefix, body)
    kinds[o.i] = name .. "@" .. o.at
    text = sub(text, 1, o.at) .. piece .. sub(text, o.at + 1)
  end
  return text, kinds
end

-- No key-shaped token and not the secret's body, raw or decoded once.
local function innocent(text, body)
  local d = decode_once(text)
  if has_key_token(text) or has_key_token(d) then
    return false
  end
  return body == nil or (not find(text, body, 1, true) and not find(d, body, 1, true))
end

local function redact(what, s, secret)
  local ok, out = pcall(core.redact, s, secret)
  if not ok then
    fail("redact.raises", fmt("%s: redact raised: %s", what, show(tostring(out))))
    return nil
  end
  if type(out) ~= "string" then
    fail("redact.type", fmt("%s: redact returned a %s", what, type(out)))
    return nil
  end
  return out
end

function M.redact(data)
  local r = reader(data)
  local b1 = r.u8()
  local prefix = KEY_PREFIXES[b1 % 3 + 1]
  local count = (b1 >> 2) % 3 + 1
  local style = (b1 >> 4) & 7
  local len = 16 + r.u8() % 49
  local body = make_body(style, len, r.u16())
  local secret = prefix .. body
  local list = {}
  for i = 1, count do
    list[i] = { pos = r.u16(), enc = r.u8(), mask = r.u8() }
  end
  local text = r.rest()
  masks = { { secret, "<SECRET>" }, { body, "<SECRET-BODY>" } }
  local what = fmt("secret %s+%d", prefix, len)

  -- the text alone
  local out = redact(what .. ", text alone", text, secret)
  if out then
    local p, where = find_leak(out, body)
    if p then
      fail("redact.leak.text", fmt("%s: the secret, already in the text, survives "
        .. "at byte %d: %s", what, p, around(where, p)))
    elseif out ~= text and innocent(text, body) then
      fail("redact.mangles", fmt("%s: an innocent text came back changed: %s -> %s",
        what, show(text), show(out)))
    end
  end
  out = redact("no secret", text, nil)
  if out and out ~= text and innocent(text, nil) then
    fail("redact.mangles", fmt("no secret: an innocent text came back changed: %s -> %s",
      show(text), show(out)))
  end

  -- with the secret spliced in
  local spliced, kinds = splice(text, list, prefix, body)
  out = redact(what, spliced, secret)
  if not out then
    return
  end
  local p, where = find_leak(out, body)
  if p then
    -- name the insertion that leaks on its own, for the failure id
    local culprit = "combined"
    for i = 1, #list do
      local alone, k = splice(text, { list[i] }, prefix, body)
      local o = redact(what, alone, secret)
      if o and find_leak(o, body) then
        culprit = k[1]:match("^[^@]+")
        break
      end
    end
    fail("redact.leak." .. culprit, fmt("%s inserted as %s: the secret survives at "
      .. "byte %d of the output (decoded): %s", what, concat(kinds, ", "), p,
      around(where, p)))
  end
end

---------------------------------------------------------------------------
-- url

local have_segment, have_normalize_url = false, false

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function check_path_segment(s)
  local ok, e, msg = pcall(core.path_segment, s)
  if not ok then
    fail("url.path_segment.raises", fmt("path_segment(%s) raised: %s", show(s),
      show(tostring(e))))
    return
  end
  local refuse = s == "" or s == "." or s == ".."
  if e == nil then
    if not refuse then
      fail("url.path_segment.refused", fmt("path_segment(%s) refused: %s", show(s),
        show(tostring(msg))))
    elseif type(msg) ~= "string" then
      fail("url.path_segment.message", fmt("path_segment(%s) gave nil and a %s",
        show(s), type(msg)))
    end
    return
  end
  local what = fmt("path_segment(%s) = %s", show(s, 80), show(tostring(e), 80))
  if refuse then
    fail("url.path_segment.accepted", what .. ": must be refused")
  elseif type(e) ~= "string" or not e:match("^[A-Za-z0-9%%%-._~]+$") then
    fail("url.path_segment.charset", what .. ": not only unreserved characters and %")
  elseif e == "." or e == ".." then
    fail("url.path_segment.dots", what)
  else
    for i in e:gmatch("()%%") do
      if not sub(e, i + 1, i + 2):match("^[0-9A-F][0-9A-F]$") then
        fail("url.path_segment.escape", what .. fmt(": %% at %d not followed by two "
          .. "upper-case hex digits", i))
        return
      end
    end
    if percent_decode(e) ~= s then
      fail("url.path_segment.decode", what .. ": does not percent-decode back")
    end
  end
end

-- the userinfo of s: between :// and the last @ before the next /; and
-- where it starts in s
local function userinfo(s)
  local i = find(s, "://", 1, true)
  if not i then return nil end
  local rest = sub(s, i + 3)
  local slash = find(rest, "/", 1, true)
  local authority = slash and sub(rest, 1, slash - 1) or rest
  local at = authority:match(".*()@")
  return at and sub(authority, 1, at - 1) or nil, i + 3
end

-- s with every letter and digit replaced by the next one (z -> a, 9 -> 0)
local function rotate(s)
  return (s:gsub("%w", function(c)
    if c == "z" then return "a" elseif c == "Z" then return "A" elseif c == "9" then return "0" end
    return char(byte(c) + 1)
  end))
end

-- Whether the message msg of normalize_url(s) repeats the userinfo of s.
-- A plain search could match the function's own words by chance (the
-- userinfo "ed]@" is in "[credentials removed]@"), so when the userinfo
-- has letters or digits the same input with those rotated must give a
-- message that repeats the rotated userinfo too: then it is an echo.
local function repeats_userinfo(s, msg)
  local info, at = userinfo(s)
  if not info or #info < 4 or not find(msg, info, 1, true) then
    return false
  end
  -- a message may show what follows the last '@' (with control and
  -- non-ASCII bytes as '?'): the same text there is not an echo
  local tail = s:match("^.*@(.*)$") or s
  if find((tail:gsub("[%z\1-\32\127-\255]", "?")), info, 1, true) then
    return false
  end
  if not find(info, "%w") then
    return true
  end
  -- the rotated userinfo must appear nowhere else in the input (the rest of
  -- it may be shown): rotate again until it does not, or give up
  local other = rotate(info)
  for _ = 1, 8 do
    if not find((s:gsub("[%z\1-\32\127-\255]", "?")), other, 1, true) and not find(s, other, 1, true) then
      local ok, url, msg2 = pcall(core.normalize_url, sub(s, 1, at - 1) .. other .. sub(s, at + #info))
      return ok and url == nil and type(msg2) == "string" and find(msg2, other, 1, true) ~= nil
    end
    other = rotate(other)
  end
  return false
end

local function check_url(url, base, what)
  local function bad(id, why)
    fail("url.normalize_url." .. id, fmt("%s = %s, %s: %s", what, show(tostring(url), 100),
      show(tostring(base), 60), why))
  end
  if type(url) ~= "string" or type(base) ~= "string" then
    return bad("type", "url and base_path must be strings")
  end
  if not (url:match("^http://") or url:match("^https://")) then
    return bad("scheme", "does not start with http:// or https://")
  end
  local p = find(url, "[\0-\32\127]")
  if p then
    return bad("bytes", fmt("byte 0x%02x at %d", byte(url, p), p))
  end
  local authority, path = url:match("^https?://([^/]*)(.*)$")
  if find(authority, "@", 1, true) then
    return bad("userinfo", "@ in the authority")
  end
  if find(url, "[?#]") then
    return bad("query", "? or # in the url")
  end
  for seg in (path .. "/"):gmatch("([^/]*)/") do
    if seg == "." or seg == ".." then
      return bad("dots", "a . or .. path segment")
    end
  end
  if sub(base, 1, 1) ~= "/" or sub(base, -1) == "/" then
    return bad("base_path", "base_path must start with / and not end with /")
  end
  if sub(url, -#base) ~= base then
    return bad("base_path", "url does not end with base_path")
  end
  local ok, again = pcall(core.normalize_url, url)
  if not ok or again ~= url then
    return bad("idempotent", "normalize_url(url) gives " .. show(tostring(again), 100))
  end
end

local function check_normalize_url(s)
  local ok, url, base = pcall(core.normalize_url, s)
  local what = fmt("normalize_url(%s)", show(s, 100))
  if not ok then
    fail("url.normalize_url.raises", fmt("%s raised: %s", what, show(tostring(url))))
    return
  end
  if url ~= nil then
    check_url(url, base, what)
    return
  end
  local msg = base
  if type(msg) ~= "string" then
    fail("url.normalize_url.message", fmt("%s gave nil and a %s", what, type(msg)))
    return
  end
  local p = find(msg, "[\0-\31]")
  if p then
    fail("url.normalize_url.message", fmt("%s: message has byte 0x%02x at %d: %s",
      what, byte(msg, p), p, around(msg, p)))
  end
  if has_key_token(msg) then
    fail("url.normalize_url.message_key", fmt("%s: message holds a key-shaped token: %s",
      what, show(msg)))
  end
  if repeats_userinfo(s, msg) then
    fail("url.normalize_url.message_userinfo", fmt("%s: message holds the userinfo: %s",
      what, show(msg)))
  end
end

function M.url(data)
  masks = {}
  if have_segment then
    check_path_segment(data)
  end
  if have_normalize_url then
    check_normalize_url(data)
  end
end

---------------------------------------------------------------------------
-- retry_after

function M.retry_after(data)
  masks = {}
  local now = string.unpack("<I4", sub(data, 1, 4) .. "\0\0\0\0")
  local value = sub(data, 5)
  local ok, v = pcall(core.parse_retry_after, value, now)
  if not ok then
    fail("retry_after.raises", fmt("parse_retry_after(%s, %d) raised: %s", show(value),
      now, show(tostring(v))))
  else
    local why = bad_delay(v)
    if why then
      fail("retry_after.range", fmt("parse_retry_after(%s, %d) is %s", show(value), now, why))
    end
  end
  local okn, err = pcall(core.normalize, "GET", "/v1/agents", 429,
    { ["retry-after"] = value }, "", nil)
  if not okn then
    fail("retry_after.normalize.raises", fmt("normalize with retry-after %s raised: %s",
      show(value), show(tostring(err))))
    return
  end
  local why = bad_delay(type(err) == "table" and err.retry_after or nil)
  if why then
    fail("retry_after.normalize", fmt("normalize with retry-after %s: err.retry_after is %s",
      show(value), why))
  end
end

---------------------------------------------------------------------------

function M.setup(target)
  placeholder = find_placeholder() or placeholder
  if target == "url" then
    have_segment = type(core.path_segment) == "function"
    have_normalize_url = type(core.normalize_url) == "function"
    local missing = {}
    if not have_segment then missing[#missing + 1] = "core.path_segment" end
    if not have_normalize_url then missing[#missing + 1] = "core.normalize_url" end
    if #missing > 0 then
      io.stderr:write("fuzz: SKIP: ", concat(missing, " and "), " not in the core yet\n")
    end
  end
end

return M
