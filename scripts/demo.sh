#!/bin/sh
# `make run`: start the agent on a private unix socket and drive it with
# vsockctl, the way a host drives a guest, with no VM needed.
set -eu
build=${1:-build}
agent=$build/src/agent/vsock-agent
ctl=$build/src/cli/vsockctl
dir=$(mktemp -d /tmp/vsock-demo.XXXXXX)
export VSOCK_ADDR="unix:$dir/exec.sock"
export VSOCK_READY_ADDR="unix:$dir/ready.sock"

"$agent" --listen "$VSOCK_ADDR" --ready "$VSOCK_READY_ADDR" --log-level info 2>"$dir/agent.log" &
agent_pid=$!
cleanup() {
        kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
        rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "vsockctl wait-ready --timeout 5s"
"$ctl" wait-ready --timeout 5s && echo "agent is ready (pid $agent_pid, $VSOCK_ADDR)"

step "vsockctl exec -- 'uname -srm; id; for i in 1 2 3; do echo tick \$i; sleep 0.2; done'"
"$ctl" exec -- 'uname -srm; id; for i in 1 2 3; do echo tick $i; sleep 0.2; done'

step "vsockctl exec -- 'echo to-stderr >&2; exit 42'   (exit status propagates)"
set +e
"$ctl" exec -- 'echo to-stderr >&2; exit 42'
echo "exit status: $?"
set -e

step "seq 1 100000 | vsockctl exec -i -- 'wc -l'   (pipe mode with stdin)"
seq 1 100000 | "$ctl" exec -i -- 'wc -l'

step "vsockctl cp (host -> guest -> host round trip of 1 MiB)"
head -c 1048576 /dev/urandom >"$dir/blob"
"$ctl" cp "$dir/blob" ":$dir/guest/blob"
"$ctl" cp ":$dir/guest/blob" "$dir/blob.back"
cmp "$dir/blob" "$dir/blob.back" && echo "round trip byte-exact: $(wc -c <"$dir/blob.back") bytes"

step "vsockctl ls -l :$dir/guest"
"$ctl" ls -l ":$dir/guest"

step "vsockctl cat :/etc/hostname"
"$ctl" cat :/etc/hostname

printf '\nagent log:\n'
cat "$dir/agent.log"
