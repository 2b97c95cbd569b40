#!/usr/bin/env python3
"""Builds one test image (or image index) from a JSON spec into an OCI image layout, deterministically.

    mkimage.py SPEC.json OUTDIR [--tag TAG]... [--compression gzip|zstd] [--format oci|docker]

The same spec and the same source directories always give the same digests: entries are sorted,
timestamps are fixed (unless an entry sets its own), owners come from the spec, gzip headers carry no
name or time, zstd runs single-threaded. OUTDIR is replaced. Its index.json names each tag with an
`org.opencontainers.image.ref.name` annotation; push.py pushes it. The spec format is documented in
docs/test-fixtures.md; `$VARS` in `dir` and `source` values come from the environment.

Stdlib only, plus the `zstd` command for zstd layers.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

# 2024-01-01T00:00:00Z: the mtime of every entry and the `created` time unless the spec says otherwise.
DEFAULT_EPOCH = 1704067200
COPY_CHUNK = 1 << 20

MT = {
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "index": "application/vnd.oci.image.index.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
        "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    },
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "index": "application/vnd.docker.distribution.manifest.list.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
}


class SpecError(Exception):
    pass


def parse_time(value, default):
    """An mtime given as seconds since the epoch or as an RFC 3339 UTC string."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    when = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def rfc3339(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_mode(value, default):
    if value is None:
        return default
    return int(value, 8) if isinstance(value, str) else value


def expand(path):
    expanded = os.path.expandvars(path)
    if "$" in expanded:
        raise SpecError(f"{path!r}: variable not set in the environment")
    return expanded


# ---------------------------------------------------------------------------------------------------
# Writing blobs


class Blobs:
    """The blobs/sha256 directory of an OCI layout."""

    def __init__(self, layout):
        self.dir = os.path.join(layout, "blobs", "sha256")
        os.makedirs(self.dir, exist_ok=True)

    def temp(self):
        fd, path = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        return os.fdopen(fd, "wb"), path

    def commit(self, temp_path):
        """Hashes a finished temp file and moves it to its digest's name; returns (digest, size)."""
        digest = hashlib.sha256()
        with open(temp_path, "rb") as f:
            while chunk := f.read(COPY_CHUNK):
                digest.update(chunk)
        hexdigest = digest.hexdigest()
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, os.path.join(self.dir, hexdigest))
        return "sha256:" + hexdigest, os.path.getsize(os.path.join(self.dir, hexdigest))

    def put_json(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode()
        hexdigest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.dir, hexdigest), "wb") as f:
            f.write(data)
        return "sha256:" + hexdigest, len(data)


class HashingWriter:
    """A write-only file that hashes and counts what passes through it on its way to `sink`."""

    def __init__(self, sink):
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def tell(self):
        return self.size

    def flush(self):
        pass


class Compressor:
    """Compresses a stream into an open file: gzip in-process, zstd through the `zstd` command."""

    def __init__(self, kind, out):
        self.kind = kind
        self.proc = None
        if kind == "gzip":
            # No file name, mtime 0: the compressed bytes depend only on the tar bytes.
            self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6)
        elif kind == "zstd":
            self.proc = subprocess.Popen(["zstd", "-q", "-c", "-3", "--single-thread"], stdin=subprocess.PIPE, stdout=out)
            self.stream = self.proc.stdin
        else:
            raise SpecError(f"unknown compression {kind!r}")

    def write(self, data):
        return self.stream.write(data)

    def close(self):
        self.stream.close()
        if self.proc and self.proc.wait() != 0:
            raise RuntimeError(f"zstd exited with {self.proc.returncode}")


class Zeros:
    """A file of `size` zero bytes, produced on demand (the decompression bomb never sits in memory)."""

    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


# ---------------------------------------------------------------------------------------------------
# Tar entries


def explicit_entry(e, layer_defaults):
    """A TarInfo (and its data stream) from one `entries` item of the spec, written exactly as given."""
    kind = e.get("type", "file")
    path = e["path"]
    info = tarfile.TarInfo(path)
    info.uid = e.get("uid", layer_defaults["uid"])
    info.gid = e.get("gid", layer_defaults["gid"])
    info.uname = info.gname = ""
    info.mtime = parse_time(e.get("mtime"), layer_defaults["mtime"])
    data = None
    if kind == "file":
        info.type = tarfile.REGTYPE
        info.mode = parse_mode(e.get("mode"), 0o644)
        if "source" in e:
            with open(expand(e["source"]), "rb") as f:
                content = f.read()
        elif "zeros" in e:
            content = None
            info.size = int(e["zeros"])
            data = Zeros(info.size)
        else:
            content = e.get("content", "").encode()
        if content is not None:
            info.size = len(content)
            data = _BytesReader(content)
    elif kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = parse_mode(e.get("mode"), 0o755)
    elif kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = e["target"]
        info.mode = parse_mode(e.get("mode"), 0o777)
    elif kind == "hardlink":
        info.type = tarfile.LNKTYPE
        info.linkname = e["target"]
        info.mode = parse_mode(e.get("mode"), 0o644)
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
        info.mode = parse_mode(e.get("mode"), 0o644)
    elif kind in ("chardev", "blockdev"):
        info.type = tarfile.CHRTYPE if kind == "chardev" else tarfile.BLKTYPE
        info.devmajor, info.devminor = e["major"], e["minor"]
        info.mode = parse_mode(e.get("mode"), 0o666)
    elif kind == "whiteout":
        # Deletes `path` from the layers below: an empty file named .wh.<basename>.
        head, _, base = path.rstrip("/").rpartition("/")
        info.name = (head + "/" if head else "") + ".wh." + base
        info.type, info.mode, info.size, data = tarfile.REGTYPE, 0o644, 0, _BytesReader(b"")
    elif kind == "opaque":
        # Hides everything the layers below have in directory `path`.
        info.name = path.rstrip("/") + "/.wh..wh..opq"
        info.type, info.mode, info.size, data = tarfile.REGTYPE, 0o644, 0, _BytesReader(b"")
    else:
        raise SpecError(f"entry {path!r}: unknown type {kind!r}")
    if e.get("xattrs"):
        info.pax_headers = {"SCHILY.xattr." + k: v for k, v in sorted(e["xattrs"].items())}
    return info, data


class _BytesReader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n=-1):
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


def _classify(rel, includes):
    """'all' if rel is inside an included subtree, 'ancestor' if it leads to one, None otherwise."""
    if includes is None:
        return "all"
    for inc in includes:
        if rel == inc or rel.startswith(inc + "/"):
            return "all"
        if inc.startswith(rel + "/"):
            return "ancestor"
    return None


def dir_entries(layer, layer_defaults):
    """TarInfos for a directory tree, depth first in byte order of names, hardlinks kept as links."""
    root = expand(layer["dir"])
    if not os.path.isdir(root):
        raise SpecError(f"layer dir {root!r} does not exist")
    includes = [p.strip("/") for p in layer["include"]] if "include" in layer else None
    excludes = {p.strip("/") for p in layer.get("exclude", [])}
    owners = layer.get("owners", {})
    force_uid, force_gid = layer.get("uid"), layer.get("gid")
    keep_mtime = layer.get("keep_mtime", False)
    seen_inodes = {}

    def walk(rel_dir):
        names = sorted(os.listdir(os.path.join(root, rel_dir)), key=os.fsencode)
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in excludes:
                continue
            scope = _classify(rel, includes)
            if scope is None:
                continue
            full = os.path.join(root, rel)
            st = os.lstat(full)
            if scope == "ancestor" and not stat.S_ISDIR(st.st_mode):
                continue
            yield entry_from_stat(rel, full, st)
            if stat.S_ISDIR(st.st_mode):
                yield from walk(rel)

    def entry_from_stat(rel, full, st):
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        uid, gid = st.st_uid, st.st_gid
        if force_uid is not None:
            uid = force_uid
        if force_gid is not None:
            gid = force_gid
        if rel in owners:
            uid, gid = (int(x) for x in owners[rel].split(":"))
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime) if keep_mtime else layer_defaults["mtime"]
        data = None
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif fmt == stat.S_IFLNK:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
        elif fmt == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                info.type, info.linkname = tarfile.LNKTYPE, seen_inodes[key]
            else:
                seen_inodes[key] = rel
                info.type, info.size = tarfile.REGTYPE, st.st_size
                data = full
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        else:
            raise SpecError(f"{full}: cannot put this file type in a layer")
        return info, data

    for rel in includes or []:
        if not os.path.lexists(os.path.join(root, rel)):
            raise SpecError(f"layer dir {root!r}: include {rel!r} does not exist")
    yield from walk("")


def layer_entries(layer, layer_defaults):
    if "dir" in layer:
        yield from dir_entries(layer, layer_defaults)
    for e in layer.get("entries", []):
        yield explicit_entry(e, layer_defaults)


def build_layer(blobs, layer, compression, spec_mtime):
    """Writes one compressed layer blob; returns (digest, size, diff_id)."""
    defaults = {
        "uid": layer.get("uid", 0),
        "gid": layer.get("gid", 0),
        "mtime": parse_time(layer.get("mtime"), spec_mtime),
    }
    out, temp_path = blobs.temp()
    try:
        with out:
            compressor = Compressor(compression, out)
            uncompressed = HashingWriter(compressor)
            with tarfile.open(
                fileobj=uncompressed, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_CHUNK
            ) as tar:
                for info, data in layer_entries(layer, defaults):
                    if isinstance(data, str):
                        with open(data, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info, data)
            compressor.close()
        digest, size = blobs.commit(temp_path)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise
    return digest, size, "sha256:" + uncompressed.sha.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Config, manifest, index


def build_manifest(blobs, spec, fmt, compression):
    """Builds the layers, config and manifest of one platform image; returns the manifest descriptor."""
    types = MT[fmt]
    if compression not in types:
        raise SpecError(f"{fmt} images cannot have {compression} layers")
    spec_mtime = parse_time(spec.get("mtime"), DEFAULT_EPOCH)
    created = rfc3339(parse_time(spec.get("created"), spec_mtime))
    layer_descs, diff_ids, history = [], [], []
    for i, layer in enumerate(spec["layers"]):
        digest, size, diff_id = build_layer(blobs, layer, compression, spec_mtime)
        # Deliberate faults for the hostile images: a wrong diff_id in the config, a wrong size in the
        # manifest's layer descriptor. The blob itself is always correct.
        diff_ids.append(layer.get("diff_id", diff_id))
        size_in_manifest = size + layer.get("descriptor_size_delta", 0)
        layer_descs.append({"mediaType": types[compression], "digest": digest, "size": size_in_manifest})
        entry = {"created": created, "created_by": layer.get("created_by", f"berth mkimage: layer {i}")}
        if layer.get("comment"):
            entry["comment"] = layer["comment"]
        history.append(entry)
        print(f"  layer {i}: {digest} {size} bytes (diff_id {diff_id})", file=sys.stderr)
    for extra in spec.get("empty_history", []):
        history.append({"created": created, "created_by": extra, "empty_layer": True})
    platform = spec.get("platform", {"os": "linux", "architecture": "amd64"})
    config = {"created": created, "architecture": platform["architecture"], "os": platform["os"]}
    if "variant" in platform:
        config["variant"] = platform["variant"]
    config["config"] = spec.get("config", {})
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = history
    config_digest, config_size = blobs.put_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": types["manifest"],
        "config": {"mediaType": types["config"], "digest": config_digest, "size": config_size},
        "layers": layer_descs,
    }
    if spec.get("annotations") and fmt == "oci":
        manifest["annotations"] = spec["annotations"]
    digest, size = blobs.put_json(manifest)
    desc = {"mediaType": types["manifest"], "digest": digest, "size": size}
    if "platform" in spec:
        desc["platform"] = dict(spec["platform"])
    return desc


def build(spec, layout, tags, fmt, compression):
    if os.path.exists(layout):
        shutil.rmtree(layout)
    os.makedirs(layout)
    blobs = Blobs(layout)
    if "index" in spec:
        children = []
        for child in spec["index"]:
            child_fmt = child.get("format", fmt)
            child_compression = child.get("compression", compression)
            desc = build_manifest(blobs, child, child_fmt, child_compression)
            if "platform" not in desc:
                raise SpecError("every manifest in an index needs a platform")
            children.append(desc)
        index = {"schemaVersion": 2, "mediaType": MT[fmt]["index"], "manifests": children}
        digest, size = blobs.put_json(index)
        top = {"mediaType": MT[fmt]["index"], "digest": digest, "size": size}
    else:
        top = build_manifest(blobs, spec, fmt, compression)
        top.pop("platform", None)
    refs = [dict(top, annotations={"org.opencontainers.image.ref.name": tag}) for tag in tags]
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": MT["oci"]["index"], "manifests": refs}, f, indent=2)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return top


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="image spec (JSON)")
    parser.add_argument("out", help="OCI layout directory to (re)create")
    parser.add_argument("--tag", action="append", help="tag(s) to name in index.json (default: the spec's tags)")
    parser.add_argument("--compression", choices=["gzip", "zstd"], help="override the spec's layer compression")
    parser.add_argument("--format", choices=["oci", "docker"], help="override the spec's media types")
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    tags = args.tag or spec.get("tags") or ["latest"]
    fmt = args.format or spec.get("format", "oci")
    compression = args.compression or spec.get("compression", "gzip")
    try:
        top = build(spec, args.out, tags, fmt, compression)
    except SpecError as err:
        sys.exit(f"mkimage: {args.spec}: {err}")
    print(json.dumps({"tags": tags, **top}))


if __name__ == "__main__":
    main()
