--- client:batch inside nginx: its calls run in nginx light threads
-- (ngx.thread.spawn) over the OpenResty (cosocket) transport. The
-- methods below are the "threads" driver of onecli.batch's Batch.
--
-- A pool of `concurrency` threads is made on the first step(), each
-- taking the next call not started yet until none is left, each call made
-- as a single call is (client:_perform: its retries sleep with ngx.sleep,
-- its fallbacks, its deadline counted from the start of the batch).
-- step() only starts the pool and reports; wait() yields to nginx until a
-- call finishes (an ngx.semaphore, or ngx.sleep); cancel() kills the
-- threads still running (ngx.thread.kill: only the coroutine that made
-- the first step() may kill them; from another one, a thread still in
-- flight finishes its current attempt, its result is dropped and it
-- starts nothing more), and gives back the pool places they held. A Lua
-- error inside a thread (a log function that raises) becomes that call's
-- error object (code CALLBACK) and is raised by the next step(), as the
-- multi driver does.

local core = require("onecli.core")
local keys = require("onecli.keys")
local nginx = require("onecli.nginx")

local error, type, pairs, pcall, tostring, rawget, require =
      error, type, pairs, pcall, tostring, rawget, require
local min, huge = math.min, math.huge

local _M = {}

-- wait() yields at most this long at a time (as the multi driver's).
local MAX_WAIT = 1
-- Without ngx.semaphore, wait() sleeps this long.
local POLL_INTERVAL = 0.01

--- nginx's ngx table where light threads may be spawned now, else nil.
function _M.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.thread) ~= "table"
      or type(ngx.thread.spawn) ~= "function" then
    return nil
  end
  local ok, phase = pcall(nginx.phase)
  if ok and nginx.COSOCKET_PHASES[phase] then
    return ngx
  end
  return nil
end

local Batch = {}

-- The path an error of this call names (the transport's path: with the
-- client's base path, none for the gateway).
function _M.error_path(client, rec)
  if rec.req then
    return rec.req.path
  end
  local base = (rec.ep.base == "gateway") and "" or (client._base_path or "")
  return base .. rec.path
end

-- A ngx.semaphore for wait(), or nil where lua-resty-core has none.
local function new_semaphore()
  local ok, semaphore = pcall(require, "ngx.semaphore")
  if not ok or type(semaphore) ~= "table" then
    return nil
  end
  local made, sema = pcall(semaphore.new, 0)
  return made and sema or nil
end

-- One light thread of the pool: takes the next call not started yet and
-- makes it (retries, fallbacks and the deadline included) until none is
-- left or the batch is cancelled.
local function worker(self)
  local client = self.client
  while not self.cancelled do
    local rec = self:_next_ready(huge)
    if rec == nil then
      return
    end
    rec.state = "inflight"
    rec.attempt = 1
    self.inflight = self.inflight + 1
    local ok, result, err = pcall(client._perform, client, rec.method, rec.path, rec.body,
                                  rec.query, rec.opts, rec.ep, rec.fallback, rec.policy.expires)
    if rec.state == "inflight" then    -- (else cancel() gave it its result)
      self.inflight = self.inflight - 1
      if not ok then
        -- a Lua error (the client's log function raised): the call still
        -- gets a result, and the next step() raises it
        local failure = result
        result, err = nil, core.transport_error(rec.method, _M.error_path(client, rec), "CALLBACK",
          tostring(failure), { secret = keys.get(client), attempts = rec.attempt })
        if self.failure == nil then
          self.failure = failure
        end
      end
      self:_finish(rec, result, err)
      if self.sema then
        self.sema:post(1)
      end
    end
  end
end

-- Starts the pool: as many threads as calls, at most `concurrency`. Each
-- runs at once until its first wait (nginx's spawn), then step() returns.
function Batch:_spawn(ngx)
  self.threads = {}
  self.sema = new_semaphore()
  local n = min(self.concurrency, #self.records - self.queue_head + 1)
  for i = 1, n do
    self.threads[i] = ngx.thread.spawn(worker, self)
  end
end

-- Ends the pool's threads: kills those still running and reaps those
-- done (ngx.thread.kill does both; only for the coroutine that spawned
-- them: from another one a thread still running stops after its call).
function Batch:_stop_threads()
  local threads = self.threads
  if threads == nil or self.stopped then
    return
  end
  self.stopped = true
  local ngx = rawget(_G, "ngx")
  local kill = type(ngx) == "table" and ngx.thread and ngx.thread.kill
  if kill then
    local ok, queue = pcall(require, "onecli.transport.resty_queue")
    for i = 1, #threads do
      local called, killed = pcall(kill, threads[i])
      if called and killed and ok then
        -- its place in a pool's queue, if it had one (a thread that could
        -- not be killed still uses it, and gives it back itself)
        queue.abandon(threads[i])
      end
    end
  end
end

function Batch:_step_threads()
  if self.remaining > 0 and not self.cancelled then
    if self.client._closed then
      error("onecli: batch: the client was closed while the batch ran", 3)
    end
    if self.threads == nil then
      local ngx = _M.ngx()
      if ngx == nil then
        error("onecli: batch: a batch over cosockets runs where nginx has light threads "
              .. "(a rewrite, access or content handler, or an ngx.timer.at callback)", 3)
      end
      self:_spawn(ngx)
    end
  end
  local failure = self.failure
  if failure ~= nil then
    self.failure = nil
    error(failure, 0)
  end
  if self.remaining == 0 then
    self:_stop_threads()
    return true
  end
  return false
end

-- In nginx: yields until a call finishes (or at most `max_seconds`).
function Batch:_wait_threads(max_seconds)
  if self.remaining == 0 or self.threads == nil or self.failure ~= nil then
    return
  end
  local seconds = min(MAX_WAIT, max_seconds or MAX_WAIT)
  if seconds <= 0 then
    return
  end
  if self.sema then
    self.sema:wait(seconds)
  else
    rawget(_G, "ngx").sleep(min(seconds, POLL_INTERVAL))
  end
end

--- Adds the driver's methods to onecli.batch's Batch class.
function _M.install(class)
  for name, fn in pairs(Batch) do
    class[name] = fn
  end
end

return _M
