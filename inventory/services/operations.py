"""VM operations: request one (a row first, then a task), and execute it exactly once.

``request_vm_operation`` validates and writes an :class:`Operation`; the Celery task only calls
:func:`execute_operation`, which claims the row with a conditional update so that a redelivered task
finds it claimed and does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from inventory import states
from inventory.drivers.base import Driver, DriverError
from inventory.models import Host, Operation, Provider, StorageVolume, VirtualMachine, VMSnapshot
from inventory.secrets import SecretError
from inventory.services.providers import provider_driver

logger = logging.getLogger(__name__)
Kind = Operation.Kind
S = VirtualMachine.State


@dataclass(frozen=True)
class OperationSpec:
    """Which states an operation may start from, and the state that means it is done."""

    allowed_from: frozenset[str]
    done_when: frozenset[str]
    needs_snapshot_name: bool = False


SPECS: dict[str, OperationSpec] = {
    Kind.VM_START: OperationSpec(frozenset({S.STOPPED, S.CRASHED}), frozenset({S.RUNNING})),
    # A paused guest cannot act on a shutdown request: resume it first (or power it off).
    Kind.VM_SHUTDOWN: OperationSpec(frozenset({S.RUNNING}), frozenset({S.STOPPED})),
    Kind.VM_POWER_OFF: OperationSpec(
        frozenset({S.RUNNING, S.PAUSED, S.SUSPENDED, S.STOPPING, S.CRASHED, S.STARTING, S.UNKNOWN}),
        frozenset({S.STOPPED}),
    ),
    Kind.VM_REBOOT: OperationSpec(frozenset({S.RUNNING}), frozenset({S.RUNNING})),
    # libvirt pauses in memory; Hyper-V ("save") and RHEV write the memory out: suspended.
    Kind.VM_SUSPEND: OperationSpec(frozenset({S.RUNNING}), frozenset({S.PAUSED, S.SUSPENDED})),
    Kind.VM_RESUME: OperationSpec(frozenset({S.PAUSED}), frozenset({S.RUNNING})),
    Kind.SNAPSHOT_CREATE: OperationSpec(
        frozenset({S.RUNNING, S.PAUSED, S.STOPPED}), frozenset(), needs_snapshot_name=True
    ),
    Kind.SNAPSHOT_REVERT: OperationSpec(
        frozenset({S.RUNNING, S.PAUSED, S.STOPPED, S.CRASHED}), frozenset(), needs_snapshot_name=True
    ),
    Kind.SNAPSHOT_DELETE: OperationSpec(
        frozenset({S.RUNNING, S.PAUSED, S.STOPPED, S.CRASHED}), frozenset(), needs_snapshot_name=True
    ),
    Kind.VM_MIGRATE: OperationSpec(frozenset({S.RUNNING}), frozenset({S.RUNNING})),
}
VM_ACTIONS = [Kind.VM_START, Kind.VM_SHUTDOWN, Kind.VM_POWER_OFF, Kind.VM_REBOOT, Kind.VM_SUSPEND, Kind.VM_RESUME]
SNAPSHOT_KINDS = frozenset({Kind.SNAPSHOT_CREATE, Kind.SNAPSHOT_REVERT, Kind.SNAPSHOT_DELETE})
# What each platform's driver can do to a VM (Hyper-V: suspend is "save", snapshots are checkpoints).
PLATFORM_OPERATIONS: dict[str, frozenset[str]] = {
    "libvirt": frozenset(VM_ACTIONS) | SNAPSHOT_KINDS,
    "rhev": frozenset(VM_ACTIONS) | {Kind.VM_MIGRATE},
    "hyperv": frozenset(VM_ACTIONS) | SNAPSHOT_KINDS,
}
POLL_SECONDS = 1.0
STATE_WAIT_SECONDS = 30


# States a platform adds to an operation's table: a saved Hyper-V VM or a suspended RHEV VM resumes
# by starting it (libvirt's guest-suspended domains need a wake-up this console does not send).
PLATFORM_ALLOWED_FROM: dict[tuple[str, str], frozenset[str]] = {
    ("hyperv", Kind.VM_RESUME): frozenset({S.SUSPENDED}),
    ("rhev", Kind.VM_RESUME): frozenset({S.SUSPENDED}),
    # Hyper-V checkpoints a saved VM as well (the saved memory is part of the checkpoint).
    ("hyperv", Kind.SNAPSHOT_CREATE): frozenset({S.SUSPENDED}),
    ("hyperv", Kind.SNAPSHOT_REVERT): frozenset({S.SUSPENDED}),
    ("hyperv", Kind.SNAPSHOT_DELETE): frozenset({S.SUSPENDED}),
}


def allowed_from(vm: VirtualMachine, kind: str) -> frozenset[str]:
    return SPECS[kind].allowed_from | PLATFORM_ALLOWED_FROM.get((vm.provider.kind, kind), frozenset())


def supported(vm: VirtualMachine, kind: str) -> bool:
    """Whether the VM's platform can do ``kind`` at all."""
    return kind in PLATFORM_OPERATIONS.get(vm.provider.kind, frozenset())


def can_force_power_off(op: Operation, vm: VirtualMachine | None) -> bool:
    """Whether to offer "Power off" after ``op``: a graceful shutdown that timed out, on a VM that can be."""
    return (
        op.kind == Kind.VM_SHUTDOWN
        and op.status == Operation.Status.FAILED
        and bool((op.result or {}).get("can_force"))
        and vm is not None
        and Kind.VM_POWER_OFF in allowed_operations(vm)
    )


def allowed_operations(vm: VirtualMachine) -> list[str]:
    """The power actions (and migrate) that make sense for the VM's platform and current state."""
    if vm.removed_at is not None:
        return []
    return [
        kind for kind in [*VM_ACTIONS, Kind.VM_MIGRATE] if supported(vm, kind) and vm.state in allowed_from(vm, kind)
    ]


def refusal(vm: VirtualMachine, kind: str, params: dict[str, Any]) -> str | None:
    """Why ``kind`` cannot be requested for ``vm`` now, or None."""
    if kind not in SPECS:
        return f"unknown operation {kind!r}"
    label = Kind(kind).label
    if vm.removed_at is not None:
        return f"VM {vm.name!r} was removed on {vm.removed_at:%Y-%m-%d %H:%M}"
    spec = SPECS[kind]
    if not supported(vm, kind):
        return f"{vm.provider.get_kind_display()} VMs cannot be asked to {label.lower()} from this console"
    if vm.state not in allowed_from(vm, kind):
        return f"cannot {label.lower()} VM {vm.name!r}: it is {vm.get_state_display().lower()}"
    if kind == Kind.VM_MIGRATE and params.get("host"):
        target = Host.objects.filter(pk=params["host"], provider_id=vm.provider_id, removed_at__isnull=True).first()
        if target is None:
            return f"no host {params['host']!r} known to {vm.provider.name} to migrate {vm.name!r} to"
        if target.pk == vm.host_id:
            return f"VM {vm.name!r} already runs on {target.hostname}"
    if kind == Kind.VM_START:
        base = backing_image_problem(vm)
        if base:
            return base
    if kind == Kind.SNAPSHOT_CREATE and not vm.persistent:
        return f"VM {vm.name!r} is transient: libvirt keeps no snapshots for it"
    if spec.needs_snapshot_name:
        name = str(params.get("snapshot", "")).strip()
        if not name:
            return "a snapshot name is required"
        if len(name) > 100 or "/" in name or any(ord(c) < 32 for c in name):
            return "a snapshot name has at most 100 characters, no '/' and no control characters"
        exists = VMSnapshot.objects.filter(vm=vm, name=name).exists()
        if kind == Kind.SNAPSHOT_CREATE and exists:
            return f"VM {vm.name!r} already has a snapshot named {name!r}"
        if kind != Kind.SNAPSHOT_CREATE and not exists:
            return f"VM {vm.name!r} has no snapshot named {name!r}"
    expire_abandoned_operations(vm)
    active = Operation.objects.filter(vm=vm, status__in=[Operation.Status.PENDING, Operation.Status.RUNNING]).first()
    if active is not None:
        return f"VM {vm.name!r} already has an operation in progress: {active.get_kind_display()} (#{active.pk})"
    return None


# Kinds run on the provisioning queue, where one request (hundreds of VMs, full copies of large
# images) can keep the queue busy for hours: an operation queued behind it is not lost.
LONG_QUEUE_KINDS = (Kind.PROVISION_VMS, Kind.DISK_ADD, Kind.DISK_RESIZE, Kind.VOLUME_CLONE)


def stale_limits() -> tuple[datetime, datetime]:
    """Cut-offs before which an operation is taken as abandoned: (running with no sign of life, or
    queued; queued on the provisioning queue, a day at least)."""
    now = timezone.now()
    stale = settings.VOM_OPERATION_STALE_AFTER
    return now - timedelta(seconds=stale), now - timedelta(seconds=max(stale, 86400))


def expire_abandoned_operations(vm: VirtualMachine) -> None:
    """An operation left active by a worker that died must not lock its VM forever."""
    limit, long_queue_limit = stale_limits()
    queued = Q(status=Operation.Status.PENDING) & (
        Q(kind__in=LONG_QUEUE_KINDS, created__lt=long_queue_limit)
        | (~Q(kind__in=LONG_QUEUE_KINDS) & Q(created__lt=limit))
    )
    abandoned = Operation.objects.filter(vm=vm).filter(Q(status=Operation.Status.RUNNING, started__lt=limit) | queued)
    if abandoned.exists():
        abandoned.update(
            status=Operation.Status.FAILED,
            finished=timezone.now(),
            message="abandoned",
            error="abandoned: the worker running it stopped before it finished",
        )


def backing_image_problem(vm: VirtualMachine) -> str | None:
    """Why ``vm`` must not run: a writable disk of it is the backing image of copy-on-write children.

    A child reads every block it has not written from its backing image; a guest writing into that
    image changes what every child sees, and corrupts them.
    """
    writable = {d.source: d.target for d in vm.disks.all() if d.source and not d.read_only}
    if not writable:
        return None
    children = StorageVolume.objects.filter(
        pool__provider_id=vm.provider_id, pool__removed_at__isnull=True, backing_store__in=list(writable)
    )
    first = children.first()
    if first is None:
        return None
    return (
        f"VM {vm.name!r} must not run: its disk {writable[first.backing_store]} ({first.backing_store}) is the "
        f"backing image of {children.count()} space-optimized volume(s) such as {first.name}; writing to it would "
        "corrupt them"
    )


def request_vm_operation(
    *, vm: VirtualMachine, kind: str, user: Any | None, params: dict[str, Any] | None = None
) -> Operation:
    """Record an operation on ``vm`` and queue it on the orchestration queue.

    Raises ValidationError with the reason when it cannot be done in the VM's current state.
    """
    params = dict(params or {})
    if "snapshot" in params:
        params["snapshot"] = str(params["snapshot"]).strip()
    reason = refusal(vm, kind, params)
    if reason:
        raise ValidationError(reason)
    return create_vm_operation(vm=vm, kind=kind, params=params, user=user, enqueue=_enqueue)


def create_vm_operation(
    *, vm: VirtualMachine, kind: str, params: dict[str, Any], user: Any | None, enqueue: Callable[[int], None]
) -> Operation:
    """Write an operation on ``vm`` and, once committed, ``enqueue`` its id.

    The database allows one active operation per VM: a second one is refused with ValidationError.
    """
    try:
        with transaction.atomic():
            op = Operation.objects.create(
                kind=kind,
                vm=vm,
                provider_id=vm.provider_id,
                target_name=vm.name,
                params=params,
                requested_by=user if user is not None and user.is_authenticated else None,
                message="queued",
            )
    except IntegrityError:  # another request for this VM won the race a moment ago
        raise ValidationError(f"VM {vm.name!r} already has an operation in progress") from None
    op_id = op.pk
    transaction.on_commit(lambda: enqueue(op_id))
    return op


def _enqueue(op_id: int) -> None:
    from inventory.tasks import run_operation

    enqueue_operation(op_id, run_operation.delay)


def enqueue_operation(op_id: int, send: Callable[[int], object]) -> None:
    """Send the task; if the broker cannot take it, the operation fails at once instead of waiting forever."""
    try:
        send(op_id)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; all mean "not queued"
        logger.error("could not queue operation #%s: %s", op_id, exc)
        Operation.objects.filter(pk=op_id, status=Operation.Status.PENDING).update(
            status=Operation.Status.FAILED,
            finished=timezone.now(),
            message="could not queue the operation",
            error=f"could not queue the operation: the task broker is unreachable ({type(exc).__name__})",
        )


def request_bulk_vm_operation(
    *, vms: Iterable[VirtualMachine], kind: str, user: Any | None, params: dict[str, Any] | None = None
) -> tuple[list[Operation], list[tuple[VirtualMachine, str]]]:
    """Request ``kind`` for each VM; returns the operations queued and the VMs refused with why."""
    queued: list[Operation] = []
    refused: list[tuple[VirtualMachine, str]] = []
    for vm in vms:
        try:
            queued.append(request_vm_operation(vm=vm, kind=kind, user=user, params=params))
        except ValidationError as exc:
            refused.append((vm, "; ".join(exc.messages)))
    return queued, refused


class OperationRun:
    """Progress and log writes of one operation being executed."""

    def __init__(self, op: Operation) -> None:
        self.op = op

    def log(self, message: str, level: str = "info") -> None:
        self.op.log.create(message=message, level=level)

    def progress(self, percent: int, message: str) -> None:
        self.op.progress = max(0, min(100, percent))
        self.op.message = message[:500]
        Operation.objects.filter(pk=self.op.pk).update(progress=self.op.progress, message=self.op.message)


def claim_operation(op_id: int) -> tuple[Operation, bool]:
    """Mark a pending operation running; ``False`` when another delivery of its task claimed it first."""
    claimed = Operation.objects.filter(pk=op_id, status=Operation.Status.PENDING).update(
        status=Operation.Status.RUNNING, started=timezone.now(), message="starting"
    )
    op = Operation.objects.select_related("vm", "vm__provider", "provider").get(pk=op_id)
    if not claimed:
        logger.info("operation #%s already %s; not running it again", op_id, op.status)
    return op, bool(claimed)


def execute_operation(op_id: int) -> Operation:
    """Claim and execute one operation. A second call for the same operation does nothing."""
    op, claimed = claim_operation(op_id)
    if not claimed:
        return op
    run = OperationRun(op)
    if op.kind == Kind.ENVIRONMENT_CHECK:
        return _execute_environment_check(op, run)
    vm = op.vm
    if vm is None:
        return finish_operation(op, ok=False, error="the VM was deleted from the inventory before the operation ran")
    run.log(f"{op.get_kind_display()} of VM {vm.name} ({vm.uuid}) on {vm.provider.name}")
    try:
        driver = provider_driver(vm.provider)
        try:
            _EXECUTORS[op.kind](driver, vm, op, run)
        finally:
            driver.close()
    except OperationFailed as exc:
        run.log(exc.message, level="error")
        return finish_operation(op, ok=False, error=exc.message, result=exc.result)
    except (DriverError, SecretError) as exc:
        run.log(str(exc), level="error")
        return finish_operation(op, ok=False, error=str(exc))
    except Exception as exc:
        logger.exception("operation #%s failed unexpectedly", op_id)
        run.log(f"internal error: {type(exc).__name__}", level="error")
        return finish_operation(op, ok=False, error=f"internal error: {type(exc).__name__}: {exc}")
    run.log("done")
    return finish_operation(op, ok=True)


def _execute_environment_check(op: Operation, run: OperationRun) -> Operation:
    if op.provider is None:
        return finish_operation(op, ok=False, error="the provider was deleted before the check ran")
    run.progress(10, f"checking {op.provider.name}")
    try:
        ok, message = check_environment(op.provider, run)
    except Exception as exc:
        logger.exception("environment check #%s failed unexpectedly", op.pk)
        return finish_operation(op, ok=False, error=f"internal error: {type(exc).__name__}: {exc}")
    if not ok:
        return finish_operation(op, ok=False, error=message or "the environment check found problems")
    run.log("done")
    return finish_operation(op, ok=True)


class OperationFailed(Exception):
    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}


def finish_operation(op: Operation, *, ok: bool, error: str = "", result: dict[str, Any] | None = None) -> Operation:
    op.status = Operation.Status.SUCCEEDED if ok else Operation.Status.FAILED
    op.finished = timezone.now()
    op.progress = 100 if ok else op.progress
    op.message = "done" if ok else error[:500]
    op.error = error
    op.result = {**op.result, **(result or {})}
    op.save(update_fields=["status", "finished", "progress", "message", "error", "result"])
    return op


def _record_state(driver: Driver, vm: VirtualMachine) -> str:
    """Read the VM's state now and store it; returns the normalized state."""
    reading = driver.vm_state(vm.uuid)
    normalized = states.normalize(vm.provider.kind, reading.state, reading.state_reason)
    VirtualMachine.objects.filter(pk=vm.pk).update(
        state=normalized, raw_state=reading.state, state_reason=reading.state_reason
    )
    vm.state, vm.raw_state, vm.state_reason = normalized, reading.state, reading.state_reason
    return normalized


def _wait_for(
    driver: Driver,
    vm: VirtualMachine,
    run: OperationRun,
    wanted: frozenset[str],
    *,
    timeout: float,
    start_pct: int,
    label: str,
) -> bool:
    """Poll the VM's state until it is one of ``wanted`` or ``timeout`` passes; progress as time goes."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    while True:
        state = _record_state(driver, vm)
        if state in wanted:
            return True
        if time.monotonic() >= deadline:
            return False
        elapsed = time.monotonic() - began
        run.progress(start_pct + int((95 - start_pct) * elapsed / max(timeout, 1)), f"{label} ({int(elapsed)} s)")
        time.sleep(POLL_SECONDS)


def _power(
    method: Callable[[Driver, str], None], verb: str
) -> Callable[[Driver, VirtualMachine, Operation, OperationRun], None]:
    def execute(driver: Driver, vm: VirtualMachine, op: Operation, run: OperationRun) -> None:
        run.progress(10, f"{verb}")
        method(driver, vm.uuid)
        run.log(f"{verb}: request accepted by the hypervisor")
        wanted = SPECS[op.kind].done_when
        if not _wait_for(
            driver, vm, run, wanted, timeout=STATE_WAIT_SECONDS, start_pct=30, label="waiting for the new state"
        ):
            raise OperationFailed(
                f"VM {vm.name!r} is {vm.state} after {STATE_WAIT_SECONDS} s, expected {', '.join(sorted(wanted))}"
            )
        run.log(f"VM is {vm.state}")

    return execute


def _shutdown(driver: Driver, vm: VirtualMachine, op: Operation, run: OperationRun) -> None:
    timeout = int(op.params.get("timeout") or settings.VOM_SHUTDOWN_TIMEOUT)
    run.progress(5, "asking the guest to shut down")
    driver.shutdown(vm.uuid)
    run.log(f"graceful shutdown requested; waiting up to {timeout} s for the guest to power off")
    if not _wait_for(
        driver,
        vm,
        run,
        frozenset({S.STOPPED}),
        timeout=timeout,
        start_pct=10,
        label="waiting for the guest to shut down",
    ):
        raise OperationFailed(
            f"VM {vm.name!r} did not shut down within {timeout} s (the guest may ignore the shutdown request). "
            "It is still running: use Power off to force it off.",
            result={"timed_out": True, "can_force": True},
        )
    run.log("VM is stopped")


def _reboot(driver: Driver, vm: VirtualMachine, op: Operation, run: OperationRun) -> None:
    run.progress(20, "rebooting")
    driver.reboot(vm.uuid)
    run.log("reboot requested")
    _record_state(driver, vm)


def _snapshot(driver: Driver, vm: VirtualMachine, op: Operation, run: OperationRun) -> None:
    name = str(op.params["snapshot"])
    now = timezone.now()
    if op.kind == Kind.SNAPSHOT_CREATE:
        run.progress(20, f"creating snapshot {name}")
        driver.snapshot_create(vm.uuid, name, str(op.params.get("description", "")))
        VMSnapshot.objects.filter(vm=vm, current=True).update(current=False)
        VMSnapshot.objects.update_or_create(
            vm=vm,
            name=name,
            defaults={
                "created_at": now,
                "current": True,
                "state": vm.raw_state,
                "description": str(op.params.get("description", "")),
            },
        )
        run.log(f"snapshot {name!r} created")
    elif op.kind == Kind.SNAPSHOT_REVERT:
        run.progress(20, f"reverting to snapshot {name}")
        driver.snapshot_revert(vm.uuid, name)
        VMSnapshot.objects.filter(vm=vm).update(current=False)
        VMSnapshot.objects.filter(vm=vm, name=name).update(current=True)
        run.log(f"reverted to snapshot {name!r}")
    else:
        run.progress(20, f"deleting snapshot {name}")
        driver.snapshot_delete(vm.uuid, name)
        VMSnapshot.objects.filter(vm=vm, name=name).delete()
        run.log(f"snapshot {name!r} deleted")
    _record_state(driver, vm)


def _migrate(driver: Driver, vm: VirtualMachine, op: Operation, run: OperationRun) -> None:
    host_pk = op.params.get("host")
    target = Host.objects.filter(pk=host_pk, provider_id=vm.provider_id).first() if host_pk else None
    migrate = getattr(driver, "migrate", None)
    vm_host = getattr(driver, "vm_host", None)
    if migrate is None or vm_host is None:
        raise OperationFailed(f"{vm.provider.get_kind_display()} VMs cannot be migrated from this console")
    where = f"to {target.hostname}" if target else "to a host the manager chooses"
    source = vm_host(vm.uuid)
    run.progress(10, f"live-migrating {where}")
    migrate(vm.uuid, target.uid if target else None)
    run.log(f"migration {where} requested (from host {source or 'unknown'})")
    # Done when the VM runs again on another host; a VM still up on the source host has not moved.
    deadline = time.monotonic() + settings.VOM_MIGRATE_TIMEOUT
    began = time.monotonic()
    while True:
        state = _record_state(driver, vm)
        now_on = vm_host(vm.uuid)
        if state == S.RUNNING and now_on and now_on != source:
            break
        if time.monotonic() >= deadline:
            raise OperationFailed(
                f"VM {vm.name!r} did not move within {settings.VOM_MIGRATE_TIMEOUT} s: it is {vm.state} on its"
                " original host (see the manager's events for why)"
            )
        elapsed = time.monotonic() - began
        run.progress(20 + int(75 * elapsed / settings.VOM_MIGRATE_TIMEOUT), f"migrating ({int(elapsed)} s)")
        time.sleep(POLL_SECONDS)
    arrived = Host.objects.filter(provider_id=vm.provider_id, uid=now_on).first()
    if target is not None and (arrived is None or arrived.pk != target.pk):
        raise OperationFailed(
            f"VM {vm.name!r} moved, but to {arrived.hostname if arrived else now_on}, not {target.hostname}"
        )
    VirtualMachine.objects.filter(pk=vm.pk).update(host=arrived)
    run.log(f"VM runs on {arrived.hostname if arrived else now_on}")


_EXECUTORS: dict[str, Callable[[Driver, VirtualMachine, Operation, OperationRun], None]] = {
    Kind.VM_START: _power(lambda d, u: d.start(u), "starting"),
    Kind.VM_POWER_OFF: _power(lambda d, u: d.power_off(u), "powering off"),
    Kind.VM_SUSPEND: _power(lambda d, u: d.suspend(u), "suspending"),
    Kind.VM_RESUME: _power(lambda d, u: d.resume(u), "resuming"),
    Kind.VM_SHUTDOWN: _shutdown,
    Kind.VM_REBOOT: _reboot,
    Kind.SNAPSHOT_CREATE: _snapshot,
    Kind.SNAPSHOT_REVERT: _snapshot,
    Kind.SNAPSHOT_DELETE: _snapshot,
    Kind.VM_MIGRATE: _migrate,
}


def request_environment_check(*, provider: Provider, user: Any | None) -> Operation:
    """Queue the environment check of a provider (the reference product's ``havirtverify``)."""
    limit = timezone.now() - timedelta(seconds=settings.VOM_OPERATION_STALE_AFTER)
    Operation.objects.filter(provider=provider, kind=Kind.ENVIRONMENT_CHECK).filter(
        Q(status=Operation.Status.RUNNING, started__lt=limit) | Q(status=Operation.Status.PENDING, created__lt=limit)
    ).update(status=Operation.Status.FAILED, finished=timezone.now(), error="abandoned: the worker stopped")
    if Operation.objects.filter(
        provider=provider, kind=Kind.ENVIRONMENT_CHECK, status__in=[Operation.Status.PENDING, Operation.Status.RUNNING]
    ).exists():
        raise ValidationError(f"an environment check of {provider.name} is already in progress")
    op = Operation.objects.create(
        kind=Kind.ENVIRONMENT_CHECK,
        provider=provider,
        target_name=provider.name,
        requested_by=user if user is not None and user.is_authenticated else None,
        message="queued",
    )
    op_id = op.pk
    transaction.on_commit(lambda: _enqueue(op_id))
    return op


def check_environment(provider: Provider, run: OperationRun | None = None) -> tuple[bool, str]:
    """Check that the console can manage ``provider``'s VMs and record the result on it and its VMs.

    RHEV: the URL and credentials work, and the manager's own HA is disabled for each VM (else the
    manager and this console would both restart it). Other platforms: the host answers.
    Only rows whose verdict changed are written.
    """
    vms = list(VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True))
    per_vm: dict[str, Any] = {}
    try:
        driver = provider_driver(provider)
        try:
            verify = getattr(driver, "verify", None)
            if verify is not None:
                result = verify([vm.uuid for vm in vms])
                ok, message = bool(result["ok"]), str(result.get("reason") or "")
                per_vm = result.get("vms", {})
            else:
                driver.vm_state(vms[0].uuid) if vms else driver.discover()
                ok, message = True, ""
        finally:
            driver.close()
    except (DriverError, SecretError) as exc:
        ok, message = False, str(exc)
        per_vm = {vm.uuid: {"ok": False, "reason": message} for vm in vms}
    now = timezone.now()
    with transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(
            check_ok=ok, check_message=message or ("all checks passed" if ok else "failed"), checked_at=now
        )
        changed: dict[tuple[bool, str], list[int]] = {}
        for vm in vms:
            verdict = per_vm.get(vm.uuid, {"ok": ok, "reason": "" if ok else message})
            check = (bool(verdict.get("ok")), str(verdict.get("reason") or ""))
            if (vm.check_ok, vm.check_message) != check:
                changed.setdefault(check, []).append(vm.pk)
        for (check_ok, check_message), pks in changed.items():  # one UPDATE per verdict, not per VM
            for start in range(0, len(pks), 500):
                VirtualMachine.objects.filter(pk__in=pks[start : start + 500]).update(
                    check_ok=check_ok, check_message=check_message
                )
    if run is not None:
        failing = sum(1 for v in per_vm.values() if not v.get("ok"))
        run.log(f"{provider.name}: {'ok' if ok else 'problems found'}; {failing} of {len(vms)} VMs fail the check")
    return ok, message
