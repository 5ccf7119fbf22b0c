-- Every ```lua block of README.md, and every examples/*.lua but demo.lua
-- and the busted specs (examples/*_spec.lua: spec/testing_spec.lua runs
-- them with busted), runs as written (no text substitution) in a process of its own, against
-- the stand-in server in v2 mode, configured the way a user configures it:
-- ONECLI_URL and ONECLI_API_KEY in the environment (a licensed server with a
-- runner, so that every example can run). The interpreter is the
-- one running this suite (lua5.4 or luajit) with its own build of the core.
-- Output is shown only when a run fails, with every key masked.
local net = require("support.net")
local launcher = require("onecli.standin.launcher")

local RUNTIME = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local BUILD = os.getenv("ONECLI_BUILD_DIR") or ("build/" .. RUNTIME)
local built = io.open(BUILD .. "/onecli/core.so")
if built then
  built:close()
else                                -- no core built for this runtime
  RUNTIME, BUILD = "lua5.4", "build/lua5.4"
end
local LUA_PATH = "./lua/?.lua;./lua/?/init.lua;;"
local LUA_CPATH = "./" .. BUILD .. "/?.so;;"
local TIMEOUT = 120          -- seconds for one script

-- Arguments a script is run with (the way its header says to run it).
local ARGS = {
  ["examples/approvals.lua"] = "2",      -- max_polls
}

-- State a script needs on the server first (what agents' traffic would
-- have made), and what it must have done there afterwards.
local PREPARE = {
  ["examples/approvals.lua"] = function(srv)
    return {
      get = srv:approval({ method = "GET", url = "https://api.github.com/user" }).id,
      post = srv:approval({ method = "POST", url = "https://api.github.com/user/repos" }).id,
    }
  end,
}
local VERIFY = {
  ["examples/approvals.lua"] = function(srv, ids)
    local states = {}
    for _, a in ipairs(srv:approvals()) do
      states[a.id] = a.state
    end
    assert.are.equal("approved", states[ids.get])
    assert.are.equal("denied", states[ids.post])
  end,
}

local function read(path)
  return assert(net.read_file(path), "cannot read " .. path)
end

local quote = net.shell_quote

--- The ```lua blocks of a markdown text: list of { line =, code = }.
local function lua_blocks(text)
  local blocks, current, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if current then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = current
        current = nil
      else
        current.code = current.code .. line .. "\n"
      end
    elseif line:match("^```lua%s*$") then
      current = { line = n, code = "" }
    end
  end
  assert(current == nil, "README.md: a ```lua block is not closed")
  return blocks
end

local function examples()
  local list = {}
  local p = assert(io.popen("ls examples/*.lua"))
  for path in p:lines() do
    if path ~= "examples/demo.lua" then
      list[#list + 1] = path
    end
  end
  p:close()
  table.sort(list)
  return list
end

-- Anything shaped like a OneCLI credential, and the server's own keys.
local function masked(text, srv)
  for _, key in ipairs({ srv.api_key, srv.org_key }) do
    if key and key ~= "" then
      local pos = text:find(key, 1, true)
      while pos do
        text = text:sub(1, pos - 1) .. "[REDACTED]" .. text:sub(pos + #key)
        pos = text:find(key, 1, true)
      end
    end
  end
  return (text:gsub("a?oc_[%w_%-]+", "[REDACTED]"))
end

--- Runs a Lua file as a user would; returns exit code, output (masked),
-- and whether the output showed a credential.
local function run(srv, file, args)
  local cmd = table.concat({
    "env -u ONECLI_PROJECT_ID -u ONECLI_GATEWAY_URL",
    "LUA_PATH=" .. quote(LUA_PATH),
    "LUA_CPATH=" .. quote(LUA_CPATH),
    "ONECLI_URL=" .. quote(srv.url),
    "ONECLI_API_KEY=" .. quote(srv.api_key),
    "timeout", tostring(TIMEOUT), RUNTIME, quote(file), args or "",
    "</dev/null 2>&1; echo \"__exit=$?\"",
  }, " ")
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  out = out:gsub("__exit=%d+%s*$", "")
  local shown = masked(out, srv)
  return code, shown, shown ~= out
end

local function check_run(srv, what, file, args)
  srv:reset()                       -- each script starts from a fresh server
  local prepared = PREPARE[file] and PREPARE[file](srv)
  local code, out, leaked = run(srv, file, args)
  if code ~= 0 then
    error(("%s exited with %s under %s:\n%s"):format(what, tostring(code), RUNTIME, out), 2)
  end
  if leaked then
    error(("%s printed a credential (masked here):\n%s"):format(what, out), 2)
  end
  if VERIFY[file] then
    VERIFY[file](srv, prepared)
  end
  return out
end

local README = read("README.md")
local BLOCKS = lua_blocks(README)

describe("README.md and examples/ run as written against the stand-in (v2)", function()
  local srv

  setup(function()
    -- an approvals poll with nothing pending is held 1 s, not ~30 s
    srv = launcher.start({ mode = "v2", max_lifetime = 900, poll_hold = 1, licensed = true, runner = true })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("README.md has lua blocks, and links the API reference and every example", function()
    assert.is_true(#BLOCKS >= 5)
    assert.truthy(README:find("(docs/api.md)", 1, true))
    for _, path in ipairs(examples()) do
      assert(README:find(path, 1, true), "README.md does not mention " .. path)
    end
  end)

  for _, block in ipairs(BLOCKS) do
    it(("README.md block at line %d"):format(block.line), function()
      local file = os.tmpname()
      local f = assert(io.open(file, "wb"))
      f:write(block.code)
      f:close()
      local ok, err = pcall(check_run, srv, "README.md block at line " .. block.line, file)
      os.remove(file)
      assert(ok, err)
    end)
  end

  for _, path in ipairs(examples()) do
    if not path:match("_spec%.lua$") then
      it(path, function()
        check_run(srv, path, path, ARGS[path])
      end)
    end
  end
end)
