#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a throw-away PostgreSQL server started here (as the
# postgres user, on a free port, in a temporary directory) and stopped afterwards.
# Usage: scripts/with-postgres.sh COMMAND [ARGS...]
# The tests run it without fsync (speed); VOM_PG_DURABLE=1 (the benchmark) keeps PostgreSQL's defaults.
set -euo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pgbin" ]; then echo "PostgreSQL is not installed (make test installs it)" >&2; exit 1; fi
if [ "$(id -u)" != 0 ] && [ "$(id -un)" != postgres ]; then
  echo "starting a throw-away PostgreSQL needs root (to run it as the postgres user)" >&2; exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d /tmp/vom-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() { as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap stop EXIT
fast="-c fsync=off -c full_page_writes=off"
[ "${VOM_PG_DURABLE:-0}" = 1 ] && fast=
as_pg "$pgbin/initdb" -D "$dir/data" -A trust -U vom >/dev/null
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $fast" start >/dev/null
export DATABASE_URL="postgres://vom@127.0.0.1:$port/postgres"
"$@"
