"""Real parts for integration and browser tests: redis-server, Celery workers and beat, a libvirtd
with QEMU, and a "black hole" (a host that accepts connections and never answers).

Each is started here, on this machine, and stopped at the end of the session (or of the test, for
the parts fault tests kill and restart). Workers are started with the command lines ``make run``
uses (``vom.processes``) and share the test database file with the test process, so tests using
them need ``django_db(transaction=True)``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
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


class RedisServer:
    """A real redis-server on a port of its own, which a fault test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed (make test installs it)"
        self.server = server
        self.workdir = workdir
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def start(self) -> None:
        argv = [self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*argv, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_until(self._up, 10, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis.url
    redis.stop()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (a fault test may restart it)."""
    redis = RedisServer(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def process_env(redis: str, log_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a worker or beat of the tests: the test database, the test redis."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "vom.settings",
        "VOM_SQLITE_PATH": str(settings.DATABASES["default"]["NAME"]),
        "REDIS_URL": redis,
        "VOM_VAR_DIR": str(log_dir),
        "VOM_SHUTDOWN_TIMEOUT": "5",
        "SECRET_KEY": settings.SECRET_KEY,  # the same key decrypts provider credentials
        "VOM_TEST_NODE_DIRS": ",".join(settings.VOM_TEST_NODE_DIRS),  # tests write simulated hosts to /tmp
        # Simulated hosts are shared by the test process and its workers, as by make run's processes.
        "VOM_SIMULATOR_STATE_DIR": str(settings.VOM_SIMULATOR_STATE_DIR),
        **overrides,
    }
    env.pop("VOM_CELERY_EAGER", None)
    return env


class Processes:
    """Workers and beat a test starts, as ``make run`` starts them; all stopped at the end."""

    def __init__(self, redis: str, log_dir: Path) -> None:
        self.redis = redis
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        proc.log_path = log  # type: ignore[attr-defined] - tests read what the process did
        self.started.append(proc)
        return proc

    def worker(self, queue: str, *, concurrency: int = 2, **env: str) -> subprocess.Popen[bytes]:
        from vom.processes import worker_argv

        return self._start(
            f"worker-{queue}", worker_argv(queue, concurrency), process_env(self.redis, self.log_dir, **env)
        )

    def beat(self, **env: str) -> subprocess.Popen[bytes]:
        from vom.processes import beat_argv

        return self._start("beat", beat_argv(self.log_dir), process_env(self.redis, self.log_dir, **env))

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def processes(own_redis, tmp_path) -> Iterator[Processes]:
    """Start workers and beat against this test's own redis; the test's Celery app sends there too."""
    from vom.celery import app

    before = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.update(broker_url=own_redis.url, task_always_eager=False)
    _reset_broker_connections(app)
    procs = Processes(own_redis.url, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        app.conf.update(broker_url=before[0], task_always_eager=before[1])
        _reset_broker_connections(app)
        for proc in procs.started:
            print(f"{proc.args[3] if len(proc.args) > 3 else proc.args[0]} log: {proc.log_path}")  # type: ignore[attr-defined]


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # kept open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _reset_broker_connections(app) -> None:
    """Drop pooled broker connections so the next send uses the broker URL just configured.

    kombu also keeps pools in registries by the broker's URL: closed here, they would be handed to
    the next test on that broker ("Acquire on closed pool"), so its registries are cleared too.
    """
    from kombu import pools

    pools.reset()
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
    from vom.processes import worker_argv

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = process_env(redis_url, tmp_path_factory.mktemp("worker-var"))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            worker_argv("discovery,orchestration,provisioning", 4, name="all"),
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


@pytest.fixture
def worker(celery_worker_process, transactional_db) -> Iterator[subprocess.Popen]:
    """The session's worker, for one test: at its end the test waits for the work it queued to end.

    A job still running when a test ends would go on writing rows into the next test's database
    (or fail on foreign keys the teardown removed): the test fails instead, saying which job.
    """
    yield celery_worker_process
    from vom.jobs.models import ACTIVE, Job

    def quiet() -> bool:
        return not Job.objects.filter(status__in=ACTIVE).exists()

    try:
        wait_until(quiet, 60, interval=0.3, what="the jobs this test queued to end")
    except AssertionError:
        busy = list(Job.objects.filter(status__in=ACTIVE).values_list("pk", "kind", "status"))
        raise AssertionError(f"jobs still active when the test ended: {busy}") from None


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
