#!/bin/sh
# spec/fuzz/run.sh - runs the libFuzzer targets built by spec/fuzz/fuzz.mk
# (make fuzz, make fuzz-ci) and reports in TAP style:
#
#   ok - fuzz <target>: <N> runs in <S> s, no crash
#   not ok - fuzz <target>: <reason> (crash input: <path>)
#   ...
#   <N> passed, <N> failed
#
# usage: sh spec/fuzz/run.sh [target...]   (from the top of the tree)
# environment: FUZZ_SECONDS (60) per target, FUZZ_JOBS (2) targets at once,
# FUZZ_DIR (build/fuzz): binaries <dir>/<target>, libFuzzer's corpus
# <dir>/corpus/<target> (new inputs go there; the committed seeds in
# spec/fuzz/corpus/<target> are only read), crash inputs
# <dir>/crashes/<target>/, whole logs <dir>/logs/<target>.log.
# Exits non-zero when a target failed.
set -u

dir=${FUZZ_DIR:-build/fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
here=$(dirname "$0")

# One target: runs it, prints its line, records pass/fail in the results.
run_one() {
    t=$1
    bin="$dir/$t"
    log="$dir/logs/$t.log"
    crashes="$dir/crashes/$t"
    mkdir -p "$dir/corpus/$t" "$crashes" "$dir/logs"
    case $t in
        url) max_len=4096 ;;
        retry_after) max_len=256 ;;
        *) max_len=65536 ;;
    esac
    set -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len="$max_len" -artifact_prefix="$crashes/" -print_final_stats=1
    [ -f "$here/dict/$t.dict" ] && set -- "$@" -dict="$here/dict/$t.dict"
    [ -d "$here/corpus/$t" ] && seeds="$here/corpus/$t" || seeds=
    if [ ! -x "$bin" ]; then
        line="not ok - fuzz $t: $bin was not built (crash input: none)"
        rc=1
    else
        # shellcheck disable=SC2086
        "$bin" "$@" "$dir/corpus/$t" $seeds >"$log" 2>&1
        rc=$?
        if [ "$rc" = 0 ]; then
            runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
            secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -n 1)
            line="ok - fuzz $t: ${runs:-?} runs in ${secs:-?} s, no crash"
            skip=$(sed -n 's/^fuzz: SKIP: //p' "$log" | head -n 1)
            [ -n "$skip" ] && line="$line # SKIP $skip"
        else
            line="not ok - fuzz $t: $(reason "$log" "$rc") (crash input: $(crash_input "$log"))"
        fi
    fi
    printf '%s\n' "$line"
    printf '%s\n' "$line" >"$dir/results/$t"
}

# First line of $1 matching the sed expression $2 (which prints it).
first() {
    sed -n "$2" "$1" | head -n 1
}

# One line saying why the run failed, from the log.
reason() {
    log=$1
    r=$(first "$log" 's/^FUZZ PROPERTY FAILED \[\([^]]*\)\]: \(.*\)/property \1 failed: \2/p')
    [ -z "$r" ] && r=$(first "$log" 's/^FUZZ LUA ERROR: \(.*\)/Lua error: \1/p')
    [ -z "$r" ] && r=$(first "$log" 's/^FUZZ SETUP FAILED: \(.*\)/harness setup failed: \1/p')
    [ -z "$r" ] && r=$(first "$log" 's/^\(.*runtime error: .*\)/UBSan: \1/p')
    if [ -z "$r" ] && grep -q 'ERROR: LeakSanitizer' "$log"; then
        r="memory leak: $(first "$log" 's/^SUMMARY: AddressSanitizer: //p')"
    fi
    [ -z "$r" ] && r=$(first "$log" 's/^SUMMARY: \(AddressSanitizer: .*\)/\1/p')
    [ -z "$r" ] && r=$(first "$log" 's/^==[0-9]*== *ERROR: \(.*\)/\1/p')
    [ -z "$r" ] && r="exit status $2, see $log"
    # one line, bounded
    printf '%s' "$r" | tr -d '\r' | cut -c 1-300
}

crash_input() {
    p=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -n 1)
    printf '%s' "${p:-none}"
}

if [ "${1:-}" = "--one" ]; then
    run_one "$2"
    exit 0
fi

[ $# -gt 0 ] || set -- normalize json redact url retry_after
if [ -f "$dir/build-failed" ]; then
    # make fuzz could not build them: binaries there are stale
    for t in "$@"; do
        echo "not ok - fuzz $t: the build failed, see above (crash input: none)"
    done
    echo "0 passed, $# failed"
    exit 1
fi
mkdir -p "$dir/results" "$dir/logs"
for t in "$@"; do
    rm -f "$dir/results/$t"
done
echo "# fuzz: $* (${seconds} s each, $jobs at a time; logs in $dir/logs/)"
export FUZZ_DIR="$dir" FUZZ_SECONDS="$seconds" FUZZ_JOBS="$jobs"
printf '%s\n' "$@" | xargs -P "$jobs" -I '{}' sh "$0" --one '{}'

passed=0
failed=0
for t in "$@"; do
    case $(cat "$dir/results/$t" 2>/dev/null) in
        "ok - "*) passed=$((passed + 1)) ;;
        *)
            [ -f "$dir/results/$t" ] || echo "not ok - fuzz $t: did not run (crash input: none)"
            failed=$((failed + 1))
            ;;
    esac
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
