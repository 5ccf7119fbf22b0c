--- client:batch over an asynchronous transport (Neovim's, a luv loop's:
-- onecli.transport.uv). The methods below are the "async" driver of
-- onecli.batch's Batch.
--
-- Each call runs as a call with a callback does (onecli.handle: a
-- coroutine of its own through client:_perform, with its retries, its
-- fallbacks and its deadline counted from the start of the batch); at
-- most `concurrency` run at once, and a call that ends starts the next
-- one. step() starts what may start and never blocks. wait() suspends the
-- running coroutine until a call ends when it can (client:batch inside
-- nvim.run, a call's callback, ...); outside a coroutine it runs the
-- host's loop (vim.wait) at most max_seconds. cancel() cancels the
-- handles still running (each closes its own connection).

local handle = require("onecli.handle")

local error, type, pairs, pcall, tostring = error, type, pairs, pcall, tostring
local floor, huge, max = math.floor, math.huge, math.max
local co_running, co_yield, co_isyieldable =
      coroutine.running, coroutine.yield, coroutine.isyieldable

local _M = {}

-- b:wait() outside a coroutine runs the loop at most this long at once.
local MAX_WAIT = 1

--- Whether calls through transport t may run side by side in coroutines.
function _M.fits(t)
  return type(t) == "table" and t.async == true and type(t.abandon) == "function"
    and type(t.wait_until) == "function"
end

local function run_now(fn)
  fn()
end

local Batch = {}

-- The running coroutine if it may yield (and is not the main one).
local function yieldable()
  local co, is_main = co_running()
  if co == nil or is_main or (co_isyieldable and not co_isyieldable()) then
    return nil
  end
  return co
end

-- A call of this batch ended (on the host's main loop, in its coroutine).
function Batch:_async_done(rec, result, err)
  if rec.state == "done" then        -- cancelled with the batch
    return
  end
  self.inflight = self.inflight - 1
  rec.handle = nil
  self:_finish(rec, result, err)
  local ok, why = pcall(self._async_fill, self)
  if not ok and self.failure == nil then
    self.failure = why
  end
  local waiter = self.waiter
  if waiter and (self.remaining == 0 or self.inflight < self.concurrency) then
    self.waiter = nil
    self.transport.schedule(function()
      handle.resume(waiter)
    end)
  end
end

-- Starts calls up to the concurrency bound.
function Batch:_async_fill()
  local client, t = self.client, self.transport
  while self.inflight < self.concurrency do
    local rec = self:_next_ready(huge)
    if not rec then
      return
    end
    rec.state = "inflight"
    rec.attempt = 1
    self.inflight = self.inflight + 1
    local base = (rec.ep.base == "gateway") and "" or (client._base_path or "")
    rec.handle = handle.start({ method = rec.method, path = base .. rec.path, transport = t,
                                schedule = run_now },
      function()
        return client:_perform(rec.method, rec.path, rec.body, rec.query, rec.opts, rec.ep,
                               rec.fallback, rec.policy.expires)
      end,
      function(result, err)
        self:_async_done(rec, result, err)
      end)
  end
end

function Batch:_step_async()
  local failure = self.failure
  if failure ~= nil then
    self.failure = nil
    error(failure, 0)
  end
  if self.remaining == 0 then
    return true
  end
  self:_async_fill()
  return self.remaining == 0
end

function Batch:_wait_async(max_seconds)
  if self.remaining == 0 then
    return
  end
  local co = yieldable()
  if co then
    self.waiter = co
    co_yield()
    if self.waiter == co then
      self.waiter = nil
    end
    return
  end
  local seconds = max(0, max_seconds or MAX_WAIT)
  local inflight = self.inflight
  self.transport:wait_until(floor(seconds * 1000 + 0.5), function()
    return self.remaining == 0 or self.inflight < inflight
  end)
end

-- Cancels the handles still running (their results are the batch's
-- cancelled errors, set by the caller).
function Batch:_cancel_async(rec)
  local h = rec.handle
  if h then
    rec.handle = nil
    self.inflight = self.inflight - 1
    h:cancel()
  end
end

--- The message when client:batch() cannot wait here.
function _M.not_in_coroutine(t)
  return "onecli: batch: with the " .. tostring(t._host_name or "asynchronous")
    .. " transport, client:batch() must run inside a coroutine (" .. tostring(t._module)
    .. ".run(function() ... end)); or step it: local b = client:batch_start(calls) ... "
    .. "b:step(), b:wait(seconds)"
end

--- Copies the driver's methods into onecli.batch's Batch.
function _M.install(target)
  for name, fn in pairs(Batch) do
    target[name] = fn
  end
end

_M.yieldable = yieldable

return _M
