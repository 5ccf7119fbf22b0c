-- Quickstart: the common tasks against a OneCLI server.
--
--   ONECLI_URL=http://localhost:10254 ONECLI_API_KEY=oc_... lua5.4 examples/quickstart.lua
--
-- Works against v1 (local mode, no key needed) and v2 servers.
local onecli = require("onecli")

local client = onecli.new()          -- ONECLI_URL, ONECLI_API_KEY, ONECLI_PROJECT_ID
print(("connected to %s, server %s"):format(client.url, client:health().version))

-- Agents
local agent = client.agents:create({ name = "Quickstart Agent", identifier = "quickstart" })
print("created agent " .. agent.identifier .. " (" .. agent.id .. ")")
for _, a in ipairs(client.agents:list()) do
  print(("  agent %-20s %s"):format(a.identifier, a.name))
end

-- Errors are objects: branch on status and type, never on the text.
local ok, err = pcall(client.agents.create, client.agents,
                      { name = "Again", identifier = "quickstart" })
assert(not ok and onecli.is_error(err))
print(("duplicate identifier -> %d %s (retryable: %s)"):format(err.status, err.type,
                                                              tostring(err.retryable)))
print("  " .. tostring(err))

-- Or take errors as values.
local _, missing = onecli.try(client.agents.delete, client.agents,
                              "00000000-0000-0000-0000-000000000000")
print("deleting a missing agent -> " .. missing.type)

-- Secrets: the value goes in, a preview comes back; values are never listed.
local secret = client.secrets:create({
  name = "Example API token",
  type = "generic",
  value = "tok_example_1234567890",
  hostPattern = "api.example.com",
  injectionConfig = { headerName = "Authorization", valueFormat = "Bearer {value}" },
})
print("created secret " .. secret.name .. " " .. secret.preview)
client.secrets:update(secret.id, { pathPattern = "/v2/*" })
client.secrets:update(secret.id, { pathPattern = onecli.null })   -- clear it again

-- Apps
local n = 0
for _, app in ipairs(client.apps:list()) do
  if app.connectionType == "api_key" then n = n + 1 end
end
print(n .. " apps connect with an API key")

-- Clean up
client.secrets:delete(secret.id)
client.agents:delete(agent.id)
print("cleaned up")
client:close()
