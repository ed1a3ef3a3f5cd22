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
pids=""
cleanup() {
        for p in $pids; do kill "$p" 2>/dev/null || true; done
        kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
        rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

cat <<EOF
Note: the "guest" is this machine. No VM is started: vsock-agent runs here as
an ordinary process listening on $VSOCK_ADDR, so the commands below
run on this machine, guest paths are paths here, and the forwarded port is a
port here. In a VM the same commands take -a vsock:CID (or vsock-mux:PATH).
EOF

step "vsockctl wait-ready --timeout 5s"
"$ctl" wait-ready --timeout 5s && echo "agent is ready (pid $agent_pid, $VSOCK_ADDR)"

step "vsockctl exec -- 'uname -srm; id; for i in 1 2 3; do echo tick \$i; sleep 0.2; done'"
"$ctl" exec -- 'uname -srm; id; for i in 1 2 3; do echo tick $i; sleep 0.2; done'

step "vsockctl exec -- 'echo to-stderr >&2; exit 42'   (exit status propagates)"
set +e
"$ctl" exec -- 'echo to-stderr >&2; exit 42'
echo "exit status: $?"
set -e

step "seq 1 100000 | vsockctl exec -- 'wc -l'   (piped stdin goes to the command, as with ssh)"
seq 1 100000 | "$ctl" exec -- 'wc -l'

step "vsockctl exec --argv -- printf '[%s]\\n' 'two words' '\$HOME'   (no shell: arguments as given)"
"$ctl" exec --argv -- printf '[%s]\n' 'two words' '$HOME' </dev/null

step "vsockctl exec -tt -- 'tty; stty size; echo TERM=\$TERM'   (a remote terminal; on your own terminal -t is enough)"
"$ctl" exec -tt -- 'tty; stty size; echo TERM=$TERM' </dev/null

step "vsockctl cp (host -> guest -> host round trip of 1 MiB)"
head -c 1048576 /dev/urandom >"$dir/blob"
"$ctl" cp "$dir/blob" ":$dir/guest/blob"
"$ctl" cp ":$dir/guest/blob" "$dir/blob.back"
cmp "$dir/blob" "$dir/blob.back" && echo "round trip byte-exact: $(wc -c <"$dir/blob.back") bytes"

step "vsockctl ls -l :$dir/guest"
"$ctl" ls -l ":$dir/guest"

step "vsockctl cat :/etc/hostname"
"$ctl" cat :/etc/hostname

# A TCP service "in the guest": a one-connection echo server on loopback.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.sendall(c.recv(4096)); c.close()
' >"$dir/echo.port" &
pids="$pids $!"
while [ ! -s "$dir/echo.port" ]; do sleep 0.05; done
gport=$(cat "$dir/echo.port")

step "vsockctl port-forward 0:$gport &   (like ssh -L: a local port to the guest's 127.0.0.1:$gport)"
"$ctl" port-forward "0:$gport" 2>"$dir/forward.log" &
pids="$pids $!"
while ! grep -q '^Forwarding' "$dir/forward.log" 2>/dev/null; do sleep 0.05; done
cat "$dir/forward.log"
lport=$(sed -n 's/^Forwarding 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$dir/forward.log")
python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
c.sendall(b"hello through the forward\n"); c.shutdown(socket.SHUT_WR)
print("echoed back:", c.recv(4096).decode().strip())
' "$lport"

printf '\nagent log:\n'
cat "$dir/agent.log"
