--- Running inside nginx (OpenResty): the phase a call runs in and what a
-- call may do there, and how a raised error reaches nginx's error log.
--
-- A client picks its transport for each call from ngx.get_phase(), not
-- once when it is made (see onecli.client): cosockets where nginx has
-- them; libcurl, blocking, in `init` (the master at start-up: the
-- connection never reaches a worker, the libcurl transport starts afresh
-- in a new process); a refusal everywhere else, where a blocking call
-- would stall the worker.
--
-- nginx prints only string errors ("lua entry thread aborted: runtime
-- error: unknown reason" for anything else). So inside nginx a client
-- returns nil, err by default (the lua-resty convention), and one made
-- with raise = true raises the error's one-line description as a string;
-- error_of() (and onecli.try) turn that string back into the object.

local rawget, type, tostring, error = rawget, type, tostring, error
local fmt = string.format

local _M = {}

--- Phases where cosockets (and ngx.sleep) exist.
_M.COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

--- The nginx phase running now (ngx.get_phase()), or nil outside nginx.
function _M.phase()
  local ngx = rawget(_G, "ngx")
  if ngx and type(ngx.get_phase) == "function" and ngx.socket then
    return ngx.get_phase()
  end
  return nil
end

--- Whether this code runs inside nginx.
function _M.inside()
  return _M.phase() ~= nil
end

--- Why a call cannot be made in this phase (a message), or nil.
function _M.refusal(phase)
  if phase == nil or phase == "init" or _M.COSOCKET_PHASES[phase] then
    return nil
  end
  return fmt("nginx's %s phase has no cosockets, and a blocking call would stall the worker: "
             .. "make the call from an ngx.timer.at(0, fn) callback, or from a rewrite, access "
             .. "or content handler", phase)
end

-- The error objects of the last RING strings raised, by their text.
local RING = 32
local ring, ring_pos, by_text = {}, 0, {}

--- Raises err's one-line description (a string nginx can print),
-- remembering which object it stands for.
function _M.raise_string(err)
  local text = tostring(err)
  ring_pos = ring_pos % RING + 1
  local old = ring[ring_pos]
  if old and by_text[old[1]] == old[2] then
    by_text[old[1]] = nil
  end
  ring[ring_pos] = { text, err }
  by_text[text] = err
  error(text, 0)
end

--- The error object a raised string stands for (one of the last 32 in
-- this worker), or nil.
function _M.error_of(s)
  if type(s) ~= "string" then
    return nil
  end
  return by_text[s]
end

return _M
