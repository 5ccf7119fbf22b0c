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

-- raise = true: the handlers below look at what a call raises (inside
-- nginx a client returns nil, err by default)
local function client(extra)
  local opts = { url = settings.url, api_key = settings.api_key, max_retries = 0,
                 getenv = function() end, raise = true }
  for k, v in pairs(extra or {}) do
    opts[k] = v
  end
  return onecli.new(opts)
end

local function error_fields(err)
  local raised_string
  if type(err) == "string" and onecli.error_of(err) then
    -- inside nginx an error is raised as its one-line string (nginx prints
    -- nothing else); onecli.error_of gives the object back
    raised_string, err = err, onecli.error_of(err)
  end
  if not onecli.is_error(err) then
    return { raised = tostring(err) }
  end
  return {
    raised_string = raised_string,
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
  local t = c:_transport_now()
  local is_resty = getmetatable(t) == resty.Transport
  local sleep = c:_sleep_now(t)
  c:close()
  return { transport = is_resty and "resty" or tostring(t),
           sleep_is_ngx_sleep = sleep == ngx.sleep,
           created = created.identifier, identifiers = ids }
end

-- a 404: as a value (the default inside nginx) and raised (raise = true:
-- the one-line string, and onecli.try's object)
function handlers.not_found()
  local c = onecli.new({ url = settings.url, api_key = settings.api_key, max_retries = 0,
                         getenv = function() end })
  local v, err = c.agents:get("00000000-0000-0000-0000-000000000000")
  local raised = outcome(c.agents.get, c.agents, "00000000-0000-0000-0000-000000000000",
                         { raise = true })
  local _, tried = onecli.try(c.agents.get, c.agents, "00000000-0000-0000-0000-000000000000",
                              { raise = true })
  return { value = v or cjson.null, err = error_fields(err), raised = raised,
           tried = error_fields(tried) }
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

---------------------------------------------------------------------------
-- the options a lua-resty-http user reaches for (send_timeout,
-- read_timeout, backlog, ssl_server_name), on the transport itself

-- One request through transport t; its outcome and how long it took.
local function timed_request(t, method, url, extra)
  local req = { method = method, url = url, path = url:match("^https?://[^/]*(/[^?]*)") or "/",
                headers = { Accept = "application/json" }, timeout = 10, connect_timeout = 2 }
  for k, v in pairs(extra or {}) do
    req[k] = v
  end
  local t0 = start()
  local status, headers, body = t:request(req)
  local r = status and { status = status, body = body } or { err = error_fields(headers) }
  r.elapsed = elapsed_since(t0)
  return r
end

local function backend_url(name)
  return settings.self_url .. "/backend/" .. name
end

-- a backend that answers nothing for 2 s: read_timeout 0.3 ends the wait,
-- though the request's timeout is 10
function handlers.read_timeout()
  return timed_request(resty.new({ read_timeout = 0.3 }), "GET", backend_url("stall?s=2"))
end

-- read_timeout bounds each wait, not the whole answer: 6 parts 0.15 s
-- apart (about 0.9 s) with read_timeout 0.5; and the request's timeout
-- still bounds everything (read_timeout 5, timeout 0.3)
function handlers.read_timeout_per_read()
  return {
    drip = timed_request(resty.new({ read_timeout = 0.5 }), "GET",
                         backend_url("drip?n=6&gap=0.15")),
    overall = timed_request(resty.new({ read_timeout = 5 }), "GET", backend_url("stall?s=2"),
                            { timeout = 0.3 }),
    unset = timed_request(resty.new(), "GET", backend_url("stall?s=0.5")),
  }
end

-- 16 MiB to a backend that reads none of it for 3 s: once the socket
-- buffers are full, send_timeout 0.3 ends the write (timeout 10)
function handlers.send_timeout()
  local body = string.rep("x", 16 * 1024 * 1024)
  return timed_request(resty.new({ send_timeout = 0.3 }), "POST", backend_url("stall?s=3"),
                       { body = body, fresh_connect = true })
end

-- what the /backend/slow handler saw: how many ran at once, on how many
-- connections
local slow_seen

local function reset_slow_seen()
  slow_seen = { active = 0, max_active = 0, connections = 0, seen = {} }
end
reset_slow_seen()

-- n calls at once (light threads) through one transport with pool_size
-- (1) and backlog (unset) to a backend that takes s seconds
function handlers.backlog(args)
  reset_slow_seen()
  local t = resty.new({ pool_size = tonumber(args.pool_size) or 1,
                        backlog = tonumber(args.backlog) })
  local url = backend_url("slow?s=" .. (tonumber(args.s) or 0.3))
  local extra = { connect_timeout = tonumber(args.connect_timeout) or 2 }
  local threads = {}
  for i = 1, tonumber(args.n) or 3 do
    threads[i] = ngx.thread.spawn(timed_request, t, "GET", url, extra)
  end
  local results = {}
  for i, th in ipairs(threads) do
    local ok, r = ngx.thread.wait(th)
    results[i] = ok and r or { raised = tostring(r) }
  end
  return { results = results, max_active = slow_seen.max_active,
           connections = slow_seen.connections }
end

-- pool_size 1 with a backlog: a GET leaves its connection in the pool,
-- then a POST (fresh_connect) passes it over and must not wait for it
function handlers.backlog_fresh()
  reset_slow_seen()
  local t = resty.new({ pool_size = 1, backlog = 2 })
  local url = backend_url("slow?s=0.05")
  local get = timed_request(t, "GET", url, { connect_timeout = 1 })
  local post = timed_request(t, "POST", url, { connect_timeout = 1, body = "{}",
                                               fresh_connect = true })
  return { get = get, post = post, connections = slow_seen.connections }
end

-- (under /tls-trusted/) openssl s_server by IP address, its certificate
-- checked against ssl_server_name
function handlers.server_name(args)
  local t = resty.new({ ssl_server_name = args.name, ca_file = settings.cert })
  return timed_request(t, "GET", settings.tls_url .. "/")
end

-- being the agent inside nginx: client:run through ngx.pipe (the worker
-- serving meanwhile), and as_agent refused with its reason
local function agent_client()
  local c = client({ raise = false })
  c.agents:create({ name = "nginx bot", identifier = "nginx-bot" })   -- (a 409 the second time)
  return c, settings.cert:match("^(.*)/") .. "/bundle.pem"
end

function handlers.agent_run(args)
  local c, bundle = agent_client()
  local t0 = start()
  local r, err = c:run({ "sh", "-c", "sleep " .. (tonumber(args.sleep) or 0)
      .. '; echo "proxy=${HTTPS_PROXY%%@*}"; echo "ca=$CURL_CA_BUNDLE"; echo "no_proxy=${NO_PROXY:-none}"' },
    { agent = "nginx-bot", ca_bundle = bundle })
  c:close()
  if not r then
    return error_fields(err)
  end
  return { status = r.status, output = (r.output:gsub("aoc_%x+", "<token>")),
           elapsed = elapsed_since(t0), bundle = bundle }
end

function handlers.as_agent_refused()
  local c, bundle = agent_client()
  local ok, msg = pcall(c.as_agent, c, "nginx-bot", { ca_bundle = bundle })
  c:close()
  return { ok = ok, message = (tostring(msg):gsub("aoc_%x+", "<token>")) }
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

-- answers after s seconds (2), reading nothing before
function backends.stall()
  ngx.sleep(tonumber(ngx.req.get_uri_args().s) or 2)
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"ok":true}')
end

-- a JSON array in n + 1 parts, gap seconds apart
function backends.drip()
  local args = ngx.req.get_uri_args()
  local n, gap = tonumber(args.n) or 5, tonumber(args.gap) or 0.2
  ngx.header["Content-Type"] = "application/json"
  ngx.print("[0")
  ngx.flush(true)
  for i = 1, n do
    ngx.sleep(gap)
    ngx.print(",", i)
    ngx.flush(true)
  end
  ngx.print("]")
end

-- answers after s seconds (0.3), counting the calls at once and the
-- connections they came on
function backends.slow()
  local seen = slow_seen
  seen.active = seen.active + 1
  seen.max_active = math.max(seen.max_active, seen.active)
  local conn = ngx.var.connection
  if not seen.seen[conn] then
    seen.seen[conn] = true
    seen.connections = seen.connections + 1
  end
  ngx.sleep(tonumber(ngx.req.get_uri_args().s) or 0.3)
  seen.active = seen.active - 1
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"ok":true}')
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
