#!/usr/bin/env python3
"""A local stand-in for api.github.com for the GitHub benchmark: an
organisation of N repositories listed 100 per page with GitHub's `Link`
headers, and for each default branch either classic protection, an
organisation ruleset, or nothing. Responses follow the shapes of GitHub's
documented examples. Prints "listening PORT", then serves until killed;
GET /__stats returns the number of API requests served.

    python3 benches/github_org_server.py [REPOS]
"""
import json
import socket
import sys
import threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlsplit, parse_qs

REPOS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ORG = "bench-org"
PER_PAGE_MAX = 100
lock = threading.Lock()
served = 0


def repo(i):
    name = f"repo-{i:04d}"
    return {
        "id": 100000 + i, "node_id": f"R_{i}", "name": name, "full_name": f"{ORG}/{name}",
        "owner": {"login": ORG, "id": 1, "type": "Organization", "site_admin": False},
        "private": i % 2 == 0, "visibility": "private" if i % 2 == 0 else "public",
        "html_url": f"https://github.com/{ORG}/{name}", "description": "benchmark repository",
        "fork": False, "url": f"https://api.github.com/repos/{ORG}/{name}",
        "archived": False, "disabled": False, "default_branch": "main",
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
        "pushed_at": "2026-01-01T00:00:00Z", "size": 1024, "stargazers_count": 0,
        "allow_merge_commit": True, "allow_squash_merge": True, "allow_rebase_merge": False,
        "delete_branch_on_merge": True,
        "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        "security_and_analysis": {"secret_scanning": {"status": "enabled"}},
    }


PROTECTION = {
    "required_status_checks": {"strict": True, "contexts": ["ci"], "checks": [{"context": "ci", "app_id": None}]},
    "enforce_admins": {"enabled": True},
    "required_pull_request_reviews": {"dismiss_stale_reviews": True, "require_code_owner_reviews": False,
                                      "required_approving_review_count": 1},
    "required_linear_history": {"enabled": False},
    "allow_force_pushes": {"enabled": False},
    "allow_deletions": {"enabled": False},
    "required_signatures": {"enabled": False},
}
RULES = [
    {"type": "pull_request", "ruleset_source_type": "Organization", "ruleset_source": ORG, "ruleset_id": 1,
     "parameters": {"required_approving_review_count": 2, "dismiss_stale_reviews_on_push": True,
                    "require_code_owner_review": True, "require_last_push_approval": False,
                    "required_review_thread_resolution": False}},
    {"type": "non_fast_forward", "ruleset_source_type": "Organization", "ruleset_source": ORG, "ruleset_id": 1},
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle
        # and delayed ACKs add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Limit", "15000")
        self.send_header("X-RateLimit-Remaining", "14000")
        self.send_header("X-RateLimit-Reset", "4102444800")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global served
        url = urlsplit(self.path)
        if url.path == "/__stats":
            return self.send(200, {"requests": served})
        with lock:
            served += 1
        if not self.headers.get("Authorization", "").startswith("token "):
            return self.send(401, {"message": "Requires authentication"})
        q = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if url.path == f"/orgs/{ORG}/repos":
            per_page = min(int(q.get("per_page", ["30"])[0]), PER_PAGE_MAX)
            page = int(q.get("page", ["1"])[0])
            last = max(1, -(-REPOS // per_page))
            items = [repo(i) for i in range((page - 1) * per_page, min(page * per_page, REPOS))]
            base = f"http://{self.headers['Host']}/orgs/{ORG}/repos?type=all&per_page={per_page}"
            links = []
            if page < last:
                links.append(f'<{base}&page={page + 1}>; rel="next"')
                links.append(f'<{base}&page={last}>; rel="last"')
            if page > 1:
                links.append(f'<{base}&page=1>; rel="first"')
                links.append(f'<{base}&page={page - 1}>; rel="prev"')
            return self.send(200, items, {"Link": ", ".join(links)} if links else None)
        # /repos/{org}/{repo}/branches/main/protection, /repos/{org}/{repo}/rules/branches/main
        if len(parts) >= 4 and parts[0] == "repos" and parts[1] == ORG:
            i = int(parts[2].split("-")[1])
            if parts[3] == "branches" and parts[-1] == "protection":
                if i % 3 == 0:
                    return self.send(200, PROTECTION)
                return self.send(404, {"message": "Branch not protected"})
            if parts[3] == "rules":
                return self.send(200, RULES if i % 3 == 1 else [])
        return self.send(404, {"message": "Not Found"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
