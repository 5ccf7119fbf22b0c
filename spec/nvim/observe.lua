-- The Neovim side of spec/support/nvim.lua: loaded by a scenario file
-- running inside `nvim --headless` (not by busted).
--
--   local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
--   local obs, finish = observe.obs, observe.finish
--   local SCENARIOS = {}
--   function SCENARIOS.x() ...; obs.thing = 1; finish() end
--   observe.main(SCENARIOS)
--
-- Environment: ONECLI_NVIM_ROOT (the repository), ONECLI_NVIM_OUT (where
-- the observations go, a Lua literal), ONECLI_NVIM_SCENARIO (which one),
-- ONECLI_URL / ONECLI_API_KEY (the stand-in, read by onecli.new),
-- ONECLI_CLOSED_URL (a port nothing listens on). main() runs the scenario
-- with a watchdog that writes what was seen and quits whatever happens.
-- The API key never reaches the file: finish() scrubs it and sets
-- obs.key_in_observations.

-- luacheck: globals vim

local root = assert(os.getenv("ONECLI_NVIM_ROOT"), "ONECLI_NVIM_ROOT")
local out_path = assert(os.getenv("ONECLI_NVIM_OUT"), "ONECLI_NVIM_OUT")
local scenario = assert(os.getenv("ONECLI_NVIM_SCENARIO"), "ONECLI_NVIM_SCENARIO")

-- the repository's modules and LuaJIT core, unless the scenario checks
-- how Neovim finds them by itself (ONECLI_NVIM_PATHS=none: the plugin spec)
if os.getenv("ONECLI_NVIM_PATHS") ~= "none" then
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;"
    .. package.cpath
end

local _M = { root = root, scenario = scenario }
local obs = { scenario = scenario }
_M.obs = obs

-- A Lua literal of v (tables, strings, numbers, booleans).
local function serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "0/0" end
    return string.format("%.17g", v)
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do
      if type(k) == "string" or type(k) == "number" then
        keys[#keys + 1] = k
      end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      local key = type(k) == "number" and ("[" .. k .. "]") or ("[" .. string.format("%q", k) .. "]")
      parts[#parts + 1] = indent .. "  " .. key .. " = " .. serialize(v[k], indent .. "  ")
    end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  end
  return string.format("%q", tostring(v))
end
_M.serialize = serialize

-- Every string written is scrubbed of the API key first (and the spec is
-- told: obs.key_in_observations).
local KEYS = { os.getenv("ONECLI_API_KEY") }
_M.keys = KEYS      -- a scenario adds the other keys it uses
local function scrub(v)
  if type(v) == "string" then
    for _, key in ipairs(KEYS) do
      if key and key ~= "" and v:find(key, 1, true) then
        obs.key_in_observations = true
        v = v:gsub(key:gsub("%W", "%%%0"), "<KEY>")
      end
    end
    return v
  elseif type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do
      out[k] = scrub(x)
    end
    return out
  end
  return v
end

local finished = false
--- Writes the observations and quits Neovim (once).
function _M.finish()
  if finished then
    return
  end
  finished = true
  local f = assert(io.open(out_path, "w"))
  f:write("return ", serialize(scrub(obs)), "\n")
  f:close()
  vim.schedule(function() vim.cmd("qa!") end)
end

--- What a test needs to know about an error (never the whole object).
function _M.describe_error(err)
  if err == nil then
    return nil
  end
  local onecli = require("onecli")
  return {
    is_error = onecli.is_error(err),
    type = type(err) == "table" and err.type or nil,
    status = type(err) == "table" and err.status or nil,
    code = type(err) == "table" and err.code or nil,
    attempts = type(err) == "table" and err.attempts or nil,
    retryable = type(err) == "table" and err.retryable,
    text = tostring(err),
  }
end

--- A repeating timer of `period` ms that records its worst gap:
-- { worst(), ticks(), stop() }.
function _M.gap_meter(period)
  local last, worst, ticks = nil, 0, 0
  local timer = vim.loop.new_timer()
  timer:start(period, period, function()
    local now = _M.ms()
    if last then worst = math.max(worst, now - last) end
    last, ticks = now, ticks + 1
  end)
  return {
    worst = function() return worst end,
    ticks = function() return ticks end,
    stop = function() timer:stop(); timer:close() end,
  }
end

--- Milliseconds since some fixed point (vim.loop.hrtime).
function _M.ms()
  return vim.loop.hrtime() / 1e6
end

--- The median of a list of numbers.
function _M.median(list)
  local s = {}
  for i = 1, #list do s[i] = list[i] end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

--- Runs SCENARIOS[scenario] under a watchdog of `seconds` (default 30;
-- ONECLI_NVIM_WATCHDOG overrides).
function _M.main(SCENARIOS, seconds)
  seconds = tonumber(os.getenv("ONECLI_NVIM_WATCHDOG") or "") or seconds or 30
  local watchdog = vim.loop.new_timer()
  watchdog:start(seconds * 1000, 0, vim.schedule_wrap(function()
    obs.watchdog = true
    _M.finish()
  end))
  watchdog:unref()
  _M.watchdog = watchdog
  local fn = SCENARIOS[scenario]
  if not fn then
    obs.error = "unknown scenario " .. scenario
    return _M.finish()
  end
  local ok, err = xpcall(fn, debug.traceback)
  if not ok then
    obs.error = tostring(err)
    _M.finish()
  end
end

return _M
