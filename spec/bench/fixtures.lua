-- Writes the benchmark's two GET /agents answers into a directory:
-- agents10.json (10 agents, ~2.7 KB) and agents4000.json (4,000 agents,
-- ~1.1 MB). Each agent has the shape a real v1.41.0 server answers with
-- (../shared/reference/captures/v1.41.0/agents-list-after-create.txt),
-- with its own id, name, identifier, token and date; the first is the
-- default agent, as on a v1 server.
--   lua5.4 spec/bench/fixtures.lua DIR
local dir = assert(arg and arg[1], "usage: fixtures.lua DIR")

local fmt = string.format

-- deterministic pseudo-random hex (the same files on every run)
local state = 12345
local function hex(n)
  local out = {}
  for i = 1, n do
    state = (state * 1103515245 + 12345) % 2147483648
    out[i] = fmt("%x", (state >> 16) % 16)
  end
  return table.concat(out)
end

local function uuid()
  return fmt("%s-%s-4%s-a%s-%s", hex(8), hex(4), hex(3), hex(3), hex(12))
end

local function agent(i)
  local default = i == 1
  return fmt('{"id":"%s","name":"%s","identifier":"%s","accessToken":"aoc_%s",'
    .. '"isDefault":%s,"secretMode":"%s","createdAt":"2026-11-%02dT%02d:%02d:%02d.%03dZ",'
    .. '"_count":{"agentSecrets":%d,"agentAppConnections":%d}}',
    uuid(),
    default and "Default Agent" or fmt("Build runner %04d", i),
    default and "default" or fmt("build-runner-%04d", i),
    hex(64),
    default and "true" or "false",
    i % 5 == 0 and "selective" or "all",
    1 + i % 28, i % 24, i % 60, (i * 7) % 60, (i * 37) % 1000,
    i % 7, i % 3)
end

local function write(name, n)
  local items = {}
  for i = 1, n do
    items[i] = agent(i)
  end
  local body = "[" .. table.concat(items, ",") .. "]"
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  assert(f:write(body))
  f:close()
  return #body
end

local small = write("agents10.json", 10)
local large = write("agents4000.json", 4000)
print(fmt("fixtures: agents10.json %d bytes, agents4000.json %d bytes", small, large))
