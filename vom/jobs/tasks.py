"""Celery tasks of the job core: thin callers, holding no logic of their own."""

from __future__ import annotations

from celery import Task, shared_task

from vom.jobs import lifecycle, runner


@shared_task(name="vom.jobs.run_job", bind=True)
def run_job(self: Task, job_id: int, step: int) -> None:  # type: ignore[type-arg]
    """Run one step of one job (the queue is chosen by the sender, from the job's kind).

    Run eagerly (tests), it runs the whole job here instead: see :mod:`vom.jobs.broker`.
    """
    if self.request.is_eager:
        runner.run_now(job_id)
    else:
        runner.run_step(job_id, step)


@shared_task(name="vom.jobs.sweep")
def sweep() -> int:
    """End or resume jobs whose worker died, resend lost steps (celery beat, every half minute)."""
    return lifecycle.expire_stale()
