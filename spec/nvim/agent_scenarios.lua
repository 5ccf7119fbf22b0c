-- Run by spec/nvim/agent_spec.lua inside `nvim --headless` (see
-- spec/nvim/observe.lua): being the agent from Neovim, without blocking
-- the editor. client:run starts curl with jobstart and returns at once;
-- client:as_agent on the Neovim transport sends a request through the
-- gateway while a 10 ms timer keeps ticking, including while the gateway
-- holds the request for approval. ONECLI_UPSTREAM_URL is the echo server;
-- ONECLI_GATEWAY_URL the stand-in's gateway (approvals).

-- luacheck: globals vim

local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
local obs, finish, describe_error, ms, gap_meter =
      observe.obs, observe.finish, observe.describe_error, observe.ms, observe.gap_meter

local SCENARIOS = {}
local UPSTREAM = assert(os.getenv("ONECLI_UPSTREAM_URL"), "ONECLI_UPSTREAM_URL")
local BUNDLE = assert(os.getenv("ONECLI_BUNDLE"), "ONECLI_BUNDLE")


-- The token never goes into the observations.
local function untokened(s)
  return (tostring(s):gsub("aoc_%x+", "<token>"))
end

-- client:run with a callback: jobstart with the gateway's environment
-- (and only it, plus what Neovim had); returns the job id at once.
function SCENARIOS.run()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local meter = gap_meter(10)
  local t0 = ms()
  local h = client:run({ "sh", "-c",
    'echo "proxy=${HTTPS_PROXY%%@*}"; echo "ca=$CURL_CA_BUNDLE"; echo "no_proxy=${NO_PROXY:-none}";'
    .. ' sleep 0.3; exec curl -s -i --max-time 10 "$0/from-neovim"', UPSTREAM },
    { agent = "bot", ca_bundle = BUNDLE, callback = function(result, err)
      obs.run_error = describe_error(err)
      obs.status = result and result.status
      obs.output = result and untokened(result.output)
      obs.warnings_type = result and type(result.warnings)
      obs.callback_in_fast_event = vim.in_fast_event()
      obs.worst_gap = meter.worst()
      obs.ticks = meter.ticks()
      meter.stop()
      client:close()
      finish()
    end })
  obs.returned_ms = ms() - t0
  obs.handle_name = getmetatable(h).__name
  obs.done_at_once = h:is_done()
end

-- handle:cancel() on a running job stops it; the callback is told once.
function SCENARIOS.run_cancel()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0 }
  local pid_file = os.getenv("ONECLI_PID_FILE")
  local calls = 0
  local h = client:run({ "sh", "-c", 'echo $$ > "$0"; exec sleep 30', pid_file },
    { agent = "bot", ca_bundle = BUNDLE, callback = function(result, err)
      calls = calls + 1
      obs.result = result
      obs.cancel_error = describe_error(err)
    end })
  -- once the job has written its pid, cancel it
  local started = vim.wait(10000, function()
    local f = io.open(pid_file, "r")
    local pid = f and f:read("*l")
    if f then f:close() end
    return pid ~= nil and pid ~= ""
  end, 10)
  obs.started = started
  local f = io.open(pid_file, "r")
  local pid = f and tonumber(f:read("*l"))
  if f then f:close() end
  obs.alive_before_cancel = pid ~= nil and os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0
  obs.cancelled = h:cancel()
  obs.alive_after_cancel = true
  for _ = 1, 100 do                           -- (LuaJIT: os.execute gives the status)
    vim.wait(20, function() return false end, 10)
    if pid == nil or os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= 0 then
      obs.alive_after_cancel = false
      break
    end
  end
  vim.wait(200, function() return false end, 20)     -- the job's exit arrives meanwhile
  obs.calls = calls
  client:close()
  finish()
end

-- as_agent on the Neovim transport: made with a callback, its request
-- held for approval until the scenario approves it through the gateway.
function SCENARIOS.held()
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0, gateway_url = os.getenv("ONECLI_GATEWAY_URL") }
  local meter = gap_meter(10)
  client:as_agent("bot", { ca_bundle = BUNDLE, callback = function(agent, err)
    if not agent then
      obs.agent_error = describe_error(err)
      meter.stop()
      return finish()
    end
    obs.agent_text = untokened(tostring(agent))
    local t0 = ms()
    local h = agent:request("GET", UPSTREAM .. "/held/from-neovim", { callback = function(res, rerr)
      obs.request_ms = ms() - t0
      obs.status = res and res.status
      obs.request_error = describe_error(rerr)
      obs.worst_gap = meter.worst()
      obs.ticks = meter.ticks()
      meter.stop()
      agent:close()
      client:close()
      finish()
    end })
    obs.handle_done_at_once = h:is_done()
    -- decide it from here, as a plugin's approval UI would: poll the
    -- gateway's pending list (on the same transport) until it shows
    nvim.run(function()
      for _ = 1, 100 do
        local pending = client.approvals:pending()
        for _, r in ipairs(pending.requests) do
          if r.path == "/held/from-neovim" then
            obs.held_for_ms = ms() - t0
            nvim.sleep(0.3)           -- held a while longer: the timer must keep ticking
            client.approvals:decide(r.id, "approve")
            return
          end
        end
        nvim.sleep(0.05)
      end
      obs.never_held = true
    end)
  end })
end

observe.main(SCENARIOS, 40)
