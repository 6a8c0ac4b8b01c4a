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

say() { printf '\n== %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v openssl >/dev/null || need_apt+=(openssl)
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
  if [ ! -x "$env_dir/venv/bin/python" ]; then
    python3 -m venv "$env_dir/venv"
  fi
  if ! cmp -s tests/requirements.txt "$env_dir/venv/.installed" 2>/dev/null; then
    "$env_dir/venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$env_dir/venv/.installed"
  fi
  export PATH="$env_dir/venv/bin:$PATH"
fi

# --- Vendors' recorded API responses (pinned PyPI sdists) -------------------
# The SDKs' own VCR cassettes: real responses the SaaS collectors must parse.
sdists="$env_dir/sdists"
fetch_sdist() { # NAME VERSION [DIRECTORY NAME, when the sdist normalises it]
  local dir="${3:-$1}-$2"
  if [ ! -d "$sdists/$dir" ]; then
    say "sdist $1==$2 (recorded API responses)"
    mkdir -p "$sdists"
    python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: "$1==$2" -d "$sdists"
    tar -xzf "$sdists/$dir.tar.gz" -C "$sdists"
  fi
}
fetch_sdist okta 3.4.6
fetch_sdist datadog-api-client 2.62.0 datadog_api_client

# --- npm peers (package-lock.json) -----------------------------------------
if [ -f tests/peers/package-lock.json ]; then
  say "npm test peers (tests/peers/package-lock.json)"
  if ! cmp -s tests/peers/package-lock.json tests/peers/node_modules/.package-lock.json 2>/dev/null; then
    (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
  fi
  export PATH="$root/tests/peers/node_modules/.bin:$PATH"
fi

# --- The tests -------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --check

say "cargo test"
# One debug build serves the unit tests, the integration tests and the
# benchmarks' smoke run (benches are compiled and run once in test mode).
cargo test --all-targets --no-fail-fast -- --test-threads="${EXHIBIT_TEST_THREADS:-4}"
