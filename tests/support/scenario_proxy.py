#!/usr/bin/env python3
"""Layers scenario facts over the responses of Prism mocking a vendor's API
description, for the facts and the paging that a mock cannot give.

Prism answers every request with the description's example (or a body made
from its schemas), the same on every page: it cannot say "this user has no
2-Step Verification" or "the next page is p2". This server forwards each
request to that mock, then merges the first matching route of the scenario
into the JSON body: objects key by key, lists element by element, each
scenario element laid over the mock's element at that index (or its last
one), so that every field the scenario does not name keeps the vendor's
shape. A route may also drop top-level keys (the cursor of a last page).
A second Prism, in proxy mode with `--errors` in front of this server,
checks that each merged response still conforms to the description.

    scenario_proxy.py SCENARIO --upstream URL --public URL
        [--require-header 'Name=value'] [--journal FILE]

prints `READY <port>` once it listens on 127.0.0.1. `{public}` in scenario
strings becomes the --public URL (where clients reach the validating
proxy), so that absolute next-page links lead back through it.

Scenario file (YAML):

    open_paths: [/token]          # reached before a credential exists
    local:                        # answered here, never forwarded
      - {method: POST, path: /token, status: 200, body: {...}}
    routes:
      - method: GET
        path: /admin/directory/v1/users
        query: {pageToken: null}  # regex each parameter must match; null: absent
        merge: {users: [...], nextPageToken: p2}
        drop: [nextPageToken]
"""

import argparse
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

# Hop-by-hop and length headers are the forwarding's own business.
DROPPED = {"content-encoding", "transfer-encoding", "content-length", "connection", "keep-alive", "host"}


def substitute(value, public):
    if isinstance(value, str):
        return value.replace("{public}", public)
    if isinstance(value, list):
        return [substitute(v, public) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, public) for k, v in value.items()}
    return value


def merge(base, over):
    if isinstance(over, dict) and isinstance(base, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v)
        return out
    if isinstance(over, list) and isinstance(base, list) and base:
        return [merge(base[min(i, len(base) - 1)], v) for i, v in enumerate(over)]
    return over


def matches(route, method, path, query):
    if route.get("method", "GET").upper() != method or route["path"] != path:
        return False
    for name, pattern in (route.get("query") or {}).items():
        value = query.get(name)
        if pattern is None:
            if value is not None:
                return False
        elif value is None or not re.search(str(pattern), value):
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--upstream", required=True, help="the Prism mock")
    ap.add_argument("--public", required=True, help="the URL clients use")
    ap.add_argument("--require-header", action="append", default=[])
    ap.add_argument("--journal", help="append each request (method, path, headers, body) as a JSON line")
    args = ap.parse_args()

    with open(args.scenario) as f:
        scenario = substitute(yaml.safe_load(f), args.public)
    upstream = args.upstream.rstrip("/")
    routes = scenario.get("routes") or []
    local = scenario.get("local") or []
    open_paths = set(scenario.get("open_paths") or [])
    required = [h.split("=", 1) for h in args.require_header]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("scenario: " + (fmt % a) + "\n")

        def reply(self, code, headers, body):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body_in = self.rfile.read(length) if length else b""
            if args.journal:
                with lock, open(args.journal, "a") as j:
                    j.write(json.dumps({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers),
                                        "body": body_in.decode(errors="replace")}) + "\n")
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
            json_type = [("Content-Type", "application/json")]
            if split.path not in open_paths:
                for name, value in required:
                    if self.headers.get(name) != value:
                        return self.reply(401, json_type, {"error": f"{name} is missing or wrong"})
            for entry in local:
                if entry.get("method", "GET").upper() == self.command and entry["path"] == split.path:
                    return self.reply(entry.get("status", 200), json_type, entry.get("body", {}))

            request = urllib.request.Request(upstream + self.path, data=body_in or None, method=self.command)
            for name, value in self.headers.items():
                if name.lower() not in DROPPED:
                    request.add_header(name, value)
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    status, headers, raw = r.status, r.getheaders(), r.read()
            except urllib.error.HTTPError as e:
                status, headers, raw = e.code, e.headers.items(), e.read()
            headers = [(k, v) for k, v in headers if k.lower() not in DROPPED]
            if status != 200:
                return self.reply(status, headers, raw)
            body = json.loads(raw)
            # Some descriptions (Atlassian's) give their examples as JSON
            # text inside a string; the response they stand for is that JSON.
            if isinstance(body, str):
                body = json.loads(body)
            route = next((r for r in routes if matches(r, self.command, split.path, query)), None)
            if route is not None:
                body = merge(body, route.get("merge") or {})
                for k in route.get("drop") or []:
                    body.pop(k, None)
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"] + json_type
            self.reply(200, headers, body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
