#!/usr/bin/env bash
# The main job: build ContainerManager and its images, set up nginx for the containers' routes
# (`cm nginx setup`: http://127.0.0.1:8080/container/{user_id}/{type}/, owner-checked by cm-api),
# then serve the HTTP API (`cm-api`) in the foreground on CM_LISTEN (default 127.0.0.1:8123), over
# the embedded SQLite database (CM_DB, or the default path). Needs a running Docker engine.
# Ctrl-C (or SIGTERM) stops the server; nginx keeps running.
#
# Without CONTAINER_ADMIN_KEY, the first start generates an admin key and writes it to the 0600 file
# `admin-key` beside the database (the path is printed; on a terminal the key is shown too)
# (only its hash is stored); later starts reuse it. Rotate it with
#   curl -X POST -H "Authorization: Bearer $KEY" http://127.0.0.1:8123/api/ContainerManager/rotate_admin_key
# or set CONTAINER_ADMIN_KEY (at least 16 characters; `cm generate-key` makes one).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/ensure-docker.sh
images/build.sh
cargo build --release --locked --bins

export CM_LISTEN="${CM_LISTEN:-127.0.0.1:8123}"
# nginx: one static configuration (conf.d/containermanager.conf) that asks cm-api per request who
# may reach which container; started here when it is not running. Containers are then served at
# http://127.0.0.1:8080/container/{user_id}/{type}/ (`[nginx] listen` in CM_CONFIG changes it).
echo "== nginx"
if ! target/release/cm nginx setup; then
  echo "warning: nginx is not set up (see above); containers stay reachable on their 127.0.0.1 ports only"
fi
echo "== cm health"
target/release/cm health || echo "warning: the engine is not healthy; cm-api serves anyway and docker_health says why"
echo "== cm-api on http://$CM_LISTEN (docs: docs/api.md, /api/openapi.json)"
echo "   try: curl -H \"Authorization: Bearer \$KEY\" http://$CM_LISTEN/api/ContainerManager/list_containers"
exec target/release/cm-api
