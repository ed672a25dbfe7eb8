"""The lifecycle of every job, in one place: create, enqueue, claim, beat, wait, finish, cancel, expire.

- **create** writes the row; a job with a ``lock`` is refused (:class:`Locked`) while another queued or
  running job holds the same lock — the database's partial unique index decides, not a read.
- **submit** (the one enqueue) hands the first step to the queue once the transaction commits. If the
  queue cannot take it, the job and everything written with it is deleted and
  :class:`~vom.jobs.broker.QueueUnavailable` raised: nothing is left half-recorded.
- **claim** (the one claim) is a conditional UPDATE on (id, step, no claim): a second delivery of the
  same message, or a delivery of a step that already ran, sees zero rows and does nothing.
- **finish** (the one conditional finish) ends a job only if it is still what the caller believes it
  is (claimed by this worker, still queued, still stale …). A worker that finishes late — after its job
  was expired as abandoned or taken over — changes nothing; the lock is freed exactly once.
- **expire_stale** (the one expiry) is run by a periodic sweep: a running job whose worker stopped
  beating is resumed (if its kind allows and it has not been resumed too often) or ended as abandoned
  with the reason; a step whose message was lost is handed to the queue again, a bounded number of times.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import F, Model, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from vom.jobs import broker
from vom.jobs.kinds import JobKind, kind_of
from vom.jobs.models import ACTIVE, Job, JobLogEntry
from vom.jobs.outcomes import OnFinish

logger = logging.getLogger(__name__)
S = Job.Status
# The longest text a job's message holds; the whole error goes to ``error``.
MESSAGE_LENGTH = 500


class Locked(Exception):
    """Another queued or running job holds the lock a new job asked for."""

    def __init__(self, holder: Job | None, lock: str) -> None:
        self.holder = holder
        self.lock = lock
        what = f"{holder.kind_label} (#{holder.pk})" if holder is not None else "another job"
        super().__init__(f"{what} is already in progress")


# --- create and enqueue -------------------------------------------------------------------------


def _user(user: Any | None) -> Any | None:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def create(
    kind: str,
    *,
    target: Model | None = None,
    target_name: str = "",
    lock: str = "",
    params: dict[str, Any] | None = None,
    user: Any | None = None,
    trigger: str = Job.Trigger.GUI,
    parent: Job | None = None,
    position: int = 0,
    inline: bool = False,
    message: str = "queued",
) -> Job:
    """Write a queued job of ``kind`` (not yet sent: see :func:`submit`). Raises :class:`Locked`."""
    kind_of(kind)  # an unknown kind is a programming error: fail before anything is written
    fields: dict[str, Any] = {
        "kind": kind,
        "target_name": (target_name or (str(target) if target is not None else ""))[:255],
        "lock": lock,
        "params": params or {},
        "requested_by": _user(user),
        "trigger": trigger,
        "parent": parent,
        "position": position,
        "inline": inline,
        "message": message,
    }
    if target is not None:
        fields["target_type"] = ContentType.objects.get_for_model(target)
        fields["target_id"] = target.pk
    if not lock:
        return Job.objects.create(**fields)
    for attempt in range(2):
        try:
            with transaction.atomic():
                return Job.objects.create(**fields)
        except IntegrityError:
            holder = Job.objects.filter(lock=lock, status__in=ACTIVE).first()
            if holder is None:
                if attempt:
                    raise  # not the lock (a user or target gone): the database's own error
                continue  # it ended between the insert and this read: one more try, no more
            if not expire_stale(Job.objects.filter(pk=holder.pk)):
                raise Locked(holder, lock) from None
    raise Locked(Job.objects.filter(lock=lock, status__in=ACTIVE).first(), lock)


def submit(job: Job) -> Job:
    """Hand the job's first step to its queue once the current transaction commits (the one enqueue).

    If the queue cannot take it, the job is deleted with everything that cascades from it (its
    details, its children) and :class:`~vom.jobs.broker.QueueUnavailable` is raised to the caller.
    """
    job_id, queue = job.pk, kind_of(job.kind).queue

    def send() -> None:
        Job.objects.filter(pk=job_id, status=S.PENDING).update(sent_at=timezone.now(), sends=1)
        try:
            broker.send(job_id, 0, queue=queue)
        except broker.QueueUnavailable:
            Job.objects.filter(pk=job_id, status=S.PENDING).delete()
            raise

    transaction.on_commit(send)
    return job


# --- claim, progress, heartbeat -----------------------------------------------------------------


def claim(job_id: int, step: int) -> Job | None:
    """Claim ``step`` of the job for this worker (the one claim); None when it is not that step's turn.

    A queued job becomes running; a running job between steps is held again. A second delivery of
    the same step, or of a step that already ran, finds no row to claim.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, step=step, claim="", status__in=ACTIVE).update(
        status=S.RUNNING, claim=token, heartbeat=now, wake_at=None, started=Coalesce("started", Value(now))
    )
    if not claimed:
        return None
    job = Job.objects.select_related("requested_by", "cancelled_by").get(pk=job_id)
    if job.resumes:
        # Inline children run under their parent's claim: a resumed parent takes them over.
        Job.objects.filter(parent_id=job_id, inline=True, status=S.RUNNING).exclude(claim=token).update(claim=token)
    return job


def log(job: Job, message: str, level: str = JobLogEntry.Level.INFO) -> None:
    JobLogEntry.objects.create(job=job, message=message, level=level)


def progress(job: Job, percent: int, message: str) -> None:
    """Record progress (and a sign of life) while ``job`` is held by this worker."""
    job.progress = max(0, min(100, percent))
    job.message = message[:MESSAGE_LENGTH]
    Job.objects.filter(pk=job.pk, claim=job.claim, status=S.RUNNING).update(
        progress=job.progress, message=job.message, heartbeat=timezone.now()
    )


def beat(claims: list[str]) -> int:
    """A sign of life for the jobs held under ``claims`` (the worker's heartbeat)."""
    if not claims:
        return 0
    return Job.objects.filter(claim__in=claims, status=S.RUNNING).update(heartbeat=timezone.now())


def cancel_asked(job: Job) -> bool:
    """Whether a user asked to cancel (read afresh: it is asked from another process)."""
    asked = Job.objects.filter(pk=job.pk, cancel_requested__isnull=False).values_list(
        "cancel_requested", "cancelled_by"
    )
    row = asked.first()
    if row is None:
        return False
    job.cancel_requested, job.cancelled_by_id = row
    return True


# --- between steps ------------------------------------------------------------------------------


def wait(job: Job, seconds: float, *, message: str = "", checkpoint: dict[str, Any] | None = None) -> bool:
    """Release the worker; the next step runs after ``seconds``. False if the job is no longer ours."""
    now = timezone.now()
    wake = now + timedelta(seconds=max(0.0, seconds))
    fields: dict[str, Any] = {"claim": "", "step": F("step") + 1, "wake_at": wake, "sent_at": now, "sends": 1}
    if message:
        fields["message"] = message[:MESSAGE_LENGTH]
    if checkpoint is not None:
        fields["checkpoint"] = checkpoint
    if not Job.objects.filter(pk=job.pk, claim=job.claim, status=S.RUNNING).update(**fields):
        logger.warning("job #%s: no longer held by this worker; not continued", job.pk)
        return False
    job.refresh_from_db(fields=["step", "claim", "wake_at", "checkpoint", "message"])
    _send_step(job, countdown=seconds)
    return True


def wake(job_id: int) -> None:
    """Run the next step of a job that waits between steps now (a child it waits for has ended)."""
    job = Job.objects.filter(pk=job_id, status=S.RUNNING, claim="").first()
    if job is not None:
        Job.objects.filter(pk=job.pk, step=job.step, claim="").update(wake_at=timezone.now())
        _send_step(job, countdown=0)


def _send_step(job: Job, *, countdown: float) -> None:
    """Hand the job's current step to the queue; a broker that is down now is left to the sweep."""
    try:
        broker.send(job.pk, job.step, queue=kind_of(job.kind).queue, countdown=countdown)
    except broker.QueueUnavailable as exc:
        # The job stays running between steps; the sweep sends it again once its time is well past.
        logger.warning("job #%s: step %s not queued (%s); the sweep will send it again", job.pk, job.step, exc)


# --- the end ------------------------------------------------------------------------------------


def finish(
    job: Job,
    *,
    status: str,
    only_if: Q,
    error: str = "",
    message: str = "",
    result: dict[str, Any] | None = None,
    retryable: bool = False,
    on_finish: OnFinish = None,
) -> bool:
    """End ``job`` with ``status`` if it still matches ``only_if`` (the one conditional finish).

    Returns False, changing nothing, when it no longer does: a late worker cannot overwrite a job
    that was expired or taken over, and the lock (held while the job is active) is freed once.
    ``on_finish`` runs in the same transaction, only when the job was ended here.
    """
    now = timezone.now()
    merged = {**job.result, **(result or {})}
    fields: dict[str, Any] = {
        "status": status,
        "claim": "",
        "finished": now,
        "wake_at": None,
        "error": error,
        "retryable": retryable,
        "result": merged,
        "message": (message or ("done" if status == S.SUCCEEDED else error or status))[:MESSAGE_LENGTH],
    }
    if status == S.SUCCEEDED:
        fields["progress"] = 100
    with transaction.atomic():
        if not Job.objects.filter(Q(pk=job.pk) & only_if).update(**fields):
            logger.warning("job #%s: not ended as %s: it was already ended or taken over", job.pk, status)
            job.refresh_from_db()
            return False
        if on_finish is not None:
            on_finish()
        if status != S.SUCCEEDED:
            # Inline children still going end with their parent (they cannot run without it).
            Job.objects.filter(parent_id=job.pk, inline=True, status__in=ACTIVE).update(
                status=status,
                claim="",
                finished=now,
                error=f"its parent job #{job.pk} ended ({status})",
                message=f"its parent job ended ({status})",
            )
    for name, value in fields.items():
        setattr(job, name, value)
    if job.parent_id is not None and not job.inline:
        wake(job.parent_id)
    return True


def held_by_me(job: Job) -> Q:
    """``only_if`` for the worker holding ``job``."""
    return Q(status=S.RUNNING, claim=job.claim)


def request_cancel(job: Job, *, user: Any | None) -> Job:
    """Ask a queued or running job to stop: a queued one ends at once, a running one at its next step.

    Raises :class:`ValueError` with the reason when there is nothing to cancel.
    """
    if not job.is_active:
        raise ValueError(f"job #{job.pk} has already ended ({job.get_status_display().lower()})")
    if job.cancel_requested is not None:
        raise ValueError(f"cancelling job #{job.pk} was already asked for at {job.cancel_requested:%Y-%m-%d %H:%M:%S}")
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, status__in=ACTIVE, cancel_requested__isnull=True).update(
        cancel_requested=now, cancelled_by=_user(user)
    ):
        job.refresh_from_db()
        raise ValueError(f"job #{job.pk} has already ended or is being cancelled")
    job.cancel_requested, job.cancelled_by = now, _user(user)
    who = job.cancelled_by.get_username() if job.cancelled_by is not None else "the command line"
    log(job, f"cancellation asked for by {who}", JobLogEntry.Level.WARNING)
    finish(job, status=S.CANCELLED, only_if=Q(status=S.PENDING), error=f"cancelled by {who} before it started")
    return job


# --- expiry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How long silence means death, read from the settings at each sweep."""

    stale_before: datetime  # a running job with no heartbeat since then has lost its worker
    overdue_before: datetime  # a step due before then was never picked up: its message was lost
    unsent_before: datetime  # a queued job sent before then and still unclaimed is sent once more

    @classmethod
    def now(cls) -> Limits:
        now = timezone.now()
        return cls(
            stale_before=now - timedelta(seconds=settings.VOM_JOB_STALE_AFTER),
            overdue_before=now - timedelta(seconds=settings.VOM_JOB_STALE_AFTER),
            unsent_before=now - timedelta(seconds=settings.VOM_JOB_RESEND_AFTER),
        )


def expire_stale(jobs: Any = None) -> int:
    """End or resume the jobs (of ``jobs``, default all) whose worker died; resend lost steps.

    The one expiry. A running job is judged by its heartbeat, never by its age: a provisioning
    request that copies images for hours lives as long as its worker beats. Returns how many jobs
    were ended or resumed.
    """
    limits = Limits.now()
    queryset = (jobs if jobs is not None else Job.objects.all()).filter(inline=False)
    changed = 0
    for job in queryset.filter(status=S.RUNNING, heartbeat__lt=limits.stale_before).exclude(claim=""):
        changed += _dead_worker(job, limits)
    for job in queryset.filter(status=S.RUNNING, claim="", wake_at__lt=limits.overdue_before):
        changed += _lost_step(job)
    for job in queryset.filter(status=S.PENDING, sent_at__lt=limits.unsent_before):
        _unclaimed(job, limits)
    return changed


def _dead_worker(job: Job, limits: Limits) -> int:
    seen = f"{job.heartbeat:%Y-%m-%d %H:%M:%S %Z}" if job.heartbeat else "never"
    still_dead = Q(status=S.RUNNING, claim=job.claim, heartbeat__lt=limits.stale_before)
    try:
        kind: JobKind | None = kind_of(job.kind)
    except LookupError:
        kind = None
    resumable = kind is not None and kind.resumable
    if resumable and job.resumes < settings.VOM_JOB_MAX_RESUMES:
        resumed = Job.objects.filter(Q(pk=job.pk) & still_dead).update(
            claim="", step=F("step") + 1, resumes=F("resumes") + 1, wake_at=timezone.now(), sent_at=timezone.now()
        )
        if resumed:
            job.refresh_from_db()
            log(job, f"resuming: the worker running it stopped (last sign of life {seen})", JobLogEntry.Level.WARNING)
            _send_step(job, countdown=0)
        return resumed
    reason = f"abandoned: the worker running it stopped (last sign of life {seen})"
    if resumable:
        reason += f"; it was resumed {job.resumes} times already"
    if finish(
        job,
        status=S.ABANDONED,
        only_if=still_dead,
        error=reason,
        message="abandoned",
        on_finish=_hook(kind, job, reason),
    ):
        log(job, reason, JobLogEntry.Level.ERROR)
        return 1
    return 0


def _hook(kind: JobKind | None, job: Job, reason: str) -> OnFinish:
    """The kind's own words on an abandoned job, run as it is ended."""
    if kind is None or kind.on_abandoned is None:
        return None
    hook = kind.on_abandoned
    return lambda: hook(job, reason)


def _lost_step(job: Job) -> int:
    if job.sends >= settings.VOM_JOB_MAX_SENDS:
        reason = f"abandoned: no worker took its step {job.step} after it was sent {job.sends} times"
        only_if = Q(status=S.RUNNING, claim="", step=job.step)
        try:
            kind: JobKind | None = kind_of(job.kind)
        except LookupError:
            kind = None
        hook = _hook(kind, job, reason)
        if finish(job, status=S.ABANDONED, only_if=only_if, error=reason, message="abandoned", on_finish=hook):
            log(job, reason, JobLogEntry.Level.ERROR)
            return 1
        return 0
    if Job.objects.filter(pk=job.pk, status=S.RUNNING, claim="", step=job.step).update(
        sends=F("sends") + 1, wake_at=timezone.now(), sent_at=timezone.now()
    ):
        log(job, f"step {job.step} was not picked up in time: sent again", JobLogEntry.Level.WARNING)
        _send_step(job, countdown=0)
        return 1
    return 0


def _unclaimed(job: Job, limits: Limits) -> None:
    """A queued job nobody took: its message may have been lost (a broker restarted without saving).

    Sent again, with a back-off (each wait twice the last), at most ``VOM_JOB_MAX_SENDS`` times; a
    second copy of a message that was not lost does nothing (the claim). It is never ended for its
    age: a queue may legitimately be busy for hours.
    """
    if job.sends >= settings.VOM_JOB_MAX_SENDS or job.sent_at is None:
        return
    backoff = timedelta(seconds=settings.VOM_JOB_RESEND_AFTER) * (2 ** max(0, job.sends - 1))
    if job.sent_at > timezone.now() - backoff:
        return
    if Job.objects.filter(pk=job.pk, status=S.PENDING, sends=job.sends).update(
        sends=F("sends") + 1, sent_at=timezone.now()
    ):
        _send_step(job, countdown=0)
