-- Helpers shared by the client specs.
local onecli = require("onecli")

local _M = {}

--- Calls fn(...), expects it to raise an onecli error object, returns it.
function _M.raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  assert(onecli.is_error(err), "expected an error object, got " .. tostring(err))
  return err
end

--- Wraps client c so that every generated-method call records its
-- endpoint name in the set `seen`. Returns c.
function _M.track(c, seen)
  local send = c._send
  c._send = function(self, method, path, body, query, opts, ep)
    if ep and ep.name then seen[ep.name] = true end
    return send(self, method, path, body, query, opts, ep)
  end
  return c
end

--- Names of the endpoints of onecli.endpoints missing from the set `seen`.
function _M.missing(seen)
  local missing = {}
  for _, ep in ipairs(onecli.endpoints) do
    if not seen[ep.name] then missing[#missing + 1] = ep.name end
  end
  return missing
end

--- A client for the stand-in srv that ignores the environment.
function _M.client(srv, opts)
  opts.url = opts.url or srv.url
  opts.getenv = function() end
  return onecli.new(opts)
end

return _M
