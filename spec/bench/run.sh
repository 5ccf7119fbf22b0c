#!/bin/sh
# `make bench` (after the Makefile has built build/lua5.4, build/luajit and
# build/bench/floor). Run from the top of the tree. Four sections:
#   1. lua-onecli against the C floor (spec/bench/bench.lua): a private
#      nginx on a free port of 127.0.0.1 serves the static JSON answers of
#      spec/bench/fixtures.lua (nginx.conf.in), everything it writes under
#      a temporary prefix;
#   2. when valgrind is installed, user-space instructions per call
#      (spec/bench/instructions.lua), against the same nginx;
#   3. VmRSS and open fds over 100,000 calls (spec/bench/rss_run.lua),
#      against the same nginx;
#   4. client:batch against sequential calls (spec/bench/batch_bench.lua,
#      against the stand-in server, which it starts and stops itself).
# nginx is stopped and the prefix removed at the end, also when a section
# fails or the run is interrupted. Prints; asserts nothing about times.
set -eu

NGINX=${ONECLI_NGINX:-/usr/sbin/nginx}

# On two CPUs or more, nginx runs on CPU 1 and every timed process on CPU
# 0 (taskset), so that the scheduler moving them around does not add its
# noise to the rounds; BENCH_PIN=0 leaves them free.
SERVER_PIN=""
BENCH_CLIENT_PIN=""
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1 \
        && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
    SERVER_PIN="taskset -c 1"
    BENCH_CLIENT_PIN="taskset -c 0"
fi
export BENCH_CLIENT_PIN
RSS_CALLS=${BENCH_RSS_CALLS:-100000}

prefix=$(mktemp -d "${TMPDIR:-/tmp}/onecli-bench.XXXXXX")

# Whether pid is a live nginx (not a zombie waiting to be reaped).
nginx_alive() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null || true)" = nginx ] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != Z ]
}

# Stops the nginx this script started (the pid from its own pid file, and
# only if that process is an nginx): TERM, then KILL after 5 s.
stop_nginx() {
    pid=$(cat "$prefix/logs/nginx.pid" 2>/dev/null || true)
    case "$pid" in ''|*[!0-9]*) return 0 ;; esac
    if nginx_alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        i=0
        while nginx_alive "$pid" && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if nginx_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$prefix/logs/nginx.pid"
}
cleanup() {
    stop_nginx
    rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp"
lua5.4 spec/bench/fixtures.lua "$prefix" >/dev/null

# A port nothing listens on (the kernel's pick), tried a few times in case
# another process takes it between the pick and nginx's bind.
free_port() {
    lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
               local _, p = s:getsockname(); s:close(); print(p)'
}
port=""
for attempt in 1 2 3 4 5; do
    try=$(free_port)
    sed -e "s|\${PREFIX}|$prefix|g" -e "s|\${PORT}|$try|g" spec/bench/nginx.conf.in \
        >"$prefix/conf/nginx.conf"
    # nginx binds, daemonizes and returns; LD_PRELOAD is not for it
    if env -u LD_PRELOAD $SERVER_PIN "$NGINX" -p "$prefix/" -c conf/nginx.conf -e logs/error.log \
           </dev/null >"$prefix/logs/start.log" 2>&1; then
        port=$try
        break
    fi
    grep -q "Address already in use" "$prefix/logs/start.log" "$prefix/logs/error.log" \
        2>/dev/null || break
    echo "bench: port $try taken (attempt $attempt), trying another" >&2
done
if [ -z "$port" ]; then
    echo "bench: nginx did not start:" >&2
    cat "$prefix/logs/start.log" "$prefix/logs/error.log" >&2 2>/dev/null || true
    exit 1
fi
i=0
while [ ! -s "$prefix/logs/nginx.pid" ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done

echo "== lua-onecli against the floor: client.agents:list(), one kept-alive connection"
lua5.4 spec/bench/bench.lua "$port" "$prefix"

if command -v valgrind >/dev/null 2>&1; then
    echo
    echo "== instructions per call (valgrind --tool=callgrind): what load does not move"
    lua5.4 spec/bench/instructions.lua "$port"
fi

echo
echo "== memory and descriptors: lua5.4, $RSS_CALLS calls, 10-agent list"
lua5.4 spec/bench/rss_run.lua "http://127.0.0.1:$port/small/api" "$RSS_CALLS"

stop_nginx

echo
echo "== client:batch against sequential calls"
lua5.4 spec/bench/batch_bench.lua

echo
echo "== asynchronous transports (socket-driven): added latency after the answer"
lua5.4 spec/bench/async_bench.lua 200
