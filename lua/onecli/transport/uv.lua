--- A non-blocking transport for any libuv loop driven from Lua through
-- luv: Neovim's vim.loop (onecli.transport.nvim wraps this module), or a
-- plain `luv` loop in lua5.1-5.4 and LuaJIT.
--
--   local uvt = require("onecli.transport.uv")
--   local client = uvt.client{ url = "http://127.0.0.1:10254" }   -- require("luv")
--   client.agents:list({ callback = function(agents, err) ... end })
--   uvt.run(function()
--     local agents = client.agents:list()     -- waits without blocking the loop
--   end)
--   require("luv").run()                       -- the host's loop
--
-- The transfers run in a libcurl multi handle of the C core
-- (core.new_multi{ sockets = true }). libcurl says which sockets it cares
-- about and when its timer is due (CURLMOPT_SOCKETFUNCTION and
-- CURLMOPT_TIMERFUNCTION, read through multi:socket_events()); this
-- module watches exactly those sockets with uv poll handles and keeps one
-- uv timer for libcurl's timeouts. A poll callback hands the ready socket
-- to multi:socket_action(), so an answer is taken in as soon as it
-- arrives. While nothing is in flight no handle of the transport is
-- active.
--
-- request() and sleep() suspend the running coroutine. Results are handed
-- back through the host's `schedule` (vim.schedule in Neovim; here a uv
-- idle handle, active only while something is queued), never from inside
-- a libuv callback.
--
-- Yielding across pcall needs LuaJIT or Lua 5.2+.

local core = require("onecli.core")
local handle = require("onecli.handle")

local error, type, pairs, ipairs, next, tostring, setmetatable, select, pcall, xpcall =
      error, type, pairs, ipairs, next, tostring, setmetatable, select, pcall, xpcall
local unpack = unpack or table.unpack   -- luacheck: ignore 143
local co_create, co_running, co_yield, co_isyieldable =
      coroutine.create, coroutine.running, coroutine.yield, coroutine.isyieldable
local floor, max = math.floor, math.max
local fmt = string.format
local traceback = debug.traceback

local _M = { _VERSION = core._VERSION }

-- option name -> expected type
local OPTIONS = {
  timeout = "number", connect_timeout = "number", ca_file = "string",
  insecure = "boolean", user_agent = "string", max_response_size = "number",
  loop = "table", schedule = "function", proxy = "string",
}

-- new_multi takes these
local MULTI_OPTIONS = {
  timeout = true, connect_timeout = true, ca_file = true, insecure = true,
  user_agent = true, max_response_size = true, proxy = true,
}

-- A day, the longest wait() without a limit.
local FOREVER_MS = 86400000

local function pack(...)
  return { n = select("#", ...), ... }
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
_M.current_coroutine = current_coroutine

local function not_in_coroutine(name, module)
  return fmt("%s: a call through the %s transport must run inside a coroutine: pass a "
    .. "`callback` option (client.agents:list{ callback = function(agents, err) ... end }) "
    .. "or wrap the code in require(%q).run(function() ... end)", module, name, module)
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
  for _, k in ipairs({ "timeout", "connect_timeout" }) do
    if opts[k] and opts[k] <= 0 then
      return fmt("option '%s' must be a positive number", k)
    end
  end
  if opts.insecure and opts.ca_file then
    return "ca_file and insecure = true contradict each other"
  end
  return nil
end

-- A transport error that retrying cannot help.
local function final_error(method, path, code, message, secret, sent)
  local err = core.transport_error(method, path, code, message,
                                   { secret = secret, request_sent = sent })
  err.retryable = false
  return err
end
_M.final_error = final_error

---------------------------------------------------------------------------
-- the host: a luv loop, a way to run code soon on the main loop, a way to
-- wait

---@class onecli.uv.Host
---@field uv table           the luv module (vim.loop, require("luv"))
---@field schedule fun(fn: function)   runs fn soon, outside libuv callbacks
---@field wait fun(ms: number, done: fun(): boolean): boolean  runs the loop until done() or ms
---@field name string        for messages ("Neovim", "luv")
---@field module string      the module users require, for messages

-- libuv counts a timer from the loop's cached time, which is only
-- refreshed when the loop runs: after blocking work (a plain Lua script
-- that did other things for a while) a timer started with a stale time
-- fires early, by however long the loop did not run: a handle:wait(500)
-- would time out at once, a retry's sleep would be cut short. Every timer
-- here is started from the time now.
local function fresh_now(uv)
  if uv.update_time then
    uv.update_time()
  end
end
_M.fresh_now = fresh_now

-- A scheduler over a uv idle handle: fn runs on the next turn of the
-- loop; the handle exists only while something is queued.
local function idle_scheduler(uv)
  local queue, idle = {}, nil
  -- the handle is closed once the queue is empty: nothing is left open for
  -- luv to close when the state goes away
  local function drain()
    local q = queue
    queue = {}
    idle:stop()
    idle:close()
    idle = nil
    for i = 1, #q do
      local ok, err = xpcall(q[i], traceback)
      if not ok then
        io.stderr:write("onecli.transport.uv: a scheduled function failed: ", tostring(err), "\n")
      end
    end
  end
  return function(fn)
    queue[#queue + 1] = fn
    if idle == nil then
      idle = uv.new_idle()
      idle:start(drain)
    end
  end
end

-- Runs the loop until done() or ms milliseconds: true if done().
local function luv_waiter(uv)
  return function(ms, done)
    if done() then
      return true
    end
    local expired = false
    local timer = uv.new_timer()
    fresh_now(uv)
    timer:start(ms, 0, function() expired = true end)
    while not done() and not expired do
      uv.run("once")
    end
    timer:stop()
    timer:close()
    return done()
  end
end

--- The host for a plain luv loop: `loop` (default require("luv")),
-- `schedule` (default: a uv idle handle).
function _M.luv_host(loop, schedule)
  local uv = loop or require("luv")
  return {
    uv = uv,
    schedule = schedule or idle_scheduler(uv),
    wait = luv_waiter(uv),
    name = "luv",
    module = "onecli.transport.uv",
  }
end

---------------------------------------------------------------------------
-- the transport

---@class onecli.uv.Transport
---@field async boolean   true: calls suspend the running coroutine
local Transport = {}
Transport.__index = Transport
Transport.__name = "onecli.transport.uv"

function Transport.__tostring(self)
  return fmt("%s (%d pending, %d sockets watched%s)", self._label, self:pending(),
             self:watched(), self._closed and ", closed" or "")
end

--- How many transfers are in flight.
function Transport:pending()
  local n = 0
  for _ in pairs(self._waiting) do
    n = n + 1
  end
  return n
end

--- How many sockets the transport watches now (poll handles).
function Transport:watched()
  local n = 0
  for _ in pairs(self._polls) do
    n = n + 1
  end
  return n
end

--- The uv handles the transport owns now (poll handles and its timer),
-- for checks such as "nothing is active while idle".
function Transport:handles()
  local list = {}
  for _, p in pairs(self._polls) do
    list[#list + 1] = p
  end
  if self._timer then
    list[#list + 1] = self._timer
  end
  if self._sleepers then
    for t in pairs(self._sleepers) do
      list[#list + 1] = t
    end
  end
  return list
end

local function close_handle(h)
  if h:is_active() then
    h:stop()
  end
  if not h:is_closing() then
    h:close()
  end
end

-- Stops watching fd.
function Transport:_unwatch(fd)
  local p = self._polls[fd]
  if p then
    self._polls[fd] = nil
    close_handle(p)
  end
end

-- Applies what libcurl asked for since the last look: sockets to watch
-- or to forget, and its timer.
function Transport:_sync()
  local changes, timer_ms, reset = self._multi:socket_events()
  if reset then
    for fd in pairs(self._polls) do
      self:_unwatch(fd)
    end
  end
  local uv, polls = self._uv, self._polls
  for i = 1, #changes, 2 do
    local fd, what = changes[i], changes[i + 1]
    if what == "remove" then
      self:_unwatch(fd)
    else
      local p = polls[fd]
      if p == nil then
        p = uv.new_socket_poll(fd)
        polls[fd] = p
      end
      p:start(what, function(err, events)
        self:_action(fd, err and "e" or events)
      end)
    end
  end
  if timer_ms ~= nil then
    local timer = self._timer
    if timer_ms < 0 then
      if timer then
        timer:stop()
      end
    else
      if not timer then
        timer = uv.new_timer()
        self._timer = timer
      end
      timer:stop()
      fresh_now(uv)
      timer:start(timer_ms, 0, self._on_timer)
    end
  end
end

-- libcurl's turn: a socket is ready (fd, events) or its timer fired (no
-- fd). Runs in a libuv callback: nothing here but the multi handle and
-- `schedule`.
function Transport:_action(fd, events)
  if self._closed then
    return
  end
  local m = self._multi
  local ok, err = pcall(m.socket_action, m, fd, events)
  if ok then
    ok, err = pcall(self._sync, self)
  end
  if ok then
    ok, err = pcall(self._collect, self)
  end
  if not ok then
    -- the multi handle itself failed: fail everything in flight
    self:_fail_all("MULTI", "the libcurl multi driver failed: " .. tostring(err))
  end
  self:_idle_check()
end

-- Nothing in flight: the timer is closed (libcurl removes its sockets
-- itself when their transfers end), so an idle transport holds no handle.
function Transport:_idle_check()
  local timer = self._timer
  if timer and next(self._waiting) == nil then
    self._timer = nil
    close_handle(timer)
  end
end

-- Hands a result to a waiting coroutine on the host's main loop.
function Transport:_resume(w, ...)
  local co, args = w.co, pack(...)
  self._schedule(function()
    if w.abandoned or self._abandoned[co] then
      return
    end
    handle.resume(co, unpack(args, 1, args.n))
  end)
end

-- Hands every finished transfer back to its coroutine.
function Transport:_collect()
  local done = self._multi:collect()
  local waiting = self._waiting
  for i = 1, #done do
    local d = done[i]
    local w = waiting[d.id]
    if w then
      waiting[d.id] = nil
      self._by_co[w.co] = nil
      if d.err ~= nil or d.status == nil then
        local err = d.err
        if not core.is_error(err) then
          err = core.transport_error(w.method, w.path, "TRANSPORT",
                                     tostring(err or "the transfer failed"),
                                     { secret = w.secret })
        end
        self:_resume(w, nil, err)
      elseif d.value ~= nil then      -- decoded from libcurl's buffer (req.decode)
        self:_resume(w, d.status, d.headers or {}, nil, d.value)
      else
        self:_resume(w, d.status, d.headers or {}, d.body or "")
      end
    end
  end
end

-- Resumes every waiting coroutine with a transport error.
function Transport:_fail_all(code, message)
  local waiting = self._waiting
  self._waiting, self._by_co = {}, setmetatable({}, { __mode = "k" })
  for id, w in pairs(waiting) do
    if not self._closed then
      pcall(self._multi.cancel, self._multi, id)
    end
    self:_resume(w, nil, final_error(w.method, w.path, code, message, w.secret, true))
  end
  if not self._closed then
    pcall(self._sync, self)
  end
end

--- Sends one request: adds the transfer to the multi handle, suspends
-- the running coroutine, and returns (once resumed) status, headers,
-- body or nil, err. Raises when not called from a coroutine.
function Transport:request(req)
  if type(req) ~= "table" then
    error(self._module .. ": request: the request must be a table", 2)
  end
  local co = current_coroutine()
  if not co then
    error(not_in_coroutine(self._host_name, self._module), 0)
  end
  if self._abandoned[co] then     -- cancelled between two attempts: nothing goes out
    co_yield()
  end
  if self._closed then
    return nil, final_error(req.method, req.path, "CLOSED",
                            "the " .. self._host_name .. " transport was closed", req.secret)
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
  local w = { co = co, id = id, method = req.method, path = req.path, secret = req.secret }
  self._waiting[id] = w
  self._by_co[co] = w
  local synced, why = pcall(self._sync, self)
  if not synced then
    self._waiting[id], self._by_co[co] = nil, nil
    pcall(m.cancel, m, id)
    return nil, core.transport_error(req.method, req.path, "MULTI", tostring(why),
                                     { secret = req.secret })
  end
  return co_yield()
end

--- Suspends the running coroutine for `seconds` on a uv timer.
function Transport:sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error(self._module .. ".sleep: seconds must be a number", 2)
  end
  local co = current_coroutine()
  if not co then
    error(not_in_coroutine(self._host_name, self._module), 2)
  end
  if self._abandoned[co] then
    co_yield()
  end
  local timer = self._uv.new_timer()
  local w = { co = co, timer = timer }
  self._sleepers[timer] = w
  self._by_co[co] = w
  fresh_now(self._uv)
  timer:start(max(0, floor(seconds * 1000 + 0.5)), 0, function()
    self._sleepers[timer] = nil
    if self._by_co[co] == w then
      self._by_co[co] = nil
    end
    close_handle(timer)
    self:_resume(w)
  end)
  co_yield()
end

--- Stops what the coroutine `co` waits for in this transport (its
-- transfer, which closes that connection, or its sleep) and never resumes
-- it again (a request or a sleep it makes later suspends it for good).
-- Returns true if co was waiting here. Handles (onecli.handle) call it to
-- cancel one call.
function Transport:abandon(co)
  self._abandoned[co] = true
  local w = self._by_co[co]
  if w == nil then
    return false
  end
  self._by_co[co] = nil
  w.abandoned = true
  if w.timer then
    self._sleepers[w.timer] = nil
    close_handle(w.timer)
  else
    self._waiting[w.id] = nil
    if not self._closed then
      pcall(self._multi.cancel, self._multi, w.id)
      pcall(self._sync, self)
      self:_idle_check()
    end
  end
  return true
end

--- Runs the host's loop until done() returns true or `ms` milliseconds
-- have passed (Neovim: vim.wait). Returns whether done() is true.
function Transport:wait_until(ms, done)
  return self._wait(ms or FOREVER_MS, done)
end

--- Cancels every transfer in flight (their calls fail with a
-- connection_error, code CANCELLED) and releases the multi handle and
-- every uv handle. Idempotent.
function Transport:close()
  if self._closed then
    return
  end
  self:_fail_all("CANCELLED", "the request was cancelled: the " .. self._host_name
                 .. " transport was closed")
  for timer, w in pairs(self._sleepers) do
    self._sleepers[timer] = nil
    close_handle(timer)
    self:_resume(w)      -- the retry loop goes on and finds the transport closed
  end
  self._closed = true
  for fd in pairs(self._polls) do
    self:_unwatch(fd)
  end
  if self._timer then
    close_handle(self._timer)
    self._timer = nil
  end
  self._multi:close()
end

--- Creates a transport on `host` (see luv_host; onecli.transport.nvim
-- passes Neovim's). Options: timeout, connect_timeout (seconds; a
-- client's per-call values take precedence), ca_file, insecure,
-- user_agent (the full User-Agent), max_response_size (bytes), proxy
-- (an http(s):// URL every request goes through: onecli.agent).
---@return onecli.uv.Transport
function _M.with_host(host, opts, level)
  level = (level or 1) + 1
  opts = opts or {}
  if type(opts) ~= "table" then
    error(host.module .. ".new: options must be a table", level)
  end
  local msg = check_options(opts)
  if msg then
    error(host.module .. ".new: " .. msg, level)
  end
  if type(core.new_multi) ~= "function" then
    error(host.module .. ".new: this build of onecli.core has no libcurl multi "
          .. "driver (core.new_multi); rebuild the C core", level)
  end
  local multi_opts = { sockets = true }
  for k, v in pairs(opts) do
    if MULTI_OPTIONS[k] then
      multi_opts[k] = v
    end
  end
  local self = setmetatable({
    async = true,
    schedule = host.schedule,
    _schedule = host.schedule,
    _wait = host.wait,
    _uv = host.uv,
    _host = host,
    _options = opts,
    _host_name = host.name,
    _module = host.module,
    _label = host.module,
    _multi = core.new_multi(multi_opts),
    _waiting = {},                                  -- transfer id -> waiter
    _by_co = setmetatable({}, { __mode = "k" }),    -- coroutine -> waiter
    _abandoned = setmetatable({}, { __mode = "k" }), -- coroutine -> true: never resumed
    _sleepers = {},                                 -- timer -> waiter
    _polls = {},                                    -- fd -> uv poll handle
    _closed = false,
  }, Transport)
  -- a plain function, as the client calls it: sleep(seconds) (also
  -- transport:sleep(seconds))
  local sleep = Transport.sleep
  self.sleep = function(a, b)
    if a == self then
      a = b
    end
    return sleep(self, a)
  end
  self._on_timer = function()
    self:_action(nil)
  end
  return self
end

--- A new transport on the same host (loop and schedule), with these
-- options in place of this one's (onecli.agent's, through the gateway:
-- `proxy`, the gateway's `ca_file`, a longer `timeout`). Options as
-- with_host; those not given are this transport's.
---@return onecli.uv.Transport
function Transport:derive(opts)
  if type(opts) ~= "table" then
    error(self._module .. ": derive: options must be a table", 2)
  end
  local merged = {}
  for k, v in pairs(self._options) do
    merged[k] = v
  end
  for k, v in pairs(opts) do
    merged[k] = v
  end
  if opts.ca_file then
    merged.insecure = nil
  end
  return _M.with_host(self._host, merged, 2)
end

--- A transport on a plain luv loop. Options as with_host, plus `loop`
-- (default require("luv")) and `schedule` (default: a uv idle handle).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli.transport.uv.new: options must be a table", 2)
  end
  local rest = {}
  for k, v in pairs(opts) do
    if k ~= "loop" and k ~= "schedule" then
      rest[k] = v
    end
  end
  local msg = check_options(opts)
  if msg then
    error("onecli.transport.uv.new: " .. msg, 2)
  end
  return _M.with_host(_M.luv_host(opts.loop, opts.schedule), rest, 2)
end

--- Runs fn(...) in a coroutine of its own, so that calls through an
-- asynchronous transport inside it wait without blocking. Starts at once
-- and returns the coroutine. When fn finishes, done(true, results...) or
-- done(false, err) is called if given; without `done` an error in fn is
-- raised through `schedule` (in Neovim: shown as an error message).
function _M.run_with(schedule, module, fn, done, ...)
  if type(fn) ~= "function" then
    error(module .. ".run: fn must be a function", 3)
  end
  if done ~= nil and type(done) ~= "function" then
    error(module .. ".run: done must be a function", 3)
  end
  local args = pack(...)
  local finished = false
  -- no xpcall around fn: Lua 5.1 cannot yield across it; an error in fn
  -- reaches the owner below through whoever resumes the coroutine
  local co = co_create(function()
    local res = pack(true, fn(unpack(args, 1, args.n)))
    finished = true
    if done then
      done(unpack(res, 1, res.n))
    end
  end)
  handle.own(co, function(e, dead)
    if finished or not done then   -- `done` itself failed, or nobody to tell
      local msg = type(e) == "string" and traceback(dead, e) or tostring(e)
      if finished then
        error(msg, 0)
      end
      schedule(function() error(module .. ".run: " .. msg, 0) end)
      return
    end
    finished = true
    done(false, type(e) == "string" and traceback(dead, e) or e)
  end)
  handle.resume(co)
  return co
end

local default_host
local function luv_default()
  if default_host == nil then
    default_host = _M.luv_host()
  end
  return default_host
end

--- run() on the default luv loop.
function _M.run(fn, done, ...)
  return _M.run_with(luv_default().schedule, "onecli.transport.uv", fn, done, ...)
end

--- Suspends the running coroutine for `seconds` on a luv timer.
function _M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error("onecli.transport.uv.sleep: seconds must be a number", 2)
  end
  local co = current_coroutine()
  if not co then
    error(not_in_coroutine("luv", "onecli.transport.uv"), 2)
  end
  local host = luv_default()
  local timer = host.uv.new_timer()
  fresh_now(host.uv)
  timer:start(max(0, floor(seconds * 1000 + 0.5)), 0, function()
    close_handle(timer)
    host.schedule(function() handle.resume(co) end)
  end)
  co_yield()
end

-- client options that also configure the transport
local SHARED_OPTIONS = { timeout = true, connect_timeout = true, ca_file = true, insecure = true }

--- A client (onecli.new) over a new transport made by make_transport(
-- transport_opts). Used by client() here and in onecli.transport.nvim.
function _M.client_with(module, make_transport, opts, extra, level)
  level = (level or 1) + 1
  opts = opts or {}
  if type(opts) ~= "table" then
    error(module .. ".client: options must be a table", level)
  end
  if opts.transport ~= nil then
    error(module .. ".client: the transport is made here; use onecli.new for another", level)
  end
  local client_opts, transport_opts = {}, {}
  for k, v in pairs(opts) do
    if extra[k] then
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
  local ok, transport = pcall(make_transport, transport_opts)
  if not ok then
    error((tostring(transport):gsub("^[%w%._]+%.new:", module .. ".client:")), level)
  end
  client_opts.transport = transport
  local onecli = require("onecli")
  local made, client = pcall(onecli.new, client_opts)
  if not made then
    transport:close()
    error(client, level)
  end
  return client
end

--- A client whose transport is a new luv transport. Takes the options of
-- onecli.new, plus `loop` and `schedule`.
function _M.client(opts)
  return _M.client_with("onecli.transport.uv", _M.new, opts,
                        { loop = true, schedule = true }, 2)
end

return _M
