-- Seeing what a client does (onecli.observe): ONECLI_LOG and log_level,
-- one line per attempt with its request id, duration and retry decision,
-- trace bodies redacted, the default sink of a script (stderr), and the
-- key in none of it.
local launcher = require("onecli.standin.launcher")
local onecli = require("onecli")
local observe = require("onecli.observe")
local net = require("support.net")

local RUNTIME = os.getenv("ONECLI_SPEC_RUNTIME")
  or ((jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+")))
local BUILD = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. RUNTIME)

describe("logging", function()
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

  -- A client that logs into a table (level `level`, or the log function's default).
  local function logged(level, extra)
    local lines = {}
    local opts = { url = srv.url, api_key = srv.api_key, backoff_base = 0.01, backoff_max = 0.02,
                   log = function(line) lines[#lines + 1] = line end, log_level = level,
                   getenv = function() return nil end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return onecli.new(opts), lines
  end

  -- Runs a Lua script as a user would, with env; returns exit code and output.
  local function run_script(file, env)
    local parts = { "env -u ONECLI_PROJECT_ID -u ONECLI_GATEWAY_URL -u ONECLI_LOG",
      "LUA_PATH=" .. net.shell_quote("lua/?.lua;lua/?/init.lua;;"),
      "LUA_CPATH=" .. net.shell_quote(BUILD .. "/?.so;;"),
      "ONECLI_URL=" .. net.shell_quote(srv.url),
      "ONECLI_API_KEY=" .. net.shell_quote(srv.api_key) }
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. net.shell_quote(v) end
    parts[#parts + 1] = "timeout 60 " .. RUNTIME .. " " .. net.shell_quote(file)
      .. " </dev/null 2>&1; echo \"__exit=$?\""
    local p = assert(io.popen(table.concat(parts, " ")))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__exit=(%d+)%s*$"))
    return code, (out:gsub("__exit=%d+%s*$", ""))
  end

  it("ONECLI_LOG=debug: the quickstart prints one line per attempt on stderr, never the key", function()
    local code, out = run_script("examples/quickstart.lua", { ONECLI_LOG = "debug" })
    assert.equal(0, code, out)
    assert.is_nil(out:find(srv.api_key, 1, true), "the key is in the output")
    local attempts = 0
    for line in out:gmatch("[^\n]+") do
      if line:match("^onecli: %u+ /v1/%S* %-> ") then
        attempts = attempts + 1
        assert.matches("%(request [%w%-]+, %d+ ms, attempt 1 of 3", line)
      end
    end
    -- every call of the quickstart is there (it makes more than ten)
    assert.is_true(attempts >= 10, out)
    assert.matches("onecli: GET /v1/health %-> 200 %(request ", out)
    assert.matches("onecli: POST /v1/agents %-> 409 invalid_request_error %(request [%w%-]+, %d+ ms, "
                   .. "attempt 1 of 3; not retried%)", out)
  end)

  it("shows the retry decision of a retried 503, then the success", function()
    srv:fault({ path = "/v1/agents", kind = "status", status = 503, count = 1, retry_after = 0 })
    local client, lines = logged("debug")
    client.agents:list()
    assert.equal(2, #lines, table.concat(lines, "\n"))
    assert.matches("^onecli: GET /v1/agents %-> 503 api_error %(request [%w%-]+, %d+ ms, attempt 1 "
                   .. "of 3; retrying in %d+%.%d%d s%)$", lines[1])
    assert.matches("^onecli: GET /v1/agents %-> 200 %(request [%w%-]+, %d+ ms, attempt 2 of 3%)$",
                   lines[2])
    client:close()
  end)

  it("logs by level: error, warn, info, and off", function()
    local function run(level)
      srv:reset()
      srv:fault({ path = "/v1/agents", kind = "status", status = 503, count = 1, retry_after = 0 })
      local client, lines = logged(level)
      client.agents:list()
      pcall(client.agents.get, client.agents, "missing")
      client:close()
      return lines
    end
    local err_lines = run("error")
    assert.equal(1, #err_lines)
    assert.matches("404 not_found_error .*not retried", err_lines[1])
    local warn_lines = run("warn")
    assert.equal(2, #warn_lines)
    assert.matches("503 .*retrying in", warn_lines[1])
    local info_lines = run("info")
    assert.equal(3, #info_lines)
    assert.equal(0, #run("off"))
  end)

  it("at trace, shows the bodies with the key and secret values masked", function()
    local client, lines = logged("trace")
    local secret = client.secrets:create({ name = "logged", type = "generic",
      value = "sk-very-secret-value-1234", hostPattern = "api.example.com",
      injectionConfig = { headerName = "Authorization", valueFormat = "Bearer {value}" } })
    local text = table.concat(lines, "\n")
    assert.matches("trace: request body: .*\"value\":\"%*%*%*\"", text)
    assert.matches("trace: response body: ", text)
    assert.matches("trace: POST /v1/secrets: sending %(attempt 1%)", text)
    assert.is_nil(text:find("sk-very-secret-value-1234", 1, true))
    assert.is_nil(text:find(srv.api_key, 1, true))
    client.secrets:delete(secret.id)
    client:close()
  end)

  it("takes ONECLI_LOG through getenv, and refuses a level that does not exist", function()
    local lines = {}
    local client = onecli.new({ url = srv.url, api_key = srv.api_key,
      log = function(l) lines[#lines + 1] = l end,
      getenv = function(name) if name == "ONECLI_LOG" then return "ERROR" end end })
    client.agents:list()
    assert.equal(0, #lines)
    client:close()
    assert.has_error(function()
      onecli.new({ url = srv.url, log_level = "loud" })
    end, "onecli.new: option 'log_level' must be one of off, error, warn, info, debug, trace; got \"loud\"")
    assert.has_error(function()
      onecli.new({ url = srv.url, getenv = function(n) if n == "ONECLI_LOG" then return "chatty" end end })
    end, "onecli.new: ONECLI_LOG must be one of off, error, warn, info, debug, trace; got \"chatty\"")
  end)

  it("logs batch attempts too, marked as such", function()
    local client, lines = logged("info")
    client:batch({ { "agents.list" }, { "health" } })
    assert.equal(2, #lines)
    for _, l in ipairs(lines) do
      assert.matches("attempt 1 of 3, batch%)$", l)
    end
    client:close()
  end)

  describe("the host's default sink", function()
    after_each(function()
      rawset(_G, "ngx", nil)
      rawset(_G, "vim", nil)
    end)

    it("is ngx.log inside nginx, at the matching level", function()
      local got = {}
      rawset(_G, "ngx", { get_phase = function() return "content" end, socket = {},
        ERR = 4, WARN = 5, INFO = 7, DEBUG = 8,
        log = function(level, line) got[#got + 1] = { level, line } end })
      local sink = observe.default_sink()
      sink("onecli: a line", "warn")
      sink("onecli: another", "error")
      assert.same({ { 5, "onecli: a line" }, { 4, "onecli: another" } }, got)
    end)

    it("is a file in Neovim's log directory", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(net.run_ok("mkdir -p " .. net.shell_quote(dir)))
      rawset(_G, "vim", { fn = { stdpath = function(what)
        if what == "log" then return dir end
        error("stdpath " .. tostring(what))
      end } })
      local sink = observe.default_sink()
      sink("onecli: to the file", "info")
      local text = net.read_file(dir .. "/onecli.log")
      net.run_ok("rm -rf " .. net.shell_quote(dir))
      assert.matches("^%d+%-%d+%-%d+ %d+:%d+:%d+ onecli: to the file\n$", text)
    end)
  end)

  it("masks secret-looking JSON members, escapes included", function()
    assert.equal('{"name":"x","value":"***","token":"","n":1,"note":"a\\"value\\":\\"b"}',
      observe.mask_json('{"name":"x","value":"s\\"k","token":"","n":1,"note":"a\\"value\\":\\"b"}'))
  end)
end)
