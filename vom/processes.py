"""The console's processes, defined once: the web server, celery beat, and one worker pool per queue.

Discovery, VM operations and provisioning each have a worker process of their own with its own
concurrency, so slow discoveries (hosts that answer late or not at all) can never take the slots
operations need, and a full copy of a large image never holds up a reboot.

``python -m vom.processes`` writes the supervisord configuration under ``VOM_VAR_DIR`` and runs
supervisord in the foreground (``make run``): it restarts a process that dies, and Ctrl-C stops
them all. The integration tests start their workers from :func:`worker_argv`, as ``make run`` does;
docs/DEPLOYMENT.md has the systemd units for production, built from the same command lines.
"""

from __future__ import annotations

import configparser
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pool:
    queue: str
    concurrency: int
    # Seconds a warm shutdown may take before the process is killed (a step in progress finishes).
    stop_wait: int


def pools() -> list[Pool]:
    """The worker pools, one per queue; concurrency from ``VOM_<QUEUE>_CONCURRENCY``."""

    def env(name: str, default: int) -> int:
        return int(os.environ.get(f"VOM_{name.upper()}_CONCURRENCY", default))

    return [
        Pool("discovery", env("discovery", 4), stop_wait=30),
        Pool("orchestration", env("orchestration", 4), stop_wait=30),
        # A step of a provisioning request may be a full copy of a large image: give it time.
        Pool("provisioning", env("provisioning", 2), stop_wait=300),
    ]


def worker_argv(queue: str, concurrency: int, *, name: str = "", python: str = sys.executable) -> list[str]:
    """The command line of the worker pool of ``queue`` (several: comma-separated, then give a ``name``)."""
    return [
        python,
        "-m",
        "celery",
        "-A",
        "vom",
        "worker",
        "-Q",
        queue,
        "-n",
        f"{name or queue}@%h",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "-l",
        "info",
    ]


def beat_argv(var_dir: Path, *, python: str = sys.executable) -> list[str]:
    return [
        python,
        "-m",
        "celery",
        "-A",
        "vom",
        "beat",
        "-l",
        "info",
        "--schedule",
        str(var_dir / "celerybeat-schedule"),
    ]


def web_argv(bind: str, var_dir: Path) -> list[str]:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    return [
        gunicorn,
        "vom.wsgi:application",
        "--bind",
        bind,
        "--workers",
        "2",
        "--threads",
        "4",
        "--access-logfile",
        str(var_dir / "log" / "access.log"),
        "--control-socket",
        str(var_dir / "gunicorn.ctl"),
    ]


def _command(argv: list[str]) -> str:
    """A supervisord command line: its own quoting; ``%`` doubled (supervisord expands ``%(x)s``)."""
    import shlex

    return " ".join(shlex.quote(arg) for arg in argv).replace("%", "%%")


def supervisord_conf(*, var_dir: Path, bind: str, redis_port: int | None, rhev_port: int | None) -> str:
    """The supervisord configuration of ``make run``; ``redis_port``/``rhev_port`` None: not started here."""
    log = var_dir / "log"
    conf = configparser.RawConfigParser()
    conf["supervisord"] = {
        "nodaemon": "true",
        "user": os.environ.get("USER") or "root",
        "logfile": str(log / "supervisord.log"),
        "pidfile": str(var_dir / "supervisord.pid"),
        "childlogdir": str(log),
        "directory": str(ROOT),
    }
    conf["unix_http_server"] = {"file": str(var_dir / "supervisor.sock"), "chmod": "0700"}
    conf["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    conf["supervisorctl"] = {"serverurl": f"unix://{var_dir / 'supervisor.sock'}"}

    def program(name: str, argv: list[str], *, priority: int, stop_wait: int = 30, to_terminal: bool = False) -> None:
        section = {
            "command": _command(argv),
            "directory": str(ROOT),
            "priority": str(priority),
            "autorestart": "true",
            "startsecs": "3",
            "startretries": "10",
            "stopwaitsecs": str(stop_wait),
            # The warm shutdown is asked of the main process only; what is left after stopwaitsecs
            # (pool threads, gunicorn workers) is killed with its group.
            "stopasgroup": "false",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": "/dev/stdout" if to_terminal else str(log / f"{name}.log"),
        }
        if to_terminal:
            section["stdout_logfile_maxbytes"] = "0"
        conf[f"program:{name}"] = section

    if redis_port is not None:
        redis = shutil.which("redis-server") or "redis-server"
        argv = [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        program("redis", [*argv, "--dir", str(var_dir)], priority=10)
    if rhev_port is not None:
        simulator = [sys.executable, "-m", "vom.simulators.rhev", "--host", "127.0.0.1", "--port", str(rhev_port)]
        program("rhevsim", simulator, priority=20)
    for pool in pools():
        program(
            f"worker-{pool.queue}", worker_argv(pool.queue, pool.concurrency), priority=100, stop_wait=pool.stop_wait
        )
    program("beat", beat_argv(var_dir), priority=150)
    program("web", web_argv(bind, var_dir), priority=200, to_terminal=True)
    out = io.StringIO()
    conf.write(out)
    return out.getvalue()


def main() -> None:
    """Write the configuration and become supervisord (``scripts/run.sh`` runs this last)."""
    var_dir = Path(os.environ.get("VOM_VAR_DIR", ROOT / "var"))
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    redis_port = os.environ.get("VOM_RUN_REDIS_PORT")
    rhev_port = os.environ.get("VOM_RUN_RHEV_PORT")
    path = var_dir / "supervisord.conf"
    path.write_text(
        supervisord_conf(
            var_dir=var_dir,
            bind=os.environ.get("VOM_BIND", "127.0.0.1:8000"),
            redis_port=int(redis_port) if redis_port else None,
            rhev_port=int(rhev_port) if rhev_port else None,
        )
    )
    supervisord = str(Path(sys.executable).with_name("supervisord"))
    os.execv(supervisord, [supervisord, "-c", str(path)])  # noqa: S606 - our own argv, no shell


if __name__ == "__main__":
    main()
