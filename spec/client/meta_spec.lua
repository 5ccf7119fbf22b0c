-- A call's metadata (the per-call option meta = true: result, meta), the
-- same fields on error objects, and errors that say where the user's code
-- called: err.where, the end of tostring(err), err.traceback, and what
-- lua5.4 prints for an uncaught one.
local launcher = require("onecli.standin.launcher")
local onecli = require("onecli")
local net = require("support.net")

local RUNTIME = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))
local BUILD = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. RUNTIME)

describe("call metadata and error locations", function()
  local srv, client

  setup(function()
    srv = launcher.start({ mode = "v2" })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    client = onecli.new({ url = srv.url, api_key = srv.api_key, backoff_base = 0.01,
                          backoff_max = 0.02, getenv = function() return nil end })
  end)

  after_each(function()
    client:close()
  end)

  it("meta = true returns result, meta: status, headers, request id, attempts, duration", function()
    srv:fault({ path = "/v1/agents", kind = "status", status = 503, count = 1, retry_after = 0 })
    local agents, meta = client.agents:list({ meta = true })
    assert.equal("table", type(agents))
    assert.equal(200, meta.status)
    assert.equal(2, meta.attempts)
    assert.equal("string", type(meta.request_id))
    assert.equal(meta.request_id, meta.headers["x-request-id"])
    -- every header of the answer, not only the three a call keeps
    assert.is_not_nil(meta.headers["content-length"] or meta.headers["transfer-encoding"])
    assert.is_true(meta.duration >= 0 and meta.duration < 10)
    assert.equal("GET", meta.method)
    assert.equal("/v1/agents", meta.path)
    -- without the option a call returns what it always did: one value
    assert.equal(1, select("#", client.agents:list()))
  end)

  it("carries the same fields on error objects", function()
    local agent, err = client.agents:get("missing", { raise = false, meta = true })
    assert.is_nil(agent)
    assert.equal(404, err.status)
    assert.equal(1, err.attempts)
    assert.equal("string", type(err.request_id))
    assert.equal(err.request_id, err.headers["x-request-id"])
    assert.is_true(err.duration >= 0 and err.duration < 10)
  end)

  it("raised errors name the caller's file and line; returned ones do not", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(client.agents.get, client.agents, "missing")
    assert.is_false(ok)
    local here = "spec/client/meta_spec.lua:" .. line
    assert.equal(here, err.where)
    assert.matches(" at " .. here:gsub("%p", "%%%0") .. "$", tostring(err))
    assert.is_nil(tostring(err):find("\n", 1, true))        -- still one line
    assert.matches("stack traceback:", err.traceback, 1, true)
    assert.matches("meta_spec.lua", err.traceback, 1, true)
    local _, returned = client.agents:get("missing", { raise = false })
    assert.is_nil(returned.where)
    assert.is_nil(tostring(returned):find(" at ", 1, true))
  end)

  it("an uncaught error in a lua5.4 script prints the script's file and line", function()
    if RUNTIME ~= "lua5.4" then
      pending("what lua.c prints is checked under lua5.4 (LuaJIT prints a traceback anyway)")
      return
    end
    local dir = os.tmpname()
    os.remove(dir)
    assert(net.run_ok("mkdir -p " .. net.shell_quote(dir)))
    local script = dir .. "/find_agent.lua"
    net.write_file(script, table.concat({
      "local onecli = require('onecli')",
      "local client = onecli.new{ max_retries = 0 }",
      "local agent = client.agents:get('missing-agent')",
      "print(agent)",
    }, "\n") .. "\n")
    local cmd = table.concat({
      "env -u ONECLI_LOG",
      "LUA_PATH=" .. net.shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "LUA_CPATH=" .. net.shell_quote(BUILD .. "/?.so;;"),
      "ONECLI_URL=" .. net.shell_quote(srv.url),
      "ONECLI_API_KEY=" .. net.shell_quote(srv.api_key),
      "timeout 30 lua5.4", net.shell_quote(script), "</dev/null 2>&1; echo \"__exit=$?\"",
    }, " ")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    net.run_ok("rm -rf " .. net.shell_quote(dir))
    assert.matches("__exit=1", out)
    assert.matches("onecli: 404 not_found_error: .* at " .. script:gsub("%p", "%%%0") .. ":3", out)
    assert.is_nil(out:find(srv.api_key, 1, true))
  end)

  it("the iterators and batches refuse meta, clearly", function()
    assert.has_error(function() client:batch({ { "agents.list", { meta = true } } }) end)
    local ok, msg = pcall(client.batch, client, { { "agents.list", { meta = true } } })
    assert.is_false(ok)
    assert.matches("'meta' option has no meaning in a batch", msg, 1, true)
  end)
end)
