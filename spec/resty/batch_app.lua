-- The nginx side of spec/resty/batch_spec.lua: location handlers that run
-- client:batch (and its steppable form) against the OneCLI stand-in through
-- the cosocket transport, in nginx light threads, and answer JSON.
-- Loaded by nginx (LuaJIT) from batch.conf.in; the spec writes
-- onecli_batch_settings.lua (the stand-in's URL and key) into the prefix.
-- luacheck: globals ngx
local ngx = ngx

local onecli = require("onecli")
local batch = require("onecli.batch")
local cjson = require("cjson")

local _M = {}

local settings
local shared          -- a client made in init_by_lua

function _M.init()
  settings = require("onecli_batch_settings")
  shared = onecli.new({ url = settings.url, api_key = settings.api_key, max_retries = 0,
                        getenv = function() end })
end

local function reply(t, status)
  ngx.status = status or 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function clock()
  ngx.update_time()
  return ngx.now()
end

local function client(extra)
  local opts = { url = settings.url, api_key = settings.api_key, max_retries = 0,
                 getenv = function() end }
  for k, v in pairs(extra or {}) do
    opts[k] = v
  end
  return onecli.new(opts)
end

-- The transport a call of this client makes now.
local function transport_of(c)
  if c._transport_now then
    return c:_transport_now()
  end
  return c._transport
end

-- Counts the requests of c's transport in flight at once (this client's
-- transport object only: the wrapper is a field of the instance).
local function count_in_flight(c)
  local t = transport_of(c)
  local stats = { now = 0, max = 0, sent = 0 }
  local request = t.request
  t.request = function(self, req)
    stats.now = stats.now + 1
    stats.sent = stats.sent + 1
    if stats.now > stats.max then
      stats.max = stats.now
    end
    local status, headers, body = request(self, req)
    stats.now = stats.now - 1
    return status, headers, body
  end
  return stats
end

local function error_fields(err)
  return {
    type = err.type, status = err.status, code = err.code, message = err.message,
    retryable = err.retryable, request_sent = err.request_sent, attempts = err.attempts,
    method = err.method, path = err.path,
  }
end

-- A result slot as JSON: the error's fields, or what the resource is.
local function summary(r)
  if r == nil then
    return { missing = true }
  end
  if onecli.is_error(r) then
    return { error = error_fields(r) }
  end
  if type(r) ~= "table" then
    return { value = tostring(r) }
  end
  return { ok = true, id = r.id, status = r.status, count = #r }
end

local function summaries(results, n)
  local out = {}
  for i = 1, n do
    out[i] = summary(results[i])
  end
  return out
end

local function repeated(call, n)
  local calls = {}
  for i = 1, n do
    calls[i] = call
  end
  return calls
end

-- The coroutine statuses of a batch's light threads.
local function thread_states(b)
  local states = {}
  for i, t in ipairs(b.threads or {}) do
    states[i] = coroutine.status(t)
  end
  return states
end

local handlers = {}

-- n calls of agents.list with concurrency c (the spec delays them)
function handlers.many(args)
  local n, conc = tonumber(args.n) or 10, tonumber(args.c) or 8
  local c = client()
  local stats = count_in_flight(c)
  local driver = batch.driver_for(c)
  local t0 = clock()
  local results, failed = c:batch(repeated({ "agents.list" }, n), { concurrency = conc })
  local elapsed = clock() - t0
  local ok = 0
  for i = 1, n do
    if type(results[i]) == "table" and not onecli.is_error(results[i]) then
      ok = ok + 1
    end
  end
  return { driver = driver, elapsed = elapsed, failed = failed, count = #results, ok = ok,
           max_in_flight = stats.max, sent = stats.sent }
end

-- a large batch runs in a pool of `concurrency` threads, not one per call
function handlers.pool(args)
  local n, conc = tonumber(args.n) or 300, tonumber(args.c) or 8
  local c = client()
  local stats = count_in_flight(c)
  local b = c:batch_start(repeated({ "health" }, n), { concurrency = conc })
  while not b:step() do
    b:wait()
  end
  local results, failed = b:results()
  local ok = 0
  for i = 1, n do
    if type(results[i]) == "table" and results[i].status == "ok" then
      ok = ok + 1
    end
  end
  return { driver = b.driver, threads = #b.threads, states = thread_states(b), failed = failed,
           ok = ok, max_in_flight = stats.max, sent = stats.sent }
end

-- results in call order, errors in their slots (the spec delays /v1/health)
function handlers.order()
  local c = client()
  local agent = c.agents:create({ name = "Ordered", identifier = "ordered-" .. ngx.worker.pid() })
  local results, failed = c:batch({
    { "health" },
    { "agents.get", "no-such-agent" },
    { "agents.get", agent.id },
    { method = "GET", path = "/agents" },
    { "agents.delete", "no-such-agent-either" },
    { "agents.list" },
  }, { concurrency = 3 })
  return { failed = failed, count = #results, id = agent.id, results = summaries(results, 6) }
end

-- the spec makes GET /v1/agents answer 503 once
function handlers.retry()
  local lines = {}
  local c = client({ max_retries = 2, backoff_base = 0.05,
                     log = function(l) lines[#lines + 1] = l end })
  local results, failed = c:batch({ { "agents.list" }, { "health" } }, { concurrency = 2 })
  return { failed = failed, results = summaries(results, 2), log = lines }
end

-- the spec delays GET /v1/agents by seconds: cancel while they are in flight
function handlers.cancel()
  local c = client({ timeout = 10 })
  local calls = repeated({ "agents.list" }, 4)
  calls[5] = { "health" }
  local b = c:batch_start(calls, { concurrency = 5 })
  local t0 = clock()
  local first = b:step()
  while (b:results())[5] == nil and clock() - t0 < 3 do
    b:wait(0.05)
  end
  local inflight = b.inflight
  b:cancel()
  b:cancel()
  local results, failed = b:results()
  local after = c:batch({ { "health" } })       -- the client goes on working
  return { first_step_done = first, inflight_before = inflight, inflight = b.inflight,
           done = b:done(), step = b:step(), failed = failed, results = summaries(results, 5),
           states = thread_states(b), elapsed = clock() - t0, after = summary(after[1]) }
end

-- cancel() with a capped pool (pool_size 2, a backlog): the killed
-- threads give their places back at once, so the next call does not wait
-- for them (connect_timeout is 5 s); the spec delays GET /v1/agents
function handlers.cancel_capped()
  local c = client({ timeout = 10, connect_timeout = 5, pool_size = 2, backlog = 10 })
  local b = c:batch_start(repeated({ "agents.list" }, 4), { concurrency = 4 })
  b:step()
  ngx.sleep(0.1)           -- two calls hold the pool's places, two wait
  b:cancel()
  local t0 = clock()
  local after = c:batch({ { "health" } })
  return { after = summary(after[1]), after_elapsed = clock() - t0 }
end

-- cancel() from a light thread that did not start the batch (it cannot
-- kill the batch's threads): the spec delays GET /v1/agents
function handlers.cancel_elsewhere()
  local c = client({ timeout = 10 })
  local b = c:batch_start(repeated({ "agents.list" }, 6), { concurrency = 2 })
  b:step()
  local canceller = ngx.thread.spawn(function()
    ngx.sleep(0.1)
    b:cancel()
    return b:done()
  end)
  local waited, done = ngx.thread.wait(canceller)
  local results, failed = b:results()
  return { waited = waited, done = done, failed = failed, inflight = b.inflight,
           results = summaries(results, 6) }
end

-- the steppable form: step() never blocks, next_wakeup(), wait() yields
function handlers.steps(args)
  local n, conc = tonumber(args.n) or 6, tonumber(args.c) or 3
  local c = client()
  local stats = count_in_flight(c)
  local b = c:batch_start(repeated({ "agents.list" }, n), { concurrency = conc })
  local before = b:next_wakeup()
  local t0 = clock()
  local steps, longest_step, wakeups = 0, 0, {}
  while true do
    local ts = clock()
    local done = b:step()
    longest_step = math.max(longest_step, clock() - ts)
    if done then
      break
    end
    steps = steps + 1
    wakeups[#wakeups + 1] = b:next_wakeup()
    b:wait()
  end
  local finished_at = clock()
  local results, failed = b:results()
  return { driver = b.driver, before = before, steps = steps, longest_step = longest_step,
           wakeups = wakeups, after = b:next_wakeup(), elapsed = finished_at - t0,
           finished_at = finished_at, failed = failed, results = summaries(results, n),
           max_in_flight = stats.max, pid = ngx.worker.pid() }
end

-- a Lua error inside a thread (a log function that raises)
function handlers.callback()
  local c = client({ log = function() error("the log broke") end })
  local ok, err = pcall(c.batch, c, { { "health" }, { "health" } })
  local b = c:batch_start({ { "health" }, { "health" } })
  local raised, done, t0 = 0, false, clock()
  repeat
    local stepped, finished = pcall(b.step, b)
    if stepped then
      done = finished
    else
      raised = raised + 1
    end
    if not done then
      b:wait(0.05)
    end
  until done or clock() - t0 > 5
  local results, failed = b:results()
  return { ok = ok, err = tostring(err), raised = raised, done = done, failed = failed,
           results = summaries(results, 2) }
end

-- the client made in init_by_lua: its batch runs in light threads too
function handlers.init_client()
  local driver = batch.driver_for(shared)
  local t0 = clock()
  local results, failed = shared:batch(repeated({ "agents.list" }, 5), { concurrency = 5 })
  return { driver = driver, elapsed = clock() - t0, failed = failed,
           results = summaries(results, 5) }
end

-- a batch in an ngx.timer.at callback
function handlers.timer()
  local box = {}
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then
      return
    end
    local c = client()
    box.driver = batch.driver_for(c)
    local t0 = clock()
    local results, failed = c:batch(repeated({ "agents.list" }, 5), { concurrency = 5 })
    box.elapsed = clock() - t0
    box.failed = failed
    box.results = summaries(results, 5)
    box.done = true
  end)
  if not ok then
    return { error = tostring(err) }
  end
  local t0 = clock()
  while not box.done and clock() - t0 < 5 do
    ngx.sleep(0.01)
  end
  return box
end

function _M.handle()
  local name = ngx.var.uri:match("^/b/([%w_]+)$")
  local h = name and handlers[name]
  if not h then
    return reply({ error = "no handler " .. tostring(name) }, 404)
  end
  local ok, result = pcall(h, ngx.req.get_uri_args())
  if not ok then
    return reply({ error = tostring(result) }, 500)
  end
  return reply(result)
end

function _M.ping()
  reply({ pong = true, pid = ngx.worker.pid(), at = clock() })
end

return _M
