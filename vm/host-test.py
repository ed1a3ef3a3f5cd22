#!/usr/bin/env python3
"""make test-vm, the host's side: the guest's vsock device is vsock-vhost.

Starts vsock-vhost (ready when it says READY=1 on $NOTIFY_SOCKET) and QEMU
with a vhost-user-vsock-pci device on a shared memfd; serves two host
sockets for the guest's connections to the host (<uds>_9000 echoes,
<uds>_9001 is the raw stream server of vsock-vmcheck's figures); then,
from the HOST, through Firecracker's hybrid-vsock socket:
  - boot-to-ready: the literal "CONNECT 6002" handshake, polled from QEMU's
    start until PID 1's ready port answers;
  - the default-configured guest agent (ports 5000/5002, host CID 2 only)
    with vsockctl and the library (vsock-vmcheck) over vsock-mux:
    wait-ready, every exec mode, exit codes, signals, cancellation, files,
    port forwarding, 50 concurrent sessions;
  - figures: exec latency and stream throughput through the device, and
    the raw transport;
then tells the guest it is done (a line into its fifo) and waits for QEMU
to exit. Prints "HOSTTEST: ok|FAIL NAME" and "HOSTTEST: FIGURE" lines and
ends with "HOSTTEST-RESULT: pass=N fail=M"; exit status 0 when every host
check passed and QEMU ended by itself. The guest's own verdict is on its
console (--log), which run-vm-test.sh reads. Python standard library only.
"""
import argparse
import hashlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

GUEST_CID = 3
READY_PID1 = 6002          # PID 1 (init mode, options from the kernel command line)
AGENT_PORT, AGENT_READY = 5000, 5002  # the default-configured agent
RAW_PORT = 7100            # vsock-vmcheck raw-serve in the guest
ECHO_PORT, SINK_PORT = 9000, 9001     # host services for the guest

passed = failed = 0


def report(line):
    print(f"HOSTTEST: {line}", flush=True)


def check(name, fn):
    """Run one check; its exception (or False) is a failure."""
    global passed, failed
    try:
        detail = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        failed += 1
        report(f"FAIL {name} - {type(e).__name__}: {e}")
        return False
    passed += 1
    report(f"ok   {name}{' - ' + detail if detail else ''}")
    return True


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


class Host:
    def __init__(self, args):
        self.a = args
        self.work = args.work
        self.uds = os.path.join(self.work, "vsock.sock")
        self.mux = f"vsock-mux:{self.uds}"
        self.backend = None
        self.qemu = None
        self.t_qemu = None
        self.stop = threading.Event()

    # ---- processes -----------------------------------------------------------

    def start_backend(self):
        notify = os.path.join(self.work, "notify.sock")
        for p in (notify, self.uds):
            if os.path.exists(p):
                os.unlink(p)
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(notify)
        ns.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=notify)
        self.backend_log = open(os.path.join(self.work, "vsock-vhost.log"), "w")
        self.backend = subprocess.Popen(
            [self.a.backend, "--socket-path", os.path.join(self.work, "vhost.sock"),
             "--uds-path", self.uds, "--guest-cid", str(GUEST_CID)],
            stdin=subprocess.DEVNULL, stdout=self.backend_log, stderr=subprocess.STDOUT, env=env)
        try:
            msg = ns.recv(64)
        finally:
            ns.close()
        expect("vsock-vhost readiness", msg, b"READY=1")

    def start_qemu(self):
        vhost = os.path.join(self.work, "vhost.sock")
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512",
               "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-net", "none",
               # The device's rings live in guest memory: it must be shared.
               "-object", "memory-backend-memfd,id=mem,size=512M,share=on", "-numa", "node,memdev=mem",
               "-chardev", f"socket,id=vsock0,path={vhost}",
               "-device", "vhost-user-vsock-pci,chardev=vsock0",
               "-kernel", self.a.kernel, "-initrd", self.a.initrd, "-append", self.a.append]
        log = open(self.a.log, "wb")
        self.t_qemu = time.monotonic()
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def left(self):
        return self.a.timeout - (time.monotonic() - self.t_qemu)

    def finish(self):
        """Wait for QEMU (the guest powers off by itself), stop vsock-vhost."""
        qemu_ok = True
        try:
            rc = self.qemu.wait(timeout=max(1, self.left()))
            if rc != 0:
                report(f"FAIL qemu - exit status {rc}")
                qemu_ok = False
        except subprocess.TimeoutExpired:
            report(f"FAIL qemu - still running after {self.a.timeout}s; killed")
            self.qemu.kill()
            self.qemu.wait()
            qemu_ok = False
        self.stop.set()
        if self.backend:
            check("vsock-vhost-exit", self.stop_backend)
        return qemu_ok

    def stop_backend(self):
        self.backend.send_signal(signal.SIGTERM)
        try:
            rc = self.backend.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.backend.kill()
            raise AssertionError("vsock-vhost ignored SIGTERM for 20 s")
        expect("vsock-vhost exit status after SIGTERM", rc, 0)
        if os.path.exists(self.uds):
            raise AssertionError(f"{self.uds} left behind")
        return "exit 0 on SIGTERM, sockets removed"

    def kill_all(self):
        for p in (self.qemu, self.backend):
            if p:
                reap(p)

    # ---- host services for the guest -------------------------------------------------

    def serve(self, port, handler):
        path = f"{self.uds}_{port}"
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(8)
        ls.settimeout(0.5)

        def loop():
            while not self.stop.is_set():
                try:
                    c, _ = ls.accept()
                except socket.timeout:
                    continue
                threading.Thread(target=handler, args=(c,), daemon=True).start()
            ls.close()
        threading.Thread(target=loop, daemon=True).start()

    @staticmethod
    def echo(c):
        with c:
            c.settimeout(120)
            while data := c.recv(65536):
                c.sendall(data)

    @staticmethod
    def raw_sink(c):
        """vsock-vmcheck's raw server: 1000 64-byte pings, then a stream to EOF."""
        with c:
            c.settimeout(120)
            for _ in range(1000):
                ping = b""
                while len(ping) < 64:
                    chunk = c.recv(64 - len(ping))
                    if not chunk:
                        return
                    ping += chunk
                c.sendall(ping)
            while c.recv(1 << 20):
                pass

    # ---- tools ----------------------------------------------------------------------------

    def ctl(self, *args, addr=None, input=None, timeout=120, check_rc=None):
        p = subprocess.run([self.a.ctl, "-a", addr or self.mux, *args], input=input, capture_output=True,
                           timeout=timeout)
        if check_rc is not None and p.returncode != check_rc:
            raise AssertionError(f"vsockctl {' '.join(args)}: exit {p.returncode}, "
                                 f"stderr {p.stderr.decode(errors='replace')[-300:]!r}")
        return p

    def guest_sh(self, script, timeout=120):
        """A shell command in the guest; its stdout."""
        return self.ctl("exec", "--", script, timeout=timeout, check_rc=0).stdout.decode()

    def vmcheck(self, *args, timeout=300):
        p = subprocess.run([self.a.vmcheck, *args], capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace").strip()
        if p.returncode != 0:
            raise AssertionError(f"vsock-vmcheck {args[0]}: exit {p.returncode}: {out[-200:]} "
                                 f"{p.stderr.decode(errors='replace')[-300:]}")
        return out

    def hybrid(self, port, payload=b""):
        """Firecracker's handshake by hand: the reply line and what follows."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.uds)
            s.sendall(f"CONNECT {port}\n".encode() + payload)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            return data


# ---- the checks -------------------------------------------------------------------------------

def boot_to_ready(h):
    """Poll PID 1's ready port with the literal handshake from QEMU's start."""
    tries = 0
    while h.left() > 0:
        tries += 1
        try:
            reply = h.hybrid(READY_PID1)
        except OSError:
            reply = b""
        if reply.startswith(b"OK "):
            secs = time.monotonic() - h.t_qemu
            report(f"FIGURE host boot-to-ready: PID 1's ready port answered through vsock-vhost "
                   f"{secs:.2f} s after QEMU started ({tries} CONNECT attempts)")
            return f"{secs:.2f} s, reply {reply.strip().decode()!r}"
        if h.qemu.poll() is not None:
            raise AssertionError(f"QEMU exited ({h.qemu.returncode}) before the guest was ready")
        time.sleep(0.02)
    raise AssertionError("PID 1's ready port never answered")


def firecracker_protocol(h):
    # A reply is "OK <host port>\n" with the port from 2^30 on.
    r = h.hybrid(AGENT_READY)
    if not r.startswith(b"OK ") or not r.endswith(b"\n") or int(r[3:-1]) < 1 << 30:
        raise AssertionError(f"CONNECT {AGENT_READY}: {r!r}")
    # Nothing listens on 4999 in the guest: closed without a word.
    expect("CONNECT 4999", h.hybrid(4999), b"")
    # Not a command: closed without a word.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(h.uds)
        s.sendall(b"HELLO 5000\n")
        expect("a malformed command", s.recv(16), b"")
    return f"{r.strip().decode()!r}; no listener and a bad command closed silently"


def wait_ready(h):
    h.ctl("wait-ready", "--timeout", "60s", check_rc=0)
    return "the default agent's ready port (5002) through vsock-mux"


def exec_batch(h):
    expect("stdout", h.ctl("exec", "--", "echo hello world", check_rc=0).stdout, b"hello world\n")
    expect("argv", h.ctl("exec", "--argv", "--", "/bin/echo", "a  b", "c", check_rc=0).stdout, b"a  b c\n")
    p = h.ctl("exec", "--", "echo to-out; echo to-err >&2", check_rc=0)
    expect("split", (p.stdout, p.stderr), (b"to-out\n", b"to-err\n"))
    expect("env and workdir", h.ctl("exec", "-e", "FOO=bar", "-w", "/tmp", "--", "echo $FOO $(pwd)",
                                    check_rc=0).stdout, b"bar /tmp\n")
    expect("user", h.ctl("exec", "-u", "tester", "--", "id -u; id -g", check_rc=0).stdout, b"1000\n1000\n")
    return "stdout, argv, stderr, env, workdir, user"


def exit_codes(h):
    expect("exit 7", h.ctl("exec", "--", "exit 7").returncode, 7)
    expect("false", h.ctl("exec", "--", "false").returncode, 1)
    killed = h.ctl("exec", "--", "kill -KILL $$").returncode
    missing = h.ctl("exec", "--argv", "--", "/nonexistent/cmd").returncode
    if killed == 0 or missing == 0:
        raise AssertionError(f"SIGKILL -> {killed}, missing command -> {missing}")
    return f"exit 7 -> 7, false -> 1, SIGKILL -> {killed}, missing command -> {missing}"


def stream(h):
    out = h.ctl("exec", "--", "seq 1 200000", check_rc=0).stdout
    expect("last line", out.splitlines()[-1], b"200000")
    expect("bytes", len(h.ctl("exec", "--", "head -c 20000000 /dev/zero", check_rc=0).stdout), 20000000)
    return "200000 lines and 20 MB streamed to the host"


def stdin(h):
    lines = "".join(f"{i}\n" for i in range(1, 50001)).encode()
    expect("lines", h.ctl("exec", "-i", "--", "wc -l", input=lines, check_rc=0).stdout.strip(), b"50000")
    data = os.urandom(3_000_000)
    got = h.ctl("exec", "-i", "--", "md5sum", input=data, check_rc=0).stdout.split()[0].decode()
    expect("digest", got, hashlib.md5(data).hexdigest())
    expect("empty", h.ctl("exec", "-i", "--", "wc -c", input=b"", check_rc=0).stdout.strip(), b"0")
    return "50000 lines, 3 MB of random data intact, empty stdin"


def tty(h):
    p = h.ctl("exec", "-tt", "--", "tty; stty size", input=b"", check_rc=0)
    if b"/dev/pts/" not in p.stdout:
        raise AssertionError(f"no pts: {p.stdout!r}")
    expect("tty exit", h.ctl("exec", "-tt", "--", "exit 5", input=b"").returncode, 5)
    return "a /dev/pts terminal; exit 5 passed through"


def reap(p):
    """Kill @p if it still runs (a check that failed half-way)."""
    if p.poll() is None:
        p.kill()
        p.wait()


def read_line(stream, timeout):
    """A line from a child's pipe, bounded (no reads that can hang)."""
    end = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    while time.monotonic() < end:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            chunk = None
        if chunk == b"":
            break
        if chunk:
            buf += chunk
            if b"\n" in buf:
                return buf
        else:
            select.select([fd], [], [], 0.2)
    raise AssertionError(f"no line within {timeout}s (got {buf!r})")


def signal_forwarding(h):
    p = subprocess.Popen([h.a.ctl, "-a", h.mux, "exec", "-i", "--",
                          'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done'],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_line(p.stdout, 60)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        rest = p.stdout.read()
    finally:
        reap(p)
        p.stdin.close()
    expect("status after a forwarded SIGTERM", rc, 3)
    if b"got-term" not in rest:
        raise AssertionError(f"trap output missing: {rest!r}")
    return "SIGTERM forwarded to the guest command, trap ran, exit 3"


def ended_in_guest(h, pid):
    """The guest process @pid ends (or is a zombie) within 10 s."""
    h.guest_sh(f'for i in $(seq 200); do [ -e /proc/{pid} ] || exit 0; '
               f'grep -q "^State:.*Z" /proc/{pid}/status && exit 0; sleep 0.05; done; exit 1')


def cancel(h):
    expect("--timeout status", h.ctl("exec", "--timeout", "2s", "--",
                                     "echo $$ >/tmp/host-c1.pid; exec sleep 60").returncode, 124)
    ended_in_guest(h, int(h.guest_sh("cat /tmp/host-c1.pid")))
    p = subprocess.Popen([h.a.ctl, "-a", h.mux, "exec", "--", "echo $$; exec sleep 60"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = int(read_line(p.stdout, 60))
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    finally:
        reap(p)
    expect("status after SIGTERM", rc, 143)
    ended_in_guest(h, pid)
    return "--timeout -> 124, SIGTERM -> 143, both guest commands ended"


def files(h):
    src = os.path.join(h.work, "host-file.bin")
    back = os.path.join(h.work, "host-file.back")
    data = os.urandom(2_000_000)
    with open(src, "wb") as f:
        f.write(data)
    h.ctl("cp", src, ":/tmp/host-file.bin", check_rc=0)
    h.ctl("cp", ":/tmp/host-file.bin", back, check_rc=0)
    with open(back, "rb") as f:
        expect("round trip", hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
    expect("cat", h.ctl("cat", ":/tmp/host-file.bin", check_rc=0).stdout == data, True)
    if b"host-file.bin" not in h.ctl("ls", "-l", ":/tmp", check_rc=0).stdout:
        raise AssertionError("ls -l does not list the file")
    expect("missing file status", h.ctl("cat", ":/nonexistent/file").returncode, 1)
    return "2 MB cp both ways, cat, ls -l, missing file -> 1"


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_forward(h):
    h.guest_sh("mkdir -p /tmp/www && echo 'hello through the device' >/tmp/www/index.html && "
               "httpd -p 127.0.0.1:8081 -h /tmp/www")
    port = free_tcp_port()
    p = subprocess.Popen([h.a.ctl, "-a", h.mux, "port-forward", f"{port}:8081"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        read_line(p.stderr, 60)  # "Forwarding ..." once it listens
        pages = [urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=60).read()
                 for _ in range(2)]
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    finally:
        reap(p)
        h.guest_sh("kill $(pidof httpd) 2>/dev/null; true")
    expect("pages", pages, [b"hello through the device\n"] * 2)
    expect("port-forward status after SIGTERM", rc, 0)
    return f"host 127.0.0.1:{port} -> guest httpd 127.0.0.1:8081, twice"


def lib_checks(h):
    outs = [h.vmcheck(sub, h.mux).splitlines()[-1] for sub in ("tty", "stdin", "signal")]
    # Started in the background: wait until it answers, or the forward races its bind.
    h.guest_sh("nc -ll -p 7071 -e cat </dev/null >/dev/null 2>&1 & n=400; "
               "until echo probe | nc 127.0.0.1 7071 2>/dev/null | grep -q probe; do "
               "n=$((n - 1)); [ $n -gt 0 ] || exit 1; sleep 0.05; done")
    try:
        outs.append(h.vmcheck("forward", h.mux, "7071").splitlines()[-1])
    finally:
        h.guest_sh("kill $(pidof nc) 2>/dev/null; true")
    return "; ".join(outs)


def concurrent(h):
    return h.vmcheck("concurrent", h.mux, "50").splitlines()[-1]


def figures(h):
    lines = h.vmcheck("figures", h.mux, "host->guest").splitlines()
    lines += h.vmcheck("raw-dial", f"{h.mux}:{RAW_PORT}", "host->guest").splitlines()
    for line in lines:
        if line.startswith("FIGURE "):
            report(line)
    return "through vsock-vhost, below"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for opt in ("work", "backend", "ctl", "vmcheck", "kernel", "initrd", "append", "log"):
        ap.add_argument(f"--{opt}", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    h = Host(args)
    try:
        h.start_backend()
        h.serve(ECHO_PORT, Host.echo)
        h.serve(SINK_PORT, Host.raw_sink)
        h.start_qemu()
        if check("boot-to-ready", lambda: boot_to_ready(h)) and check("wait-ready", lambda: wait_ready(h)):
            for name, fn in [("firecracker-protocol", firecracker_protocol), ("exec", exec_batch),
                             ("exit-codes", exit_codes), ("stream", stream), ("stdin", stdin), ("tty", tty),
                             ("signal", signal_forwarding), ("cancel", cancel), ("files", files),
                             ("port-forward", port_forward), ("lib", lib_checks),
                             ("concurrent-50", concurrent), ("figures", figures)]:
                check(name, lambda fn=fn: fn(h))
            # The guest goes on with its own checks once told.
            check("guest-told", lambda: h.guest_sh(
                f"echo 'pass={passed} fail={failed}' >/run/vmtest-host.fifo") or "the guest goes on")
        else:
            h.qemu.kill()
        qemu_ok = h.finish()
    except Exception as e:  # noqa: BLE001 - set-up failures end the run
        report(f"FAIL setup - {type(e).__name__}: {e}")
        h.kill_all()
        qemu_ok = False
        global failed
        failed += 1
    print(f"HOSTTEST-RESULT: pass={passed} fail={failed}", flush=True)
    return 0 if failed == 0 and qemu_ok else 1


if __name__ == "__main__":
    sys.exit(main())
