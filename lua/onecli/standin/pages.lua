-- Non-JSON pages: the Next.js 404 page that v1.41.0 serves outside /v1 and
-- /api (shortened from the recorded one), and nginx's error pages.
local http = require("onecli.standin.http")

local _M = {}

local NEXT_404 = table.concat({
  '<!DOCTYPE html><html lang="en" class="bg-background"><head><meta charSet="utf-8"/>',
  '<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>',
  '<meta name="robots" content="noindex"/><meta name="next-size-adjust" content=""/>',
  '<title>OneCLI</title><meta name="description" content="Universal CLI gateway for AI agents."/>',
  '<link rel="icon" href="/favicon.svg"/>',
  '<script>window.__GATEWAY_API_URL__="http://localhost:10255"</script></head>',
  '<body><div hidden=""><!--$--><!--/$--></div>',
  '<div class="flex h-svh flex-col items-center justify-center gap-4">',
  '<img alt="OneCLI" width="120" height="34" src="/onecli-full-logo.png"/>',
  '<h1 class="text-2xl font-semibold">Page not found</h1>',
  '<p class="text-muted-foreground text-sm">The page you&#x27;re looking for doesn&#x27;t exist.</p>',
  '<a class="text-brand text-sm underline underline-offset-4" href="/">Go to Dashboard</a>',
  '</div></body></html>',
})

function _M.next_404()
  return {
    status = 404,
    body = NEXT_404,
    prelude = {
      { "Cache-Control", "private, no-cache, no-store, max-age=0, must-revalidate" },
      { "Vary", "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch, Accept-Encoding" },
      { "Content-Type", "text/html; charset=utf-8" },
    },
  }
end

-- nginx's error page for a status ("502 Bad Gateway"), as a proxy in front
-- of the server sends it.
function _M.html_error(status)
  local title = status .. " " .. http.reason(status)
  return "<html>\r\n<head><title>" .. title .. "</title></head>\r\n<body>\r\n"
    .. "<center><h1>" .. title .. "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
end

_M.NGINX_502 = _M.html_error(502)

return _M
