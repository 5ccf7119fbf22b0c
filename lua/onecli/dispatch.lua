--- Calls with a callback, for asynchronous transports.
--
-- A transport may suspend the running coroutine inside request() (the
-- Neovim transport does). Such a transport sets `async = true` and may
-- provide `sleep(seconds)` (also suspending) and `schedule(fn)` (to run
-- callbacks on the host's main loop). Then a call made with the per-call
-- option `callback = function(result, err) end` runs in a coroutine of
-- its own and returns at once; a call made from inside a coroutine simply
-- waits there. Without a callback, a call goes straight to the pipeline.

local core = require("onecli.core")

local error, pcall, tostring = error, pcall, tostring
local coroutine = coroutine

local _M = { _VERSION = core._VERSION }

local Client = {}   -- methods; onecli.client copies them into its class
_M.methods = Client

function Client:_dispatch(method, path, body, query, opts, ep, fallback_path)
  local callback = opts.callback
  if callback == nil then
    return self:_send(method, path, body, query, opts, ep, fallback_path)
  end
  local schedule = self._schedule
  local co = coroutine.create(function()
    local ok, result, err = pcall(self._perform, self, method, path, body, query, opts, ep,
                                  fallback_path)
    if not ok then     -- a bug or a transport misuse: still report it as an error object
      err = core.transport_error(method, path, "CALLBACK", tostring(result), {})
      result = nil
    end
    schedule(function() callback(result, err) end)
  end)
  local ok, msg = coroutine.resume(co)
  if not ok then
    error(msg, 0)
  end
  return co
end

return _M
