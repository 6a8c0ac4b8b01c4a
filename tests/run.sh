#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the pinned test peers
# (Python packages into a private virtualenv, npm packages from the committed
# package-lock.json, Debian packages with apt-get when absent), then runs
# every test with one debug build.
#
#   bash tests/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
env_dir="$root/target/test-env"
mkdir -p "$env_dir"

# Each phase heading carries the time since the start, so that a slow CI run
# shows where its minutes went.
say() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# CI always builds from cold: incremental state would only cost disk.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
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
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  fi
fi

# --- Python peers (pinned) -------------------------------------------------
if [ -s tests/requirements.txt ]; then
  say "Python test peers (tests/requirements.txt)"
  # A virtualenv moved from another checkout keeps scripts that name the old
  # path; exec then falls through to whatever moto_server is next on PATH,
  # an unpinned one. Rebuild it rather than test against the wrong peer.
  # A copied one may even run, with the original's interpreter, installing
  # into the original: its pip must name this venv's python.
  if [ ! -x "$env_dir/venv/bin/python" ] || ! "$env_dir/venv/bin/pip" --version >/dev/null 2>&1 \
    || [ "$(head -n1 "$env_dir/venv/bin/pip" | sed 's/python3*$//')" != "#!$env_dir/venv/bin/" ]; then
    rm -rf "$env_dir/venv"
    python3 -m venv "$env_dir/venv"
  fi
  if ! cmp -s tests/requirements.txt "$env_dir/venv/.installed" 2>/dev/null; then
    "$env_dir/venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$env_dir/venv/.installed"
  fi
  export PATH="$env_dir/venv/bin:$PATH"
fi

# --- Vendors' recorded API responses and descriptions (pinned PyPI sdists) ---
# The SDKs' own VCR cassettes: real responses the SaaS collectors must parse;
# and API descriptions that Prism serves.
sdists="$env_dir/sdists"
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

# --- npm peers (package-lock.json) -----------------------------------------
if [ -f tests/peers/package-lock.json ]; then
  say "npm test peers (tests/peers/package-lock.json)"
  if ! cmp -s tests/peers/package-lock.json tests/peers/node_modules/.installed-lock 2>/dev/null; then
    (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
    cp tests/peers/package-lock.json tests/peers/node_modules/.installed-lock
  fi
  export PATH="$root/tests/peers/node_modules/.bin:$PATH"
fi

# --- The static binary for the container test --------------------------------
say "static (musl) build for the container image test"
musl=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  rustup target add "$musl" || echo "cannot add the $musl target on this machine: the container test will fail and say so"
fi
if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  cargo build --target "$musl" --bin exhibit
fi

# --- The tests -------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --check

say "cargo test"
# One debug build serves the unit tests, the integration tests and a smoke
# run of the benchmarks (criterion runs each benchmark once under `cargo
# test`; the measurements themselves are `cargo bench`).
status=0
log="$env_dir/test-output.log"
: > "$log"
cargo test --lib --bins --tests --no-fail-fast 2>&1 | tee -a "$log" || status=$?
say "benchmarks, smoke run"
cargo test --bench '*' --no-fail-fast 2>&1 | tee -a "$log" || status=$?

say "fuzzing, a short run of each target (tests/fuzz/README.md)"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in config record bundle canonical; do
  # The toolchain is stable; RUSTC_BOOTSTRAP lets cargo fuzz pass its
  # sanitizer flags.
  if RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz -O "$target" -- \
      -max_total_time="${EXHIBIT_FUZZ_SECONDS:-15}" -rss_limit_mb=2048 > "$env_dir/fuzz-$target.log" 2>&1; then
    echo "test fuzz::$target ... ok ($(grep -o 'Done [0-9]* runs' "$env_dir/fuzz-$target.log"))"
    echo "test result: ok. 1 passed; 0 failed" >> "$log"
  else
    tail -n 30 "$env_dir/fuzz-$target.log"
    echo "test fuzz::$target ... FAILED (input saved in tests/fuzz/artifacts/$target/)"
    echo "test result: FAILED. 0 passed; 1 failed" >> "$log"
    status=1
  fi
done

# One closing line over every test binary.
passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
