-- .ci/tap-summary.lua counts passed, failed and skipped tests in TAP,
-- lists the failures with their diagnostics and the skipped tests with
-- their reason, and notices a run that did not finish. Fixtures are written
-- to a temp dir here.
local support = require("suite.support")

local PASSING = [[
ok 1 - core json encodes
ok 2 - core json decodes
ok 3 - # SKIP spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only
ok 4 - client closes on <close> # SKIP to-be-closed variables are Lua 5.4 only
1..4
]]

-- .ci/busted-tap.lua names a skipped test on the comment line after it
local NAMED_SKIP = [[
ok 1 - core json encodes
ok 2 - # SKIP spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only
# skipped test: core transport is closed by <close> on Lua 5.4
1..2
]]

local FAILING = [[
ok 1 - API health
not ok 2 - API agents:list returns the default agent first
# spec/client/api_v1_spec.lua @ 34
# Failure message: spec/client/api_v1_spec.lua:36: Expected objects to be the same.
# Passed in:
# (string) 'b'
# Expected:
# (string) 'a'
# one line too many
# and another
ok 3 - API agents:create
1..3
]]

-- stopped after its second test: no 1..N plan
local UNFINISHED = [[
ok 1 - stand-in starts
ok 2 - stand-in answers
]]

local function last(lines, n)
  return lines[#lines - (n or 0)]
end

local function section(lines, header)
  local out, inside = {}, false
  for _, l in ipairs(lines) do
    if l == header then
      inside = true
    elseif inside and l:match("^%S") then
      break
    elseif inside then
      out[#out + 1] = l
    end
  end
  return out
end

describe("tap-summary (.ci/tap-summary.lua)", function()
  local dir

  local function file(name, content)
    return support.write(dir .. "/" .. name, content)
  end

  local function summary(args)
    local out, code = support.script("tap-summary.lua", args)
    return support.lines(out), code, out
  end

  setup(function()
    dir = support.tmpdir()
  end)

  teardown(function()
    support.rmdir(dir)
  end)

  it("counts passes and skips of a finished run, exit 0, no FAILED section", function()
    local lines, code, out = summary({ "--tap", "lua5.1", file("pass.tap", PASSING) })
    assert.are.equal(0, code, out)
    assert.are.equal("2 passed, 0 failed, 2 skipped", last(lines), out)
    assert.falsy(out:find("FAILED:", 1, true), out)
  end)

  it("lists skipped tests with their reason, in both skip forms", function()
    local lines, _, out = summary({ "--tap", "lua5.1", file("pass.tap", PASSING) })
    local skipped = section(lines, "SKIPPED:")
    assert.are.same({
      "  lua5.1: spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only",
      "  lua5.1: client closes on <close> -- to-be-closed variables are Lua 5.4 only",
    }, skipped, out)
  end)

  it("names a skipped test from the comment .ci/busted-tap.lua adds after it", function()
    local lines, _, out = summary({ "--tap", "lua5.3", file("named.tap", NAMED_SKIP) })
    assert.are.equal("1 passed, 0 failed, 1 skipped", last(lines), out)
    assert.are.same({ "  lua5.3: core transport is closed by <close> on Lua 5.4 -- "
                      .. "spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only" },
                    section(lines, "SKIPPED:"), out)
  end)

  it("lists a failure with runtime, test name and the first lines of its diagnostics", function()
    local lines, code, out = summary({ "--tap", "lua5.4", file("fail.tap", FAILING) })
    assert.are.equal(1, code, out)
    assert.are.equal("2 passed, 1 failed, 0 skipped", last(lines), out)
    local failed = section(lines, "FAILED:")
    assert.are.equal("  lua5.4: not ok 2 - API agents:list returns the default agent first", failed[1], out)
    assert.are.equal("      # spec/client/api_v1_spec.lua @ 34", failed[2], out)
    assert.are.equal("      # Failure message: spec/client/api_v1_spec.lua:36: Expected objects to be the same.",
      failed[3], out)
    -- a few lines of diagnostics, not all of them
    assert.are.equal(8, #failed, out)
    assert.are.equal("      (2 more lines)", failed[8], out)
  end)

  it("counts a run without its 1..N plan as one more failure, with its stderr", function()
    local lines, code, out = summary({
      "--tap", "lua5.1", file("pass.tap", PASSING),
      "--tap", "luajit", file("cut.tap", UNFINISHED),
      "--err", file("cut.err", "lua: spec/x_spec.lua:3: boom\nstack traceback:\n"), "--exit", "1",
    })
    assert.are.equal(1, code, out)
    assert.are.equal("4 passed, 1 failed, 2 skipped", last(lines), out)
    local failed = section(lines, "FAILED:")
    assert.truthy(failed[1]:find("^  luajit: not ok %- busted %(luajit%) did not finish: no 1%.%.N plan after 2 "
      .. "results %(exit 1%)$"), out)
    assert.truthy(out:find("# lua: spec/x_spec.lua:3: boom", 1, true), out)
    -- printed as a TAP line too, before the sections, so logs hold it
    assert.truthy(lines[1]:find("^not ok %- busted %(luajit%) did not finish"), out)
  end)

  it("counts a non-zero exit without a failing test as a failure", function()
    local lines, code, out = summary({ "--tap", "lua5.4", file("pass.tap", PASSING), "--exit", "97",
      "--err", file("vg.err", "==123== Invalid read of size 8\n") })
    assert.are.equal(1, code, out)
    assert.are.equal("2 passed, 1 failed, 2 skipped", last(lines), out)
    assert.truthy(out:find("busted (lua5.4) exited 97 without a failing test", 1, true), out)
  end)

  it("reads checks without a plan (--log), naming the runtime from == busted headers", function()
    local log = file("checks.log", table.concat({
      "== busted (lua5.3, full)",
      "not ok 7 - core backoff waits",
      "# spec/core/backoff_spec.lua @ 9",
      "== luacheck",
      "ok - luacheck",
      "not ok - no API key in the suite's output",
      "# build/tap/lua5.4-full.tap:3: key #1 (api_key, oc_<64 chars>) raw",
    }, "\n") .. "\n")
    local lines, code, out = summary({ "--log", "checks", log })
    assert.are.equal(1, code, out)
    assert.are.equal("1 passed, 2 failed, 0 skipped", last(lines), out)
    local failed = section(lines, "FAILED:")
    assert.are.same({
      "  checks, lua5.3: not ok 7 - core backoff waits",
      "      # spec/core/backoff_spec.lua @ 9",
      "  checks: not ok - no API key in the suite's output",
      "      # build/tap/lua5.4-full.tap:3: key #1 (api_key, oc_<64 chars>) raw",
    }, failed, out)
  end)

  describe("--ci", function()
    it("sums each target's summary line, both forms, and ends with N skipped, N passed, N failed", function()
      local test_log = file("ci-test.log", "== busted (lua5.1, full)\n" .. PASSING
        .. "SKIPPED:\n  lua5.1: ignored list line\n2 passed, 0 failed, 2 skipped\n")
      local fuzz_log = file("ci-fuzz-ci.log", "ok - fuzz json_decode 60 s\nok - fuzz url 60 s\n2 passed, 0 failed\n")
      local lines, code, out = summary({ "--ci", "--log", "make test", test_log, "--log", "make fuzz-ci", fuzz_log })
      assert.are.equal(0, code, out)
      assert.are.equal("4 passed, 0 failed", last(lines), out)
      assert.are.equal("2 skipped", last(lines, 1), out)
      assert.are.same({
        "  make test, lua5.1: spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only",
        "  make test, lua5.1: client closes on <close> -- to-be-closed variables are Lua 5.4 only",
      }, section(lines, "SKIPPED:"), out)
      assert.falsy(out:find("FAILED:", 1, true), out)
    end)

    it("lists every not ok line, and a target without a summary is a failure", function()
      local test_log = file("ci-test.log", "== busted (lua5.4, full)\n" .. FAILING
        .. "2 passed, 1 failed, 0 skipped\nmake: *** [Makefile:86: test-only] Error 1\n")
      local fuzz_log = file("ci-fuzz-ci.log", "ok - fuzz json\nnot ok - fuzz url: crash-1234\n1 passed, 1 failed\n")
      local asan_log = file("ci-asan.log", "== busted (lua5.4, asan)\nok 1 - x\nSegmentation fault\n")
      local lines, code, out = summary({ "--ci", "--log", "make test", test_log, "--log", "make asan", asan_log,
        "--log", "make fuzz-ci", fuzz_log })
      assert.are.equal(1, code, out)
      assert.are.equal("3 passed, 3 failed", last(lines), out)
      assert.are.equal("0 skipped", last(lines, 1), out)
      local failed = section(lines, "FAILED:")
      assert.are.equal("  make test, lua5.4: not ok 2 - API agents:list returns the default agent first",
        failed[1], out)
      local text = table.concat(failed, "\n")
      assert.truthy(text:find("  make asan: not ok - make asan did not report a summary", 1, true), out)
      assert.truthy(text:find("      # Segmentation fault", 1, true), out)
      assert.truthy(text:find("  make fuzz-ci: not ok - fuzz url: crash-1234", 1, true), out)
    end)
  end)
end)
