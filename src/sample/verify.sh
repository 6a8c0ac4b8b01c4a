#!/bin/sh
# Verifies this Exhibit sample bundle with standard tools only: sha256sum,
# openssl (3.0 or later), sed, grep, awk, sort, cut, wc, printf.
#
#   sh verify.sh                    # trusts the public keys in keys/
#   KEY=our-copy.pub sh verify.sh   # checks every signature against your own
#                                   # copy of the key, obtained out of band
#   TSA_CA=tsa-ca.pem sh verify.sh  # checks the RFC 3161 tokens against your
#                                   # own copy of the TSA's CA certificate
#                                   # (default: the certificates in tsa/)
#   REQUIRE_TIMESTAMPS=1 sh verify.sh  # a checkpoint without a token fails
#
# It checks: every file against MANIFEST.sha256; every record's and
# checkpoint's Ed25519 signature over its DSSE envelope; each record's
# sequence number and stream against its place; every sampled payload
# against the sha256 its record signs; the chain links (`prev`) between
# consecutive records; that no record of the period is missing; and that
# each checkpoint's list of records matches the records' bytes; and, where
# a checkpoint has an RFC 3161 token (<run id>.tsr), `openssl ts -verify`
# of the token against the checkpoint's sha256 and the TSA certificates.
# Exit status 0 means every check passed.
set -u
cd "$(dirname "$0")" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
records=0
checkpoints=0
payloads=0
timestamps=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
hash_of() { sha256sum "$1" | cut -c1-64; }
# The last occurrence of a string field in one line of canonical JSON.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$2"; }

# Checks the signature of a DSSE envelope; leaves its payload (the signed
# statement) in $tmp/st.json.
check_envelope() {
  f=$1
  type=$(sed -n 's/^{"payloadType":"\([^"]*\)".*/\1/p' "$f")
  sed -n 's/.*"payload":"\([^"]*\)".*/\1/p' "$f" | openssl base64 -d -A > "$tmp/st.json" 2>/dev/null
  sed -n 's/.*"sig":"\([^"]*\)".*/\1/p' "$f" | openssl base64 -d -A > "$tmp/sig.bin" 2>/dev/null
  keyid=$(field keyid "$f")
  key=${KEY:-keys/$keyid.pub}
  if [ ! -f "$key" ]; then bad "$f: signed by unknown key $keyid"; return 1; fi
  len=$(wc -c < "$tmp/st.json" | tr -d ' ')
  printf 'DSSEv1 %s %s %s ' "${#type}" "$type" "$len" > "$tmp/pae.bin"
  cat "$tmp/st.json" >> "$tmp/pae.bin"
  if ! openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in "$tmp/pae.bin" -sigfile "$tmp/sig.bin" > /dev/null 2>&1; then
    bad "$f: signature does not verify"
    return 1
  fi
  return 0
}

# 1. The files are the ones the bundle was made with.
if ! sha256sum -c --quiet MANIFEST.sha256; then bad "files differ from MANIFEST.sha256"; fi

# 2. Records.
find records -type f -name '*.json' | LC_ALL=C sort > "$tmp/records"
while read -r f; do
  records=$((records + 1))
  check_envelope "$f" || continue
  st=$tmp/st.json
  stream=${f#records/}
  stream=${stream%/*}
  name=$(basename "$f" .json)
  seq=$(sed -n 's/.*"seq":\([0-9]*\),.*/\1/p' "$st")
  [ "$(expr "$name" + 0)" = "$seq" ] || bad "$f: the record says it is number $seq"
  [ "$(field stream "$st")" = "$stream" ] || bad "$f: the record belongs to stream $(field stream "$st")"
  digest=$(sed -n 's/.*"digest":{"sha256":"\([0-9a-f]\{64\}\)"}.*/\1/p' "$st")
  blob="blobs/sha256/$(printf %s "$digest" | cut -c1-2)/$digest"
  if [ -f "$blob" ]; then
    payloads=$((payloads + 1))
    [ "$(hash_of "$blob")" = "$digest" ] || bad "$blob: payload does not match what $f signs"
  elif grep -qx "$f" sampled.txt; then
    bad "$f: sampled, but its payload is missing"
  fi
  prev_file="records/$stream/$(printf '%012d' $((seq - 1))).json"
  if [ -f "$prev_file" ]; then
    [ "$(field prev "$st")" = "$(hash_of "$prev_file")" ] || bad "$f: prev does not match $prev_file"
  fi
  echo "$stream $seq" >> "$tmp/seqs"
done < "$tmp/records"

# 3. No record of the period is missing: each stream's numbers are contiguous.
if [ -f "$tmp/seqs" ]; then
  LC_ALL=C sort -k1,1 -k2,2n "$tmp/seqs" | awk '
    $1 == s && $2 != n + 1 { printf "FAIL: records/%s: number %d follows %d\n", $1, $2, n; bad++ }
    { s = $1; n = $2 }
    END { exit bad > 0 }' || failures=$((failures + 1))
fi

# 4. Checkpoints: signed, chained, and listing exactly these records.
find checkpoints -type f -name '*.json' | LC_ALL=C sort > "$tmp/checkpoints"
while read -r f; do
  checkpoints=$((checkpoints + 1))
  check_envelope "$f" || continue
  grep -o '"digest":{"sha256":"[0-9a-f]*"},"name":"records/[^"]*"' "$tmp/st.json" |
    sed 's/"digest":{"sha256":"\([0-9a-f]*\)"},"name":"\(.*\)"/\1 \2/' > "$tmp/listed"
  while read -r h k; do
    s=${k#records/}
    s=${s%/*}
    grep -qx "$s" streams.txt || continue
    if [ -f "$k" ]; then
      [ "$(hash_of "$k")" = "$h" ] || bad "$k: differs from what checkpoint $f recorded"
    else
      first=$(ls "records/$s" 2> /dev/null | LC_ALL=C sort | head -n 1)
      n=$(basename "$k" .json)
      if [ -z "$first" ] || [ "$(expr "$n" + 0)" -ge "$(expr "$(basename "$first" .json)" + 0)" ]; then
        bad "$k: listed by checkpoint $f but missing"
      fi
    fi
  done < "$tmp/listed"
  prev=$(sed -n 's/.*"prev":{"key":"\([^"]*\)","sha256":"\([0-9a-f]*\)"}.*/\1 \2/p' "$tmp/st.json")
  if [ -n "$prev" ]; then
    pk=${prev% *}
    ph=${prev#* }
    if [ -f "$pk" ]; then
      [ "$(hash_of "$pk")" = "$ph" ] || bad "$f: previous checkpoint $pk differs"
    fi
  fi
done < "$tmp/checkpoints"

# 5. RFC 3161 timestamps: each token is over its checkpoint's bytes and
# signed by a trusted TSA (-partial_chain: a trusted certificate may be the
# TSA's own or an intermediate's, not only a root's).
if [ -n "${TSA_CA:-}" ]; then
  cp "$TSA_CA" "$tmp/tsa-ca.pem" 2> /dev/null || bad "cannot read TSA_CA=$TSA_CA"
else
  : > "$tmp/tsa-ca.pem"
  for c in tsa/*.pem; do [ -f "$c" ] && cat "$c" >> "$tmp/tsa-ca.pem"; done
fi
find checkpoints -type f -name '*.tsr' | LC_ALL=C sort > "$tmp/tokens"
while read -r t; do
  [ -f "${t%.tsr}.json" ] || bad "$t: a token for a checkpoint that is not here"
done < "$tmp/tokens"
while read -r f; do
  t=${f%.json}.tsr
  if [ ! -f "$t" ]; then
    if [ -n "${REQUIRE_TIMESTAMPS:-}" ]; then
      bad "$f: no RFC 3161 token"
    elif [ -s "$tmp/tokens" ]; then
      echo "note: $f has no RFC 3161 token"
    fi
    continue
  fi
  if [ ! -s "$tmp/tsa-ca.pem" ]; then
    bad "$t: no TSA certificate to check it against (tsa/ is empty; set TSA_CA)"
    continue
  fi
  if openssl ts -verify -in "$t" -digest "$(hash_of "$f")" -CAfile "$tmp/tsa-ca.pem" -partial_chain > "$tmp/ts.out" 2>&1; then
    timestamps=$((timestamps + 1))
    at=$(openssl ts -reply -in "$t" -text 2> /dev/null | sed -n 's/^Time stamp: //p')
    sed -n 's/.*"payload":"\([^"]*\)".*/\1/p' "$f" | openssl base64 -d -A > "$tmp/cp.json" 2> /dev/null
    echo "$t: timestamped $at; the checkpoint says it finished $(field finished_at "$tmp/cp.json")"
  else
    bad "$t: the RFC 3161 token does not verify for $f ($(grep -o 'Verify error:.*\|message imprint mismatch\|[a-z ]*mismatch' "$tmp/ts.out" | head -n 1))"
  fi
done < "$tmp/checkpoints"

echo "checked $records record(s), $payloads payload(s), $checkpoints checkpoint(s), $timestamps timestamp(s)${KEY:+ against $KEY}"
if [ "$failures" -eq 0 ]; then
  echo "VERIFIED: every signature, hash, link and listing checks out"
  exit 0
fi
echo "NOT VERIFIED: $failures problem(s)"
exit 1
