-- client:batch inside a real nginx (Debian's nginx + libnginx-mod-http-lua):
-- with the cosocket transport the calls run concurrently in nginx light
-- threads (a pool of `concurrency` threads), results in call order, each
-- call retried as a single call is, cancel() kills what still runs, and
-- the steppable form yields to nginx instead of blocking the worker.
--
-- The spec writes an nginx configuration from batch.conf.in into a
-- temporary prefix, starts nginx (one process, daemonized, pid file) on a
-- free port of 127.0.0.1, and talks to it with luasocket. The handlers are
-- in batch_app.lua; the times are measured inside nginx (ngx.now() after
-- ngx.update_time()). Skipped (pending) only when there is no nginx.
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

local DELAY = 0.2      -- seconds the stand-in holds each delayed answer

local gettime = socket.gettime
local read_file, write_file, wait_until, listening =
      net.read_file, net.write_file, net.wait_until, net.listening
local sh, quote, free_port = net.run_ok, net.shell_quote, net.closed_port

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

---------------------------------------------------------------------------
-- HTTP to nginx (HTTP/1.0: nginx answers unchunked and closes once the
-- request is over, light threads included)

local nginx_port

local function send_request(path, timeout)
  local s = socket.tcp()
  s:settimeout(timeout or 20)
  assert(s:connect("127.0.0.1", nginx_port))
  assert(s:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
  return s
end

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

---------------------------------------------------------------------------

describe("client:batch in nginx (light threads)", function()
  if not exists(NGINX) then
    pending("nginx is not installed (" .. NGINX .. "): apt-get install nginx libnginx-mod-http-lua")
    return
  end

  local srv, prefix, nginx_pid

  local function error_log()
    return (read_file(prefix .. "/logs/error.log") or ""):sub(-3000)
  end

  local function check(path, status, raw)
    assert(status == 200, ("%s -> %s %s\nerror.log:\n%s"):format(path, tostring(status),
      tostring(raw), error_log()))
  end

  -- GET path on nginx; asserts a 200 and returns the decoded body.
  local function call(path, timeout)
    local status, body, raw = read_answer(send_request(path, timeout))
    check(path, status, raw)
    return body
  end

  local function hits(path, method)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == path and (method == nil or r.method == method) then n = n + 1 end
    end
    return n
  end

  local function delay(path, seconds, count)
    srv:fault({ kind = "delay", seconds = seconds or DELAY, path = path, count = count or 100 })
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

    nginx_port = free_port()
    local root = assert(io.popen("pwd")):read("*l")
    -- what the handlers need, the key included: a file in the prefix, never printed
    write_file(prefix .. "/onecli_batch_settings.lua",
      ("return { url = %q, api_key = %q }"):format(srv.url, srv.api_key))
    local vars = {
      PREFIX = prefix, ROOT = root, BUILD = BUILD, LUA_CPATH = LUA_CPATH, MODULES = MODULES,
      PORT = tostring(nginx_port),
    }
    local template = assert(read_file("spec/resty/batch.conf.in"), "spec/resty/batch.conf.in")
    local conf = template:gsub("%${([%w_]+)}", function(name)
      return assert(vars[name], "unknown template variable " .. name)
    end)
    write_file(prefix .. "/conf/nginx.conf", conf)

    -- nginx daemonizes and returns; LD_PRELOAD (ASan runs) is not for it
    local started = sh(("env -u LD_PRELOAD %s -p %s -c conf/nginx.conf -e logs/error.log "
      .. "</dev/null >%s 2>&1"):format(quote(NGINX), quote(prefix .. "/"),
      quote(prefix .. "/logs/start.log")))
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
    if nginx_pid and launcher.alive(nginx_pid) then
      sh("kill " .. nginx_pid .. " 2>/dev/null")
      if not wait_until(5, function() return not launcher.alive(nginx_pid) end) then
        sh("kill -9 " .. nginx_pid .. " 2>/dev/null")
      end
    end
    if srv then srv:stop() end
    if prefix then sh("rm -rf " .. quote(prefix)) end
  end)

  before_each(function()
    srv:reset()
  end)

  it("runs 50 delayed calls with concurrency 50 in about one delay", function()
    delay("/v1/agents")
    local r = call("/b/many?n=50&c=50")
    assert.are.equal("threads", r.driver)
    assert.are.equal(50, r.count)
    assert.are.equal(0, r.failed)
    assert.are.equal(50, r.ok)
    if os.getenv("ONECLI_SPEC_TIMES") then
      io.stderr:write(("  [batch] 50 calls, concurrency 50: %.3f s, %d in flight at most\n")
        :format(r.elapsed, r.max_in_flight))
    end
    assert.is_true(r.elapsed >= DELAY * 0.9, ("took %.3f s"):format(r.elapsed))
    assert.is_true(r.elapsed < 3 * DELAY, ("took %.3f s"):format(r.elapsed))
    assert.is_true(r.max_in_flight <= 50)
    assert.is_true(r.max_in_flight > 1, "in flight at once: " .. r.max_in_flight)
    assert.are.equal(50, hits("/v1/agents", "GET"))
  end)

  it("with concurrency 5 over 20 delayed calls takes about four delays", function()
    delay("/v1/agents")
    local r = call("/b/many?n=20&c=5")
    assert.are.equal(0, r.failed)
    assert.are.equal(20, r.ok)
    assert.is_true(r.elapsed > 0.7 and r.elapsed < 1.6, ("took %.3f s"):format(r.elapsed))
  end)

  it("never has more than `concurrency` calls in flight", function()
    delay("/v1/agents")
    local r = call("/b/many?n=20&c=5")
    assert.are.equal(20, r.sent)
    assert.are.equal(5, r.max_in_flight)     -- counted at the transport
    assert.are.equal(20, hits("/v1/agents", "GET"))
    -- and at the stand-in: the threads' keep-alive connections, one each
    assert.is_true(srv:stats().connections <= 5, "connections: " .. srv:stats().connections)
  end)

  it("runs a large batch in a pool of `concurrency` threads, not one per call", function()
    local r = call("/b/pool?n=300&c=8")
    assert.are.equal("threads", r.driver)
    assert.are.equal(8, r.threads)
    assert.are.equal(0, r.failed)
    assert.are.equal(300, r.ok)
    assert.are.equal(300, r.sent)
    assert.is_true(r.max_in_flight <= 8, "in flight at once: " .. r.max_in_flight)
    for i, state in ipairs(r.states) do
      assert.are.equal("dead", state, "thread " .. i)
    end
  end)

  it("returns the results in call order, with the errors in their slots", function()
    delay("/v1/health", 0.3, 1)          -- the first call answers last
    local r = call("/b/order")
    assert.are.equal(6, r.count)
    assert.are.equal(2, r.failed)
    local res = r.results
    assert.are.equal("ok", res[1].status)
    assert.are.equal(404, res[2].error.status)
    assert.are.equal("not_found_error", res[2].error.type)
    assert.are.equal(1, res[2].error.attempts)
    assert.are.equal("/v1/agents/no-such-agent", res[2].error.path)
    assert.are.equal(r.id, res[3].id)
    assert.is_true(res[4].ok and res[4].count >= 1)
    assert.are.equal(404, res[5].error.status)
    assert.are.equal("DELETE", res[5].error.method)
    assert.is_true(res[6].ok and res[6].count >= 1)
  end)

  it("retries a call as a single call would be (503 once, then success)", function()
    srv:fault({ kind = "status", status = 503, path = "/v1/agents", method = "GET", count = 1 })
    local r = call("/b/retry")
    assert.are.equal(0, r.failed)
    assert.is_true(r.results[1].ok)
    assert.are.equal("ok", r.results[2].status)
    assert.are.equal(2, hits("/v1/agents", "GET"))
    local retried = false
    for _, line in ipairs(r.log) do
      if line:find("^onecli: GET /v1/agents %-> 503 .*; retrying in [%d%.]+ s%)$") then retried = true end
    end
    assert.is_true(retried, table.concat(r.log, "\n"))
  end)

  it("cancel() ends the calls in flight (CANCELLED) and leaves no thread running", function()
    delay("/v1/agents", 3)
    local t0 = gettime()
    local r = call("/b/cancel", 20)
    -- the request is over (nginx waits for every light thread of it) long
    -- before the delayed answers would have come
    local took = gettime() - t0
    assert.is_true(took < 2, ("the request took %.2f s"):format(took))
    assert.is_true(r.elapsed < 2, ("cancelled after %.2f s"):format(r.elapsed))
    assert.is_false(r.first_step_done)
    assert.are.equal(4, r.inflight_before)
    assert.are.equal(0, r.inflight)
    assert.is_true(r.done)
    assert.is_true(r.step)
    assert.are.equal(4, r.failed)
    for i = 1, 4 do
      local e = r.results[i].error
      assert.are.equal("connection_error", e.type, "result " .. i)
      assert.are.equal("CANCELLED", e.code)
      assert.is_false(e.retryable)
      assert.is_true(e.request_sent)
      assert.are.equal(1, e.attempts)
      assert.are.equal("/v1/agents", e.path)
    end
    assert.are.equal("ok", r.results[5].status)
    for i, state in ipairs(r.states) do
      assert.are.equal("dead", state, "thread " .. i)
    end
    assert.are.equal("ok", r.after.status)
  end)

  it("cancel() with a capped pool gives the killed calls' places back at once", function()
    delay("/v1/agents", 3)
    local r = call("/b/cancel_capped", 20)
    assert.are.equal("ok", r.after.status, require("cjson").encode(r.after))
    assert.is_true(r.after_elapsed < 0.25, ("the next call waited %.2f s for a place"):format(
      r.after_elapsed))
  end)

  it("cancel() from another light thread: the running calls start nothing more", function()
    delay("/v1/agents", 0.5)
    local t0 = gettime()
    local r = call("/b/cancel_elsewhere", 20)
    local took = gettime() - t0
    assert.is_true(r.waited)
    assert.is_true(r.done)
    assert.are.equal(0, r.inflight)
    assert.are.equal(6, r.failed)
    for i = 1, 6 do
      assert.are.equal("CANCELLED", r.results[i].error.code, "result " .. i)
    end
    -- the two calls in flight could not be killed from there: nginx ended
    -- the request once they were answered, and they started no other
    assert.is_true(took >= 0.4 and took < 3, ("the request took %.2f s"):format(took))
    assert.are.equal(2, hits("/v1/agents", "GET"))
  end)

  it("the steppable form: step() never blocks, wait() yields to nginx", function()
    delay("/v1/agents", 0.5)
    local t0 = gettime()
    local s = send_request("/b/steps?n=4&c=2", 20)     -- two rounds of 0.5 s
    assert.is_true(wait_until(5, function() return hits("/v1/agents", "GET") >= 1 end),
      "the batch never reached the stand-in")
    -- meanwhile the same worker answers
    local tp = gettime()
    local ping = call("/ping", 5)
    local ping_took = gettime() - tp
    local status, r, raw = read_answer(s)
    check("/b/steps", status, raw)
    assert.is_true(gettime() - t0 < 5)
    assert.are.equal("threads", r.driver)
    assert.are.equal(0, r.before)                   -- step() has work before it starts
    assert.is_true(r.longest_step < 0.05, ("a step took %.3f s"):format(r.longest_step))
    assert.is_true(r.steps >= 2, "steps: " .. r.steps)
    for i, w in ipairs(r.wakeups) do
      assert.is_true(w > 0 and w <= 0.01, ("next_wakeup %d: %s"):format(i, tostring(w)))
    end
    assert.are.equal(0, r.after)
    assert.is_true(r.elapsed > 0.9 and r.elapsed < 2.5, ("took %.3f s"):format(r.elapsed))
    assert.are.equal(0, r.failed)
    assert.are.equal(2, r.max_in_flight)
    for i = 1, 4 do
      assert.is_true(r.results[i].ok, "result " .. i)
    end
    assert.is_true(ping_took < 0.4, ("ping took %.2f s"):format(ping_took))
    assert.are.equal(r.pid, ping.pid)
    assert.is_true(ping.at < r.finished_at, "answered while the batch waited")
  end)

  it("a Lua error in a thread becomes that call's error (CALLBACK) and is raised", function()
    local r = call("/b/callback")
    assert.is_false(r.ok)
    assert.matches("the log broke", r.err)
    assert.is_true(r.done)
    assert.is_true(r.raised >= 1 and r.raised <= 2, "raised " .. r.raised)
    assert.are.equal(2, r.failed)
    for i = 1, 2 do
      assert.are.equal("CALLBACK", r.results[i].error.code, "result " .. i)
      assert.matches("the log broke", r.results[i].error.message)
    end
  end)

  it("a client made in init_by_lua runs its batch in light threads", function()
    delay("/v1/agents")
    local r = call("/b/init_client")
    assert.are.equal("threads", r.driver)
    assert.are.equal(0, r.failed)
    assert.is_true(r.elapsed < 3 * DELAY, ("took %.3f s"):format(r.elapsed))
  end)

  it("runs in an ngx.timer.at callback too", function()
    delay("/v1/agents")
    local r = call("/b/timer")
    assert.is_nil(r.error)
    assert.is_true(r.done)
    assert.are.equal("threads", r.driver)
    assert.are.equal(0, r.failed)
    for i = 1, 5 do
      assert.is_true(r.results[i].ok, "result " .. i)
    end
    assert.is_true(r.elapsed < 3 * DELAY, ("took %.3f s"):format(r.elapsed))
  end)

  it("leaves nothing in nginx's error log but what it expects", function()
    call("/b/many?n=5&c=5")
    local log = read_file(prefix .. "/logs/error.log") or ""
    assert.is_nil(log:find(srv.api_key, 1, true))
    assert.is_nil(log:find("[error]", 1, true), error_log())
    assert.is_nil(log:find("lua entry thread aborted", 1, true))
    assert.is_nil(log:find("lua user thread aborted", 1, true))
  end)
end)
