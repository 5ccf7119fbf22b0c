-- Response values produced by the route handlers. The HTTP layer
-- (onecli.standin.http) turns them into bytes with the mode's header set.
--
-- A reply is { status = n, body = string|nil, ctype = string|nil,
--              headers = { {name, value}, ... } (extra headers) }.
local json = require("onecli.standin.json")

local _M = {}

local format = string.format

function _M.json(status, value, headers)
  return { status = status, body = json.encode(value), ctype = "application/json", headers = headers }
end

function _M.ok(value) return _M.json(200, value) end
function _M.created(value) return _M.json(201, value) end
function _M.success() return _M.json(200, json.obj("success", true)) end

function _M.no_content()
  return { status = 204 }
end

-- Shape F: {"error": "<message>"}
function _M.flat(status, message)
  return _M.json(status, json.obj("error", message))
end

-- Shape E: {"error": {"message": ..., "type": ...}}
function _M.envelope(status, message, kind)
  return _M.json(status, json.obj("error", json.obj("message", message, "type", kind)))
end

function _M.not_found(message) return _M.envelope(404, message, "not_found_error") end
function _M.bad_request(message) return _M.envelope(400, message, "invalid_request_error") end
function _M.conflict(message) return _M.envelope(409, message, "invalid_request_error") end
function _M.gone(message) return _M.envelope(410, message, "invalid_request_error") end
function _M.unprocessable(message) return _M.envelope(422, message, "validation_error") end
function _M.unauthorized(message)
  return _M.envelope(401, message or "Invalid API key or token.", "authentication_error")
end

-- An Enterprise router on an unlicensed instance (reference §14.2 rule 1).
function _M.license_required(feature)
  return _M.envelope(403, feature .. " requires a OneCLI Enterprise license.", "enterprise_license_required")
end

function _M.unknown_route(method, path)
  return _M.envelope(404, format("Unrecognized request URL (%s: %s). Please see "
    .. "https://onecli.sh/docs/api-reference for available endpoints.", method, path),
    "invalid_request_error")
end

function _M.redirect(location, headers)
  local h = { { "location", location } }
  for _, extra in ipairs(headers or {}) do h[#h + 1] = extra end
  return { status = 302, headers = h }
end

-- The error type the server uses for a status (reference §5.2).
function _M.type_for_status(status)
  if status == 401 or status == 403 then return "authentication_error" end
  if status == 404 then return "not_found_error" end
  if status == 422 then return "validation_error" end
  if status == 429 then return "rate_limit_error" end
  if status >= 500 then return "api_error" end
  return "invalid_request_error"
end

return _M
