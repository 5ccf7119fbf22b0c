-- The socket-driven form of the C core's multi driver
-- (core.new_multi{ sockets = true }): libcurl's socket and timer callbacks
-- as a queue of events (socket_events) and socket_action(). Driven here
-- without any event loop: every socket libcurl asked for is handed back
-- as ready, which libcurl tolerates (it checks for itself).
local core = require("onecli.core")
local launcher = require("onecli.standin.launcher")

describe("core.new_multi{ sockets = true }", function()
  local srv

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
  end)

  local function req(path)
    return { method = "GET", url = srv.url .. path, path = "/v1" .. path,
             headers = { Authorization = "Bearer " .. srv.api_key } }
  end

  -- Applies events to `watched` (fd -> what); returns the timer value.
  local function apply(watched, m, log)
    local changes, timer = m:socket_events()
    for i = 1, #changes, 2 do
      local fd, what = changes[i], changes[i + 1]
      assert.is_true(math.type == nil or math.type(fd) == "integer" or fd % 1 == 0)
      log[#log + 1] = what
      if what == "remove" then watched[fd] = nil else watched[fd] = what end
    end
    return timer
  end

  -- Drives m by its events until nothing is pending; returns the outcomes.
  local function drive(m, watched, log, limit)
    local out = {}
    local deadline = core.now() + (limit or 10)
    local timer = apply(watched, m, log)
    assert.equal(0, timer)      -- add() asked for an immediate timeout call
    while m:pending() > 0 and core.now() < deadline do
      m:socket_action()
      apply(watched, m, log)
      for fd, what in pairs(watched) do
        m:socket_action(fd, what)
        apply(watched, m, log)
      end
      for _, d in ipairs(m:collect()) do out[d.id] = d end
      if m:pending() > 0 then core.sleep(0.002) end
    end
    return out
  end

  it("names the sockets to watch, then lets go of them once the transfers are over", function()
    local m = core.new_multi({ sockets = true })
    local watched, log = {}, {}
    local a = m:add(req("/agents"))
    local b = m:add(req("/health"))
    local out = drive(m, watched, log)
    assert.equal(200, out[a].status)
    assert.equal(200, out[b].status)
    local seen = {}
    for _, w in ipairs(log) do seen[w] = true end
    assert.is_true(seen.r or seen.rw, "never asked to watch for reading")
    assert.is_true(seen.remove, "never let go of a socket")
    assert.is_nil(next(watched), "still watching a socket while idle")
    -- nothing more is asked while idle
    local changes = m:socket_events()
    assert.equal(0, #changes)
    m:close()
  end)

  it("stops watching a cancelled transfer's socket", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 2 })
    local m = core.new_multi({ sockets = true })
    local watched, log = {}, {}
    local id = m:add(req("/agents"))
    apply(watched, m, log)
    local deadline = core.now() + 5
    while next(watched) == nil and core.now() < deadline do
      m:socket_action()
      apply(watched, m, log)
      for fd, what in pairs(watched) do m:socket_action(fd, what); apply(watched, m, log) end
      core.sleep(0.002)
    end
    -- give the request time to go out, then cancel it
    for _ = 1, 20 do
      for fd, what in pairs(watched) do m:socket_action(fd, what) end
      apply(watched, m, log)
      core.sleep(0.005)
    end
    assert.is_not_nil(next(watched))
    assert.is_true(m:cancel(id))
    apply(watched, m, log)
    assert.is_nil(next(watched), "the cancelled transfer's socket is still watched")
    assert.equal(0, m:pending())
    m:close()
  end)

  it("refuses misuse clearly", function()
    local plain = core.new_multi()
    assert.has_error(function() plain:socket_action() end,
      "socket_action: this multi handle was made without sockets = true")
    plain:close()
    assert.has_error(function() core.new_multi({ sockets = "yes" }) end,
      "option 'sockets' must be a boolean")
    local m = core.new_multi({ sockets = true })
    assert.has_error(function() m:socket_action(3, "x") end)
    assert.has_error(function() m:socket_action(-1, "r") end)
    -- an fd libcurl does not know is harmless
    assert.equal(0, m:socket_action(1000, "r"))
    m:close()
    assert.has_error(function() m:socket_events() end, "multi is closed")
  end)
end)
