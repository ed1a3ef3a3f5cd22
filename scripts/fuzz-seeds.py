#!/usr/bin/env python3
"""Write libFuzzer seed corpora: the golden wire vectors for the protocol
decoders, and guest memory images with well-formed rings for fuzz-vhost."""
import base64
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
for d in ("frame", "msg", "addr", "wfparse", "vhost"):
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
        put("frame", v["name"], bytes([4]) + bytes.fromhex(v["frame_hex"]) * 2)
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
