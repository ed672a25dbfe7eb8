#!/usr/bin/env bash
# Runs the whole test suite:
#  1. everything on the embedded default (SQLite): unit, API, GUI, integration (real redis-server,
#     Celery worker, libvirtd with QEMU) and browser tests (Debian's chromium; screenshots in
#     test-artifacts/);
#  2. the database-facing tests again on a throw-away PostgreSQL server (skipped, with a note, when
#     PostgreSQL cannot be started here, e.g. not root).
# Arguments are passed to pytest and then only the first pass runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
.venv/bin/python manage.py makemigrations --check --dry-run --settings vom.test_settings >/dev/null
if [ $# -gt 0 ]; then exec .venv/bin/python -m pytest "$@"; fi
.venv/bin/python -m pytest
if [ "$(id -u)" = 0 ] && ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  echo "--- the same tests on PostgreSQL (integration and browser tests share SQLite with their worker: not repeated)"
  ./scripts/with-postgres.sh .venv/bin/python -m pytest -q -m "not integration and not browser" -p no:cacheprovider
else
  echo "--- PostgreSQL pass skipped: needs root and Debian's postgresql package"
fi
