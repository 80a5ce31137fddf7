#!/usr/bin/env bash
# Installs what ContainerManager's build and tests need, when it is missing: the Docker client
# (the engine itself must already run), debootstrap for the images, nginx, the OpenSSH client,
# tmux, chromium with its WebDriver, wrk for the benchmarks, losetup and e2fsprogs for capped
# volumes, pip and venv for the images' Python wheels and the ToolBox test, cargo-deb for the Debian package, cargo-fuzz for the fuzz targets. Debian/Ubuntu (apt)
# only; elsewhere it says what is missing and stops.
set -euo pipefail

want=()
# System tools live in sbin, which a non-root PATH may lack.
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || want+=("$2"); }
need docker docker.io
need debootstrap debootstrap
need nginx nginx-light
need ssh openssh-client
need ssh-keygen openssh-client
need tmux tmux
need chromium chromium
need chromedriver chromium-driver
need wrk wrk
need curl curl
# The images' Python wheels are downloaded on the host (images/build.sh).
python3 -m pip --version >/dev/null 2>&1 || want+=(python3-pip)
# The ToolBox identity test installs the real ToolBox into a virtual environment.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || want+=(python3-venv)
# Size-capped data volumes: ext4 images on loop devices.
need losetup mount
need mkfs.ext4 e2fsprogs
need debugfs e2fsprogs

# The Debian package (scripts/package.sh) is made with cargo-deb, from crates.io (not apt). 3.8.0
# needs Rust 1.85 or newer.
if command -v cargo >/dev/null 2>&1 && ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb"
  cargo install cargo-deb --version 3.8.0 --locked
fi
# The fuzz targets (scripts/fuzz.sh) run with cargo-fuzz, also from crates.io.
if command -v cargo >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

if [ "${#want[@]}" -eq 0 ]; then
  exit 0
fi
# Unique package names, in order.
mapfile -t want < <(printf '%s\n' "${want[@]}" | awk '!seen[$0]++')
echo "installing: ${want[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install these yourself: ${want[*]}" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: not root and no sudo; install these yourself: ${want[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
