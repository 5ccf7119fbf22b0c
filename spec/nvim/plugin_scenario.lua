-- Run by spec/nvim/plugin_spec.lua inside `nvim --headless` (not by
-- busted), with lua-onecli installed as a plugin in
-- $XDG_DATA_HOME/nvim/site/pack/test/start/lua-onecli and a user config
-- in $XDG_CONFIG_HOME that says nothing about it. This file changes
-- neither package.path, package.cpath nor the runtimepath: it records what
-- a user's `require("onecli")` gets. Environment:
--   ONECLI_NVIM_ROOT, ONECLI_NVIM_OUT, ONECLI_NVIM_SCENARIO ("load"): see observe.lua
--   ONECLI_NVIM_PATHS=none       observe.lua leaves package.path and cpath alone
--   ONECLI_URL, ONECLI_API_KEY   the stand-in server (read by onecli.new)

-- luacheck: globals vim

-- observe.lua leaves the paths alone here (ONECLI_NVIM_PATHS=none)
local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
local obs, finish = observe.obs, observe.finish

obs.config_loaded = vim.g.onecli_plugin_spec_config == 1
obs.path = package.path
obs.cpath = package.cpath
obs.rtp = vim.api.nvim_list_runtime_paths()

-- The shared objects this process has mapped whose path names onecli
-- (Linux: /proc/self/maps), each once.
local function mapped_cores()
  local f = io.open("/proc/self/maps", "r")
  if not f then
    return nil
  end
  local seen, list = {}, {}
  for line in f:lines() do
    local path = line:match("%s(/%S*onecli%S*%.so)$")
    if path and not seen[path] then
      seen[path] = true
      list[#list + 1] = path
    end
  end
  f:close()
  return list
end

local function run()
  local ok, onecli = pcall(require, "onecli")
  obs.require_ok = ok
  if not ok then
    obs.require_error = tostring(onecli)
    return finish()
  end
  local core = require("onecli.core")
  obs.core_version = core._VERSION
  obs.onecli_version = onecli._VERSION
  -- where Neovim found the modules: every copy on the runtimepath, the
  -- file the onecli module was compiled from, and the mapped shared object
  obs.core_files = vim.api.nvim_get_runtime_file("lua/onecli/core.so", true)
  obs.init_files = vim.api.nvim_get_runtime_file("lua/onecli/init.lua", true)
  local sources, seen = {}, {}
  for _, v in pairs(onecli) do
    if type(v) == "function" then
      local info = debug.getinfo(v, "S")
      if info.what == "Lua" and not seen[info.source] then
        seen[info.source] = true
        sources[#sources + 1] = info.source
      end
    end
  end
  table.sort(sources)
  obs.onecli_sources = sources
  obs.mapped = mapped_cores()
  obs.path_after = package.path
  obs.cpath_after = package.cpath

  -- one call through the Neovim transport against the stand-in
  local nvim = require("onecli.transport.nvim")
  local client = nvim.client{ max_retries = 0, timeout = 10 }
  local started = vim.loop.hrtime()
  client.agents:list({ callback = function(agents, err)
    obs.call = {
      elapsed = (vim.loop.hrtime() - started) / 1e9,
      result_type = type(agents),
      err = err ~= nil and tostring(err) or nil,
      in_fast_event = vim.in_fast_event(),
    }
    client:close()
    finish()
  end })
end

observe.main({ load = run })
