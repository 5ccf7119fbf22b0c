-- Approvals: a handler loop that approves GET requests and denies the rest.
--
--   ONECLI_URL=http://localhost:10256 ONECLI_API_KEY=oc_... lua5.4 examples/approvals.lua [max_polls]
--
-- When a policy rule asks for approval, the OneCLI gateway holds the
-- agent's request until someone decides. This loop decides: each poll
-- returns the pending requests at once, or waits up to ~30 s for one.
-- It stops after max_polls polls (default 3). The gateway is found through
-- GET /gateway-url, or ONECLI_GATEWAY_URL.
local onecli = require("onecli")

local client = onecli.new()          -- ONECLI_URL, ONECLI_API_KEY, ONECLI_PROJECT_ID
local max_polls = tonumber(arg and arg[1]) or 3

local gateway, err = client:gateway_origin()
if not gateway then
  io.stderr:write("no gateway: ", tostring(err), "\n")
  os.exit(1)
end
print("deciding approvals on " .. gateway)

local function handler(request)
  local agent = request.agent and request.agent.name or "unknown agent"
  local decision = request.method == "GET" and "approve" or "deny"
  print(("%-7s %s %s (%s)"):format(decision, request.method, request.url, agent))
  return decision                    -- or nil: leave it for a human
end

local stats = client.approvals:run(handler, {
  max_polls = max_polls,
  on_error = function(e) io.stderr:write("approvals: ", tostring(e), "\n") end,
})
print(("%d polls: %d approved, %d denied, %d expired, %d errors"):format(
  stats.polls, stats.approved, stats.denied, stats.expired, stats.errors))
client:close()
