-- The nginx side of spec/resty/production_spec.lua: clients made the ways an
-- OpenResty application makes them, and location handlers that use them and
-- answer JSON. Loaded by nginx (LuaJIT) from production/nginx.conf.in.
--
-- Where each client is made:
--   module_client  at module level: this module is first required by
--                  init_by_lua_block, i.e. in nginx's init phase, before the
--                  fork, and every worker inherits it
--   curl_client    also in init, with the libcurl transport given
--                  explicitly, talking to the stand-in's gateway port (so
--                  that its connection, made in the master, stays apart from
--                  the API port's); a worker calling it must not reuse the
--                  master's connection
--   worker_client  in init_worker_by_lua_block, one per worker, with the
--                  client option `headers` carrying the worker's pid
--   capped_client  the same with pool_size = 4, backlog = 256
--   raising_client the same with raise = true, two retries
--   default_client the same with raise left to its default, two retries
-- The OneCLI URL and key come from the environment (nginx's `env`
-- directive): ONECLI_URL, ONECLI_API_KEY; the gateway origin from
-- ONECLI_SPEC_GATEWAY. Every call carries X-Worker (the pid of the process
-- that made it) so that the stand-in's request log tells which process used
-- which connection; X-Phase says where a call came from.
--
-- Results that cannot be answered to the spec directly (init_worker, the
-- timers, the filter, log and balancer phases) go into the shared dict
-- "onecli_spec" as JSON, keyed by what made them; /results returns them.
-- luacheck: globals ngx
local ngx = ngx

local onecli = require("onecli")
local core = require("onecli.core")
local cjson = require("cjson.safe")

local _M = {}

-- what every client gets: short timeouts, one quick retry
local BASE = {
  timeout = 5, connect_timeout = 2, max_retries = 1, backoff_base = 0.05, backoff_max = 0.1,
}

local function options(extra)
  local o = {}
  for k, v in pairs(BASE) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function now()
  ngx.update_time()
  return ngx.now()
end

local function pid()
  return tostring(ngx.worker.pid())
end

-- why making a client failed (options the transport does not know yet...)
_M.setup_errors = {}

local function make(name, opts)
  local ok, c = pcall(onecli.new, opts)
  if ok then
    return c
  end
  _M.setup_errors[name] = tostring(c)
  return nil
end

---------------------------------------------------------------------------
-- made at module level, in the master (init phase)

_M.module_client = make("module_client", options())
_M.curl_client = make("curl_client", {
  url = os.getenv("ONECLI_SPEC_GATEWAY"), max_retries = 0, raise = false,
  transport = core.new_transport({ timeout = 5, connect_timeout = 2 }),
})

local function record(key, value)
  local dict = ngx.shared.onecli_spec
  dict:set(key, cjson.encode(value))
end

local function err_string(err)
  if err == nil then return nil end
  return tostring(err)
end

-- One call to GET /v1/agents with client c (and the call's own options);
-- never raises: { ok, agents, err (a string), err_type, ... }.
local function list_agents(c, call_opts)
  if c == nil then
    return { ok = false, err = "no client: " .. cjson.encode(_M.setup_errors) }
  end
  local t0 = now()
  local ok, agents, err = pcall(c.agents.list, c.agents, call_opts)
  local r = { started = t0, finished = now() }
  r.elapsed = r.finished - t0
  if not ok then
    r.ok, r.raised, r.err = false, true, tostring(agents)
  elseif agents == nil then
    r.ok, r.err = false, err_string(err)
    r.err_type = type(err) == "table" and err.type or nil
  else
    r.ok, r.agents = true, #agents
  end
  return r
end

---------------------------------------------------------------------------
-- init (the master, before the fork)

function _M.init()
  local headers = { ["X-Worker"] = pid(), ["X-Phase"] = "init" }
  -- a call through libcurl, blocking: the master has nothing else to do yet
  _M.init_result = list_agents(_M.module_client, { headers = headers })
  _M.init_result.pid = pid()
  _M.init_result.phase = ngx.get_phase()
  if _M.curl_client then
    local _, err = _M.curl_client:request("GET", "/fork-probe", { headers = headers })
    _M.init_curl = err_string(err)
  end
end

---------------------------------------------------------------------------
-- phases without cosockets: a call must be refused at the call, with a
-- message naming the phase and ngx.timer.at

local function attempt_in_phase(c, label, phase)
  if c == nil then
    return { client = label, error = "no client" }
  end
  -- had it gone out, the stand-in's log would show it
  local ok, res, err = pcall(c.agents.list, c.agents,
                             { headers = { ["X-Phase"] = "refused:" .. phase, ["X-Worker"] = pid() } })
  local r = { client = label, raised = not ok, phase = ngx.get_phase() }
  if not ok then
    r.message, r.kind = tostring(res), type(res)
  else
    r.returned = res ~= nil
    r.message, r.kind = err_string(err), type(err)
  end
  return r
end

function _M.phase_call(phase)
  record("phase:" .. phase .. ":" .. pid(), {
    attempt_in_phase(_M.worker_client, "worker_client", phase),
    attempt_in_phase(_M.module_client, "module_client", phase),
  })
end

---------------------------------------------------------------------------
-- init_worker

-- a timer callback: TIMER_CALLS calls at once (light threads: with
-- cosockets they take one delay, not TIMER_CALLS), their outcome recorded
-- under key
local TIMER_CALLS = 5

local function timer_call(premature, key)
  if premature then
    return
  end
  local t0 = now()
  local threads = {}
  for i = 1, TIMER_CALLS do
    threads[i] = ngx.thread.spawn(list_agents, _M.worker_client, { headers = { ["X-Phase"] = "timer" } })
  end
  local r = { ok = true, calls = 0, pid = pid(), phase = ngx.get_phase() }
  for _, th in ipairs(threads) do
    local done, c = ngx.thread.wait(th)
    if not (done and c.ok) then
      r.ok, r.err = false, done and c.err or tostring(c)
    end
    r.calls = r.calls + 1
  end
  r.elapsed = now() - t0
  record(key, r)
end

function _M.init_worker()
  local headers = { ["X-Worker"] = pid() }
  _M.worker_client = make("worker_client", options({
    headers = headers, pool_size = 64, keepalive_timeout = 30,
  }))
  _M.capped_client = make("capped_client", options({
    headers = headers, pool_size = 4, backlog = 256,
  }))
  -- the error specs' clients: two retries (3 attempts), quickly
  _M.raising_client = make("raising_client", options({
    headers = headers, raise = true, max_retries = 2, backoff_base = 0.01, backoff_max = 0.02,
  }))
  _M.default_client = make("default_client", options({
    headers = headers, max_retries = 2, backoff_base = 0.01, backoff_max = 0.02,
  }))
  _M.phase_call("init_worker")
  local ok, err = ngx.timer.at(0, timer_call, "timer:init_worker:" .. pid())
  if not ok then
    record("timer:init_worker:" .. pid(), { ok = false, err = "ngx.timer.at: " .. tostring(err) })
  end
end

---------------------------------------------------------------------------
-- handlers

local function reply(t, status)
  ngx.status = status or 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local clients = {
  module = function() return _M.module_client end,
  worker = function() return _M.worker_client end,
  capped = function() return _M.capped_client end,
}

-- /call?client=module|worker|capped&n=N: N calls one after the other
function _M.call()
  local args = ngx.req.get_uri_args()
  local get = clients[args.client or "worker"]
  if not get then
    return reply({ error = "unknown client" }, 400)
  end
  local c = get()
  -- the module client was made in the master: its calls say who made them
  local call_opts = args.client == "module" and { headers = { ["X-Worker"] = pid() } } or nil
  local n = tonumber(args.n) or 1
  local t0 = now()
  local calls = {}
  for i = 1, n do
    calls[i] = list_agents(c, call_opts)
  end
  local all_ok = true
  for _, r in ipairs(calls) do
    all_ok = all_ok and r.ok
  end
  local t1 = now()
  reply({ pid = pid(), ok = all_ok, calls = calls, started = t0, finished = t1,
          elapsed = t1 - t0, exiting = ngx.worker.exiting() })
end

-- /threads?n=N: N calls at once in light threads of one request
function _M.threads()
  local n = tonumber(ngx.req.get_uri_args().n) or 20
  local t0 = now()
  local threads = {}
  for i = 1, n do
    threads[i] = ngx.thread.spawn(list_agents, _M.worker_client)
  end
  local results, all_ok = {}, true
  for i, th in ipairs(threads) do
    local ok, r = ngx.thread.wait(th)
    results[i] = ok and r or { ok = false, err = tostring(r) }
    all_ok = all_ok and results[i].ok
  end
  local t1 = now()
  reply({ pid = pid(), ok = all_ok, calls = results, started = t0, finished = t1,
          elapsed = t1 - t0 })
end

-- /curl: the libcurl client made in the master, called in a worker
-- (blocking: fine for a test)
function _M.curl()
  local c = _M.curl_client
  if c == nil then
    return reply({ error = "no curl client: " .. cjson.encode(_M.setup_errors) }, 500)
  end
  local ok, res, err = pcall(c.request, c, "GET", "/fork-probe",
                             { headers = { ["X-Worker"] = pid(), ["X-Phase"] = "curl" } })
  reply({ pid = pid(), raised = not ok, answered = ok and res ~= nil,
          err = ok and err_string(err) or tostring(res),
          status = ok and type(err) == "table" and err.status or nil })
end

-- /timer?tag=T: a timer made now makes a call; its outcome is recorded
-- under timer:T:<pid>
function _M.timer()
  local tag = ngx.req.get_uri_args().tag or "x"
  local key = "timer:" .. tag .. ":" .. pid()
  local ok, err = ngx.timer.at(0, timer_call, key)
  reply({ pid = pid(), scheduled = ok and true or false, err = err, key = key })
end

-- /raise: an uncaught failure (raise = true): nginx logs it
function _M.raise()
  local secrets = _M.raising_client.secrets:list()
  reply({ ok = true, secrets = #secrets })
end

-- /nil_err: the default convention inside nginx: nil, err, then logged
function _M.nil_err()
  local c = _M.default_client
  local secrets, err = c.secrets:list()
  if not secrets then
    ngx.log(ngx.ERR, "listing secrets: ", err)
    return reply({
      ok = false, string = tostring(err), is_error = onecli.is_error(err),
      status = type(err) == "table" and err.status or nil,
      type = type(err) == "table" and err.type or nil,
      message = type(err) == "table" and err.message or nil,
      request_id = type(err) == "table" and err.request_id or nil,
      attempts = type(err) == "table" and err.attempts or nil,
    })
  end
  reply({ ok = true, secrets = #secrets })
end

-- /try: onecli.try around the raising client turns the raised string back
-- into the error object
function _M.try()
  local c = _M.raising_client
  local secrets, err = onecli.try(c.secrets.list, c.secrets)
  reply({ ok = secrets ~= nil, is_error = onecli.is_error(err),
          status = type(err) == "table" and err.status or nil,
          type = type(err) == "table" and err.type or nil,
          string = err_string(err) })
end

-- /results?prefix=P: the records of the shared dict whose key starts with P
function _M.results()
  local prefix = ngx.req.get_uri_args().prefix or ""
  local dict = ngx.shared.onecli_spec
  local out = {}
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, #prefix) == prefix then
      out[key] = cjson.decode(dict:get(key) or "null")
    end
  end
  reply({ pid = pid(), results = out })
end

-- /state: what this worker inherited and made
function _M.state()
  reply({ pid = pid(), init_result = _M.init_result, init_curl = _M.init_curl or cjson.null,
          setup_errors = _M.setup_errors })
end

function _M.ping()
  reply({ pid = pid() })
end

return _M
