--[=[
seeds.lua - regenerates the seed corpora of the fuzz targets,
spec/fuzz/corpus/<target>/, from the recorded server exchanges.

usage: lua5.4 spec/fuzz/seeds.lua [captures-dir [corpus-dir]]
       (make fuzz-seeds; defaults ../shared/reference/captures and
       spec/fuzz/corpus, run from the top of the tree)

Each capture file is one exchange: "### REQUEST", request line, headers,
blank line, body, then "### RESPONSE", status line, headers, blank line,
body. The seeds are written in the input layouts that properties.lua reads
(see its header):

  normalize    request line, status line, the headers the normalizer reads
               (content-type, x-request-id, retry-after, location), blank
               line, body; placeholders of credentials become key markers
               ({{key}}, ...), and some seeds get a marker spliced into the
               path or the message in one of the encodings; plus hand-made
               cases (429/503 with Retry-After, redirects, HTML and text
               bodies, odd error types, long paths and messages).
  json         every request and response body that is JSON, plus
               hand-made edge cases (big and exact numbers, surrogates,
               invalid UTF-8, the encoder's placeholder prefix, deep nesting).
  url          request paths as base URLs and as single path segments,
               plus hand-made URLs (userinfo, dot segments, queries, ...).
  retry_after  4 bytes of "now" (little endian) + a Retry-After value: the
               Date headers of the captures and hand-made values.
  redact       the redact header (secret shape, insertions: see
               properties.lua) + response bodies, with other key-shaped
               tokens where the captures have credential placeholders.

The files are small (< 8000 bytes, a few hundred at most per target) and
named after their source, so regenerating gives the same tree. Nothing
else is written: the output directories are emptied first.
]=]

local cjson = require("cjson.safe")

local CAPTURES = arg[1] or "../shared/reference/captures"
local OUT = arg[2] or "spec/fuzz/corpus"
local MAX_BYTES = 8000
local MAX_FILES = 300

local fmt, concat = string.format, table.concat

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  p:close()
  return t
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

---------------------------------------------------------------------------
-- captures

local function split_message(part)
  local head, body = part:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then
    head, body = part, nil
  end
  local lines = {}
  for l in (head .. "\n"):gmatch("(.-)\r?\n") do
    lines[#lines + 1] = l
  end
  local first = table.remove(lines, 1) or ""
  local headers = {}
  for _, l in ipairs(lines) do
    local k, v = l:match("^([^:]+):%s*(.*)$")
    if k then
      headers[#headers + 1] = { k, v }
    end
  end
  if body then
    body = body:gsub("\n+$", "")
  end
  return first, headers, body
end

local function header(headers, name)
  for _, h in ipairs(headers) do
    if h[1]:lower() == name then
      return h[2]
    end
  end
  return nil
end

local function load_captures(dir)
  local files = lines_of("find " .. quote(dir) .. " -type f -name '*.txt' | LC_ALL=C sort")
  local list = {}
  for _, path in ipairs(files) do
    local text = read(path)
    local req, resp = text:match("^### REQUEST\r?\n(.-)\r?\n### RESPONSE\r?\n(.*)$")
    if req then
      local c = { name = path:sub(#dir + 2):gsub("%.txt$", ""):gsub("[^%w.-]", "-") }
      c.request_line, c.request_headers, c.request_body = split_message(req)
      c.status_line, c.headers, c.body = split_message(resp)
      c.method, c.path = c.request_line:match("^(%S+)%s+(%S+)")
      list[#list + 1] = c
    end
  end
  return list
end

---------------------------------------------------------------------------
-- output

local corpora = {}

local function corpus(target)
  local c = corpora[target]
  if not c then
    c = { target = target, files = {}, seen = {}, shapes = {} }
    corpora[target] = c
  end
  return c
end

-- Adds a seed unless it is too big, already there, or (with a shape key)
-- of a shape already seen; the name gets a number when it is taken.
local function add(target, name, data, shape)
  local c = corpus(target)
  if #data >= MAX_BYTES or c.seen[data] or #c.files >= MAX_FILES then
    return false
  end
  if shape then
    if c.shapes[shape] then return false end
    c.shapes[shape] = true
  end
  c.seen[data] = true
  name = name:gsub("[^%w._-]", "-")
  local base, n = name, 1
  while c.files[name] do
    n = n + 1
    name = base .. "-" .. n
  end
  c.files[name] = data
  c.files[#c.files + 1] = name
  return true
end

local function write_all()
  for target, c in pairs(corpora) do
    local dir = OUT .. "/" .. target
    assert(os.execute("mkdir -p " .. quote(dir) .. " && find " .. quote(dir)
      .. " -maxdepth 1 -type f -delete"))
    for _, name in ipairs(c.files) do
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(c.files[name])
      f:close()
    end
    print(fmt("%-12s %3d seeds in %s", target, #c.files, dir))
  end
end

---------------------------------------------------------------------------
-- normalize

local READ_HEADERS = { "content-type", "x-request-id", "retry-after", "location" }

-- credential placeholders of the captures become key markers
local function markers(s)
  s = s:gsub("a?oc_<[%u_]+>", "{{key}}")
  return s
end

local function exchange(request_line, status_line, headers, body)
  local t = { request_line, status_line }
  for _, h in ipairs(headers) do
    t[#t + 1] = h[1] .. ": " .. h[2]
  end
  t[#t + 1] = ""
  return concat(t, "\n") .. "\n" .. (body or "")
end

local VARIANTS = { "{{key}}", "{{key.u}}", "{{key.U}}", "{{key.p}}", "{{key.P}}",
                   "{{key.some}}", "{{key.bare}}", "{{key.glued}}" }

local function normalize_seeds(captures)
  local variant = 0
  for _, c in ipairs(captures) do
    local kept = {}
    for _, name in ipairs(READ_HEADERS) do
      local v = header(c.headers, name)
      if v then kept[#kept + 1] = { name, v } end
    end
    local body = markers(c.body or "")
    if #body > 6000 then
      body = body:sub(1, 6000)
    end
    local status = c.status_line:match("%d%d%d") or "?"
    local shape = status .. "|" .. (header(c.headers, "content-type") or "") .. "|"
                  .. body:sub(1, 2000):gsub("%w+", "w")
    local req = markers(c.request_line:gsub("%?.*", ""))
    add("normalize", c.name, exchange(req, c.status_line, kept, body), shape)

    -- a key spliced into the message or the path, one encoding after another
    if tonumber(status) and tonumber(status) >= 400 and body:find('"', 1, true) then
      variant = variant % #VARIANTS + 1
      local v = VARIANTS[variant]
      local spliced, n = body:gsub('("message":")', "%1" .. v .. " ", 1)
      if n == 0 then
        spliced, n = body:gsub('("error":")', "%1" .. v .. " ", 1)
      end
      if n > 0 then
        add("normalize", c.name .. "-key-in-body", exchange(req, c.status_line, kept, spliced),
            status .. "|body|" .. v)
      end
      add("normalize", c.name .. "-key-in-path",
          exchange(req .. "/" .. VARIANTS[(variant + 3) % #VARIANTS + 1], c.status_line, kept, body),
          status .. "|path|" .. variant)
    end
  end

  local json_ct = { { "content-type", "application/json" } }
  local long = ("segment/"):rep(200)
  local synthetic = {
    { "rate-limited", "GET /v1/agents", "HTTP/1.1 429 Too Many Requests",
      { { "content-type", "application/json" }, { "retry-after", "120" } },
      '{"error":"Too many requests"}' },
    { "retry-after-nines", "GET /v1/agents", "HTTP/1.1 429 Too Many Requests",
      { { "retry-after", ("9"):rep(400) } }, "" },
    { "retry-after-date", "GET /v1/agents", "HTTP/1.1 503 Service Unavailable",
      { { "retry-after", "Fri, 31 Dec 9999 23:59:59 GMT" } }, "" },
    { "retry-after-fraction", "POST /v1/agents", "HTTP/1.1 503 Service Unavailable",
      { { "retry-after", "1.5" }, { "x-request-id", "req-{{key}}" } }, "upstream busy" },
    { "redirect", "GET /v1", "HTTP/1.1 302 Found",
      { { "location", "https://example.com/login?key={{key.p}}" } }, "" },
    { "redirect-long", "GET /v1", "HTTP/1.1 301 Moved Permanently",
      { { "location", "https://example.com/" .. long } }, "" },
    { "proxy-html", "GET /v1/agents", "HTTP/1.1 502 Bad Gateway",
      { { "content-type", "text/html" } },
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
      .. "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n" },
    { "text-401", "GET /v1/agents", "HTTP/1.1 401 Unauthorized",
      { { "content-type", "text/plain" } }, "Invalid API key {{key}}" },
    { "empty-500", "DELETE /v1/agents/x", "HTTP/1.1 500 Internal Server Error", {}, "" },
    { "type-newline", "POST /v1/agents", "HTTP/1.1 400 Bad Request", json_ct,
      '{"error":{"message":"bad","type":"invalid\\nrequest\\r\\u0000x"}}' },
    { "type-odd", "POST /v1/agents", "HTTP/1.1 409 Conflict", json_ct,
      '{"error":{"message":"dup","type":"Weird Type! {{key}}","code":"a\\tb"}}' },
    { "long-path", "GET /v1/" .. long, "HTTP/1.1 404 Not Found", json_ct,
      '{"error":"Not found"}' },
    { "long-message", "POST /v1/secrets", "HTTP/1.1 400 Bad Request", json_ct,
      '{"error":"' .. ("x"):rep(5000) .. '"}' },
    { "auth-shape", "POST /api/auth/sign-in", "HTTP/1.1 422 Unprocessable Entity", json_ct,
      '{"message":"Invalid token {{key.u}}","code":"INVALID_TOKEN"}' },
    { "reason-control", "GET /v1/x", "HTTP/1.1 599 Whatever",
      { { "x-fuzz-reason", "Bad\tThing\127 {{key}}" }, { "x-fuzz-attempts", "3" } }, "" },
    { "derived-secret", "GET /v1/agents/{{key.bare}}", "HTTP/1.1 403 Forbidden",
      { { "x-fuzz-secret", "seed-1" }, { "content-type", "application/json" } },
      '{"error":"forbidden for {{key.glued}}"}' },
    { "invalid-json-200", "GET /v1/agents", "HTTP/1.1 200 OK", json_ct, '{"id": ' },
    { "odd-method", "GE\tT\1 /v1/agents\127", "HTTP/1.1 418", {}, "I'm a teapot" },
    { "no-request-line", "", "HTTP/1.1 400", json_ct,
      '{"error":"code_only","message":"with \\u006f\\u0063_ escapes"}' },
    { "huge-attempts", "GET /v1/x", "HTTP/1.1 503",
      { { "x-fuzz-attempts", "99999999999999999999" } }, "down" },
  }
  for _, s in ipairs(synthetic) do
    add("normalize", "synthetic-" .. s[1], exchange(s[2], s[3], s[4], s[5]))
  end
end

---------------------------------------------------------------------------
-- json

local function json_seeds(captures)
  for _, c in ipairs(captures) do
    for _, part in ipairs({ { "req", c.request_body }, { "resp", c.body } }) do
      local which, body = part[1], part[2]
      if body and body ~= "" and cjson.decode(body) ~= nil then
        add("json", which .. "-" .. c.name, body, body:sub(1, 3000):gsub("%w+", "w"))
      end
    end
  end
  local synthetic = {
    ints = "[9223372036854775807, -9223372036854775808, 9007199254740993, "
      .. "100000000000000, 99999999999999, -100000000000000]",
    floats = "[0.1, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 1.0, "
      .. "123456789012345.6, 9.3e18, 1e21]",
    inf = "[1e400, -1e400]",
    surrogates = '["\\ud800", "\\udc00", "\\ud83d\\ude00", "\\u0000", "\\u00e9"]',
    ["raw-invalid-utf8"] = '["\255", "\192\128", "\237\160\128", "ok"]',
    ["key-invalid-utf8"] = '{"\244\144\128\128": 1}',
    placeholder = '{"onecli-raw-1": ["onecli-raw-00000000deadbeef-1", "x onecli-raw-2"]}',
    empties = '{"a": [], "b": {}, "c": [[]], "d": [{}], "e": null}',
    deep = ("["):rep(130) .. ("]"):rep(130),
    deep_objects = ('{"a":'):rep(130) .. "1" .. ("}"):rep(130),
    scalars_null = "null",
    scalar_string = '"onecli-raw-"',
    scalar_number = "-0",
    truncated = '{"a": [1, 2',
    bad_number = "[0x10, NaN, Infinity]",
    escapes = '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    mixed_keys = '{"1": 1, "2": 2}',
    -- recipes for the value builder (the input read as bytes, see properties.lua)
    ["recipe-array-bigints"] = "\26\4\17\4\18\3\255\255\255\255\255\255\255\127",
    ["recipe-placeholder"] = "\27\3\137\139\4\18\137\145\2",
    ["recipe-sparse-huge"] = "\14\1\2\1\14\9\0\3",
    ["recipe-deep"] = "\45\200\2\5",
    ["recipe-bad-utf8"] = "\11\2\233\1\8\234\2\8\1",
  }
  local names = {}
  for name in pairs(synthetic) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    add("json", "synthetic-" .. name, synthetic[name])
  end
end

---------------------------------------------------------------------------
-- url

local function url_seeds(captures)
  local origins = { "http://localhost:10254", "https://api.onecli.sh", "HTTP://127.0.0.1:10256" }
  local n = 0
  for _, c in ipairs(captures) do
    if c.path then
      local path = c.path:gsub("%?.*", "")
      n = n + 1
      add("url", "base-" .. c.name, origins[n % #origins + 1] .. path, path:gsub("%x+%-[%x-]+", "id"))
      local last = path:match("([^/]+)$")
      if last then
        add("url", "segment-" .. c.name, last, last:gsub("%w", "w"))
      end
    end
  end
  local synthetic = {
    "https://user:pa55word@onecli.example/api", "http://oc_0123456789abcdefABCD@h/v1",
    "https://h/v1/oc_0123456789abcdefABCD", "HTTP://EXAMPLE.com:10256/", "http://h/a/../v1",
    "http://h/./v1//", "http://h/%2e%2e/v1", "http://h/%2E/v1", "http://h?x=1", "http://h/v1#f",
    "http://[::1]:10256/v1", "https://h/v1/", "ftp://h/", "http://", "http:///v1", "//h/v1",
    "http://h\\v1", "http://h /v1", "http://h/v1\t", "http://h:/v1", "http://@h/", "http://a@b@c/d",
    "https://h" .. ("/x"):rep(300), ".", "..", "", "a/b", "\195\169", "%", "%zz", "%2F",
    "~user", "a b", "\0", "...", "-._~", "a%2Fb", "h\127",
  }
  for i, s in ipairs(synthetic) do
    add("url", fmt("synthetic-%02d", i), s)
  end
end

---------------------------------------------------------------------------
-- retry_after

local function retry_after_seeds(captures)
  local NOWS = { 0, 1795425938, 784111777, 4294967295 }
  local dates, seen = {}, {}
  for _, c in ipairs(captures) do
    local d = header(c.headers, "date")
    local day = d and d:sub(1, 16)
    if d and not seen[day] then
      seen[day] = true
      dates[#dates + 1] = d
    end
  end
  local values = {
    "0", "120", "1.5", " 30 ", "30 ", ("9"):rep(40), ("9"):rep(400), "1e10", "-5", "+3",
    "0x10", "2147483647", "2147483648", "4294967296.5", "1.", ".5", "1.2.3", "",
    "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 23 Nov 2026 09:25:39 +0100",
    "Tue, 19 Jan 2038 03:14:08 GMT", "Sat, 01 Jan 0000 00:00:00 GMT", "now", "\t\n120",
  }
  for _, d in ipairs(dates) do
    values[#values + 1] = d
  end
  for i, v in ipairs(values) do
    local now = NOWS[i % #NOWS + 1]
    add("retry_after", fmt("value-%02d", i), string.pack("<I4", now) .. v)
    if i <= 24 then
      add("retry_after", fmt("value-%02d-now", i), string.pack("<I4", 1795425938) .. v)
    end
  end
end

---------------------------------------------------------------------------
-- redact

local OTHER_KEY = "oc_" .. ("0f1e2d3c4b5a6978"):rep(4)
local OTHER_TOKEN = "aoc_" .. ("Zy9Xw8Vu7Ts6Rq5P"):rep(2)

-- the header properties.lua reads: prefix/count/alphabet, length, seed,
-- then per insertion position, encoding, mask
local function redact_header(i, count)
  local b1 = (i % 3) | ((count - 1) << 2) | ((i % 8) << 4)
  local t = { string.char(b1, (i * 7) % 49, i % 256, (i * 3) % 256) }
  for k = 1, count do
    t[#t + 1] = string.pack("<I2", (i * 131 + k * 977) % 65536)
    t[#t + 1] = string.char(((i + k) % 9) | (((i + k) % 4) << 4), (i * 17 + k) % 256)
  end
  return concat(t)
end

local function redact_seeds(captures)
  local i = 0
  for _, c in ipairs(captures) do
    local body = c.body or ""
    if #body > 0 and #body <= 1500 and not body:find("[%z\128-\255]") then
      body = body:gsub("aoc_<[%u_]+>", OTHER_TOKEN):gsub("oc_<[%u_]+>", OTHER_KEY)
      i = i + 1
      add("redact", c.name, redact_header(i, i % 3 + 1) .. body, body:gsub("%w+", "w"))
    end
  end
  local synthetic = {
    "", "plain text", "oc_short", "oc_org_012345678901234", "aoc_", "%%%", "\\u00", "\\u006",
    "oc_foo_bar_baz_qux_quux_corge", "Authorization: Bearer ",
    '{"error":"Invalid API key","key":"\\u0041\\u0042"}', "GET /v1/migrate/nanoclaw?key=",
    "a%2Fb%3Dc&d=%41", OTHER_KEY .. "+" .. OTHER_TOKEN, "oc_AAAAAAAAAAAAAAAA",
  }
  for k, s in ipairs(synthetic) do
    add("redact", fmt("synthetic-%02d", k), redact_header(k + 1000, k % 3 + 1) .. s)
  end
end

---------------------------------------------------------------------------

local captures = load_captures(CAPTURES)
if #captures == 0 then
  io.stderr:write("seeds.lua: no captures found in ", CAPTURES, "\n")
  os.exit(1)
end
normalize_seeds(captures)
json_seeds(captures)
url_seeds(captures)
retry_after_seeds(captures)
redact_seeds(captures)
write_all()
