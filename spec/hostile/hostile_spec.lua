-- The client against a server that misbehaves on purpose (spec/hostile/
-- server.lua): resets and closes at every stage of an exchange, stalls and
-- drips, replies that are not HTTP, contradictory framing, oversized heads
-- and bodies, redirects, 1xx storms, bare JSON scalars, 429/503, keep-alive
-- abuse and servers that echo the key. For every fault and every verb it
-- counts the requests the server received and checks the policy the
-- library promises (README, "Errors" and "Retries"):
--
--   1. a POST is received at most once, unless the server asked for a
--      retry (429/503 with Retry-After): then at most max_retries + 1;
--   2. GET, PUT, PATCH and DELETE at most max_retries + 1 times, exactly
--      once with max_retries = 0 (also over a kept-alive connection, where
--      libcurl silently re-sends a request the server closed on);
--   3. every failure is an error object of a documented type, one line
--      long, back within timeout x attempts + slack, never a raise;
--   4. redirects are not followed, 1xx before a 200 succeed, a bare JSON
--      scalar is a decode_error;
--   5. the API key never shows in an error.
--
-- The same faults through client:batch (the libcurl multi driver). The
-- counts measured are printed as TAP comments ("# ...") and written to
-- build/hostile-table.md.
--
--   make build RUNTIMES=lua5.4
--   busted --lua=lua5.4 spec/hostile/hostile_spec.lua          (about 70 s)
--   lua5.4 /usr/bin/busted --filter 'kept alive connection, max_retries = 0: keepalive_abuse' \
--       spec/hostile/hostile_spec.lua                            (one test)
--
-- Most of the time goes to the three stall faults (stall, stall_body,
-- drip), which end on the client's timeout (1 s here) once per attempt.
local onecli = require("onecli")
local core = require("onecli.core")
local socket = require("socket")
local hostile = require("hostile.launcher")

local gettime = socket.gettime
local fmt, rep, concat = string.format, string.rep, table.concat

local KEY = "oc_" .. rep("0123456789abcdef", 4)
local KEY_HEX = KEY:sub(4)
local VERBS = { "GET", "POST", "PUT", "PATCH", "DELETE" }
local IDEMPOTENT = { GET = true, PUT = true, PATCH = true, DELETE = true }
local ERROR_TYPES = {
  connection_error = "conn", timeout_error = "tmo", tls_error = "tls", api_error = "api",
  decode_error = "dec", invalid_request_error = "inv", rate_limit_error = "rate",
  authentication_error = "auth", not_found_error = "nf", validation_error = "val",
}
local SLACK = 3            -- seconds on top of timeout x attempts
local BATCH_CONCURRENCY = 4

local SECRET = { name = "n", type = "generic", value = "v", hostPattern = "api.example.com" }

-- One call per verb; opts = per-call options (headers for the batch tags).
local CALLS = {
  GET = function(c) return c.agents:list() end,
  POST = function(c) return c.secrets:create(SECRET) end,
  PUT = function(c) return c.agents:set_secrets("a1", { "s1" }) end,
  PATCH = function(c) return c.agents:rename("a1", "new") end,
  DELETE = function(c) return c.agents:delete("a1") end,
}

---------------------------------------------------------------------------
-- the faults and what each must give
--
--   outcome  "ok": every call succeeds; "error": every call fails; nil: either
--   type     the error type it must be
--   exact    requests the server must see per call (max_retries = 2)
--   asked    the server asked for a retry (POST may be repeated)
--   reads    false: the server closes before reading the request (counts 0)
--   slow     a stall: the client's timeout ends it (timeout 1 s, fewer calls)
--   big      through a transport with a 1 MB max_response_size
--   reused   also run with max_retries = 2 over a kept-alive connection
--   elsewhere  a redirect: /v1/elsewhere must never be requested

local FAULTS = {
  { "ok", outcome = "ok", exact = 1 },
  -- resets (RST) and clean closes (FIN) at each stage
  { "accept_fin", outcome = "error", type = "connection_error", reads = false, reused = true },
  { "accept_rst", outcome = "error", type = "connection_error", reads = false, reused = true },
  { "head_fin", outcome = "error", type = "connection_error", reused = true },
  { "head_rst", outcome = "error", type = "connection_error", reused = true },
  { "body_fin", outcome = "error", type = "connection_error", reused = true },
  { "body_rst", outcome = "error", type = "connection_error", reused = true },
  { "status_fin", outcome = "error", type = "connection_error" },   -- a head cut short
  { "status_rst", outcome = "error" },
  { "headers_fin", outcome = "error", type = "connection_error" },
  { "headers_rst", outcome = "error" },
  { "midbody_fin", outcome = "error" },
  { "midbody_rst", outcome = "error" },
  -- stalls and drips
  { "stall", outcome = "error", type = "timeout_error", slow = true },
  { "stall_body", outcome = "error", type = "timeout_error", slow = true },
  { "drip", outcome = "error", type = "timeout_error", slow = true },
  -- not HTTP
  { "http09", outcome = "error" },
  { "garbage", outcome = "error" },
  { "status_abc", outcome = "error" },
  { "status_proto", outcome = "error" },
  { "status_999", outcome = "error" },
  -- duplicate or contradictory framing
  { "dup_length", outcome = "error", type = "connection_error", exact = 1 },   -- not retryable
  { "length_and_chunked" },
  { "bad_chunk_size", outcome = "error" },
  { "truncated_chunked", outcome = "error" },
  { "length_excess", outcome = "ok", exact = 1 },
  -- in a batch, connections are reused within the 50 ms before the extra
  -- answer arrives: one that lands after the request left cannot be told
  -- from the answer by any HTTP/1.1 client (README, Retries), so there the
  -- count is only bounded
  { "late_extra", outcome = "ok", exact = 1, racy_in_batch = true },
  -- oversize
  { "huge_header_line", outcome = "error", exact = 1 },   -- RESPONSE_TOO_LARGE: not retried
  { "huge_headers", outcome = "error", exact = 1 },
  { "huge_body", outcome = "error", big = true, exact = 1 },
  { "huge_body_chunked", outcome = "error", big = true, exact = 1 },
  -- redirects are returned, never followed
  { "redirect_301_path", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_301_host", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_302_path", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_302_host", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_307_path", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_307_host", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_308_path", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  { "redirect_308_host", outcome = "error", type = "api_error", exact = 1, elsewhere = true },
  -- 1xx
  { "info_then_ok", outcome = "ok", exact = 1 },
  { "info_many" },
  { "info_storm", outcome = "error", exact = 1 },
  -- a 200 with a bare JSON scalar
  { "scalar_string", outcome = "error", type = "decode_error", exact = 1 },
  { "scalar_number", outcome = "error", type = "decode_error", exact = 1 },
  { "scalar_true", outcome = "error", type = "decode_error", exact = 1 },
  { "scalar_null", outcome = "error", type = "decode_error", exact = 1 },
  -- the server asks for a retry
  { "status_429_retry_after", outcome = "error", type = "rate_limit_error", asked = true },
  { "status_503_retry_after", outcome = "error", type = "api_error", asked = true },
  { "status_429", outcome = "error", type = "rate_limit_error" },
  { "status_503", outcome = "error", type = "api_error" },
  -- the server echoes the key
  { "echo_key_401", outcome = "error", type = "authentication_error", exact = 1 },
  { "echo_key_200", outcome = "error", type = "decode_error", exact = 1 },
  { "echo_key_html", outcome = "error", type = "api_error" },
  -- keep-alive abuse: the 2nd request on a connection is read, then closed
  { "keepalive_abuse", reused = true },
}

for _, f in ipairs(FAULTS) do f.name = f[1] end

---------------------------------------------------------------------------
-- what was measured, printed at the end

local tables = { order = {}, by_title = {} }

local function record(title, columns, fault, cells)
  local t = tables.by_title[title]
  if not t then
    t = { title = title, columns = columns, rows = {} }
    tables.by_title[title] = t
    tables.order[#tables.order + 1] = t
  end
  t.rows[#t.rows + 1] = { fault = fault, cells = cells }
end

local function render(t, prefix, markdown)
  local out = {}
  if markdown then
    out[#out + 1] = "### " .. t.title
    out[#out + 1] = ""
    out[#out + 1] = "| fault | " .. concat(t.columns, " | ") .. " |"
    out[#out + 1] = "|---" .. rep("|---", #t.columns) .. "|"
    for _, row in ipairs(t.rows) do
      out[#out + 1] = "| " .. row.fault .. " | " .. concat(row.cells, " | ") .. " |"
    end
    out[#out + 1] = ""
    return concat(out, "\n") .. "\n"
  end
  local width = 0
  for _, row in ipairs(t.rows) do
    for _, cell in ipairs(row.cells) do width = math.max(width, #cell) end
  end
  for _, c in ipairs(t.columns) do width = math.max(width, #c) end
  width = width + 2
  local function line(first, cells)
    local parts = { fmt("%-24s", first) }
    for _, cell in ipairs(cells) do parts[#parts + 1] = fmt("%-" .. width .. "s", cell) end
    return prefix .. concat(parts):gsub("%s+$", "")
  end
  out[#out + 1] = prefix .. t.title
  out[#out + 1] = line("fault", t.columns)
  for _, row in ipairs(t.rows) do out[#out + 1] = line(row.fault, row.cells) end
  return concat(out, "\n") .. "\n"
end

local function print_tables()
  if #tables.order == 0 then return end
  local text = { "# requests received per call (\"!\" = a rule broken; "
                 .. "ok / conn / tmo / dec / api / rate / auth ... = outcome)\n" }
  local md = { "# Hostile server: requests received per call\n\n",
               "`!` marks a call that broke a rule; the word is the outcome (ok, or the error type).\n\n" }
  for _, t in ipairs(tables.order) do
    text[#text + 1] = render(t, "# ", false)
    md[#md + 1] = render(t, "", true)
  end
  io.write(concat(text))
  io.stdout:flush()
  local f = io.open("build/hostile-table.md", "w")
  if not f then
    os.execute("mkdir -p build")
    f = io.open("build/hostile-table.md", "w")
  end
  if f then
    f:write(concat(md))
    f:close()
  end
end

---------------------------------------------------------------------------
-- checks

-- Where the key shows in v (a string or a table, searched to depth 3).
local function leaks(v, depth, where, found)
  local tv = type(v)
  if tv == "string" then
    if v:find(KEY, 1, true) or v:find(KEY_HEX, 1, true) then found[#found + 1] = where end
  elseif tv == "table" and depth > 0 then
    for k, x in pairs(v) do leaks(x, depth - 1, where .. "." .. tostring(k), found) end
  end
  return found
end

local function outcome_word(ok, res, err)
  if not ok then return "RAISED" end
  if res ~= nil then return "ok" end
  if onecli.is_error(err) then return ERROR_TYPES[err.type] or tostring(err.type) end
  return "???"
end

-- Checks one call's outcome against rules 3 to 5 and the fault's
-- expectations; appends what is wrong to `problems`.
local function check_outcome(problems, label, f, ok, res, err)
  if not ok then
    problems[#problems + 1] = fmt("%s: raised %s", label, tostring(res))
    return
  end
  if res ~= nil then
    if f.outcome == "error" then
      local shown = type(res) == "table" and "a table" or tostring(res)
      problems[#problems + 1] = fmt("%s: succeeded (%s) instead of failing", label, shown)
    end
    return
  end
  if not onecli.is_error(err) then
    problems[#problems + 1] = fmt("%s: failed without an error object (%s)", label, tostring(err))
    return
  end
  local line = tostring(err)
  if not ERROR_TYPES[err.type] then
    problems[#problems + 1] = fmt("%s: undocumented error type %s", label, tostring(err.type))
  end
  if line:find("[\r\n]") then
    problems[#problems + 1] = fmt("%s: tostring(err) is not one line", label)
  end
  local found = leaks(err, 3, "err", leaks(line, 0, "tostring(err)", {}))
  if #found > 0 then
    problems[#problems + 1] = fmt("%s: the API key shows in %s", label, concat(found, ", "))
  end
  if f.outcome == "ok" then
    problems[#problems + 1] = fmt("%s: failed: %s", label, line)
  elseif f.type and err.type ~= f.type then
    problems[#problems + 1] = fmt("%s: %s instead of %s (%s)", label, tostring(err.type), f.type, line)
  end
end

-- Rules 1 and 2: how many times a request may be received.
local function limit_for(f, verb, max_retries)
  if IDEMPOTENT[verb] or f.asked then return max_retries + 1 end
  return 1
end

local function check_count(problems, label, f, verb, count, max_retries, batch)
  local limit = limit_for(f, verb, max_retries)
  if batch and f.racy_in_batch then
    if count > 1 then
      problems[#problems + 1] = fmt("%s: received %d times, at most once allowed", label, count)
    end
  elseif count > limit then
    problems[#problems + 1] = fmt("%s: received %d times, at most %d allowed", label, count, limit)
  elseif max_retries == 0 and f.reads ~= false and count ~= 1 then
    problems[#problems + 1] = fmt("%s: received %d times with max_retries = 0, exactly once expected",
                                  label, count)
  elseif max_retries > 0 and f.exact and count ~= f.exact then
    problems[#problems + 1] = fmt("%s: received %d times, %d expected", label, count, f.exact)
  end
end

local function check_elsewhere(problems, label, f, stats)
  if not f.elsewhere then return end
  for key, n in pairs(stats.paths) do
    if key:find("/v1/elsewhere", 1, true) then
      problems[#problems + 1] = fmt("%s: the redirect was followed (%s x%d)", label, key, n)
    end
  end
end

local function no_problems(problems)
  assert.is_true(#problems == 0, "\n" .. concat(problems, "\n"))
end

---------------------------------------------------------------------------
-- clients

local srv

local function timeout_for(f)
  return f.slow and 1 or 2
end

local function new_client(f, max_retries)
  local o = {
    url = srv.origin, api_key = KEY, max_retries = max_retries,
    timeout = timeout_for(f), connect_timeout = 2,
    sleep = function() end, getenv = function() end, raise = false,
    -- the batch driver waits for its backoff on timers of its own
    backoff_base = 0.001, backoff_max = 0.01,
  }
  if f.big then
    o.transport = core.new_transport({ max_response_size = 1024 * 1024, timeout = 5 })
  end
  return onecli.new(o)
end

-- One call against the fault: a fresh server state, a new client (with
-- `warm`, a first GET opens a kept-alive connection the call then reuses).
-- Returns the cell for the table and appends problems.
local function measure(problems, f, verb, max_retries, warm)
  srv:drop()
  srv:reset()
  local c = new_client(f, max_retries)
  local label = verb
  if warm then
    local ok, res = pcall(c.agents.list, c.agents)
    if not (ok and res) then
      problems[#problems + 1] = verb .. ": the warm-up GET failed"
    end
    srv:reset()
  end
  srv:fault(f.name)
  local t0 = gettime()
  local ok, res, err = pcall(CALLS[verb], c)
  local elapsed = gettime() - t0
  c:close()
  local stats = srv:stats()
  local count = stats.verbs[verb] or 0
  local before = #problems
  check_outcome(problems, label, f, ok, res, err)
  check_count(problems, label, f, verb, count, max_retries)
  check_elsewhere(problems, label, f, stats)
  local bound = (max_retries + 1) * timeout_for(f) + SLACK
  if elapsed > bound then
    problems[#problems + 1] = fmt("%s: took %.1f s, more than %.1f s", label, elapsed, bound)
  end
  return fmt("%d %s%s", count, outcome_word(ok, res, err), #problems > before and "!" or "")
end

local function run_matrix(title, f, max_retries, warm)
  local problems, cells = {}, {}
  for i, verb in ipairs(VERBS) do
    cells[i] = measure(problems, f, verb, max_retries, warm)
  end
  record(title, VERBS, f.name, cells)
  no_problems(problems)
end

-- 5 POSTs and 5 GETs at once (2 and 2 for the stalls), each tagged so that
-- the server counts every call on its own.
local function run_batch(title, f)
  local per_verb = f.slow and 2 or 5
  srv:drop()
  srv:reset()
  srv:fault(f.name)
  local c = new_client(f, 2)
  local calls, labels = {}, {}
  for i = 1, per_verb do
    calls[#calls + 1] = { "secrets.create", SECRET, { headers = { ["X-Hostile-Tag"] = "p" .. i } } }
    labels[#labels + 1] = { verb = "POST", tag = "p" .. i }
    calls[#calls + 1] = { "agents.list", { headers = { ["X-Hostile-Tag"] = "g" .. i } } }
    labels[#labels + 1] = { verb = "GET", tag = "g" .. i }
  end
  local t0 = gettime()
  local ok, results, failed = pcall(c.batch, c, calls, { concurrency = BATCH_CONCURRENCY })
  local elapsed = gettime() - t0
  c:close()
  local stats = srv:stats()
  local problems = {}
  if not ok then
    problems[#problems + 1] = "client:batch raised " .. tostring(results)
    results = {}
  end
  local errors = 0
  local total, most, words = { GET = 0, POST = 0 }, { GET = 0, POST = 0 }, { GET = {}, POST = {} }
  for i, l in ipairs(labels) do
    local label = fmt("%s #%d (%s)", l.verb, i, l.tag)
    local r = results[i]
    local res, err = r, nil
    if onecli.is_error(r) then res, err, errors = nil, r, errors + 1 end
    if ok then check_outcome(problems, label, f, true, res, err) end
    local n = stats.tags[l.tag] or 0
    check_count(problems, label, f, l.verb, n, 2, true)
    total[l.verb] = total[l.verb] + n
    most[l.verb] = math.max(most[l.verb], n)
    words[l.verb][outcome_word(true, res, err)] = true
  end
  if ok and failed ~= errors then
    problems[#problems + 1] = fmt("batch: %s failures reported, %d error results", tostring(failed), errors)
  end
  check_elsewhere(problems, "batch", f, stats)
  local waves = math.ceil(#calls / BATCH_CONCURRENCY)
  local bound = waves * 3 * timeout_for(f) + SLACK
  if elapsed > bound then
    problems[#problems + 1] = fmt("batch: took %.1f s, more than %.1f s", elapsed, bound)
  end
  local cells = {}
  for i, verb in ipairs({ "GET", "POST" }) do
    local list = {}
    for w in pairs(words[verb]) do list[#list + 1] = w end
    table.sort(list)
    local bad = false
    for _, p in ipairs(problems) do
      if p:find("^" .. verb) then bad = true end
    end
    cells[i] = fmt("%d/%d max %d %s%s", total[verb], per_verb, most[verb], concat(list, ","),
                   bad and "!" or "")
  end
  record(title, { "GET (total/calls, max per call)", "POST (total/calls, max per call)" }, f.name,
         cells)
  no_problems(problems)
end

---------------------------------------------------------------------------

describe("hostile server", function()
  setup(function()
    srv = hostile.start({ max_lifetime = 600 })
  end)
  teardown(function()
    if srv then srv:stop() end
    print_tables()
  end)

  it("knows every fault this spec drives, and this spec drives every fault it knows", function()
    local known, driven = {}, {}
    for _, f in ipairs(srv:faults()) do known[f.name] = true end
    for _, f in ipairs(FAULTS) do driven[f.name] = true end
    for name in pairs(known) do assert.is_true(driven[name] == true, "not driven: " .. name) end
    for name in pairs(driven) do assert.is_true(known[name] == true, "unknown to the server: " .. name) end
  end)

  it("applies a fault set for one path to that path only", function()
    srv:drop()
    srv:reset()
    srv:fault("head_rst", "/v1/secrets")
    local c = new_client({}, 0)
    local agents = c.agents:list()
    local secret, err = c.secrets:create(SECRET)
    c:close()
    assert.is_table(agents)
    assert.is_nil(secret)
    assert.are.equal("connection_error", err.type)
    local stats = srv:stats()
    assert.are.equal(1, stats.paths["GET /v1/agents"])
    assert.are.equal(1, stats.paths["POST /v1/secrets"])
  end)

  describe("one call per verb, new connection, max_retries = 2:", function()
    for _, f in ipairs(FAULTS) do
      it(f.name, function()
        run_matrix("one call per verb, new connection, max_retries = 2", f, 2, false)
      end)
    end
  end)

  describe("one call per verb over a kept alive connection, max_retries = 0:", function()
    for _, f in ipairs(FAULTS) do
      it(f.name, function()
        run_matrix("one call per verb over a kept-alive connection, max_retries = 0", f, 0, true)
      end)
    end
  end)

  describe("one call per verb over a kept alive connection, max_retries = 2:", function()
    for _, f in ipairs(FAULTS) do
      if f.reused then
        it(f.name, function()
          run_matrix("one call per verb over a kept-alive connection, max_retries = 2", f, 2, true)
        end)
      end
    end
  end)

  describe("client:batch, POSTs and GETs at once, concurrency 4:", function()
    for _, f in ipairs(FAULTS) do
      it(f.name, function()
        run_batch("client:batch, 5 POST and 5 GET at once (2 and 2 for stalls), concurrency 4", f)
      end)
    end
  end)

  describe("kept alive connections:", function()
    it("GETs reuse the kept alive connection, a POST gets a connection of its own", function()
      srv:drop()
      srv:reset()
      local c = new_client({}, 0)
      assert.is_table(c.agents:list())
      assert.is_table(c.agents:list())
      assert.is_table(c.secrets:create(SECRET))
      c:close()
      local stats = srv:stats()
      assert.are.equal(3, stats.total)
      -- connections in order of first use: the two GETs share the first
      assert.are.equal(2, #stats.conns)
      assert.are.equal(2, stats.conns[1].requests)
      assert.are.equal(1, stats.conns[2].requests)
      assert.are_not.equal(stats.conns[1].port, stats.conns[2].port)
    end)

    -- the extra answer is on the connection before the next request leaves
    -- (the client waits 0.3 s), so a client can tell it is not the answer
    for _, name in ipairs({ "length_excess", "late_extra" }) do
      it("an answer that runs past its length is never taken for the next call's: " .. name, function()
        srv:drop()
        srv:reset()
        srv:fault(name)
        local c = new_client({}, 0)
        local results = {}
        for i = 1, 3 do
          if i > 1 then socket.sleep(0.3) end
          local r, err = c.agents:get("a" .. i)
          results[i] = r or err
        end
        c:close()
        for i = 1, 3 do
          assert.is_table(results[i])
          assert.is_false(onecli.is_error(results[i]), tostring(results[i]))
          assert.is_nil(results[i].smuggled, "call " .. i .. " got the unasked-for answer")
        end
        -- one request per call: no call took an answer meant for another
        assert.are.equal(3, srv:stats().total)
      end)
    end
  end)
end)
