"""Discovery: request one (never two at once per provider), execute it, dispatch the scheduled ones."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from inventory.drivers.base import DriverError
from inventory.models import DiscoveryRun, Provider
from inventory.secrets import SecretError
from inventory.services.providers import provider_driver
from inventory.services.sync import SyncResult, apply_snapshot

logger = logging.getLogger(__name__)
ACTIVE = (DiscoveryRun.Status.QUEUED, DiscoveryRun.Status.RUNNING)


def _expire_abandoned(provider: Provider | None = None) -> None:
    """Runs left active by a worker that died long ago must not block discovery forever.

    A running run is measured from when it started, a queued one from when it was queued.
    """
    limit = timezone.now() - timedelta(seconds=settings.VOM_DISCOVERY_STALE_AFTER)
    abandoned = DiscoveryRun.objects.filter(
        Q(status=DiscoveryRun.Status.RUNNING, started__lt=limit)
        | Q(status=DiscoveryRun.Status.QUEUED, created__lt=limit)
    )
    if provider is not None:
        abandoned = abandoned.filter(provider=provider)
    if not abandoned.exists():  # a read first: no write lock taken in the usual case
        return
    abandoned.update(
        status=DiscoveryRun.Status.FAILED,
        finished=timezone.now(),
        error="abandoned: the worker running it stopped before it finished",
    )


def _create_run(*, provider: Provider, trigger: str, user: Any | None) -> tuple[DiscoveryRun, bool]:
    """The new queued run, or the one already active for this provider (then ``created`` is False)."""
    _expire_abandoned(provider)
    try:
        with transaction.atomic():
            run = DiscoveryRun.objects.create(provider=provider, trigger=trigger, requested_by=user)
        return run, True
    except IntegrityError:
        active = DiscoveryRun.objects.filter(provider=provider, status__in=ACTIVE).first()
        if active is None:  # it finished between our insert and this read: try once more
            return _create_run(provider=provider, trigger=trigger, user=user)
        return active, False


def request_discovery(
    *, provider: Provider, trigger: str = DiscoveryRun.Trigger.MANUAL, user: Any | None = None
) -> DiscoveryRun:
    """Queue a discovery of ``provider`` on the discovery queue; returns the already active one if any."""
    run, created = _create_run(provider=provider, trigger=trigger, user=user)
    if created:
        run_id = run.pk
        transaction.on_commit(lambda: _enqueue(run_id))
    return run


def _enqueue(run_id: int) -> None:
    """Send the task; if the broker cannot take it, the run fails at once instead of blocking the provider."""
    from inventory.tasks import run_discovery

    try:
        run_discovery.delay(run_id)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; all mean "not queued"
        logger.error("could not queue discovery #%s: %s", run_id, exc)
        DiscoveryRun.objects.filter(pk=run_id, status=DiscoveryRun.Status.QUEUED).update(
            status=DiscoveryRun.Status.FAILED,
            finished=timezone.now(),
            error=f"could not queue the discovery: the task broker is unreachable ({type(exc).__name__})",
        )


def discover_now(
    *, provider: Provider, trigger: str = DiscoveryRun.Trigger.CLI, user: Any | None = None
) -> DiscoveryRun:
    """Run a discovery in this process, without a worker (management command, tests, benchmark)."""
    run, created = _create_run(provider=provider, trigger=trigger, user=user)
    if not created:
        raise DiscoveryBusy(f"a discovery of {provider.name} is already {run.status} (#{run.pk})")
    return execute_discovery(run.pk)


class DiscoveryBusy(Exception):
    """Another discovery of the same provider is queued or running."""


def execute_discovery(run_id: int) -> DiscoveryRun:
    """Claim the queued run and execute it; a run already claimed (redelivered task) is left alone."""
    started = timezone.now()
    claimed = DiscoveryRun.objects.filter(pk=run_id, status=DiscoveryRun.Status.QUEUED).update(
        status=DiscoveryRun.Status.RUNNING, started=started
    )
    run = DiscoveryRun.objects.select_related("provider").get(pk=run_id)
    if not claimed:
        logger.info("discovery #%s already %s; not running it again", run_id, run.status)
        return run
    provider = run.provider
    clock = time.monotonic()
    try:
        driver = provider_driver(provider)
        try:
            snapshot = driver.discover()
        finally:
            driver.close()
        result = apply_snapshot(provider, snapshot)
    except (DriverError, SecretError) as exc:
        return _finish_failed(run, str(exc), retryable=getattr(exc, "retryable", False), clock=clock)
    except Exception as exc:
        logger.exception("discovery #%s of %s failed unexpectedly", run_id, provider.name)
        return _finish_failed(run, f"internal error: {type(exc).__name__}: {exc}", retryable=False, clock=clock)
    return _finish_succeeded(run, result, clock=clock)


def _save_if_running(run: DiscoveryRun, fields: list[str]) -> bool:
    """Record the outcome unless the run was declared abandoned meanwhile (then its record stands)."""
    updated = DiscoveryRun.objects.filter(pk=run.pk, status=DiscoveryRun.Status.RUNNING).update(
        **{name: getattr(run, name) for name in fields}
    )
    if not updated:
        logger.warning("discovery #%s finished after it was declared abandoned; outcome not recorded", run.pk)
    return bool(updated)


def _finish_succeeded(run: DiscoveryRun, result: SyncResult, *, clock: float) -> DiscoveryRun:
    now = timezone.now()
    run.status = DiscoveryRun.Status.SUCCEEDED
    run.finished = now
    run.duration_ms = int((time.monotonic() - clock) * 1000)
    run.added, run.changed, run.removed = result.added, result.changed, result.removed
    run.counts = result.as_dict()
    with transaction.atomic():
        if not _save_if_running(run, ["status", "finished", "duration_ms", "added", "changed", "removed", "counts"]):
            return run
        Provider.objects.filter(pk=run.provider_id).update(
            status=Provider.Status.OK,
            stale_reason="",
            last_discovery_at=now,
            last_success_at=now,
            **_check_summary(run.provider, now),
        )
    logger.info(
        "discovery #%s of %s: +%s ~%s -%s in %s ms",
        run.pk,
        run.provider.name,
        run.added,
        run.changed,
        run.removed,
        run.duration_ms,
    )
    return run


def _check_summary(provider: Provider, now: Any) -> dict[str, Any]:
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


def _finish_failed(run: DiscoveryRun, error: str, *, retryable: bool, clock: float) -> DiscoveryRun:
    """Record the failure; the last-known inventory stays, marked stale with the reason."""
    now = timezone.now()
    run.status = DiscoveryRun.Status.FAILED
    run.finished = now
    run.duration_ms = int((time.monotonic() - clock) * 1000)
    run.error = error
    run.retryable = retryable
    with transaction.atomic():
        if not _save_if_running(run, ["status", "finished", "duration_ms", "error", "retryable"]):
            return run
        Provider.objects.filter(pk=run.provider_id).update(
            status=Provider.Status.STALE, stale_reason=error, last_discovery_at=now
        )
    logger.warning("discovery #%s of %s failed: %s", run.pk, run.provider.name, error)
    return run


def due_providers() -> list[Provider]:
    """Enabled providers whose interval has passed since their last discovery (or never run)."""
    now = timezone.now()
    _expire_abandoned()
    busy = set(DiscoveryRun.objects.filter(status__in=ACTIVE).values_list("provider_id", flat=True))
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
        request_discovery(provider=provider, trigger=DiscoveryRun.Trigger.SCHEDULE)
        count += 1
    return count
