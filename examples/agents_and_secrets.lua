-- Agents and secrets on a v2 server (v1.44+ too): create or reuse an agent,
-- store a secret, let the agent use it, look at its grants, clean up.
--
--   ONECLI_URL=http://localhost:10256 ONECLI_API_KEY=oc_... lua5.4 examples/agents_and_secrets.lua
--
-- ONECLI_PROJECT_ID is needed only with an organization key (oc_org_...).
local onecli = require("onecli")

local client = onecli.new()          -- ONECLI_URL, ONECLI_API_KEY, ONECLI_PROJECT_ID

-- ensure: creates the agent, or returns the one that already has this
-- identifier (the 409 is settled without an error)
local agent, created = client.agents:ensure({ name = "Research bot", identifier = "research-bot" })
print(("%s agent %s (%s)"):format(created and "created" or "reusing", agent.identifier, agent.id))

-- A secret: the value goes in, only a preview comes back, and no list
-- ever shows it again.
local secret = client.secrets:create({
  name = "Example API token",
  type = "generic",
  value = "tok_example_1234567890",
  hostPattern = "api.example.com",
  injectionConfig = { headerName = "Authorization", valueFormat = "Bearer {value}" },
})
print("created secret " .. secret.name .. " " .. secret.preview)

-- Let the agent use it. Grants are v1.44+ and v2; older servers use
-- client.agents:set_secrets(agent.id, { secret.id }).
client.agents:grant_secret(agent.id, secret.id)
local grants = client.agents:get_grants(agent.id)
for _, s in ipairs(grants.secrets) do
  print("  " .. agent.identifier .. " may use secret " .. s.name)
end

-- Update a field, then clear it again with JSON null.
client.secrets:update(secret.id, { pathPattern = "/v2/*" })
client.secrets:update(secret.id, { pathPattern = onecli.null })

for _, s in ipairs(client.secrets:list()) do
  print(("  secret %-20s %-8s %s"):format(s.name, s.type, s.hostPattern))
end

-- Clean up.
client.agents:revoke_secret(agent.id, secret.id)
client.secrets:delete(secret.id)
client.agents:delete(agent.id)
client:close()
print("cleaned up")
