-- The Neovim transport and :checkhealth onecli in a real `nvim --headless`
-- (Debian's Neovim 0.7, LuaJIT) against the local stand-in server. Each
-- test starts Neovim on spec/nvim/scenarios.lua, which writes what it
-- observed to a file (a Lua literal) and quits; the assertions are here.
-- The server's URL and key reach Neovim through the environment (an env
-- file sourced by the shell, so the key is on no command line).
local launcher = require("onecli.standin.launcher")
local core = require("onecli.core")
local net = require("support.net")
local nvim = require("support.nvim")
local read_file, shell_quote, closed_port = net.read_file, net.shell_quote, net.closed_port

local ROOT = nvim.root()

if not nvim.available() then
  describe("Neovim transport", function()
    pending("nvim is not installed (apt-get install -y neovim)")
  end)
  return
end

describe("Neovim transport (nvim --headless)", function()
  local srv, runner

  -- Runs one scenario of scenarios.lua; returns its observations.
  local function scenario(name)
    return runner:scenario("spec/nvim/scenarios.lua", name)
  end

  -- Runs :checkhealth onecli and returns the health buffer's text.
  local function checkhealth(extra_env, before)
    local out = runner.tmp .. "/health.txt"
    os.remove(out)
    local _, log = runner:run(runner:env(extra_env), table.concat({
      "--cmd", shell_quote("lua package.path = '" .. ROOT .. "/lua/?.lua;" .. ROOT
        .. "/lua/?/init.lua;' .. package.path; package.cpath = '" .. ROOT
        .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;' .. package.cpath"),
      before and ("-c " .. shell_quote(before)) or "",
      "-c", shell_quote("checkhealth onecli"),
      "-c", shell_quote("write! " .. out),
      "-c", shell_quote("qa!"),
    }, " "))
    local text = read_file(out)
    assert(text, "no :checkhealth output:\n" .. log)
    return text, log
  end

  local function hits(path)
    local n = 0
    for _, r in ipairs(srv:requests()) do
      if r.path == path then n = n + 1 end
    end
    return n
  end

  setup(function()
    srv = launcher.start({ mode = "v2" })
    runner = nvim.runner({ root = ROOT, srv = srv })
  end)

  teardown(function()
    if srv then srv:stop() end
    if runner then runner:cleanup() end
  end)

  before_each(function()
    srv:reset()
  end)

  it("completes a slow call through its callback while the editor's loop keeps running", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 1.5 })
    local obs = scenario("slow")
    assert.is_nil(obs.err)
    assert.equal("table", obs.agents_type)
    -- the call returned at once, before the answer
    assert.is_true(obs.returned_first)
    assert.is_true(obs.return_seconds < 0.5, "returned after " .. obs.return_seconds .. " s")
    assert.equal(0, obs.ticks_at_return)
    -- the answer came after the delay, and a 50 ms timer kept firing meanwhile
    assert.is_true(obs.elapsed >= 1.0 and obs.elapsed < 20, "elapsed " .. obs.elapsed)
    assert.is_true(obs.callback_ticks >= 5, "only " .. obs.callback_ticks .. " ticks")
    -- the callback runs on the main loop, not in a fast libuv callback
    assert.is_false(obs.in_fast_event)
  end)

  it("runs several slow calls at the same time", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 1.5, count = 3 })
    local obs = scenario("concurrent")
    for i = 1, 3 do
      assert.is_true(obs.results[i].ok, tostring(obs.results[i].err))
    end
    -- one after another would take 4.5 s at least
    assert.is_true(obs.elapsed >= 1.0 and obs.elapsed < 4.0, "elapsed " .. obs.elapsed)
  end)

  it("hands errors to the callback as error objects", function()
    local obs = scenario("errors")
    -- 404 for a missing resource
    assert.equal("nil", obs.not_found.result)
    assert.is_true(obs.not_found.err.is_error)
    assert.equal("not_found_error", obs.not_found.err.type)
    assert.equal(404, obs.not_found.err.status)
    assert.is_false(obs.not_found.in_fast_event)
    -- a port nothing listens on
    assert.equal("nil", obs.refused.result)
    assert.is_true(obs.refused.err.is_error)
    assert.equal("connection_error", obs.refused.err.type)
    assert.is_nil(obs.refused.err.status)
    -- a raising client still hands the error to the callback
    assert.is_true(obs.unknown_route.err.is_error)
    assert.equal("invalid_request_error", obs.unknown_route.err.type)
    -- without a callback, outside a coroutine: a clear error at once
    assert.is_false(obs.sync_call.ok)
    assert.matches("must run inside a coroutine", obs.sync_call.message, 1, true)
    assert.matches("callback", obs.sync_call.message, 1, true)
    assert.matches("run(", obs.sync_call.message, 1, true)
  end)

  it("runs straight-line code in run(), retrying a 500 after a timer-based sleep", function()
    srv:fault({ path = "/v1/agents", kind = "status", status = 500, count = 1 })
    local obs = scenario("run")
    assert.is_true(obs.run_done.ok, obs.run_done.value)
    assert.equal("done", obs.run_done.value)
    assert.is_true(obs.returned_first)
    assert.is_true(obs.return_seconds < 0.5, "returned after " .. obs.return_seconds .. " s")
    assert.equal("table", obs.agents_type)
    assert.equal(2, hits("/v1/agents"))
    local retried = false
    for _, line in ipairs(obs.log) do
      if line:find("GET /v1/agents -> 500", 1, true) and line:find("retrying in", 1, true) then
        retried = true
      end
    end
    assert.is_true(retried, table.concat(obs.log, "\n"))
    -- the backoff (0.2-0.4 s) was waited on a timer while the loop ran
    assert.is_true(obs.elapsed >= 0.15 and obs.elapsed < 20, "elapsed " .. obs.elapsed)
    assert.is_true(obs.ticks >= 1, "no tick during the retry")
    -- after a call the code is back on the main loop: the vim API works
    assert.is_false(obs.in_fast_event)
    assert.is_true(obs.api_ok)
    -- errors raise inside run (the client raises by default) and pcall catches them
    assert.is_false(obs.raised.ok)
    assert.is_true(obs.raised.err.is_error)
    assert.equal("not_found_error", obs.raised.err.type)
    assert.equal("ok", obs.health_status)
  end)

  it("sleeps on a timer inside run(), and reports errors in run() to done", function()
    local obs = scenario("sleep")
    assert.is_false(obs.sleep_outside.ok)
    assert.matches("must run inside a coroutine", obs.sleep_outside.message, 1, true)
    assert.is_true(obs.run_done.ok)
    assert.equal(5, obs.run_done.value)
    assert.is_true(obs.elapsed >= 0.25 and obs.elapsed < 20, "elapsed " .. obs.elapsed)
    assert.is_true(obs.ticks >= 2, "only " .. obs.ticks .. " ticks")
    assert.is_false(obs.failing.ok)
    assert.matches("boom", obs.failing.err, 1, true)
  end)

  it("fails transfers in flight with an error object when closed", function()
    srv:fault({ path = "/v1/agents", kind = "delay", seconds = 3 })
    local obs = scenario("close")
    assert.equal("nil", obs.cancelled.result)
    assert.is_true(obs.cancelled.err.is_error)
    assert.equal("CANCELLED", obs.cancelled.err.code)
    assert.is_true(obs.after_close.raised)
    assert.matches("^onecli: agents.list: the client is closed", obs.after_close.message)
  end)

  describe(":checkhealth onecli", function()
    it("names the version and the URL, checks the server, never shows the key", function()
      local text = checkhealth()
      assert.matches("lua-onecli " .. core._VERSION, text, 1, true)
      assert.matches(srv.url, text, 1, true)
      assert.matches("libcurl", text, 1, true)
      assert.matches("non-blocking Neovim transport available", text, 1, true)
      assert.matches("an API key is set", text, 1, true)
      assert.matches("answers GET /health", text, 1, true)
      assert.matches("API key is accepted", text, 1, true)
      assert.is_nil(text:find(srv.api_key, 1, true))
      assert.is_nil(text:find("ERROR", 1, true), text)
    end)

    it("checks the server require('onecli').setup{} configured, before $ONECLI_URL", function()
      local closed = "http://127.0.0.1:" .. closed_port()
      local text = checkhealth({ ONECLI_URL = closed },
                               "lua require('onecli').setup{ url = '" .. srv.url .. "' }")
      assert.matches(srv.url, text, 1, true)
      assert.matches("setup{ url }", text, 1, true)
      assert.matches("answers GET /health", text, 1, true)
      assert.is_nil(text:find(closed, 1, true))
      assert.is_nil(text:find(srv.api_key, 1, true))
    end)

    it("reports a server that does not answer, still without the key", function()
      local url = "http://127.0.0.1:" .. closed_port()
      local text = checkhealth({ ONECLI_URL = url })
      assert.matches(url .. "/v1", text, 1, true)
      assert.matches("does not answer GET /health", text, 1, true)
      assert.matches("connection_error", text, 1, true)
      assert.is_nil(text:find(srv.api_key, 1, true))
    end)
  end)
end)
