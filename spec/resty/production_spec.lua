-- lua-onecli in nginx as it runs in production: a master process and two
-- workers (daemonized), clients made at module level (in the master, before
-- the fork) and in init_worker_by_lua_block, against a stand-in that delays
-- every GET /v1/agents by DELAY seconds.
--
-- Two nginx instances, each on a free port of 127.0.0.1 with everything it
-- writes under a temporary prefix, each stopped for sure at the end (TERM to
-- the master, then KILL to the master and every worker it had):
--   * the harness: production/nginx.conf.in + production/app.lua (what each
--     handler does and where each client is made is in app.lua's header);
--   * the README's: the ```nginx block of README.md's "### OpenResty"
--     subsection, run as written but for README_SUBSTITUTIONS below (the
--     listen port and the Lua paths to the working tree). Its pid and
--     error_log paths are relative, so they land in the prefix (-p); the
--     temporary files would go to nginx's compiled-in directories
--     (/var/lib/nginx/... on Debian), which that configuration never uses.
-- The OneCLI URL and key reach both through the environment of the nginx
-- master (the configurations' `env` directives), from a file only root can
-- read, removed at once: never on a command line, never in a file nginx's
-- workers could read.
--
-- The stand-in's request log records a connection id per request; every
-- call carries X-Worker (the pid of the process that made it), so a
-- connection id seen with two pids is a connection shared by two
-- processes. `ss -tnp` shows the same from the kernel's side: a socket to
-- the stand-in held by two processes.
--
-- Every wait is bounded; the sockets to nginx have timeouts. Skipped
-- (pending) only when there is no nginx.
local socket = require("socket")
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")
local net = require("support.net")
local process = require("onecli.standin.process")

local NGINX = os.getenv("ONECLI_NGINX") or "/usr/sbin/nginx"
local DEFAULT_MODULES = "/usr/lib/nginx/modules"
local MODULES = os.getenv("ONECLI_NGINX_MODULES") or DEFAULT_MODULES
-- nginx's Lua is LuaJIT: it loads the core built for LuaJIT
local BUILD = os.getenv("ONECLI_NGINX_BUILD_DIR") or "build/luajit"

-- The stand-in delays every GET /v1/agents by this much.
local DELAY = 0.2
-- app.lua's clients: max_retries 1 after at most backoff_max = 0.1 s; the
-- one retry is one more delayed attempt.
local RETRY_BUDGET = 0.1 + DELAY
-- what one call may take, at most: two delays (an attempt that waits for a
-- connection to come free, the stand-in busy) and the retry budget
local CALL_BOUND = 2 * DELAY + RETRY_BUDGET

local gettime = socket.gettime
local read_file, write_file, wait_until, listening =
      net.read_file, net.write_file, net.wait_until, net.listening
local sh, quote, free_port = net.run_ok, net.shell_quote, net.closed_port
local concat, sort = table.concat, table.sort

-- Debian's Lua 5.1 C modules (cjson) live in the multiarch directory
local function multiarch()
  local p = io.popen("gcc -print-multiarch 2>/dev/null")
  local triplet = p and p:read("*l")
  if p then p:close() end
  return (triplet and triplet ~= "") and triplet or "x86_64-linux-gnu"
end
local LUA_CPATH = "/usr/lib/" .. multiarch() .. "/lua/5.1/?.so"
local ROOT = assert(io.popen("pwd")):read("*l")

-- ONECLI_SPEC_TIMES=1 prints what the tests measure (to stderr).
local function note(fmt, ...)
  if os.getenv("ONECLI_SPEC_TIMES") then
    io.stderr:write(("  [production] " .. fmt .. "\n"):format(...))
  end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function lines_of(text)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    out[#out + 1] = line
  end
  return out
end

-- The lines of text that contain needle (plain).
local function lines_with(text, needle)
  local out = {}
  for _, line in ipairs(lines_of(text)) do
    if line:find(needle, 1, true) then out[#out + 1] = line end
  end
  return out
end

local function count(text, needle)
  local n, at = 0, 1
  while true do
    local s, e = text:find(needle, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[tostring(v)] = true end
  return s
end

local function keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  sort(out)
  return out
end

---------------------------------------------------------------------------
-- HTTP to nginx: HTTP/1.0, nginx answers and closes

local function send_request(port, path, timeout)
  local s = socket.tcp()
  s:settimeout(timeout or 10)
  local ok, err = s:connect("127.0.0.1", port)
  if not ok then
    s:close()
    return nil, err
  end
  assert(s:send("GET " .. path .. " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
  return s
end

-- status (nil if no answer), decoded JSON body (or the raw body), raw answer
local function read_answer(s)
  if not s then return nil, nil, "" end
  local data, _, partial = s:receive("*a")
  s:close()
  data = data or partial or ""
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local body = data:match("\r\n\r\n(.*)$") or ""
  local ok, decoded = pcall(core.json_decode, body)
  if ok and decoded ~= nil then
    return status, decoded, data
  end
  return status, body, data
end

local function get(port, path, timeout)
  return read_answer((send_request(port, path, timeout)))
end

-- All of paths at once (every request sent before any answer is read);
-- returns the answers { status =, body =, raw = } in order and the time
-- it all took.
local function concurrently(port, paths, timeout)
  local t0 = gettime()
  local sockets = {}
  for i, path in ipairs(paths) do
    sockets[i] = send_request(port, path, timeout) or false
  end
  local answers = {}
  for i = 1, #paths do
    local status, body, raw = read_answer(sockets[i] or nil)
    answers[i] = { status = status, body = body, raw = raw }
  end
  return answers, gettime() - t0
end

local function repeated(path, n)
  local paths = {}
  for i = 1, n do paths[i] = path end
  return paths
end

---------------------------------------------------------------------------
-- nginx instances

local Nginx = {}
Nginx.__index = Nginx

-- A prefix (conf, logs, tmp, and private/ for root only) and a free port.
function Nginx.new(name)
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(sh(("mkdir -p %s %s %s && mkdir -m 700 %s"):format(quote(prefix .. "/logs"),
    quote(prefix .. "/tmp"), quote(prefix .. "/conf"), quote(prefix .. "/private"))))
  return setmetatable({ name = name, prefix = prefix, port = free_port(), seen = {} }, Nginx)
end

function Nginx:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

function Nginx:log_tail()
  return "\n" .. self.name .. " error.log (end):\n" .. self:error_log():sub(-3000)
end

-- { pid =, args = } of every child of the master
function Nginx:children()
  local out = {}
  if not self.pid then return out end
  -- (without LD_PRELOAD: procps' ps hangs with ASan preloaded)
  local p = io.popen("env -u LD_PRELOAD ps -o pid=,args= --ppid " .. self.pid .. " 2>/dev/null")
  for line in p:lines() do
    local pid, args = line:match("^%s*(%d+)%s+(.*)$")
    if pid then out[#out + 1] = { pid = tonumber(pid), args = args } end
  end
  p:close()
  return out
end

-- The pids of the workers that take requests (not those shutting down).
function Nginx:workers()
  local out = {}
  for _, c in ipairs(self:children()) do
    if c.args:match("worker process$") then
      out[#out + 1] = c.pid
      self.seen[c.pid] = true
    end
  end
  sort(out)
  return out
end

-- Writes conf and starts nginx with env (name -> value) in its
-- environment; waits (bounded) until it listens with two workers.
function Nginx:start(conf, env)
  write_file(self.prefix .. "/conf/nginx.conf", conf)
  local lines = {}
  for _, name in ipairs(keys_of(env)) do
    lines[#lines + 1] = ("export %s=%s\n"):format(name, quote(env[name]))
  end
  local env_file = self.prefix .. "/private/env"
  write_file(env_file, concat(lines))
  -- nginx daemonizes and returns; LD_PRELOAD (ASan runs) is not for it
  local started = sh((". %s && rm -f %s && exec env -u LD_PRELOAD %s -p %s -c conf/nginx.conf "
    .. "-e logs/error.log </dev/null >%s 2>&1"):format(quote(env_file), quote(env_file),
    quote(NGINX), quote(self.prefix .. "/"), quote(self.prefix .. "/logs/start.log")))
  os.remove(env_file)
  assert(started, self.name .. " did not start: " .. (read_file(self.prefix .. "/logs/start.log") or "")
    .. self:log_tail())
  assert(wait_until(10, function()
    self.pid = self.pid or tonumber(read_file(self.prefix .. "/logs/nginx.pid") or "")
    return self.pid ~= nil and listening(self.port) and #self:workers() == 2
  end), self.name .. " does not listen with 2 workers" .. self:log_tail())
end

function Nginx:reload()
  return sh(("env -u LD_PRELOAD %s -p %s -c conf/nginx.conf -e logs/error.log -s reload "
    .. "</dev/null >>%s 2>&1"):format(quote(NGINX), quote(self.prefix .. "/"),
    quote(self.prefix .. "/logs/start.log")))
end

-- Stops the master (TERM, then KILL) and every worker it had, then
-- removes the prefix. Idempotent.
function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  self.pid = self.pid or tonumber(read_file(self.prefix .. "/logs/nginx.pid") or "")
  if self.pid then
    local pids = {}
    for _, c in ipairs(self:children()) do self.seen[c.pid] = true end
    for pid in pairs(self.seen) do pids[#pids + 1] = pid end
    if process.alive(self.pid) then
      process.stop(self.pid, function() sh("kill -TERM " .. self.pid .. " 2>/dev/null") end)
    end
    -- workers left behind (a master killed with KILL leaves them running)
    if not wait_until(3, function()
      for _, pid in ipairs(pids) do
        if process.alive(pid) then return false end
      end
      return true
    end) then
      for _, pid in ipairs(pids) do
        local cmd = read_file("/proc/" .. pid .. "/cmdline") or ""
        if process.alive(pid) and cmd:find("nginx", 1, true) then
          sh("kill -9 " .. pid .. " 2>/dev/null")
        end
      end
    end
  end
  sh("rm -rf " .. quote(self.prefix))
end

---------------------------------------------------------------------------
-- what the kernel says: the established connections to a port, with the
-- pids of the nginx processes that hold each socket

local function sockets_to(port)
  local p = io.popen(("env -u LD_PRELOAD ss -Htnp state established '( dport = :%d )' 2>/dev/null")
    :format(port))
  local out = {}
  for line in p:lines() do
    if line:find('"nginx"', 1, true) then
      local pids, seen = {}, {}
      for pid in line:gmatch("pid=(%d+)") do
        if not seen[pid] then
          seen[pid] = true
          pids[#pids + 1] = pid
        end
      end
      out[#out + 1] = { line = line, pids = pids }
    end
  end
  p:close()
  return out
end

-- The sockets to port held by more than one process, as text lines.
local function shared_sockets(port)
  local bad = {}
  for _, s in ipairs(sockets_to(port)) do
    if #s.pids > 1 then bad[#bad + 1] = s.line end
  end
  return bad
end

---------------------------------------------------------------------------
-- the API key, in every form it could take in a log

local function key_forms(key)
  local forms = { key }
  local bare = key:match("^%l+_(.+)$")        -- oc_... without its prefix
  if bare then forms[#forms + 1] = bare end
  forms[#forms + 1] = (key:gsub(".", function(c) return ("%%%02X"):format(c:byte()) end))
  forms[#forms + 1] = (key:gsub(".", function(c) return ("%%%02x"):format(c:byte()) end))
  forms[#forms + 1] = (key:gsub(".", function(c) return ("\\u%04x"):format(c:byte()) end))
  return forms
end

-- Asserts that text shows the key in none of its forms (the message never
-- shows the key).
local function assert_no_key(text, key, where)
  for i, form in ipairs(key_forms(key)) do
    assert.is_nil(text:find(form, 1, true), ("%s shows the API key (form %d of %d)")
      :format(where, i, #key_forms(key)))
  end
end

---------------------------------------------------------------------------
-- the README's configuration

local README_SECTION = "### OpenResty"

-- What cannot be fixed in a README, each replaced exactly once. ctx:
-- { port = }. Everything else runs as written.
local README_SUBSTITUTIONS = {
  { "listen 8080;",
    function(ctx) return ("listen 127.0.0.1:%d;"):format(ctx.port) end },
  { 'lua_package_path "/usr/local/share/lua/5.1/?.lua;/usr/local/share/lua/5.1/?/init.lua;;";',
    function() return ('lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;;";'):format(ROOT, ROOT) end },
  { 'lua_package_cpath "/usr/local/lib/lua/5.1/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";',
    function() return ('lua_package_cpath "%s/%s/?.so;%s;;";'):format(ROOT, BUILD, LUA_CPATH) end },
}

-- The ```nginx block of the README's OpenResty subsection.
local function readme_conf()
  local text = assert(read_file("README.md"), "README.md")
  local section, block, n = false, nil, 0
  for _, line in ipairs(lines_of(text)) do
    if line == README_SECTION then
      section = true
    elseif section and line:match("^##") then
      break
    elseif section and block == nil and line == "```nginx" then
      block, n = {}, n + 1
    elseif block and not block.done then
      if line == "```" then
        block.done = true
      else
        block[#block + 1] = line
      end
    elseif section and line == "```nginx" then
      n = n + 1
    end
  end
  assert(section, "README.md has no " .. README_SECTION .. " subsection")
  assert(block and block.done, "README.md's " .. README_SECTION .. " has no complete ```nginx block")
  assert(n == 1, "README.md's " .. README_SECTION .. " has " .. n .. " ```nginx blocks, not one")
  block.done = nil
  return concat(block, "\n") .. "\n"
end

local function substitute(conf, ctx)
  local subs = {}
  for i, s in ipairs(README_SUBSTITUTIONS) do subs[i] = s end
  if MODULES ~= DEFAULT_MODULES then
    subs[#subs + 1] = { "load_module " .. DEFAULT_MODULES .. "/ngx_http_lua_module.so;",
      function() return "load_module " .. MODULES .. "/ngx_http_lua_module.so;" end }
    subs[#subs + 1] = { "load_module " .. DEFAULT_MODULES .. "/ndk_http_module.so;",
      function() return "load_module " .. MODULES .. "/ndk_http_module.so;" end }
  end
  for _, s in ipairs(subs) do
    local from, to = s[1], s[2](ctx)
    assert(count(conf, from) == 1, "the README's nginx.conf must contain exactly once: " .. from)
    local at = conf:find(from, 1, true)
    conf = conf:sub(1, at - 1) .. to .. conf:sub(at + #from)
  end
  return conf
end

---------------------------------------------------------------------------

describe("lua-onecli in production nginx (master, 2 workers)", function()
  if not exists(NGINX) then
    pending("nginx is not installed (" .. NGINX .. "): apt-get install nginx libnginx-mod-http-lua")
    return
  end

  local srv
  local history = {}        -- the stand-in's request log before each reset

  -- Every request the stand-in logged since it started.
  local function all_requests()
    local all = {}
    for _, r in ipairs(history) do all[#all + 1] = r end
    for _, r in ipairs(srv:requests()) do all[#all + 1] = r end
    return all
  end

  local function hits(path)
    return net.hits(srv, path)
  end

  -- The stand-in as every test starts with it: no faults but the delay,
  -- an empty request log (what it held goes to history).
  local function fresh_standin()
    for _, r in ipairs(srv:requests()) do history[#history + 1] = r end
    srv:reset()
    srv:fault({ kind = "delay", seconds = DELAY, path = "/v1/agents", count = 100000 })
  end

  lazy_setup(function()
    assert(exists(MODULES .. "/ngx_http_lua_module.so"),
      "nginx's Lua module is missing: apt-get install libnginx-mod-http-lua")
    assert(exists(BUILD .. "/onecli/core.so"), BUILD .. "/onecli/core.so is missing: make build")
    srv = launcher.start({ mode = "v2" })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  before_each(fresh_standin)

  describe("the harness", function()
    local ngx_srv                 -- the nginx instance
    local port
    local startup_sockets = {}    -- `ss` lines of the sockets to the stand-in at start-up

    local function call(path, timeout)
      local status, body, raw = get(port, path, timeout)
      assert(status == 200, ("%s -> %s %s%s"):format(path, tostring(status), tostring(raw),
        ngx_srv:log_tail()))
      return body
    end

    -- The shared dict's records whose key starts with prefix.
    local function results(prefix)
      return call("/results?prefix=" .. prefix).results
    end

    -- Asserts that every answer is a 200 whose calls all succeeded within
    -- bound (measured inside nginx); returns the set of worker pids seen
    -- and the longest call.
    local function assert_all_ok(answers, bound)
      local pids, longest = {}, 0
      for i, a in ipairs(answers) do
        assert(a.status == 200 and type(a.body) == "table" and a.body.ok == true,
          ("answer %d: %s %s%s"):format(i, tostring(a.status), tostring(a.raw), ngx_srv:log_tail()))
        for _, c in ipairs(a.body.calls) do
          assert(c.elapsed < bound, ("answer %d: a call took %.3f s (bound %.3f s)")
            :format(i, c.elapsed, bound))
          longest = math.max(longest, c.elapsed)
        end
        pids[tostring(a.body.pid)] = true
      end
      return pids, longest
    end

    lazy_setup(function()
      -- (it may start after another test: no fault of that one applies to
      -- the master's and the timers' calls at start-up)
      fresh_standin()
      ngx_srv = Nginx.new("harness nginx")
      port = ngx_srv.port
      local vars = {
        PREFIX = ngx_srv.prefix, ROOT = ROOT, BUILD = BUILD, LUA_CPATH = LUA_CPATH,
        MODULES = MODULES, PORT = tostring(port),
      }
      local template = assert(read_file("spec/resty/production/nginx.conf.in"))
      local conf = template:gsub("%${([%w_]+)}", function(name)
        return assert(vars[name], "unknown template variable " .. name)
      end)
      ngx_srv:start(conf, { ONECLI_URL = srv.url, ONECLI_API_KEY = srv.api_key,
                            ONECLI_SPEC_GATEWAY = srv.gateway_url })
      for _, sock in ipairs(sockets_to(srv.port)) do
        startup_sockets[#startup_sockets + 1] = sock.line
      end
      -- the timers of init_worker made their calls (delayed) before the tests
      local workers = ngx_srv:workers()
      wait_until(5, function()
        local r = results("timer:init_worker:")
        for _, pid in ipairs(workers) do
          if not r["timer:init_worker:" .. pid] then return false end
        end
        return true
      end)
    end)

    lazy_teardown(function()
      if ngx_srv then ngx_srv:stop() end
    end)

    describe("clients made at module level and in init_worker", function()
      it("20 concurrent requests with the init_worker client finish within 2 x the delay", function()
        local answers, took = concurrently(port, repeated("/call?client=worker", 20))
        local pids, longest = assert_all_ok(answers, 2 * DELAY)
        -- measured inside nginx, across both workers: from the first
        -- handler's start to the last one's end
        local first, last = math.huge, 0
        for _, a in ipairs(answers) do
          first = math.min(first, a.body.started)
          last = math.max(last, a.body.finished)
          assert.is_true(a.body.calls[1].elapsed >= DELAY * 0.9,
            "a call did not wait for the stand-in's delay")
        end
        note("init_worker client, 20 requests: %.3f s inside nginx (longest call %.3f s), "
          .. "%.3f s seen from the spec", last - first, longest, took)
        assert.is_true(last - first < 2 * DELAY, ("20 calls took %.3f s inside nginx, not under %.1f s")
          :format(last - first, 2 * DELAY))
        -- from here: one after the other they would take 20 x 0.2 / 2 workers = 2 s
        assert.is_true(took < 1.5, ("20 requests took %.3f s"):format(took))
        assert.are.equal(20, hits("/v1/agents"))
        -- the client's own headers option: each call says its worker
        for _, r in ipairs(srv:requests()) do
          assert.is_truthy(pids[r.headers["x-worker"]], "X-Worker of a call: " .. tostring(r.headers["x-worker"]))
        end
      end)

      it("20 concurrent requests with the module-level client finish within 2 x the delay", function()
        local answers, took = concurrently(port, repeated("/call?client=module", 20))
        local _, longest = assert_all_ok(answers, 2 * DELAY)
        local first, last = math.huge, 0
        for _, a in ipairs(answers) do
          first = math.min(first, a.body.started)
          last = math.max(last, a.body.finished)
        end
        note("module-level client, 20 requests: %.3f s inside nginx (longest call %.3f s), "
          .. "%.3f s seen from the spec", last - first, longest, took)
        assert.is_true(last - first < 2 * DELAY, ("20 calls took %.3f s inside nginx, not under %.1f s")
          :format(last - first, 2 * DELAY))
        assert.is_true(took < 1.5, ("20 requests took %.3f s"):format(took))
        assert.are.equal(20, hits("/v1/agents"))
      end)

      it("20 calls in light threads of one request finish within 2 x the delay", function()
        local r = call("/threads?n=20")
        assert.is_true(r.ok, "a call failed: " .. core.json_encode(r))
        assert.are.equal(20, #r.calls)
        note("20 light threads in one request: %.3f s", r.elapsed)
        assert.is_true(r.elapsed >= DELAY * 0.9 and r.elapsed < 2 * DELAY,
          ("20 calls in one request took %.3f s"):format(r.elapsed))
        assert.are.equal(20, hits("/v1/agents"))
      end)
    end)

    describe("fork safety", function()
      it("a call in init_by_lua, then 200 concurrent requests: no connection shared, none hangs", function()
        -- the master's call, before the fork, through libcurl
        local state = call("/state")
        assert.are.same({}, state.setup_errors)
        assert.is_true(state.init_result.ok, "the init call failed: " .. tostring(state.init_result.err))
        assert.are.equal("init", state.init_result.phase)
        local init_pid = tostring(state.init_result.pid)

        local answers, took = concurrently(port, repeated("/call?client=module", 200), 15)
        local pids, longest = assert_all_ok(answers, CALL_BOUND)
        note("200 requests: %.3f s seen from the spec, longest call %.3f s (bound %.1f s)",
          took, longest, CALL_BOUND)
        local workers = ngx_srv:workers()
        assert.are.same(set_of(workers), pids, "both workers answered")
        assert.is_true(took < 5, ("200 requests took %.3f s"):format(took))
        assert.are.equal(200, hits("/v1/agents"))

        -- at the stand-in: one pid per connection, the master's own among them
        local log = all_requests()
        local by_connection, init_seen = {}, false
        for _, r in ipairs(log) do
          local w = r.headers["x-worker"]
          if w and r.gateway ~= true then
            by_connection[r.connection] = by_connection[r.connection] or {}
            by_connection[r.connection][w] = true
            init_seen = init_seen or (r.headers["x-phase"] == "init" and w == init_pid)
          end
        end
        assert.is_true(init_seen, "the stand-in saw the init call")
        local shared = {}
        for conn, seen in pairs(by_connection) do
          if #keys_of(seen) > 1 then
            shared[#shared + 1] = ("connection %s: X-Worker %s"):format(conn, concat(keys_of(seen), ", "))
          end
        end
        sort(shared)
        assert.are.same({}, shared, "connections used by two processes (init pid " .. init_pid .. ")")

        -- in the kernel: no socket to the stand-in held by two processes
        local shared_now = shared_sockets(srv.port)
        for i, line in ipairs(shared_now) do
          local here = line:match("(127%.0%.0%.1:%d+)%s+127%.0%.0%.1:" .. srv.port)
          for _, was in ipairs(startup_sockets) do
            if here and was:find(here .. " ", 1, true) then
              shared_now[i] = line .. "  <- there at start-up, before any request: the master's "
                .. "connection (init_by_lua, libcurl), still held by the workers"
            end
          end
        end
        assert.are.same({}, shared_now, "sockets to the stand-in held by two nginx processes")
      end)

      it("the libcurl transport made in the master starts afresh in each worker", function()
        local state = call("/state")
        assert.are.same({}, state.setup_errors)
        local workers = ngx_srv:workers()
        -- a blocking call in each worker (reuseport spreads new connections)
        local seen = {}
        for _ = 1, 40 do
          local r = call("/curl")
          assert.is_false(r.raised, "the call raised: " .. tostring(r.err))
          assert.are.equal(400, r.status)      -- the gateway's answer to an unknown route
          seen[tostring(r.pid)] = true
          if #keys_of(seen) == #workers then break end
        end
        assert.are.same(set_of(workers), seen, "both workers made a call")

        -- the master's connection (init) and each worker's: one pid each
        local by_connection, master_connections = {}, {}
        for _, r in ipairs(all_requests()) do
          local w = r.headers["x-worker"]
          if w and r.gateway == true then
            by_connection[r.connection] = by_connection[r.connection] or {}
            by_connection[r.connection][w] = true
            if r.headers["x-phase"] == "init" then master_connections[r.connection] = true end
          end
        end
        assert.is_true(next(master_connections) ~= nil, "the stand-in saw the master's libcurl call")
        for conn, pids in pairs(by_connection) do
          assert.are.equal(1, #keys_of(pids), ("connection %s used by X-Worker %s")
            :format(conn, concat(keys_of(pids), ", ")))
        end
        assert.are.same({}, shared_sockets(srv.gateway_port),
          "sockets to the gateway held by two nginx processes")
      end)
    end)

    describe("timers", function()
      it("a timer started in init_worker makes its call", function()
        local workers = ngx_srv:workers()
        local r
        assert.is_true(wait_until(5, function()
          r = results("timer:init_worker:")
          for _, pid in ipairs(workers) do
            if not r["timer:init_worker:" .. pid] then return false end
          end
          return true
        end), "no timer result for each worker: " .. core.json_encode(r))
        for _, pid in ipairs(workers) do
          local t = r["timer:init_worker:" .. pid]
          assert.is_true(t.ok, "the timer's call failed: " .. tostring(t.err))
          assert.are.equal("timer", t.phase)
          assert.are.equal(pid, t.pid and tonumber(t.pid))
          assert.are.equal(5, t.calls)
          -- 5 calls at once in the timer: with cosockets one delay, not five
          assert.is_true(t.elapsed < 2 * DELAY, ("5 calls in the timer took %.3f s"):format(t.elapsed))
        end
      end)

      it("a timer made by ngx.timer.at(0, fn) makes calls, with cosockets", function()
        local tag = "t" .. math.floor(gettime() * 1000)
        local workers = ngx_srv:workers()
        local seen, scheduled = {}, 0
        for _ = 1, 40 do
          local r = call("/timer?tag=" .. tag)
          assert.is_true(r.scheduled, tostring(r.err))
          scheduled = scheduled + 1
          seen[tostring(r.pid)] = true
          if #keys_of(seen) == #workers then break end
        end
        local r
        assert.is_true(wait_until(5, function()
          r = results("timer:" .. tag .. ":")
          for pid in pairs(seen) do
            if not r["timer:" .. tag .. ":" .. pid] then return false end
          end
          return true
        end), "no timer result: " .. core.json_encode(r))
        for pid in pairs(seen) do
          local t = r["timer:" .. tag .. ":" .. pid]
          assert.is_true(t.ok, "the timer's call failed: " .. tostring(t.err))
          assert.are.equal("timer", t.phase)
          assert.are.equal(5, t.calls)
          -- 5 calls at once in the timer: with cosockets one delay, not five
          assert.is_true(t.elapsed >= DELAY * 0.9 and t.elapsed < 2 * DELAY,
            ("5 calls in the timer took %.3f s"):format(t.elapsed))
        end
        -- every timer made its 5 calls, each from the worker that made it
        local from_timers
        wait_until(5, function()
          from_timers = 0
          for _, q in ipairs(srv:requests()) do
            if q.headers["x-phase"] == "timer" then
              from_timers = from_timers + 1
              assert.is_truthy(seen[q.headers["x-worker"]])
            end
          end
          return from_timers >= 5 * scheduled
        end)
        assert.are.equal(5 * scheduled, from_timers)
      end)
    end)

    describe("reload", function()
      it("nginx -s reload with calls in flight: they end cleanly, the new workers work", function()
        local old = ngx_srv:workers()
        assert.are.equal(2, #old)
        -- 20 requests of 3 calls each (3 x DELAY), all in flight ...
        local sockets = {}
        for i = 1, 20 do
          sockets[i] = assert(send_request(port, "/call?client=worker&n=3", 15))
        end
        assert.is_true(wait_until(5, function() return hits("/v1/agents") >= 20 end),
          "the calls never reached the stand-in")
        -- ... when nginx reloads
        assert.is_true(ngx_srv:reload(), "nginx -s reload failed: "
          .. (read_file(ngx_srv.prefix .. "/logs/start.log") or ""))
        local completed, failed = 0, 0
        for i, s in ipairs(sockets) do
          local status, body, raw = read_answer(s)
          assert(status == 200 and type(body) == "table",
            ("in-flight request %d: %s %s%s"):format(i, tostring(status), tostring(raw), ngx_srv:log_tail()))
          assert.is_truthy(set_of(old)[tostring(body.pid)], "answered by an old worker")
          for _, c in ipairs(body.calls) do
            if c.ok then
              completed = completed + 1
            else
              -- a clean failure: an error, told in one line
              failed = failed + 1
              assert.is_false(c.raised, "a call raised: " .. tostring(c.err))
              assert.matches("^onecli: [^\n]+$", c.err)
            end
          end
        end
        assert.are.equal(60, completed + failed)

        -- new workers, the old ones gone
        local new
        assert.is_true(wait_until(10, function()
          new = ngx_srv:workers()
          if #new ~= 2 then return false end
          for _, pid in ipairs(old) do
            if process.alive(pid) then return false end
          end
          local olds = set_of(old)
          return not olds[tostring(new[1])] and not olds[tostring(new[2])]
        end), "the old workers did not exit, or no new ones: " .. concat(new or {}, ", ")
          .. ngx_srv:log_tail())

        -- the new workers make calls, with both kinds of clients
        local answers = concurrently(port, repeated("/call?client=worker", 10))
        local pids = assert_all_ok(answers, CALL_BOUND)
        answers = concurrently(port, repeated("/call?client=module", 10))
        for pid in pairs(assert_all_ok(answers, CALL_BOUND)) do pids[pid] = true end
        for pid in pairs(pids) do
          assert.is_truthy(set_of(new)[pid], "answered by a new worker, not " .. pid)
        end
        local state = call("/state")
        assert.is_true(state.init_result.ok, "the new master's init call: " .. tostring(state.init_result.err))
        assert.are.same({}, state.setup_errors)
      end)
    end)

    describe("phases without cosockets", function()
      it("refuse a call at the call, naming the phase and ngx.timer.at", function()
        assert.are.equal("done", call("/phase/set"):match("^(%w+)"))
        local _, body = get(port, "/phase/filters")
        assert.matches("filters", tostring(body))
        local status = get(port, "/phase/balancer")
        assert.are.equal(200, status)
        local want = { "set", "header_filter", "body_filter", "log", "balancer", "init_worker" }
        local r
        assert.is_true(wait_until(5, function()
          r = results("phase:")
          for _, phase in ipairs(want) do
            local found = false
            for key in pairs(r) do
              if key:find("phase:" .. phase .. ":", 1, true) == 1 then found = true end
            end
            if not found then return false end
          end
          return true
        end), "not every phase recorded its attempt: " .. core.json_encode(keys_of(r or {})))
        for key, attempts in pairs(r) do
          local phase = key:match("^phase:([%w_]+):")
          for _, a in ipairs(attempts) do
            local what = ("%s, %s"):format(key, a.client)
            assert.is_nil(a.error, what .. ": " .. tostring(a.error))
            assert.are.equal(phase, a.phase, what)
            assert.is_true(a.raised or not a.returned, what .. ": the call was not refused")
            assert.are.equal("string", a.kind, what .. ": a plain message, not " .. tostring(a.kind))
            assert.is_truthy(a.message:find("%f[%w_]" .. phase .. "%f[^%w_]"),
              what .. ": names the phase: " .. a.message)
            assert.is_truthy(a.message:find("ngx.timer.at", 1, true), what .. ": names ngx.timer.at: "
              .. a.message)
          end
        end
        -- nothing was sent, from any phase (init_worker's attempts included)
        local sent = {}
        for _, q in ipairs(all_requests()) do
          local tag = q.headers["x-phase"] or ""
          if tag:find("refused:", 1, true) == 1 then sent[#sent + 1] = tag end
        end
        assert.are.same({}, sent, "calls went out")
      end)
    end)

    describe("errors in error.log", function()
      local function log_offset()
        return #ngx_srv:error_log()
      end

      -- The lines logged since offset that contain needle (waits, bounded,
      -- for at least one).
      local function new_lines(offset, needle)
        local found = {}
        wait_until(3, function()
          found = lines_with(ngx_srv:error_log():sub(offset + 1), needle)
          return #found > 0
        end)
        return found
      end

      local LINE = "onecli: 503 api_error: Service Unavailable %(GET /v1/secrets, request ([%x%-]+), 3 attempts%)"

      it("an uncaught failure with raise = true leaves one line: status, type, message, request id", function()
        srv:fault({ kind = "status", status = 503, path = "/v1/secrets", count = 100 })
        local offset = log_offset()
        local status = get(port, "/raise")
        assert.are.equal(500, status)
        local lines = new_lines(offset, "onecli: ")
        assert.are.equal(1, #lines, "one line: " .. concat(lines, "\n"))
        assert.matches("%[error%]", lines[1])
        assert.matches("lua entry thread aborted: runtime error: " .. LINE, lines[1])
        assert.is_nil(lines[1]:find("table: 0x", 1, true))
        assert.are.equal(0, count(ngx_srv:error_log():sub(offset + 1), "unknown reason"))
        assert.are.equal(3, hits("/v1/secrets"))
        assert_no_key(ngx_srv:error_log(), srv.api_key, "error.log")
      end)

      it("with the default raise = false the handler gets nil, err and ngx.log prints the same line", function()
        srv:fault({ kind = "status", status = 503, path = "/v1/secrets", count = 100 })
        local offset = log_offset()
        local r = call("/nil_err")
        assert.is_false(r.ok)
        assert.is_true(r.is_error, "err is the error object")
        assert.are.equal(503, r.status)
        assert.are.equal("api_error", r.type)
        assert.are.equal(3, r.attempts)
        assert.matches("^" .. LINE .. "$", r.string)
        assert.is_truthy(r.string:find("request " .. r.request_id, 1, true))
        local lines = new_lines(offset, "onecli: ")
        assert.are.equal(1, #lines, "one line: " .. concat(lines, "\n"))
        assert.matches("%[error%]", lines[1])
        assert.is_truthy(lines[1]:find("listing secrets: " .. r.string, 1, true),
          "the line carries tostring(err): " .. lines[1])
        assert_no_key(ngx_srv:error_log(), srv.api_key, "error.log")
      end)

      it("onecli.try turns the string raised inside nginx back into the error object", function()
        srv:fault({ kind = "status", status = 503, path = "/v1/secrets", count = 100 })
        local r = call("/try")
        assert.is_false(r.ok)
        assert.is_true(r.is_error, "an error object: " .. core.json_encode(r))
        assert.are.equal(503, r.status)
        assert.are.equal("api_error", r.type)
        assert.matches("^" .. LINE .. "$", r.string)
      end)

      it("never shows the API key, even when the server echoes it", function()
        srv:fault({ kind = "echo_key", path = "/v1/secrets", count = 100 })
        local offset = log_offset()
        local r = call("/nil_err")
        assert.are.equal(401, r.status)
        assert.are.equal(500, (get(port, "/raise")))
        local lines
        assert.is_true(wait_until(3, function()
          lines = lines_with(ngx_srv:error_log():sub(offset + 1), "onecli: 401")
          return #lines == 2
        end), "two lines logged")
        for _, line in ipairs(lines) do
          assert.is_truthy(line:find("[REDACTED]", 1, true), "the echoed key is masked")
        end
        assert_no_key(ngx_srv:error_log(), srv.api_key, "error.log")
        assert_no_key(core.json_encode(r), srv.api_key, "the handler's answer")
      end)
    end)

    describe("connection pools", function()
      it("sequential calls reuse one pooled connection per worker", function()
        for _ = 1, 10 do
          call("/call?client=worker")
        end
        local stats = srv:stats()
        assert.are.equal(10, stats.requests)
        assert.is_true(stats.connections <= 2, stats.connections .. " connections for 10 calls")
      end)

      it("pool_size = 4 with a backlog: 30 concurrent calls, 4 at a time per worker", function()
        local answers, took = concurrently(port, repeated("/call?client=capped", 30), 15)
        local pids, longest = assert_all_ok(answers, 5)
        assert.are.equal(30, hits("/v1/agents"))
        local stats = srv:stats()
        assert.is_true(stats.connections <= 4 * #keys_of(pids),
          ("%d connections for 30 calls in %d workers"):format(stats.connections, #keys_of(pids)))
        -- measured inside nginx, per worker: n calls 4 at a time take
        -- ceil(n / 4) delays: not fewer (the pool never had more than 4
        -- connections) and no call waits much longer (all 4 kept working)
        local per = {}
        for _, a in ipairs(answers) do
          local w = per[a.body.pid] or { n = 0, first = math.huge, last = 0 }
          per[a.body.pid] = w
          w.n = w.n + 1
          w.first = math.min(w.first, a.body.started)
          w.last = math.max(w.last, a.body.finished)
        end
        local rounds = 0
        for pid, w in pairs(per) do
          local r = math.ceil(w.n / 4)
          rounds = math.max(rounds, r)
          assert.is_true(w.last - w.first >= r * DELAY * 0.9, ("worker %s: %d calls in %.3f s")
            :format(pid, w.n, w.last - w.first))
        end
        note("pool_size 4 + backlog, 30 requests: %.3f s, longest call %.3f s, %d connections, "
          .. "%d rounds of %.1f s for the busiest worker", took, longest, stats.connections, rounds, DELAY)
        assert.is_true(longest < (rounds + 1) * DELAY, ("a call took %.3f s: the busiest worker had "
          .. "%d rounds of 4 calls of %.1f s"):format(longest, rounds, DELAY))
      end)
    end)
  end)

  describe("the README's nginx.conf", function()
    it("runs as written: 2 workers, a client each, agents listed, a failure logged as one line", function()
      local inst = Nginx.new("README nginx")
      finally(function() inst:stop() end)
      local conf = substitute(readme_conf(), { port = inst.port })
      inst:start(conf, { ONECLI_URL = srv.url, ONECLI_API_KEY = srv.api_key })
      assert.are.equal(2, #inst:workers())

      local status, body, raw = get(inst.port, "/agents")
      assert(status == 200 and type(body) == "table", ("/agents -> %s %s%s"):format(tostring(status),
        tostring(raw), inst:log_tail()))
      assert.are.equal("number", type(body.count))
      assert.are.equal(1, hits("/v1/agents"))

      -- (the first fault that matches applies: the delay goes first)
      assert.are.equal(200, (srv:control("DELETE", "/__control/faults")))
      srv:fault({ kind = "status", status = 503, path = "/v1/agents", count = 100 })
      local offset = #inst:error_log()
      status = get(inst.port, "/agents", 15)
      assert.are.equal(502, status)
      local lines
      wait_until(3, function()
        lines = lines_with(inst:error_log():sub(offset + 1), "onecli: ")
        return #lines > 0
      end)
      assert.are.equal(1, #lines, "one line: " .. concat(lines, "\n"))
      assert.matches("%[error%].*listing agents: onecli: 503 api_error: Service Unavailable "
        .. "%(GET /v1/agents, request [%x%-]+, 3 attempts%)", lines[1])
      note("the README nginx's line: %s", lines[1])
      assert_no_key(inst:error_log(), srv.api_key, "the README nginx's error.log")
    end)
  end)
end)
