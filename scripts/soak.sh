#!/bin/sh
# make soak: vsock-agent under 50 concurrent clients doing random host
# operations with random disconnects, for 60 s (SOAK_SECONDS to change;
# SOAK_ARGS for more vsock-soak options, e.g. "--threads 20 --seed 42").
# Fails if the agent leaks fds, children or memory, or any call fails.
set -eu
build=${1:-build}
soak="$build/tests/integration/vsock-soak"
agent="$build/src/agent/vsock-agent"
for f in "$soak" "$agent"; do
        if [ ! -x "$f" ]; then
                echo "soak.sh: $f not built (run: ninja -C $build)" >&2
                exit 1
        fi
done
# shellcheck disable=SC2086 # SOAK_ARGS is a list of options
exec "$soak" --agent "$agent" --seconds "${SOAK_SECONDS:-60}" ${SOAK_ARGS:-}
