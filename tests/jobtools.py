"""Helpers of the apps' tests for work that runs as jobs (``vom.jobs``): what is sent, and dead workers.

Fixtures here are imported by the conftest modules that use them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from vom.jobs import lifecycle
from vom.jobs.models import Job


@pytest.fixture
def sent(monkeypatch):
    """What the job core hands to the queue, as (job id, step, queue), caught at its one sending function
    (``vom.jobs.broker.send``) instead of being sent or run here."""
    from vom.jobs import broker

    caught: list[tuple[int, int, str]] = []
    monkeypatch.setattr(
        broker, "send", lambda job_id, step, *, queue, countdown=0: caught.append((job_id, step, queue))
    )
    return caught


def as_if_its_worker_died(job: Job, *, seconds_ago: float | None = None) -> Job:
    """Claim the job's current step, then leave it silent for longer than the stale limit (its worker
    was killed while it held the job). Returns the job as that worker held it."""
    job.refresh_from_db()
    held = lifecycle.claim(job.pk, job.step)
    assert held is not None, f"job #{job.pk} could not be claimed"
    silent = seconds_ago if seconds_ago is not None else settings.VOM_JOB_STALE_AFTER + 5
    long_ago = timezone.now() - timedelta(seconds=silent)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago)
    held.heartbeat = long_ago
    return held


def jobs_of(kind: str) -> list[Job]:
    return list(Job.objects.filter(kind=kind).order_by("pk"))


def open_broker_connections() -> None:
    """Forget every pooled broker connection and producer, closed ones included (before a test that
    sends: an earlier test may have pointed the Celery app at another broker)."""
    from tests.realparts import _reset_broker_connections
    from vom.celery import app

    _reset_broker_connections(app)
