#!/usr/bin/env python3
"""Replays recorded HTTP interactions (VCR.py cassettes) as a local server.

The cassettes are the ones vendors' own SDKs recorded against their real
APIs, so what the collectors parse here are real responses with their real
headers (Okta's `Link` and `x-rate-limit-*`). A scenario file names the
cassettes, may reuse a recorded response for another path (`aliases`), and
may add interactions of its own where the recordings lack a fact to test.

Like VCR, identical requests get the recorded responses in order, and the
last one again once they are used up. A request nobody recorded gets a 404.
The recorded origin is rewritten to this server's address, in headers and
bodies, so that absolute next-page links lead back here.

    vcr_replay.py SCENARIO --base DIR [--require-header 'Name=value']

prints `READY <port>` once it listens on 127.0.0.1.
"""

import argparse
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

DROPPED = {"content-encoding", "transfer-encoding", "content-length", "connection"}


def key(method, uri):
    u = urllib.parse.urlsplit(uri)
    query = sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    return f"{method.upper()} {u.path}?{urllib.parse.urlencode(query)}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--base", required=True, help="directory the cassette paths are relative to")
    ap.add_argument("--require-header", action="append", default=[])
    ap.add_argument("--journal", help="append each request (method, path, headers, body) as a JSON line")
    args = ap.parse_args()

    with open(args.scenario) as f:
        scenario = yaml.safe_load(f)
    origin = scenario["origin"].rstrip("/")
    recorded = {}
    for path in scenario.get("cassettes", []):
        with open(f"{args.base}/{path}") as f:
            cassette = yaml.safe_load(f)
        for i in cassette["interactions"]:
            recorded.setdefault(key(i["request"]["method"], i["request"]["uri"]), []).append(i["response"])
    own = {}
    for i in scenario.get("interactions", []):
        own.setdefault(key(i["request"]["method"], i["request"]["uri"]), []).append(i["response"])
    # The scenario's own interactions replace recorded ones for the same request.
    recorded.update(own)
    aliases = {}
    for src, (target, index) in (scenario.get("aliases") or {}).items():
        method, path = src.split(" ", 1)
        t_method, t_path = target.split(" ", 1)
        responses = recorded.get(key(t_method, origin + t_path))
        if not responses:
            sys.exit(f"alias {src}: nothing recorded for {target}")
        aliases[key(method, origin + path)] = responses[index]
    required = [h.split("=", 1) for h in args.require_header]
    # Paths reached before a credential exists (a token endpoint).
    open_paths = set(scenario.get("open_paths") or [])
    served = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("replay: " + (fmt % a) + "\n")

        def reply(self, code, headers, body):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length).decode(errors="replace") if length else ""
            if args.journal:
                with lock, open(args.journal, "a") as j:
                    j.write(json.dumps({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers), "body": body_in}) + "\n")
            for name, value in ([] if self.path.split("?")[0] in open_paths else required):
                if self.headers.get(name) != value:
                    return self.reply(401, [("Content-Type", "application/json")],
                                      json.dumps({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}))
            k = key(self.command, origin + self.path)
            with lock:
                if k in aliases:
                    response = aliases[k]
                elif k in recorded:
                    n = served.get(k, 0)
                    served[k] = n + 1
                    response = recorded[k][min(n, len(recorded[k]) - 1)]
                else:
                    response = None
            if response is None:
                return self.reply(404, [("Content-Type", "application/json")],
                                  json.dumps({"errorCode": "E0000007", "errorSummary": f"Not found: nothing recorded for {k}"}))
            me = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
            headers = []
            for name, values in (response.get("headers") or {}).items():
                if name.lower() in DROPPED:
                    continue
                for v in values if isinstance(values, list) else [values]:
                    headers.append((name, str(v).replace(origin, me)))
            body = (response.get("body") or {}).get("string") or ""
            if isinstance(body, bytes):
                body = body.decode()
            self.reply(response["status"]["code"], headers, body.replace(origin, me))

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
