--- A non-blocking transport for Neovim (0.7+), driven by vim.loop.
--
--   local nvim = require("onecli.transport.nvim")
--   local client = nvim.client{ url = "http://127.0.0.1:10254" }
--
--   -- returns at once; the callback runs later on the main loop
--   client.agents:list({ callback = function(agents, err)
--     if err then vim.notify(tostring(err), vim.log.levels.ERROR) return end
--     print(#agents .. " agents")
--   end })
--
--   -- or straight-line code in a coroutine: each call waits without
--   -- blocking the editor
--   nvim.run(function()
--     local agents = client.agents:list()
--   end)
--
-- The transfers run in a libcurl multi handle of the C core
-- (core.new_multi), so TLS, keep-alive and timeouts are libcurl's. One
-- vim.loop timer drives it while transfers are in flight (at the
-- interval libcurl asks for, between 1 ms and `poll_interval`) and is
-- closed when nothing is pending. request() and sleep() suspend the
-- running coroutine; it is resumed through vim.schedule, so the code
-- after a call runs on the main loop, where the whole vim API may be
-- used (never in a fast libuv callback).
--
-- Yielding across pcall needs LuaJIT (what Neovim is built with on
-- every common platform) or Lua 5.2+.

-- luacheck: globals vim

local core = require("onecli.core")

local error, type, pairs, ipairs, next, tostring, setmetatable, select, pcall, xpcall =
      error, type, pairs, ipairs, next, tostring, setmetatable, select, pcall, xpcall
local unpack = unpack or table.unpack
local co_create, co_resume, co_running, co_yield, co_status, co_isyieldable =
      coroutine.create, coroutine.resume, coroutine.running, coroutine.yield,
      coroutine.status, coroutine.isyieldable
local floor, max, min = math.floor, math.max, math.min
local fmt = string.format
local traceback = debug.traceback

local _M = { _VERSION = core._VERSION }

local MIN_POLL_MS = 1
local DEFAULT_POLL_MS = 50
-- the first polls after a transfer starts or ends come quickly (a local
-- answer takes a few ms), then the interval grows up to poll_interval
local FIRST_POLL_MS = 2
local POLL_GROWTH = 1.5

-- option name -> expected type
local OPTIONS = {
  timeout = "number", connect_timeout = "number", ca_file = "string",
  insecure = "boolean", user_agent = "string", max_response_size = "number",
  poll_interval = "number",
}

-- new_multi takes these (poll_interval is ours)
local MULTI_OPTIONS = {
  timeout = true, connect_timeout = true, ca_file = true, insecure = true,
  user_agent = true, max_response_size = true,
}

local NOT_IN_COROUTINE = "onecli.transport.nvim: a call through the Neovim transport must run "
  .. "inside a coroutine: pass a `callback` option (client.agents:list{ callback = "
  .. "function(agents, err) ... end }) or wrap the code in "
  .. "require(\"onecli.transport.nvim\").run(function() ... end)"

local function uv()
  return vim.loop
end

-- The running coroutine if it may yield, else nil.
local function current_coroutine()
  local co, is_main = co_running()
  if co == nil or is_main then
    return nil
  end
  if co_isyieldable and not co_isyieldable() then
    return nil
  end
  return co
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Resumes a suspended coroutine on the main loop. Errors inside it are
-- its owner's business (run() and the client's callback path catch
-- their own); anything that still escapes is reported, never lost.
local function resume_later(co, ...)
  local args = pack(...)
  vim.schedule(function()
    if co_status(co) ~= "suspended" then
      return
    end
    local ok, err = co_resume(co, unpack(args, 1, args.n))
    if not ok then
      error(type(err) == "string" and traceback(co, err) or tostring(err), 0)
    end
  end)
end

local function check_options(opts)
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then
      return fmt("unknown option '%s'", tostring(k))
    end
    if type(v) ~= want then
      return fmt("option '%s' must be a %s, got %s", k, want, type(v))
    end
  end
  for _, k in ipairs({ "timeout", "connect_timeout", "poll_interval" }) do
    if opts[k] and opts[k] <= 0 then
      return fmt("option '%s' must be a positive number", k)
    end
  end
  if opts.insecure and opts.ca_file then
    return "ca_file and insecure = true contradict each other"
  end
  return nil
end

---------------------------------------------------------------------------
-- the transport

local Transport = {}
Transport.__index = Transport
Transport.__name = "onecli.transport.nvim"

function Transport.__tostring(self)
  return fmt("onecli.transport.nvim (%d pending%s)", self:pending(),
             self._closed and ", closed" or "")
end

--- How many transfers are in flight.
function Transport:pending()
  local n = 0
  for _ in pairs(self._waiting) do
    n = n + 1
  end
  return n
end

-- Stops and releases the timer.
function Transport:_stop_timer()
  local timer = self._timer
  if timer then
    self._timer = nil
    timer:stop()
    if not timer:is_closing() then
      timer:close()
    end
  end
end

-- (Re)arms the timer to drive the multi handle in `ms` milliseconds.
function Transport:_arm(ms)
  local timer = self._timer
  if not timer then
    timer = uv().new_timer()
    self._timer = timer
  end
  timer:stop()
  timer:start(ms, 0, self._tick)
end

-- Hands every finished transfer back to its coroutine. Returns how many.
function Transport:_collect()
  local m, waiting = self._multi, self._waiting
  local n = 0
  while true do
    local done = m:collect()
    if done == nil then
      break
    end
    -- one result per call, or a list of them
    local list = done.id ~= nil and { done } or done
    if list[1] == nil then
      break
    end
    for i = 1, #list do
      local d = list[i]
      local w = waiting[d.id]
      if w then
        waiting[d.id] = nil
        n = n + 1
        if d.err ~= nil or d.status == nil then
          local err = d.err
          if not core.is_error(err) then
            err = core.transport_error(w.method, w.path, "TRANSPORT",
                                       tostring(err or "the transfer failed"),
                                       { secret = w.secret })
          end
          resume_later(w.co, nil, err)
        elseif d.value ~= nil then      -- decoded from libcurl's buffer (req.decode)
          resume_later(w.co, d.status, d.headers or {}, nil, d.value)
        else
          resume_later(w.co, d.status, d.headers or {}, d.body or "")
        end
      end
    end
  end
  return n
end

-- One turn of the loop: let libcurl work, deliver what finished, and
-- decide when to come back. Runs in a fast libuv callback: no vim API
-- here except vim.schedule.
function Transport:_drive()
  if self._closed then
    return
  end
  local m = self._multi
  local ok, err = pcall(m.perform, m)
  if ok then
    local finished
    ok, finished = pcall(self._collect, self)
    if not ok then
      err = finished
    elseif finished > 0 then
      self._interval = FIRST_POLL_MS
    end
  end
  if not ok then
    -- the multi handle itself failed: fail everything in flight
    self:_fail_all("MULTI", "the libcurl multi driver failed: " .. tostring(err))
    self:_stop_timer()
    return
  end
  if next(self._waiting) == nil then
    self:_stop_timer()       -- idle: no timer keeps the loop busy
    return
  end
  local hint = m:timeout()
  local ms = self._interval
  self._interval = min(self._max_poll, floor(ms * POLL_GROWTH + 0.5))
  if type(hint) == "number" and hint >= 0 then
    ms = min(ms, hint)
  end
  self:_arm(max(MIN_POLL_MS, min(self._max_poll, floor(ms))))
end

-- A transport error that retrying cannot help (the transport is closed).
local function final_error(method, path, code, message, secret)
  local err = core.transport_error(method, path, code, message, { secret = secret })
  err.retryable = false
  return err
end

-- Resumes every waiting coroutine with a transport error.
function Transport:_fail_all(code, message)
  local waiting = self._waiting
  self._waiting = {}
  for id, w in pairs(waiting) do
    if not self._closed then
      pcall(self._multi.cancel, self._multi, id)
    end
    resume_later(w.co, nil, final_error(w.method, w.path, code, message, w.secret))
  end
end

--- Sends one request: adds the transfer to the multi handle, suspends
-- the running coroutine, and returns (once resumed) status, headers,
-- body or nil, err. Raises when not called from a coroutine.
function Transport:request(req)
  if type(req) ~= "table" then
    error("onecli.transport.nvim: request: the request must be a table", 2)
  end
  local co = current_coroutine()
  if not co then
    error(NOT_IN_COROUTINE, 0)
  end
  if self._closed then
    return nil, final_error(req.method, req.path, "CLOSED", "the Neovim transport was closed",
                            req.secret)
  end
  local m = self._multi
  local ok, id, err = pcall(m.add, m, req)
  if not ok or id == nil then
    err = ok and err or id
    if not core.is_error(err) then
      err = core.transport_error(req.method, req.path, "TRANSPORT",
                                 tostring(err or "could not start the transfer"),
                                 { secret = req.secret })
    end
    return nil, err
  end
  self._waiting[id] = { co = co, method = req.method, path = req.path, secret = req.secret }
  self._interval = FIRST_POLL_MS
  self:_arm(0)
  return co_yield()
end

--- Cancels every transfer in flight (their calls fail with a
-- connection_error, code CANCELLED) and releases the multi handle and
-- the timer. Idempotent.
function Transport:close()
  if self._closed then
    return
  end
  self:_fail_all("CANCELLED", "the request was cancelled: the Neovim transport was closed")
  self._closed = true
  self:_stop_timer()
  self._multi:close()
end

--- Creates a transport. Options (all optional): timeout, connect_timeout
-- (seconds; a client's per-call values take precedence), ca_file,
-- insecure, user_agent (the full User-Agent), max_response_size (bytes),
-- poll_interval (the longest wait between two polls, ms; default 50).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli.transport.nvim.new: options must be a table", 2)
  end
  local msg = check_options(opts)
  if msg then
    error("onecli.transport.nvim.new: " .. msg, 2)
  end
  if type(vim) ~= "table" or vim.loop == nil then
    error("onecli.transport.nvim.new: needs Neovim (vim.loop)", 2)
  end
  if type(core.new_multi) ~= "function" then
    error("onecli.transport.nvim.new: this build of onecli.core has no libcurl multi "
          .. "driver (core.new_multi); rebuild the C core", 2)
  end
  local multi_opts = {}
  for k, v in pairs(opts) do
    if MULTI_OPTIONS[k] then
      multi_opts[k] = v
    end
  end
  local self = setmetatable({
    async = true,
    schedule = vim.schedule,
    _multi = core.new_multi(multi_opts),
    _waiting = {},
    _max_poll = max(MIN_POLL_MS, floor(opts.poll_interval or DEFAULT_POLL_MS)),
    _interval = FIRST_POLL_MS,
    _closed = false,
  }, Transport)
  -- plain functions, as the client calls them: sleep(seconds) (also
  -- transport:sleep(seconds)), and the timer's callback
  self.sleep = function(a, b)
    if a == self then
      a = b
    end
    return _M.sleep(a)
  end
  self._tick = function()
    self:_drive()
  end
  return self
end

--- Suspends the running coroutine for `seconds` on a vim.loop timer
-- (the retry loop's sleep). Raises when not called from a coroutine.
function _M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("onecli.transport.nvim.sleep: seconds must be a number", 2)
  end
  local co = current_coroutine()
  if not co then
    error(NOT_IN_COROUTINE, 2)
  end
  local timer = uv().new_timer()
  timer:start(max(0, floor(seconds * 1000 + 0.5)), 0, function()
    timer:stop()
    timer:close()
    resume_later(co)
  end)
  co_yield()
end

--- Runs fn(...) in a coroutine of its own, so that calls through the
-- Neovim transport inside it wait without blocking. Starts at once and
-- returns the coroutine. When fn finishes, done(true, results...) or
-- done(false, err) is called if given; without `done` an error in fn is
-- raised on the main loop (shown as a Neovim error message).
function _M.run(fn, done, ...)
  if type(fn) ~= "function" then
    error("onecli.transport.nvim.run: fn must be a function", 2)
  end
  if done ~= nil and type(done) ~= "function" then
    error("onecli.transport.nvim.run: done must be a function", 2)
  end
  local args = pack(...)
  local co
  co = co_create(function()
    local res = pack(xpcall(function() return fn(unpack(args, 1, args.n)) end, function(e)
      if type(e) == "string" then
        return traceback(e, 2)
      end
      return e
    end))
    if done then
      done(unpack(res, 1, res.n))
    elseif not res[1] then
      local e = res[2]
      vim.schedule(function()
        error("onecli.transport.nvim.run: " .. tostring(e), 0)
      end)
    end
  end)
  local ok, err = co_resume(co)
  if not ok then      -- only a failing `done` can get here
    error(err, 0)
  end
  return co
end

-- client options that also configure the transport
local SHARED_OPTIONS = { timeout = true, connect_timeout = true, ca_file = true, insecure = true }

--- A client (onecli.new) whose transport is a new Neovim transport. Takes
-- the options of onecli.new (README "Configuration"), except transport,
-- plus `poll_interval`.
function _M.client(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli.transport.nvim.client: options must be a table", 2)
  end
  if opts.transport ~= nil then
    error("onecli.transport.nvim.client: the transport is the Neovim one; "
          .. "use onecli.new for another", 2)
  end
  local client_opts, transport_opts = {}, {}
  for k, v in pairs(opts) do
    if k == "poll_interval" then
      transport_opts[k] = v
    else
      client_opts[k] = v
      if SHARED_OPTIONS[k] then
        transport_opts[k] = v
      end
    end
  end
  if type(opts.user_agent) == "string" then
    transport_opts.user_agent = core.user_agent .. " " .. opts.user_agent
  end
  local ok, transport = pcall(_M.new, transport_opts)
  if not ok then
    error((tostring(transport):gsub("^onecli%.transport%.nvim%.new:",
                                    "onecli.transport.nvim.client:")), 2)
  end
  client_opts.transport = transport
  local onecli = require("onecli")
  local made, client = pcall(onecli.new, client_opts)
  if not made then
    transport:close()
    error(client, 2)
  end
  return client
end

return _M
