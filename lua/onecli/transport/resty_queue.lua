--- The OpenResty transport's limit on open connections (its `backlog`
-- option): per nginx worker and per connection pool, at most `size` calls
-- hold a connection at a time; the others wait, first come first served,
-- in a queue of at most `backlog` calls, each for at most the time it is
-- given.
--
-- nginx has such a queue of its own (tcpsock:connect's pool_size and
-- backlog options), but the one of lua-nginx-module 0.10.23 (Debian 12)
-- wakes a single waiting call when several connections come back to the
-- pool in the same event-loop cycle: each of them posts the wake-up of
-- the same first waiter. Under load the pool then works one connection
-- at a time, however large it is (16 calls over a pool of 4, at 200 ms
-- each: 2.9 s instead of 0.8 s). So the limit is kept here, and nginx's
-- pool only keeps the idle connections.
--
-- A slot belongs to the coroutine (light thread) that took it, until it
-- gives it back. A coroutine that can no longer give it back (a light
-- thread killed by ngx.thread.kill, a request aborted) is noticed: the
-- holders are kept in a table with weak keys and counted again before a
-- call waits and while it waits (dead coroutines do not count), and
-- abandon(co) gives back at once what a killed thread held.
--
-- Needs ngx.semaphore (lua-resty-core); available() says whether it is
-- there. luacheck: globals ngx

local type, pairs, pcall, require, setmetatable = type, pairs, pcall, require, setmetatable
local co_running, co_status = coroutine.running, coroutine.status
local min = math.min

local _M = {}

-- A waiting call wakes at least this often to count the holders again.
local RECHECK_SECONDS = 0.5

local semaphore
do
  local ok, mod = pcall(require, "ngx.semaphore")
  if ok and type(mod) == "table" and type(mod.new) == "function" then
    semaphore = mod
  end
end

--- Whether the queue can work here (inside nginx, with lua-resty-core).
function _M.available()
  return semaphore ~= nil
end

local limits = {}      -- pool name -> limit (this worker's)

local function limit_of(name, size, backlog)
  local l = limits[name]
  if l == nil then
    l = {
      size = size, backlog = backlog, busy = 0,
      holders = setmetatable({}, { __mode = "k" }),   -- coroutine -> true
      queue = {}, head = 1, tail = 0,                 -- waiters, first come first
      waiting = 0,                                    -- those still waiting
    }
    limits[name] = l
  end
  return l
end

-- Counts the holders again: those collected or dead no longer count.
local function recount(l)
  local n = 0
  for co in pairs(l.holders) do
    if co_status(co) == "dead" then
      l.holders[co] = nil
    else
      n = n + 1
    end
  end
  l.busy = n
end

-- Hands free slots to the first waiters still waiting.
local function grant(l)
  while l.busy < l.size and l.head <= l.tail do
    local w = l.queue[l.head]
    l.queue[l.head] = nil
    l.head = l.head + 1
    if not w.gone then      -- (one that left was counted out then)
      l.waiting = l.waiting - 1
      if co_status(w.co) == "dead" then
        w.gone = true
      else
        w.granted = true
        l.holders[w.co] = true
        l.busy = l.busy + 1
        w.sema:post(1)
      end
    end
  end
  if l.head > l.tail then
    l.head, l.tail = 1, 0
  end
end

--- Takes a slot of pool `name` for the running coroutine, waiting at most
-- `seconds` (now: a clock in seconds). Returns true; or nil, "full" (the
-- queue has `backlog` calls already) or nil, "timeout". A coroutine that
-- holds a slot already keeps it (true).
function _M.acquire(name, size, backlog, seconds, now)
  local l = limit_of(name, size, backlog)
  local co = co_running()
  if l.holders[co] then
    return true
  end
  if l.busy >= l.size then
    recount(l)
  end
  if l.busy < l.size and l.waiting == 0 then
    l.holders[co] = true
    l.busy = l.busy + 1
    return true
  end
  if l.waiting >= l.backlog then
    return nil, "full"
  end
  local w = { co = co, sema = semaphore.new(0) }
  l.waiting = l.waiting + 1
  l.tail = l.tail + 1
  l.queue[l.tail] = w
  local deadline = now() + seconds
  while true do
    local left = deadline - now()
    if left <= 0 then
      break
    end
    w.sema:wait(min(left, RECHECK_SECONDS))
    if w.granted then
      return true
    end
    recount(l)       -- a holder may have died without giving its slot back
    grant(l)
    if w.granted then
      return true
    end
  end
  w.gone = true      -- (left in the queue: grant() passes over it)
  l.waiting = l.waiting - 1
  return nil, "timeout"
end

--- Gives back the slot of pool `name` held by the running coroutine
-- (or by `co`), and hands it to the first call waiting.
function _M.release(name, co)
  local l = limits[name]
  co = co or co_running()
  if l == nil or not l.holders[co] then
    return
  end
  l.holders[co] = nil
  l.busy = l.busy - 1
  grant(l)
end

--- A light thread killed (ngx.thread.kill) gives back what it held, and
-- leaves the queues it waited in.
function _M.abandon(co)
  for _, l in pairs(limits) do
    if l.holders[co] then
      l.holders[co] = nil
      l.busy = l.busy - 1
    end
    for i = l.head, l.tail do
      local w = l.queue[i]
      if w and w.co == co and not w.gone and not w.granted then
        w.gone = true
        l.waiting = l.waiting - 1
      end
    end
    grant(l)
  end
end

--- For tests: the state of pool `name` (busy, waiting), or nil.
function _M.state(name)
  local l = limits[name]
  if l == nil then
    return nil
  end
  recount(l)
  return { busy = l.busy, waiting = l.waiting, size = l.size, backlog = l.backlog }
end

return _M
