#!/usr/bin/env bash
# The benchmark: builds the release binaries, then runs cm-bench, which measures ContainerManager
# against the raw Docker engine doing the same work, side by side and interleaved in one run, and
# writes docs/benchmarks.md (tables, method, discussion) and docs/benchmarks.json (raw samples).
#
#   scripts/bench.sh            # the full run (about 30 minutes on 2 cores, 9 of them the Swarm
#                               # scenario): what the docs report
#   scripts/bench.sh --quick    # a trial run: few pairs, 10 and 50 containers, short load runs
#
# Further arguments go to cm-bench: --only create,concurrency,routes,scale,swarm (the sections it does not
# re-run are carried over from DIR/benchmarks.json, each marked with the run it comes from; the
# route check latency is part of scale); --max-containers N; --out DIR (default docs).
# Needs a running Docker engine; installs nginx-light and wrk when missing and builds the images
# when missing. The swarm scenario holds the machine-wide engine lock exclusively while it runs
# a 3-node swarm (it waits for Docker tests to finish, and they wait for it). Run it on an
# otherwise idle machine: every figure is a ratio against the engine in the same run, but a busy
# machine still widens the spread.
# Everything it creates carries the label cm.bench=<run id> and is removed at the end (also on Ctrl-C or SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/ensure-docker.sh
images/build.sh

api=()
if [ -f crates/cm-api/Cargo.toml ] \
  && cargo build --release --locked -p cm-cli -p cm-api -p cm-bench; then
  :
else
  # Never measure a stale cm-api binary left in target/ by an earlier build.
  echo "warning: cm-api is missing or does not build; benchmarking without the API" >&2
  api=(--no-api)
  cargo build --release --locked -p cm-cli -p cm-bench
fi

echo "== load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
# Where cargo put the binaries (CARGO_TARGET_DIR, else target/).
release="${CARGO_TARGET_DIR:-target}/release"
bin_dir=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  bin_dir=(--bin-dir "$release")
fi
exec "$release/cm-bench" "${bin_dir[@]}" "${api[@]}" "$@"
