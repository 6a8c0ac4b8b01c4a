#!/usr/bin/env bash
# Benchmark of the S3 store against moto_server (the test peer; a real S3
# region is faster per request and slower per round trip):
#
#   1. collect 10,000 small records into the spool while the store is down,
#      then ship them all (wall time, objects/s, peak RSS of the agent);
#   2. collect and ship one 100 MB payload (wall time, MB/s, peak RSS);
#   3. `exhibit verify` over S3 on the 10,000-record store (wall time, RSS).
#
#   bash benches/s3.sh            # N=10000 SIZE_MB=100 by default
#   N=1000 SIZE_MB=10 bash benches/s3.sh
#   ONLY=large bash benches/s3.sh   # the 100 MB payload alone
#
# Needs moto_server on PATH (bash tests/run.sh installs it into
# target/test-env/venv) and a built binary (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
N=${N:-10000}
SIZE_MB=${SIZE_MB:-100}
exhibit="$root/target/debug/exhibit"
[ -x "$root/target/test-env/venv/bin/moto_server" ] && export PATH="$root/target/test-env/venv/bin:$PATH"
command -v moto_server >/dev/null || { echo "moto_server not found: run bash tests/run.sh first" >&2; exit 2; }
[ -x "$exhibit" ] || cargo build

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.2; done

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true
live="http://127.0.0.1:$port"
dead="http://127.0.0.1:1"
python3 - "$live" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for b in ("bench-small", "bench-large"):
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
EOF

measure() { # label, then the command; prints wall seconds and peak RSS
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || true
  read -r secs kb <"$work/time"
  printf '%-44s %8.2f s   peak RSS %6d MB\n' "$label" "$secs" "$((kb / 1024))"
  echo "$secs"  >"$work/last"
}

if [ "${ONLY:-}" != large ]; then
# --- 1. 10,000 small records -------------------------------------------
small="$work/small"; mkdir -p "$small"
{
  printf '[agent]\nconcurrency = 8\n[store]\nlocation = "s3://bench-small/org"\nflush_timeout = "0s"\n'
  for i in $(seq 1 "$N"); do
    printf '[[collectors]]\nname = "c%05d"\nkind = "command"\nschedule = "@daily"\ncommand = ["echo", "{\\"n\\":%d}"]\n' "$i" "$i"
  done
} >"$small/exhibit.toml"
# A first run against the live store, so that the spool has synced once.
AWS_ENDPOINT_URL=$live "$exhibit" --config "$small/exhibit.toml" collect c00001 >/dev/null 2>&1
measure "collect $N records into the spool (store down)" \
  env AWS_ENDPOINT_URL=$dead "$exhibit" --config "$small/exhibit.toml" collect
queued=$(ls "$small/spool/queue" | wc -l)
sed -i 's/flush_timeout = "0s"/flush_timeout = "1h"/' "$small/exhibit.toml"
measure "ship $queued spooled objects (+1 collection)" \
  env AWS_ENDPOINT_URL=$live "$exhibit" --config "$small/exhibit.toml" collect c00001
secs=$(cat "$work/last")
left=$(ls "$small/spool/queue" | wc -l)
python3 -c "print(f'  -> {$queued/$secs:.0f} objects/s; left in spool: $left')"
measure "verify over S3 ($N+ records)" \
  env AWS_ENDPOINT_URL=$live "$exhibit" --store s3://bench-small/org verify --json
python3 -c "import json; r=json.load(open('$work/out')); print('  -> intact:', r['intact'])"
fi

# --- 2. one large payload ----------------------------------------------
large="$work/large"; mkdir -p "$large"
python3 - "$large/big.json" "$SIZE_MB" <<'EOF'
import sys, json
n = int(sys.argv[2]) * 1024 * 1024
row = "x" * 1000
with open(sys.argv[1], "w") as f:
    json.dump({"rows": [row] * (n // 1004)}, f)
EOF
bytes=$(stat -c %s "$large/big.json")
cat >"$large/exhibit.toml" <<EOF
[store]
location = "s3://bench-large/org"
flush_timeout = "1h"
[[collectors]]
name = "big"
kind = "command"
schedule = "@daily"
command = ["cat", "$large/big.json"]
max_output = $((bytes + 1024))
EOF
measure "collect + ship one $((bytes / 1048576)) MB payload" \
  env AWS_ENDPOINT_URL=$live "$exhibit" --config "$large/exhibit.toml" collect
secs=$(cat "$work/last")
left=$(ls "$large/spool/queue" | wc -l)
python3 -c "print(f'  -> {$bytes/1048576/$secs:.1f} MB/s end to end; left in spool: $left')"
