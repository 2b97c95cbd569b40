#!/usr/bin/env python3
"""A reverse proxy in front of a registry that injects faults on request, for berth's pull tests.

    faultproxy.py [--listen 127.0.0.1:5002] [--upstream http://127.0.0.1:5000]

Everything is passed through (Range headers included, so clients can resume) until a test selects a
fault over the control API:

    POST /__fault/set    {"mode": "truncate", "count": 1}   select a fault; answers the new state
    POST /__fault/reset                                     mode none, empty log, forget tokens
    GET  /__fault/state                                     the current state
    GET  /__fault/log                                       every request seen, oldest first

Modes (see docs/test-fixtures.md for the details and curl examples):

    none          pass everything through
    truncate      full Content-Length, half the body, then the connection closes
    wrongdigest   same length, one byte changed (a gzip blob keeps inflating: its header mtime changes)
    error500      HTTP 500 without asking the registry
    stall         headers and a little body, then silence for stall_seconds (default 120), then close
    trickle       the whole body at rate bytes per second (default 1), in pieces 10 times a second
    redirect      307 to /__blob/<digest>?name=<repo> on this proxy, which serves the blob
    unauthorized  401 with a Basic challenge on every request, every path
    bearer        token auth: /v2/ requests need `Authorization: Bearer <token>` from GET /token

`count` (default: unlimited) is how many matching requests get the fault; after that they pass.
`digest` (default: any) limits the fault to requests whose path contains that text (a blob digest).
truncate, wrongdigest, error500, stall and redirect hit blob GETs only, unless "target" says
"manifest" (manifest GETs) or "any" (every GET under /v2/<name>/). bearer combines with one of them:
"bearer+truncate"; count then applies to the second part.

Stdlib only.
"""

import argparse
import base64
import http.client
import http.server
import json
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse

BLOB_MODES = {"none", "truncate", "wrongdigest", "error500", "stall", "trickle", "redirect"}
AUTH_MODES = {"unauthorized", "bearer"}
TARGETS = {"blob", "manifest", "any"}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
}
REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs|manifests|tags)/(?P<ref>[^/?]*)")
BLOB_GET = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+:[a-f0-9]+)$")
MANIFEST_GET = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
CHUNK = 64 * 1024
LOG_LIMIT = 10000
TOKEN_LIFETIME = 300
SERVICE = "berth-test"


class State:
    """What the proxy does now; every handler thread reads it under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = {}  # token -> (expiry, {(repository, action)})
        self.log = []
        self.reset()

    def reset(self):
        with self.lock:
            self.auth_mode = None
            self.blob_mode = "none"
            self.count = None
            self.target = "blob"
            self.stall_seconds = 120.0
            self.rate = 1.0
            self.digest = None
            self.redirect_host = None
            self.reject_auth = False
            self.tokens.clear()
            self.log.clear()

    def configure(self, cfg):
        parts = str(cfg.get("mode", "none")).split("+")
        auth = [p for p in parts if p in AUTH_MODES]
        blob = [p for p in parts if p in BLOB_MODES]
        unknown = [p for p in parts if p not in AUTH_MODES | BLOB_MODES]
        if unknown or len(auth) > 1 or len(blob) > 1 or (auth == ["unauthorized"] and blob):
            raise ValueError(f"bad mode {cfg.get('mode')!r}: one of {sorted(BLOB_MODES | AUTH_MODES)}, "
                             "or bearer+<blob mode>")
        target = cfg.get("target", "blob")
        if target not in TARGETS:
            raise ValueError(f"bad target {target!r}: one of {sorted(TARGETS)}")
        count = cfg.get("count")
        if count is not None and (not isinstance(count, int) or count < -1):
            raise ValueError(f"bad count {count!r}: a number >= 0, or -1/null for unlimited")
        with self.lock:
            self.auth_mode = auth[0] if auth else None
            self.blob_mode = blob[0] if blob else "none"
            self.count = None if count in (None, -1) else count
            self.target = target
            self.stall_seconds = float(cfg.get("stall_seconds", 120))
            self.rate = float(cfg.get("rate", 1))
            self.digest = cfg.get("digest")
            self.redirect_host = cfg.get("redirect_host")
            self.reject_auth = bool(cfg.get("reject_auth", False))

    def snapshot(self):
        with self.lock:
            mode = "+".join(m for m in (self.auth_mode, self.blob_mode) if m and m != "none") or "none"
            return {
                "mode": mode, "count": self.count, "target": self.target,
                "stall_seconds": self.stall_seconds, "rate": self.rate, "digest": self.digest,
                "redirect_host": self.redirect_host,
                "reject_auth": self.reject_auth,
            }

    def take(self):
        """Consumes one use of the selected fault; False once count is spent."""
        with self.lock:
            if self.count is None:
                return True
            if self.count > 0:
                self.count -= 1
                return True
            return False

    def record(self, entry):
        with self.lock:
            self.log.append(entry)
            del self.log[:-LOG_LIMIT]

    def issue_token(self, grants):
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = (time.monotonic() + TOKEN_LIFETIME, grants)
        return token

    def token_allows(self, token, repository, action):
        with self.lock:
            expiry, grants = self.tokens.get(token, (0, set()))
        if expiry < time.monotonic():
            return False
        return repository is None or (repository, action) in grants


def parse_scopes(values):
    """{(repository, action)} from scope=repository:<name>:<action>[,<action>] query values."""
    grants = set()
    for scope in values:
        for item in scope.split(" "):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name:
                grants.update((name, a) for a in actions.split(","))
    return grants


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "berth-faultproxy"

    # ------------------------------------------------------------------------------- plumbing

    @property
    def state(self):
        return self.server.state

    def do_GET(self):
        self.handle_any()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def handle_any(self):
        self.sent_status = None
        target = urllib.parse.urlsplit(self.path)
        # Logged on arrival, so a stalled request shows up while it hangs; status and fault are
        # filled in as they happen.
        self.entry = {}
        if not target.path.startswith("/__fault/"):
            auth = self.headers.get("Authorization")
            self.entry = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "method": self.command,
                "path": self.path,
                "range": self.headers.get("Range"),
                "authorization": auth.split(" ", 1)[0] if auth else None,
                "status": None,
                "fault": None,
            }
            self.state.record(self.entry)
        try:
            if target.path.startswith("/__fault/"):
                return self.control(target.path)
            self.route(target)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except (OSError, http.client.HTTPException) as err:
            # The registry is down or broke off: say so, unless our headers are already out.
            if self.sent_status is None:
                self.registry_error(502, "UNAVAILABLE", f"berth faultproxy: upstream: {err}")
            self.close_connection = True

    def send_response(self, code, message=None):
        self.sent_status = code
        self.note("status", code)
        super().send_response(code, message)

    def note(self, key, value):
        """Fills in this request's log entry."""
        if self.entry:
            with self.state.lock:
                self.entry[key] = value

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def registry_error(self, status, code, message, headers=()):
        self.reply(status, {"errors": [{"code": code, "message": message, "detail": None}]}, headers=headers)

    def request_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def upstream(self, method, path, headers=None):
        """Sends the request on to the registry; returns the open response."""
        if headers is None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers.pop("Content-Length", None)
        body = self.request_body() if method not in ("GET", "HEAD") else None
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.server.upstream, timeout=120)
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse()

    def send_upstream_headers(self, resp, length=None):
        self.send_response(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def relay(self, resp):
        """Copies the upstream response to the client unchanged, streaming bodies with a length."""
        length = resp.getheader("Content-Length")
        if length is None:
            body = resp.read()
            self.send_upstream_headers(resp, len(body))
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self.send_upstream_headers(resp, int(length))
        if self.command == "HEAD":
            return
        while chunk := resp.read(CHUNK):
            self.wfile.write(chunk)

    def hang_up(self):
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------------------- control API

    def control(self, path):
        if path == "/__fault/set" and self.command == "POST":
            try:
                cfg = json.loads(self.request_body() or b"{}")
                self.state.configure(cfg)
            except (ValueError, AttributeError) as err:
                return self.reply(400, {"error": str(err)})
            return self.reply(200, self.state.snapshot())
        if path == "/__fault/reset" and self.command == "POST":
            self.request_body()
            self.state.reset()
            return self.reply(200, self.state.snapshot())
        if path == "/__fault/state" and self.command == "GET":
            return self.reply(200, self.state.snapshot())
        if path == "/__fault/log" and self.command == "GET":
            with self.state.lock:
                log = [dict(e) for e in self.state.log]
            return self.reply(200, log)
        self.reply(404, {"error": f"no control endpoint {self.command} {path}"})

    # ------------------------------------------------------------------------------- routing

    def route(self, target):
        state = self.state
        if target.path == "/token":
            return self.token(target)
        if target.path.startswith("/__blob/"):
            return self.serve_redirected_blob(target)
        with state.lock:
            auth_mode, blob_mode, scope = state.auth_mode, state.blob_mode, state.target
            only = state.digest
        if auth_mode == "unauthorized" and state.take():
            self.note("fault", "unauthorized")
            self.request_body()
            return self.registry_error(401, "UNAUTHORIZED", "authentication required",
                                       headers=[("WWW-Authenticate", f'Basic realm="{SERVICE}"')])
        if auth_mode == "bearer" and target.path.startswith("/v2/") and not self.bearer_ok(target.path):
            self.note("fault", "bearer")
            self.request_body()
            return self.bearer_challenge(target.path)
        if (blob_mode != "none" and self.command == "GET" and self.in_scope(target.path, scope)
                and (only is None or only in target.path) and state.take()):
            self.note("fault", blob_mode)
            return getattr(self, "fault_" + blob_mode)(target)
        self.relay(self.upstream(self.command, self.path))

    @staticmethod
    def in_scope(path, scope):
        if scope == "blob":
            return bool(BLOB_GET.match(path))
        if scope == "manifest":
            return bool(MANIFEST_GET.match(path))
        return bool(REPO_PATH.match(path))

    # ------------------------------------------------------------------------------- auth

    def bearer_ok(self, path):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        match = REPO_PATH.match(path)
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        return self.state.token_allows(auth[len("Bearer "):].strip(), match["name"] if match else None, action)

    def bearer_challenge(self, path):
        realm = f"http://{self.server.listen}/token"
        challenge = f'Bearer realm="{realm}",service="{SERVICE}"'
        match = REPO_PATH.match(path)
        if match:
            actions = "pull" if self.command in ("GET", "HEAD") else "pull,push"
            challenge += f',scope="repository:{match["name"]}:{actions}"'
        self.registry_error(401, "UNAUTHORIZED", "authentication required",
                            headers=[("WWW-Authenticate", challenge)])

    def token(self, target):
        query = urllib.parse.parse_qs(target.query)
        auth = self.headers.get("Authorization", "")
        user = password = None
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        if (user, password) != (self.server.token_user, self.server.token_password):
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad token credentials"}]},
                              headers=[("WWW-Authenticate", f'Basic realm="{SERVICE} token"')])
        if query.get("service") != [SERVICE]:
            return self.reply(400, {"errors": [{"code": "DENIED", "message": f"service must be {SERVICE}"}]})
        token = self.state.issue_token(parse_scopes(query.get("scope", [])))
        self.reply(200, {"token": token, "expires_in": TOKEN_LIFETIME})

    # ------------------------------------------------------------------------------- faults

    def fault_error500(self, target):
        self.registry_error(500, "UNKNOWN", "berth faultproxy: injected error500")

    def fault_truncate(self, target):
        resp = self.upstream("GET", self.path)
        length = resp.getheader("Content-Length")
        if resp.status not in (200, 206) or length is None:
            return self.relay(resp)
        self.send_upstream_headers(resp, int(length))
        self.wfile.write(resp.read(int(length) // 2))
        self.hang_up()

    def fault_wrongdigest(self, target):
        resp = self.upstream("GET", self.path)
        if resp.status not in (200, 206):
            return self.relay(resp)
        body = bytearray(resp.read())
        if body[:2] == b"\x1f\x8b" and len(body) > 8:
            # The gzip header's MTIME: decompressors ignore it, so only the digest check notices.
            body[4] ^= 0xFF
        elif body:
            body[len(body) // 2] ^= 0x01
        self.send_upstream_headers(resp, len(body))
        self.wfile.write(bytes(body))

    def fault_stall(self, target):
        resp = self.upstream("GET", self.path)
        length = resp.getheader("Content-Length")
        if resp.status not in (200, 206) or length is None:
            return self.relay(resp)
        self.send_upstream_headers(resp, int(length))
        self.wfile.write(resp.read(min(1024, int(length) // 4)))
        self.wfile.flush()
        time.sleep(self.state.stall_seconds)
        self.hang_up()

    def fault_trickle(self, target):
        resp = self.upstream("GET", self.path)
        length = resp.getheader("Content-Length")
        if resp.status not in (200, 206) or length is None:
            return self.relay(resp)
        self.send_upstream_headers(resp, int(length))
        with self.state.lock:
            rate = self.state.rate
        # Pieces of rate/10 bytes every tenth of a second, paced against the clock so a slow
        # scheduler does not lower the rate; at least one byte per piece.
        piece = max(1, int(rate / 10))
        started, sent = time.monotonic(), 0
        while data := resp.read(piece):
            self.wfile.write(data)
            self.wfile.flush()
            sent += len(data)
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def fault_redirect(self, target):
        match = BLOB_GET.match(target.path)
        if not match:
            return self.relay(self.upstream(self.command, self.path))
        with self.state.lock:
            host = self.state.redirect_host
        host = host or self.headers.get("Host") or self.server.listen
        query = urllib.parse.urlencode({"name": match["name"]})
        location = f"http://{host}/__blob/{match['digest']}?{query}"
        self.reply(307, b"", content_type="text/plain", headers=[("Location", location)])

    def serve_redirected_blob(self, target):
        """The redirect target: the blob itself, like a storage backend's presigned URL."""
        digest = target.path[len("/__blob/"):]
        name = urllib.parse.parse_qs(target.query).get("name", [""])[0]
        with self.state.lock:
            reject_auth = self.state.reject_auth
        if reject_auth and self.headers.get("Authorization"):
            return self.reply(400, {"error": "the redirect target takes no Authorization header"})
        if not name or self.command not in ("GET", "HEAD"):
            return self.reply(400, {"error": "GET /__blob/<digest>?name=<repository>"})
        headers = {}
        if self.headers.get("Range"):
            headers["Range"] = self.headers["Range"]
        self.relay(self.upstream(self.command, f"/v2/{name}/blobs/{digest}", headers=headers))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # parallel layer downloads must not meet a full accept backlog


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:5002", help="host:port to serve (default %(default)s)")
    parser.add_argument("--upstream", default="http://127.0.0.1:5000", help="registry URL (default %(default)s)")
    parser.add_argument("--token-user", default="tokenuser")
    parser.add_argument("--token-password", default="tokenpass")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    upstream = urllib.parse.urlsplit(args.upstream if "://" in args.upstream else "http://" + args.upstream)
    if upstream.scheme != "http":
        sys.exit("faultproxy: --upstream must be a plain http:// registry")
    server = Server((host, int(port)), Handler)
    server.state = State()
    server.listen = args.listen
    server.upstream = upstream.netloc
    server.token_user, server.token_password = args.token_user, args.token_password
    print(f"faultproxy: listening on {args.listen}, upstream {args.upstream}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
