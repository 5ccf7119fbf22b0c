--- Seeing what a client does: log levels and sinks, the per-attempt log
-- line, the on_request / on_response hooks, and the metadata of a call.
--
-- Levels (the `log_level` option, else $ONECLI_LOG; off by default; a
-- client given a `log` function and no level logs at "debug", as before):
--
--   error   calls that failed for good
--   warn    + every failed attempt, with the retry decision
--   info    + every successful attempt: one line per attempt in all
--   debug   + what the client decides on its own (a v1 fallback route, a
--           regenerated key adopted, a hook that failed)
--   trace   + a line as each attempt starts, and the request and response
--           bodies, redacted (the API key, and the values of JSON members
--           named like secrets) and truncated
--
-- The line of an attempt:
--   onecli: GET /v1/agents -> 503 api_error (request req_1, 12 ms, attempt 1 of 3; retrying in 0.42 s)
--   onecli: GET /v1/agents -> 200 (request req_2, 3 ms, attempt 2 of 3)
--
-- Where lines go without a `log` function: stderr in a script, ngx.log
-- inside nginx, a file under Neovim's log directory (onecli.log) in
-- Neovim. Every line is redacted (the client's key) and bounded.
--
-- Hooks run for every attempt, the client's first, then the call's:
--   on_request{ method, url, path, headers, attempt, batch }
--   on_response{ method, url, path, headers, attempt, batch, status,
--                duration, request_id, error, retry_in }
-- `headers` are the request's (Authorization masked) and, in on_response,
-- the answer's. A hook that raises never changes the call: the failure is
-- reported once per client and hook through the log (at "error" when the
-- client logs nothing else).

local core = require("onecli.core")
local keys = require("onecli.keys")
local nginx = require("onecli.nginx")

local type, pairs, pcall, tostring, rawget = type, pairs, pcall, tostring, rawget
local fmt, floor = string.format, math.floor
local redact = core.redact

local _M = { _VERSION = core._VERSION }

_M.LEVELS = { off = 0, error = 1, warn = 2, info = 3, debug = 4, trace = 5 }
local LEVELS = _M.LEVELS

-- A log line is redacted and bounded (a 1 MB id must not make a 1 MB line).
local LINE_MAX = 2048
-- A body in a trace line.
local BODY_MAX = 1024

---------------------------------------------------------------------------
-- sinks

-- ngx.log's level for ours.
local NGX_LEVELS = { error = "ERR", warn = "WARN", info = "INFO", debug = "DEBUG", trace = "DEBUG" }

local function stderr_sink(line)
  io.stderr:write(line, "\n")
end

-- Neovim: a file in its log directory (stdpath("log") from 0.8, the cache
-- directory before), opened for each line: lines are rare, and a file
-- kept open would outlive :OneCLI's clients.
local function neovim_sink(vim)
  local ok, dir = pcall(vim.fn.stdpath, "log")
  if not ok or type(dir) ~= "string" or dir == "" then
    ok, dir = pcall(vim.fn.stdpath, "cache")
  end
  if not ok or type(dir) ~= "string" then
    return stderr_sink
  end
  local path = dir .. "/onecli.log"
  return function(line)
    local f = io.open(path, "a")
    if f then
      f:write(os.date("%Y-%m-%d %H:%M:%S "), line, "\n")
      f:close()
    end
  end, path
end

--- Where lines go in this host when the client has no `log` function:
-- a function(line, level).
function _M.default_sink()
  if nginx.inside() then
    local ngx = rawget(_G, "ngx")
    return function(line, level)
      ngx.log(ngx[NGX_LEVELS[level] or "INFO"], line)
    end
  end
  local vim = rawget(_G, "vim")
  if type(vim) == "table" and type(vim.fn) == "table" then
    return (neovim_sink(vim))
  end
  return stderr_sink
end

--- The level and the sink of a client: opts.log_level, else the
-- environment's ONECLI_LOG (through `env`), else "debug" with a `log`
-- function and off without one. Returns level (number), sink or nil, or
-- nil and a message for a level that does not exist.
function _M.settings(opts, env)
  local name, from = opts.log_level, "option 'log_level'"
  if name == nil then
    name, from = env("ONECLI_LOG"), "ONECLI_LOG"
    if name ~= nil then
      name = name:lower()
    end
  end
  if name == nil or name == "" then
    name = opts.log and "debug" or "off"
  end
  local level = LEVELS[name]
  if level == nil then
    return nil, fmt("%s must be one of off, error, warn, info, debug, trace; got %q", from,
                    tostring(name))
  end
  if level == 0 then
    return 0, nil
  end
  local log = opts.log
  if log then
    return level, function(line) log(line) end
  end
  return level, _M.default_sink()
end

--- Writes line at `level` if the client logs that much.
function _M.log(client, level, line)
  local sink = client._logger
  if sink == nil or (client._log_level or 0) < LEVELS[level] then
    return
  end
  if #line > LINE_MAX then
    line = line:sub(1, LINE_MAX - 3) .. "..."
  end
  sink(redact(line, keys.get(client)), level)
end

--- Whether the client logs at `level`.
function _M.enabled(client, level)
  return client._logger ~= nil and (client._log_level or 0) >= LEVELS[level]
end

---------------------------------------------------------------------------
-- attempts

-- The values of JSON members named like secrets, masked: "value",
-- "apiKey", "token", "accessToken", "password", "secret", ...
local SECRET_NAMES = { "value", "key", "token", "secret", "password", "authorization",
                       "credential", "cookie" }
local function secret_name(name)
  local lname = name:lower()
  for i = 1, #SECRET_NAMES do
    if lname:find(SECRET_NAMES[i], 1, true) then
      return true
    end
  end
  return false
end

local function mask_json(text)
  local out, i, n = {}, 1, #text
  while true do
    local s, e, name = text:find('"([%w_%-]*)"%s*:%s*"', i)
    if not s then
      break
    end
    local j = e + 1                 -- the value's closing quote
    while j <= n do
      local c = text:byte(j)
      if c == 92 then               -- a backslash escapes the next byte
        j = j + 2
      elseif c == 34 then
        break
      else
        j = j + 1
      end
    end
    out[#out + 1] = text:sub(i, e)
    if j > e + 1 and secret_name(name) then
      out[#out + 1] = "***"
    else
      out[#out + 1] = text:sub(e + 1, j - 1)
    end
    i = j
  end
  out[#out + 1] = text:sub(i)
  return table.concat(out)
end
_M.mask_json = mask_json

local function body_text(body)
  if type(body) ~= "string" then
    return nil
  end
  local text = mask_json(body)
  if #text > BODY_MAX then
    text = text:sub(1, BODY_MAX) .. "...(" .. #body .. " bytes)"
  end
  return (text:gsub("[%c]", " "))
end

--- The log line of one attempt. a: { method, path, status, err,
-- request_id, duration, attempt, of, retry_in, batch }.
function _M.attempt_line(a)
  local err = a.err
  local outcome
  if err then
    outcome = (err.status and (tostring(err.status) .. " ") or "") .. tostring(err.type)
      .. (err.code and (" " .. tostring(err.code)) or "")
  else
    outcome = tostring(a.status or "ok")
  end
  local parts = {}
  if a.request_id then
    parts[#parts + 1] = "request " .. tostring(a.request_id)
  end
  parts[#parts + 1] = fmt("%d ms", floor((a.duration or 0) * 1000 + 0.5))
  parts[#parts + 1] = a.of and fmt("attempt %d of %d", a.attempt, a.of) or fmt("attempt %d", a.attempt)
  if a.batch then
    parts[#parts + 1] = "batch"
  end
  local decision = ""
  if err then
    decision = a.retry_in and fmt("; retrying in %.2f s", a.retry_in) or "; not retried"
  end
  return fmt("onecli: %s %s -> %s (%s%s)", a.method, a.path or "?", outcome,
             table.concat(parts, ", "), decision)
end

-- A copy of headers (a request's or an answer's) with the credentials
-- masked and the key redacted from every value (a server may echo it).
local function masked_headers(headers, secret)
  local out = {}
  for k, v in pairs(headers or {}) do
    local lk = type(k) == "string" and k:lower() or k
    if lk == "authorization" or lk == "proxy-authorization" or lk == "cookie"
        or lk == "set-cookie" then
      v = (type(v) == "string" and v:match("^(%a+) ") or "") .. " ***"
      v = v:gsub("^ ", "")
    elseif type(v) == "string" then
      v = redact(v, secret)
    end
    out[k] = v
  end
  return out
end
_M.masked_headers = masked_headers

--- Logs an attempt and runs the on_response hooks. a as for attempt_line,
-- plus url, headers (the answer's), req (the transport request), body,
-- value (the answer), opts (the call's options).
function _M.attempt_done(client, a)
  if client._logger then
    local level = a.err and (a.retry_in and "warn" or "error") or "info"
    if _M.enabled(client, level) then
      _M.log(client, level, _M.attempt_line(a))
    end
    if _M.enabled(client, "trace") then
      local req = a.req
      local sent = req and body_text(req.body)
      if sent then
        _M.log(client, "trace", "onecli: trace: request body: " .. sent)
      end
      local got = a.body
      if got == nil and a.value ~= nil then
        local ok, text = pcall(core.json_encode, a.value)
        got = ok and text or nil
      elseif got == nil and a.err then
        got = a.err.body
      end
      got = body_text(got)
      if got then
        _M.log(client, "trace", "onecli: trace: response body: " .. got)
      end
    end
  end
  local opts = a.opts
  if client._on_response or (opts and opts.on_response) then
    local info = {
      method = a.method, url = a.req and redact(a.req.url, keys.get(client)), path = a.path,
      headers = masked_headers(a.headers, keys.get(client)), attempt = a.attempt,
      batch = a.batch or false, status = a.status,
      duration = a.duration, request_id = a.request_id, error = a.err, retry_in = a.retry_in,
    }
    _M.hook(client, "on_response", client._on_response, info)
    if opts then
      _M.hook(client, "on_response", opts.on_response, info)
    end
  end
end


--- Runs the on_request hooks (and logs at debug) before an attempt.
function _M.attempt_start(client, req, attempt, opts, batch)
  if _M.enabled(client, "trace") then
    _M.log(client, "trace", fmt("onecli: trace: %s %s: sending (attempt %d%s)", req.method,
                                req.path, attempt, batch and ", batch" or ""))
  end
  if client._on_request or (opts and opts.on_request) then
    local secret = keys.get(client)
    local info = {
      method = req.method, url = redact(req.url, secret), path = req.path,
      headers = masked_headers(req.headers, secret), attempt = attempt, batch = batch or false,
    }
    _M.hook(client, "on_request", client._on_request, info)
    if opts then
      _M.hook(client, "on_request", opts.on_request, info)
    end
  end
end

--- Calls hook(info) if it is a function; a failure is reported once per
-- client and hook name, and never reaches the call.
function _M.hook(client, name, hook, info)
  if hook == nil then
    return
  end
  local ok, err = pcall(hook, info)
  if ok then
    return
  end
  local reported = client._hook_failures
  if reported == nil then
    reported = {}
    client._hook_failures = reported
  end
  if reported[name] then
    return
  end
  reported[name] = true
  local line = fmt("onecli: the %s hook raised (reported once; the calls go on): %s",
                   name, tostring(err))
  if client._logger then
    _M.log(client, "error", line)
  else
    _M.default_sink()(redact(line:sub(1, LINE_MAX), keys.get(client)), "error")
  end
end

return _M
