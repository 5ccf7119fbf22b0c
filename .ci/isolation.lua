-- The Lua half of .ci/isolation (which see): listing the tests, and reading
-- what each run alone printed.
--
--   lua5.4 .ci/isolation.lua list LUA BUSTED [FILES] > tests.tsv
--       every test of every spec file (busted --list, file by file; FILES: a
--       Lua pattern the spec files' paths must match), one a
--       line: FILE <tab> PATTERN <tab> NAME, where PATTERN is the Lua pattern
--       busted's --filter needs to match that test's full name and nothing
--       else ("^...$", magic characters escaped)
--   lua5.4 .ci/isolation.lua report DIR TIMEOUT > results.tap
--       reads DIR/tests.tsv and each run's DIR/runs/N.{tap,err,rc} (and
--       N.retry.* of a serial retry) and prints "ok - alone: NAME" or
--       "not ok - alone: NAME" (with why, as "# " lines) for each test
--   lua5.4 .ci/isolation.lua failed DIR
--       the numbers of the tests whose run failed, one a line

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

local function lines(s)
  local out = {}
  for l in ((s or "") .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = l end
  if out[#out] == "" then out[#out] = nil end
  return out
end

local function escape_pattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function one_line(s)
  return (s:gsub("[\t\r\n]", " "))
end

local cmd = arg[1]

if cmd == "list" then
  local lua, busted, only = arg[2], arg[3], arg[4] or ""
  local p = assert(io.popen("find spec -type f -name '*_spec*.lua' -not -path '*/.*' | sort"))
  local files = {}
  for f in p:lines() do
    if only == "" or f:find(only) then files[#files + 1] = f end
  end
  p:close()
  local count = 0
  for _, file in ipairs(files) do
    local out = assert(io.popen(lua .. " " .. shell_quote(busted) .. " --list " .. shell_quote(file) .. " 2>&1"))
    local text = out:read("a")
    local ok = out:close()
    if not ok then
      io.stderr:write("isolation: busted --list " .. file .. " failed:\n" .. text .. "\n")
      os.exit(1)
    end
    local seen = {}
    for _, l in ipairs(lines(text)) do
      local name = l:match("^[^:]+:%d+: (.*)$") or l
      if name ~= "" and not seen[name] then
        seen[name] = true
        count = count + 1
        io.write(file, "\t", "^" .. escape_pattern(one_line(name)) .. "$", "\t", one_line(name), "\n")
      end
    end
  end
  io.stderr:write("isolation: " .. count .. " tests in " .. #files .. " spec files\n")
  os.exit(0)
end

-- one run: its verdict, and why
local function verdict(base, timeout)
  local rc = tonumber(read_file(base .. ".rc") or "")
  local tap = lines(read_file(base .. ".tap"))
  local err = lines(read_file(base .. ".err"))
  local results, failed, skipped, plan = 0, 0, 0, nil
  local why, skip_reason = {}, nil
  local in_failure = false
  for _, l in ipairs(tap) do
    if l:match("^not ok") then
      results, failed = results + 1, failed + 1
      in_failure = true
      why[#why + 1] = l
    elseif l:match("^ok") then
      results = results + 1
      in_failure = false
      local reason = l:match("# SKIP%s*(.*)$")
      if reason then skipped, skip_reason = skipped + 1, reason end
    elseif l:match("^1%.%.%d+") then
      plan = tonumber(l:match("^1%.%.(%d+)"))
      in_failure = false
    elseif in_failure and (l:match("^#") or l:match("^%s")) then
      if #why < 14 then why[#why + 1] = l end
    end
  end
  local function err_tail(n)
    for i = math.max(1, #err - n + 1), #err do why[#why + 1] = "stderr: " .. err[i] end
  end
  if rc == nil then
    return false, { "did not run (no exit status)" }
  elseif rc == 124 or rc == 137 then
    why[#why + 1] = "timed out after " .. timeout .. " s"
    err_tail(5)
    return false, why
  elseif not plan then
    why[#why + 1] = "busted did not finish (no 1..N plan; exit " .. rc .. ")"
    err_tail(10)
    return false, why
  elseif results == 0 then
    return false, { "the filter matched no test (exit " .. rc .. ")" }
  elseif failed > 0 then
    if results > 1 then why[#why + 1] = results .. " tests ran under this name" end
    return false, why
  elseif rc ~= 0 then
    why[#why + 1] = "busted exited " .. rc .. " without a failing test"
    err_tail(10)
    return false, why
  end
  local note = results > 1 and (results .. " tests share this name") or nil
  if skipped == results then return true, nil, skip_reason, note end
  return true, nil, nil, note
end

local function tests_of(dir)
  local tests = {}
  for _, l in ipairs(lines(read_file(dir .. "/tests.tsv"))) do
    local file, pattern, name = l:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if file then tests[#tests + 1] = { file = file, pattern = pattern, name = name } end
  end
  return tests
end

if cmd == "failed" then
  local dir = arg[2]
  for i = 1, #tests_of(dir) do
    if not verdict(dir .. "/runs/" .. i, 0) then print(i) end
  end
  os.exit(0)
end

if cmd == "report" then
  local dir, timeout = arg[2], arg[3] or "?"
  for i, t in ipairs(tests_of(dir)) do
    local base = dir .. "/runs/" .. i
    local ok, why, skip, note = verdict(base, timeout)
    local retried = read_file(base .. ".retry.rc") ~= nil
    local first_why = why
    if not ok and retried then
      ok, why, skip, note = verdict(base .. ".retry", timeout)
    end
    local label = "alone: " .. t.name
    if ok then
      io.write("ok - ", label, skip and (" # SKIP " .. skip) or "", "\n")
      if note then io.write("# ", note, "\n") end
      if retried then
        io.write("# failed when run beside another test, passed when run again on its own:\n")
        for _, w in ipairs(first_why or {}) do io.write("#   ", (w:gsub("^#%s?", "")), "\n") end
      end
    else
      io.write("not ok - ", label, "\n")
      io.write("# ", t.file, ", busted --filter '", t.pattern, "'\n")
      for _, w in ipairs(why) do io.write("# ", (w:gsub("^#%s?", "")), "\n") end
    end
  end
  os.exit(0)
end

io.stderr:write("usage: lua5.4 .ci/isolation.lua list LUA BUSTED | report DIR TIMEOUT | failed DIR\n")
os.exit(2)
