#!/usr/bin/env python3
"""Pushes the tagged images of an OCI image layout to a registry over the distribution API.

    push.py [--registry http://127.0.0.1:5000] [--user U --password P] [--cacert CA.pem] LAYOUT REPO

For every descriptor in LAYOUT/index.json that names a tag (`org.opencontainers.image.ref.name`):
an image index or manifest list has each of its manifests pushed by digest first; a manifest has its
config and layers pushed first. A blob the repository already has (HEAD 200) is not sent again; a new
blob goes up as one monolithic upload (POST, then PUT ?digest=). Manifests are PUT with their own
media type as Content-Type, and the digest the registry answers must be the one we computed.

Stdlib only.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import ssl
import sys
import urllib.parse

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


class PushError(Exception):
    pass


class Registry:
    """A tiny distribution API client: one connection per request, Basic auth if given."""

    def __init__(self, url, user=None, password=None, cacert=None):
        parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        self.scheme, self.netloc = parsed.scheme, parsed.netloc
        self.context = ssl.create_default_context(cafile=cacert) if self.scheme == "https" else None
        self.auth = None
        if user is not None:
            self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method, target, body=None, headers=None):
        """Sends one request; returns (status, headers, body bytes). target may be a full URL."""
        parsed = urllib.parse.urlsplit(target)
        netloc = parsed.netloc or self.netloc
        scheme = parsed.scheme or self.scheme
        path = parsed.path + ("?" + parsed.query if parsed.query else "")
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, context=self.context, timeout=300)
        else:
            conn = http.client.HTTPConnection(netloc, timeout=300)
        headers = dict(headers or {})
        if self.auth:
            headers["Authorization"] = self.auth
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def has_blob(self, repo, digest):
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return status == 200

    def put_blob(self, repo, digest, path):
        status, headers, body = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise PushError(f"start upload of {digest} to {repo}: HTTP {status}: {body[:300]!r}")
        location = headers["Location"]
        sep = "&" if "?" in location else "?"
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            status, headers, body = self.request(
                "PUT",
                f"{location}{sep}digest={urllib.parse.quote(digest)}",
                body=f,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
        if status != 201:
            raise PushError(f"upload {digest} to {repo}: HTTP {status}: {body[:300]!r}")
        if headers.get("Docker-Content-Digest", digest) != digest:
            raise PushError(f"upload {digest} to {repo}: registry stored {headers['Docker-Content-Digest']}")

    def put_manifest(self, repo, reference, media_type, data):
        status, headers, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", body=data, headers={"Content-Type": media_type}
        )
        if status != 201:
            raise PushError(f"put manifest {repo}:{reference}: HTTP {status}: {body[:500]!r}")
        want = "sha256:" + hashlib.sha256(data).hexdigest()
        got = headers.get("Docker-Content-Digest")
        if got != want:
            raise PushError(f"put manifest {repo}:{reference}: registry says {got}, we computed {want}")
        return got


class Layout:
    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "index.json")) as f:
            self.index = json.load(f)

    def path(self, digest):
        algo, hexdigest = digest.split(":", 1)
        return os.path.join(self.root, "blobs", algo, hexdigest)

    def read(self, digest):
        with open(self.path(digest), "rb") as f:
            return f.read()


class Pusher:
    def __init__(self, registry, layout, repo):
        self.registry, self.layout, self.repo = registry, layout, repo
        self.sent = self.skipped = 0

    def blob(self, digest):
        if self.registry.has_blob(self.repo, digest):
            self.skipped += 1
            return
        self.registry.put_blob(self.repo, digest, self.layout.path(digest))
        self.sent += 1

    def manifest(self, desc, reference):
        """Pushes everything desc refers to, then desc itself under reference; returns its digest."""
        data = self.layout.read(desc["digest"])
        doc = json.loads(data)
        media_type = desc["mediaType"]
        if media_type in INDEX_TYPES:
            for child in doc["manifests"]:
                self.manifest(child, child["digest"])
        else:
            self.blob(doc["config"]["digest"])
            for layer in doc["layers"]:
                self.blob(layer["digest"])
        return self.registry.put_manifest(self.repo, reference, media_type, data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default="http://127.0.0.1:5000", help="registry URL (default %(default)s)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--cacert", help="PEM CA bundle for an https registry")
    parser.add_argument("layout", help="OCI image layout directory")
    parser.add_argument("repo", help="repository, e.g. library/busybox")
    args = parser.parse_args()
    registry = Registry(args.registry, args.user, args.password, args.cacert)
    layout = Layout(args.layout)
    pusher = Pusher(registry, layout, args.repo)
    tagged = [d for d in layout.index["manifests"] if REF_NAME in d.get("annotations", {})]
    if not tagged:
        sys.exit(f"push: {args.layout}: index.json names no tag")
    try:
        for desc in tagged:
            tag = desc["annotations"][REF_NAME]
            digest = pusher.manifest(desc, tag)
            print(f"pushed {args.repo}:{tag} {digest}")
    except (PushError, OSError) as err:
        sys.exit(f"push {args.layout} to {args.registry}/{args.repo}: {err}")
    print(f"  blobs: {pusher.sent} uploaded, {pusher.skipped} already present", file=sys.stderr)


if __name__ == "__main__":
    main()
