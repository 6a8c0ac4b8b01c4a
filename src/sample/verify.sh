#!/bin/sh
# Verifies this Exhibit sample bundle with standard tools only: sha256sum,
# openssl (3.0 or later), sed, grep, awk, sort, comm, cmp, cut, wc, find,
# printf.
#
#   sh verify.sh                    # trusts the public keys in keys/ (and
#                                   # says so)
#   KEY=our-copy.pub sh verify.sh   # checks every signature against your own
#                                   # copy of the key, obtained out of band
#   TSA_CA=tsa-ca.pem sh verify.sh  # checks the RFC 3161 tokens against your
#                                   # own copy of the TSA's CA certificate
#                                   # (default: the certificates in tsa/)
#   REQUIRE_TIMESTAMPS=1 sh verify.sh  # a checkpoint without a token fails
#
# It checks, from signed data only, what `exhibit verify --bundle` checks,
# and reaches the same verdict:
#  1. files: regular files only, every file listed in MANIFEST.sha256 with
#     its sha256, and no file left out of it;
#  2. records: each one's Ed25519 signature over its DSSE envelope, its
#     stream and number against its place, the chain link (`prev`) to the
#     record before it, no number missing, and each sampled payload's
#     sha256 against the one its record signs;
#  3. checkpoints: each one's signature, and the chain from each head named
#     in period.txt back, link by link, to the last checkpoint before the
#     period (or the chain's first): no checkpoint missing or altered, none
#     off the chain;
#  4. the population: the records are exactly those the period's
#     checkpoints list, byte for byte;
#  5. the draw: each sampled stream's records are the ones the seed draws
#     (the lowest sha256 of "<seed>\n<record key>"), and no payload is here
#     but the sampled records';
#  6. RFC 3161 tokens, where a checkpoint has one (<run id>.tsr):
#     `openssl ts -verify` against the checkpoint's sha256 and the TSA
#     certificates.
# `exhibit verify --bundle` also checks the records' times against their
# runs and the tokens' times (back-dating), which needs date arithmetic.
#
# A control bundle (`exhibit sample --control`, with control.txt) is checked
# the same way, except that:
#  2. every record's payload must be here, and numbers may be missing (the
#     bundle holds the evidence of the sample, not whole streams);
#  3. the chain runs from each head named in control.txt back to the oldest
#     checkpoint here;
#  4. every record is listed, byte for byte, by a checkpoint of that chain;
#  5. the draw: population.json hashes to the population hash in
#     control.txt, the seed is the sha256 of
#     "<engagement>\n<control>\n<population hash>", and sampled.txt holds the
#     occurrence ids with the lowest sha256 of "<seed>\n<id>", lowest first;
#     evidence.txt names for each the result record of the control that
#     judged it (a state control's occurrence is that record, `<stream>@<n>`;
#     an event control's result lists it), every record that result judged
#     is here with the bytes it judged, and no other record is here.
# Exit status 0 means every check passed. The head it prints must match the
# one noted when the sample was drawn: a bundle cut short after its last
# run, head and all, cannot be told from a genuine one otherwise.
set -u
cd "$(dirname "$0")" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
records=0
checkpoints=0
payloads=0
timestamps=0
# A control bundle holds control.txt; a record bundle period.txt.
if [ -f control.txt ]; then
  kind=control
  own="control.txt population.json sampled.txt evidence.txt"
else
  kind=records
  own="period.txt streams.txt sampled.txt"
fi
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }
hash_of() { sha256sum < "$1" | cut -c1-64; }
# The last occurrence of a string field in one line of canonical JSON.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$2"; }
# An RFC 3339 UTC time with nine fraction digits, so that times compare as
# strings.
norm_time() {
  printf '%s\n' "$1" | awk '{ t = $0; sub(/Z$/, "", t); f = ""; i = index(t, ".")
    if (i) { f = substr(t, i + 1); t = substr(t, 1, i - 1) }
    while (length(f) < 9) f = f "0"; print t "." f }'
}
earlier() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
# The records of stream $1 in a list of record keys ($2: which column).
of_stream() {
  awk -v p="records/$1/" -v c="$2" 'index($c, p) == 1 && index(substr($c, length(p) + 1), "/") == 0 { print $c }'
}

if [ -n "${KEY:-}" ]; then
  trust="your key $KEY"
else
  trust="the bundle's own keys in keys/"
  echo "NOTE: no KEY= given: signatures are checked against the bundle's own keys in keys/, which whoever made the bundle could have replaced. Pass KEY=your-copy.pub, obtained out of band, for an independent check."
fi

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

# 1. Files: regular files only (a link or a device could be read without
# end), each the one the bundle was made with, none unlisted.
find . ! -type f ! -type d | sed 's|^\./||' | LC_ALL=C sort > "$tmp/odd"
while read -r f; do bad "$f: is not a regular file"; done < "$tmp/odd"
# The bundle's own text files (empty when missing: that fails here).
for f in MANIFEST.sha256 $own; do
  if [ -f "$f" ] && [ ! -h "$f" ]; then cp "$f" "$tmp/$f"; else bad "the bundle has no $f"; : > "$tmp/$f"; fi
done
sed -n 's/^\([0-9a-f]\{64\}\)  \(.*\)$/\1 \2/p' "$tmp/MANIFEST.sha256" > "$tmp/manifest"
while read -r h name; do
  if [ -h "$name" ]; then continue; fi
  if [ ! -f "$name" ]; then
    bad "$name: is listed in MANIFEST.sha256 but missing"
  elif [ "$(hash_of "$name")" != "$h" ]; then
    bad "$name: differs from MANIFEST.sha256"
  fi
done < "$tmp/manifest"
cut -d' ' -f2- "$tmp/manifest" | LC_ALL=C sort > "$tmp/listed-files"
find . -type f | sed 's|^\./||' | grep -vx 'MANIFEST.sha256' | LC_ALL=C sort > "$tmp/files"
LC_ALL=C comm -23 "$tmp/files" "$tmp/listed-files" > "$tmp/unlisted"
while read -r f; do bad "$f: is not listed in MANIFEST.sha256"; done < "$tmp/unlisted"
if [ "$kind" = records ]; then
  grep -v '^$' "$tmp/streams.txt" > "$tmp/streams"
  grep -v '^$' "$tmp/sampled.txt" | LC_ALL=C sort -u > "$tmp/sampled"
fi

# 2. Records.
find records -type f -name '*.json' 2> /dev/null | LC_ALL=C sort > "$tmp/records"
# In a control bundle every record is evidence: each payload must be here.
[ "$kind" = records ] || cp "$tmp/records" "$tmp/sampled"
: > "$tmp/seqs"
: > "$tmp/digests"
: > "$tmp/judged"
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
  echo "$f $blob" >> "$tmp/digests"
  if [ -f "$blob" ]; then
    payloads=$((payloads + 1))
    [ "$(hash_of "$blob")" = "$digest" ] || bad "$blob: payload does not match what $f signs"
  elif grep -qxF "$f" "$tmp/sampled"; then
    bad "$f: sampled, but its payload is missing"
  fi
  prev_file="records/$stream/$(printf '%012d' $((seq - 1))).json"
  if [ -f "$prev_file" ]; then
    [ "$(field prev "$st")" = "$(hash_of "$prev_file")" ] || bad "$f: prev does not match $prev_file"
  fi
  echo "$stream $seq" >> "$tmp/seqs"
  # The records a control result judged: "<result> <record> <sha256>".
  grep -o '"record":"records/[^"]*","sha256":"[0-9a-f]\{64\}"' "$st" |
    sed "s|\"record\":\"\([^\"]*\)\",\"sha256\":\"\([0-9a-f]*\)\"|$f \1 \2|" >> "$tmp/judged"
done < "$tmp/records"
# No number is missing between the first and the last of each stream.
[ "$kind" = control ] || LC_ALL=C sort -k1,1 -k2,2n "$tmp/seqs" | awk '
  $1 == s && $2 != n + 1 { printf "FAIL: records/%s: number %d follows %d\n", $1, $2, n; bad++ }
  { s = $1; n = $2 }
  END { exit bad > 0 }' || failures=$((failures + 1))

# 3. Checkpoints: signed, and chained from each head back past the
# period's start. A table of those that open: number, key, sha256, the
# previous checkpoint's key and sha256, and the time the run finished.
find checkpoints -type f -name '*.json' 2> /dev/null | LC_ALL=C sort > "$tmp/checkpoints"
: > "$tmp/cptable"
while read -r f; do
  checkpoints=$((checkpoints + 1))
  check_envelope "$f" || continue
  prev=$(sed -n 's/.*"prev":{"key":"\([^"]*\)","sha256":"\([0-9a-f]*\)"}.*/\1 \2/p' "$tmp/st.json")
  [ -n "$prev" ] || prev="- -"
  echo "$checkpoints $f $(hash_of "$f") $prev $(norm_time "$(field finished_at "$tmp/st.json")")" >> "$tmp/cptable"
  grep -o '"digest":{"sha256":"[0-9a-f]*"},"name":"records/[^"]*"' "$tmp/st.json" |
    sed 's/"digest":{"sha256":"\([0-9a-f]*\)"},"name":"\(.*\)"/\1 \2/' |
    grep -E '^[0-9a-f]{64} records/.+/[0-9]{12}\.json$' > "$tmp/cp.$checkpoints.list"
done < "$tmp/checkpoints"
if [ "$kind" = control ]; then period=$tmp/control.txt; else period=$tmp/period.txt; fi
from_raw=$(sed -n 's/^from //p' "$period" | head -n 1)
to_raw=$(sed -n 's/^to //p' "$period" | head -n 1)
seed=$(sed -n 's/^seed //p' "$period" | head -n 1)
from=$(norm_time "$from_raw")
to=$(norm_time "$to_raw")
utc='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$'
pf=${period#"$tmp/"}
if [ "$kind" = control ]; then names="engagement control from to size population seed"; else names="from to seed"; fi
for name in $names; do
  [ "$(grep -c "^$name " "$period")" -eq 1 ] || bad "$pf: names \`$name\` $(grep -c "^$name " "$period") times, not once"
done
printf '%s\n' "$from_raw" | grep -qE "$utc" || bad "$pf: \`from $from_raw\` is not a UTC time"
printf '%s\n' "$to_raw" | grep -qE "$utc" || bad "$pf: \`to $to_raw\` is not a UTC time"
grep -vE "^($(echo $names | tr ' ' '|')) |^head [0-9a-f]{64}\$" "$period" > "$tmp/odd-lines"
while read -r l; do bad "$pf: unexpected line \`$l\`"; done < "$tmp/odd-lines"
sed -n 's/^head \([0-9a-f]\{64\}\)$/\1/p' "$period" > "$tmp/heads"
[ -s "$tmp/heads" ] || bad "$pf: names no head: the bundle shows no checkpoint chain"
# A record bundle's chain runs back past the period's start, and the
# period's checkpoints are those that finished within it; a control
# bundle's runs back to its oldest checkpoint, all of them listing.
chain_from=$from chain_to=$to
[ "$kind" = records ] || chain_from="" chain_to="~"
: > "$tmp/onchain"
: > "$tmp/in-period"
total=$(wc -l < "$tmp/cptable" | tr -d ' ')
while read -r head; do
  line=$(awk -v h="$head" '$3 == h { print; exit }' "$tmp/cptable")
  [ -n "$line" ] || bad "$pf: head $head is not among the bundle's signed checkpoints"
  steps=0
  while [ -n "$line" ]; do
    # shellcheck disable=SC2086
    set -- $line
    n=$1 key=$2 pk=$4 ph=$5 fin=$6
    steps=$((steps + 1))
    if [ "$steps" -gt "$total" ]; then bad "$key: the checkpoint chain loops back to it"; break; fi
    echo "$key" >> "$tmp/onchain"
    if earlier "$fin" "$chain_from"; then break; fi
    earlier "$chain_to" "$fin" || echo "$n" >> "$tmp/in-period"
    [ "$pk" != "-" ] || break
    line=$(awk -v k="$pk" '$2 == k { print; exit }' "$tmp/cptable")
    if [ -z "$line" ] && [ "$kind" = control ]; then
      break
    elif [ -z "$line" ]; then
      bad "$key: the checkpoint chain is broken: its previous checkpoint $pk is not here"
    else
      # shellcheck disable=SC2086
      set -- $line
      if [ "$3" != "$ph" ]; then
        bad "$key: the checkpoint chain is broken: its previous checkpoint $pk hashes to $3, not $ph"
        line=""
      fi
    fi
  done
done < "$tmp/heads"
LC_ALL=C sort -u "$tmp/onchain" > "$tmp/onchain.sorted"
cut -d' ' -f2 "$tmp/cptable" | LC_ALL=C sort | LC_ALL=C comm -23 - "$tmp/onchain.sorted" > "$tmp/offchain"
while read -r f; do bad "$f: is not on the checkpoint chain from any head"; done < "$tmp/offchain"

find checkpoints -type f ! -name '*.json' ! -name '*.tsr' 2> /dev/null | LC_ALL=C sort > "$tmp/stray-cp"
while read -r f; do bad "$f: is neither a checkpoint nor a token"; done < "$tmp/stray-cp"

# The keys and TSA certificates the bundle carries, when they are the ones
# trusted: each well-formed and named by its id (a key: the first 16 hex
# digits of the SHA-256 of the raw key; a certificate: the SHA-256 of its
# DER).
if [ -z "${KEY:-}" ]; then
  find keys -type f 2> /dev/null | LC_ALL=C sort > "$tmp/keyfiles"
  while read -r k; do
    if ! openssl pkey -pubin -in "$k" -noout > /dev/null 2>&1; then
      bad "$k: is not a public key"
    else
      id=$(openssl pkey -pubin -in "$k" -outform DER 2> /dev/null | tail -c 32 | sha256sum | cut -c1-16)
      [ "$k" = "keys/$id.pub" ] || bad "$k: holds key $id"
    fi
  done < "$tmp/keyfiles"
fi
if [ -z "${TSA_CA:-}" ]; then
  find tsa -type f 2> /dev/null | LC_ALL=C sort > "$tmp/tsafiles"
  while read -r c; do
    rm -f "$tmp"/tsa.*.pem
    awk -v out="$tmp/tsa." '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (out n ".pem") }' "$c"
    any=""
    named=""
    for p in "$tmp"/tsa.*.pem; do
      openssl x509 -in "$p" -noout > /dev/null 2>&1 || continue
      any=1
      h=$(openssl x509 -in "$p" -outform DER 2> /dev/null | sha256sum | cut -c1-64)
      [ "$c" != "tsa/$h.pem" ] || named=1
    done
    if [ -z "$any" ]; then
      bad "$c: is not a PEM certificate"
    elif [ -z "$named" ]; then
      bad "$c: is not named by the SHA-256 of the certificate it holds"
    fi
  done < "$tmp/tsafiles"
fi

# 4. The population: every record the period's checkpoints list, exactly
# the records here. (A control bundle: the checks after `else` below.)
: > "$tmp/population"
while read -r n; do cat "$tmp/cp.$n.list" >> "$tmp/population"; done < "$tmp/in-period"
LC_ALL=C sort -k2,2 -u "$tmp/population" > "$tmp/pop"
: > "$tmp/summary"
if [ "$kind" = records ]; then
population=$(wc -l < "$tmp/pop" | tr -d ' ')
[ "$population" -gt 0 ] || bad "records/: no record of the period: the bundle shows nothing"
while read -r h k; do
  if [ -h "$k" ] || [ ! -f "$k" ]; then
    bad "$k: is listed by a checkpoint of the period but missing"
  elif [ "$(hash_of "$k")" != "$h" ]; then
    bad "$k: differs from what the period's checkpoint signed"
  fi
done < "$tmp/pop"
cut -d' ' -f2 "$tmp/pop" > "$tmp/popkeys"
find records -type f 2> /dev/null | LC_ALL=C sort | LC_ALL=C comm -13 "$tmp/popkeys" - > "$tmp/extra"
while read -r k; do bad "$k: is not listed by any checkpoint of the period"; done < "$tmp/extra"

# 5. The draw, redrawn from the seed and the population; and no payload
# but the sampled records'.
[ -s "$tmp/streams" ] || bad "streams.txt: samples no stream"
while read -r k; do
  s=${k#records/}
  s=${s%/*}
  printf '%s\n' "$k" | grep -qE '^records/.+/[0-9]{12}\.json$' && grep -qxF "$s" "$tmp/streams" ||
    bad "sampled.txt: names $k, which is not a record of a sampled stream"
done < "$tmp/sampled"
while read -r s; do
  of_stream "$s" 2 < "$tmp/pop" > "$tmp/pop.s"
  of_stream "$s" 1 < "$tmp/sampled" > "$tmp/mine.s"
  np=$(wc -l < "$tmp/pop.s" | tr -d ' ')
  nm=$(wc -l < "$tmp/mine.s" | tr -d ' ')
  echo "sampled: $nm of $np record(s) of $s, redrawn from the seed" >> "$tmp/summary"
  if [ "$np" -eq 0 ]; then
    bad "streams.txt: samples stream $s, which has no record in the period"
  elif [ "$nm" -eq 0 ]; then
    bad "sampled.txt: holds no record of stream $s"
  else
    while read -r k; do
      printf '%s %s\n' "$(printf '%s\n%s' "$seed" "$k" | sha256sum | cut -c1-64)" "$k"
    done < "$tmp/pop.s" | LC_ALL=C sort | head -n "$nm" | cut -d' ' -f2 | LC_ALL=C sort > "$tmp/draw.s"
    cmp -s "$tmp/draw.s" "$tmp/mine.s" ||
      bad "sampled.txt: the records sampled from stream $s are not the $nm the seed draws from its $np records"
  fi
done < "$tmp/streams"
else
# 4 (control bundle). Every record is listed, with these bytes, by a
# checkpoint of the chain.
while read -r f; do
  grep -qxF "$(hash_of "$f") $f" "$tmp/pop" ||
    bad "$f: is not listed, with these bytes, by any checkpoint of the chain"
done < "$tmp/records"
# 5 (control bundle). The population hash, the seed and the draw, derived
# here from population.json and the seed's inputs in control.txt.
engagement=$(sed -n 's/^engagement //p' "$period" | head -n 1)
control=$(sed -n 's/^control //p' "$period" | head -n 1)
size=$(sed -n 's/^size //p' "$period" | head -n 1)
popsha=$(hash_of "$tmp/population.json")
[ "$popsha" = "$(sed -n 's/^population //p' "$period" | head -n 1)" ] ||
  bad "control.txt: names population $(sed -n 's/^population //p' "$period" | head -n 1), but population.json hashes to $popsha"
derived=$(printf '%s\n%s\n%s' "$engagement" "$control" "$popsha" | sha256sum | cut -c1-64)
[ "$derived" = "$seed" ] ||
  bad "control.txt: names seed $seed, but the sha256 of its engagement, control and population hash is $derived"
grep -o '"id":"[^"]*"' "$tmp/population.json" | cut -d'"' -f4 > "$tmp/ids"
population=$(wc -l < "$tmp/ids" | tr -d ' ')
[ "$population" -gt 0 ] || bad "population.json: holds no occurrence"
case $size in '' | *[!0-9]* | 0*) bad "control.txt: \`size $size\` is not a positive number"; size=1 ;; esac
n=$size
[ "$population" -ge "$n" ] || n=$population
while IFS= read -r id; do
  printf '%s %s\n' "$(printf '%s\n%s' "$derived" "$id" | sha256sum | cut -c1-64)" "$id"
done < "$tmp/ids" | LC_ALL=C sort | head -n "$n" | cut -d' ' -f2- > "$tmp/draw"
grep -v '^$' "$tmp/sampled.txt" > "$tmp/mine"
cmp -s "$tmp/draw" "$tmp/mine" ||
  bad "sampled.txt: the occurrences sampled are not the $n the seed draws from the $population of population.json"
echo "sampled: $(wc -l < "$tmp/mine" | tr -d ' ') of $population occurrence(s) of $control, redrawn from the seed" >> "$tmp/summary"
# The evidence of each sampled occurrence: the result that judged it, and
# every record that result judged, with the bytes it judged.
tab=$(printf '\t')
: > "$tmp/evidence"
LC_ALL=C sort "$tmp/mine" > "$tmp/mine.sorted"
cut -f1 "$tmp/evidence.txt" | LC_ALL=C sort | LC_ALL=C comm -23 - "$tmp/mine.sorted" > "$tmp/unsampled"
while IFS= read -r id; do bad "evidence.txt: names $id, which is not sampled"; done < "$tmp/unsampled"
while IFS= read -r id; do
  awk -F "$tab" -v id="$id" '$1 == id { print $2 }' "$tmp/evidence.txt" > "$tmp/behind"
  if [ "$(wc -l < "$tmp/behind" | tr -d ' ')" -ne 1 ]; then
    bad "evidence.txt: names $(wc -l < "$tmp/behind" | tr -d ' ') results for sampled occurrence $id, not one"
    continue
  fi
  r=$(cat "$tmp/behind")
  case $r in
    "records/control/$control/"*.json) ;;
    *) bad "evidence.txt: $r, named for $id, is not a result of control $control"; continue ;;
  esac
  if [ ! -f "$r" ]; then bad "$r: the result behind sampled occurrence $id is missing"; continue; fi
  echo "$r" >> "$tmp/evidence"
  # A state control's occurrence is its result record, `<stream>@<number>`;
  # an event control's result lists the occurrence by id.
  s=${id%@*} q=${id##*@}
  case $q in '' | *[!0-9]*) q="" ;; esac
  blob=$(awk -v k="$r" '$1 == k { print $2 }' "$tmp/digests")
  if [ -n "$q" ] && [ "$r" = "records/$s/$(printf '%012d' "$q").json" ]; then
    :
  elif [ -z "$blob" ] || [ ! -f "$blob" ] || ! grep -qF "\"id\":\"$id\"" "$blob"; then
    bad "$r: does not judge sampled occurrence $id"
  fi
  awk -v k="$r" '$1 == k { print $2, $3 }' "$tmp/judged" > "$tmp/inputs"
  while read -r k h; do
    echo "$k" >> "$tmp/evidence"
    if [ ! -f "$k" ]; then
      bad "$k: judged by $r (sampled occurrence $id), is missing"
    elif [ "$(hash_of "$k")" != "$h" ]; then
      bad "$k: differs from what $r judged"
    fi
  done < "$tmp/inputs"
done < "$tmp/mine"
LC_ALL=C sort -u "$tmp/evidence" | LC_ALL=C comm -13 - "$tmp/records" > "$tmp/extra"
while read -r k; do bad "$k: is not the evidence of a sampled occurrence"; done < "$tmp/extra"
fi
: > "$tmp/payloads"
while read -r k; do
  awk -v k="$k" '$1 == k { print $2 }' "$tmp/digests" >> "$tmp/payloads"
done < "$tmp/sampled"
LC_ALL=C sort -u "$tmp/payloads" > "$tmp/payloads.sorted"
find blobs -type f 2> /dev/null | LC_ALL=C sort | LC_ALL=C comm -23 - "$tmp/payloads.sorted" > "$tmp/stray"
while read -r b; do bad "$b: is not the payload of a sampled record"; done < "$tmp/stray"

# 6. RFC 3161 timestamps: each token is over its checkpoint's bytes and
# signed by a trusted TSA (-partial_chain: a trusted certificate may be the
# TSA's own or an intermediate's, not only a root's).
if [ -n "${TSA_CA:-}" ]; then
  cp "$TSA_CA" "$tmp/tsa-ca.pem" 2> /dev/null || bad "cannot read TSA_CA=$TSA_CA"
else
  : > "$tmp/tsa-ca.pem"
  for c in tsa/*.pem; do [ -f "$c" ] && [ ! -h "$c" ] && cat "$c" >> "$tmp/tsa-ca.pem"; done
fi
find checkpoints -type f -name '*.tsr' 2> /dev/null | LC_ALL=C sort > "$tmp/tokens"
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

if [ "$kind" = control ]; then
  echo "control: $control, engagement \`$engagement\`, period $from_raw to $to_raw"
  echo "population: $population occurrence(s), sha256 $popsha; seed $derived"
else
  echo "period: $from_raw to $to_raw, seed \`$seed\`"
fi
while read -r h; do echo "chain head: $h"; done < "$tmp/heads"
echo "head: $(tail -n 1 "$tmp/heads") (the store's newest checkpoint when the sample was drawn: compare it with the head you noted)"
if [ "$kind" = records ]; then
  echo "population: $population record(s) of the period, under $(wc -l < "$tmp/in-period" | tr -d ' ') checkpoint(s)"
fi
cat "$tmp/summary"
echo "checked $records record(s), $payloads payload(s), $checkpoints checkpoint(s), $timestamps timestamp(s) against $trust"
if [ "$failures" -eq 0 ]; then
  if [ -n "${KEY:-}" ]; then
    echo "VERIFIED: every signature, hash, link, listing and the draw check out"
  else
    echo "VERIFIED against the bundle's own keys (not independent: pass KEY=your-copy.pub): every signature, hash, link, listing and the draw check out"
  fi
  exit 0
fi
echo "NOT VERIFIED: $failures problem(s)"
exit 1
