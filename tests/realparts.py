"""Real parts for integration and browser tests: a redis-server, a Celery worker, a libvirtd with QEMU.

Each is started here, on this machine, and stopped at the end of the session. The worker shares the
test database file with the test process, so tests using it need ``django_db(transaction=True)``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from django.conf import settings
from django.db import connections

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (make test installs it)"
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, 10, what="redis-server")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def _reset_broker_connections(app) -> None:
    """Drop pooled broker connections so the next send uses the broker URL just configured."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def celery_worker_process(
    redis_url, django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[subprocess.Popen]:
    """A real `celery worker` on all three queues, using the test database file and the test redis."""
    from vom.celery import app

    db_path = settings.DATABASES["default"]["NAME"]
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vom.settings",
        "VOM_SQLITE_PATH": str(db_path),
        "REDIS_URL": redis_url,
        "VOM_VAR_DIR": str(tmp_path_factory.mktemp("worker-var")),
        "VOM_SHUTDOWN_TIMEOUT": "5",
        "SECRET_KEY": settings.SECRET_KEY,  # the same key decrypts provider credentials
        "VOM_TEST_NODE_DIRS": ",".join(settings.VOM_TEST_NODE_DIRS),  # tests write simulated hosts to /tmp
    }
    env.pop("VOM_CELERY_EAGER", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "vom",
                "worker",
                "-Q",
                "discovery,orchestration,provisioning",
                "--pool",
                "threads",  # one process, as `make run` uses: test:// hosts keep their state in it
                "--concurrency",
                "4",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app.conf.update(broker_url=redis_url, task_always_eager=False)
    _reset_broker_connections(app)
    try:
        wait_until(lambda: app.control.ping(timeout=0.5), 60, interval=0.5, what="the celery worker")
        proc.log_path = log  # type: ignore[attr-defined] - tests read what the worker did
        yield proc
    finally:
        app.conf.update(task_always_eager=True)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"celery worker log: {log}")


@pytest.fixture(scope="session")
def libvirtd_uri() -> str:
    """qemu:///system of a real libvirtd (started here as root if not running)."""
    uri = "qemu:///system"
    libvirt.registerErrorHandler(lambda *a: None, None)

    def reachable() -> bool:
        try:
            libvirt.open(uri).close()
            return True
        except libvirt.libvirtError:
            return False

    if not reachable():
        assert os.geteuid() == 0, "starting libvirtd needs root"
        for daemon in ("virtlogd", "libvirtd"):
            path = shutil.which(daemon) or f"/usr/sbin/{daemon}"
            subprocess.run([path, "-d"], check=True)
        wait_until(reachable, 30, what="libvirtd")
    return uri


@pytest.fixture
def close_db_after():
    yield
    for conn in connections.all():
        conn.close()
