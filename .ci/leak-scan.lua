-- Looks for API keys in everything a test run printed or logged.
--
--   lua5.4 .ci/leak-scan.lua --keys FILE [--require-keys] [--require-kind K]... [--tmp-newer STAMP]
--                            [--max N] PATH...
--
-- --keys FILE    the keys the run used, one a line: "KIND KEY" or just "KEY"
--                (lua/onecli/standin/launcher.lua appends every key it passes to or
--                reads from a stand-in when ONECLI_SPEC_KEYS_FILE names a
--                file; .ci/test-all sets it to build/tap/keys.txt). FILE itself
--                is never scanned.
-- --require-keys fail when FILE holds no key (the run recorded nothing, so
--                the scan could not look for the keys it used)
-- --require-kind K  fail when FILE holds no key of kind K (repeatable; e.g.
--                agent_token: the suite must have recorded the agent tokens
--                the stand-in issued, so that the scan looked for them)
-- --tmp-newer S  also scan what the specs left in /tmp that is newer than the
--                file S: /tmp/lua_* (os.tmpname(): the stand-ins' stderr, the
--                nginx prefixes' logs/) and /tmp/tmp.*/*.log (mktemp -d). Only
--                the known keys are looked for there: other programs' files
--                may hold key-shaped tokens of their own.
-- --max N        findings listed (default 50); all are counted
-- PATH           a file (scanned whatever its name) or a directory: every
--                *.tap *.err *.log *.md *.txt *.out *.json file under it
--                (build/rocktree, an installed copy of the sources, is skipped)
--
-- Each known key is looked for in every form a log could hold it in:
--   raw; JSON escapes (\u00XX, upper or lower hex, any mix of escaped and raw
--   characters; also \xXX and \/); percent-encoding (%XX, any case, mixed);
--   both of those at once; base64 and base64url of the key and of its body at
--   each of the three alignments it can have inside a longer base64 string
--   (so "x:<key>" and "<user>:<key>" of Basic auth are found too); and the
--   body without its prefix (oc_, oc_org_, oc_partner_, aoc_).
-- Anywhere outside /tmp, a token shaped like a key (oc_, oc_org_,
-- oc_partner_ or aoc_ followed by 64 lowercase hex) that is not a known key
-- and not a placeholder (a body that repeats a unit of at most 16 characters,
-- like "oc_" .. ("7e57"):rep(16)) is reported as an unknown key.
--
-- A key is never printed: findings name the file, the line, the key by its
-- number in FILE and its kind (or, for an unknown token, its kind and an FNV-1a
-- fingerprint), and the encoding. Prints "no API key found (...)" and exits 0,
-- or a line per finding and exits 1 (2 on a usage error).

local ANCHOR = 12          -- characters of each needle indexed
local MIN_BODY = 16        -- shorter bodies are not looked for on their own
local MAX_FILE = 64 * 1024 * 1024
local TEXT_EXT = { tap = true, err = true, log = true, md = true, txt = true, out = true, json = true }
local PREFIXES = { "oc_partner_", "oc_org_", "aoc_", "oc_" }   -- longest first
local KIND_OF_PREFIX = { ["oc_partner_"] = "partner_key", ["oc_org_"] = "org_key", ["aoc_"] = "agent_token",
                         ["oc_"] = "api_key" }

local function usage(msg)
  io.stderr:write("leak-scan: ", msg, "\n", "usage: lua5.4 .ci/leak-scan.lua --keys FILE [--require-keys] "
    .. "[--tmp-newer STAMP] [--max N] PATH...\n")
  os.exit(2)
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function lines_of(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = {}
  for l in p:lines() do if l ~= "" then out[#out + 1] = l end end
  p:close()
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read(MAX_FILE)
  f:close()
  return data or ""
end

-- arguments -------------------------------------------------------------

local keys_file, require_keys, tmp_newer, max_list = nil, false, nil, 50
local required_kinds = {}
local paths = {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--keys" then keys_file = arg[i + 1] or usage("--keys needs a file"); i = i + 1
    elseif a == "--require-keys" then require_keys = true
    elseif a == "--require-kind" then
      required_kinds[#required_kinds + 1] = arg[i + 1] or usage("--require-kind needs a kind"); i = i + 1
    elseif a == "--tmp-newer" then tmp_newer = arg[i + 1] or usage("--tmp-newer needs a file"); i = i + 1
    elseif a == "--max" then max_list = tonumber(arg[i + 1]) or usage("--max needs a number"); i = i + 1
    elseif a:sub(1, 2) == "--" then usage("unknown option " .. a)
    else paths[#paths + 1] = a end
    i = i + 1
  end
  if not keys_file then usage("--keys FILE is required") end
end

-- encodings -------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = n // 262144 % 64, n // 4096 % 64
    local c3, c4 = n // 64 % 64, n % 64
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
      .. (b and B64:sub(c3 + 1, c3 + 1) or "=") .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- The part of base64(... .. s .. ...) that does not depend on what is around
-- s, when s starts `align` bytes after a 3-byte boundary: the full groups.
local function base64_inner(s, align)
  local skip = (3 - align) % 3
  local n = (#s - skip) // 3 * 3
  if n <= 0 then return nil end
  return base64(s:sub(skip + 1, skip + n))
end

local function unescape_json(s)
  s = s:gsub("\\+[uU]00(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  s = s:gsub("\\+[xX](%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return (s:gsub("\\+/", "/"))
end

local function unescape_percent(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function fingerprint(s)   -- FNV-1a, 32 bits
  local h = 2166136261
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff
  end
  return string.format("%08x", h)
end

local function split_key(key)
  for _, p in ipairs(PREFIXES) do
    if key:sub(1, #p) == p and #key > #p then return p, key:sub(#p + 1) end
  end
  local p = key:match("^%a+_")
  if p and #key > #p then return p, key:sub(#p + 1) end
  return "", key
end

local function masked(prefix, body)
  return prefix .. "<" .. #body .. " chars>"
end

-- keys ------------------------------------------------------------------

local keys, by_key = {}, {}
do
  local f = io.open(keys_file, "rb")
  if f then
    for line in f:lines() do
      local kind, key = line:match("^%s*(%S+)%s+(%S+)%s*$")
      if not kind then key = line:match("^%s*(%S+)%s*$") end
      if key and not by_key[key] then
        local prefix, body = split_key(key)
        local k = { index = #keys + 1, key = key, prefix = prefix, body = body,
                    kind = kind or KIND_OF_PREFIX[prefix] or "key" }
        keys[#keys + 1] = k
        by_key[key] = k
      end
    end
    f:close()
  end
end
if require_keys and #keys == 0 then
  print("no key recorded in " .. keys_file .. ": the run did not say which keys it used "
    .. "(ONECLI_SPEC_KEYS_FILE, lua/onecli/standin/launcher.lua), so they could not be looked for")
  os.exit(1)
end

for _, kind in ipairs(required_kinds) do
  local n = 0
  for _, k in ipairs(keys) do
    if k.kind == kind then n = n + 1 end
  end
  if n == 0 then
    print("no key of kind " .. kind .. " recorded in " .. keys_file .. ": the run did not say which "
      .. "it used, so they could not be looked for")
    os.exit(1)
  end
end

-- needles: what to look for, indexed by their first ANCHOR characters
local index, short = {}, {}
local function add_needle(k, text, what, part)
  if not text or #text < 4 then return end
  local n = { key = k, text = text, what = what, part = part }
  if #text >= ANCHOR then
    local a = text:sub(1, ANCHOR)
    index[a] = index[a] or {}
    table.insert(index[a], n)
  else
    short[#short + 1] = n
  end
end
for _, k in ipairs(keys) do
  add_needle(k, k.key, "", "key")
  if #k.body >= MIN_BODY and k.prefix ~= "" then add_needle(k, k.body, "", "body") end
  for _, part in ipairs({ "key", "body" }) do
    local s = part == "key" and k.key or k.body
    if part == "key" or (#k.body >= MIN_BODY and k.prefix ~= "") then
      for align = 0, 2 do
        local b = base64_inner(s, align)
        if b and #b >= ANCHOR then
          add_needle(k, b, "base64 (alignment " .. align .. ")", part)
          local url = b:gsub("%+", "-"):gsub("/", "_")
          if url ~= b then add_needle(k, url, "base64url (alignment " .. align .. ")", part) end
        end
      end
    end
  end
end

-- matching --------------------------------------------------------------

-- needles found in text: { [key] = { [part .. what] = needle } }
local function find_needles(text, found)
  for tok in text:gmatch("[%w%+/_=%-]+") do
    if #tok >= ANCHOR then
      for i = 1, #tok - ANCHOR + 1 do
        local list = index[tok:sub(i, i + ANCHOR - 1)]
        if list then
          for _, n in ipairs(list) do
            if tok:sub(i, i + #n.text - 1) == n.text then
              found[#found + 1] = n
            end
          end
        end
      end
    end
  end
  for _, n in ipairs(short) do
    if text:find(n.text, 1, true) then found[#found + 1] = n end
  end
  return found
end

local SHAPE_KINDS = { { "oc_partner_", "partner_key" }, { "oc_org_", "org_key" }, { "oc_", "api_key" } }

local function placeholder(body)
  for p = 1, 16 do
    local unit = body:sub(1, p)
    if unit:rep(#body // p + 1):sub(1, #body) == body then return true end
  end
  return false
end

-- key-shaped tokens that are not known keys: { { prefix, body } }
local function find_shapes(text, out)
  for pos in text:gmatch("()oc_") do
    local prefix, kind
    for _, sk in ipairs(SHAPE_KINDS) do
      if text:sub(pos, pos + #sk[1] - 1) == sk[1] then prefix, kind = sk[1], sk[2] break end
    end
    local start = pos
    if text:sub(pos - 1, pos - 1) == "a" and not text:sub(pos - 2, pos - 2):match("%w") and prefix == "oc_" then
      prefix, kind, start = "aoc_", "agent_token", pos - 1
    end
    local run = text:match("^[0-9a-f]+", start + #prefix)
    if run and #run >= 64 then
      local body = run:sub(1, 64)
      local token = prefix .. body
      if not by_key[token] and not placeholder(body) then
        out[#out + 1] = { prefix = prefix, kind = kind, body = body, token = token }
      end
    end
  end
  return out
end

-- scanning --------------------------------------------------------------

local findings, total_findings, files_scanned, bytes_scanned = {}, 0, 0, 0
local function report(s)
  total_findings = total_findings + 1
  if #findings < max_list then findings[#findings + 1] = s end
end

local VARIANTS = {
  { name = "raw", test = function() return true end, decode = function(s) return s end },
  { name = "JSON-escaped (\\u00XX, \\xXX)", test = function(s) return s:find("\\", 1, true) end,
    decode = unescape_json },
  { name = "percent-encoded (%XX)", test = function(s) return s:find("%", 1, true) end,
    decode = unescape_percent },
  { name = "JSON-escaped and percent-encoded", test = function(s)
      return s:find("\\", 1, true) and s:find("%", 1, true) end,
    decode = function(s) return unescape_percent(unescape_json(s)) end },
}

local function scan_text(display, data, shapes)
  files_scanned, bytes_scanned = files_scanned + 1, bytes_scanned + #data
  local lineno = 0
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    -- per key the best hit over every decoding of the line: the key itself
    -- beats its body, then the plainest decoding; one report per key and line
    local best = {}
    local shapes_seen = {}
    for vi, v in ipairs(VARIANTS) do
      if v.test(line) then
        local text = vi == 1 and line or v.decode(line)
        if vi == 1 or text ~= line then
          if next(index) or #short > 0 then
            for _, n in ipairs(find_needles(text, {})) do
              local rank = (n.part == "key" and 10 or 0) - vi
              local b = best[n.key]
              if not b or rank > b.rank then best[n.key] = { n = n, rank = rank, vi = vi } end
            end
          end
          if shapes then
            for _, t in ipairs(find_shapes(text, {})) do
              if not shapes_seen[t.token] then
                shapes_seen[t.token] = true
                report(string.format("%s:%d: unknown %s-shaped token (%s, fingerprint %s) %s", display, lineno,
                  t.kind, masked(t.prefix, t.body), fingerprint(t.token), vi == 1 and "raw" or VARIANTS[vi].name))
              end
            end
          end
        end
      end
    end
    local found = {}
    for k, b in pairs(best) do found[#found + 1] = { k = k, b = b } end
    table.sort(found, function(x, y) return x.k.index < y.k.index end)
    for _, f in ipairs(found) do
      local k, n, vi = f.k, f.b.n, f.b.vi
      local how
      if n.what == "" then
        how = vi == 1 and "raw" or VARIANTS[vi].name
      else
        how = n.what .. (vi == 1 and "" or (", " .. VARIANTS[vi].name))
      end
      if n.part == "body" then how = how .. ", body without its " .. k.prefix .. " prefix" end
      report(string.format("%s:%d: key #%d (%s, %s) %s", display, lineno, k.index, k.kind,
        masked(k.prefix, k.body), how))
    end
  end
end

local function realpath(p)
  local r = lines_of("realpath -m -- " .. shell_quote(p) .. " 2>/dev/null")
  return r[1] or p
end

local cwd = (lines_of("pwd")[1] or "") .. "/"
local function display_of(abs)
  if abs:sub(1, #cwd) == cwd then return abs:sub(#cwd + 1) end
  return abs
end

local excluded = realpath(keys_file)

local targets, seen_file = {}, {}
local function add_target(abs, shapes)
  if abs == excluded or seen_file[abs] then return end
  seen_file[abs] = true
  targets[#targets + 1] = { path = abs, shapes = shapes }
end

local NAME_TESTS = {}
for ext in pairs(TEXT_EXT) do NAME_TESTS[#NAME_TESTS + 1] = "-name '*." .. ext .. "'" end
table.sort(NAME_TESTS)
for _, p in ipairs(paths) do
  local q = shell_quote(p)
  if os.execute("test -d " .. q) then
    local cmd = "find " .. q .. " -path '*/rocktree' -prune -o -type f \\( " .. table.concat(NAME_TESTS, " -o ")
      .. " \\) -print0 2>/dev/null | xargs -0 -r realpath -- | sort"
    for _, f in ipairs(lines_of(cmd)) do add_target(f, true) end
  elseif os.execute("test -f " .. q) then
    add_target(realpath(p), true)
  end
end

if tmp_newer then
  local stamp = shell_quote(tmp_newer)
  local cmd = "{ find /tmp -maxdepth 1 -name 'lua_*' -type f -newer " .. stamp .. " -print; "
    .. "find /tmp -maxdepth 1 -name 'lua_*' -type d -newer " .. stamp
    .. " -exec find {} -type f \\( -path '*/logs/*' -o -name '*.log' \\) -print ';'; "
    .. "find /tmp -maxdepth 1 -name 'tmp.*' -type d -newer " .. stamp
    .. " -exec find {} -type f -name '*.log' -print ';'; } 2>/dev/null | sort"
  for _, f in ipairs(lines_of(cmd)) do add_target(f, false) end
end

for _, t in ipairs(targets) do
  local data = read_file(t.path)
  if data then scan_text(display_of(t.path), data, t.shapes) end
end

local what = string.format("%d files, %d bytes, %d known keys", files_scanned, bytes_scanned, #keys)
if total_findings == 0 then
  print("no API key found (" .. what .. ")")
  os.exit(0)
end
print(string.format("%d finding%s (%s):", total_findings, total_findings == 1 and "" or "s", what))
for _, f in ipairs(findings) do print(f) end
if total_findings > #findings then print("(" .. (total_findings - #findings) .. " more)") end
os.exit(1)
