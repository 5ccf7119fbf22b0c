--- A non-blocking transport for Neovim (0.7+), driven by vim.loop.
--
--   local nvim = require("onecli.transport.nvim")
--   local client = nvim.client{ url = "http://127.0.0.1:10254" }
--
--   -- returns a handle at once; the callback runs later on the main loop
--   local h = client.agents:list({ callback = function(agents, err)
--     if err then vim.notify(tostring(err), vim.log.levels.ERROR) return end
--     print(#agents .. " agents")
--   end })
--   h:cancel()                  -- that call only; its callback gets code CANCELLED
--   local agents, err = h:wait(2000)   -- or wait for it (vim.wait), at most 2 s
--
--   -- or straight-line code in a coroutine: each call waits without
--   -- blocking the editor
--   nvim.run(function()
--     local agents = client.agents:list()
--   end)
--
-- The transfers run in a libcurl multi handle of the C core, woken by
-- their sockets: onecli.transport.uv watches exactly the sockets libcurl
-- names with vim.loop poll handles, plus one timer for libcurl's
-- timeouts; nothing of it is active while no call is in flight. Results
-- come back through vim.schedule, so the code after a call (and every
-- callback) runs on the main loop, where the whole vim API may be used.
--
-- Yielding across pcall needs LuaJIT (what Neovim is built with on
-- every common platform) or Lua 5.2+.

-- luacheck: globals vim

local core = require("onecli.core")
local uvt = require("onecli.transport.uv")

local error, type = error, type

local _M = { _VERSION = core._VERSION }

local MODULE = "onecli.transport.nvim"

local function host()
  return {
    uv = vim.loop,
    schedule = vim.schedule,
    -- 10 ms: how often vim.wait looks at done() when no event wakes it
    wait = function(ms, done) return (vim.wait(ms, done, 10)) end,
    name = "Neovim",
    module = MODULE,
  }
end

local function in_neovim()
  return type(vim) == "table" and vim.loop ~= nil and type(vim.schedule) == "function"
end

---@class onecli.nvim.TransportOptions
---@field timeout? number           seconds for a whole exchange (a client's per-call value wins)
---@field connect_timeout? number   seconds to connect
---@field ca_file? string           a PEM bundle to verify the server with
---@field insecure? boolean         turn TLS verification off (never by default)
---@field user_agent? string        the full User-Agent
---@field max_response_size? number bytes
---@field proxy? string             every request through this http(s):// proxy

local function check(opts, where)
  if type(opts) == "table" and opts.poll_interval ~= nil then
    error(MODULE .. "." .. where .. ": option 'poll_interval' is gone: the transport is "
          .. "woken by its sockets and needs no polling interval", 3)
  end
  if not in_neovim() then
    error(MODULE .. "." .. where .. ": needs Neovim (vim.loop); in another luv host use "
          .. "onecli.transport.uv", 3)
  end
end

--- Creates a transport (an onecli.uv.Transport on vim.loop).
---@param opts? onecli.nvim.TransportOptions
---@return onecli.uv.Transport
function _M.new(opts)
  check(opts, "new")
  return uvt.with_host(host(), opts, 2)
end

--- Suspends the running coroutine for `seconds` on a vim.loop timer
-- (the retry loop's sleep). Raises when not called from a coroutine.
---@param seconds number
function _M.sleep(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds then
    error(MODULE .. ".sleep: seconds must be a number", 2)
  end
  local co = uvt.current_coroutine()
  if not co then
    error(MODULE .. ": a call through the Neovim transport must run inside a coroutine: "
          .. "pass a `callback` option or wrap the code in require(\"" .. MODULE
          .. "\").run(function() ... end)", 2)
  end
  local timer = vim.loop.new_timer()
  uvt.fresh_now(vim.loop)
  timer:start(math.max(0, math.floor(seconds * 1000 + 0.5)), 0, function()
    timer:close()
    vim.schedule(function() require("onecli.handle").resume(co) end)
  end)
  coroutine.yield()
end

--- Runs fn(...) in a coroutine of its own, so that calls through the
-- Neovim transport inside it wait without blocking. Starts at once and
-- returns the coroutine. When fn finishes, done(true, results...) or
-- done(false, err) is called if given; without `done` an error in fn is
-- raised on the main loop (shown as a Neovim error message).
---@param fn function
---@param done? fun(ok: boolean, ...)
---@return thread
function _M.run(fn, done, ...)
  return uvt.run_with(vim.schedule, MODULE, fn, done, ...)
end

--- A client (onecli.new) whose transport is a new Neovim transport. Takes
-- the options of onecli.new (README "Configuration"), except transport.
---@param opts? onecli.Options
---@return onecli.Client
function _M.client(opts)
  check(opts, "client")
  return uvt.client_with(MODULE, _M.new, opts, {}, 2)
end

return _M
