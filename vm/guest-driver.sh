#!/bin/sh
# The VM test's driver, started by /init (vm/guest-init.sh) just before it
# execs the agent as PID 1. First the host's turn: a default-configured
# agent (ports 5000/5002, host CID 2 only) and a raw stream server serve
# the host driver (vm/host-test.py), which reaches them through
# vsock-vhost's device, until it says it is done on a fifo. Then the
# guest's own checks: connections to the host (CID 2, through the
# device), and everything else over AF_VSOCK loopback to CID 1 inside this
# guest (or a unix socket, for comparison figures). Results go to the
# serial console as "VMTEST: ok|FAIL NAME" lines, figures as
# "VMTEST: FIGURE ..."; the last line is the marker the host parses:
# "VMTEST-RESULT: pass=N fail=M". Then it asks PID 1 to power off.
export PATH=/bin:/sbin HOME=/root

A=vsock:1:6000 # PID 1: options from the kernel command line, trusts CID 1
R=vsock:1:6002 # its ready port
D=vsock:1:5000 # a default-configured agent: serves the host, refuses CID 1
HOST_FIFO=/run/vmtest-host.fifo # the host driver writes a line when done
U=unix:/run/vmtest-agent.sock # a second agent for the unix figures
UR=unix:/run/vmtest-agent-ready.sock
export VSOCK_ADDR=$A
LOG=/tmp/vmtest
pass=0
fail=0

report() { echo "VMTEST: $*"; }
ok() { pass=$((pass + 1)); report "ok   $1${2:+ - $2}"; }
bad() { fail=$((fail + 1)); report "FAIL $1${2:+ - $2}"; }

# run NAME FUNCTION: a check; its output is kept and shown on failure.
run() {
        name=$1
        shift
        if "$@" >"$LOG/$name.out" 2>&1; then
                ok "$name" "$(tail -n 1 "$LOG/$name.out" | cut -c1-160)"
        else
                bad "$name" "status $?"
                sed 's/^/    | /' "$LOG/$name.out" | tail -n 40
        fi
}

# vmcheck SUBCOMMAND ARGS: the library side, bounded against hangs.
vmcheck() { timeout 180 vsock-vmcheck "$@"; }
# ctl ARGS: vsockctl, bounded against hangs.
ctl() { timeout 120 vsockctl "$@"; }

expect_eq() { # what got want
        if [ "$2" != "$3" ]; then
                echo "$1: got '$2', want '$3'"
                return 1
        fi
}

# wait_for COUNT COMMAND...: retry COMMAND every 0.05 s, at most COUNT times.
wait_for() {
        n=$1
        shift
        while [ "$n" -gt 0 ]; do
                "$@" 2>/dev/null && return 0
                sleep 0.05
                n=$((n - 1))
        done
        return 1
}

gone() { [ ! -e "/proc/$1" ]; }
# A killed process that is still a zombie counts as ended: reaping is
# checked separately.
ended() { gone "$1" || grep -q '^State:.*Z' "/proc/$1/status"; }

# ---- boot and init mode ----------------------------------------------------

# The first thing: PID 1's ready port. /proc is not ours to read before
# that (the agent mounts it), so the uptime is read once it accepted.
if out=$(vsock-vmcheck ready "$R" 2>&1); then
        exec </dev/null
        mkdir -p "$LOG"
        ok ready "$out"
        report "FIGURE ready port accepted at kernel uptime ${out#*uptime }"
else
        exec </dev/null
        mkdir -p "$LOG"
        bad ready "$out"
fi

# ---- the host's turn: through vsock-vhost's device ------------------------------

# The host measures boot-to-ready on PID 1's ready port and then drives
# the default agent; the raw server is for its transport figures.
mkfifo "$HOST_FIFO"
vsock-vmcheck raw-serve vsock::7100 >"$LOG/raw-serve.out" 2>&1 &
rpid=$!
vsock-agent >"$LOG/default-agent.log" 2>&1 &
dpid=$!
report "host phase: default agent on 5000/5002 (pid $dpid), raw server on 7100; waiting for the host"
t_host_phase() {
        line=$(timeout 600 sh -c "read -r line <$HOST_FIFO && echo \$line") || { echo "the host never said it was done"; return 1; }
        echo "host driver: $line"
}
run host-phase t_host_phase
kill "$rpid" 2>/dev/null

# ---- guest -> host: vsock-vhost connects to <uds>_<port> on the host ----------

t_guest_to_host() {
        vmcheck echo vsock:2:9000 || return 1
        vmcheck dial-refused vsock:2:9999 || return 1
        vmcheck raw-dial vsock:2:9001 "guest->host" >"$LOG/g2h-figure.txt" || return 1
        cat "$LOG/g2h-figure.txt"
        echo "echo through the host's <uds>_9000, nothing on 9999 refused, 64 MiB to <uds>_9001"
}
run guest-to-host t_guest_to_host
grep '^FIGURE ' "$LOG/g2h-figure.txt" 2>/dev/null | while read -r line; do report "$line"; done

t_local_cid() {
        cid=$(vmcheck cid) || return 1
        # With the virtio transport loaded, the ioctl answers the device's
        # CID (from vsock-vhost's config space), not loopback's 1.
        expect_eq "local CID ioctl" "$cid" 3 && echo "IOCTL_VM_SOCKETS_GET_LOCAL_CID returned $cid (vsock-vhost's --guest-cid)"
}
run local-cid t_local_cid

t_init_mode() {
        expect_eq "PID 1" "$(cat /proc/1/comm)" vsock-agent || return 1
        for m in /proc /sys /dev /dev/pts /dev/shm /tmp /run; do
                awk -v m="$m" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo ||
                        { echo "$m is not mounted"; return 1; }
        done
        expect_eq hostname "$(hostname)" vmtest || return 1
        echo "PID 1 is vsock-agent; /proc /sys /dev /dev/pts /dev/shm /tmp /run mounted; hostname vmtest"
}
run init-mode t_init_mode

# ---- the agent with default settings refuses CID 1 ---------------------------

# The one that served the host: the same agent turns a guest process away.
t_default_refuses() {
        ctl -a vsock:1 wait-ready --timeout 30s || { kill "$dpid"; return 1; }
        vmcheck refused "$D" || { kill "$dpid"; return 1; }
        ctl -a vsock:1 exec -- echo should-not-run
        st=$?
        kill -TERM "$dpid"
        wait "$dpid"
        dst=$?
        expect_eq "vsockctl exec status against a refusing agent" "$st" 255 || return 1
        expect_eq "default agent's exit status after SIGTERM" "$dst" 0 || return 1
        echo "the default agent (ports 5000/5002, host CID only) that served the host refused CID 1; it exited 0 on SIGTERM"
}
run default-refuses-cid1 t_default_refuses

# ---- vsockctl against PID 1 ---------------------------------------------------

t_wait_ready() {
        ctl wait-ready --timeout 10s --ready-addr "$R" && echo "vsockctl wait-ready on $R"
}
run cli-wait-ready t_wait_ready

t_exec_batch() {
        expect_eq stdout "$(ctl exec -- echo hello world)" "hello world" || return 1
        expect_eq argv "$(ctl exec --argv -- /bin/echo 'a  b' c)" "a  b c" || return 1
        ctl exec -- 'echo to-out; echo to-err >&2' >"$LOG/split.out" 2>"$LOG/split.err" || return 1
        expect_eq "split stdout" "$(cat "$LOG/split.out")" to-out || return 1
        expect_eq "split stderr" "$(cat "$LOG/split.err")" to-err || return 1
        expect_eq "env and workdir" "$(ctl exec -e FOO=bar -w /tmp -- 'echo $FOO $(pwd)')" "bar /tmp" || return 1
        expect_eq "user" "$(ctl exec -u tester -- 'id -u; id -g')" "1000
1000" || return 1
        echo "stdout, argv, stderr, env, workdir, user"
}
run cli-exec t_exec_batch

t_exit_codes() {
        ctl exec -- 'exit 7'
        expect_eq "exit 7" $? 7 || return 1
        ctl exec -- false
        expect_eq "false" $? 1 || return 1
        ctl exec -- 'kill -KILL $$'
        st=$?
        [ "$st" -ne 0 ] || { echo "a command killed by SIGKILL exited 0"; return 1; }
        ctl exec --argv -- /nonexistent/cmd
        st2=$?
        [ "$st2" -ne 0 ] || { echo "a missing command exited 0"; return 1; }
        echo "exit 7 -> 7, false -> 1, SIGKILL -> $st, missing command -> $st2"
}
run cli-exit-codes t_exit_codes

t_stream() {
        expect_eq "last line" "$(ctl exec -- 'seq 1 200000' | tail -n 1)" 200000 || return 1
        expect_eq "bytes" "$(ctl exec -- 'head -c 20000000 /dev/zero' | wc -c)" 20000000 || return 1
        echo "200000 lines and 20 MB streamed"
}
run cli-stream t_stream

t_stdin() {
        expect_eq "lines" "$(seq 1 50000 | ctl exec -i -- wc -l)" 50000 || return 1
        want=$(head -c 3000000 /dev/urandom | tee "$LOG/rand" | md5sum)
        expect_eq "digest" "$(ctl exec -i -- md5sum <"$LOG/rand")" "$want" || return 1
        expect_eq "empty stdin" "$(ctl exec -i -- wc -c </dev/null)" 0 || return 1
        echo "50000 lines, 3 MB random data intact, empty stdin"
}
run cli-stdin t_stdin

t_tty() {
        out=$(ctl exec -tt -- 'tty; stty size' </dev/null) || return 1
        echo "$out"
        case "$out" in */dev/pts/*) ;; *) echo "no pts"; return 1 ;; esac
        ctl exec -tt -- 'exit 5' </dev/null
        expect_eq "tty exit" $? 5 || return 1
        echo "a /dev/pts terminal of the default size; exit 5 passed through"
}
run cli-tty t_tty

t_signal() {
        rm -f "$LOG/sig.out"
        mkfifo "$LOG/sig.in"
        # busybox timeout execs its program in its own pid: $! is vsockctl.
        timeout 120 vsockctl exec -i -- 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done' \
                <"$LOG/sig.in" >"$LOG/sig.out" 2>&1 &
        cpid=$!
        exec 7>"$LOG/sig.in" # keep stdin open: the command must end by the signal
        wait_for 400 grep -q ready "$LOG/sig.out" || { kill "$cpid"; exec 7>&-; return 1; }
        kill -TERM "$cpid"
        wait "$cpid"
        st=$?
        exec 7>&-
        cat "$LOG/sig.out"
        expect_eq "status after forwarded SIGTERM" "$st" 3 || return 1
        grep -q got-term "$LOG/sig.out" && echo "SIGTERM forwarded, trap ran, exit 3"
}
run cli-signal t_signal

t_cancel() {
        rm -f "$LOG/c1.pid" "$LOG/c2.pid"
        ctl exec --timeout 1s -- "echo \$\$ >$LOG/c1.pid; exec sleep 60"
        expect_eq "--timeout status" $? 124 || return 1
        p1=$(cat "$LOG/c1.pid") || return 1
        wait_for 200 ended "$p1" || { echo "pid $p1 survived --timeout"; return 1; }

        timeout 120 vsockctl exec -- "echo \$\$ >$LOG/c2.pid; exec sleep 60" &
        cpid=$!
        wait_for 400 test -s "$LOG/c2.pid" || { kill "$cpid"; return 1; }
        kill -TERM "$cpid"
        wait "$cpid"
        expect_eq "status after SIGTERM cancel" $? 143 || return 1
        p2=$(cat "$LOG/c2.pid")
        wait_for 200 ended "$p2" || { echo "pid $p2 survived the cancel"; return 1; }
        echo "--timeout -> 124, SIGTERM -> 143, both remote commands ended"
}
run cli-cancel t_cancel

t_files() {
        ctl cp /bin/vsock-vmcheck :"$LOG/copy.bin" || return 1
        cmp /bin/vsock-vmcheck "$LOG/copy.bin" || return 1
        ctl cp :/etc/passwd "$LOG/passwd.copy" || return 1
        cmp /etc/passwd "$LOG/passwd.copy" || return 1
        expect_eq cat "$(ctl cat :/etc/group | md5sum)" "$(md5sum </etc/group)" || return 1
        ctl ls -l :"$LOG" >"$LOG/ls.txt" || return 1
        grep -q 'copy.bin' "$LOG/ls.txt" || { cat "$LOG/ls.txt"; return 1; }
        ctl cat :/nonexistent/file
        expect_eq "missing file status" $? 1 || return 1
        echo "cp both ways, cat, ls -l, missing file -> 1"
}
run cli-files t_files

t_port_forward() {
        mkdir -p "$LOG/www"
        echo "hello through the forward" >"$LOG/www/index.html"
        httpd -f -p 127.0.0.1:8080 -h "$LOG/www" &
        hpid=$!
        timeout 120 vsockctl port-forward 18080:8080 2>"$LOG/pf.err" &
        fpid=$!
        wait_for 400 grep -q Forwarding "$LOG/pf.err" || { kill "$hpid" "$fpid"; cat "$LOG/pf.err"; return 1; }
        out=$(wget -q -O - http://127.0.0.1:18080/index.html)
        st=$?
        out2=$(wget -q -O - http://127.0.0.1:18080/index.html)
        kill -TERM "$fpid"
        wait "$fpid"
        fst=$?
        kill "$hpid"
        expect_eq "wget status" "$st" 0 || return 1
        expect_eq "page" "$out" "hello through the forward" || return 1
        expect_eq "second page" "$out2" "hello through the forward" || return 1
        expect_eq "port-forward status after SIGTERM" "$fst" 0 || return 1
        echo "guest 127.0.0.1:18080 -> agent -> httpd 127.0.0.1:8080, twice"
}
run cli-port-forward t_port_forward

# ---- the library against PID 1 ----------------------------------------------

run lib-tty vmcheck tty "$A"
run lib-stdin vmcheck stdin "$A"
run lib-signal vmcheck signal "$A"
run lib-cancel vmcheck cancel "$A"
run lib-files vmcheck files "$A"

t_lib_forward() {
        nc -ll -p 7070 -e cat &
        npid=$!
        wait_for 200 sh -c 'echo probe | nc 127.0.0.1 7070 | grep -q probe' || { kill "$npid"; return 1; }
        vmcheck forward "$A" 7070
        st=$?
        kill "$npid"
        return $st
}
run lib-port-forward t_lib_forward
run lib-concurrent-100 vmcheck concurrent "$A" 100

# ---- PID 1 reaps orphans ---------------------------------------------------------

t_orphans() {
        rm -f "$LOG/orphan.pid"
        # setsid + background: the inner sh is reparented to PID 1 once the
        # command's shell exits, outside every session the agent tracks.
        ctl exec -- "setsid sh -c 'echo \$\$ >$LOG/orphan.pid; sleep 0.5' </dev/null >/dev/null 2>&1 & exit 0" ||
                return 1
        wait_for 400 test -s "$LOG/orphan.pid" || { echo "orphan never started"; return 1; }
        op=$(cat "$LOG/orphan.pid")
        wait_for 400 gone "$op" || { grep -E 'State|PPid' "/proc/$op/status"; echo "orphan $op never reaped"; return 1; }
        z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)
        echo "orphan $op exited and was reaped by PID 1; $z zombies now"
}
run init-reaps-orphans t_orphans

# ---- --pid-ns: a PID namespace and /proc per command -----------------------------

# A third agent, over AF_VSOCK on its own ports: each command is PID 2
# under the agent's small init, sees only its own processes, and takes
# whatever it left behind with it; the guest's /proc stays the guest's.
t_pid_ns() {
        vsock-agent --pid-ns --listen vsock::7000 --ready vsock::7002 --allow-cid 1 >"$LOG/pidns-agent.log" 2>&1 &
        npid=$!
        N=vsock:1:7000
        if ! vmcheck ready vsock:1:7002 >/dev/null; then
                kill "$npid"
                cat "$LOG/pidns-agent.log"
                return 1
        fi
        ok=1
        out=$(ctl -a "$N" exec -- 'echo $$ $PPID; cat /proc/1/comm; ls /proc | grep -c "^[0-9]*$"' | tr '\n' ' ')
        expect_eq "pid, ppid, PID 1, processes" "$out" "2 1 vsock-init 4 " || ok=0
        ctl -a "$N" exec -- 'exit 7'
        expect_eq "exit status" "$?" 7 || ok=0
        out=$(ctl -a "$N" exec -- 'setsid sleep 321 </dev/null >/dev/null 2>&1 & echo started')
        expect_eq "daemon start" "$out" started || ok=0
        wait_for 200 no_sleep_321 || { echo "the daemon outlived its command"; ok=0; }
        expect_eq "the guest's PID 1" "$(cat /proc/1/comm)" vsock-agent || ok=0
        kill -TERM "$npid"
        wait "$npid"
        expect_eq "pid-ns agent's exit status after SIGTERM" "$?" 0 || ok=0
        [ $ok = 1 ] && echo "commands are PID 2 under vsock-init with their own /proc; a daemon ended with its command"
}
no_sleep_321() {
        for f in /proc/[0-9]*/cmdline; do
                tr '\0' ' ' <"$f" 2>/dev/null
                echo
        done | grep -q 'slee[p] 321' && return 1
        return 0
}
run pid-ns t_pid_ns

# ---- figures: AF_VSOCK next to a unix socket, same guest -------------------

t_figures() {
        vsock-agent --listen "$U" --ready "$UR" >"$LOG/unix-agent.log" 2>&1 &
        upid=$!
        vmcheck ready "$UR" >/dev/null || { kill "$upid"; cat "$LOG/unix-agent.log"; return 1; }
        vmcheck bench "$A" "$U" >"$LOG/bench.txt"
        st=$?
        kill -TERM "$upid"
        wait "$upid"
        grep -v '^FIGURE ' "$LOG/bench.txt"
        [ $st = 0 ] && echo "figures below"
}
run figures t_figures
grep '^FIGURE ' "$LOG/bench.txt" 2>/dev/null | while read -r line; do report "$line"; done

# ---- the end -------------------------------------------------------------------------

echo "VMTEST-RESULT: pass=$pass fail=$fail"
sync
# SIGTERM to PID 1: init mode ends its sessions, syncs and powers off; the
# host sees QEMU exit by itself.
kill -TERM 1
sleep 60
