"""Running one step of a job: claim it, call its kind's executor, record what the step came to.

``JobContext``, what the executor gets, lives in ``vom.jobs.context``.

Called by the Celery task (``vom.jobs.tasks.run_job``) with the job and step of its message, and by
:func:`run_now` to run a whole job in this process (the command line's ``--now``, eager tests).
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from vom.jobs import broker, heartbeat, lifecycle
from vom.jobs.context import JobContext
from vom.jobs.kinds import JobKind, kind_of
from vom.jobs.models import Job, JobLogEntry
from vom.jobs.outcomes import Cancelled, Done, Failed, JobFailed, Outcome, Wait

logger = logging.getLogger(__name__)
S = Job.Status
Level = JobLogEntry.Level


def run_step(job_id: int, step: int) -> Job | None:
    """Claim ``step`` of the job and run it; None when it was not this step's turn (a redelivery)."""
    job = lifecycle.claim(job_id, step)
    if job is None:
        logger.info("job #%s step %s: already taken or no longer due; nothing to do", job_id, step)
        return None
    try:
        kind = kind_of(job.kind)
    except LookupError as exc:
        lifecycle.finish(job, status=S.FAILED, only_if=lifecycle.held_by_me(job), error=str(exc))
        return job
    with heartbeat.holding(job.claim):
        if kind.cancel_between_steps and job.cancel_requested is not None:  # as read with the claim
            who = JobContext(job).cancelled_by()
            outcome: Outcome = Cancelled(f"cancelled by {who}")
        else:
            outcome = _execute(job, kind)
        _record(job, outcome)
    return job


def _execute(job: Job, kind: JobKind) -> Outcome:
    ctx = JobContext(job)
    try:
        return kind.run(ctx)
    except JobFailed as exc:
        ctx.log(exc.message, Level.ERROR)
        return Failed(exc.message, exc.result, exc.retryable)
    except kind.errors as exc:
        message = str(exc)
        ctx.log(message, Level.ERROR)
        return Failed(message, retryable=bool(getattr(exc, "retryable", False)))
    except Exception as exc:
        logger.exception("job #%s (%s) failed unexpectedly", job.pk, job.kind)
        ctx.log(f"internal error: {type(exc).__name__}", Level.ERROR)
        return Failed(f"internal error: {type(exc).__name__}: {exc}")


def _record(job: Job, outcome: Outcome) -> None:
    mine = lifecycle.held_by_me(job)
    if isinstance(outcome, Wait):
        lifecycle.wait(job, outcome.seconds, message=outcome.message, checkpoint=outcome.checkpoint)
    elif isinstance(outcome, Done):
        lifecycle.finish(
            job,
            status=S.SUCCEEDED,
            only_if=mine,
            result=outcome.result,
            message=outcome.message,
            on_finish=outcome.on_finish,
        )
    elif isinstance(outcome, Cancelled):
        lifecycle.log(job, outcome.reason, Level.WARNING)
        lifecycle.finish(
            job,
            status=S.CANCELLED,
            only_if=mine,
            error=outcome.reason,
            result=outcome.result,
            on_finish=outcome.on_finish,
        )
    else:
        lifecycle.finish(
            job,
            status=S.FAILED,
            only_if=mine,
            error=outcome.error,
            result=outcome.result,
            retryable=outcome.retryable,
            on_finish=outcome.on_finish,
        )


def run_now(job_id: int) -> Job:
    """Run every step of the job here, waiting between steps as a worker's countdown would.

    For the command line without a worker and for eager tests; never inside a Celery worker (a
    worker must not sleep between steps: it re-queues them).
    """
    running = broker.running_here()
    running.add(job_id)
    try:
        while True:
            job = Job.objects.get(pk=job_id)
            if not job.is_active or job.claim:
                return job  # ended, or held by a worker elsewhere
            if job.wake_at is not None:
                delay = (job.wake_at - timezone.now()).total_seconds()
                if delay > 0:
                    time.sleep(delay)
            if run_step(job_id, job.step) is None:
                return Job.objects.get(pk=job_id)  # someone else claimed this step
    finally:
        running.discard(job_id)
