--- Many API calls at once: client:batch(calls, opts) and its steppable
-- form client:batch_start(calls, opts).
--
--   local results, failed = client:batch({
--     { "agents.get", "id-1" },
--     { "agents.get", "id-2", { timeout = 5 } },
--     { "secrets.create", { name = "x", type = "generic", value = "v" } },
--     { method = "GET", path = "/counts" },
--   }, { concurrency = 8 })
--   -- results[i] is call i's resource, or its error object (onecli.is_error)
--
-- A call is an endpoint name of onecli.endpoints followed by the arguments
-- its generated method takes (path parameters, then the body or query,
-- then the per-call options), or a raw call { method =, path =, body =?,
-- query =?, response =?, <per-call options> } as client:request takes it.
-- Misuse (an unknown endpoint, a wrong argument) raises before anything
-- is sent, naming the call's index.
--
-- The transfers share one libcurl multi handle per client (core.new_multi,
-- made on first use with the options of the client's transport and kept
-- in client._multi for its connection cache; client:close() releases it
-- through release()). At most `concurrency` calls (default 8, 1 to 100)
-- are in flight at once. Each call is retried exactly as a single call
-- would be (onecli.retry's policy, core.backoff, Retry-After, the v1
-- fallback paths); a call waiting for its backoff keeps a timer of its own
-- and never holds up the others. Nothing is lost when some calls fail:
-- each result slot holds the resource or the error (err.attempts set).
--
-- The steppable form, for event loops:
--
--   local b = client:batch_start(calls, { concurrency = 4 })
--   repeat
--     -- ... run other work, then come back within b:next_wakeup() seconds
--   until b:step()                 -- never blocks; true once every call is done
--   local results, failed = b:results()
--
-- b:wait() blocks (on the transfers' sockets, at most until the next
-- timer) for plain Lua loops; b:cancel() ends every call still running.
--
-- Inside nginx, with the OpenResty (cosocket) transport, the calls run in
-- a pool of nginx light threads (ngx.thread.spawn): see batch_threads.lua.
--
-- With an asynchronous transport (Neovim's, a luv loop's) the calls run
-- side by side in coroutines of their own, at most `concurrency` at once:
-- see batch_async.lua. client:batch() then waits inside a coroutine
-- (nvim.run) without blocking the editor.
--
-- A client with another transport of its own (a test double), or the
-- OpenResty one where nginx has no light threads, runs the calls one
-- after the other through that transport, with the same results.

local core = require("onecli.core")
local client_mod = require("onecli.client")
local retry = require("onecli.retry")
local light = require("onecli.batch_threads")
local async = require("onecli.batch_async")
local observe = require("onecli.observe")
local pipeline = require("onecli.pipeline")

local error, type, pairs, ipairs, pcall, setmetatable, tostring, getmetatable =
      error, type, pairs, ipairs, pcall, setmetatable, tostring, getmetatable
local fmt = string.format
local floor, min, max, huge = math.floor, math.min, math.max, math.huge
local now = core.now
local interpret, parse_args = client_mod.interpret, client_mod.parse_args
local unknown_route, check_call = client_mod.unknown_route, client_mod.check_call
local check_raw_path = client_mod.check_raw_path
local next_delay, is_idempotent = retry.next_delay, retry.is_idempotent

local _M = { _VERSION = core._VERSION }

local DEFAULT_CONCURRENCY = 8
local MAX_CONCURRENCY = 100
-- while transfers are in flight, next_wakeup() is at most this long (an
-- event loop does not see the sockets, so it has to look again soon)
local POLL_INTERVAL = 0.01
-- b:wait() blocks at most this long at once (it returns on socket activity)
local MAX_WAIT = 1

local VERBS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }
local RESPONSES = { json = true, text = true, redirect = true }
local RAW_FIELDS = { method = true, path = true, body = true, query = true, response = true }
local BATCH_OPTIONS = { concurrency = "number" }

---------------------------------------------------------------------------
-- the client's multi handle

local Hub = {}
Hub.__index = Hub

-- The multi handle takes the options of the client's libcurl transport.
local function new_hub(transport)
  return setmetatable({ multi = core.new_multi(transport:options()), owners = {} }, Hub)
end

function Hub:add(req, owner)
  local id = self.multi:add(req)
  self.owners[id] = owner
  return id
end

function Hub:cancel(id)
  self.owners[id] = nil
  self.multi:cancel(id)
end

-- Drives every transfer and hands each finished one to its batch. Every
-- one is handed over even if a delivery raises (a log function that
-- fails); the first such error is raised afterwards.
function Hub:pump()
  local m = self.multi
  m:perform()
  local done, failure = m:collect(), nil
  for i = 1, #done do
    local d = done[i]
    local owner = self.owners[d.id]
    if owner then
      self.owners[d.id] = nil
      local ok, err = pcall(owner._deliver, owner, d)
      if not ok and failure == nil then
        failure = err
      end
    end
  end
  if failure ~= nil then
    error(failure, 0)
  end
end

function Hub:close()
  self.owners = {}
  self.multi:close()
end

local function hub_of(client, transport)
  local hub = client._multi
  if hub == nil then
    hub = new_hub(transport)
    client._multi = hub
  end
  return hub
end

---------------------------------------------------------------------------
-- which driver runs a batch

-- The libcurl transport of onecli.core answers options().
local function is_core_transport(t)
  if type(t) ~= "userdata" then
    return false
  end
  return (pcall(function() return t:options() end))
end

--- How a batch of this client runs now: "multi" (libcurl's multi handle),
-- "threads" (nginx light threads over cosockets) or "sequential" (one
-- call after the other through the client's transport); and the
-- transport.
local function driver_for(client)
  local t = client:_transport_now()
  if is_core_transport(t) then
    return "multi", t
  end
  if type(t) == "table" and t.cosockets == true and light.ngx() then
    return "threads", t
  end
  if async.fits(t) then
    return "async", t
  end
  return "sequential", t
end
_M.driver_for = driver_for

--- Releases the client's multi handle (its connections). Idempotent;
-- client:close() calls it.
function _M.release(client)
  local hub = client._multi
  if hub ~= nil then
    client._multi = nil
    hub:close()
  end
end

---------------------------------------------------------------------------
-- reading the calls

-- The number of values in a call table: its largest integer key (a nil
-- in the middle, for an omitted body, still counts), or call.n; nil when
-- it has other keys.
local function count_args(call)
  if type(call.n) == "number" then
    return call.n
  end
  local n = 0
  for k in pairs(call) do
    if type(k) ~= "number" or k % 1 ~= 0 or k < 1 then
      return nil
    end
    n = k > n and k or n
  end
  return n
end

-- Runs parse_args; returns true, ... or false, message (without the
-- "onecli: <name>: " prefix it raises with).
local function try_parse(ep, nargs, args)
  local ok, path, body, query, opts, fallback = pcall(function()
    -- not a tail call: parse_args raises at level 3, which must be pcall
    -- itself (no position) rather than this file
    local p, b, q, o, f = parse_args(ep, nargs, args)
    return p, b, q, o, f
  end)
  if not ok then
    return false, (tostring(path):gsub("^onecli: [^:]+: ", ""))
  end
  return true, path, body, query, opts, fallback
end

local ANY_QUERY = setmetatable({}, { __index = function() return true end })

-- A raw call { method =, path =, ... }: returns the call record or nil,
-- message.
local function read_raw(call)
  local method, path = call.method, call.path
  if type(method) ~= "string" or not VERBS[method] then
    return nil, "method must be one of GET, POST, PUT, PATCH, DELETE"
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    return nil, "path must be a string starting with '/'"
  end
  local why = check_raw_path(path)
  if why then
    return nil, "path " .. why
  end
  if call.body ~= nil and method == "GET" then
    return nil, "a GET request cannot have a body"
  end
  if call.response ~= nil and not RESPONSES[call.response] then
    return nil, "response must be \"json\", \"text\" or \"redirect\""
  end
  local call_opts = {}
  for k, v in pairs(call) do
    if type(k) ~= "string" then
      return nil, "a raw call takes named fields only"
    end
    if not RAW_FIELDS[k] then
      call_opts[k] = v
    end
  end
  local ep = {
    name = "request", method = method, path = path, params = {}, scope = "project",
    response = call.response or "json", idempotent = is_idempotent(method),
  }
  local body = call.body
  local body_ep = setmetatable({ body = "optional" }, { __index = ep })
  local ok, msg, encoded, _, opts = try_parse(body_ep, 2,
                                              { type(body) ~= "string" and body or nil, call_opts })
  if not ok then
    return nil, msg
  end
  if type(body) == "string" then
    encoded = body
  end
  local query_ep = setmetatable({ query = ANY_QUERY, query_names = {} }, { __index = ep })
  local query
  ok, msg, _, query = try_parse(query_ep, 2, { call.query, call_opts })
  if not ok then
    return nil, msg
  end
  return { ep = ep, method = method, path = path, body = encoded, query = query, opts = opts }
end

-- An endpoint call { "namespace.method", args... }.
local function read_endpoint(client, call)
  local name = call[1]
  local ep = client_mod.endpoint[name]
  if ep == nil then
    return nil, fmt("unknown endpoint '%s'", name)
  end
  local count = count_args(call)
  if count == nil then
    return nil, "an endpoint call takes positional arguments only"
  end
  local nargs = count - 1
  local args = {}
  for i = 1, nargs do
    args[i] = call[i + 1]
  end
  local ok, path, body, query, opts, fallback = try_parse(ep, nargs, args)
  if not ok then
    return nil, path
  end
  local msg = check_call(client, ep, opts)
  if msg then
    return nil, msg
  end
  path, fallback = client:_route(ep, path, fallback)   -- older server: its v1 route
  return { ep = ep, method = ep.method, path = path, body = body, query = query,
           opts = opts, fallback = fallback }
end

local function call_label(call)
  if type(call) == "table" and type(call[1]) == "string" then
    return fmt(" (%s)", call[1])
  elseif type(call) == "table" and type(call.method) == "string" then
    return fmt(" (%s %s)", call.method, tostring(call.path))
  end
  return ""
end

---------------------------------------------------------------------------
-- the batch

local Batch = {}
Batch.__index = Batch
light.install(Batch)     -- the methods of the "threads" driver
async.install(Batch)     -- and of the "async" one
Batch.__name = "onecli.Batch"

function Batch.__tostring(self)
  return fmt("onecli.Batch (%d calls, %d to go)", self.total, self.remaining)
end

-- Reads and checks everything before anything is sent; raises at `level`.
local function new_batch(client, calls, opts, level)
  if getmetatable(client) ~= client_mod.Client then
    error("onecli: batch: call it with a colon: client:batch(calls)", level)
  end
  local why = check_call(client, { scope = "any" }, {})   -- closed; an nginx phase without I/O
  if why then
    error("onecli: batch: " .. why, level)
  end
  if type(calls) ~= "table" then
    error("onecli: batch: calls must be a table (an array of calls), got " .. type(calls), level)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli: batch: options must be a table, got " .. type(opts), level)
  end
  for k, v in pairs(opts) do
    local want = BATCH_OPTIONS[k]
    if want == nil then
      error(fmt("onecli: batch: unknown option '%s'", tostring(k)), level)
    elseif type(v) ~= want then
      error(fmt("onecli: batch: option '%s' must be a %s, got %s", k, want, type(v)), level)
    end
  end
  local concurrency = opts.concurrency or DEFAULT_CONCURRENCY
  if concurrency % 1 ~= 0 or concurrency < 1 or concurrency > MAX_CONCURRENCY then
    error(fmt("onecli: batch: option 'concurrency' must be an integer from 1 to %d",
              MAX_CONCURRENCY), level)
  end
  local n = #calls
  for k in pairs(calls) do
    if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > n then
      error("onecli: batch: calls must be an array (1..n, no holes)", level)
    end
  end

  local records = {}
  for i = 1, n do
    local call = calls[i]
    local rec, msg
    if type(call) ~= "table" then
      msg = "must be a table, got " .. type(call)
    elseif type(call[1]) == "string" then
      rec, msg = read_endpoint(client, call)
    elseif call[1] == nil and call.method ~= nil then
      rec, msg = read_raw(call)
      msg = msg and msg:gsub("^argument #%d+ %(%a+%): ", "")
    else
      msg = "must be { \"namespace.method\", args... } or { method =, path = }"
    end
    if rec and rec.opts.callback ~= nil then
      rec, msg = nil, "the 'callback' option has no meaning in a batch"
    elseif rec and rec.opts.meta ~= nil then
      rec, msg = nil, "the 'meta' option has no meaning in a batch (use on_response for "
        .. "each attempt's status, headers and request id)"
    end
    if not rec then
      error(fmt("onecli: batch: call #%d%s: %s", i, call_label(call), msg), level)
    end
    rec.index = i
    rec.attempt = 0
    rec.state = "queued"
    rec.expect = rec.ep.response or "json"
    rec.policy = client:_policy(rec.method, rec.ep, rec.opts)
    records[i] = rec
  end
  for i = 1, n do
    -- a call's deadline counts from the start of the batch: waiting for a
    -- free slot is waiting too
    retry.start(records[i].policy)
  end

  local self = setmetatable({
    client = client,
    records = records,
    queue_head = 1,          -- records[queue_head..] have not started yet
    waiting = {},            -- records waiting for their backoff
    by_id = {},
    inflight = 0,
    concurrency = concurrency,
    total = n,
    remaining = n,
    failed = 0,
    out = {},
  }, Batch)
  local driver, transport = driver_for(client)
  self.driver = driver
  self.transport = transport
  if driver == "multi" then
    self.hub = hub_of(client, transport)
  end
  return self
end

function Batch:_finish(rec, result, err)
  rec.state = "done"
  rec.req = nil
  if err ~= nil then
    self.out[rec.index] = err
    self.failed = self.failed + 1
  else
    self.out[rec.index] = result
  end
  self.remaining = self.remaining - 1
end

-- The next record allowed to start now: a retry whose time has come
-- (the earliest), else the next call not started yet.
function Batch:_next_ready(t)
  local waiting, best, best_at = self.waiting, nil, huge
  for i = 1, #waiting do
    local at = waiting[i].ready_at
    if at <= t and at < best_at then
      best, best_at = i, at
    end
  end
  if best then
    local rec = waiting[best]
    waiting[best] = waiting[#waiting]
    waiting[#waiting] = nil
    return rec
  end
  local records = self.records
  while self.queue_head <= #records do
    local rec = records[self.queue_head]
    self.queue_head = self.queue_head + 1
    if rec.state == "queued" then
      return rec
    end
  end
  return nil
end

function Batch:_start(rec)
  local client = self.client
  local policy = rec.policy
  if rec.req == nil then
    local req, err = client:_request_table(rec.method, rec.path, rec.body, rec.query,
                                           rec.opts, rec.ep)
    if not req then
      return self:_finish(rec, nil, err)
    end
    rec.req = req
    policy.timeout, policy.connect_timeout = req.timeout, req.connect_timeout
  end
  local timeout, connect_timeout, cut = retry.limits(policy)
  if timeout == nil then
    -- the deadline passed while the call waited for a free slot
    policy.path, policy.secret = rec.req.path, rec.req.secret
    local err = rec.last_err or retry.late_error(policy)
    err.deadline = policy.deadline
    err.attempts = max(rec.attempt, 1)
    return self:_finish(rec, nil, err)
  end
  rec.req.timeout, rec.req.connect_timeout, rec.cut = timeout, connect_timeout, cut
  rec.attempt = rec.attempt + 1
  rec.started = now()
  rec.state = "inflight"
  if client._logger or client._on_request or rec.opts.on_request then
    observe.attempt_start(client, rec.req, rec.attempt, rec.opts, true)
  end
  self.inflight = self.inflight + 1
  rec.id = self.hub:add(rec.req, self)
  self.by_id[rec.id] = rec
end

-- Starts what may start, up to the concurrency bound.
function Batch:_fill()
  local t = now()
  while self.inflight < self.concurrency do
    local rec = self:_next_ready(t)
    if not rec then
      return
    end
    self:_start(rec)
  end
end

-- The call goes again in `delay` seconds (its own timer: the others go on).
function Batch:_again(rec, delay)
  rec.state = "waiting"
  rec.ready_at = now() + delay
  self.waiting[#self.waiting + 1] = rec
end

-- A transfer of this batch finished (called by the hub).
function Batch:_deliver(d)
  local rec = self.by_id[d.id]
  if rec == nil then
    return
  end
  self.by_id[d.id] = nil
  rec.id = nil
  self.inflight = self.inflight - 1
  local ok, failure = pcall(self._settle, self, rec, d)
  if not ok then
    -- the client's log function raised: the call still gets a result
    if rec.state == "inflight" then
      local req = rec.req
      self:_finish(rec, nil, core.transport_error(rec.method, req and req.path or rec.path,
        "CALLBACK", tostring(failure), { secret = req and req.secret, attempts = rec.attempt }))
    end
    error(failure, 0)
  end
end

-- What a finished transfer means for its call: a result, an error, or
-- another attempt later.
function Batch:_settle(rec, d)
  local client, req, n = self.client, rec.req, rec.attempt
  local result, err
  if d.err ~= nil then
    result, err = interpret(req, rec.expect, nil, d.err)
  else
    result, err = interpret(req, rec.expect, d.status, d.headers, d.body, d.value)
    if err and err.headers == nil and type(d.headers) == "table" then
      err.headers = observe.masked_headers(d.headers, req.secret)   -- a server may echo the key
    end
  end
  local delay
  if err ~= nil then
    if rec.cut then
      retry.cut_short(err, rec.policy)
    end
    delay = next_delay(err, n, rec.policy)
  end
  if client._logger or client._on_response or rec.opts.on_response then
    observe.attempt_done(client, {
      method = rec.method, path = req.path, url = req.url, req = req, opts = rec.opts,
      status = d.status or (err and err.status), headers = d.headers, err = err,
      request_id = pipeline.request_id_of(d.headers, err), duration = now() - rec.started,
      attempt = n, of = (rec.policy.max_retries or 0) + 1, retry_in = delay, batch = true,
      body = d.body, value = d.value,
    })
  end
  if err == nil then
    client:_after(rec.ep, result, req.secret)
    return self:_finish(rec, result)
  end
  if delay then
    rec.last_err = err
    return self:_again(rec, delay)
  end
  if rec.fallback and unknown_route(err) then
    -- an older server: the route has its v1 name there
    client._fallbacks[rec.ep.name] = true
    rec.path, rec.fallback, rec.req, rec.attempt = rec.fallback, nil, nil, 0
    rec.last_err = err
    return self:_again(rec, 0)
  end
  self:_finish(rec, nil, err)
end

-- Without a multi handle: one call, start to end, through the client's
-- own transport (and its own waiting).
function Batch:_step_sequential()
  local rec = self:_next_ready(huge)
  if rec then
    local result, err = self.client:_perform(rec.method, rec.path, rec.body, rec.query,
                                             rec.opts, rec.ep, rec.fallback, rec.policy.expires)
    self:_finish(rec, result, err)
  end
end

---------------------------------------------------------------------------
-- stepping

--- Moves every call on as far as it can without blocking: starts calls
-- (up to the concurrency bound, retries whose backoff is over), lets
-- libcurl work, takes in what finished. Returns true when every call is
-- done. (In nginx's light threads the calls move by themselves: the
-- first step starts them.)
function Batch:step()
  if self.driver == "threads" then
    local done = self:_step_threads()   -- (not a tail call: its errors name our caller)
    return done
  end
  if self.driver == "async" then
    local done = self:_step_async()
    return done
  end
  if self.remaining == 0 then
    return true
  end
  if self.hub == nil then
    self:_step_sequential()
    return self.remaining == 0
  end
  if self.client._multi ~= self.hub then
    error("onecli: batch: the client was closed while the batch ran", 2)
  end
  self:_fill()
  if self.inflight > 0 then
    self.hub:pump()
    self:_fill()
  end
  if self.remaining == 0 then
    self.client:_after_io()     -- (nginx's master keeps no connection)
    return true
  end
  return false
end

-- Seconds until step() has something to do, at most `cap` while
-- transfers are in flight.
function Batch:_until_next(cap)
  if self.remaining == 0 or self.hub == nil then
    return 0
  end
  local free = self.inflight < self.concurrency
  if free and self.queue_head <= #self.records then
    return 0
  end
  local t, wake = now(), huge
  if free then       -- a retry can only start in a free slot
    local waiting = self.waiting
    for i = 1, #waiting do
      wake = min(wake, waiting[i].ready_at - t)
    end
  end
  if self.inflight > 0 then
    local ms = self.hub.multi:timeout()
    if ms >= 0 then
      wake = min(wake, ms / 1000)
    end
    wake = min(wake, cap)
  end
  if wake == huge then
    return 0
  end
  return max(0, wake)
end

--- Seconds until step() should run again (0: now). While transfers are
-- in flight it is at most 10 ms: the loop does not see their sockets.
function Batch:next_wakeup()
  if self.driver == "threads" then
    if self.remaining == 0 or self.threads == nil or self.failure ~= nil then
      return 0
    end
    return POLL_INTERVAL
  end
  if self.driver == "async" then    -- the calls move by themselves on the host's loop
    return (self.remaining == 0 or self.inflight < self.concurrency) and 0 or POLL_INTERVAL
  end
  return self:_until_next(POLL_INTERVAL)
end

--- Blocks until a transfer has news or the next timer (a retry's backoff,
-- libcurl's own) is due, at most `max_seconds` (default: 1 s).
function Batch:wait(max_seconds)
  if self.driver == "threads" then
    return self:_wait_threads(max_seconds)
  end
  if self.driver == "async" then
    return self:_wait_async(max_seconds)
  end
  if self.hub == nil or self.remaining == 0 then
    return
  end
  local seconds = min(self:_until_next(MAX_WAIT), max_seconds or MAX_WAIT)
  if seconds > 0 then
    self.hub.multi:wait(floor(seconds * 1000 + 0.5))
  end
end

--- Whether every call is done.
function Batch:done()
  return self.remaining == 0
end

--- The results so far, in call order (complete once step() returned
-- true), and how many of them are errors.
function Batch:results()
  return self.out, self.failed
end

--- Ends every call not done yet: each gets a connection_error with code
-- CANCELLED. Idempotent.
function Batch:cancel()
  local threads = self.driver == "threads"
  if threads then
    self.cancelled = true
    self:_stop_threads()
  end
  for _, rec in ipairs(self.records) do
    if rec.state ~= "done" then
      local running = rec.handle
      if rec.id ~= nil and self.hub then
        self.by_id[rec.id] = nil
        self.hub:cancel(rec.id)
        self.inflight = self.inflight - 1
      elseif threads and rec.state == "inflight" then
        self.inflight = self.inflight - 1
      end
      local req = rec.req
      local path = (threads or running) and light.error_path(self.client, rec) or (req and req.path or rec.path)
      local err = core.transport_error(rec.method, path, "CANCELLED",
                                       "the batch was cancelled",
                                       { request_sent = rec.attempt > 0,
                                         secret = req and req.secret,
                                         attempts = max(rec.attempt, 1) })
      err.retryable = false
      self:_finish(rec, nil, err)
      if running then
        self:_cancel_async(rec)     -- after _finish: its callback finds the call done
      end
    end
  end
  self.waiting = {}
  if threads and self.sema then
    self.sema:post(1)     -- a wait() elsewhere returns
  end
end

---------------------------------------------------------------------------
-- client methods

local function run(b)
  if b.driver == "async" then
    -- no pcall here: the loop yields (Lua 5.1 cannot yield across pcall),
    -- and nothing is raised while calls are in flight but a failure of
    -- the driver itself
    while not b:step() do
      b:wait()
    end
    return b:results()
  end
  local ok, err = pcall(function()
    while not b:step() do
      b:wait()
    end
  end)
  if not ok then
    b:cancel()     -- nothing stays in flight behind an error
    error(err, 0)
  end
  return b:results()
end

client_mod.extend_client("batch", function(self, calls, opts)
  local b = new_batch(self, calls, opts, 3)
  if b.driver == "async" and not async.yieldable() then
    error(async.not_in_coroutine(b.transport), 2)
  end
  return run(b)
end)

client_mod.extend_client("batch_start", function(self, calls, opts)
  return new_batch(self, calls, opts, 3)
end)

_M.Batch = Batch

return _M
