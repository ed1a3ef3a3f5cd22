#!/usr/bin/env python3
"""Write libFuzzer seed corpora: the golden wire vectors for the protocol
decoders, and guest memory images with well-formed rings for fuzz-vhost."""
import base64
import io
import tarfile
import json
import os
import struct
import sys

vectors, out = sys.argv[1], sys.argv[2]
# fuzz-msg selector byte per message struct (see fuzz/fuzz-msg.c)
selector = {
    "ExecRequest": 0, "ExecTTYRequest": 1, "ExecResponse": 2, "PortForwardRequest": 3,
    "WriteFileRequest": 4, "ReadFileRequest": 5, "ListFilesRequest": 5, "FileInfo": 6,
    "FileResponse": 7, "WindowSize": 8, "frame": 8,
}
for d in ("frame", "msg", "addr", "wfparse", "vhost", "ext", "tar", "dircursor"):
    os.makedirs(os.path.join(out, d), exist_ok=True)

def put(d, name, data):
    with open(os.path.join(out, d, name), "wb") as f:
        f.write(data)

for line in open(vectors):
    v = json.loads(line)
    payload = base64.b64decode(v["payload_b64"])
    shape = v["struct"].split("(")[0]
    put("msg", v["name"], bytes([selector.get(shape, 0)]) + payload)
    if shape == "WriteFileRequest":
        # fuzz-wfparse: a piece-size byte, then the payload.
        for piece in (0, 3, 63):
            put("wfparse", f'{v["name"]}-{piece}', bytes([piece]) + payload)
    if v.get("frame_hex"):
        # fuzz-frame: a mode byte (chunk size, limit, headers reported), then frames.
        put("frame", v["name"], bytes([4]) + bytes.fromhex(v["frame_hex"]) * 2)
        put("frame", v["name"] + "-headers", bytes([0x84]) + bytes.fromhex(v["frame_hex"]) * 2)
for i, a in enumerate(["vsock:3:5000", "vsock::5000", "vsock:any:1", "vsock:host:5002",
                       "vsock-mux:/run/fc.sock:5000", "unix:/tmp/a.sock", "tcp:127.0.0.1:80",
                       "tcp:[::1]:8080", "tcp:localhost:22", "vsock:hypervisor", "unix:@abstract"]):
    put("addr", f"seed{i}", a.encode())


# fuzz-vhost: a flags byte, then guest memory from guest-physical 0x10000
# (see fuzz/fuzz-vhost.c for where the rings live). Eight rx buffers (a
# 44-byte header descriptor and a data one, as Linux posts them) and a tx
# ring of packets from guest port 1000: a connection request to host port
# 1 (where the target listens), data, credit, shutdown, a stray packet.
GPA = 0x10000
RX_DESC, RX_AVAIL, TX_DESC, TX_AVAIL = 0x0000, 0x0100, 0x0400, 0x0500


def vhost_image(ops, indirect=False, extra_avail=0):
    mem = bytearray(0xC000)

    def desc(base, i, addr, length, flags, nxt):
        struct.pack_into("<QIHH", mem, base + 16 * i, GPA + addr, length, flags, nxt)

    for i in range(8):
        hdr, data = 0x1000 + i * 0x200, 0x1100 + i * 0x200
        desc(RX_DESC, 2 * i, hdr, 44, 2 | 1, 2 * i + 1)
        desc(RX_DESC, 2 * i + 1, data, 256, 2, 0)
        struct.pack_into("<H", mem, RX_AVAIL + 4 + 2 * i, 2 * i)
    struct.pack_into("<HH", mem, RX_AVAIL, 0, 8)
    for i, (op, sport, dport, flags, payload) in enumerate(ops):
        at = 0x4000 + i * 0x400
        pkt = struct.pack("<QQIIIHHIII", 3, 2, sport, dport, len(payload), 1, op, flags, 4096, 0) + payload
        mem[at:at + len(pkt)] = pkt
        if indirect:
            table = 0x9000 + i * 0x40
            struct.pack_into("<QIHH", mem, table, GPA + at, len(pkt), 0, 0)
            desc(TX_DESC, i, table, 16, 4, 0)
        else:
            desc(TX_DESC, i, at, len(pkt), 0, 0)
        struct.pack_into("<H", mem, TX_AVAIL + 4 + 2 * i, i)
    struct.pack_into("<HH", mem, TX_AVAIL, 0, len(ops) + extra_avail)
    return bytes(mem)


REQ, RESP, RST, SHUT, RW, CUPD, CREQ = 1, 2, 3, 4, 5, 6, 7
session = [(REQ, 1000, 1, 0, b""), (RW, 1000, 1, 0, b"hello"), (CREQ, 1000, 1, 0, b""),
           (CUPD, 1000, 1, 0, b""), (SHUT, 1000, 1, 2, b""), (RW, 1001, 9, 0, b"stray"),
           (SHUT, 1000, 1, 3, b""), (RST, 1000, 1, 0, b"")]
put("vhost", "session", bytes([2]) + vhost_image(session))
put("vhost", "session-indirect", bytes([3]) + vhost_image(session, indirect=True))
put("vhost", "refused", bytes([0]) + vhost_image([(REQ, 1000, 7, 0, b""), (RW, 1000, 7, 0, b"x" * 300)]))
put("vhost", "bad-index", bytes([0]) + vhost_image(session[:2], extra_avail=40))
# fuzz-ext: the selector byte is the message type - 64 (see fuzz/fuzz-ext.c);
# 63 and 62 stand for the Stat and Limits shapes.
stat = ('{"name":"l","size":7,"mode":41471,"uid":1000,"gid":100,"user":"u","group":"g","nlink":1,'
        '"ino":42,"dev":2049,"rdev":5,"mtime_ns":1700000000123456789,"atime_ns":-1,"ctime_ns":3,"target":"/x"}')
ext = {
    64: '{"version":1,"client":"vsockctl","features":["reuse","fs"]}',
    65: '{"version":1,"agent":"a","boot_id":"b","features":["fs"],"limits":{"max_payload":16777216,"procs_max":64}}',
    66: '{"code":"ENOENT","errno":2,"message":"stat /x: \u003cgone\u003e","op":"stat"}',
    68: '\x00\x01\x00\x00',
    69: '{"size":5,"sha256":"ab","entries":3,"skipped":1}',
    70: '{"op":"chown","path":"/x","target":"t","mode":0,"uid":0,"gid":-1,"mtime_ns":0,"parents":true}',
    71: '{"stat":' + stat + ',"target":"x"}',
    72: '{"path":"/","cursor":"c1","limit":10}',
    73: '{"entries":[' + stat + ',{},null],"next":"n"}',
    74: '{"path":"/f","offset":10,"length":20,"window":65536}',
    75: '{"path":"/f","mode":420,"uid":0,"size":0,"upload_id":"0123456789abcdef","resume":true}',
    76: '{"stat":' + stat + ',"offset":4,"window":1048576,"upload_id":"u"}',
    77: '{"path":"/d","window":7}',
    78: '{"path":"/d","preserve_owner":true}',
    80: '{"command":"c","args":["sh","-c"],"env":{"A":"1","B":null},"tag":"t","tty":true,"rows":24,"stdin":true}',
    81: '{"id":9,"tag":"t","pid":1,"command":"c","args":["a"],"tty":false,"state":"exited","started_ns":1,'
        '"exit_code":137,"signal":9,"oom_killed":true,"ring_start":3,"out_end":4,"stdin_open":true,"attached":2}',
    82: '{"tag":"t"}',
    83: '{"procs":[{"id":1,"command":"x","state":"running"}]}',
    84: '{"id":5,"offset":-1,"follow":false,"input":true}',
    85: '\x01\x00\x00\x00\x00\x00\x00\x00\x05abc',
    86: '\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x09',
    87: '{"reason":"exit","offset":100,"exit_code":1,"ended_ns":3}',
    88: '{"tag":"t","op":"stdin","data":"aGkK"}',
    89: '{"id":1,"timeout_ms":5000}',
    90: '{"listen":"tcp:127.0.0.1:0","backlog":8}',
    91: '{"event":"accepted","id":3,"peer":"127.0.0.1:5555"}',
    92: '{"id":3}',
    93: '{"host":"::1","port":80,"unix":"/run/s"}',
    127: stat,
    126: '{"max_payload":4294967295,"ring_total_max":9223372036854775807}',
}
for t, text in ext.items():
    raw = text.encode().decode("unicode_escape").encode("latin-1") if t in (68, 85, 86) else text.encode()
    put("ext", f"type{t}", bytes([t - 64]) + raw)
# Hostile ones the agent must refuse: Hellos it closes on, a forged cursor.
for i, (t, text) in enumerate([(64, '{"version":-1}'), (64, '{"version":2147483648}'),
                               (64, '{"version":1,"features":[' + '"x",' * 500 + '"y"]}'),
                               (72, '{"path":"/","cursor":"1.ffffffffffffffff.1.0.7fffffffffffffff","limit":-1}'),
                               # Stream checksums (PROTOCOL.md 2.3): the other algorithm, an
                               # unknown and an over-long name, both checksum fields in one Done.
                               (74, '{"path":"/f","window":65536,"checksum":"crc32c"}'),
                               (75, '{"path":"/f","checksum":"md5","upload_id":"0123456789abcdef"}'),
                               (77, '{"path":"/d","window":7,"checksum":"' + "c" * 300 + '"}'),
                               (78, '{"path":"/d","checksum":null}'),
                               (69, '{"size":9,"crc32c":"e3069283","sha256":"","entries":1}')]):
    put("ext", f"hostile{i}", bytes([t - 64]) + text.encode())

# fuzz-tar: a piece-size byte, then a small archive in each format Python
# writes (pax, GNU, ustar): files, a directory, links, long names.
for fmt_name, fmt in (("pax", tarfile.PAX_FORMAT), ("gnu", tarfile.GNU_FORMAT), ("ustar", tarfile.USTAR_FORMAT)):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name, type_=tarfile.REGTYPE, data=b"", link="", mtime=1700000000):
            ti = tarfile.TarInfo(name)
            ti.type, ti.size, ti.linkname, ti.mtime, ti.mode = type_, len(data), link, mtime, 0o644
            ti.uname, ti.gname = "user", "group"
            t.addfile(ti, io.BytesIO(data) if data else None)
        add("d", tarfile.DIRTYPE)
        add("d/file", data=b"hello\n" * 20)
        add("d/empty")
        add("d/sym", tarfile.SYMTYPE, link="file")
        add("d/hard", tarfile.LNKTYPE, link="d/file")
        if fmt != tarfile.USTAR_FORMAT:
            add("d/" + "n" * 150, data=b"long")
            add("d/longsym", tarfile.SYMTYPE, link="t" * 150)
        else:
            add("p" * 60 + "/" + "q" * 60, data=b"prefix")
        if fmt == tarfile.PAX_FORMAT:
            add("d/nsec", data=b"x", mtime=1700000000.123456789)
    for piece in (0, 7, 200):
        put("tar", f"{fmt_name}-{piece}", bytes([piece]) + buf.getvalue())

# fuzz-dircursor: cursors as the agent writes them, and near misses.
for i, c in enumerate(["1.801.2a.0.10", "1.ffffffffffffffff.ffffffffffffffff.0.7fffffffffffffff",
                       "1.0.0.0.8000000000000000", "1.1.1.1"]):
    put("dircursor", f"c{i}", c.encode())
