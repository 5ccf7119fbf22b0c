--- Running a command as an agent: client:run(argv, opts) starts it with
-- exactly the environment of client:gateway_env (onecli.agent), so that
-- its HTTP goes through the OneCLI gateway, as the Go CLI's
-- `onecli run -- <command>` does.
--
--   local result = client:run({ "curl", "-s", "https://api.github.com/user" }, { agent = "research-bot" })
--   print(result.status, result.output)
--
-- Plain Lua waits for the child (io.popen); Neovim, with a callback, runs
-- it with jobstart and returns a Handle; nginx uses ngx.pipe, or on an
-- nginx without it a detached shell polled with ngx.sleep.

local core = require("onecli.core")
local client_mod = require("onecli.client")
local helpers = require("onecli.helpers")
local nginx = require("onecli.nginx")
local handle = require("onecli.handle")
local agent_env = require("onecli.agent")

local error, type, pairs, ipairs, tostring, rawget, pcall =
      error, type, pairs, ipairs, tostring, rawget, pcall
local fmt, concat = string.format, table.concat
local check_opts, fail, agent_error = agent_env._check_opts, agent_env._fail, agent_env._error

local _M = { _VERSION = core._VERSION }


-- Plain Lua: through the shell, waiting; returns { status =, output = }.
local function run_blocking(env, argv)
  local line = agent_env.env_command(env, argv, { complete = true })
    .. " 2>&1; echo \"__onecli_exit=$?\""
  local p = io.popen(line, "r")
  if not p then
    return nil
  end
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__onecli_exit=(%d+)%s*$"))
  out = out:gsub("__onecli_exit=%d+%s*$", "")
  return { status = code, output = out }
end

-- Neovim: jobstart with exactly env, not blocking. Runs in a call's
-- coroutine (handle.start): suspends it until the job exits; returns the
-- result, or nil and why the job could not start. on_job(id) is told the
-- job's id (for cancel).
local function run_neovim(vim, env, argv, on_job)
  local chunks = {}
  local function collect(_, data)
    if type(data) == "table" then
      chunks[#chunks + 1] = concat(data, "\n")
    end
  end
  local co = coroutine.running()
  local ok, id = pcall(vim.fn.jobstart, argv, {
    env = env, clear_env = true, stdout_buffered = false,
    on_stdout = collect, on_stderr = collect,
    on_exit = function(_, code)
      handle.resume(co, { status = code, output = concat(chunks, "") })
    end,
  })
  if not ok or type(id) ~= "number" or id <= 0 then
    return nil, ok and (id == -1 and "not executable" or "invalid arguments") or tostring(id)
  end
  on_job(id)
  return coroutine.yield()
end

-- nginx with ngx.pipe (OpenResty's nginx): yielding to nginx while the
-- child runs. nil, why when ngx.pipe is not there.
local function run_pipe(env, argv)
  local ok, pipe = pcall(require, "ngx.pipe")
  if not ok then
    return nil, tostring(pipe)
  end
  local proc, err = pipe.spawn(argv, { environ = agent_env.env_list(env), merge_stderr = true })
  if not proc then
    return nil, err
  end
  local out = {}
  while true do
    local data, rerr, partial = proc:stdout_read_any(65536)
    if data then
      out[#out + 1] = data
    else
      if partial then out[#out + 1] = partial end
      if rerr ~= "timeout" then break end
    end
  end
  local _, reason, status = proc:wait()
  return { status = reason == "exit" and status or nil, signal = reason == "signal" and status or nil,
           output = concat(out) }
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end

-- nginx without ngx.pipe (Debian's: "pipe API is not supported ... lack
-- of the HAVE_SOCKET_CLOEXEC_PATCH patch"): the shell starts the child in
-- the background and returns at once; the child's output and exit status
-- go to two private files (os.tmpname: mode 0600), which are polled with
-- ngx.sleep, so the worker serves meanwhile. Only the start of the shell
-- (a fork and exec, milliseconds) blocks it.
local function run_detached(env, argv)
  local ngx = rawget(_G, "ngx")
  local out_file, rc_file = os.tmpname(), os.tmpname()
  local q = helpers.shell_quote
  local line = "( " .. agent_env.env_command(env, argv, { complete = true }) .. " >" .. q({ out_file })
    .. " 2>&1 </dev/null; echo \"$?\" >>" .. q({ rc_file }) .. " ) >/dev/null 2>&1 </dev/null &"
  os.execute(line)
  local wait = 0.005
  local rc
  repeat
    ngx.sleep(wait)
    wait = wait < 0.2 and wait * 2 or 0.2
    rc = read_all(rc_file)
  until rc == nil or rc:find("\n", 1, true)
  local output = read_all(out_file)
  os.remove(out_file)
  os.remove(rc_file)
  local code = rc and tonumber(rc:match("^(%d+)"))
  if code == nil then
    return nil, "the child's exit status was lost"
  end
  return { status = code, output = output or "" }     -- (as the shell reports it: 128 + n for signal n)
end

-- nginx, in a phase that may yield: ngx.pipe, else the detached shell.
local function run_nginx(env, argv)
  local result, why = run_pipe(env, argv)
  if result then
    return result
  end
  why = tostring(why)
  if not (why:find("not supported", 1, true) or why:find("not found", 1, true)) then
    return nil, why           -- ngx.pipe is there and could not start it
  end
  return run_detached(env, argv)
end

local function spawn_error(argv, why)
  return agent_error({ type = "connection_error", code = "SPAWN",
    message = "could not start " .. argv[1] .. (why and (": " .. tostring(why)) or ""),
    method = "RUN", path = argv[1] })
end

-- How long handle:wait() waits without a limit (a day).
local FOREVER_MS = 86400000

-- client:run with a callback, in Neovim: a Handle; callback(result, err).
-- The container config comes through the client's transport (suspended,
-- not blocking, on the Neovim one), then the job runs; cancel() ends
-- whichever is running (jobstop for the job).
local function run_async(client, vim, argv, env_opts, agent, callback)
  local t = client:_transport_now()
  local job
  local stages = {
    abandon = function(_, co)
      if job then
        pcall(vim.fn.jobstop, job)
      elseif t.abandon then
        t:abandon(co)
      end
    end,
    wait_until = function(_, ms, done)
      if t.wait_until and not job then
        return t:wait_until(ms, done)
      end
      vim.wait(ms or FOREVER_MS, done, 10)
    end,
  }
  local quiet = {}
  for k, v in pairs(env_opts) do quiet[k] = v end
  quiet.raise = false                       -- errors go to the callback
  return handle.start({ method = "RUN", path = argv[1], transport = stages,
                        schedule = t.schedule or vim.schedule },
    function()
      local env, warnings = agent_env.gateway_env(client, agent, quiet)
      if not env then
        return nil, warnings
      end
      local result, why = run_neovim(vim, env, argv, function(id) job = id end)
      if not result then
        return nil, spawn_error(argv, why)
      end
      result.warnings = warnings
      return result
    end, function(result, err)
      callback(result, err)
    end)
end

--- client:run(argv, opts) -> { status = exit code, output = stdout+stderr,
-- warnings = the server's } (opts.agent, opts.gateway, opts.ca_bundle,
-- opts.inherit as gateway_env, default true: the child keeps PATH, HOME
-- and the rest, minus what gateway_env strips; false: only the gateway's
-- variables). The child gets exactly that environment.
--   plain Lua: io.popen, waiting for the child;
--   Neovim, with opts.callback(result, err): an onecli.Handle is returned
--     at once; the container config is fetched on the client's transport
--     (not blocking on the Neovim one), the child runs with jobstart, and
--     the callback runs on the main loop; handle:cancel() stops the job;
--     without a callback, as plain Lua (blocking);
--   nginx: ngx.pipe where nginx has it (OpenResty), else the shell starts
--     the child in the background and its exit is polled with ngx.sleep;
--     either way the worker serves other requests meanwhile.
function _M.run(client, argv, opts)
  if type(argv) ~= "table" or #argv == 0 then
    error("onecli: run: argv must be a non-empty list of strings", 2)
  end
  for i, a in ipairs(argv) do
    if type(a) ~= "string" then
      error(fmt("onecli: run: argv[%d] must be a string, got %s", i, type(a)), 2)
    end
  end
  opts = check_opts("run", opts, { agent = "string", callback = "function" })
  local inherit = opts.inherit
  if inherit == nil then
    inherit = true       -- a command run as the agent keeps PATH, HOME, ...
  end
  local env_opts = { gateway = opts.gateway, ca_bundle = opts.ca_bundle, inherit = inherit,
                    project_id = opts.project_id, raise = opts.raise }
  local vim = rawget(_G, "vim")
  if opts.callback then
    if type(vim) ~= "table" or type(vim.fn) ~= "table" or type(vim.fn.jobstart) ~= "function" then
      error("onecli: run: the callback option needs Neovim (vim.fn.jobstart)", 2)
    end
    return run_async(client, vim, argv, env_opts, opts.agent, opts.callback)
  end
  local env, warnings = agent_env.gateway_env(client, opts.agent, env_opts)
  if not env then
    return nil, warnings
  end
  local result, err
  local phase = nginx.phase()
  if phase ~= nil and phase ~= "init" then
    result, err = run_nginx(env, argv)
  else
    result = run_blocking(env, argv)
  end
  if not result then
    return fail(client, spawn_error(argv, err), opts)
  end
  result.warnings = warnings
  return result
end

client_mod.extend_client("run", _M.run)

return _M
