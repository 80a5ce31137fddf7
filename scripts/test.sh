#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script and nothing else):
# installs missing tools, checks the Docker engine, builds the images (cached), then formatting,
# lints and every test against the real engine, nginx, ssh and chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools"
scripts/install-deps.sh

echo "== docker engine"
scripts/ensure-docker.sh
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}'

echo "== images"
images/build.sh

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
# Container-starting tests bound themselves to two at a time (cm-testkit's Docker slots).
cargo test --workspace --locked

echo "== fuzz (20 s per target; scripts/fuzz.sh 300 for a longer hunt)"
scripts/fuzz.sh 20
