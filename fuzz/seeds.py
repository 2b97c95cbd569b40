#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ (committed; rerun after
changing it). A few valid inputs per target, and for the layer unpacker the classic escapes too,
so the fuzzer starts next to them. Deterministic: the same files on every run."""

import base64
import gzip
import io
import json
import os
import shutil
import struct
import tarfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DICTIONARY = open(os.path.join(HERE, "..", "src", "streaming", "spdy", "dictionary.bin"), "rb").read()
# `berthd --print-default-config`
DEFAULT_CONFIG = """root_dir: /var/lib/berth
state_dir: /run/berth
grpc:
  socket: /run/berth/berth.sock
  max_message_bytes: 16777216
log:
  level: info
  format: human
cgroup:
  driver: cgroupfs
runtime:
  handlers:
  - name: runc
    path: /usr/sbin/runc
image:
  platform: ""
  max_concurrent_downloads: 3
  no_progress_timeout: 1m
  max_attempts: 5
  max_layer_bytes: 34359738368
  discard_compressed_layers: false
network:
  conf_dir: /etc/cni/net.d
  bin_dirs:
  - /opt/cni/bin
  - /usr/lib/cni
streaming:
  address: 127.0.0.1:0
  tls: null
registries: {}
"""
SHA = "sha256:" + "ab" * 32
SHA2 = "sha256:" + "cd" * 32


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def references():
    for i, ref in enumerate([
        "busybox",
        "docker.io/library/nginx:1.25",
        "index.docker.io/user/app",
        "localhost:5000/team/app:v1.2.3",
        "quay.io/org/image@" + SHA,
        "registry.example.com:443/a/b/c:tag@" + SHA,
        "a-b__c.d/e:_x",
    ]):
        write("image_reference", f"ref{i}", ref)


def manifests():
    oci = "application/vnd.oci.image.manifest.v1+json"
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": SHA2, "size": 100}
    write("image_manifest", "oci_manifest", json.dumps({
        "schemaVersion": 2, "mediaType": oci,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": SHA, "size": 10},
        "layers": [layer, dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+zstd")],
    }))
    write("image_manifest", "docker_manifest", json.dumps({
        "schemaVersion": 2, "mediaType": docker,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": SHA, "size": 10},
        "layers": [dict(layer, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")],
    }))
    write("image_manifest", "oci_index", json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": oci, "digest": SHA, "size": 5, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": docker, "digest": SHA2, "size": 5,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
            {"mediaType": oci, "digest": SHA2, "size": 5,
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        ],
    }))
    write("image_manifest", "image_config", json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "1000:1000", "Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"],
                   "WorkingDir": "/", "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b"}, "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": [SHA, SHA2]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD x /", "empty_layer": False}],
    }))


def tar_bytes(members, gz=False):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = out.getvalue().rstrip(b"\0")
    raw += b"\0" * (-len(raw) % 512) + b"\0" * 1024  # the end-of-archive blocks, no padding
    return gzip.compress(raw, mtime=0) if gz else raw


def member(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in extra.items():
        setattr(info, k, v)
    return info, (data if kind == tarfile.REGTYPE else None)


def layers():
    normal = [
        member("etc/", tarfile.DIRTYPE, mode=0o755),
        member("etc/hostname", data=b"berth\n"),
        member("bin/", tarfile.DIRTYPE, mode=0o755),
        member("bin/busybox", data=b"\x7fELF" + b"\0" * 60, mode=0o755),
        member("bin/sh", tarfile.SYMTYPE, link="busybox"),
        member("bin/ls", tarfile.LNKTYPE, link="bin/busybox"),
        member("usr/bin/env", tarfile.SYMTYPE, link="/bin/busybox"),
        member("tmp/", tarfile.DIRTYPE, mode=0o1777),
        member("run/fifo", tarfile.FIFOTYPE),
        member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
        member("a/" + "long-name-" * 12 + "end", data=b"pax path"),
    ]
    write("layer_unpack", "rootfs.tar", tar_bytes(normal))
    write("layer_unpack", "rootfs.tar.gz", tar_bytes(normal, gz=True))
    write("layer_unpack", "whiteouts.tar", tar_bytes([
        member("etc/", tarfile.DIRTYPE, mode=0o755),
        member("etc/.wh.hostname"),
        member("var/", tarfile.DIRTYPE, mode=0o755),
        member("var/.wh..wh..opq"),
        member("var/new", data=b"x"),
    ]))
    # Each of these must be refused or stay inside the layer dir (the target checks).
    write("layer_unpack", "escape_dotdot.tar", tar_bytes([member("../canary/pwned", data=b"x")]))
    write("layer_unpack", "escape_symlink.tar", tar_bytes([
        member("esc", tarfile.SYMTYPE, link="../canary"),
        member("esc/pwned", data=b"x"),
    ]))
    write("layer_unpack", "escape_symlink_abs.tar", tar_bytes([
        member("root", tarfile.SYMTYPE, link="/"),
        member("root/tmp/berth-fuzz-canary/pwned", data=b"x"),
    ]))
    write("layer_unpack", "escape_hardlink_abs.tar", tar_bytes([
        member("h", tarfile.LNKTYPE, link="/tmp/berth-fuzz-canary/file"),
    ]))
    write("layer_unpack", "escape_hardlink.tar", tar_bytes([
        member("h", tarfile.LNKTYPE, link="../canary/file"),
    ]))
    write("layer_unpack", "escape_symlink_then_hardlink.tar", tar_bytes([
        member("esc", tarfile.SYMTYPE, link="../canary"),
        member("h", tarfile.LNKTYPE, link="esc/file"),
    ]))
    write("layer_unpack", "escape_dir_symlink_replace.tar", tar_bytes([
        member("d/", tarfile.DIRTYPE, mode=0o755),
        member("d", tarfile.SYMTYPE, link="../canary"),
        member("d/pwned", data=b"x"),
    ]))


def spdy_block(deflate, headers):
    raw = struct.pack(">I", len(headers))
    for name, value in headers:
        raw += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    return deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)


def control(kind, flags, body):
    return struct.pack(">HHI", 0x8003, kind, (flags << 24) | len(body)) + body


def data_frame(stream, flags, payload):
    return struct.pack(">II", stream, (flags << 24) | len(payload)) + payload


def spdy_session(port_forward=False):
    deflate = zlib.compressobj(zdict=DICTIONARY)
    frames = b""
    if port_forward:
        streams = [(1, [("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
                   (3, [("streamtype", "data"), ("port", "80"), ("requestid", "0")])]
    else:
        streams = [(1, [("streamtype", "error")]), (3, [("streamtype", "stdin")]),
                   (5, [("streamtype", "stdout")]), (7, [("streamtype", "resize")])]
    frames += control(4, 0, struct.pack(">III", 1, 7, 65536))
    for sid, headers in streams:
        frames += control(1, 0, struct.pack(">IIBB", sid, 0, 0, 0) + spdy_block(deflate, headers))
    frames += data_frame(3, 0, b"hello")
    frames += data_frame(7 if not port_forward else 3, 0, b'{"Width":80,"Height":24}')
    frames += control(6, 0, struct.pack(">I", 1))
    frames += control(9, 0, struct.pack(">II", 1, 4096))
    frames += control(8, 0, struct.pack(">I", 1) + spdy_block(deflate, [("x", "y\0z")]))
    frames += data_frame(3, 1, b"")
    frames += control(3, 0, struct.pack(">II", 5, 5))
    frames += control(7, 0, struct.pack(">II", 7, 0))
    return frames


def ws_frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def spdy_and_websocket():
    write("spdy_frame", "exec_session", spdy_session())
    write("spdy_frame", "portforward_session", spdy_session(port_forward=True))
    write("spdy_frame", "ping", control(6, 0, struct.pack(">I", 7)))
    pf = spdy_session(port_forward=True)
    write("websocket", "portforward_one_message", ws_frame(2, pf) + ws_frame(8, struct.pack(">H", 1000)))
    half = len(pf) // 2
    write("websocket", "portforward_fragmented", ws_frame(2, pf[:half], fin=False) + ws_frame(9, b"ping")
          + ws_frame(0, pf[half:]) + ws_frame(8, b""))
    write("websocket", "exec_frames", b"".join(ws_frame(2, bytes([c]) + p) for c, p in
                                               [(0, b"echo hi\n"), (4, b'{"Width":80,"Height":24}'), (255, b"\0")]))


def exec_messages(flags, messages):
    out = bytes([flags])
    for kind, body in messages:
        out += bytes([len(body), kind]) + body
    return out


def websocket_exec():
    size = b'{"Width":80,"Height":24}'
    write("websocket_exec", "binary_tty", exec_messages(2, [
        (0, bytes([4]) + size), (0, b"\0ls\n"), (0, bytes([4]) + b'{"Width":100,'),
        (0, bytes([4]) + b'"Height":30}{"Width":1,"Height":1}'), (0, bytes([255, 0])),
    ]))
    write("websocket_exec", "base64_text", exec_messages(1, [
        (1, b"4" + base64.b64encode(size)), (1, b"0" + base64.b64encode(b"echo hi\n")),
        (1, b"4" + base64.b64encode(b'{"Width":120,"Height":40}')),
    ]))


def cni_results():
    write("cni_result", "v1", json.dumps({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "eth0", "mac": "bb", "sandbox": "/var/run/netns/x"}],
        "ips": [{"interface": 1, "address": "fd00::5/64"}, {"interface": 1, "address": "10.88.0.5/16",
                                                             "gateway": "10.88.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.96.0.10"]},
    }))
    write("cni_result", "v040", json.dumps({
        "cniVersion": "0.4.0", "ips": [{"version": "4", "address": "192.168.1.2/24"}],
    }))
    write("cni_result", "v020", json.dumps({
        "cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24"}, "ip6": {"ip": "2001:db8::2/64"},
    }))


def configs():
    write("config_yaml", "defaults", DEFAULT_CONFIG)
    write("config_yaml", "partial", "log:\n  level: debug\n  format: json\ncgroup:\n  driver: systemd\n"
          "image:\n  no_progress_timeout: 30s\n  max_layer_bytes: 1048576\n")
    write("config_yaml", "registries", "registries:\n  docker.io:\n    mirrors: [\"mirror.example.com\"]\n"
          "  localhost:5000:\n    insecure: true\n    username: u\n    password: p\n"
          "runtime:\n  handlers:\n  - name: crun\n    path: /usr/bin/crun\n"
          "streaming:\n  address: 0.0.0.0:10010\n  tls:\n    cert_file: /etc/berth/tls.crt\n"
          "    key_file: /etc/berth/tls.key\n")


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    references()
    manifests()
    layers()
    spdy_and_websocket()
    websocket_exec()
    cni_results()
    configs()
