-- Being the agent from Neovim (scenarios in spec/nvim/agent_scenarios.lua):
-- client:run through jobstart and client:as_agent on the Neovim transport
-- reach the upstream through the stand-in's gateway without blocking the
-- editor, even while a request is held for approval.
local launcher = require("onecli.standin.launcher")
local upstream = require("onecli.standin.upstream")
local nvim = require("support.nvim")
local onecli = require("onecli")

local ROOT = nvim.root()
local FILE = "spec/nvim/agent_scenarios.lua"
local SECRET = "sk-from-neovim-" .. ("c0de"):rep(6)

if not nvim.available() then
  describe("being the agent from Neovim", function()
    pending("nvim is not installed (apt-get install -y neovim)")
  end)
  return
end

describe("being the agent from Neovim (nvim --headless)", function()
  local srv, up, runner

  setup(function()
    srv = launcher.start({ mode = "v2" })
    up = upstream.start({ lua = "lua5.4" })
    runner = nvim.runner({ root = ROOT, srv = srv })
  end)

  teardown(function()
    if up then up:stop() end
    if srv then srv:stop() end
    if runner then runner:cleanup() end
  end)

  before_each(function()
    srv:reset()
    srv:gateway_settings({ poll_hold = 1, approval_timeout = 180 })
    local client = onecli.new({ url = srv.url, api_key = srv.api_key, max_retries = 0,
                                getenv = function() return nil end })
    local bot = client.agents:create({ name = "Bot", identifier = "bot" })
    local secret = client.secrets:create({ name = "upstream key", type = "generic", value = SECRET,
      hostPattern = "127.0.0.1", injectionConfig = { headerName = "X-Api-Key", valueFormat = "{value}" } })
    client:request("PUT", "/agents/" .. bot.id .. "/grants/secrets/" .. secret.id)
    client.org.policy:create_rule({ name = "Review held paths", action = "allow", requireApproval = true,
      targets = { { kind = "network", hostPattern = "127.0.0.1", pathPattern = "/held/*" } } })
    client.org.policy:publish()
    client:close()
  end)


  local function env()
    return { ONECLI_UPSTREAM_URL = up.url, ONECLI_GATEWAY_URL = srv.gateway_url,
             ONECLI_BUNDLE = runner.tmp .. "/bundle.pem" }
  end

  it("client:run starts curl with jobstart and returns at once; curl reaches the upstream through the gateway",
    function()
      local obs, log = runner:scenario(FILE, "run", env())
      assert.equal("onecli.Handle", obs.handle_name)
      assert.is_false(obs.done_at_once)
      assert.is_true(obs.returned_ms < 1000, ("run took %.1f ms to return"):format(obs.returned_ms))
      assert.is_nil(obs.run_error)
      assert.equal(0, obs.status, obs.output)
      assert.equal("table", obs.warnings_type)
      assert.matches("proxy=http://x:<token>", obs.output, 1, true)
      assert.matches("ca=" .. runner.tmp .. "/bundle.pem", obs.output, 1, true)
      assert.matches("no_proxy=none", obs.output, 1, true)
      assert.matches("HTTP/1.1 200", obs.output, 1, true)
      assert.is_false(obs.callback_in_fast_event)
      assert.is_true(obs.ticks >= 20, "the editor's timer did not tick while the job ran")
      local seen = assert(up:saw("/from-neovim"), "the upstream never saw the job's request")
      assert.equal(SECRET, seen.headers["x-api-key"])
      assert.is_nil(log:find("aoc_%x"), "a token in Neovim's output")
    end)

  it("client:run's handle:cancel() stops the job and tells the callback once", function()
    local pid_file = runner.tmp .. "/job.pid"
    os.remove(pid_file)
    local e = env()
    e.ONECLI_PID_FILE = pid_file
    local obs = runner:scenario(FILE, "run_cancel", e)
    assert.is_true(obs.started, "the job never started")
    assert.is_true(obs.cancelled)
    assert.equal(1, obs.calls)
    assert.is_nil(obs.result)
    assert.equal("connection_error", obs.cancel_error.type)
    assert.equal("CANCELLED", obs.cancel_error.code)
    assert.is_true(obs.alive_before_cancel)
    assert.is_false(obs.alive_after_cancel, "the job still ran 2 s after cancel()")
  end)

  it("client:as_agent on the Neovim transport waits for an approval without blocking the editor", function()
    local obs, log = runner:scenario(FILE, "held", env())
    assert.is_nil(obs.agent_error)
    assert.is_nil(obs.never_held, "the gateway never held the request")
    assert.is_false(obs.handle_done_at_once)
    assert.is_nil(obs.request_error)
    assert.equal(200, obs.status)
    assert.is_true(obs.request_ms >= 300, "answered before it was approved")
    assert.is_true(obs.worst_gap < 200, ("worst timer gap %.1f ms"):format(obs.worst_gap))
    assert.is_true(obs.ticks >= 20)
    assert.is_nil(obs.agent_text:find("aoc_", 1, true))
    local seen = assert(up:saw("/held/from-neovim"))
    assert.equal(SECRET, seen.headers["x-api-key"])
    assert.is_nil(log:find("aoc_%x"), "a token in Neovim's output")
  end)
end)
