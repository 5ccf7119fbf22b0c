-- Counts and lists what a test run printed: passed, failed, skipped.
-- Used by .ci/test-all (make test), .ci/run (CI) and .ci/isolation, so the
-- reading of TAP lives in one place. Runs under lua5.4 (plain Lua, no
-- modules).
--
--   lua5.4 .ci/tap-summary.lua [--ci] [--diag N] INPUT...
--
-- INPUT is one of
--   --tap LABEL FILE [--err FILE] [--exit CODE]
--        the TAP one busted run wrote (-o TAP or -o .ci/busted-tap.lua). It
--        must end with its plan (1..N): a run without one did not finish and
--        counts as one more failure, shown with the last lines of --err. A
--        non-zero --exit with no failing test is a failure too.
--   --log LABEL FILE
--        any other output holding "ok - ..." / "not ok - ..." lines (no plan
--        needed): the checks of .ci/test-all, or in --ci mode the whole log of
--        one make target. "== busted (RUNTIME, ...)" lines in it name the
--        runtime of the TAP lines that follow.
--
-- Lines read: "ok [N] [-] name", "not ok [N] [-] name" and the diagnostics
-- that follow a "not ok" (lines starting with "#" or indented), the plan
-- "1..N", skips in busted's form "ok N - # SKIP text" (named by a following
-- "# skipped test: NAME" line, which .ci/busted-tap.lua adds) and TAP's
-- "ok N - name # SKIP reason".
--
-- Without --ci it prints (after a "not ok" line for each run that did not
-- finish) a FAILED: section when anything failed, the skipped tests, and
-- as last line
--     N passed, N failed, N skipped
-- With --ci the counts are each target's own summary line (the last line
-- "N passed, N failed" or "N passed, N failed, N skipped" of its log; a log
-- without one is a failure), the FAILED: section and the skipped tests
-- come from the logs' lines, and the last two lines are
--     N skipped
--     N passed, N failed
-- Exits 1 when anything failed, 0 otherwise.

local MAX_DIAG = 6      -- diagnostic lines kept per failure
local MAX_WIDTH = 240   -- characters kept per listed line

local function usage(msg)
  io.stderr:write("tap-summary: ", msg, "\n",
    "usage: lua5.4 .ci/tap-summary.lua [--ci] [--diag N] "
    .. "(--tap LABEL FILE [--err FILE] [--exit CODE] | --log LABEL FILE)...\n")
  os.exit(2)
end

local function read_lines(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = (line:gsub("\r$", "")) end
  f:close()
  return lines
end

local function clip(s)
  s = s:gsub("[%z\1-\8\11-\31\127]", "?")
  if #s > MAX_WIDTH then s = s:sub(1, MAX_WIDTH - 3) .. "..." end
  return s
end

local function tail(lines, n)
  local out = {}
  for i = math.max(1, #lines - n + 1), #lines do out[#out + 1] = lines[i] end
  return out
end

-- "ok 12 - name" / "ok - name" / "ok" -> kind, number, description
local function result_line(line)
  local rest = line:match("^ok[ \t](.*)$") or (line == "ok" and "")
  local kind = "ok"
  if not rest then
    rest = line:match("^not ok[ \t](.*)$") or (line == "not ok" and "")
    kind = "not ok"
  end
  if not rest then return nil end
  local num, desc = rest:match("^%s*(%d*)%s*(.*)$")
  desc = desc:gsub("^%-%s*", "", 1)
  return kind, num, desc
end

-- the skip directive of an "ok" line: nil, or name (nil in busted's own
-- form, which keeps no name when there is a message) and reason
local function skip_of(desc)
  local text = desc:match("^#%s*[Ss][Kk][Ii][Pp]%S*%s*(.*)$")
  if text then return true, nil, text end
  local name, reason = desc:match("^(.-)%s+#%s*[Ss][Kk][Ii][Pp]%S*%s*(.*)$")
  if name then return true, name, reason end
  return false
end

local function summary_of(line)
  local p, f, rest = line:match("^(%d+) passed, (%d+) failed(.*)$")
  if not p then return nil end
  local s = rest:match("^, (%d+) skipped$")
  if rest ~= "" and not s then return nil end
  return tonumber(p), tonumber(f), tonumber(s or 0)
end

-- One parsed input: its results (in order), counts, plan, summary line.
local function parse(lines, label, headers)
  local r = { passed = 0, failed = 0, skipped = 0, failures = {}, skips = {}, plan = nil }
  local sub
  local current   -- the failure whose diagnostics are being read
  for _, line in ipairs(lines) do
    local kind, _, desc = result_line(line)
    local skipped_name = line:match("^# skipped test: (.*)$")
    if skipped_name and #r.skips > 0 and r.skips[#r.skips].name == nil then
      r.skips[#r.skips].name = skipped_name     -- .ci/busted-tap.lua names the test
    elseif current and not kind and (line:match("^#") or line:match("^[ \t]")) then
      local d = current.diag
      if #d < MAX_DIAG then d[#d + 1] = clip(line) else current.more = current.more + 1 end
    else
      current = nil
      local where = label
      if sub then where = label .. ", " .. sub end
      if kind == "ok" then
        local skipped, name, reason = skip_of(desc)
        if skipped then
          r.skipped = r.skipped + 1
          r.skips[#r.skips + 1] = { where = where, name = name, reason = reason }
        else
          r.passed = r.passed + 1
        end
      elseif kind == "not ok" then
        r.failed = r.failed + 1
        current = { where = where, text = line, diag = {}, more = 0 }
        r.failures[#r.failures + 1] = current
      elseif line:match("^1%.%.%d+") then
        r.plan = tonumber(line:match("^1%.%.(%d+)"))
      elseif line:match("^Bail out!") then
        r.failed = r.failed + 1
        r.failures[#r.failures + 1] = { where = where, text = line, diag = {}, more = 0 }
      elseif headers and line:match("^== ") then
        sub = line:match("^== busted %(([^,%)]+)")
      else
        local p, f, s = summary_of(line)
        if p then r.summary = { p, f, s } end
      end
    end
  end
  return r
end

-- arguments -------------------------------------------------------------

local ci = false
local inputs = {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--ci" then
      ci = true
    elseif a == "--diag" then
      MAX_DIAG = tonumber(arg[i + 1]) or usage("--diag needs a number")
      i = i + 1
    elseif a == "--tap" or a == "--log" then
      if not arg[i + 2] then usage(a .. " needs LABEL FILE") end
      inputs[#inputs + 1] = { tap = a == "--tap", label = arg[i + 1], file = arg[i + 2] }
      i = i + 2
    elseif a == "--err" or a == "--exit" then
      local last = inputs[#inputs]
      if not (last and last.tap) then usage(a .. " belongs after --tap LABEL FILE") end
      if not arg[i + 1] then usage(a .. " needs a value") end
      if a == "--err" then last.err = arg[i + 1] else last.exit = tonumber(arg[i + 1]) end
      i = i + 1
    else
      usage("unknown argument " .. a)
    end
    i = i + 1
  end
  if #inputs == 0 then usage("no input") end
end

-- reading ---------------------------------------------------------------

local passed, failed, skipped = 0, 0, 0
local failures, skips = {}, {}
local extra = {}   -- failures found by this script (printed as "not ok" lines)

local function add_extra(where, text, diag)
  local d = {}
  for _, l in ipairs(diag or {}) do
    if #d < MAX_DIAG * 2 then d[#d + 1] = clip("# " .. l) end
  end
  local f = { where = where, text = "not ok - " .. text, diag = d, more = 0 }
  extra[#extra + 1] = f
  failures[#failures + 1] = f
  failed = failed + 1
end

for _, input in ipairs(inputs) do
  local lines = read_lines(input.file)
  local r = parse(lines or {}, input.label, not input.tap)
  for _, f in ipairs(r.failures) do failures[#failures + 1] = f end
  for _, s in ipairs(r.skips) do skips[#skips + 1] = s end
  if ci then
    if r.summary then
      passed, failed, skipped = passed + r.summary[1], failed + r.summary[2], skipped + r.summary[3]
    else
      add_extra(input.label, input.label .. " did not report a summary (\"N passed, N failed\")",
        lines and tail(lines, 10) or { "no log " .. input.file })
    end
  else
    passed, failed, skipped = passed + r.passed, failed + r.failed, skipped + r.skipped
    if input.tap then
      local err = input.err and read_lines(input.err) or {}
      local ran = r.passed + r.failed + r.skipped
      local status = input.exit and (" (exit " .. input.exit .. ")") or ""
      if not lines then
        add_extra(input.label, "busted (" .. input.label .. ") wrote no TAP" .. status, tail(err, 10))
      elseif not r.plan then
        local diag = tail(err, 10)
        if #diag == 0 then diag = { "(nothing on stderr; last TAP line: " .. (lines[#lines] or "none") .. ")" } end
        add_extra(input.label, "busted (" .. input.label .. ") did not finish: no 1..N plan after "
          .. ran .. " results" .. status, diag)
      elseif r.plan ~= ran then
        add_extra(input.label, "busted (" .. input.label .. ") planned " .. r.plan .. " tests but reported "
          .. ran .. status, tail(err, 10))
      elseif input.exit and input.exit ~= 0 and r.failed == 0 then
        add_extra(input.label, "busted (" .. input.label .. ") exited " .. input.exit
          .. " without a failing test", tail(err, 10))
      end
    end
  end
end

-- printing --------------------------------------------------------------

local out = {}
local function say(s) out[#out + 1] = s end

for _, f in ipairs(extra) do
  say(f.text)
  for _, d in ipairs(f.diag) do say(d) end
end

if #failures > 0 then
  say("FAILED:")
  for _, f in ipairs(failures) do
    say("  " .. clip(f.where .. ": " .. f.text))
    for _, d in ipairs(f.diag) do say("      " .. d) end
    if f.more > 0 then say("      (" .. f.more .. " more lines)") end
  end
end
if ci and failed > 0 and #failures == 0 then
  say("FAILED:")
  say("  (a target reported failures but printed no \"not ok\" line; see build/ci-*.log)")
end

if #skips > 0 then
  say("SKIPPED:")
  for _, s in ipairs(skips) do
    local text
    if s.name then
      text = s.reason ~= "" and (s.name .. " -- " .. s.reason) or s.name
    else
      text = s.reason   -- busted's own form: the pending message (or the name)
    end
    say("  " .. clip(s.where .. ": " .. text))
  end
end

if ci then
  say(skipped .. " skipped")
  say(passed .. " passed, " .. failed .. " failed")
else
  say(passed .. " passed, " .. failed .. " failed, " .. skipped .. " skipped")
end
io.write(table.concat(out, "\n"), "\n")
os.exit(failed == 0 and 0 or 1)
