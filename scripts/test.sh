#!/usr/bin/env bash
# Runs the whole test suite. Integration fixtures start their own redis-server, Celery worker and
# libvirtd; browser tests drive Debian's chromium. Screenshots land in test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
.venv/bin/python manage.py makemigrations --check --dry-run --settings vom.test_settings >/dev/null
exec .venv/bin/python -m pytest "$@"
