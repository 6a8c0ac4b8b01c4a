#!/usr/bin/env bash
# Benchmark of the GitHub collectors at organisation scale: one
# `github-branch-protection` collection (a paginated listing plus two calls
# per repository) over an organisation of 1,000 repositories, served by a
# local server with GitHub's pagination (100 per page, Link headers).
# Reports the requests served, wall time and the agent's peak RSS.
#
#   bash benches/github_org.sh                 # target/debug/exhibit
#   EXHIBIT=target/release/exhibit REPOS=5000 CONCURRENCY=16 bash benches/github_org.sh
#
# Results (2-core dev container, debug build, REPOS=1000, CONCURRENCY=8):
#   2,010 requests, 0.68 s, 36 MiB peak RSS — more in
#   docs/collectors/github.md, "Benchmark".
set -euo pipefail
cd "$(dirname "$0")/.."
REPOS=${REPOS:-1000}
CONCURRENCY=${CONCURRENCY:-8}
EXHIBIT=${EXHIBIT:-target/debug/exhibit}
[ -x "$EXHIBIT" ] || cargo build --quiet
work=$(mktemp -d)
cleanup() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 benches/github_org_server.py "$REPOS" > "$work/server.out" &
server_pid=$!
for _ in $(seq 50); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/listening/ {print $2}' "$work/server.out")

cat > "$work/exhibit.toml" <<TOML
[agent]
key = "exhibit.key"
[[collectors]]
name = "bench"
kind = "github-branch-protection"
schedule = "@daily"
retries = 0
org = "bench-org"
api_url = "http://127.0.0.1:$port"
token = "ghp_benchmark"
concurrency = $CONCURRENCY
TOML

/usr/bin/time -f "%e %M" -o "$work/time" "$EXHIBIT" --config "$work/exhibit.toml" collect > "$work/collect.out" 2>&1 \
  || { cat "$work/collect.out"; exit 1; }
read -r secs rss_kb < "$work/time"
requests=$(curl -s "http://127.0.0.1:$port/__stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
facts=$("$EXHIBIT" --config "$work/exhibit.toml" show bench/bench-org --json \
  | python3 -c 'import json,sys; p=json.load(sys.stdin)["payload"]; print(p["count"], len(p["unprotected"]))')
read -r count unprotected <<< "$facts"
[ "$count" = "$REPOS" ] || { echo "expected $REPOS repositories, recorded $count"; exit 1; }

printf 'repositories  %s (recorded; %s unprotected)\n' "$count" "$unprotected"
printf 'requests      %s\n' "$requests"
printf 'wall time     %ss\n' "$secs"
printf 'peak RSS      %s MiB\n' "$((rss_kb / 1024))"
