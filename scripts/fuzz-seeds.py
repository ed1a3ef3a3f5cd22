#!/usr/bin/env python3
"""Write libFuzzer seed corpora from the golden wire vectors."""
import base64
import json
import os
import sys

vectors, out = sys.argv[1], sys.argv[2]
# fuzz-msg selector byte per message struct (see fuzz/fuzz-msg.c)
selector = {
    "ExecRequest": 0, "ExecTTYRequest": 1, "ExecResponse": 2, "PortForwardRequest": 3,
    "WriteFileRequest": 4, "ReadFileRequest": 5, "ListFilesRequest": 5, "FileInfo": 6,
    "FileResponse": 7, "WindowSize": 8, "frame": 8,
}
for d in ("frame", "msg", "addr", "wfparse"):
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
