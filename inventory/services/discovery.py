"""Discovery: request one (never two at once per provider), execute it, dispatch the scheduled ones.

A discovery is a job of kind ``discovery`` (``vom.jobs``) targeting its provider, on the discovery
queue; the lock ``discovery:provider:<id>`` keeps two of one provider from overlapping. What it found
and changed is its result: ``added``, ``changed``, ``removed``, ``counts`` per kind, ``duration_ms``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.utils import timezone

from inventory.drivers.base import DriverError
from inventory.models import Provider
from inventory.services.providers import provider_driver
from inventory.services.sync import apply_snapshot
from vom.jobs import lifecycle
from vom.jobs.context import JobContext
from vom.jobs.kinds import JobKind
from vom.jobs.models import ACTIVE, Job
from vom.jobs.outcomes import Done, Failed, Outcome
from vom.jobs.runner import run_now

logger = logging.getLogger(__name__)
KIND = "discovery"


def lock_of(provider: Provider) -> str:
    return f"discovery:provider:{provider.pk}"


def discoveries(provider: Provider | None = None) -> QuerySet[Job]:
    """Discovery jobs (of ``provider``), newest first."""
    jobs = Job.objects.filter(kind=KIND)
    if provider is not None:
        jobs = jobs.filter(target_type=ContentType.objects.get_for_model(Provider), target_id=provider.pk)
    return jobs.order_by("-created", "-pk")


def active_discovery(provider: Provider) -> Job | None:
    return discoveries(provider).filter(status__in=ACTIVE).first()


class DiscoveryBusy(Exception):
    """Another discovery of the same provider is queued or running."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(f"a discovery of {job.target_name} is already {job.get_status_display().lower()} (#{job.pk})")


def _create(*, provider: Provider, trigger: str, user: Any | None) -> Job:
    try:
        return lifecycle.create(
            KIND, target=provider, target_name=provider.name, lock=lock_of(provider), user=user, trigger=trigger
        )
    except lifecycle.Locked as exc:
        holder = exc.holder or active_discovery(provider)
        if holder is None:
            raise
        raise DiscoveryBusy(holder) from None


def request_discovery(*, provider: Provider, trigger: str = Job.Trigger.GUI, user: Any | None = None) -> Job:
    """Queue a discovery of ``provider``; returns the one already queued or running if there is one.

    Raises :class:`~vom.jobs.broker.QueueUnavailable` (nothing recorded) when the queue is down.
    """
    try:
        job = _create(provider=provider, trigger=trigger, user=user)
    except DiscoveryBusy as exc:
        return exc.job
    return lifecycle.submit(job)


def discover_now(*, provider: Provider, trigger: str = Job.Trigger.CLI, user: Any | None = None) -> Job:
    """Run a discovery in this process, without a worker (command line, tests, benchmark).

    Raises :class:`DiscoveryBusy` when one of the provider is already queued or running.
    """
    job = _create(provider=provider, trigger=trigger, user=user)
    return run_now(job.pk)


def execute(ctx: JobContext) -> Outcome:
    """The discovery job's one step: read the platform, apply the difference, record the outcome.

    Safe to run again after a worker died half-way (the snapshot is applied in one transaction),
    so the kind is resumable.
    """
    job = ctx.job
    provider = Provider.objects.filter(pk=ctx.target_pk).first()
    if provider is None:
        return Failed("the provider was deleted before its discovery ran")
    ctx.progress(5, f"reading {provider.name}")
    clock = time.monotonic()
    try:
        driver = provider_driver(provider)
        try:
            snapshot = driver.discover()
        finally:
            driver.close()
        result = apply_snapshot(provider, snapshot)
    except DriverError as exc:
        return _failed(job, provider, exc, clock)
    duration = int((time.monotonic() - clock) * 1000)
    now = timezone.now()

    def fresh() -> None:
        Provider.objects.filter(pk=provider.pk).update(
            status=Provider.Status.OK,
            stale_reason="",
            last_discovery_at=now,
            last_success_at=now,
            **_check_summary(provider, now),
        )

    logger.info(
        "discovery #%s of %s: +%s ~%s -%s in %s ms",
        job.pk,
        provider.name,
        result.added,
        result.changed,
        result.removed,
        duration,
    )
    counts = {
        "added": result.added,
        "changed": result.changed,
        "removed": result.removed,
        "counts": result.as_dict(),
        "duration_ms": duration,
    }
    return Done(counts, message=f"+{result.added} ~{result.changed} -{result.removed}", on_finish=fresh)


def _failed(job: Job, provider: Provider, exc: DriverError, clock: float) -> Outcome:
    duration = int((time.monotonic() - clock) * 1000)
    now = timezone.now()
    reason = str(exc)

    def stale() -> None:
        # The last-known inventory stays, marked stale with the reason (only if this worker still
        # holds the job: a late one that was expired meanwhile changes nothing).
        Provider.objects.filter(pk=provider.pk).update(
            status=Provider.Status.STALE, stale_reason=reason, last_discovery_at=now
        )

    logger.warning("discovery #%s of %s failed: %s", job.pk, provider.name, reason)
    return Failed(reason, {"duration_ms": duration}, retryable=exc.retryable, on_finish=stale)


def _check_summary(provider: Provider, now: datetime) -> dict[str, Any]:
    """RHEV: a discovery that worked proves the URL and credentials, and found each VM's HA setting;
    the provider's check then says so, in line with its VMs' checks."""
    if provider.kind != Provider.Kind.RHEV:
        return {}
    failing = provider.vms.filter(removed_at__isnull=True, check_ok=False).count()
    message = (
        "URL and credentials work; the manager's own HA is off for every VM"
        if not failing
        else f"URL and credentials work; {failing} VM(s) have the manager's own high availability enabled"
    )
    return {"check_ok": not failing, "check_message": message, "checked_at": now}


def due_providers() -> list[Provider]:
    """Enabled providers whose interval has passed since their last discovery (or never run)."""
    now = timezone.now()
    busy = set(
        Job.objects.filter(
            kind=KIND, status__in=ACTIVE, target_type=ContentType.objects.get_for_model(Provider)
        ).values_list("target_id", flat=True)
    )
    return [
        p
        for p in Provider.objects.filter(enabled=True)
        if p.pk not in busy
        and (p.last_discovery_at is None or p.last_discovery_at + timedelta(seconds=p.discovery_interval) <= now)
    ]


def dispatch_due_discoveries() -> int:
    """Queue a discovery for every provider that is due (called by celery beat). Returns how many."""
    count = 0
    for provider in due_providers():
        request_discovery(provider=provider, trigger=Job.Trigger.SCHEDULE)
        count += 1
    return count


KINDS = [
    JobKind(
        name=KIND,
        label="Discovery",
        queue="discovery",
        run=execute,
        resumable=True,
        errors=(DriverError,),
        page_template="inventory/jobs/_discovery.html",
    )
]
