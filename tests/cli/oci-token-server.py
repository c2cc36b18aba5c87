#!/usr/bin/python3
"""A token server for tests/cli/pack-oci.sh: the Docker registry token flow on loopback.

docker-registry configured with `auth: token: {realm, service, issuer, rootcertbundle}`
answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`; a client then asks
this server for a token (GET /token?service=S&scope=repository:NAME:pull,push) with its Basic
credentials, and retries with `Authorization: Bearer TOKEN`.  The token is a JWT signed RS256
with --key, carrying the certificate (--cert, which the registry trusts) in its x5c header, so
the registry checks it as it would one from a real auth server.  Signing runs `openssl dgst`,
so nothing beyond Debian's python3 and openssl is needed.

Only --user with --password gets a token, granted every action it asks for; anything else is
401.  Each request is logged as one JSON line to --log: {"service", "scopes", "user",
"granted"}.  The chosen port is written to --port-file once listening."""
import argparse
import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    args = ap.parse_args()

    pem = open(args.cert).read()
    body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
    header = {"typ": "JWT", "alg": "RS256", "x5c": [body]}
    lock = threading.Lock()

    def sign(payload):
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", args.key],
                             input=signing_input.encode(), capture_output=True, check=True).stdout
        return signing_input + "." + b64url(sig)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def answer(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                except Exception:
                    user, pw = None, None
                if (user, pw) != (args.user, args.password):
                    user = "!" + (user or "")
            granted = u.path == "/token" and user == args.user
            with lock:
                with open(args.log, "a") as f:
                    f.write(json.dumps({"service": q.get("service", [None])[0],
                                        "scopes": q.get("scope", []), "user": user,
                                        "account": q.get("account", [None])[0],
                                        "granted": granted}) + "\n")
            if not granted:
                self.answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                              "message": "the token server wants a valid login"}]})
                return
            access = []
            for s in q.get("scope", []):
                kind, _, rest = s.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name,
                               "actions": [a for a in actions.split(",") if a]})
            now = int(time.time())
            token = sign({"iss": args.issuer, "sub": user, "aud": q.get("service", [""])[0],
                          "exp": now + 600, "nbf": now - 60, "iat": now,
                          "jti": str(now) + "-" + str(threading.get_ident()), "access": access})
            self.answer(200, {"token": token, "expires_in": 600})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
