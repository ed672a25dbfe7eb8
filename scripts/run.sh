#!/usr/bin/env bash
# Starts the console on its embedded default: SQLite under var/, a local redis-server, the simulated
# RHEV manager of the demo (port $VOM_RHEV_PORT, default 8443; VOM_DEMO_RHEV=0: none), one Celery
# worker pool per queue (discovery, orchestration, provisioning), celery beat and the web server on
# 127.0.0.1:8000 — all kept up by supervisord (vom/processes.py): a process that dies is restarted.
# Ctrl-C stops everything it started. `.venv/bin/supervisorctl -c var/supervisord.conf status` shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
export VOM_VAR_DIR=${VOM_VAR_DIR:-$PWD/var}
mkdir -p "$VOM_VAR_DIR/log"
PY=.venv/bin/python
export VOM_BIND=${VOM_BIND:-127.0.0.1:8000}

if [ -z "${REDIS_URL:-}" ]; then
  port=${VOM_REDIS_PORT:-6379}
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    export VOM_RUN_REDIS_PORT=$port  # supervisord starts (and restarts) it
  fi
  export REDIS_URL="redis://127.0.0.1:$port/0"
fi

# The demo's RHEV manager: the oVirt REST API v4 simulator (2 datacenters, 3 clusters, 6 hosts, 40 VMs).
# It runs here once while the demo is loaded, then under supervisord (the same seeded estate).
sim=
stop_sim() { if [ -n "$sim" ]; then kill "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; sim=; fi; }
trap stop_sim EXIT
if [ -z "${VOM_DEMO_RHEV_URL:-}" ] && [ "${VOM_DEMO_RHEV:-1}" != 0 ]; then
  rhev_port=${VOM_RHEV_PORT:-8443}
  $PY -m vom.simulators.rhev --host 127.0.0.1 --port "$rhev_port" >"$VOM_VAR_DIR/log/rhevsim-setup.log" 2>&1 &
  sim=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$rhev_port") 2>/dev/null; then
      export VOM_DEMO_RHEV_URL="http://127.0.0.1:$rhev_port/ovirt-engine/api" VOM_RUN_RHEV_PORT=$rhev_port
      break
    fi
    kill -0 "$sim" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "${VOM_DEMO_RHEV_URL:-}" ] || echo "the RHEV simulator did not start (see $VOM_VAR_DIR/log/rhevsim-setup.log)" >&2
fi

$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
$PY manage.py vom_bootstrap_admin
$PY manage.py vom_load_demo
$PY manage.py vom_demo_golden_images
stop_sim
trap - EXIT

echo
echo "vom is starting on http://$VOM_BIND/  (logs in $VOM_VAR_DIR/log, Ctrl-C to stop)"
echo
exec $PY -m vom.processes
