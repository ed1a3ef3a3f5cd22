#!/bin/sh
# libFuzzer targets (clang): builds an instrumented tree and runs them.
#   fuzz.sh BUILD_DIR [SECONDS]     run each target for SECONDS (default 60)
#   fuzz.sh --smoke BUILD_DIR       fixed number of runs per target (CI),
#                                   writes BUILD_DIR/fuzz-smoke.json
set -u
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
build=${1:-build-fuzz}
secs=${2:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${FUZZ_SMOKE_RUNS:-20000}

if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true -Dtests=false -Dstatic_agent=false \
                -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
                -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || exit 1
fi
ninja -C "$build" >/dev/null || { ninja -C "$build"; exit 1; }

# Seed corpora from the golden vectors: the payload of each vector goes to
# the target that decodes it (with its selector byte for fuzz-msg).
python3 "$top/scripts/fuzz-seeds.py" "$top/tests/data/wire-vectors.jsonl" "$build/corpus"

status=0
results=""
for t in frame msg addr wfparse vhost ext tar dircursor; do
        exe="$build/fuzz/fuzz-$t"
        mkdir -p "$build/corpus/$t"
        if [ $smoke = 1 ]; then
                set -- -runs="$runs"
        else
                set -- -max_total_time="$secs" -print_final_stats=1
        fi
        log="$build/fuzz-$t.log"
        if ASAN_OPTIONS=detect_leaks=1 "$exe" "$@" -max_len=65536 -rss_limit_mb=2048 \
                "$build/corpus/$t" >"$log" 2>&1; then
                res=OK
        else
                res=FAIL; status=1
                tail -40 "$log"
        fi
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
        [ -z "$execs" ] && execs=$(grep -Eo '#[0-9]+' "$log" | tail -1 | tr -d '#')
        echo "fuzz-$t: $res, ${execs:-?} executions"
        results="$results{\"name\": \"fuzz-$t\", \"result\": \"$res\", \"stdout\": \"\"}
"
done
[ $smoke = 1 ] && printf '%s' "$results" >"$build/fuzz-smoke.json"
exit $status
