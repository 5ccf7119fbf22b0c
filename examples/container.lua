-- Run an agent in a container: the agent's container config, turned into
-- `docker run` arguments by onecli.docker_args.
--
--   ONECLI_URL=http://localhost:10256 ONECLI_API_KEY=oc_... lua5.4 examples/container.lua [image]
--
-- Prints the docker command, with the agent's token masked. Given an image
-- (and with docker installed), runs it: the container's HTTP(S) traffic then
-- goes through the OneCLI gateway, which injects the credentials.
local onecli = require("onecli")

local client = onecli.new()          -- ONECLI_URL, ONECLI_API_KEY, ONECLI_PROJECT_ID
local image = arg and arg[1]

local agent = client.agents:ensure({ name = "Container bot", identifier = "container-bot" })

-- env (proxy, CA path, placeholders), the gateway's CA certificate, and
-- credential stubs for agent frameworks that read keys from files
local config = client:container_config({ agent = agent.identifier })
for _, warning in ipairs(config.warnings or {}) do
  print("warning: " .. warning)
end

-- docker_args writes the CA certificate and the stubs into this directory
-- and mounts them read-only
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -m 700 '" .. dir .. "'")
local args = onecli.docker_args(config, { dir = dir })

local function quote(s)
  if s:match("^[%w%-_./:=@,]+$") then
    return s
  end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function masked(s)
  return (s:gsub("aoc_[%w_%-]+", "aoc_***"))      -- the agent's gateway token
end

local shown, real, vars, mounts = {}, {}, 0, 0
for i, a in ipairs(args) do
  shown[i] = quote(masked(a))
  real[i] = quote(a)
  if a == "-e" then vars = vars + 1 elseif a == "-v" then mounts = mounts + 1 end
end
print(("%d environment variables, %d read-only mount(s) of files in %s"):format(vars, mounts, dir))
print("docker run --rm " .. table.concat(shown, " ") .. " " .. (image or "IMAGE"))

if image then
  os.execute("docker run --rm " .. table.concat(real, " ") .. " " .. quote(image))
else
  os.execute("rm -rf '" .. dir .. "'")       -- a dry run: nothing will mount them
end
client:close()
