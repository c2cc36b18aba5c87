#!/usr/bin/python3
"""A webhook receiver for llm-monitor alert's tests (Python standard library only).

Listens on 127.0.0.1 on a free port (written to --port-file once listening), answers the
first --fail requests with 500 and the rest with 200, and appends one JSON line per request
to --log: {"n", "path", "answered", "signature_ok", "signature_age_s", "body"}.  With
--secret, the X-Llmops-Signature header "t=<unix>,v1=<hex>" must be HMAC-SHA256 of
"<t>.<body>" under the secret; a request without a good one is answered 401 (and logged
with signature_ok false).  --retry-after S adds Retry-After to the 500s."""
import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--fail", type=int, default=0)
ap.add_argument("--secret")
ap.add_argument("--retry-after")
args = ap.parse_args()

lock = threading.Lock()
count = [0]


def check_signature(header, body):
    if not header:
        return False, None
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False, None
    want = hmac.new(args.secret.encode(), parts["t"].encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"]), time.time() - int(parts["t"])


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with lock:
            count[0] += 1
            k = count[0]
        ok, age = True, None
        if args.secret is not None:
            ok, age = check_signature(self.headers.get("X-Llmops-Signature"), body)
        if not ok:
            code = 401
        elif k <= args.fail:
            code = 500
        else:
            code = 200
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with lock:
            with open(args.log, "a") as f:
                f.write(json.dumps({"n": k, "path": self.path, "answered": code,
                                    "signature_ok": ok, "signature_age_s": age,
                                    "content_type": self.headers.get("Content-Type"),
                                    "body": parsed}) + "\n")
        self.send_response(code)
        if code == 500 and args.retry_after:
            self.send_header("Retry-After", args.retry_after)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok\n" if code == 200 else b"no\n")

    def log_message(self, *a):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tmp = args.port_file + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(tmp, args.port_file)
sys.stdout.flush()
srv.serve_forever()
