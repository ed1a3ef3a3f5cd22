#!/bin/sh
# Run every suite and end with one "N passed, N failed" line.
#   test.sh BUILD ASAN_BUILD FUZZ_BUILD   normal, sanitizer and fuzz-smoke runs
#   test.sh --only BUILD                  normal build only
set -u
only=0
if [ "${1:-}" = "--only" ]; then only=1; shift; fi
build=$1
asan=${2:-build-asan}
fuzz=${3:-build-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
status=0
logs=""

run_suite() { # dir label
        echo "== $2: meson test -C $1"
        # Tests that spawn agents and children get generous timeouts; a hang
        # is caught by each test's own bounds first.
        meson test -C "$1" --print-errorlogs --num-processes 2 --timeout-multiplier 3 || status=1
        logs="$logs $1/meson-logs/testlog.json:$2"
}

run_suite "$build" normal

if [ $only = 0 ]; then
        # ASan + UBSan (LeakSanitizer on): a separate build directory; the
        # agent is linked dynamically there because ASan cannot be static.
        if [ ! -f "$asan/build.ninja" ]; then
                CC=${ASAN_CC:-gcc} meson setup "$asan" -Db_sanitize=address,undefined -Db_lundef=false \
                        -Dstatic_agent=false -Dbuildtype=debug >/dev/null || status=1
        fi
        if ninja -C "$asan" >/dev/null; then
                ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
                        run_suite "$asan" asan
        else
                ninja -C "$asan"; status=1
        fi
        # Fuzz smoke: every libFuzzer target for a fixed number of runs.
        if [ -x "$here/fuzz.sh" ]; then
                "$here/fuzz.sh" --smoke "$fuzz" || status=1
                [ -f "$fuzz/fuzz-smoke.json" ] && logs="$logs $fuzz/fuzz-smoke.json:fuzz"
        fi
fi

python3 "$here/test-summary.py" $logs || status=1
exit $status
