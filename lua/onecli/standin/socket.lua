-- LuaSocket, the one dependency of the stand-in server (onecli.testing,
-- onecli.standin.*, the onecli-standin command). The library itself
-- (require("onecli")) never loads it; every stand-in module gets it from
-- here, so a missing LuaSocket fails with one line that says what to
-- install instead of require's list of searched paths.
local ok, socket = pcall(require, "socket")
if not ok then
  local why = tostring(socket):match("^[^\n]*")
  error("onecli.testing and the OneCLI stand-in need LuaSocket (module 'socket'), which did not load ("
    .. why .. "): install it (Debian: apt-get install lua-socket; LuaRocks: luarocks install luasocket)", 0)
end
return socket
