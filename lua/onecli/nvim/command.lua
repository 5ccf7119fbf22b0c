--- The :OneCLI command: subcommands, their completion, the lists and the
-- actions on an entry.
--
--   :OneCLI agents | secrets | rules    a list, one line per entry with its
--                                        id; <CR> (or picking it) offers the
--                                        actions: copy id, rename, delete
--   :OneCLI approvals                    the pending approval requests
--                                        (approve, deny, copy id)
--   :OneCLI approvals watch | stop       the approvals loop (onecli.nvim.approvals)
--   :OneCLI health                       GET /health of the configured server
--
-- Lists go in a scratch buffer (onecli://agents, ...), or through
-- vim.ui.select with setup{ list = "select" }. Every call runs in a
-- coroutine of the Neovim transport (nothing blocks the editor); a
-- failure is shown with vim.notify at ERROR level, as the error object's
-- one line (which never contains the key).

-- luacheck: globals vim

local type, ipairs, tostring, require, pcall = type, ipairs, tostring, require, pcall
local fmt, concat = string.format, table.concat

local config = require("onecli.nvim")
local ui = require("onecli.nvim.ui")

local _M = {}

--- The subcommands, in completion order.
_M.SUBCOMMANDS = { "agents", "secrets", "rules", "approvals", "health" }
--- The subcommands of `approvals`.
_M.APPROVALS_SUBCOMMANDS = { "watch", "stop" }

local NO = { raise = false }        -- per-call options: errors as values

local function notify(msg, level)
  config.notify(msg, level)
end

-- Runs fn() in a coroutine of the Neovim transport; an error raised in it
-- is shown (an error object as its one line, anything else as text).
local function run(fn, what)
  require("onecli.transport.nvim").run(fn, function(ok, err)
    if not ok then
      if type(err) == "string" then       -- a raised message: its first line
        err = err:gsub("\nstack traceback:.*$", "")
      end
      config.error(err, what)
    end
  end)
end

-- The list of an answer: an array, or the `data` of a page.
local function items_of(res)
  if type(res) ~= "table" then
    return {}
  end
  if type(res.data) == "table" then
    return res.data
  end
  return res
end

local s = ui.str

---------------------------------------------------------------------------
-- what each list shows and which calls act on an entry

-- kind -> { title, noun, list(client) -> items | nil, err, line(item),
-- name(item), rename(client, item, name) -> res, err,
-- remove(client, item) -> res, err }
local KINDS = {}

KINDS.agents = {
  title = "agents", noun = "agent",
  list = function(c) return c.agents:list(NO) end,
  line = function(a)
    local ident = s(a.identifier) or s(a.externalId)
    return fmt("%s %s%s", s(a.id) or "?", s(a.name) or "(no name)",
               ident and (" (" .. ident .. ")") or "")
  end,
  rename = function(c, a, name) return c.agents:rename(a.id, name, NO) end,
  remove = function(c, a) return c.agents:delete(a.id, NO) end,
}

KINDS.secrets = {
  title = "secrets", noun = "secret",
  list = function(c) return c.secrets:list(NO) end,
  line = function(x)
    local extra = {}
    extra[#extra + 1] = s(x.type) and ("[" .. x.type .. "]") or nil
    extra[#extra + 1] = s(x.hostPattern)
    extra[#extra + 1] = s(x.pathPattern)
    return fmt("%s %s%s", s(x.id) or "?", s(x.name) or "(no name)",
               #extra > 0 and (" " .. concat(extra, " ")) or "")
  end,
  rename = function(c, x, name) return c.secrets:update(x.id, { name = name }, NO) end,
  remove = function(c, x) return c.secrets:delete(x.id, NO) end,
}

local function rule_line(r)
  local extra = {}
  extra[#extra + 1] = s(r.action)
  extra[#extra + 1] = s(r.hostPattern)
  extra[#extra + 1] = s(r.pathPattern)
  if r.enabled == false then
    extra[#extra + 1] = "(disabled)"
  end
  return fmt("%s %s%s", s(r.id) or "?", s(r.name) or "(no name)",
             #extra > 0 and (" " .. concat(extra, " ")) or "")
end

-- v2 servers answer 410 on /rules: their rules are the organization's
-- policy rules (org.policy.*), which an admin's key may list and edit.
local POLICY = {
  title = "policy rules", noun = "policy rule",
  line = rule_line,
  rename = function(c, r, name) return c.org.policy:update_rule(r.id, { name = name }, NO) end,
  remove = function(c, r) return c.org.policy:delete_rule(r.id, NO) end,
}

KINDS.rules = {
  title = "rules", noun = "rule",
  list = function(c)
    local res, err = c.rules:list(NO)
    if err and err.status == 410 then
      local policy, perr = c.org.policy:list_rules(NO)
      if policy then
        return policy, nil, POLICY
      end
      return nil, tostring(err) .. "; the organization's policy rules: " .. tostring(perr)
    end
    return res, err
  end,
  line = rule_line,
  rename = function(c, r, name) return c.rules:update(r.id, { name = name }, NO) end,
  remove = function(c, r) return c.rules:delete(r.id, NO) end,
}

---------------------------------------------------------------------------
-- lists

-- Lists `kind` and shows the list (kind = "agents" | "secrets" | "rules").
local show_list

-- An entry's actions, offered through vim.ui.select; runs in a coroutine.
local function entry_actions(kind, ops, item)
  local id = s(item.id)
  if not id then
    notify("this entry has no id", vim.log.levels.WARN)
    return
  end
  local shown = s(item.name) and ui.one_line(item.name, 80)
  local label = fmt("%s %s", ops.noun, shown and (shown .. " (" .. id .. ")") or id)
  local actions = { "copy id" }
  if ops.rename then actions[#actions + 1] = "rename" end
  if ops.remove then actions[#actions + 1] = "delete" end
  local action = ui.select(actions, { prompt = "OneCLI " .. label, kind = "onecli.action" })
  if action == "copy id" then
    local regs = ui.copy(id)
    notify(fmt("copied %s to %s", id, regs))
  elseif action == "rename" then
    local name = ui.input({ prompt = "New name for " .. label .. ": ", default = s(item.name) or "" })
    if name == nil or name == "" or name == item.name then
      return
    end
    local _, err = ops.rename(config.client(), item, name)
    if err then
      config.error(err, "renaming " .. label)
      return
    end
    notify(fmt("renamed %s to %s", label, name))
    show_list(kind, true)
  elseif action == "delete" then
    if not ui.confirm("Delete " .. label .. "?") then
      return
    end
    local _, err = ops.remove(config.client(), item)
    if err then
      config.error(err, "deleting " .. label)
      return
    end
    notify("deleted " .. label)
    show_list(kind, true)
  end
end

-- Shows items: in the scratch buffer onecli://<kind>, or through
-- vim.ui.select. refresh: only update a buffer that is open already.
local function present(kind, ops, items, refresh)
  local lines = {}
  for i, item in ipairs(items) do
    lines[i] = ui.one_line(ops.line(item), 400)
  end
  local name = "onecli://" .. kind
  local function act(item)
    run(function() entry_actions(kind, ops, item) end, ops.noun)
  end
  if refresh then
    local buf = ui.find(name)
    if buf then
      ui.update(buf, #lines > 0 and lines or { "(no " .. ops.title .. ")" }, function(lnum)
        if items[lnum] then act(items[lnum]) end
      end)
    end
    return
  end
  if config.options().list == "select" then
    if #items == 0 then
      notify("no " .. ops.title)
      return
    end
    local item = ui.select(items, {
      prompt = "OneCLI " .. ops.title,
      kind = "onecli." .. kind,
      format_item = function(x) return ui.one_line(ops.line(x), 400) end,
    })
    if item then
      entry_actions(kind, ops, item)
    end
    return
  end
  ui.scratch(name, #lines > 0 and lines or { "(no " .. ops.title .. ")" }, function(lnum)
    if items[lnum] then act(items[lnum]) end
  end)
end

show_list = function(kind, refresh)
  if refresh and not ui.find("onecli://" .. kind) then
    return
  end
  local ops = KINDS[kind]
  local res, err, other = ops.list(config.client())
  if err then
    config.error(err, "listing " .. ops.title)
    return
  end
  present(kind, other or ops, items_of(res), refresh)
end

---------------------------------------------------------------------------
-- subcommands

local function list_command(kind)
  return function()
    run(function() show_list(kind) end, "listing " .. kind)
  end
end

local function health()
  run(function()
    local c = config.client()
    local res, err = c:health(NO)
    if err then
      config.error(err, c.url .. " does not answer GET /health")
      return
    end
    local parts = {}
    if type(res) == "table" then
      for _, k in ipairs({ "status", "version", "timestamp" }) do
        if s(res[k]) then parts[#parts + 1] = k .. " " .. s(res[k]) end
      end
    end
    notify(fmt("%s: %s", c.url, #parts > 0 and concat(parts, ", ") or ui.one_line(res)))
  end, "health")
end

local function approvals(args)
  local sub = args[2]
  local a = require("onecli.nvim.approvals")
  if sub == nil then
    run(function() a.list() end, "listing approvals")
  elseif sub == "watch" then
    a.watch()
  elseif sub == "stop" then
    a.stop()
  else
    notify(fmt("unknown subcommand 'approvals %s'; valid: approvals, approvals %s", ui.one_line(sub, 40),
               concat(_M.APPROVALS_SUBCOMMANDS, ", approvals ")), vim.log.levels.ERROR)
  end
end

local HANDLERS = {
  agents = list_command("agents"),
  secrets = list_command("secrets"),
  rules = list_command("rules"),
  approvals = approvals,
  health = health,
}

--- Runs :OneCLI with its arguments (the command's fargs).
---@param args string[]
function _M.run(args)
  args = args or {}
  local sub = args[1]
  local handler = sub and HANDLERS[sub]
  if handler == nil then
    local valid = concat(_M.SUBCOMMANDS, ", ")
    if sub == nil then
      notify("usage: :OneCLI {subcommand}; subcommands: " .. valid
             .. " (approvals watch, approvals stop)", vim.log.levels.WARN)
    else
      notify(fmt("unknown subcommand '%s'; valid: %s", ui.one_line(sub, 40), valid),
             vim.log.levels.ERROR)
    end
    return
  end
  if #args > (sub == "approvals" and 2 or 1) then
    notify(fmt("too many arguments for :OneCLI %s", sub), vim.log.levels.ERROR)
    return
  end
  local ok, err = pcall(handler, args)
  if not ok then
    config.error(err)
  end
end

local function matching(list, lead)
  local out = {}
  for _, word in ipairs(list) do
    if word:sub(1, #lead) == lead then
      out[#out + 1] = word
    end
  end
  return out
end

--- Completion of :OneCLI (the `complete` function of the command).
---@param arglead string
---@param cmdline string
---@param cursorpos integer
---@return string[]
function _M.complete(arglead, cmdline, cursorpos)
  arglead = arglead or ""
  local before = (cmdline or ""):sub(1, cursorpos or #(cmdline or ""))
  local words = {}
  for w in before:gmatch("%S+") do
    words[#words + 1] = w
  end
  -- words[1] is the command itself; the argument being completed is the
  -- last word when arglead is not empty, else a new one
  local index = #words - 1
  if arglead == "" then
    index = index + 1
  end
  if index <= 1 then
    return matching(_M.SUBCOMMANDS, arglead)
  elseif index == 2 and words[2] == "approvals" then
    return matching(_M.APPROVALS_SUBCOMMANDS, arglead)
  end
  return {}
end

--- Defines :OneCLI (plugin/onecli.lua calls this through a lazy require
-- of its own; calling it again redefines the command).
function _M.define()
  vim.api.nvim_create_user_command("OneCLI", function(o)
    _M.run(o.fargs)
  end, {
    nargs = "*",
    complete = _M.complete,
    desc = "OneCLI: agents, secrets, rules, approvals [watch|stop], health",
  })
end

_M.KINDS = KINDS       -- for the specs

return _M
