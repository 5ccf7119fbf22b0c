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
--     (the connection could not be made) or the server asked for a retry
--     (429/503 with Retry-After): repeating a POST can create a duplicate
--     secret or rule.

local core = require("onecli.core")

local backoff = core.backoff

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
  local delay = backoff(n, {
    base = policy.base,
    max = policy.max,
    retry_after = err.retry_after,
    max_retry_after = policy.max_retry_after,
  })
  if policy.on_retry then
    policy.on_retry(err, n, delay)
  end
  return delay
end

--- Runs attempt(n) until it succeeds or retrying stops.
-- attempt(n) returns result (success) or nil, err.
-- policy: as for next_delay, plus sleep=function(seconds).
-- Returns result, nil, attempts | nil, err, attempts (err.attempts set).
function _M.run(attempt, policy)
  local n = 0
  while true do
    n = n + 1
    local result, err = attempt(n)
    if err == nil then
      return result, nil, n
    end
    local delay = _M.next_delay(err, n, policy)
    if delay == nil then
      return nil, err, n
    end
    policy.sleep(delay)
  end
end

return _M
