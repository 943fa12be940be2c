#!/usr/bin/env python3
"""webhook_receiver.py — a webhook receiver for tests/integration/webhooks.sh, written apart
from tandem: it checks every delivery's signature with Python's own hmac, hashlib and base64,
as the Standard Webhooks specification (standardwebhooks.com) says, and shares no code with
tandem's signer (src/core/webhooks.c).

It listens on 127.0.0.1 on a free port, which it writes to --port-file once listening.

  POST /hook/NAME               a delivery for the receiver NAME. Checked against NAME's
                                secret: the webhook-id, webhook-timestamp (within
                                --tolerance seconds of now) and webhook-signature headers;
                                401 when the check fails. A delivery that passes is answered
                                500 while NAME still has failures to give (see below), else
                                200. Every request is logged as one JSON line to --log:
                                {"hook", "id", "timestamp", "signature", "verified",
                                "reason", "status", "at", "body"}.
  PUT /control/secret/NAME      the body is NAME's secret (whsec_...).
  PUT /control/fail/NAME?n=N    answer the next N verified deliveries of NAME with 500.
  GET /control/health           200.

--check SECRET reads such a log on standard input and prints, for each line, whether its
signature verifies with SECRET (ignoring the time): "ok" or "bad".

--selftest checks the verifier against the specification's published test vector and exits.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The test vector published with the Standard Webhooks specification and its libraries.
VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": "1614265330",
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def expected_signature(secret, msg_id, timestamp, body):
    """base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the base64-decoded
    part of the secret after "whsec_"."""
    encoded = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(encoded, validate=True)
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(secret, msg_id, timestamp, body, header, tolerance, now=None):
    """Returns (ok, reason). The header may hold several space-separated "v1,SIG"."""
    if not msg_id or not timestamp or not header:
        return False, "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return False, "webhook-timestamp is not a number"
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        return False, "webhook-timestamp is %d s away from now" % int(now - ts)
    want = expected_signature(secret, msg_id, timestamp, body)
    for part in header.split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), want.encode()):
            return True, ""
    return False, "no signature matches"


class State:
    def __init__(self, log_path, tolerance):
        self.lock = threading.Lock()
        self.secrets = {}
        self.failures = {}
        self.log_path = log_path
        self.tolerance = tolerance

    def log(self, entry):
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, status, text=""):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        if self.path == "/control/health":
            self.answer(200, "ok")
        else:
            self.answer(404, "no such path")

    def do_PUT(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")
        data = self.body()
        if len(parts) == 4 and parts[1] == "control" and parts[2] == "secret":
            with st.lock:
                st.secrets[parts[3]] = data.decode().strip()
            self.answer(200, "ok")
        elif len(parts) == 4 and parts[1] == "control" and parts[2] == "fail":
            n = int(urllib.parse.parse_qs(url.query).get("n", ["0"])[0])
            with st.lock:
                st.failures[parts[3]] = n
            self.answer(200, "ok")
        else:
            self.answer(404, "no such path")

    def do_POST(self):
        st = self.server.state
        parts = self.path.split("/")
        data = self.body()
        if len(parts) != 3 or parts[1] != "hook":
            self.answer(404, "no such path")
            return
        name = parts[2]
        with st.lock:
            secret = st.secrets.get(name)
        if secret is None:
            self.answer(404, "no secret for %s" % name)
            return
        msg_id = self.headers.get("webhook-id")
        timestamp = self.headers.get("webhook-timestamp")
        signature = self.headers.get("webhook-signature")
        ok, reason = verify(secret, msg_id, timestamp, data, signature, st.tolerance)
        status = 200
        if not ok:
            status = 401
        else:
            with st.lock:
                if st.failures.get(name, 0) > 0:
                    st.failures[name] -= 1
                    status = 500
        st.log({"hook": name, "id": msg_id, "timestamp": timestamp, "signature": signature,
                "verified": ok, "reason": reason, "status": status, "at": time.time(),
                "body": data.decode("utf-8", "replace")})
        self.answer(status, "ok" if status == 200 else (reason or "failing on purpose"))


def selftest():
    v = VECTOR
    want = v["signature"][len("v1,"):]
    got = expected_signature(v["secret"], v["id"], v["timestamp"], v["body"])
    assert got == want, "the verifier does not reproduce the test vector: %s" % got
    ok, _ = verify(v["secret"], v["id"], v["timestamp"], v["body"],
                   "v1,bm9wZQ== " + v["signature"], 300, now=int(v["timestamp"]))
    assert ok, "the test vector does not verify"
    ok, _ = verify(v["secret"], v["id"], v["timestamp"], v["body"] + b" ", v["signature"], 300,
                   now=int(v["timestamp"]))
    assert not ok, "a changed body verifies"
    ok, _ = verify(v["secret"], v["id"], v["timestamp"], v["body"], v["signature"], 300,
                   now=int(v["timestamp"]) + 301)
    assert not ok, "an old timestamp verifies"
    print("ok: the receiver's verifier reproduces the Standard Webhooks test vector")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--tolerance", type=int, default=300)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--check", metavar="SECRET")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return
    if args.check:
        for line in sys.stdin:
            e = json.loads(line)
            ok, _ = verify(args.check, e["id"], e["timestamp"], e["body"].encode(),
                           e["signature"], float("inf"))
            print("ok" if ok else "bad")
        return
    if not args.port_file or not args.log:
        ap.error("--port-file and --log are required")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.state = State(args.log, args.tolerance)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
