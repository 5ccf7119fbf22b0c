-- The rockspecs and the Makefile list everything the tree holds: every Lua
-- module under lua/onecli (so a module added without a rockspec line
-- fails here, not after `luarocks install`), and every C source. The
-- versioned rockspec is the scm one with a version and a tag: both build
-- the same way, and its version is the core's (csrc/onecli.h).
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

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- ONECLI_VERSION of csrc/onecli.h ("0.1.0")
local function core_version()
  return read("csrc/onecli.h"):match('#define%s+ONECLI_VERSION%s+"([^"]+)"')
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

  it("is a builtin build of lua-onecli that needs curl and no other rock", function()
    assert.are.equal("lua-onecli", spec.package)
    assert.are.equal("builtin", spec.build.type)
    assert.are.same({ "lua >= 5.1" }, spec.dependencies)
    -- the library, not the header: LuaRocks looks for headers in
    -- <prefix>/include only, and Debian's curl/curl.h is in the multiarch
    -- directory (the README's install needs no CURL_INCDIR=)
    assert.are.same({ library = "curl" }, spec.external_dependencies.CURL)
    assert.are.same({ "curl" }, modules["onecli.core"].libraries)
  end)

  it("installs the onecli-standin command, a Lua script", function()
    assert.are.same({ ["onecli-standin"] = "bin/onecli-standin" }, spec.build.install.bin)
    local first = read("bin/onecli-standin"):match("^[^\n]*")
    assert.are.equal("#!/usr/bin/env lua", first)
  end)

  it("has a versioned twin that builds the same way, at the core's version", function()
    local version = core_version()
    assert.is_string(version, "no ONECLI_VERSION in csrc/onecli.h")
    local path = ("rockspec/lua-onecli-%s-1.rockspec"):format(version)
    local f = io.open(path, "rb")
    assert(f, path .. " is missing (the rockspec of version " .. version .. ")")
    f:close()
    local twin = load_rockspec(path)
    assert.are.equal(version .. "-1", twin.version)
    assert.are.equal("v" .. version, twin.source.tag)
    assert.are.equal(spec.source.url, twin.source.url)
    for _, key in ipairs({ "package", "rockspec_format", "description", "dependencies", "external_dependencies",
      "build" }) do
      assert.are.same(spec[key], twin[key], key .. " differs between " .. ROCKSPEC .. " and " .. path)
    end
    -- no other versioned rockspec is left behind
    local want = { ROCKSPEC, path }
    table.sort(want)
    assert.are.same(want, list("ls rockspec/*.rockspec"))
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
