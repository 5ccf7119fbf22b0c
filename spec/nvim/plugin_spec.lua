-- lua-onecli as a Neovim plugin: installed the pack/ way (what lazy.nvim
-- `build = "make"` and packer `run = "make"` do too: a clone, then `make`
-- in its directory) into a temporary XDG_DATA_HOME, then used from
-- `nvim --headless` with a user config that says nothing about it: no
-- package.path, package.cpath or runtimepath edits anywhere.
--
-- setup copies the files a clone would have (git ls-files: tracked and
-- untracked-but-not-ignored, so no build/ and no lua/onecli/core.so) twice:
-- one copy gets a plain `make`, the other none. Child processes run with
-- the sanitizer preload and make's own variables unset, so the spec works
-- under every busted runtime, `make asan` and valgrind alike.
local launcher = require("onecli.standin.launcher")
local net = require("support.net")
local nvim_runner = require("support.nvim")
local run_ok, read_file, write_file, shell_quote =
      net.run_ok, net.read_file, net.write_file, net.shell_quote

local MAKE_TIMEOUT = 300   -- seconds, for the plugin's `make`
local PACK = "nvim/site/pack/test/start/lua-onecli"
local CLEAN_ENV = nvim_runner.CLEAN_ENV

local ROOT = nvim_runner.root()

if not nvim_runner.available() then
  describe("lua-onecli as a Neovim plugin", function()
    pending("nvim is not installed (apt-get install -y neovim)")
  end)
  return
end

-- The version the sources say (csrc/onecli.h).
local function repo_version()
  local text = assert(read_file(ROOT .. "/csrc/onecli.h"), "csrc/onecli.h")
  return assert(text:match('#define%s+ONECLI_VERSION%s+"([^"]*)"'), "ONECLI_VERSION")
end

local function shell_output(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

describe("lua-onecli as a Neovim plugin (pack/*/start + make)", function()
  local srv, tmp, built, bare, make_ok, make_log, runner

  -- Copies what a clone of the repository holds into dir.
  local function install(tarball, dir)
    assert(run_ok("mkdir -p " .. shell_quote(dir) .. " && tar -C " .. shell_quote(dir)
                  .. " -xf " .. shell_quote(tarball)))
    assert(read_file(dir .. "/Makefile"), "the copy has no Makefile")
    assert(read_file(dir .. "/lua/onecli/init.lua"), "the copy has no lua/onecli/init.lua")
    assert(not read_file(dir .. "/lua/onecli/core.so"), "the copy already has lua/onecli/core.so")
  end

  -- The environment of a Neovim run with the data home `data` ("data" or
  -- "data-bare": where pack/ is) and the user config in tmp/config.
  local function env(data)
    return runner:env({ XDG_DATA_HOME = tmp .. "/" .. data, ONECLI_NVIM_PATHS = "none" })
  end

  -- Runs spec/nvim/plugin_scenario.lua (once); returns its observations.
  local load_obs
  local function observe()
    if not load_obs then
      load_obs = runner:scenario("spec/nvim/plugin_scenario.lua", "load",
                                 { XDG_DATA_HOME = tmp .. "/data", ONECLI_NVIM_PATHS = "none" })
    end
    return load_obs
  end

  -- Runs :checkhealth onecli; returns the health buffer's text.
  local function checkhealth(data)
    local out = tmp .. "/health-" .. data .. ".txt"
    os.remove(out)
    local _, log = runner:run(env(data), table.concat({
      "-c", shell_quote("checkhealth onecli"),
      "-c", shell_quote("write! " .. out),
      "-c", shell_quote("qa!"),
    }, " "))
    local text = read_file(out)
    assert(text, "no :checkhealth output:\n" .. log)
    assert(not text:find(srv.api_key, 1, true), "the API key shows in :checkhealth")
    return text
  end

  setup(function()
    -- physical path: it is compared with what Neovim maps
    tmp = shell_output("cd \"$(mktemp -d)\" && pwd -P"):gsub("%s+$", "")
    assert(tmp:match("^/.+/tmp%.[%w]+$"), "mktemp -d gave " .. tmp)
    built = tmp .. "/data/" .. PACK
    bare = tmp .. "/data-bare/" .. PACK

    -- the files of a clone: tracked ones and new ones not ignored yet
    local tarball = tmp .. "/tree.tar"
    local copy
    if run_ok("git -C " .. shell_quote(ROOT) .. " rev-parse --is-inside-work-tree >/dev/null 2>&1") then
      copy = "cd " .. shell_quote(ROOT) .. " && git ls-files -z --cached --others --exclude-standard"
        .. " | tar --null -T - --ignore-failed-read -cf " .. shell_quote(tarball)
    else
      copy = "cd " .. shell_quote(ROOT) .. " && tar --exclude=./build --exclude=./.git"
        .. " --exclude='*.so' --exclude='*.o' -cf " .. shell_quote(tarball) .. " ."
    end
    assert(run_ok(copy .. " 2>" .. shell_quote(tmp .. "/tar.log")),
           "copying the tree failed: " .. tostring(read_file(tmp .. "/tar.log")))
    install(tarball, built)
    install(tarball, bare)
    os.remove(tarball)

    -- a user's config that says nothing about lua-onecli
    assert(run_ok("mkdir -p " .. shell_quote(tmp .. "/config/nvim")))
    write_file(tmp .. "/config/nvim/init.lua",
               "-- a user's config: nothing about lua-onecli\nvim.g.onecli_plugin_spec_config = 1\n")

    -- what lazy.nvim's build = "make" runs: `make` in the plugin's directory
    local log = tmp .. "/make.log"
    make_ok = run_ok(CLEAN_ENV .. " cd " .. shell_quote(built) .. " && timeout -k 5 "
                     .. MAKE_TIMEOUT .. " make </dev/null >" .. shell_quote(log) .. " 2>&1")
    make_log = read_file(log) or ""

    srv = launcher.start({ mode = "v2" })
    runner = nvim_runner.runner({ root = ROOT, srv = srv, tmp = tmp, plugins = true })
  end)

  teardown(function()
    if srv then srv:stop() end
    if tmp and tmp:match("^/.+/tmp%.[%w]+$") then run_ok("rm -rf " .. shell_quote(tmp)) end
  end)

  it("plain `make` builds lua/onecli/core.so (LuaJIT) and nothing else; a second `make` has nothing to do", function()
    assert(make_ok, "make failed in the plugin's directory:\n" .. make_log)
    assert(read_file(built .. "/lua/onecli/core.so"), "no lua/onecli/core.so after make:\n" .. make_log)
    -- only the LuaJIT build: the other runtimes' headers are not needed
    assert.equal("luajit\n", shell_output("ls " .. shell_quote(built .. "/build")))
    -- up to date: a plugin manager's build on every update rebuilds only what changed
    assert.is_true(run_ok(CLEAN_ENV .. " cd " .. shell_quote(built)
                          .. " && make -q >/dev/null 2>&1"), "make -q: not up to date")
    -- never committed
    if run_ok("git -C " .. shell_quote(ROOT) .. " rev-parse --is-inside-work-tree >/dev/null 2>&1") then
      assert.is_true(run_ok("git -C " .. shell_quote(ROOT)
                            .. " check-ignore -q --no-index lua/onecli/core.so"),
                     ".gitignore does not ignore lua/onecli/core.so")
    end
  end)

  it("require('onecli') works in nvim with no path edits, loading the core from the pack dir", function()
    assert(make_ok, "make failed in the plugin's directory:\n" .. make_log)
    local obs = observe()
    assert.is_true(obs.config_loaded, "the user config in XDG_CONFIG_HOME was not read")
    assert(obs.require_ok, "require('onecli') failed: " .. tostring(obs.require_error))
    assert.equal(repo_version(), obs.core_version)
    assert.equal(repo_version(), obs.onecli_version)
    -- the only copies on the runtimepath are the pack dir's
    assert.same({ built .. "/lua/onecli/core.so" }, obs.core_files)
    assert.same({ built .. "/lua/onecli/init.lua" }, obs.init_files)
    -- every Lua function the onecli module holds was compiled from the pack dir
    assert.is_true(#obs.onecli_sources > 0)
    for _, source in ipairs(obs.onecli_sources) do
      assert.equal("@" .. built .. "/lua/onecli/", source:sub(1, #built + 13))
    end
    -- the shared object Neovim mapped is the pack dir's, and no other
    if obs.mapped then
      assert.same({ built .. "/lua/onecli/core.so" }, obs.mapped)
    end
    -- nothing pointed Lua at the repository or at a build directory
    for _, v in ipairs({ obs.path, obs.cpath, obs.path_after, obs.cpath_after }) do
      assert.is_nil(v:find(ROOT, 1, true), v)
      assert.is_nil(v:find(built, 1, true), v)
    end
    assert.equal(obs.cpath, obs.cpath_after)
    for _, dir in ipairs(obs.rtp) do
      assert.not_equal(ROOT, dir)
    end
  end)

  it("calls the stand-in through onecli.transport.nvim from the plugin install", function()
    assert(make_ok, "make failed in the plugin's directory:\n" .. make_log)
    local obs = observe()
    assert(obs.call, "no answer from the call")
    assert.is_nil(obs.call.err)
    assert.equal("table", obs.call.result_type)
    assert.is_false(obs.call.in_fast_event)
  end)

  it(":checkhealth onecli reports the pack dir's core and no ERROR", function()
    assert(make_ok, "make failed in the plugin's directory:\n" .. make_log)
    local text = checkhealth("data")
    assert.matches("lua-onecli " .. repo_version(), text, 1, true)
    assert.matches("C core: " .. built .. "/lua/onecli/core.so", text, 1, true)
    assert.matches("non-blocking Neovim transport available", text, 1, true)
    assert.matches("answers GET /health", text, 1, true)
    assert.is_nil(text:find("ERROR", 1, true), text)
    assert.is_nil(text:find("stale", 1, true), text)
  end)

  it("without `make`, :checkhealth onecli says to run `make` in the plugin's directory", function()
    local text = checkhealth("data-bare")
    if text:find("C core loaded", 1, true) then
      pending("an onecli.core outside the plugin is on Neovim's default package.cpath")
      return
    end
    assert.matches("ERROR", text, 1, true)
    assert.matches("not built", text, 1, true)
    assert.matches("run `make` in the plugin's directory, " .. bare, text, 1, true)
    assert.matches('lazy.nvim: build = "make"', text, 1, true)
    assert.matches('packer: run = "make"', text, 1, true)
    assert.is_nil(text:find("cpath", 1, true), text)
  end)
end)
