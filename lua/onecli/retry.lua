--- The retry loop, shared by every transport.
--
-- It only decides and waits; the backoff arithmetic is core.backoff (a
-- pure function) and the waiting is the caller's `sleep`, so OpenResty can
-- pass ngx.sleep and an event loop its own.
--
-- What is retried automatically:
--   * an error whose `retryable` is true (408, 429, 500, 502, 503, 504,
--     connection and timeout errors), and
--   * for idempotent requests (GET, HEAD, PUT, DELETE, PATCH, OPTIONS, or an
--     endpoint marked idempotent), that is enough;
--   * a POST is retried only when it provably never reached the server
--     (err.request_sent == false: core.request_sent decided it from what
--     the transport saw) or the server asked for a retry (429/503 with
--     Retry-After): repeating a POST can create a duplicate secret or rule.
--
-- Every send is an attempt: transports do not re-send on their own. A
-- failure on a reused keep-alive connection that closed before answering
-- (err.connection_reused) is retried at once, without backoff, when it may
-- be retried at all; it still counts against max_retries.
--
-- An optional deadline bounds a whole call, attempts and waits together:
-- each attempt's timeouts are cut to what is left, no wait starts that
-- would end past it, and the error that ends the call says so
-- (err.deadline = the deadline in seconds).

local core = require("onecli.core")

local backoff, now = core.backoff, core.now
local min = math.min

local _M = { _VERSION = core._VERSION }

local IDEMPOTENT = {
  GET = true, HEAD = true, PUT = true, DELETE = true, PATCH = true, OPTIONS = true,
}

function _M.is_idempotent(method)
  return IDEMPOTENT[method] == true
end

--- Whether err may be retried automatically for a request of this kind.
function _M.should_retry(err, method, idempotent)
  if not err.retryable then
    return false
  end
  if idempotent == nil then
    idempotent = IDEMPOTENT[method] == true
  end
  if idempotent then
    return true
  end
  if err.status == nil then
    return err.request_sent == false
  end
  return (err.status == 429 or err.status == 503) and err.retry_after ~= nil
end

--- After attempt number n of a call failed with err: the seconds to wait
-- before the next attempt, or nil when the call stops here. Sets
-- err.attempts and calls policy.on_retry. Shared by run() (which sleeps)
-- and the batch driver (which keeps a timer per call instead).
-- policy: { method=, idempotent=?, max_retries=, base=, max=,
--           max_retry_after=, on_retry=function(err, n, delay)? }
function _M.next_delay(err, n, policy)
  err.attempts = n
  if n > (policy.max_retries or 0) or not _M.should_retry(err, policy.method, policy.idempotent) then
    return nil
  end
  local delay
  if err.connection_reused then
    delay = 0
  else
    delay = backoff(n, {
      base = policy.base,
      max = policy.max,
      retry_after = err.retry_after,
      max_retry_after = policy.max_retry_after,
    })
  end
  if policy.expires and now() + delay >= policy.expires then
    err.deadline = policy.deadline      -- the next attempt could not start in time
    return nil
  end
  if policy.on_retry then
    policy.on_retry(err, n, delay)
  end
  return delay
end

--- Starts the deadline of a call (policy.deadline seconds from now), if
-- it has one.
function _M.start(policy)
  if policy.deadline and not policy.expires then
    policy.expires = now() + policy.deadline
  end
  return policy
end

--- The timeouts of the next attempt: policy.timeout and
-- policy.connect_timeout, cut to what is left before the deadline.
-- Returns timeout, connect_timeout, cut (true when the deadline cut
-- them), or nil when no time is left.
function _M.limits(policy)
  local timeout, connect_timeout = policy.timeout, policy.connect_timeout
  if not policy.expires then
    return timeout, connect_timeout, false
  end
  local left = policy.expires - now()
  if left <= 0 then
    return nil
  end
  if timeout == nil or left < timeout then
    return left, min(connect_timeout or left, left), true
  end
  return timeout, connect_timeout and min(connect_timeout, left), false
end

--- The error of a call whose deadline passed before its first attempt
-- (policy.method, policy.path, policy.secret name it). Nothing was sent.
function _M.late_error(policy)
  return core.transport_error(policy.method, policy.path, "OPERATION_TIMEDOUT",
    string.format("the call's deadline of %g s passed before it could start", policy.deadline),
    { request_sent = false, secret = policy.secret })
end

--- After an attempt whose timeouts the deadline cut ended in a timeout:
-- the deadline is why.
function _M.cut_short(err, policy)
  if err.type == "timeout_error" then
    err.deadline = policy.deadline
  end
end

--- Runs attempt(n, timeout, connect_timeout) until it succeeds or
-- retrying stops. attempt returns result (success) or nil, err.
-- policy: as for next_delay, plus sleep=function(seconds), and timeout,
-- connect_timeout, deadline (seconds; optional), and on_attempt=
-- function(n, err, delay)? called after each attempt with its outcome and
-- the retry decision (delay in seconds, or nil: no retry).
-- Returns result, nil, attempts | nil, err, attempts (err.attempts set).
function _M.run(attempt, policy)
  _M.start(policy)
  local n, last = 0, nil
  while true do
    n = n + 1
    local timeout, connect_timeout, cut = _M.limits(policy)
    if timeout == nil then       -- (a sleep overshot, or a batch slot came late)
      local err = last or _M.late_error(policy)
      err.deadline, err.attempts = policy.deadline, last and n - 1 or 1
      return nil, err, n - 1
    end
    local result, err = attempt(n, timeout, connect_timeout)
    if err == nil then
      if policy.on_attempt then
        policy.on_attempt(n, nil, nil)
      end
      return result, nil, n
    end
    if cut then
      _M.cut_short(err, policy)
    end
    local delay = _M.next_delay(err, n, policy)
    if policy.on_attempt then
      policy.on_attempt(n, err, delay)
    end
    if delay == nil then
      return nil, err, n
    end
    last = err
    if delay > 0 then
      policy.sleep(delay)
    end
  end
end

return _M
