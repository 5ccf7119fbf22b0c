-- The nginx side of spec/resty/resty_spec.lua: location handlers that call
-- the OneCLI stand-in through the cosocket transport and answer JSON.
-- Loaded by nginx (LuaJIT) from the configuration nginx.conf.in; the spec
-- writes onecli_spec_settings.lua (URLs, the key) into the nginx prefix.
-- luacheck: globals ngx
local ngx = ngx

local onecli = require("onecli")
local resty = require("onecli.transport.resty")
local cjson = require("cjson")

local _M = {}

local settings

function _M.init()
  settings = require("onecli_spec_settings")
  resty.configure({ trusted_certificate = settings.cert })
end

local function reply(t, status)
  ngx.status = status or 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function elapsed_since(t0)
  ngx.update_time()
  return ngx.now() - t0
end

local function start()
  ngx.update_time()
  return ngx.now()
end

local function client(extra)
  local opts = { url = settings.url, api_key = settings.api_key, max_retries = 0,
                 getenv = function() end }
  for k, v in pairs(extra or {}) do
    opts[k] = v
  end
  return onecli.new(opts)
end

local function error_fields(err)
  if not onecli.is_error(err) then
    return { raised = tostring(err) }
  end
  return {
    type = err.type, status = err.status, code = err.code, message = err.message,
    retryable = err.retryable, request_sent = err.request_sent, attempts = err.attempts,
    method = err.method, path = err.path, string = tostring(err),
  }
end

-- Calls fn(...) with raise = true semantics; returns the error's fields
-- (or { ok = true, result = ... }).
local function outcome(fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then
    return { ok = true, result = result }
  end
  return error_fields(result)
end

local handlers = {}

-- creates an agent and lists them: the transport the client picked by itself
function handlers.agents(args)
  local c = client()
  local created = c.agents:create({ name = "Agent " .. args.id, identifier = args.id })
  local ids = {}
  for _, a in ipairs(c.agents:list()) do
    ids[#ids + 1] = a.identifier
  end
  local is_resty = getmetatable(c._transport) == resty.Transport
  c:close()
  return { transport = is_resty and "resty" or tostring(c._transport),
           sleep_is_ngx_sleep = c._sleep == ngx.sleep,
           created = created.identifier, identifiers = ids }
end

-- a 404: as a value (raise = false) and as a raised error object
function handlers.not_found()
  local c = client({ raise = false })
  local v, err = c.agents:get("00000000-0000-0000-0000-000000000000")
  local raised = outcome(c.agents.get, c.agents, "00000000-0000-0000-0000-000000000000",
                         { raise = true })
  return { value = v or cjson.null, err = error_fields(err), raised = raised }
end

-- a port nothing listens on; one retry, slept with ngx.sleep
function handlers.refused()
  local c = client({ url = settings.closed_url, max_retries = 1, backoff_base = 0.05 })
  return outcome(c.agents.create, c.agents, { name = "x", identifier = "x" })
end

-- n sequential calls
function handlers.list(args)
  local c = client()
  local n = tonumber(args.n) or 5
  for _ = 1, n do
    c.agents:list()
  end
  return { calls = n }
end

-- list, list, create (a POST: fresh connection), list
function handlers.post_fresh()
  local c = client()
  c.agents:list()
  c.agents:list()
  c.agents:create({ name = "Fresh", identifier = "fresh-" .. ngx.worker.pid() })
  c.agents:list()
  return { ok = true }
end

-- the spec delays GET /v1/secrets on the stand-in
function handlers.slow()
  local c = client({ timeout = 10 })
  local t0 = start()
  local r = outcome(c.secrets.list, c.secrets)
  r.started_at, r.finished_at = t0, start()
  r.pid = ngx.worker.pid()
  r.elapsed = elapsed_since(t0)
  r.result = nil
  return r
end

-- the spec makes GET /v1/agents fail twice with 500
function handlers.retry(args)
  local lines = {}
  local c = client({ max_retries = 2, backoff_base = tonumber(args.base) or 1,
                     log = function(l) lines[#lines + 1] = l end })
  local t0 = start()
  local r = outcome(c.agents.list, c.agents)
  r.started_at, r.finished_at = t0, start()
  r.pid = ngx.worker.pid()
  r.elapsed = elapsed_since(t0)
  r.log = lines
  r.result = nil
  return r
end

-- the spec makes GET /v1/agents hang
function handlers.timeout()
  local c = client({ timeout = 0.5 })
  local t0 = start()
  local r = outcome(c.agents.list, c.agents)
  r.elapsed = elapsed_since(t0)
  return r
end

-- the spec makes POST /v1/agents drop the connection
function handlers.drop()
  local c = client({ max_retries = 2, backoff_base = 0.05 })
  return outcome(c.agents.create, c.agents, { name = "d", identifier = "dropped" })
end

function handlers.user_agent()
  local c = client({ user_agent = "spec/1.0" })
  c.agents:list()
  return { ok = true }
end

-- TLS against openssl s_server with a self-signed certificate
function handlers.tls_untrusted()
  local c = client({ url = settings.tls_url, max_retries = 2 })
  return outcome(c.agents.list, c.agents)
end

function handlers.tls_insecure()
  local c = client({ url = settings.tls_url, insecure = true })
  return outcome(c.agents.list, c.agents)
end

-- (under /tls-trusted/, where lua_ssl_trusted_certificate is the cert)
function handlers.tls_trusted()
  local c = client({ url = settings.tls_localhost_url, ca_file = settings.cert })
  return outcome(c.agents.list, c.agents)
end

-- (under /tls-trusted/) the same certificate by IP address: its IP SAN
-- does not count for nginx, which checks DNS names only
function handlers.tls_trusted_ip()
  local c = client({ url = settings.tls_url, ca_file = settings.cert })
  return outcome(c.agents.list, c.agents)
end

function handlers.ca_mismatch()
  local ok, msg = pcall(onecli.new, { url = settings.tls_url, ca_file = "/nonexistent/ca.pem",
                                      getenv = function() end })
  return { ok = ok, message = not ok and tostring(msg) or nil }
end

-- the transport on its own, against the /backend/ locations of this nginx
local function backend_request(method, name, extra)
  local t = resty.new(extra)
  local status, headers, body = t:request({
    method = method, url = settings.self_url .. "/backend/" .. name,
    path = "/backend/" .. name, headers = { Accept = "application/json" },
    timeout = 5, connect_timeout = 2,
  })
  if not status then
    return { err = error_fields(headers) }
  end
  return { status = status, headers = headers, body = body }
end

function handlers.raw(args)
  return backend_request(args.method or "GET", args.name,
                         args.max and { max_response_size = tonumber(args.max) } or nil)
end

-- a client whose base URL is this nginx's /backend: JSON in chunks
function handlers.chunked_api()
  local c = client({ url = settings.self_url .. "/backend" })
  return outcome(c.request, c, "GET", "/chunked")
end


function _M.handle()
  local name = ngx.var.uri:match("^/[%w%-]+/([%w_]+)$")
  local h = name and handlers[name]
  if not h then
    return reply({ error = "no handler " .. tostring(name) }, 404)
  end
  local ok, result = pcall(h, ngx.req.get_uri_args())
  if not ok then
    return reply({ error = tostring(result) }, 500)
  end
  return reply(result)
end

-- set_by_lua*: no cosockets there; the transport says so
function _M.set_phase()
  local ok, msg = pcall(function()
    return resty.new():request({ method = "GET", url = settings.url .. "/agents", path = "/v1/agents" })
  end)
  return ok and "no error" or tostring(msg)
end

function _M.ping()
  reply({ pong = true, pid = ngx.worker.pid(), at = start() })
end

local backends = {}

function backends.chunked()
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"chunks":[')
  ngx.flush(true)
  for i = 1, 5 do
    ngx.print((i > 1 and "," or "") .. i)
    ngx.flush(true)
  end
  ngx.print('],"ok":true}')
end

function backends.repeated()
  ngx.header["X-Multi"] = { "a", "b" }
  ngx.header["X-Request-Id"] = "req-123"
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"ok":true}')
end

function backends.big()
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = 4000
  ngx.print(string.rep("x", 4000))
end

function backends.big_chunked()
  ngx.header["Content-Type"] = "application/json"
  for _ = 1, 4 do
    ngx.print(string.rep("y", 1000))
    ngx.flush(true)
  end
end

function backends.empty()
  ngx.status = 204
  ngx.exit(204)
end

function backends.head()
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = 11
  if ngx.req.get_method() ~= "HEAD" then
    ngx.print('{"ok":true}')
  end
end

function _M.backend()
  local name = ngx.var.uri:match("^/backend/([%w_]+)$")
  local b = name and backends[name]
  if not b then
    ngx.status = 404
    ngx.header["Content-Type"] = "application/json"
    return ngx.print('{"error":{"message":"no such backend","type":"invalid_request_error"}}')
  end
  return b()
end

return _M
