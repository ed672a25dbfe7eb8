"""``make run``'s processes under supervisord (``python -m vom.processes``): a worker that dies is
restarted, the web server answers, and stopping the supervisor stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.realparts import REPO, process_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(conf) -> dict[str, tuple[str, int | None]]:
    ctl = str(os.path.join(os.path.dirname(sys.executable), "supervisorctl"))
    out = subprocess.run([ctl, "-c", str(conf), "status"], capture_output=True, text=True, check=False).stdout
    found = {}
    for line in out.splitlines():
        match = re.match(r"(\S+)\s+(\S+)(?:\s+pid (\d+))?", line)
        if match:
            found[match[1]] = (match[2], int(match[3]) if match[3] else None)
    return found


def _login_page(port: int) -> int | None:
    """The status of the login page, None while the web server does not answer yet."""
    try:
        return int(urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2).status)
    except OSError:  # refused, reset or timed out: not up yet
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_supervisor_restarts_a_dead_worker_and_stops_everything(tmp_path):
    redis_port, web_port = _port(), _port()
    env = process_env(
        f"redis://127.0.0.1:{redis_port}/0",
        tmp_path,
        VOM_RUN_REDIS_PORT=str(redis_port),
        VOM_BIND=f"127.0.0.1:{web_port}",
        VOM_ORCHESTRATION_CONCURRENCY="1",
        VOM_DISCOVERY_CONCURRENCY="1",
        VOM_PROVISIONING_CONCURRENCY="1",
    )
    env.pop("VOM_RUN_RHEV_PORT", None)
    log = open(tmp_path / "supervisord.out", "wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "vom.processes"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    conf = tmp_path / "supervisord.conf"
    expected = {"redis", "worker-discovery", "worker-orchestration", "worker-provisioning", "beat", "web"}
    try:
        wait_until(
            lambda: conf.exists() and {n for n, (state, _) in _status(conf).items() if state == "RUNNING"} == expected,
            60,
            interval=0.5,
            what="every process to run",
        )
        page = wait_until(lambda: _login_page(web_port), 30, what="the web server")
        assert page == 200
        pids = {name: pid for name, (_, pid) in _status(conf).items()}
        os.kill(pids["worker-orchestration"], signal.SIGKILL)
        wait_until(
            lambda: (
                _status(conf)["worker-orchestration"][0] == "RUNNING"
                and _status(conf)["worker-orchestration"][1] != pids["worker-orchestration"]
            ),
            60,
            interval=0.5,
            what="the killed worker to be restarted",
        )
        assert all(_alive(pid) for name, pid in pids.items() if name != "worker-orchestration" and pid)
        running = [pid for _, pid in _status(conf).values() if pid]
    finally:
        supervisor.send_signal(signal.SIGINT)  # what Ctrl-C does
        supervisor.wait(90)
        log.close()
    assert supervisor.returncode == 0
    assert len(running) == len(expected)
    assert not [pid for pid in running if _alive(pid)], "processes left behind after the supervisor stopped"
