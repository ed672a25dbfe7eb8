"""Handing job steps to Celery. The only place that sends ``run_job`` messages.

A broker that is down makes the send fail at once with :class:`QueueUnavailable` (the web request
answers 503, the GUI says so, the command line exits non-zero) instead of hanging or pretending.

Eager mode (tests, ``CELERY_TASK_ALWAYS_EAGER``) runs the task in this process, and the task then runs
the whole job (:func:`vom.jobs.runner.run_now`, as the command line's ``--now`` does): it loops over
the steps, sleeping between them, and a step it sends while it runs is left to that loop
(:func:`running_here`), so a step that asks to be called again later never recurses.
"""

from __future__ import annotations

import logging
import threading

from kombu.exceptions import KombuError

from vom.celery import app

logger = logging.getLogger(__name__)
RUN_JOB = "vom.jobs.run_job"


class QueueUnavailable(Exception):
    """The task queue could not take the work: nothing was queued."""

    def __init__(self, cause: BaseException | str) -> None:
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}".rstrip(": ")
        super().__init__(f"the task queue is unreachable, nothing was queued ({reason}); try again once it is back")


# Fail at once rather than retrying while a user waits: one immediate retry only, so a pooled
# connection that died with a broker restart is replaced (measured: ~0.1 s against a closed port;
# the broker's socket timeouts in the settings bound a broker that accepts and never answers).
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}

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
    run_job = app.tasks[RUN_JOB]  # by name: this module imports neither the tasks nor the runner
    try:
        run_job.apply_async((job_id, step), queue=queue, countdown=max(0.0, countdown), retry_policy=PUBLISH_RETRY)
    except (KombuError, OSError) as exc:
        logger.error("could not queue job #%s step %s on %s: %s", job_id, step, queue, exc)
        raise QueueUnavailable(exc) from exc
