-- The client inside nginx, with a scripted `ngx` (no nginx needed): the
-- transport chosen per call by the phase, the refusal in phases without
-- cosockets, nil, err by default, raised strings nginx can print (and
-- onecli.try / onecli.error_of turning them back into objects), the
-- options of the OpenResty transport, and default headers everywhere.
-- spec/resty/ runs the same things in a real nginx.
local onecli = require("onecli")

local env = {}

-- A fake ngx for the duration of one test: phase() is what the test sets.
local function install_ngx(phase)
  env.phase = phase
  local fake = {
    socket = { tcp = function() error("no sockets in this spec") end },
    get_phase = function() return env.phase end,
    now = function() return 0 end,
    update_time = function() end,
    sleep = function() end,
    config = { ngx_lua_version = 10023 },
    log = function() end,
    WARN = 5, ERR = 4,
  }
  package.loaded["onecli.transport.resty"] = nil
  rawset(_G, "ngx", fake)
end

local function remove_ngx()
  rawset(_G, "ngx", nil)
  package.loaded["onecli.transport.resty"] = nil
end

-- A transport double answering from a script, recording requests.
local function scripted(status, body)
  local t = { seen = {} }
  function t.request(_, req)
    t.seen[#t.seen + 1] = req
    return status, {}, body
  end
  return t
end

local function new(opts)
  opts.url = opts.url or "http://127.0.0.1:1"
  opts.getenv = function() end
  return onecli.new(opts)
end

describe("inside nginx", function()
  after_each(remove_ngx)

  it("a client picks its transport per call from the phase, not once when it is made", function()
    install_ngx("init")                       -- made at start-up, in the master
    local c = new({})
    local in_init = c:_transport_now()
    assert.are.equal("userdata", type(in_init), "libcurl in init (start-up, blocking)")
    for _, phase in ipairs({ "content", "rewrite", "access", "timer", "ssl_cert" }) do
      env.phase = phase
      local t = c:_transport_now()
      assert.is_true(t.cosockets == true or getmetatable(t) == require("onecli.transport.resty").Transport,
                     phase .. " uses cosockets")
      assert.are.equal(rawget(_G, "ngx").sleep, c:_sleep_now(t), phase .. " sleeps with ngx.sleep")
    end
    env.phase = "init"
    assert.are.equal(in_init, c:_transport_now(), "the same libcurl transport again in init")
    c:close()
  end)

  it("a call in a phase without cosockets is refused at the call, naming ngx.timer.at", function()
    install_ngx("init_worker")
    local c = new({})
    for _, phase in ipairs({ "init_worker", "set", "header_filter", "body_filter", "log", "balancer",
                             "exit_worker", "ssl_session_store" }) do
      env.phase = phase
      local ok, msg = pcall(c.agents.list, c.agents)
      assert.is_false(ok, phase)
      assert.matches("^onecli: agents.list: nginx's " .. phase .. " phase has no cosockets", msg)
      assert.matches("ngx.timer.at(0, fn)", msg, 1, true)
      msg = select(2, pcall(c.request, c, "GET", "/agents"))
      assert.matches("^onecli: request: nginx's " .. phase, msg)
      msg = select(2, pcall(c.batch, c, { { "agents.list" } }))
      assert.matches("^onecli: batch: nginx's " .. phase .. " phase has no cosockets", msg)
    end
  end)

  it("returns nil, err by default (the lua-resty convention); outside nginx it raises", function()
    install_ngx("content")
    local c = new({ transport = scripted(404, '{"error":{"message":"Agent not found","type":"not_found_error"}}') })
    local agent, err = c.agents:get("missing")
    assert.is_nil(agent)
    assert.is_true(onecli.is_error(err))
    assert.are.equal(404, err.status)
    remove_ngx()
    local outside = new({ transport = scripted(404, "") })
    assert.has_error(function() outside.agents:get("missing") end)
  end)

  it("with raise = true it raises the one-line string nginx prints; try and error_of give the object",
     function()
    install_ngx("content")
    local key = "oc_" .. string.rep("5e", 32)
    local c = new({ raise = true, api_key = key, max_retries = 0,
                    transport = scripted(503, '{"error":"Service down for ' .. key .. '"}') })
    local ok, raised = pcall(c.agents.list, c.agents)
    assert.is_false(ok)
    assert.are.equal("string", type(raised))
    assert.matches("^onecli: 503 api_error: Service down for %[REDACTED%] %(GET /v1/agents", raised)
    assert.is_nil(raised:find("5e5e5e", 1, true))
    local err = onecli.error_of(raised)
    assert.is_true(onecli.is_error(err))
    assert.are.equal(503, err.status)
    local value, err2 = onecli.try(c.agents.list, c.agents)
    assert.is_nil(value)
    assert.is_true(onecli.is_error(err2))
    assert.are.equal(503, err2.status)
    -- a plain Lua error is still raised again by try
    assert.has_error(function() onecli.try(error, "a bug") end, "a bug")
  end)

  it("takes the OpenResty transport's options, and refuses them outside nginx", function()
    install_ngx("content")
    local c = new({ pool_size = 4, keepalive_timeout = 10 })
    local t = c:_transport_now()
    assert.are.equal(4, t.pool_size)
    assert.are.equal(10000, t.keepalive_ms)
    -- checked where they are given, with onecli.new's name on the message
    for _, bad in ipairs({ { pool_size = 0 }, { pool_size = 1.5 }, { backlog = -1 },
                           { read_timeout = 0 / 0 }, { send_timeout = -1 } }) do
      local name = next(bad)
      local ok, msg = pcall(new, bad)
      assert.is_false(ok, name)
      assert.matches("^onecli.new: option '" .. name .. "'", msg)
    end
    local ok, msg = pcall(new, { ssl_server_name = "api.example.com" })
    assert.is_false(ok)
    assert.matches("^onecli.new: option 'ssl_server_name' names the TLS server, but neither", msg)
    ok, msg = pcall(new, { url = "https://10.0.0.1", ssl_server_name = "10.0.0.1" })
    assert.is_false(ok)
    assert.matches("^onecli.new: option 'ssl_server_name'", msg)
    ok, msg = pcall(new, { pool_size = 4, transport = scripted(200, "[]") })
    assert.is_false(ok)
    assert.matches("option 'pool_size' is an option of the OpenResty transport", msg)
    remove_ngx()
    for _, name in ipairs({ "pool_size", "keepalive_timeout", "backlog", "send_timeout", "read_timeout" }) do
      ok, msg = pcall(new, { [name] = 5 })
      assert.is_false(ok, name)
      assert.matches("^onecli.new: option '" .. name .. "' applies inside nginx only", msg)
    end
    msg = select(2, pcall(new, { ssl_server_name = "api.example.com" }))
    assert.matches("option 'ssl_server_name' applies inside nginx only", msg)
  end)
end)

describe("default headers", function()
  it("go with every call; a call's own headers win", function()
    local t = scripted(200, "[]")
    local c = new({ transport = t, headers = { ["X-App"] = "a", ["X-Both"] = "client" } })
    c.agents:list()
    c.agents:list({ headers = { ["X-Both"] = "call" } })
    assert.are.equal("a", t.seen[1].headers["X-App"])
    assert.are.equal("client", t.seen[1].headers["X-Both"])
    assert.are.equal("a", t.seen[2].headers["X-App"])
    assert.are.equal("call", t.seen[2].headers["X-Both"])
    local ok, msg = pcall(new, { headers = { ["X-Bad"] = "a\r\nInjected: 1" } })
    assert.is_false(ok)
    assert.matches("header 'X%-Bad' must be a one%-line string", msg)
  end)

  it("a name in another case replaces the header, it is never sent twice", function()
    local t = scripted(200, "[]")
    local c = new({ transport = t, headers = { accept = "text/plain", ["X-Both"] = "client" } })
    c.agents:list({ headers = { ["x-both"] = "call" } })
    local h = t.seen[1].headers
    assert.are.equal("text/plain", h.accept)
    assert.is_nil(h.Accept)
    assert.are.equal("call", h["x-both"])
    assert.is_nil(h["X-Both"])
  end)

  it("may not replace what the client sets itself, nor name a header twice", function()
    for _, name in ipairs({ "Authorization", "authorization", "X-Project-Id", "x-workspace-id",
                            "Content-Type", "Content-Length", "Host", "Transfer-Encoding" }) do
      local ok, msg = pcall(new, { headers = { [name] = "x" } })
      assert.is_false(ok, name)
      assert.matches("'" .. name:gsub("%-", "%%-") .. "' is set by the client itself", msg)
    end
    local ok, msg = pcall(new, { headers = { ["X-A"] = "1", ["x-a"] = "2" } })
    assert.is_false(ok)
    assert.matches("names one header twice", msg)
    -- a call may still send its own Authorization (another key for one call)
    local t = scripted(200, "[]")
    new({ transport = t }).agents:list({ headers = { Authorization = "Bearer other" } })
    assert.are.equal("Bearer other", t.seen[1].headers.Authorization)
  end)
end)
