--- Iterators over the paginated lists of v2 (reference §14.2 rule 8):
--
--   for member in client.org.members:each({ q = "ann" }) do ... end
--   for event in client.conversations:each_event(id, { since = 10 }) do ... end
--
-- "cursor" lists answer {data = {...}, nextCursor = str|null} and take
-- `cursor`; "transcript" pages answer {events = {...}, nextSince = n,
-- hasMore = bool} and take `since`. The query is the page call's (limit
-- is the page size, sent with every page); iteration starts where it says
-- (cursor, since) and stops after the last page. A failed page raises
-- like any call; with the option raise = false the loop gets `false, err`
-- once and stops. A server that hands back the cursor it was given (no
-- progress) ends the loop with a decode_error instead of asking forever.

local core = require("onecli.core")

local error, type, select, pairs, tostring = error, type, select, pairs, tostring
local fmt = string.format
local null = core.null

local _M = {}

local KINDS = {
  cursor = { param = "cursor", items = "data",
    next = function(page)
      local c = page.nextCursor
      if c == nil or c == null or c == "" then return nil end
      return c
    end },
  transcript = { param = "since", items = "events",
    next = function(page)
      if page.hasMore ~= true then return nil end
      return page.nextSince
    end },
}

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do
    c[k] = v
  end
  return c
end

local function shape_error(ep, path, msg)
  return core.new_error({ type = "decode_error", status = 200, retryable = false, method = ep.method,
    path = path, attempts = 1, message = fmt("%s: %s", ep.name, msg) })
end

--- The iterator method of a paginated endpoint. parse_args checks the
-- arguments as the page call does; perform(client, path, query, opts)
-- runs one page and returns result or nil, err; fail(client, err, opts)
-- raises or returns nil, err.
function _M.method(ep, parse_args, perform, fail)
  local kind = KINDS[ep.paginate]
  local label = "onecli: " .. ep.name:gsub("%.[%w_]+$", "." .. ep.each)
  local nparams = #ep.params
  return function(self, ...)
    local client = type(self) == "table" and self._client
    if not client then
      error(fmt("%s: call it with a colon", label), 2)
    end
    local nargs = select("#", ...)
    local args = { ... }
    local ok, path, _, _, checked_opts = pcall(parse_args, ep, nargs, args)
    if not ok then
      -- parse_args names the page call and where it was called from
      local msg = tostring(path):gsub("^[^\n]-:%d+: ", "", 1)
      error((msg:gsub("^onecli: " .. ep.name:gsub("%p", "%%%0"), label, 1)), 2)
    end
    if checked_opts.meta ~= nil then
      error(fmt("%s: an iterator takes no meta option (call %s page by page for that)", label, ep.name), 2)
    end
    if checked_opts.callback ~= nil then
      error(fmt("%s: an iterator takes no callback (call %s page by page for that)", label, ep.name), 2)
    end
    -- a lone table of option names is the options (as for the page call)
    local query = args[nparams + 1]
    if query == checked_opts then
      query = nil
    end
    local state = copy(query)
    local items, i, done, finished = nil, 0, false, false
    return function()
      while not finished do
        if items and i < #items then
          i = i + 1
          return items[i]
        end
        if done then
          finished = true
          return nil
        end
        local page, err = perform(client, path, state, checked_opts)
        if page ~= nil and (type(page) ~= "table" or type(page[kind.items]) ~= "table") then
          page, err = nil, shape_error(ep, path, fmt("the page has no %s list", kind.items))
        end
        if page ~= nil then
          local nxt = kind.next(page)
          if nxt ~= nil and nxt == state[kind.param] then
            page, err = nil, shape_error(ep, path, fmt("the server gave back the same %s (%s): no progress",
                                                        kind.param, tostring(nxt)))
          end
          items, i = page and page[kind.items], 0
          if nxt == nil then
            done = true
          else
            state[kind.param] = nxt
          end
        end
        if page == nil then
          finished = true
          local _, e = fail(client, err, checked_opts)   -- raises unless raise = false
          return false, e
        end
      end
      return nil
    end
  end
end

return _M
