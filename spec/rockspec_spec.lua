-- The rockspec and the Makefile list everything the tree holds: every Lua
-- module under lua/onecli (so a module added without a rockspec line
-- fails here, not after `luarocks install`), and every C source.
local ROCKSPEC = "rockspec/lua-onecli-scm-1.rockspec"

-- Runs the rockspec (plain Lua assignments) in an empty environment.
local function load_rockspec(path)
  local env = {}
  local chunk
  if rawget(_G, "setfenv") then          -- Lua 5.1, LuaJIT
    chunk = assert(loadfile(path))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(path, "t", env))
  end
  chunk()
  return env
end

local function list(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

-- lua/onecli/transport/nvim.lua -> onecli.transport.nvim; .../init.lua -> the folder
local function module_name(file)
  local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return name
end

describe("rockspec", function()
  local spec = load_rockspec(ROCKSPEC)
  local modules = spec.build and spec.build.modules or {}

  it("is a builtin build of lua-onecli that needs curl", function()
    assert.are.equal("lua-onecli", spec.package)
    assert.are.equal("builtin", spec.build.type)
    assert.is_table(spec.external_dependencies.CURL)
    assert.are.same({ "curl" }, modules["onecli.core"].libraries)
  end)

  it("lists every Lua module under lua/onecli, at its file", function()
    local files = list("find lua -name '*.lua'")
    assert.is_true(#files >= 4)
    local missing = {}
    for _, file in ipairs(files) do
      local name = module_name(file)
      if modules[name] ~= file then
        missing[#missing + 1] = ('["%s"] = "%s"'):format(name, file)
      end
    end
    assert.are.same({}, missing, "add to " .. ROCKSPEC .. ": " .. table.concat(missing, ", "))
  end)

  it("lists no Lua module that is not there", function()
    local stale = {}
    for name, file in pairs(modules) do
      if type(file) == "string" and not io.open(file) then stale[#stale + 1] = name end
    end
    table.sort(stale)
    assert.are.same({}, stale)
  end)

  it("builds onecli.core from every C source, as the Makefile does", function()
    local sources = list("ls csrc/*.c")
    local listed = {}
    for _, s in ipairs(modules["onecli.core"].sources) do listed[#listed + 1] = s end
    table.sort(listed)
    assert.are.same(sources, listed)
    local f = assert(io.open("Makefile", "rb"))
    local makefile = f:read("*a"):gsub("\\\n", " ")
    f:close()
    local line = makefile:match("\nSOURCES%s*=%s*([^\n]*)")
    assert.is_string(line, "no SOURCES line in the Makefile")
    local from_make = {}
    for s in line:gmatch("%S+") do from_make[#from_make + 1] = s end
    table.sort(from_make)
    assert.are.same(sources, from_make)
  end)
end)
