"""Fixtures of the integration tests that use the session's real Celery worker."""

from __future__ import annotations

import pytest

from tests.jobtools import open_broker_connections
from tests.realparts import wait_until


@pytest.fixture
def worker(celery_worker_process):
    """The session's real worker, with this process sending it the jobs (the fixture that starts it
    stops the Celery app running tasks eagerly)."""
    from vom.celery import app

    assert not app.conf.task_always_eager
    open_broker_connections()
    return celery_worker_process


@pytest.fixture
def fresh_worker(processes):
    """A worker of this test alone, on every queue, with this process sending it the jobs.

    For tests whose jobs make jobs of their own in the worker (a provisioning request discovers its
    host at its end): the session's worker keeps what it cached of the database between tests, such as
    the content types' ids, which a database flushed by another test has since given out anew.
    """
    from vom.celery import app

    assert not app.conf.task_always_eager
    open_broker_connections()
    proc = processes.worker("discovery,orchestration,provisioning", concurrency=4)
    wait_until(lambda: app.control.ping(timeout=0.5), 60, interval=0.5, what="the worker")
    return proc


def received(worker) -> int:
    """How many job steps the worker has received so far (its log has a line per message)."""
    return worker.log_path.read_text().count("Task vom.jobs.run_job[")


def ran_on_the_worker(worker, before: int) -> None:
    """The worker received job steps since ``before``: the work did not run in this process."""
    wait_until(lambda: received(worker) > before, 10, what="the worker's log to show the job's steps")
