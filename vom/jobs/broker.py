"""Handing job steps to Celery. The only place that sends ``run_job`` messages.

A broker that is down makes the send fail at once with :class:`QueueUnavailable` (the web request
answers 503, the GUI says so, the command line exits non-zero) instead of hanging or pretending.

Eager mode (tests, ``CELERY_TASK_ALWAYS_EAGER``) and the command line's ``--now`` run steps in this
process instead: :func:`vom.jobs.runner.run_now` loops over the steps of a job, sleeping between
them, so a step that asks to be called again later never recurses.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The task queue could not take the work: nothing was queued."""

    def __init__(self, cause: BaseException | str) -> None:
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}".rstrip(": ")
        super().__init__(f"the task queue is unreachable, nothing was queued ({reason}); try again once it is back")


# Fail at once rather than retrying while a user waits (measured: 0.07 s against a closed port; the
# broker's socket timeouts in the settings bound a broker that accepts and never answers).
NO_RETRY = {"max_retries": 0}

# Jobs being run in this thread by run_now: a step they send is taken by that loop, not recursed into.
_local = threading.local()


def running_here() -> set[int]:
    jobs: set[int] | None = getattr(_local, "jobs", None)
    if jobs is None:
        jobs = _local.jobs = set()
    return jobs


def send(job_id: int, step: int, *, queue: str, countdown: float = 0) -> None:
    """Queue ``run_job(job_id, step)`` on ``queue`` (after ``countdown`` seconds)."""
    if job_id in running_here():
        return  # run_now in this thread takes the next step itself
    if settings.CELERY_TASK_ALWAYS_EAGER:
        from vom.jobs.runner import run_now

        run_now(job_id)
        return
    from vom.jobs.tasks import run_job

    try:
        run_job.apply_async((job_id, step), queue=queue, countdown=max(0.0, countdown), retry_policy=NO_RETRY)
    except (KombuError, OSError) as exc:
        logger.error("could not queue job #%s step %s on %s: %s", job_id, step, queue, exc)
        raise QueueUnavailable(exc) from exc
