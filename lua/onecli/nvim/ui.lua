--- UI helpers of the :OneCLI command: waiting for vim.ui.select and
-- vim.ui.input inside a coroutine, scratch buffers, the clipboard, and
-- the formatting of ids, previews and durations.
--
-- Neovim 0.7 API only. The waiting helpers (await, select, input,
-- confirm) must run inside a coroutine, e.g. one started by
-- require("onecli.transport.nvim").run: they suspend it until the user
-- answers, without blocking the editor, whether the vim.ui.select in use
-- answers at once (the built-in one, through inputlist()) or later (a
-- floating picker).

-- luacheck: globals vim

local type, tostring, select, error, pairs, ipairs, tonumber, pcall, require =
      type, tostring, select, error, pairs, ipairs, tonumber, pcall, require
local unpack = unpack or table.unpack     -- luacheck: ignore 143
local co_running, co_yield, co_resume, co_status =
      coroutine.running, coroutine.yield, coroutine.resume, coroutine.status
local fmt, floor = string.format, math.floor

local _M = {}

local function pack(...)
  return { n = select("#", ...), ... }
end

--- Runs start(done) and waits, without blocking the editor, until done(...)
-- is called (at once or later, once only: later calls are ignored);
-- returns what done was given. Must run inside a coroutine.
---@param start fun(done: fun(...))
---@return any ...
function _M.await(start)
  local co, is_main = co_running()
  if co == nil or is_main then
    error("onecli.nvim: waiting for the user must run inside a coroutine "
          .. "(require(\"onecli.transport.nvim\").run)", 2)
  end
  local state, result = "starting", nil
  local function done(...)
    if state == "done" then
      return
    end
    if state == "starting" then       -- answered before start returned
      state = "done"
      result = pack(...)
      return
    end
    state = "done"
    local args = pack(...)
    -- resumed on the main loop, never from inside the UI's own callback;
    -- through onecli.handle when there is one, so that an error raised
    -- afterwards reaches the owner of the coroutine (run's `done`)
    vim.schedule(function()
      if co_status(co) ~= "suspended" then
        return
      end
      local has_handle, handle = pcall(require, "onecli.handle")
      if has_handle and type(handle) == "table" and type(handle.resume) == "function" then
        return handle.resume(co, unpack(args, 1, args.n))
      end
      local ok, err = co_resume(co, unpack(args, 1, args.n))
      if not ok then
        error(tostring(err), 0)
      end
    end)
  end
  start(done)
  if state == "done" then
    return unpack(result, 1, result.n)
  end
  state = "waiting"
  return co_yield()
end

--- vim.ui.select, waited for: returns the chosen item and its index, or
-- nil when the user cancelled.
---@param items any[]
---@param opts? table vim.ui.select's options (prompt, format_item, kind)
---@return any item
---@return integer? index
function _M.select(items, opts)
  return _M.await(function(done)
    vim.ui.select(items, opts or {}, done)
  end)
end

--- vim.ui.input, waited for: returns the text, or nil when cancelled.
---@param opts table vim.ui.input's options (prompt, default)
---@return string?
function _M.input(opts)
  return _M.await(function(done)
    vim.ui.input(opts, done)
  end)
end

--- Asks a yes/no question through vim.ui.select ("no" first); returns true
-- for "yes".
---@param prompt string
---@return boolean
function _M.confirm(prompt)
  local choice = _M.select({ "no", "yes" }, { prompt = prompt, kind = "onecli.confirm" })
  return choice == "yes"
end

--- Puts text in the unnamed register and, when a clipboard provider is
-- available, in the + register. Returns the registers written ('"', '+').
---@param text string
---@return string
function _M.copy(text)
  vim.fn.setreg('"', text)
  local regs = '"'
  if vim.fn.has("clipboard") == 1 and pcall(vim.fn.setreg, "+", text) then
    regs = regs .. " and +"
  end
  return regs
end

---------------------------------------------------------------------------
-- formatting

--- A string field of an API object, or nil (JSON null, numbers and
-- tables are not strings).
---@param v any
---@return string?
function _M.str(v)
  if type(v) == "string" and v ~= "" then
    return v
  end
  if type(v) == "number" then
    return tostring(v)
  end
  return nil
end

--- One line of at most `max` characters (bytes): white space runs and
-- control characters become one space, a longer text ends in "...".
---@param s any
---@param max? integer default 120
---@return string
function _M.one_line(s, max)
  max = max or 120
  s = tostring(s or ""):gsub("[%s%c]+", " "):gsub("^ ", ""):gsub(" $", "")
  if #s > max then
    s = s:sub(1, max - 3):gsub("[\128-\191]*$", ""):gsub("[\192-\255]$", "") .. "..."
  end
  return s
end

--- A URL without the user:password@ part (shown, not used).
---@param url any
---@return string
function _M.display_url(url)
  url = tostring(url or "")
  return (url:gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1"))
end

--- Seconds since the epoch of an ISO 8601 UTC time (2026-12-01T05:25:09.489Z),
-- or nil.
---@param iso any
---@return integer?
function _M.epoch(iso)
  if type(iso) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, s, rest = iso:match("^(%d%d%d%d)-(%d%d)-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then
    return nil
  end
  local offset = 0
  local zone = rest:gsub("^%.%d+", "")
  local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
  if sign then
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  elseif zone ~= "Z" and zone ~= "z" and zone ~= "" then
    return nil
  end
  -- days from the civil date (proleptic Gregorian), no time zone involved
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then
    y = y - 1
  end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (mo + (mo > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s) - offset
end

--- "2m 05s", "45s", "1h 02m" for a number of seconds (>= 0).
---@param seconds number
---@return string
function _M.duration(seconds)
  seconds = floor(seconds + 0.5)
  if seconds < 60 then
    return fmt("%ds", seconds)
  elseif seconds < 3600 then
    return fmt("%dm %02ds", floor(seconds / 60), seconds % 60)
  end
  return fmt("%dh %02dm", floor(seconds / 3600), floor(seconds % 3600 / 60))
end

--- "expires in 2m 05s" / "expired" / "expiry unknown" for an ISO time.
---@param iso any
---@param now? integer seconds since the epoch (default os.time())
---@return string text
---@return number? seconds left (negative once expired)
function _M.time_left(iso, now)
  local at = _M.epoch(iso)
  if not at then
    return "expiry unknown", nil
  end
  local left = at - (now or os.time())
  if left <= 0 then
    return "expired", left
  end
  return "expires in " .. _M.duration(left), left
end

---------------------------------------------------------------------------
-- scratch buffers

-- buffer number -> { on_enter = fn(line), lines = n }
local scratch = {}

local function find_buffer(name)
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_valid(buf) and vim.api.nvim_buf_get_name(buf) == name then
      return buf
    end
  end
  return nil
end

--- The scratch buffer named `name` if it exists, else nil.
---@param name string
---@return integer?
function _M.find(name)
  local buf = find_buffer(name)
  if buf and scratch[buf] then
    return buf
  end
  return nil
end

local function set_lines(buf, lines)
  local clean = {}
  for i, line in ipairs(lines) do
    clean[i] = tostring(line):gsub("[\n\r]", " ")
  end
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, clean)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
end

--- Replaces the lines of scratch buffer `buf` (and its <CR> handler, when
-- given).
---@param buf integer
---@param lines string[]
---@param on_enter? fun(lnum: integer)
function _M.update(buf, lines, on_enter)
  if not (scratch[buf] and vim.api.nvim_buf_is_valid(buf)) then
    return
  end
  set_lines(buf, lines)
  if on_enter then
    scratch[buf].on_enter = on_enter
  end
end

local function close_window()
  if #vim.api.nvim_tabpage_list_wins(0) > 1 then
    vim.cmd("close")
  else
    vim.cmd("bwipeout")
  end
end

--- Shows `lines` in a scratch buffer named `name` (buftype=nofile, wiped
-- when hidden, not modifiable), in a window at the bottom, reusing the
-- buffer and its window when they exist. <CR> calls on_enter(line number);
-- q closes the window. Returns the buffer number.
---@param name string e.g. "onecli://agents"
---@param lines string[]
---@param on_enter? fun(lnum: integer)
---@return integer buf
function _M.scratch(name, lines, on_enter)
  local api = vim.api
  local buf = find_buffer(name)
  if not (buf and scratch[buf]) then
    if buf then       -- a buffer of that name we did not make: leave it
      name = name .. "#" .. tostring(vim.loop.hrtime())
    end
    buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(buf, name)
    vim.bo[buf].buftype = "nofile"
    vim.bo[buf].bufhidden = "wipe"
    vim.bo[buf].swapfile = false
    vim.bo[buf].filetype = "onecli"
    scratch[buf] = {}
    api.nvim_buf_set_keymap(buf, "n", "<CR>", "", {
      noremap = true, silent = true, nowait = true,
      desc = "OneCLI: actions for this entry",
      callback = function()
        local s = scratch[buf]
        if s and s.on_enter then
          s.on_enter(api.nvim_win_get_cursor(0)[1])
        end
      end,
    })
    api.nvim_buf_set_keymap(buf, "n", "q", "", {
      noremap = true, silent = true, nowait = true, desc = "OneCLI: close", callback = close_window,
    })
    api.nvim_create_autocmd("BufWipeout", {
      buffer = buf,
      callback = function() scratch[buf] = nil end,
    })
  end
  scratch[buf].on_enter = on_enter
  set_lines(buf, lines)
  local win = vim.fn.bufwinid(buf)
  if win ~= -1 then
    api.nvim_set_current_win(win)
  else
    vim.cmd("botright split")
    api.nvim_win_set_buf(0, buf)
    api.nvim_win_set_height(0, math.max(3, math.min(#lines + 1, 15)))
  end
  return buf
end

--- Scratch buffers made here that still exist (for the specs).
---@return integer[]
function _M.buffers()
  local out = {}
  for buf in pairs(scratch) do
    if vim.api.nvim_buf_is_valid(buf) then
      out[#out + 1] = buf
    end
  end
  table.sort(out)
  return out
end

return _M
