#!/usr/bin/env bash
# Makes sure the Docker engine answers. When it is installed but not running and we are root (a
# machine where nothing supervises dockerd), it starts it detached and waits for it. Otherwise it
# says what is wrong and fails: the tests never skip a missing engine under CI.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null; then
  echo "the Docker engine is not running: starting dockerd (log: /var/log/dockerd.log)"
  setsid nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      exit 0
    fi
    sleep 1
  done
fi
echo "error: the Docker engine does not answer (is dockerd running, may this user use it?)" >&2
exit 1
