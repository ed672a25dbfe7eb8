"""What an executor gets for one step of its job: the job, its log and progress, cancel, children."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from vom.jobs import lifecycle
from vom.jobs.models import Job, JobLogEntry
from vom.jobs.outcomes import JobFailed

S = Job.Status
Level = JobLogEntry.Level


class JobContext:
    """What an executor gets for one step: the job, its log and progress, and its children."""

    def __init__(self, job: Job) -> None:
        self.job = job

    @property
    def target_pk(self) -> int:
        """The id of the job's target (a job made without one fails here, with the reason)."""
        if self.job.target_id is None:
            raise JobFailed(f"{self.job.kind_label} #{self.job.pk} has no target")
        return int(self.job.target_id)

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.job.params
        return params

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What the previous step of this job kept for this one (empty on the first step)."""
        checkpoint: dict[str, Any] = self.job.checkpoint
        return checkpoint

    @property
    def resumed(self) -> bool:
        """Whether a worker that died ran part of this job before (the executor finds what it did)."""
        return self.job.resumes > 0

    def log(self, message: str, level: str = Level.INFO) -> None:
        lifecycle.log(self.job, message, level)

    def progress(self, percent: int, message: str) -> None:
        lifecycle.progress(self.job, percent, message)

    @property
    def cancel_requested(self) -> bool:
        return lifecycle.cancel_asked(self.job)

    def cancelled_by(self) -> str:
        user = self.job.cancelled_by
        return user.get_username() if user is not None else "the command line"

    # -- inline children -------------------------------------------------------------------------

    def children(self) -> QuerySet[Job]:
        return Job.objects.filter(parent_id=self.job.pk).order_by("position", "pk")

    @contextmanager
    def child(self, child: Job) -> Iterator[Job]:
        """Run ``child`` here, under this job's claim; it is running inside the block.

        End it with :meth:`end_child`. An error leaving the block leaves the child running, for this
        job to handle (clean up what was made for it, say why); one left running when this job ends
        ends with it. A block that returns without ending it has failed it ("ended without an outcome").
        """
        now = timezone.now()
        Job.objects.filter(pk=child.pk, status__in=(S.PENDING, S.RUNNING)).update(
            status=S.RUNNING, claim=self.job.claim, heartbeat=now, started=child.started or now
        )
        child.refresh_from_db()
        yield child
        if child.status == S.RUNNING:
            self.end_child(child, S.FAILED, error="ended without an outcome")

    def end_child(self, child: Job, status: str, *, error: str = "", result: dict[str, Any] | None = None) -> bool:
        return lifecycle.finish(
            child, status=status, only_if=Q(status__in=(S.PENDING, S.RUNNING)), error=error, result=result
        )
