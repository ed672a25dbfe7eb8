#!/usr/bin/env bash
# Starts the console on its embedded default: SQLite under var/, a local redis-server, the simulated
# RHEV manager of the demo (port $VOM_RHEV_PORT, default 8443; VOM_DEMO_RHEV=0: none), a Celery worker,
# celery beat and the web server on 127.0.0.1:8000. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export VOM_VAR_DIR=${VOM_VAR_DIR:-$PWD/var}
mkdir -p "$VOM_VAR_DIR/log"
PY=.venv/bin/python
BIND=${VOM_BIND:-127.0.0.1:8000}
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -z "${REDIS_URL:-}" ]; then
  port=${VOM_REDIS_PORT:-6379}
  if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$VOM_VAR_DIR" \
      --logfile "$VOM_VAR_DIR/log/redis.log" &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export REDIS_URL="redis://127.0.0.1:$port/0"
fi

# The demo's RHEV manager: the oVirt REST API v4 simulator (2 datacenters, 3 clusters, 6 hosts, 40 VMs).
if [ -z "${VOM_DEMO_RHEV_URL:-}" ] && [ "${VOM_DEMO_RHEV:-1}" != 0 ]; then
  rhev_port=${VOM_RHEV_PORT:-8443}
  $PY -m vom.simulators.rhev --host 127.0.0.1 --port "$rhev_port" >"$VOM_VAR_DIR/log/rhevsim.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$rhev_port") 2>/dev/null; then
      export VOM_DEMO_RHEV_URL="http://127.0.0.1:$rhev_port/ovirt-engine/api"
      break
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "${VOM_DEMO_RHEV_URL:-}" ] || echo "the RHEV simulator did not start (see $VOM_VAR_DIR/log/rhevsim.log)" >&2
fi

$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
$PY manage.py vom_bootstrap_admin
$PY manage.py vom_load_demo
$PY manage.py vom_demo_golden_images

.venv/bin/celery -A vom worker -Q discovery,orchestration,provisioning --pool threads --concurrency 4 -l info \
  --logfile "$VOM_VAR_DIR/log/worker.log" &
pids+=($!)
.venv/bin/celery -A vom beat -l info --logfile "$VOM_VAR_DIR/log/beat.log" \
  --schedule "$VOM_VAR_DIR/celerybeat-schedule" &
pids+=($!)

echo
echo "vom is starting on http://$BIND/  (logs in $VOM_VAR_DIR/log, Ctrl-C to stop)"
echo
.venv/bin/gunicorn vom.wsgi:application --bind "$BIND" --workers 2 --threads 4 \
  --access-logfile "$VOM_VAR_DIR/log/access.log" &
pids+=($!)
wait -n "${pids[@]}"
