#!/usr/bin/env bash
# lock-python.sh - regenerate python-requirements.txt: installs TOP_LEVEL into a throw-away
# virtual environment on this host (Python 3.11, like the images' Debian bookworm) and writes
# every installed package with its exact version. Run it when changing a version below; build.sh
# then rebuilds the images with the new lock.
set -euo pipefail

readonly TOP_LEVEL=(toolboxv2==0.1.28 streamlit==1.67.0)
IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly IMAGES_DIR

python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "lock-python.sh: needs Python 3.11 (the images' version); set PYTHON" >&2; exit 1; }
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "${TOP_LEVEL[@]}"
{
    sed -n '1,/^# image without network/p' "${IMAGES_DIR}/python-requirements.txt"
    "$venv/bin/pip" freeze --exclude-editable | LC_ALL=C sort -f
} >"${IMAGES_DIR}/python-requirements.txt.new"
mv "${IMAGES_DIR}/python-requirements.txt.new" "${IMAGES_DIR}/python-requirements.txt"
echo "wrote ${IMAGES_DIR}/python-requirements.txt"
