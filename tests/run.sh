#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the pinned test peers
# (Python packages into a private virtualenv, npm packages from the committed
# package-lock.json, Debian packages with apt-get when absent), then runs
# every test with one debug build, checks formatting and clippy, and fuzzes
# each fuzz target briefly.
#
#   bash tests/run.sh
#
# Where the minutes go, and why the order: the build is the bulk, so the
# peers install in the background while it runs; the tests are built for
# the static musl target, so that the same build serves the container image
# test (no second build of everything for the image); clippy lints this
# crate within that build rather than checking everything again; the fuzz
# targets build at the lowest CPU priority, on what the main build and the
# tests leave idle.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
env_dir="$root/target/test-env"
mkdir -p "$env_dir"

# Each phase heading carries the time since the start, so that a slow CI run
# shows where its minutes went.
say() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# CI always builds from cold: incremental state would only cost disk.
# Nor does it need full debug information: file and line in backtraces is
# what a failing test shows, and the rest is most of what the linker writes.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v openssl >/dev/null || need_apt+=(openssl)
# The deployment tests: podman and runc build and run the image (no Docker
# engine), musl-gcc links the static binary, systemd-analyze checks the unit.
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v musl-gcc >/dev/null || need_apt+=(musl-tools)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# The container test reads /metrics from inside the container's network
# namespace (nsenter, from util-linux, with curl).
command -v curl >/dev/null || need_apt+=(curl)
command -v nsenter >/dev/null || need_apt+=(util-linux)
# The HTML report is rendered in headless Chromium.
command -v chromium >/dev/null || need_apt+=(chromium)
# Node.js runs the npm peers (GitHub's fixtures server, prism).
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# Signed reviews are checked as an auditor would, with ssh-keygen.
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
# libFuzzer, which the fuzz targets link, is C++.
command -v c++ >/dev/null || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi

# Formatting first: a failure ends the run before anything starts in the
# background.
say "cargo fmt --check"
cargo fmt --check

# --- The test peers, installed in the background -----------------------------
# Nothing below needs them until the tests run; their downloads overlap the
# build. Their log is printed when they are waited for.
install_peers() {
  # Python peers (pinned).
  if [ -s tests/requirements.txt ]; then
    say "Python test peers (tests/requirements.txt)"
    # A virtualenv moved from another checkout keeps scripts that name the
    # old path; exec then falls through to whatever moto_server is next on
    # PATH, an unpinned one. Rebuild it rather than test against the wrong
    # peer. A copied one may even run, with the original's interpreter,
    # installing into the original: its pip must name this venv's python.
    if [ ! -x "$env_dir/venv/bin/python" ] || ! "$env_dir/venv/bin/pip" --version >/dev/null 2>&1 \
      || [ "$(head -n1 "$env_dir/venv/bin/pip" | sed 's/python3*$//')" != "#!$env_dir/venv/bin/" ]; then
      rm -rf "$env_dir/venv"
      python3 -m venv "$env_dir/venv"
    fi
    if ! cmp -s tests/requirements.txt "$env_dir/venv/.installed" 2>/dev/null; then
      "$env_dir/venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
      cp tests/requirements.txt "$env_dir/venv/.installed"
    fi
  fi

  # Vendors' recorded API responses and descriptions (pinned PyPI sdists):
  # the SDKs' own VCR cassettes, real responses the SaaS collectors must
  # parse; and API descriptions that Prism serves.
  local sdists="$env_dir/sdists"
  fetch_sdist() { # NAME VERSION [DIRECTORY NAME, when the sdist normalises it] [MEMBER...]
    local dir="${3:-$1}-$2"
    local members=("${@:4}")
    if [ ! -d "$sdists/$dir" ]; then
      say "sdist $1==$2"
      mkdir -p "$sdists"
      python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: "$1==$2" -d "$sdists"
      # Of a large sdist, only the files the tests read.
      tar -xzf "$sdists/$dir.tar.gz" -C "$sdists" "${members[@]/#/$dir/}"
      rm -f "$sdists/$dir.tar.gz"
    fi
  }
  fetch_sdist okta 3.4.6
  fetch_sdist datadog-api-client 2.62.0 datadog_api_client
  # Google's Admin SDK Directory discovery document.
  fetch_sdist google-api-python-client 2.202.0 google_api_python_client \
    googleapiclient/discovery_cache/documents/admin.directory_v1.json
  # Atlassian's Jira Cloud platform OpenAPI description (a copy kept by this
  # client's sdist; Atlassian publishes it on its developer site only).
  fetch_sdist jirapi 0.4.0 jirapi docs/jira-cloud-api-openapi.json

  # npm peers (package-lock.json).
  if [ -f tests/peers/package-lock.json ]; then
    say "npm test peers (tests/peers/package-lock.json)"
    if ! cmp -s tests/peers/package-lock.json tests/peers/node_modules/.installed-lock 2>/dev/null; then
      (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
      cp tests/peers/package-lock.json tests/peers/node_modules/.installed-lock
    fi
  fi
  say "test peers ready"
}
say "test peers: installing in the background (log: target/test-env/peers.log)"
install_peers > "$env_dir/peers.log" 2>&1 &
peers_pid=$!
[ -s tests/requirements.txt ] && export PATH="$env_dir/venv/bin:$PATH"
[ -f tests/peers/package-lock.json ] && export PATH="$root/tests/peers/node_modules/.bin:$PATH"

# --- The fuzz targets, built in the background at the lowest priority ---------
# The fuzz targets with the instrumentation cargo-fuzz would give them (its
# flags for `cargo fuzz run -O -s none`: libFuzzer's coverage counters,
# comparison tracing and stack depth, `--cfg fuzzing`), built by plain
# cargo: no cargo-fuzz to install, and no AddressSanitizer, which needs a
# nightly compiler and adds little over safe Rust's own checks. At nice 19
# the build takes what the main build and the tests leave idle (the
# serial tail of the main build, the tests' waits on peers and daemons);
# in its own target directory, so that neither waits for the other's lock.
host=$(rustc -vV | sed -n 's/^host: //p')
fuzz_targets=(config record bundle canonical)
fuzz_build_log="$env_dir/fuzz-build.log"
(
  renice -n 19 -p "$BASHPID" > /dev/null
  say "fuzz targets: build (tests/fuzz, instrumented for libFuzzer)"
  RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Clink-dead-code" \
    cargo build --manifest-path tests/fuzz/Cargo.toml --profile smoke --target "$host" \
    --target-dir "$root/target/fuzz" --bins
  say "fuzz targets: built"
) > "$fuzz_build_log" 2>&1 &
fuzz_build_pid=$!

# --- The build -----------------------------------------------------------------
# The tests are built for musl: the binary under test is then static, and
# the container image test builds its image from that very binary.
musl=x86_64-unknown-linux-musl
target_args=()
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  rustup target add "$musl" || echo "cannot add the $musl target on this machine: the tests are built for the host, and the container test will fail and say so"
fi
if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  target_args=(--target "$musl")
fi

# Clippy (`cargo clippy --all-targets -- -D warnings`) within the build:
# clippy-driver compiles this crate's targets — lints, then code as rustc
# would — while the dependencies are compiled by rustc as usual, so the lints
# cost no second, check-only build of every dependency. Any warning fails
# the run (below), as -D warnings would, but only after the tests ran.
if ! command -v clippy-driver >/dev/null; then
  rustup component add clippy
fi
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
say "cargo build of the tests, with clippy (${target_args[*]:-host})"
# One debug build serves the unit tests, the integration tests (one binary,
# tests/it) and a smoke run of the benchmarks.
build_log="$env_dir/build.log"
cargo test "${target_args[@]}" --no-run --lib --bins --tests --bench '*' 2>&1 | tee "$build_log"

# --- The tests -------------------------------------------------------------
say "waiting for the test peers"
if ! wait "$peers_pid"; then
  cat "$env_dir/peers.log"
  echo "installing the test peers failed (above)"
  exit 1
fi
grep '^== ' "$env_dir/peers.log" || true

say "cargo test"
status=0
log="$env_dir/test-output.log"
: > "$log"
cargo test "${target_args[@]}" --lib --bins --tests --no-fail-fast 2>&1 | tee -a "$log" || status=$?
say "benchmarks, smoke run"
# criterion runs each benchmark once under `cargo test`; the measurements
# themselves are `cargo bench`.
cargo test "${target_args[@]}" --bench '*' --no-fail-fast 2>&1 | tee -a "$log" || status=$?

# The build's warnings are clippy's verdict: cargo sums them up per crate
# (dependencies' lints are capped, so only this crate's count).
say "clippy"
if grep -E '^warning: .* generated [0-9]+ warnings?' "$build_log"; then
  echo "clippy: FAILED (the warnings above; all of them in target/test-env/build.log)"
  status=1
else
  echo "clippy: ok"
fi

say "waiting for the fuzz build"
fuzz_build_ok=0
wait "$fuzz_build_pid" || fuzz_build_ok=$?
grep '^== ' "$fuzz_build_log" || true

say "fuzzing, a short run of each target, two at a time (tests/fuzz/README.md)"
fuzz_one() { # TARGET
  local t=$1
  mkdir -p "tests/fuzz/artifacts/$t" "tests/fuzz/corpus/$t"
  "$root/target/fuzz/$host/smoke/$t" -artifact_prefix="tests/fuzz/artifacts/$t/" \
    -max_total_time="${EXHIBIT_FUZZ_SECONDS:-15}" -rss_limit_mb=2048 "tests/fuzz/corpus/$t" \
    > "$env_dir/fuzz-$t.log" 2>&1
}
fuzz_report() { # TARGET EXIT-STATUS
  if [ "$2" -eq 0 ]; then
    echo "test fuzz::$1 ... ok ($(grep -o 'Done [0-9]* runs' "$env_dir/fuzz-$1.log"))"
    echo "test result: ok. 1 passed; 0 failed" >> "$log"
  else
    tail -n 30 "$env_dir/fuzz-$1.log"
    echo "test fuzz::$1 ... FAILED (input saved in tests/fuzz/artifacts/$1/)"
    echo "test result: FAILED. 0 passed; 1 failed" >> "$log"
    status=1
  fi
}
if [ "$fuzz_build_ok" -ne 0 ]; then
  grep -v '^== ' "$fuzz_build_log" | tail -n 40
  echo "the fuzz targets did not build (above)"
  for t in "${fuzz_targets[@]}"; do
    echo "test fuzz::$t ... FAILED (not built)"
    echo "test result: FAILED. 0 passed; 1 failed" >> "$log"
  done
  status=1
else
  # libFuzzer runs on one core: two targets at a time, each with a core.
  for ((i = 0; i < ${#fuzz_targets[@]}; i += 2)); do
    pair=("${fuzz_targets[@]:i:2}")
    pids=()
    for t in "${pair[@]}"; do
      fuzz_one "$t" &
      pids+=($!)
    done
    for j in "${!pair[@]}"; do
      rc=0
      wait "${pids[j]}" || rc=$?
      fuzz_report "${pair[j]}" "$rc"
    done
  done
fi

# One closing line over every test binary and check.
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
say "done"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
