-- onecli.testing (the public testing kit), the onecli-standin command and
-- the example spec users copy (examples/testing_spec.lua), against the
-- running runtime's build of the core.
local onecli = require("onecli")
local testing = require("onecli.testing")
local socket = require("socket")
local net = require("support.net")

local RUNTIME = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local BUILD = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. RUNTIME)
local quote = net.shell_quote

-- Runs a shell command; returns its exit code and output (stdout+stderr).
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"__exit=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return code, (out:gsub("__exit=%d+%s*$", ""))
end

-- A Lua chunk run by this runtime with only the checkout's lua/ and the
-- core on its paths (no system directories: no LuaSocket).
local function run_isolated(code)
  local prelude = ("package.path=%q; package.cpath=%q; "):format("lua/?.lua;lua/?/init.lua", BUILD .. "/?.so")
  return sh(RUNTIME .. " -e " .. quote(prelude .. code))
end

describe("onecli.testing", function()
  describe("its dependencies", function()
    it("require('onecli') never loads LuaSocket", function()
      local code, out = sh(RUNTIME .. " -e " .. quote(("package.path=%q..package.path; "
        .. "package.cpath=%q..package.cpath; local o = require('onecli'); require('onecli.batch'); "
        .. "local c = o.new({ url = 'http://127.0.0.1:9', api_key = 'oc_x', max_retries = 0 }); "
        .. "c.agents:list({ raise = false }); c:close(); "
        .. "assert(package.loaded.socket == nil and package.loaded['socket.core'] == nil, 'socket loaded')")
        :format("lua/?.lua;lua/?/init.lua;", BUILD .. "/?.so;")))
      assert.are.equal(0, code, out)
    end)

    it("without LuaSocket, onecli works and onecli.testing says what to install", function()
      local code, out = run_isolated("assert(require('onecli').new); local ok, err = pcall(require, 'onecli.testing'); "
        .. "assert(not ok); io.write(tostring(err))")
      assert.are.equal(0, code, out)
      assert.truthy(out:find("lua-socket", 1, true), out)
      assert.truthy(out:find("luasocket", 1, true), out)
      assert.is_nil(out:find("no file", 1, true), "require's search list: " .. out)
    end)
  end)

  describe("start", function()
    it("starts each mode on free ports and says how to reach it", function()
      for _, o in ipairs({ { mode = "v1" }, { mode = "v1", edition = "cloud" }, { mode = "v2" } }) do
        local srv = testing.start(o)
        finally(function() srv:stop() end)
        assert.truthy(srv.url:match("^http://127%.0%.0%.1:%d+/v1$"), srv.url)
        assert.are.equal(srv.origin .. "/v1", srv.url)
        assert.truthy(srv.gateway_url:match("^http://127%.0%.0%.1:%d+$"), srv.gateway_url)
        assert.are.equal(o.mode, srv.mode)
        assert.are.equal(o.edition or "oss", srv.edition)
        assert.truthy(srv.api_key:match("^oc_%x+$"))
        assert.is_number(srv.pid)
        local client = onecli.new(srv:client_options({ max_retries = 0 }))
        assert.is_table(client.agents:list())
        client:close()
        local env = srv:env()
        assert.are.equal(srv.url, env.ONECLI_URL)
        assert.are.equal(srv.api_key, env.ONECLI_API_KEY)
        assert.are.equal(o.edition == "cloud" and srv.project_id or nil, env.ONECLI_PROJECT_ID)
        srv:stop()
        assert.is_false(srv:running())
      end
    end)

    it("defaults to v2 and takes a port, a key, the v2 switches and a seed", function()
      local port = net.closed_port()
      local key = "oc_" .. ("ab"):rep(32)
      local srv = testing.start({ port = port, api_key = key, licensed = true, runner = true,
        seed = { agents = { { name = "Bot", identifier = "bot" } } } })
      finally(function() srv:stop() end)
      assert.are.equal("v2", srv.mode)
      assert.are.equal(port, srv.port)
      assert.are.equal(key, srv.api_key)
      assert.are.same({ licensed = true, runner = true }, srv:instance())
      local client = onecli.new(srv:client_options({ max_retries = 0 }))
      assert.are.same({ "bot" }, { client.agents:list()[1].identifier })
      -- the seed's own requests are not in the log
      local seen = srv:requests()
      assert.are.equal(1, #seen)
      client:close()
    end)

    it("raises at the caller on misuse, and when the server cannot start", function()
      local line = debug.getinfo(1, "l").currentline
      local ok, err = pcall(function() testing.start({ mode = "v3" }) end)
      assert.is_false(ok)
      assert.truthy(err:find("testing_spec.lua:" .. (line + 1) .. ":", 1, true), err)
      assert.truthy(err:find('mode must be "v1" or "v2"', 1, true), err)
      ok, err = pcall(testing.start, { colour = "red" })
      assert.is_false(ok)
      assert.truthy(err:find("unknown option 'colour'", 1, true), err)
      ok, err = pcall(testing.start, { port = "x" })
      assert.is_false(ok)
      assert.truthy(err:find("option 'port' must be a number", 1, true), err)
      -- a taken port: the child's own message comes back
      local taken = assert(socket.bind("127.0.0.1", 0))
      finally(function() taken:close() end)
      local _, port = taken:getsockname()
      ok, err = pcall(testing.start, { port = tonumber(port), timeout = 5 })
      assert.is_false(ok)
      assert.truthy(err:find("cannot listen", 1, true), err)
    end)
  end)

  describe("a server", function()
    local srv, client

    setup(function()
      srv = testing.start({ mode = "v2", poll_hold = 0 })
    end)

    teardown(function()
      if srv then srv:stop() end
    end)

    before_each(function()
      srv:reset()
      client = onecli.new(srv:client_options({ max_retries = 0, timeout = 2 }))
    end)

    after_each(function()
      client:close()
    end)

    local function list()
      return client.agents:list({ raise = false })
    end

    it("fails with a status and Retry-After, for the matching method and path, count times", function()
      srv:fault({ kind = "status", status = 429, retry_after = 7, path = "/v1/agents", method = "get", count = 2 })
      assert.are.equal(1, #srv:faults())
      assert.is_table(client:health())                -- another path: untouched
      for _ = 1, 2 do
        local agents, err = list()
        assert.is_nil(agents)
        assert.are.same({ 429, "rate_limit_error", 7 }, { err.status, err.type, err.retry_after })
      end
      assert.is_table(list())                         -- used up
      assert.are.same({}, srv:faults())
      srv:fault({ kind = "status", status = 500 })
      srv:clear_faults()
      assert.is_table(list())
    end)

    it("answers an HTML error page or malformed JSON", function()
      srv:fault({ kind = "html", status = 504 })
      local _, err = list()
      assert.are.equal(504, err.status)
      assert.truthy(tostring(err):find("HTML", 1, true), tostring(err))
      srv:fault({ kind = "html" })
      _, err = list()
      assert.are.equal(502, err.status)
      srv:fault({ kind = "bad_json" })
      _, err = list()
      assert.are.equal("decode_error", err.type)
    end)

    it("drops, delays and hangs", function()
      srv:fault({ kind = "drop" })
      local _, err = list()
      assert.are.equal("connection_error", err.type)
      srv:fault({ kind = "delay", seconds = 0.3 })
      local t0 = socket.gettime()
      assert.is_table(list())
      assert.is_true(socket.gettime() - t0 >= 0.25)
      srv:fault({ kind = "hang" })
      _, err = list()
      assert.are.equal("timeout_error", err.type)
    end)

    it("refuses a fault it does not know, at the caller", function()
      local line = debug.getinfo(1, "l").currentline
      local ok, err = pcall(function() srv:fault({ kind = "explode" }) end)
      assert.is_false(ok)
      assert.truthy(err:find("testing_spec.lua:" .. (line + 1) .. ":", 1, true), err)
      assert.truthy(err:find("kind must be one of", 1, true), err)
      assert.is_false((pcall(srv.fault, srv, { kind = "status" })))
      assert.is_false((pcall(srv.fault, srv, { kind = "delay" })))
      assert.is_false((pcall(srv.fault, srv, { kind = "status", status = 500, colour = "red" })))
      ok, err = pcall(srv.fault, srv, { kind = "status", status = 5000 })
      assert.is_false(ok)
      assert.truthy(err:find("100-599", 1, true), err)
    end)

    it("tells what it received, filtered, and forgets it on request", function()
      local made = srv:seed({ agents = { { name = "A", identifier = "a" } } })
      assert.are.equal("a", made.agents[1].identifier)
      srv:clear_requests()
      list()
      client.agents:get(made.agents[1].id)
      local all = srv:requests()
      assert.are.equal(2, #all)
      assert.are.same({ "GET", "/v1/agents" }, { all[1].method, all[1].path })
      assert.are.equal("Bearer " .. srv.api_key, all[1].headers.authorization)
      assert.are.equal(1, #srv:requests({ path = "/v1/agents" }))
      assert.are.equal(2, #srv:requests({ method = "get" }))
      assert.are.equal(0, #srv:requests({ gateway = true }))
      assert.are.equal(3, srv:stats().requests)       -- since the reset: the seed's call too
      srv:clear_requests()
      assert.are.same({}, srv:requests())
    end)

    it("makes data through its API, and reset forgets it", function()
      local status, body = srv:api("POST", "/agents", { name = "B", identifier = "b" })
      assert.are.equal(201, status)
      assert.are.equal("b", body.identifier)
      status = srv:api("GET", "/agents/" .. body.id)
      assert.are.equal(200, status)
      srv:reset()
      assert.are.equal(404, (srv:api("GET", "/agents/" .. body.id)))
      assert.are.same({}, client.agents:list())
    end)

    it("queues approvals for the gateway", function()
      srv:seed({ agents = { { name = "A", identifier = "a" } } })
      local a = srv:approval({ method = "POST", url = "https://api.example.com/x", agent = "a" })
      assert.is_string(a.id)
      local all = srv:approvals()
      assert.are.equal(1, #all)
      assert.are.equal(a.id, all[1].id)
      assert.are.equal("pending", all[1].state)
    end)
  end)

  describe("in process", function()
    local has_luv, uv = pcall(require, "luv")
    if not has_luv then
      pending("luv is not installed (apt-get install -y lua-luv)")
      return
    end

    it("serves an asynchronous client on the host's loop, stepped by a timer", function()
      local uvt = require("onecli.transport.uv")
      local srv = testing.start({ in_process = true, seed = { agents = { { name = "Bot", identifier = "bot" } } } })
      assert.is_nil(srv.pid)
      local timer = uv.new_timer()
      timer:start(0, 1, function() srv:step(0) end)
      local client = uvt.client(srv:client_options({ max_retries = 1 }))
      finally(function()
        client:close()
        timer:close()
        srv:stop()
        uv.run("nowait")
      end)
      srv:fault({ kind = "status", status = 503, retry_after = 0 })
      local got
      client.agents:list({ callback = function(agents, err) got = { agents = agents, err = err } end })
      local deadline = socket.gettime() + 10
      while not got and socket.gettime() < deadline do uv.run("once") end
      assert.is_table(got, "no answer in 10 s")
      assert.is_nil(got.err)
      assert.are.same({ "bot" }, { got.agents[1].identifier })
      assert.are.equal(2, #srv:requests())
    end)
  end)

  describe("the onecli-standin command", function()
    it("prints its options with --help, and refuses a bad one", function()
      local code, out = sh(RUNTIME .. " bin/onecli-standin --help")
      assert.are.equal(0, code, out)
      for _, opt in ipairs({ "--mode v1|v2", "--port N", "--licensed", "--runner", "--api-key", "--max-lifetime" }) do
        assert.truthy(out:find(opt, 1, true), opt)
      end
      code, out = sh(RUNTIME .. " bin/onecli-standin --mode v9")
      assert.are.equal(2, code, out)
      assert.truthy(out:find("--mode must be v1 or v2", 1, true), out)
    end)

    it("serves on the port it is given, prints both URLs, and stops on SIGINT", function()
      local port, out_file = net.closed_port(), os.tmpname()
      local p = assert(io.popen(("%s bin/onecli-standin --mode v2 --port %d --licensed --quiet --max-lifetime 30 "
        .. ">%s 2>&1 & echo $!"):format(RUNTIME, port, quote(out_file))))
      local pid = tonumber(p:read("*l"))
      p:close()
      finally(function()
        os.execute("kill " .. pid .. " 2>/dev/null")
        os.remove(out_file)
      end)
      assert.is_true(net.wait_until(10, function() return net.listening(port) end), "not listening")
      local out = net.read_file(out_file)
      assert.truthy(out:find("listening on http://127.0.0.1:" .. port .. " (mode v2)", 1, true), out)
      assert.truthy(out:match("gateway on http://127%.0%.0%.1:%d+"), out)
      local client = onecli.new({ url = "http://127.0.0.1:" .. port, api_key = "oc_" .. ("7e57"):rep(16),
        max_retries = 0 })
      assert.are.equal("ok", client:health().status)
      client:close()
      os.execute("kill -INT " .. pid)
      assert.is_true(net.wait_until(5, function() return not net.listening(port) end), "still listening")
      assert.truthy(net.read_file(out_file):find("interrupted, stopped", 1, true))
    end)
  end)

  describe("examples/testing_spec.lua", function()
    it("passes with busted under this runtime", function()
      local code, out = sh(("busted --lua=%s examples/testing_spec.lua"):format(RUNTIME == "luajit" and "luajit"
        or RUNTIME))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("5 successes / 0 failures / 0 errors", 1, true), out)
    end)
  end)
end)
