"""VM operations: request one (a job first, then a task), and execute it step by step.

Each operation is a job (``vom.jobs``) targeting its VM, holding the lock ``vm:<id>`` while it is
queued or running, so a VM has one operation at a time. The executors run as steps: the platform is
asked once, then the VM's state is read again in later steps, re-queued with a countdown, until it
is what the operation waits for or its time is up — no worker sleeps while a guest shuts down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from inventory.drivers.base import Driver, DriverError
from inventory.models import Host, Provider, StorageVolume, VirtualMachine, VMSnapshot
from inventory.services.providers import provider_driver
from inventory.services.sync import record_vm_state
from vom.jobs import lifecycle
from vom.jobs.context import JobContext
from vom.jobs.kinds import JobKind
from vom.jobs.models import ACTIVE, Job
from vom.jobs.outcomes import Done, Failed, JobFailed, Outcome, Wait

logger = logging.getLogger(__name__)
S = VirtualMachine.State


class Kind:
    """The VM operations' job kinds (and the environment check of a provider)."""

    VM_START = "vm_start"
    VM_SHUTDOWN = "vm_shutdown"
    VM_POWER_OFF = "vm_power_off"
    VM_REBOOT = "vm_reboot"
    VM_SUSPEND = "vm_suspend"
    VM_RESUME = "vm_resume"
    SNAPSHOT_CREATE = "snapshot_create"
    SNAPSHOT_REVERT = "snapshot_revert"
    SNAPSHOT_DELETE = "snapshot_delete"
    VM_MIGRATE = "vm_migrate"
    ENVIRONMENT_CHECK = "environment_check"


LABELS: dict[str, str] = {
    Kind.VM_START: "Start",
    Kind.VM_SHUTDOWN: "Shut down",
    Kind.VM_POWER_OFF: "Power off",
    Kind.VM_REBOOT: "Reboot",
    Kind.VM_SUSPEND: "Suspend",
    Kind.VM_RESUME: "Resume",
    Kind.SNAPSHOT_CREATE: "Create snapshot",
    Kind.SNAPSHOT_REVERT: "Revert to snapshot",
    Kind.SNAPSHOT_DELETE: "Delete snapshot",
    Kind.VM_MIGRATE: "Migrate",
    Kind.ENVIRONMENT_CHECK: "Check environment",
}


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
# How long a state change may take before the operation fails (a shutdown: VOM_SHUTDOWN_TIMEOUT).
STATE_WAIT_SECONDS = 30
# Waits between readings of the state: short at first (most changes take a second), then longer.
POLL_SECONDS = (1.0, 1.0, 2.0, 2.0, 3.0, 5.0)

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


def lock_of(vm: VirtualMachine) -> str:
    """The lock every job changing ``vm`` holds: one operation at a time per VM."""
    return f"vm:{vm.pk}"


def jobs_on(vm: VirtualMachine) -> Any:
    """The jobs targeting ``vm``, newest first."""
    return Job.objects.filter(target_type__app_label="inventory", target_type__model="virtualmachine", target_id=vm.pk)


def allowed_from(vm: VirtualMachine, kind: str) -> frozenset[str]:
    return SPECS[kind].allowed_from | PLATFORM_ALLOWED_FROM.get((vm.provider.kind, kind), frozenset())


def supported(vm: VirtualMachine, kind: str) -> bool:
    """Whether the VM's platform can do ``kind`` at all."""
    return kind in PLATFORM_OPERATIONS.get(vm.provider.kind, frozenset())


def can_force_power_off(job: Job, vm: VirtualMachine | None) -> bool:
    """Whether to offer "Power off" after ``job``: a graceful shutdown that timed out, on a VM that can be."""
    return (
        job.kind == Kind.VM_SHUTDOWN
        and job.status == Job.Status.FAILED
        and bool((job.result or {}).get("can_force"))
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
    label = LABELS[kind]
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
    return busy(vm)


def busy(vm: VirtualMachine) -> str | None:
    """Why ``vm`` takes no new operation now (another is queued or running), or None.

    A holder whose worker died is expired here (as the sweep would), so its lock does not linger.
    """
    holder = Job.objects.filter(lock=lock_of(vm), status__in=ACTIVE).first()
    if holder is None or lifecycle.expire_stale(Job.objects.filter(pk=holder.pk)):
        holder = Job.objects.filter(lock=lock_of(vm), status__in=ACTIVE).first()
    if holder is None:
        return None
    return f"VM {vm.name!r} already has an operation in progress: {holder.kind_label} (#{holder.pk})"


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
    *,
    vm: VirtualMachine,
    kind: str,
    user: Any | None,
    params: dict[str, Any] | None = None,
    trigger: str = Job.Trigger.GUI,
) -> Job:
    """Record an operation on ``vm`` and queue it on the orchestration queue.

    Raises ValidationError with the reason when it cannot be done in the VM's current state, and
    QueueUnavailable (nothing recorded) when the task queue is down.
    """
    params = dict(params or {})
    if "snapshot" in params:
        params["snapshot"] = str(params["snapshot"]).strip()
    reason = refusal(vm, kind, params)
    if reason:
        raise ValidationError(reason)
    return lifecycle.submit(create_vm_job(vm=vm, kind=kind, params=params, user=user, trigger=trigger))


def create_vm_job(
    *, vm: VirtualMachine, kind: str, params: dict[str, Any], user: Any | None, trigger: str = Job.Trigger.GUI
) -> Job:
    """Write a job of ``kind`` changing ``vm`` (not yet queued), holding the VM's lock.

    A second one while another is queued or running is refused with ValidationError.
    """
    try:
        return lifecycle.create(
            kind, target=vm, target_name=vm.name, lock=lock_of(vm), params=params, user=user, trigger=trigger
        )
    except lifecycle.Locked as exc:
        holder = f": {exc.holder.kind_label} (#{exc.holder.pk})" if exc.holder is not None else ""
        raise ValidationError(f"VM {vm.name!r} already has an operation in progress{holder}") from None


def request_bulk_vm_operation(
    *,
    vms: Iterable[VirtualMachine],
    kind: str,
    user: Any | None,
    params: dict[str, Any] | None = None,
    trigger: str = Job.Trigger.GUI,
) -> tuple[list[Job], list[tuple[VirtualMachine, str]]]:
    """Request ``kind`` for each VM; returns the operations queued and the VMs refused with why."""
    queued: list[Job] = []
    refused: list[tuple[VirtualMachine, str]] = []
    for vm in vms:
        try:
            queued.append(request_vm_operation(vm=vm, kind=kind, user=user, params=params, trigger=trigger))
        except ValidationError as exc:
            refused.append((vm, "; ".join(exc.messages)))
    return queued, refused


# --- execution ----------------------------------------------------------------------------------

Executor = Callable[[Driver, VirtualMachine, JobContext], Outcome]


def _vm_of(ctx: JobContext) -> VirtualMachine:
    vm = VirtualMachine.objects.select_related("provider").filter(pk=ctx.target_pk).first()
    if vm is None:
        raise JobFailed("the VM was deleted from the inventory before the operation ran")
    return vm


def _with_driver(execute: Executor) -> Callable[[JobContext], Outcome]:
    """One step of a VM operation: the VM, a driver for its provider, closed after the step."""

    def run(ctx: JobContext) -> Outcome:
        vm = _vm_of(ctx)
        if not ctx.checkpoint and not ctx.resumed:
            ctx.log(f"{ctx.job.kind_label} of VM {vm.name} ({vm.uuid}) on {vm.provider.name}")
        driver = provider_driver(vm.provider)
        try:
            return execute(driver, vm, ctx)
        finally:
            driver.close()

    return run


def _record_state(driver: Driver, vm: VirtualMachine) -> str:
    """Read the VM's state now and store it (compare-and-set); returns the normalized state."""
    return record_vm_state(vm, driver.vm_state(vm.uuid))


def _poll(ctx: JobContext, *, deadline: float, message: str, start_pct: int, **kept: Any) -> Wait:
    """Wait for the next reading: the job goes back to the queue with a countdown."""
    polls = int(ctx.checkpoint.get("polls", 0))
    began = float(ctx.checkpoint.get("began", timezone.now().timestamp()))
    now = timezone.now().timestamp()
    span = max(deadline - began, 1.0)
    ctx.progress(
        start_pct + int((95 - start_pct) * min(1.0, (now - began) / span)), f"{message} ({int(now - began)} s)"
    )
    checkpoint = {**ctx.checkpoint, **kept, "deadline": deadline, "began": began, "polls": polls + 1}
    return Wait(POLL_SECONDS[min(polls, len(POLL_SECONDS) - 1)], checkpoint=checkpoint)


def _until(
    ctx: JobContext,
    driver: Driver,
    vm: VirtualMachine,
    wanted: frozenset[str],
    *,
    timeout: float,
    start_pct: int,
    label: str,
    timed_out: Callable[[], Outcome],
) -> Outcome:
    """Done once the VM is in one of ``wanted``; the outcome of ``timed_out`` after ``timeout``."""
    state = _record_state(driver, vm)
    if state in wanted:
        ctx.log(f"VM is {vm.state}")
        return Done()
    deadline = float(ctx.checkpoint.get("deadline") or timezone.now().timestamp() + timeout)
    if timezone.now().timestamp() >= deadline:
        return timed_out()
    return _poll(ctx, deadline=deadline, message=label, start_pct=start_pct)


def _power(method: Callable[[Driver, str], None], verb: str) -> Executor:
    def execute(driver: Driver, vm: VirtualMachine, ctx: JobContext) -> Outcome:
        wanted = SPECS[ctx.job.kind].done_when
        if not ctx.checkpoint:
            # Asked once. Read first: a step run again after its worker died finds it already done.
            if ctx.resumed and _record_state(driver, vm) in wanted:
                ctx.log(f"VM is {vm.state}")
                return Done()
            ctx.progress(10, verb)
            method(driver, vm.uuid)
            ctx.log(f"{verb}: request accepted by the hypervisor")

        def timed_out() -> Outcome:
            expected = ", ".join(sorted(wanted))
            return Failed(f"VM {vm.name!r} is {vm.state} after {STATE_WAIT_SECONDS} s, expected {expected}")

        return _until(
            ctx,
            driver,
            vm,
            wanted,
            timeout=STATE_WAIT_SECONDS,
            start_pct=30,
            label="waiting for the new state",
            timed_out=timed_out,
        )

    return execute


def _shutdown(driver: Driver, vm: VirtualMachine, ctx: JobContext) -> Outcome:
    timeout = int(ctx.params.get("timeout") or settings.VOM_SHUTDOWN_TIMEOUT)
    if not ctx.checkpoint:
        if ctx.resumed and _record_state(driver, vm) == S.STOPPED:
            ctx.log("VM is stopped")
            return Done()
        ctx.progress(5, "asking the guest to shut down")
        driver.shutdown(vm.uuid)
        ctx.log(f"graceful shutdown requested; waiting up to {timeout} s for the guest to power off")

    def timed_out() -> Outcome:
        return Failed(
            f"VM {vm.name!r} did not shut down within {timeout} s (the guest may ignore the shutdown request). "
            "It is still running: use Power off to force it off.",
            {"timed_out": True, "can_force": True},
        )

    return _until(
        ctx,
        driver,
        vm,
        frozenset({S.STOPPED}),
        timeout=timeout,
        start_pct=10,
        label="waiting for the guest to shut down",
        timed_out=timed_out,
    )


def _reboot(driver: Driver, vm: VirtualMachine, ctx: JobContext) -> Outcome:
    ctx.progress(20, "rebooting")
    driver.reboot(vm.uuid)
    ctx.log("reboot requested")
    _record_state(driver, vm)
    return Done()


def _snapshot(driver: Driver, vm: VirtualMachine, ctx: JobContext) -> Outcome:
    name = str(ctx.params["snapshot"])
    kind = ctx.job.kind
    if kind == Kind.SNAPSHOT_CREATE:
        ctx.progress(20, f"creating snapshot {name}")
        description = str(ctx.params.get("description", ""))
        driver.snapshot_create(vm.uuid, name, description)
        VMSnapshot.objects.filter(vm=vm, current=True).update(current=False)
        VMSnapshot.objects.update_or_create(
            vm=vm,
            name=name,
            defaults={"created_at": timezone.now(), "current": True, "state": vm.raw_state, "description": description},
        )
        ctx.log(f"snapshot {name!r} created")
    elif kind == Kind.SNAPSHOT_REVERT:
        ctx.progress(20, f"reverting to snapshot {name}")
        driver.snapshot_revert(vm.uuid, name)
        VMSnapshot.objects.filter(vm=vm).update(current=False)
        VMSnapshot.objects.filter(vm=vm, name=name).update(current=True)
        ctx.log(f"reverted to snapshot {name!r}")
    else:
        ctx.progress(20, f"deleting snapshot {name}")
        driver.snapshot_delete(vm.uuid, name)
        VMSnapshot.objects.filter(vm=vm, name=name).delete()
        ctx.log(f"snapshot {name!r} deleted")
    _record_state(driver, vm)
    return Done()


def _migrate(driver: Driver, vm: VirtualMachine, ctx: JobContext) -> Outcome:
    host_pk = ctx.params.get("host")
    target = Host.objects.filter(pk=host_pk, provider_id=vm.provider_id).first() if host_pk else None
    where = f"to {target.hostname}" if target else "to a host the manager chooses"
    if not ctx.checkpoint:
        source = driver.vm_host(vm.uuid)
        ctx.progress(10, f"live-migrating {where}")
        driver.migrate(vm.uuid, target.uid if target else None)
        ctx.log(f"migration {where} requested (from host {source or 'unknown'})")
    else:
        source = str(ctx.checkpoint.get("source", ""))
    # Done when the VM runs again on another host; a VM still up on the source host has not moved.
    state = _record_state(driver, vm)
    now_on = driver.vm_host(vm.uuid)
    if not (state == S.RUNNING and now_on and now_on != source):
        deadline = float(ctx.checkpoint.get("deadline") or timezone.now().timestamp() + settings.VOM_MIGRATE_TIMEOUT)
        if timezone.now().timestamp() >= deadline:
            return Failed(
                f"VM {vm.name!r} did not move within {settings.VOM_MIGRATE_TIMEOUT} s: it is {vm.state} on its"
                " original host (see the manager's events for why)"
            )
        return _poll(ctx, deadline=deadline, message="migrating", start_pct=20, source=source)
    arrived = Host.objects.filter(provider_id=vm.provider_id, uid=now_on).first()
    if target is not None and (arrived is None or arrived.pk != target.pk):
        return Failed(f"VM {vm.name!r} moved, but to {arrived.hostname if arrived else now_on}, not {target.hostname}")
    VirtualMachine.objects.filter(pk=vm.pk).update(host=arrived)
    ctx.log(f"VM runs on {arrived.hostname if arrived else now_on}")
    return Done()


_EXECUTORS: dict[str, Executor] = {
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
# Power actions read the state before asking again, so a step cut short by a dead worker can run
# again; a reboot, a snapshot or a migration asked twice is not the same as asked once.
_RESUMABLE = frozenset({Kind.VM_START, Kind.VM_POWER_OFF, Kind.VM_SUSPEND, Kind.VM_RESUME, Kind.VM_SHUTDOWN})


# --- the environment check ----------------------------------------------------------------------


def check_lock(provider: Provider) -> str:
    return f"check:provider:{provider.pk}"


def request_environment_check(*, provider: Provider, user: Any | None, trigger: str = Job.Trigger.GUI) -> Job:
    """Queue the environment check of a provider (the reference product's ``havirtverify``)."""
    try:
        job = lifecycle.create(
            Kind.ENVIRONMENT_CHECK,
            target=provider,
            target_name=provider.name,
            lock=check_lock(provider),
            user=user,
            trigger=trigger,
        )
    except lifecycle.Locked:
        raise ValidationError(f"an environment check of {provider.name} is already in progress") from None
    return lifecycle.submit(job)


def _execute_environment_check(ctx: JobContext) -> Outcome:
    provider = Provider.objects.filter(pk=ctx.target_pk).first()
    if provider is None:
        return Failed("the provider was deleted before the check ran")
    ctx.progress(10, f"checking {provider.name}")
    ok, message = check_environment(provider, ctx)
    if not ok:
        return Failed(message or "the environment check found problems")
    ctx.log("done")
    return Done()


def check_environment(provider: Provider, ctx: JobContext | None = None) -> tuple[bool, str]:
    """Check that the console can manage ``provider``'s VMs and record the result on it and its VMs.

    RHEV: the URL and credentials work, and the manager's own HA is disabled for each VM (else the
    manager and this console would both restart it). Other platforms: the host answers, and knows
    each VM. Only rows whose verdict changed are written.
    """
    from django.db import transaction

    vms = list(VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True))
    try:
        driver = provider_driver(provider)
        try:
            check = driver.verify([vm.uuid for vm in vms])
        finally:
            driver.close()
        ok, message = check.ok, check.reason
        per_vm = {uuid: (c.ok, c.reason) for uuid, c in check.vms.items()}
    except DriverError as exc:
        ok, message = False, str(exc)
        per_vm = {vm.uuid: (False, message) for vm in vms}
    now = timezone.now()
    with transaction.atomic():
        Provider.objects.filter(pk=provider.pk).update(
            check_ok=ok, check_message=message or ("all checks passed" if ok else "failed"), checked_at=now
        )
        changed: dict[tuple[bool, str], list[int]] = {}
        for vm in vms:
            verdict = per_vm.get(vm.uuid, (ok, "" if ok else message))
            if (vm.check_ok, vm.check_message) != verdict:
                changed.setdefault(verdict, []).append(vm.pk)
        for (check_ok, check_message), pks in changed.items():  # one UPDATE per verdict, not per VM
            for start in range(0, len(pks), 500):
                VirtualMachine.objects.filter(pk__in=pks[start : start + 500]).update(
                    check_ok=check_ok, check_message=check_message
                )
    if ctx is not None:
        failing = sum(1 for verdict_ok, _ in per_vm.values() if not verdict_ok)
        ctx.log(f"{provider.name}: {'ok' if ok else 'problems found'}; {failing} of {len(vms)} VMs fail the check")
    return ok, message


KINDS = [
    *(
        JobKind(
            name=kind,
            label=LABELS[kind],
            queue="orchestration",
            run=_with_driver(execute),
            resumable=kind in _RESUMABLE,
            errors=(DriverError,),
            page_template="inventory/jobs/_shutdown.html" if kind == Kind.VM_SHUTDOWN else "",
        )
        for kind, execute in _EXECUTORS.items()
    ),
    JobKind(
        name=Kind.ENVIRONMENT_CHECK,
        label=LABELS[Kind.ENVIRONMENT_CHECK],
        queue="orchestration",
        run=_execute_environment_check,
        errors=(DriverError,),
    ),
]
