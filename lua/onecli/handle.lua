--- The handle of a call made with a callback (asynchronous transports).
--
--   local h = client.agents:list({ callback = function(agents, err) ... end })
--   h:is_done()                  -- false while the call runs
--   h:cancel()                   -- ends this call only; the callback gets a
--                                -- connection_error with code CANCELLED, once
--   local agents, err = h:wait(500)   -- runs the host's loop (Neovim: vim.wait)
--                                -- up to 500 ms; on timeout: nil and a
--                                -- timeout_error, code WAIT_TIMEOUT (the call goes on)
--
-- The call runs in a coroutine of its own; the transport suspends it while
-- it waits (see onecli.transport.uv). A transport without `abandon` and
-- `wait_until` (the blocking libcurl one, with a callback) finishes the
-- call before the handle is returned.

local core = require("onecli.core")

local error, type, tostring, setmetatable, floor =
      error, type, tostring, setmetatable, math.floor
local co_create, co_resume, co_status = coroutine.create, coroutine.resume, coroutine.status
local traceback = debug.traceback

local _M = { _VERSION = core._VERSION }

---------------------------------------------------------------------------
-- resuming the coroutines of calls
--
-- A call's coroutine runs its work without pcall around it: Lua 5.1
-- cannot yield across pcall. Whoever resumes it (the first resume here,
-- later ones in the transport) calls resume() below, which hands an error
-- to the coroutine's owner (its handle, nvim.run's done) instead.

local owners = setmetatable({}, { __mode = "k" })   -- coroutine -> fn(err, co)

--- Names who is told when coroutine co fails: on_failure(err, co).
function _M.own(co, on_failure)
  owners[co] = on_failure
end

--- Resumes co with the values given. An error inside it goes to its
-- owner (see own) or, without one, is raised with co's traceback.
function _M.resume(co, ...)
  if co_status(co) ~= "suspended" then
    return
  end
  local ok, err = co_resume(co, ...)
  if ok then
    return
  end
  local owner = owners[co]
  if owner then
    owners[co] = nil
    return owner(err, co)
  end
  error(type(err) == "string" and traceback(co, err) or err, 0)
end

---@class onecli.Handle
---@field method string   the call's HTTP method
---@field path string     the call's path (no key in it)
local Handle = {}
Handle.__index = Handle
Handle.__name = "onecli.Handle"

function Handle.__tostring(self)
  return ("onecli.Handle (%s %s, %s)"):format(self.method, self.path,
    self._cancelled and "cancelled" or (self._done and "done" or "running"))
end

-- The call is over: keep the outcome, run the callback once (through the
-- host's schedule, on its main loop).
function Handle:_finish(result, err, meta)
  if self._done then
    return
  end
  self._done = true
  self._result, self._err, self._meta = result, err, meta
  local on_done = self._on_done
  if on_done then
    self._schedule(function() on_done(result, err, meta) end)
  end
end

--- Whether the call is over (finished, failed or cancelled).
---@return boolean
function Handle:is_done()
  return self._done
end

--- Ends this call if it is still running: its transfer stops (that
-- connection is closed) or its wait before a retry ends, and its callback
-- gets a connection_error with code CANCELLED (retryable = false).
-- Returns true if the call was running. Other calls go on.
---@return boolean
function Handle:cancel()
  if self._done then
    return false
  end
  local t = self._transport
  if t and t.abandon then
    t:abandon(self._co)
  end
  local err = core.transport_error(self.method, self.path, "CANCELLED",
                                   "the request was cancelled (handle:cancel())",
                                   { secret = self._secret, request_sent = true })
  err.retryable = false
  self._cancelled = true
  self:_finish(nil, err)
  return true
end

--- Waits for the call, running the host's loop (Neovim: vim.wait, which
-- keeps timers and callbacks going but not typing) at most `timeout_ms`
-- milliseconds (default: no limit). Returns the result, or nil and the
-- error object (and, for a call with the meta option, its metadata third);
-- on timeout nil and a timeout_error with code WAIT_TIMEOUT, and the call
-- goes on.
---@param timeout_ms? number
---@return any result
---@return onecli.Error? err
function Handle:wait(timeout_ms)
  if timeout_ms ~= nil and (type(timeout_ms) ~= "number" or timeout_ms ~= timeout_ms or timeout_ms < 0) then
    error("onecli: handle:wait: timeout_ms must be a number >= 0", 2)
  end
  if not self._done then
    local t = self._transport
    if not (t and t.wait_until) then
      error("onecli: handle:wait: the transport cannot wait (no wait_until)", 2)
    end
    t:wait_until(timeout_ms and floor(timeout_ms) or nil, function() return self._done end)
  end
  if not self._done then
    local err = core.transport_error(self.method, self.path, "OPERATION_TIMEDOUT",
      ("handle:wait(%d): the call did not finish in time; it goes on (handle:cancel() ends it)")
        :format(floor(timeout_ms)), { secret = self._secret, request_sent = true })
    err.code = "WAIT_TIMEOUT"
    err.retryable = false
    return nil, err
  end
  return self._result, self._err, self._meta
end

--- Starts work() (which returns result, err) in a coroutine of its own
-- and returns its handle; on_done(result, err) runs once when the call is
-- over, through `schedule`. `transport` is the one the call uses.
function _M.start(spec, work, on_done)
  local self = setmetatable({
    method = spec.method,
    path = spec.path,
    _secret = spec.secret,
    _transport = spec.transport,
    _schedule = spec.schedule,
    _on_done = on_done,
    _done = false,
  }, Handle)
  local co = co_create(function()
    local result, err, meta = work()
    self:_finish(result, err, meta)
  end)
  self._co = co
  -- a bug or a transport misuse: still an error object for the callback
  -- (an error raised by the callback itself is raised, not hidden)
  _M.own(co, function(msg)
    if self._done then
      error(msg, 0)
    end
    self:_finish(nil, core.transport_error(spec.method, spec.path, "CALLBACK",
                                           tostring(msg), {}))
  end)
  _M.resume(co)
  return self
end

_M.Handle = Handle

return _M
