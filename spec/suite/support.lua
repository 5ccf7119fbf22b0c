-- Shared by the specs of the CI scripts (spec/suite/*_spec.lua): run a
-- script of .ci/ under lua5.4 (whatever runtime runs the spec), temp dirs,
-- files. Plain Lua 5.1 to 5.4 and LuaJIT.
local _M = {}

local function own_dir()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)[/\\][^/\\]*$") or "."
end

-- the checkout: spec/suite/.. /..
_M.root = own_dir() .. "/../.."

function _M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; returns its stdout (with stderr) and exit status.
function _M.run(cmd)
  local p = assert(io.popen("{ " .. cmd .. " ; } 2>&1; echo \"exit:$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.-)exit:(%d+)%s*$")
  return body or out, tonumber(code)
end

-- Runs .ci/<script> under lua5.4 with the arguments given (each quoted).
function _M.script(script, args)
  local parts = { "lua5.4", _M.quote(_M.root .. "/.ci/" .. script) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = _M.quote(a) end
  return _M.run(table.concat(parts, " "))
end

function _M.tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/onecli-suite-spec.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir:match("^/tmp/onecli%-suite%-spec%.%w+$"), "mktemp -d failed")
  return dir
end

function _M.rmdir(dir)
  if dir and dir:match("^/tmp/onecli%-suite%-spec%.%w+$") then
    os.execute("rm -rf " .. _M.quote(dir))
  end
end

function _M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

function _M.lines(s)
  local out = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = line end
  if out[#out] == "" then out[#out] = nil end
  return out
end

return _M
