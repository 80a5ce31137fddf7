#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script and nothing else):
# installs missing tools, checks the Docker engine, builds the images (cached), then formatting,
# lints and every test against the real engine, nginx, ssh and chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools"
scripts/install-deps.sh

echo "== docker engine"
if ! docker info --format 'engine {{.ServerVersion}}' ; then
  echo "error: the Docker engine does not answer (is dockerd running, may this user use it?)" >&2
  exit 1
fi

echo "== images"
images/build.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# Container-starting tests bound themselves to two at a time (cm-testkit's Docker slots).
cargo test --workspace --locked
