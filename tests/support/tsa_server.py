#!/usr/bin/env python3
"""A Time-Stamp Authority for the tests: RFC 3161 over HTTP, answered by
`openssl ts -reply`. Python 3 standard library only.

    tsa_server.py --config DIR/tsa.cnf [--port N]

Prints `READY <port>` once listening. Every POST of
application/timestamp-query is handed to openssl; its reply goes back as
application/timestamp-reply. Requests are served one at a time, since
openssl keeps the serial number in a file.
"""

import argparse
import http.server
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    workdir = os.path.dirname(os.path.abspath(args.config))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.send_error(415, "expected application/timestamp-query")
                return
            length = int(self.headers.get("Content-Length") or 0)
            query = self.rfile.read(length)
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                qpath = os.path.join(tmp, "q.tsq")
                rpath = os.path.join(tmp, "r.tsr")
                with open(qpath, "wb") as f:
                    f.write(query)
                done = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", args.config,
                     "-queryfile", qpath, "-out", rpath],
                    capture_output=True,
                )
                if done.returncode != 0 or not os.path.exists(rpath):
                    self.send_error(500, done.stderr.decode(errors="replace")[:200])
                    return
                with open(rpath, "rb") as f:
                    reply = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, fmt, *a):
            pass

    class Server(http.server.HTTPServer):
        allow_reuse_address = True

    server = Server(("127.0.0.1", args.port), Handler)
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
