--- Calls with a callback, for asynchronous transports.
--
-- A transport may suspend the running coroutine inside request() (the
-- Neovim transport does). Such a transport sets `async = true` and may
-- provide `sleep(seconds)` (also suspending) and `schedule(fn)` (to run
-- callbacks on the host's main loop). Then a call made with the per-call
-- option `callback = function(result, err) end` runs in a coroutine of
-- its own and returns its handle at once (onecli.handle: cancel, wait,
-- is_done); a call made from inside a coroutine simply waits there.
-- Without a callback, a call goes straight to the pipeline.

local core = require("onecli.core")
local handle = require("onecli.handle")

local _M = { _VERSION = core._VERSION }

local Client = {}   -- methods; onecli.client copies them into its class
_M.methods = Client

function Client:_dispatch(method, path, body, query, opts, ep, fallback_path)
  local callback = opts.callback
  if callback == nil then
    return self:_send(method, path, body, query, opts, ep, fallback_path)
  end
  return handle.start({ method = method, path = path, transport = self._transport,
                        schedule = self._schedule },
    function()
      return self:_perform(method, path, body, query, opts, ep, fallback_path)
    end, callback)
end

return _M
