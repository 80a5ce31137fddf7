#!/usr/bin/env bash
# The main job: build ContainerManager and its images, then create a demo container with `cm` and
# list what runs. Needs a running Docker engine. Re-running it is safe: the demo container is kept
# (a second create of the same user and type is refused, so it is only created when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
images/build.sh
cargo build --release --locked --bins
cm=target/release/cm

echo "== cm health"
"$cm" health
if ! "$cm" get demo_cli_v4 >/dev/null 2>&1; then
  echo "== cm create demo cli_v4"
  "$cm" create demo cli_v4
fi
echo "== cm list --all"
"$cm" list --all
