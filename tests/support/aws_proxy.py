#!/usr/bin/env python3
"""An HTTP proxy in front of moto_server for the AWS collector tests: it
passes requests through, except those matching a rule, which it answers
itself (a 500, a throttling error, or an answer for an operation moto does
not implement). Every request is written to a journal (JSON lines); the
responses to requests matching --capture are written with their body, so
that a test can learn the secrets moto handed out (an assumed role's
session token) and prove they went nowhere.

    python3 aws_proxy.py TARGET --rules JSON --journal FILE [--capture REGEX]

Prints `PORT <n>` once listening. A rule is
{"match": REGEX, "status": 500, "body": "...", "content_type": "...",
 "times": N or null (always)}; REGEX is searched in
"METHOD PATH?QUERY\\nX-Amz-Target\\nBODY".
"""
import argparse
import http.client
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("target")
ap.add_argument("--rules", default="[]")
ap.add_argument("--journal", required=True)
ap.add_argument("--capture", default=None)
args = ap.parse_args()

target = urllib.parse.urlsplit(args.target)
rules = json.loads(args.rules)
for r in rules:
    r["re"] = re.compile(r["match"], re.S)
capture = re.compile(args.capture, re.S) if args.capture else None
lock = threading.Lock()
journal = open(args.journal, "a", buffering=1)

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        body = self.read_body()
        sig = f"{self.command} {self.path}\n{self.headers.get('X-Amz-Target', '')}\n{body.decode('utf-8', 'replace')}"
        rule = None
        with lock:
            for r in rules:
                if r.get("times") is not None and r["times"] <= 0:
                    continue
                if r["re"].search(sig):
                    if r.get("times") is not None:
                        r["times"] -= 1
                    rule = r
                    break
        entry = {"request": sig[:400], "faulted": rule is not None}
        if rule is not None:
            ctype = rule.get("content_type", "text/xml")
            self.reply(rule["status"], [("Content-Type", ctype)], rule.get("body", "").encode())
        else:
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if capture is not None and capture.search(sig):
                entry["response"] = data.decode("utf-8", "replace")
            self.reply(resp.status, resp.getheaders(), data)
        with lock:
            journal.write(json.dumps(entry) + "\n")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
