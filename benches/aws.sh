#!/usr/bin/env bash
# Benchmark of the AWS collectors against moto_server (the test peer):
#
#   1. moto seeded with 200 users, 50 buckets and one trail; the wall time
#      of `exhibit collect` of the IAM + S3 + CloudTrail set (aws-iam-users,
#      aws-iam-groups, aws-iam-password-policy, aws-account-summary,
#      aws-s3-buckets, aws-cloudtrail), and in the same run, against the
#      same server, plain boto3 making the same calls one after another
#      (benches/aws_baseline.py). Each is run REPEAT times; the best counts.
#      Also the number of calls each made (Exhibit's from its action
#      journal), so that the comparison is like for like.
#   2. 1,800 more users (2,000 in all): peak RSS of `exhibit collect
#      aws-iam-users`.
#
#   bash benches/aws.sh                       # builds target/release/exhibit
#   USERS=200 BUCKETS=50 BIG=2000 REPEAT=3 bash benches/aws.sh
#
# Needs moto_server on PATH (bash tests/run.sh installs it into
# target/test-env/venv) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
USERS=${USERS:-200}
BUCKETS=${BUCKETS:-50}
BIG=${BIG:-2000}
REPEAT=${REPEAT:-3}
exhibit="$root/target/release/exhibit"
[ -x "$root/target/test-env/venv/bin/moto_server" ] && export PATH="$root/target/test-env/venv/bin:$PATH"
command -v moto_server >/dev/null || { echo "moto_server not found: run bash tests/run.sh first" >&2; exit 2; }
cargo build --release --quiet --bin exhibit
python=$(dirname "$(readlink -f "$(command -v moto_server)")")/python3
[ -x "$python" ] || python=python3

work=$(mktemp -d)
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MOTO_IAM_LOAD_MANAGED_POLICIES=true moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
until "$python" -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.2; done
endpoint="http://127.0.0.1:$port"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$endpoint AWS_EC2_METADATA_DISABLED=true
: >"$work/empty"
export AWS_CONFIG_FILE=$work/empty AWS_SHARED_CREDENTIALS_FILE=$work/empty

"$python" benches/aws_baseline.py seed "$endpoint" --users "$USERS" --buckets "$BUCKETS"

{
  printf '[agent]\nid = "bench"\nconcurrency = 6\n'
  for k in aws-iam-users aws-iam-groups aws-iam-password-policy aws-account-summary aws-s3-buckets aws-cloudtrail; do
    printf '[[collectors]]\nname = "%s"\nkind = "%s"\nschedule = "@daily"\nretries = 0\n' "$k" "$k"
  done
} >"$work/exhibit.toml"

best() { sort -n | head -1; }
# CPU seconds moto_server has used so far: how busy the peer was tells
# whether it, not the client, bounds the run.
moto_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / hz}' "/proc/$moto/stat"; }
for i in $(seq "$REPEAT"); do
  /usr/bin/time -f "%e" -o "$work/t" "$python" benches/aws_baseline.py collect "$endpoint" >"$work/boto.calls"
  cat "$work/t" >>"$work/boto.times"
  before=$(moto_cpu)
  EXHIBIT_LOG=info,exhibit::aws::action=debug /usr/bin/time -f "%e %M" -o "$work/t" \
    "$exhibit" --config "$work/exhibit.toml" --log-format json collect >"$work/out" 2>"$work/err" \
    || { tail -5 "$work/out"; exit 1; }
  after=$(moto_cpu)
  read -r secs _ <"$work/t"
  echo "$secs $("$python" -c "print(f'{($after-$before)/$secs*100:.0f}')")" >>"$work/exhibit.times"
done
calls=$(grep -c '"target":"exhibit::aws::action"' "$work/err")
boto=$(best <"$work/boto.times")
read -r ex busy < <(best <"$work/exhibit.times")
users=$("$exhibit" --config "$work/exhibit.toml" show --json aws-iam-users/123456789012 | "$python" -c 'import json,sys; print(json.load(sys.stdin)["payload"]["counts"]["users"])')
printf '%-58s %6.2f s  (%s calls)\n' "boto3, sequential ($USERS users, $BUCKETS buckets, 1 trail)" "$boto" "$(cat "$work/boto.calls")"
printf '%-58s %6.2f s  (%s calls, %s users recorded)\n' "exhibit collect, same set" "$ex" "$calls" "$users"
"$python" -c "print(f'  -> exhibit / boto3 = {$ex/$boto:.2f}x  (best of $REPEAT); moto_server busy {$busy}% of a core meanwhile')"

"$python" benches/aws_baseline.py more-users "$endpoint" --from "$USERS" --to "$BIG"
before=$(moto_cpu)
/usr/bin/time -f "%e %M" -o "$work/t" "$exhibit" --config "$work/exhibit.toml" collect aws-iam-users >"$work/out" 2>&1 \
  || { tail -5 "$work/out"; exit 1; }
after=$(moto_cpu)
read -r secs kb <"$work/t"
users=$("$exhibit" --config "$work/exhibit.toml" show --json aws-iam-users/123456789012 | "$python" -c 'import json,sys; print(json.load(sys.stdin)["payload"]["counts"]["users"])')
printf '%-58s %6.2f s  peak RSS %d MiB\n' "exhibit collect aws-iam-users, $users users" "$secs" "$((kb / 1024))"
"$python" -c "print(f'  -> moto_server busy {($after-$before)/$secs*100:.0f}% of a core meanwhile')"
