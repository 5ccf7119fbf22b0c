-- The OpenResty transport inside a real nginx (Debian's nginx +
-- libnginx-mod-http-lua): API calls through cosockets against the
-- stand-in, error objects, a worker that keeps serving while a call waits,
-- keep-alive pools, retries slept with ngx.sleep, and TLS verification.
--
-- The spec writes an nginx configuration from nginx.conf.in into a
-- temporary prefix, starts nginx (one process, daemonized, pid file) on a
-- free port of 127.0.0.1, and talks to it with luasocket. The handlers are
-- in onecli_resty_app.lua. Skipped (pending) only when there is no nginx.
local socket = require("socket")
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local net = require("support.net")

local NGINX = os.getenv("ONECLI_NGINX") or "/usr/sbin/nginx"
local MODULES = os.getenv("ONECLI_NGINX_MODULES") or "/usr/lib/nginx/modules"
-- nginx's Lua is LuaJIT: it loads the core built for LuaJIT
local BUILD = os.getenv("ONECLI_NGINX_BUILD_DIR") or "build/luajit"

-- Debian's Lua 5.1 C modules (cjson) live in the multiarch directory
local function multiarch()
  local p = io.popen("gcc -print-multiarch 2>/dev/null")
  local triplet = p and p:read("*l")
  if p then p:close() end
  return (triplet and triplet ~= "") and triplet or "x86_64-linux-gnu"
end
local LUA_CPATH = "/usr/lib/" .. multiarch() .. "/lua/5.1/?.so"

local gettime = socket.gettime
local read_file, write_file, wait_until, listening =
      net.read_file, net.write_file, net.wait_until, net.listening
local sh, quote, free_port = net.run_ok, net.shell_quote, net.closed_port

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function alive(pid)
  return pid ~= nil and launcher.alive(pid)
end

---------------------------------------------------------------------------
-- HTTP to nginx (HTTP/1.0: nginx answers unchunked and closes)

local nginx_port

-- Sends a request and returns the socket, to read the answer later.
local function send_request(path, timeout)
  local s = socket.tcp()
  s:settimeout(timeout or 15)
  assert(s:connect("127.0.0.1", nginx_port))
  assert(s:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
  return s
end

-- Reads the answer of send_request: status, decoded JSON (or raw body).
local function read_answer(s)
  local data, err, partial = s:receive("*a")
  s:close()
  data = data or partial
  assert(data and data ~= "", "no answer from nginx: " .. tostring(err))
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local body = data:match("\r\n\r\n(.*)$") or ""
  local ok, decoded = pcall(core.json_decode, body)
  if ok and decoded ~= nil then
    return status, decoded, body
  end
  return status, body, body
end

local function get(path, timeout)
  return read_answer(send_request(path, timeout))
end

---------------------------------------------------------------------------

describe("the OpenResty transport in nginx", function()
  if not exists(NGINX) then
    pending("nginx is not installed (" .. NGINX .. "): apt-get install nginx libnginx-mod-http-lua")
    return
  end

  local srv, prefix, nginx_pid, tls_pid, tls_port

  local function error_log()
    return (read_file(prefix .. "/logs/error.log") or ""):sub(-3000)
  end

  -- GET path on nginx; asserts a 200 and returns the decoded body.
  local function call(path, timeout)
    local status, body, raw = get(path, timeout)
    assert(status == 200, ("%s -> %s %s\nerror.log:\n%s"):format(path, tostring(status),
      tostring(raw), error_log()))
    return body
  end

  local function hits(path, method)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == path and (method == nil or r.method == method) then n = n + 1 end
    end
    return n
  end

  setup(function()
    assert(exists(MODULES .. "/ngx_http_lua_module.so"),
      "nginx's Lua module is missing: apt-get install libnginx-mod-http-lua")
    assert(exists(BUILD .. "/onecli/core.so"), BUILD .. "/onecli/core.so is missing: make build")
    srv = launcher.start({ mode = "v2" })

    prefix = os.tmpname()
    os.remove(prefix)
    assert(sh("mkdir -p " .. quote(prefix .. "/logs") .. " " .. quote(prefix .. "/tmp")
      .. " " .. quote(prefix .. "/conf")))

    -- a self-signed certificate and openssl s_server (-www answers HTTP/1.0
    -- with an HTML page and closes)
    assert(sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
      .. "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
      .. ">/dev/null 2>&1"):format(quote(prefix .. "/key.pem"), quote(prefix .. "/cert.pem"))))
    tls_port = free_port()
    local p = io.popen(("openssl s_server -quiet -www -accept %d -cert %s -key %s "
      .. "</dev/null >/dev/null 2>&1 & echo $!"):format(tls_port, quote(prefix .. "/cert.pem"),
      quote(prefix .. "/key.pem")))
    tls_pid = tonumber(p:read("*l"))
    p:close()
    assert(wait_until(5, function() return listening(tls_port) end), "openssl s_server did not start")

    nginx_port = free_port()
    local root = assert(io.popen("pwd")):read("*l")
    -- what the handlers need, the key included: a file in the prefix, never printed
    write_file(prefix .. "/onecli_spec_settings.lua", ("return %s"):format(
      ("{ url = %q, api_key = %q, closed_url = %q, tls_url = %q, tls_localhost_url = %q, "
       .. "cert = %q, self_url = %q }"):format(
        srv.url, srv.api_key, "http://127.0.0.1:" .. free_port(),
        "https://127.0.0.1:" .. tls_port, "https://localhost:" .. tls_port,
        prefix .. "/cert.pem", "http://127.0.0.1:" .. nginx_port)))
    local vars = {
      PREFIX = prefix, ROOT = root, BUILD = BUILD, LUA_CPATH = LUA_CPATH, MODULES = MODULES,
      PORT = tostring(nginx_port), CERT = prefix .. "/cert.pem",
    }
    local template = assert(read_file("spec/resty/nginx.conf.in"), "spec/resty/nginx.conf.in")
    local conf = template:gsub("%${([%w_]+)}", function(name)
      return assert(vars[name], "unknown template variable " .. name)
    end)
    write_file(prefix .. "/conf/nginx.conf", conf)

    -- nginx daemonizes and returns; LD_PRELOAD (ASan runs) is not for it
    local started = sh(("env -u LD_PRELOAD %s -p %s -c conf/nginx.conf -e logs/error.log "
      .. "</dev/null >%s 2>&1"):format(quote(NGINX), quote(prefix .. "/"), quote(prefix .. "/logs/start.log")))
    assert(started, "nginx did not start: " .. (read_file(prefix .. "/logs/start.log") or "")
      .. (read_file(prefix .. "/logs/error.log") or ""))
    assert(wait_until(5, function()
      nginx_pid = tonumber(read_file(prefix .. "/logs/nginx.pid") or "")
      return nginx_pid ~= nil and listening(nginx_port)
    end), "nginx does not listen: " .. (read_file(prefix .. "/logs/error.log") or ""))
  end)

  teardown(function()
    if prefix and not nginx_pid then    -- setup failed after nginx started
      nginx_pid = tonumber(read_file(prefix .. "/logs/nginx.pid") or "")
    end
    if nginx_pid and alive(nginx_pid) then
      sh("kill " .. nginx_pid .. " 2>/dev/null")
      if not wait_until(5, function() return not alive(nginx_pid) end) then
        sh("kill -9 " .. nginx_pid .. " 2>/dev/null")
      end
    end
    if tls_pid then sh("kill " .. tls_pid .. " 2>/dev/null") end
    if srv then srv:stop() end
    if prefix then sh("rm -rf " .. quote(prefix)) end
  end)

  before_each(function()
    srv:reset()
  end)

  describe("API calls", function()
    it("go through the cosocket transport, chosen by the client itself", function()
      local r = call("/t/agents?id=resty-one")
      assert.are.equal("resty", r.transport)
      assert.is_true(r.sleep_is_ngx_sleep)
      assert.are.equal("resty-one", r.created)
      local found = false
      for _, id in ipairs(r.identifiers) do
        if id == "resty-one" then found = true end
      end
      assert.is_true(found, "the created agent is listed")
      assert.are.equal(2, #srv:requests())
    end)

    it("return API errors as values by default; raised, as the one-line string nginx prints", function()
      local r = call("/t/not_found")
      assert.are.equal(404, r.err.status)
      assert.are.equal("not_found_error", r.err.type)
      assert.is_false(r.err.retryable)
      assert.are.equal("GET", r.err.method)
      assert.are.equal("/v1/agents/00000000-0000-0000-0000-000000000000", r.err.path)
      assert.matches("^onecli: 404 not_found_error", r.err.string)
      assert.are.equal("not_found_error", r.raised.type)
      assert.are.equal(404, r.raised.status)
      assert.are.equal(r.raised.string, r.raised.raised_string, "raised as its tostring")
      assert.are.equal(404, r.tried.status, "onecli.try gives the object back")
      assert.is_nil(r.tried.raised_string)
    end)

    it("a refused connection is a connection_error, retried even for a POST", function()
      local r = call("/t/refused")
      assert.are.equal("connection_error", r.type)
      assert.are.equal("COULDNT_CONNECT", r.code)
      assert.is_false(r.request_sent)
      assert.is_true(r.retryable)
      assert.are.equal(2, r.attempts)
      assert.is_nil(r.status)
      assert.are.equal("/v1/agents", r.path)
    end)

    it("a server that never answers is a timeout_error after the timeout", function()
      srv:fault({ path = "/v1/agents", kind = "hang" })
      local r = call("/t/timeout")
      assert.are.equal("timeout_error", r.type)
      assert.are.equal("OPERATION_TIMEDOUT", r.code)
      assert.is_true(r.request_sent)
      assert.is_true(r.elapsed >= 0.45 and r.elapsed < 3, "took " .. r.elapsed .. " s")
    end)

    it("a connection dropped after a POST is not repeated", function()
      srv:fault({ path = "/v1/agents", method = "POST", kind = "drop" })
      local r = call("/t/drop")
      assert.are.equal("connection_error", r.type)
      assert.are.equal("GOT_NOTHING", r.code)
      assert.is_true(r.request_sent)
      assert.are.equal(1, r.attempts)
      assert.are.equal(1, hits("/v1/agents", "POST"))
    end)

    it("sends a User-Agent naming ngx_lua, with the application's token", function()
      call("/t/user_agent")
      local ua = srv:requests()[1].headers["user-agent"]
      assert.matches("^lua%-onecli/%d+%.%d+%.%d+ LuaJIT %S+ ngx_lua/%d+%.%d+%.%d+ spec/1%.0$", ua)
    end)

    it("refuses clearly in a phase without cosockets", function()
      local status, _, raw = get("/phase")
      assert.are.equal(200, status)
      assert.matches("cannot run in nginx's set phase", raw)
    end)
  end)

  describe("the worker", function()
    it("keeps serving other requests while a call waits on a slow answer", function()
      srv:fault({ path = "/v1/secrets", method = "GET", kind = "delay", seconds = 2 })
      local t0 = gettime()
      local slow = send_request("/t/slow", 15)
      -- the slow call has reached the stand-in (bounded wait) ...
      assert.is_true(wait_until(5, function() return hits("/v1/secrets") == 1 end),
        "the slow call never reached the stand-in")
      -- ... and meanwhile the same worker answers other API calls and pings
      local fast = {}
      for i = 1, 3 do
        local ts = gettime()
        local r = call("/t/agents?id=fast-" .. i, 5)
        fast[#fast + 1] = { took = gettime() - ts, r = r }
        ts = gettime()
        local p = call("/ping", 5)
        fast[#fast + 1] = { took = gettime() - ts, r = p }
      end
      local fast_done = gettime() - t0
      local status, r = read_answer(slow)
      local slow_done = gettime() - t0
      assert.are.equal(200, status)
      assert.is_true(r.ok, "the slow call succeeded")
      assert.is_true(r.elapsed >= 1.9, "the slow call waited " .. r.elapsed .. " s")
      for i, f in ipairs(fast) do
        assert.is_true(f.took < 1, ("fast request %d took %.2f s"):format(i, f.took))
        if f.r.pid then
          assert.are.equal(r.pid, f.r.pid)   -- one worker did it all
          assert.is_true(f.r.at < r.finished_at - 0.5, "answered while the slow call waited")
        end
      end
      assert.is_true(fast_done < slow_done, "the fast requests finished first")
      assert.is_true(slow_done >= 1.9)
    end)
  end)

  describe("being the agent", function()
    it("client:run spawns through ngx.pipe with the gateway's environment; the worker serves meanwhile",
      function()
        local t0 = gettime()
        local slow = send_request("/t/agent_run?sleep=1.5", 15)
        -- while the child sleeps, the same worker answers pings
        local pings = {}
        assert.is_true(wait_until(5, function() return hits("/v1/container-config") >= 1 end),
          "the run never asked for the container config")
        for _ = 1, 3 do
          local ts = gettime()
          local p = call("/ping", 5)
          pings[#pings + 1] = { took = gettime() - ts, at = gettime() - t0 }
          assert.is_truthy(p.pong)
        end
        local status, r = read_answer(slow)
        assert.are.equal(200, status)
        assert.are.equal(0, r.status, tostring(r.output or r.message or r.raised))
        assert.matches("proxy=http://x:<token>", r.output, 1, true)
        assert.matches("ca=" .. r.bundle, r.output, 1, true)
        assert.matches("no_proxy=none", r.output, 1, true)
        assert.is_true(r.elapsed >= 1.4, "the child ran " .. r.elapsed .. " s")
        for i, p in ipairs(pings) do
          assert.is_true(p.took < 1, ("ping %d took %.2f s"):format(i, p.took))
          assert.is_true(p.at < 1.5, ("ping %d answered only after the child was done"):format(i))
        end
      end)

    it("client:as_agent says why it cannot run in a worker and what to use instead", function()
      local r = call("/t/as_agent_refused")
      assert.is_false(r.ok)
      assert.matches("inside nginx, libcurl would block the worker", r.message, 1, true)
      assert.matches("gateway_proxy", r.message, 1, true)
      assert.is_nil(r.message:find("<token>", 1, true))
    end)
  end)

  describe("keep-alive", function()
    it("reuses one pooled connection across calls and across nginx requests", function()
      call("/t/list?n=5")
      assert.are.equal(1, srv:stats().connections)
      call("/t/list?n=3")
      local stats = srv:stats()
      assert.are.equal(1, stats.connections)
      assert.are.equal(8, stats.requests)
    end)

    it("gives a POST a connection of its own (fresh_connect)", function()
      call("/t/post_fresh")
      local log = srv:requests()
      assert.are.equal(4, #log)
      assert.are.equal("POST", log[3].method)
      assert.are_not.equal(log[1].connection, log[3].connection)
      assert.are.equal(log[1].connection, log[2].connection)
      assert.are.equal(2, srv:stats().connections)
    end)
  end)

  describe("retries", function()
    it("sleep with ngx.sleep: 2 x 500 then success, the worker serving meanwhile", function()
      srv:fault({ path = "/v1/agents", method = "GET", kind = "status", status = 500, count = 2 })
      local retrying = send_request("/t/retry?base=1", 15)
      assert.is_true(wait_until(5, function() return hits("/v1/agents", "GET") >= 1 end),
        "the first attempt never reached the stand-in")
      local pings = {}
      for _ = 1, 3 do
        local ts = gettime()
        local p = call("/ping", 5)
        p.took = gettime() - ts
        pings[#pings + 1] = p
      end
      local status, r = read_answer(retrying)
      assert.are.equal(200, status)
      assert.is_true(r.ok, "succeeded after the 500s: " .. tostring(r.string))
      assert.are.equal(3, hits("/v1/agents", "GET"))
      -- backoff_base 1: the waits are within [0.5, 1] and [1, 2]
      assert.is_true(r.elapsed >= 1.5 and r.elapsed < 6, "took " .. r.elapsed .. " s")
      assert.are.equal(3, #r.log)
      assert.matches("^onecli: GET /v1/agents %-> 500 api_error %(.*attempt 1 of 3; retrying in [%d%.]+ s%)$",
                     r.log[1])
      assert.matches("%-> 500 api_error %(.*attempt 2 of 3; retrying in [%d%.]+ s%)$", r.log[2])
      assert.matches("%-> 200 %(.*%d+ ms, attempt 3 of 3%)$", r.log[3])
      for i, p in ipairs(pings) do
        assert.is_true(p.took < 1, ("ping %d took %.2f s"):format(i, p.took))
        assert.are.equal(r.pid, p.pid)
        assert.is_true(p.at < r.finished_at, "answered while the retry loop slept")
      end
    end)
  end)

  describe("TLS", function()
    it("refuses a certificate nginx does not trust, with a tls_error", function()
      local r = call("/t/tls_untrusted")
      assert.are.equal("tls_error", r.type)
      assert.are.equal("PEER_FAILED_VERIFICATION", r.code)
      assert.is_false(r.retryable)
      assert.are.equal(1, r.attempts)
      assert.is_false(r.request_sent)
      assert.matches("lua_ssl_trusted_certificate", r.message)
    end)

    it("verifies where lua_ssl_trusted_certificate trusts it (ca_file declared)", function()
      local r = call("/tls-trusted/tls_trusted")
      -- the handshake and the host check passed: s_server's -www page is
      -- HTML in an HTTP/1.0 answer read until the connection closed
      assert.are_not.equal("tls_error", r.type)
      assert.are.equal(200, r.status)
      assert.are.equal("decode_error", r.type)
    end)

    it("checks the host name: an IP address matches no DNS name (nginx)", function()
      local r = call("/tls-trusted/tls_trusted_ip")
      assert.are.equal("tls_error", r.type)
      assert.are.equal("PEER_FAILED_VERIFICATION", r.code)
    end)

    it("skips verification only with insecure = true", function()
      local r = call("/t/tls_insecure")
      assert.are_not.equal("tls_error", r.type)
      assert.are.equal(200, r.status)
    end)

    it("verifies ssl_server_name instead of the URL's host (connecting by IP address)",
       function()
      local r = call("/tls-trusted/server_name?name=localhost")
      assert.is_nil(r.err, r.err and r.err.message)
      assert.are.equal(200, r.status)
      r = call("/tls-trusted/server_name?name=other.example")
      assert.are.equal("tls_error", r.err.type)
      assert.are.equal("PEER_FAILED_VERIFICATION", r.err.code)
      assert.is_false(r.err.request_sent)
    end)

    it("refuses a ca_file that is not nginx's lua_ssl_trusted_certificate", function()
      local r = call("/t/ca_mismatch")
      assert.is_false(r.ok)
      assert.matches("lua_ssl_trusted_certificate", r.message)
      assert.matches("/nonexistent/ca.pem", r.message, 1, true)
    end)
  end)

  describe("response shapes", function()
    it("reads a chunked JSON answer", function()
      local r = call("/t/chunked_api")
      assert.is_true(r.ok)
      assert.are.same({ 1, 2, 3, 4, 5 }, r.result.chunks)
    end)

    it("lower-cases header names and joins repeated headers", function()
      local r = call("/t/raw?name=repeated")
      assert.are.equal(200, r.status)
      assert.are.equal("a, b", r.headers["x-multi"])
      assert.are.equal("req-123", r.headers["x-request-id"])
      assert.are.equal('{"ok":true}', r.body)
    end)

    it("caps the body at max_response_size, with Content-Length or chunked", function()
      for _, name in ipairs({ "big", "big_chunked" }) do
        local r = call("/t/raw?max=1000&name=" .. name)
        assert.are.equal("RESPONSE_TOO_LARGE", r.err.code, name)
        assert.is_false(r.err.retryable)
      end
      local r = call("/t/raw?max=5000&name=big_chunked")
      assert.are.equal(4000, #r.body)
    end)

    it("reads no body for a 204 or a HEAD", function()
      local r = call("/t/raw?name=empty")
      assert.are.equal(204, r.status)
      assert.are.equal("", r.body)
      r = call("/t/raw?name=head&method=HEAD")
      assert.are.equal(200, r.status)
      assert.are.equal("", r.body)
      assert.are.equal("11", r.headers["content-length"])
    end)
  end)

  describe("send_timeout and read_timeout", function()
    it("read_timeout ends a stalled answer in about read_timeout, though timeout is 10", function()
      local r = call("/t/read_timeout")
      assert.is_nil(r.status)
      assert.are.equal("timeout_error", r.err.type)
      assert.are.equal("OPERATION_TIMEDOUT", r.err.code)
      assert.is_true(r.err.request_sent)
      assert.matches("read_timeout", r.err.message)
      assert.is_true(r.elapsed >= 0.28 and r.elapsed < 1.5, "took " .. r.elapsed .. " s")
    end)

    it("read_timeout bounds each wait, the request's timeout the whole answer", function()
      local r = call("/t/read_timeout_per_read")
      -- an answer that keeps coming is read to its end, longer than read_timeout
      assert.are.equal(200, r.drip.status, tostring(r.drip.err and r.drip.err.message))
      assert.are.equal("[0,1,2,3,4,5,6]", r.drip.body)
      assert.is_true(r.drip.elapsed >= 0.8, "took " .. r.drip.elapsed .. " s")
      -- read_timeout longer than what is left: the timeout ends it, and says so
      assert.are.equal("OPERATION_TIMEDOUT", r.overall.err.code)
      assert.is_nil(r.overall.err.message:find("read_timeout", 1, true))
      assert.is_true(r.overall.elapsed >= 0.28 and r.overall.elapsed < 1.5,
        "took " .. r.overall.elapsed .. " s")
      -- unset: a read may take what is left of the timeout
      assert.are.equal(200, r.unset.status)
      assert.is_true(r.unset.elapsed >= 0.45, "took " .. r.unset.elapsed .. " s")
    end)

    it("send_timeout ends a write the server does not take, though timeout is 10", function()
      local r = call("/t/send_timeout")
      assert.is_nil(r.status)
      assert.are.equal("timeout_error", r.err.type)
      assert.are.equal("OPERATION_TIMEDOUT", r.err.code)
      assert.is_true(r.err.request_sent)      -- part of it went out
      assert.matches("while sending the request %(send_timeout", r.err.message)
      assert.is_true(r.elapsed >= 0.28 and r.elapsed < 2.5, "took " .. r.elapsed .. " s")
    end)
  end)

  describe("backlog", function()
    local function by_outcome(results)
      local ok, errors = {}, {}
      for _, r in ipairs(results) do
        assert.is_nil(r.raised)
        if r.status == 200 then ok[#ok + 1] = r else errors[#errors + 1] = r end
      end
      return ok, errors
    end

    it("unset, pool_size limits only idle connections: 3 calls at once open 3", function()
      local r = call("/t/backlog?n=3&s=0.3")
      local ok = by_outcome(r.results)
      assert.are.equal(3, #ok)
      assert.are.equal(3, r.max_active)
      assert.are.equal(3, r.connections)
    end)

    it("set, the calls wait in the queue and take turns on pool_size connections", function()
      local r = call("/t/backlog?n=3&s=0.3&pool_size=1&backlog=5")
      local ok = by_outcome(r.results)
      assert.are.equal(3, #ok)
      assert.are.equal(1, r.max_active)       -- never two at once
      assert.are.equal(1, r.connections)      -- each took the connection the last gave back
      local took = {}
      for i, res in ipairs(ok) do took[i] = res.elapsed end
      table.sort(took)
      assert.is_true(took[1] >= 0.25 and took[1] < 0.8, "first took " .. took[1] .. " s")
      assert.is_true(took[3] >= 0.85, "the last waited for two turns, took " .. took[3] .. " s")
    end)

    it("a full queue is an unsent connection_error at once (backlog = 0)", function()
      local r = call("/t/backlog?n=3&s=0.5&pool_size=1&backlog=0")
      local ok, errors = by_outcome(r.results)
      assert.are.equal(1, #ok)
      assert.are.equal(2, #errors)
      for _, e in ipairs(errors) do
        assert.are.equal("connection_error", e.err.type)
        assert.are.equal("COULDNT_CONNECT", e.err.code)
        assert.is_false(e.err.request_sent)
        assert.is_true(e.err.retryable)
        assert.matches("too many waiting connect operations (pool_size 1, backlog 0",
          e.err.message, 1, true)
        assert.is_true(e.elapsed < 0.2, "failed after " .. e.elapsed .. " s")
      end
      assert.are.equal(1, r.max_active)
      assert.are.equal(1, r.connections)
    end)

    it("a wait in the queue longer than connect_timeout is an unsent timeout_error", function()
      local r = call("/t/backlog?n=3&s=1.5&pool_size=1&backlog=1&connect_timeout=0.3")
      local first, queued, refused = r.results[1], r.results[2], r.results[3]
      assert.are.equal(200, first.status)
      assert.are.equal("timeout_error", queued.err.type)
      assert.are.equal("OPERATION_TIMEDOUT", queued.err.code)
      assert.is_false(queued.err.request_sent)
      assert.matches("backlog 1", queued.err.message, 1, true)
      assert.is_true(queued.elapsed >= 0.28 and queued.elapsed < 1.2,
        "gave up after " .. queued.elapsed .. " s")
      assert.are.equal("COULDNT_CONNECT", refused.err.code)
      assert.is_false(refused.err.request_sent)
      assert.is_true(refused.elapsed < 0.2, "failed after " .. refused.elapsed .. " s")
      assert.are.equal(1, r.connections)
    end)

    it("a POST (fresh connection) does not wait for the pooled connection it passes over",
       function()
      local r = call("/t/backlog_fresh")
      assert.are.equal(200, r.get.status)
      assert.are.equal(200, r.post.status, tostring(r.post.err and r.post.err.message))
      assert.is_true(r.post.elapsed < 0.5, "the POST took " .. r.post.elapsed .. " s")
      assert.are.equal(2, r.connections)
    end)
  end)

  describe("nginx's error log", function()
    it("never shows the API key", function()
      local log = read_file(prefix .. "/logs/error.log") or ""
      assert.is_true(#log > 0)
      assert.is_nil(log:find(srv.api_key, 1, true))
    end)
  end)
end)
