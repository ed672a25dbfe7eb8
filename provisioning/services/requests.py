"""Rapid provisioning: validate a request for N VMs from a golden image, then execute it VM by VM.

``request_provisioning`` checks everything it can before anything is made (names free and valid,
pool space for the mode, host known, template VM shut off) and writes the operation, the request
and one :class:`ProvisionedVM` row per VM. ``execute_provisioning`` (the Celery task's only call)
claims the operation and, per VM: creates the boot volume (a qcow2 child backed by the image, or a
full copy), defines the VM from the template with a new name, UUID and MACs, and starts it if asked.
A VM that fails leaves nothing half-made (its volume is removed) and the others go on.

Each step is written to the VM's row *before* the platform is called, so a task redelivered after its
worker died resumes from the rows and finds what the dead worker made instead of making it twice.
"""

from __future__ import annotations

import logging
import os
import re
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from inventory.drivers.base import DriverError, VolumeInfo
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt_storage import (
    clone_volume,
    create_overlay_volume,
    define_vm_from_template,
    delete_volume,
    domain_definition,
    domain_is_active,
    domains_using,
    refresh_pool,
    volume_by_path,
)
from inventory.models import Host, Network, Operation, StoragePool, StorageVolume, VirtualMachine
from inventory.secrets import SecretError
from inventory.services.operations import (
    OperationRun,
    claim_operation,
    enqueue_operation,
    finish_operation,
    stale_limits,
)
from provisioning.models import ENDED, GoldenImage, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import (
    NAME_RE,
    NAME_RULE,
    MiB,
    libvirt_driver,
    pool_problem,
    refresh_inventory,
    require_libvirt,
    volume_file_name,
)
from vom.web.units import human_bytes

logger = logging.getLogger(__name__)
V = ProvisionedVM.Status
MAX_COUNT = 500
# What a fresh qcow2 child takes before the guest writes: header, L1 and refcount tables (~200 KiB).
OVERLAY_INITIAL_BYTES = 1 * MiB
MIN_MEMORY_BYTES = 64 * MiB
MAX_VCPUS = 512
HEARTBEAT_SECONDS = 60


# --- names ------------------------------------------------------------------------------------


def expand_pattern(pattern: str, count: int, first: int = 1) -> list[str]:
    """The names a pattern like ``web-{n:02d}`` gives for ``count`` VMs numbered from ``first``.

    Only the field ``n`` is allowed, with an optional format spec; raises ValueError with the reason.
    """
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValueError("a name pattern is required, e.g. web-{n:02d}")
    fields = []
    try:
        for _literal, field, spec, conversion in string.Formatter().parse(pattern):
            if field is None:
                continue
            if field != "n" or conversion:
                raise ValueError(f"only {{n}} may appear in braces (found {{{field}}}); use {{{{ }}}} for a brace")
            if "{" in (spec or ""):
                raise ValueError("a nested field is not allowed in the format of {n}")
            if any(int(width) > 63 for width in re.findall(r"\d+", spec or "")):
                raise ValueError("a name has at most 63 characters: the width in {n:…} is too large")
            fields.append(field)
    except ValueError as exc:
        raise ValueError(f"invalid name pattern: {exc}") from None
    if count > 1 and not fields:
        raise ValueError("the pattern must contain {n} to give each VM its own name, e.g. web-{n:02d}")
    try:
        return [pattern.format(n=number) for number in range(first, first + count)]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid name pattern: {exc}") from None


# --- validation and request -------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What new boot volumes are made from: a golden image (or any volume) and a template definition."""

    label: str
    provider_id: int
    path: str
    format: str
    capacity_bytes: int
    allocation_bytes: int
    template_xml: str
    template_vm_id: int | None
    template_vm_uuid: str
    template_vcpus: int
    template_memory_bytes: int
    golden_image: GoldenImage | None


def source_of(image: GoldenImage) -> Source:
    current = StorageVolume.objects.filter(pool__provider_id=image.provider_id, path=image.volume_path).first()
    return Source(
        label=image.name,
        provider_id=image.provider_id,
        path=image.volume_path,
        format=image.format,
        capacity_bytes=current.capacity_bytes if current else image.capacity_bytes,
        allocation_bytes=current.allocation_bytes if current else image.allocation_bytes,
        template_xml=image.template_xml,
        template_vm_id=image.template_vm_id,
        template_vm_uuid=image.template_vm_uuid,
        template_vcpus=image.template_vcpus,
        template_memory_bytes=image.template_memory_bytes,
        golden_image=image,
    )


def source_from_volume(volume: StorageVolume, template_vm: VirtualMachine) -> Source:
    """A plain pool volume as the source of a new VM's boot disk, with ``template_vm``'s definition.

    The definition is read from the platform now. The volume must not be in use by a VM that is not
    shut off (a copy of a disk being written is not consistent).
    """
    provider = volume.pool.provider
    require_libvirt(provider)
    if not volume.path:
        raise ValidationError({"volume": [f"Volume {volume.name} has no path a VM could boot from."]})
    if template_vm.provider_id != provider.pk or template_vm.removed_at is not None:
        raise ValidationError({"template_vm": [f"VM {template_vm.name!r} is not a present VM on {provider.name}."]})
    busy = (
        VirtualMachine.objects.filter(disks__source=volume.path, removed_at__isnull=True)
        .exclude(state=VirtualMachine.State.STOPPED)
        .first()
    )
    if busy is not None:
        raise ValidationError(
            {"volume": [f"{volume.name} is in use by VM {busy.name!r}, which is {busy.get_state_display().lower()}."]}
        )
    try:
        with libvirt_driver(provider) as driver:
            template_xml = domain_definition(driver, template_vm.uuid)
    except (DriverError, SecretError) as exc:
        raise ValidationError(f"cannot read the definition of VM {template_vm.name!r}: {exc}") from exc
    return Source(
        label=volume.name,
        provider_id=provider.pk,
        path=volume.path,
        format=volume.format or "raw",
        capacity_bytes=volume.capacity_bytes,
        allocation_bytes=volume.allocation_bytes,
        template_xml=template_xml,
        template_vm_id=None,  # only its definition is used: it may run
        template_vm_uuid=template_vm.uuid,
        template_vcpus=max(template_vm.vcpus, 1),
        template_memory_bytes=template_vm.memory_bytes,
        golden_image=None,
    )


def space_needed(*, mode: str, count: int, allocation_bytes: int) -> int:
    """Pool space a request needs now: a full copy takes what the image takes; a child only its metadata."""
    per_vm = OVERLAY_INITIAL_BYTES if mode == Mode.SPACE_OPTIMIZED else max(allocation_bytes, MiB)
    return per_vm * count


def expire_abandoned_requests(provider_id: int | None = None) -> int:
    """Fail requests whose worker gave no sign of life for ``VOM_OPERATION_STALE_AFTER`` seconds.

    Their unfinished VMs fail with the reason, so their names are free again; a volume a dead worker
    made may be left, and the VM's outcome says so.
    """
    limit, queued_limit = stale_limits()  # a queued request may wait behind long ones: a day
    stale = ProvisioningRequest.objects.filter(
        Q(operation__status=Operation.Status.PENDING, operation__created__lt=queued_limit)
        | Q(operation__status=Operation.Status.RUNNING)
        & (Q(heartbeat__lt=limit) | Q(heartbeat__isnull=True, operation__started__lt=limit))
    )
    if provider_id is not None:
        stale = stale.filter(provider_id=provider_id)
    expired = 0
    for request in stale.select_related("operation"):
        reason = "abandoned: the worker running the request stopped before it finished"
        with transaction.atomic():
            if not Operation.objects.filter(pk=request.operation_id, status=request.operation.status).update(
                status=Operation.Status.FAILED, finished=timezone.now(), message="abandoned", error=reason
            ):
                continue
            _abandon_rows(request, reason)
        expired += 1
    return expired


def _abandon_rows(request: ProvisioningRequest, reason: str) -> None:
    """The unfinished VMs of a request whose worker stopped: those not begun are cancelled if a user
    asked for it, the others fail with ``reason`` and what may be left of them on the host."""
    for row in request.vms.exclude(status__in=ENDED):
        if request.cancel_requested is not None and row.status == V.PENDING and not row.volume_created:
            _set(row, status=V.CANCELLED, error=_cancel_reason(request), finished=timezone.now())
            continue
        left = ""
        if row.volume_created or row.status != V.PENDING:
            left = f"; volume {row.volume_name} may be left in pool {request.pool_name}"
        if row.status in (V.DEFINING, V.STARTING):
            left += f" and VM {row.name} may be defined"
        _set(row, status=V.FAILED, error=f"{reason}{left}", finished=timezone.now())


def _active_requests(provider_id: int) -> Any:
    expire_abandoned_requests(provider_id)
    return ProvisionedVM.objects.filter(
        request__provider_id=provider_id,
        request__operation__status__in=[Operation.Status.PENDING, Operation.Status.RUNNING],
    ).exclude(status__in=[V.FAILED, V.CANCELLED])


def pattern_names(name_pattern: str, count: int, first_number: int) -> tuple[list[str], dict[str, list[str]]]:
    """The VM names of a request (valid and distinct), or the field errors saying why there are none."""
    errors: dict[str, list[str]] = {}
    if not 1 <= count <= MAX_COUNT:
        errors["count"] = [f"Between 1 and {MAX_COUNT} VMs per request."]
    if first_number < 0:
        errors["first_number"] = ["Zero or more."]
    elif first_number > 10**9:
        errors["first_number"] = ["Too large."]
    if errors:
        return [], errors
    try:
        names = expand_pattern(name_pattern, count, first_number)
    except ValueError as exc:
        return [], {"name_pattern": [f"{str(exc)[:1].upper()}{str(exc)[1:]}."]}
    bad = [n for n in names if not NAME_RE.match(n)]
    if bad:
        return [], {"name_pattern": [f"{bad[0]!r} is not a valid VM name: {NAME_RULE}."]}
    if len(set(names)) != len(names):
        return [], {"name_pattern": ["The pattern gives the same name to several VMs."]}
    return names, {}


def validate_request(
    *,
    source: Source,
    count: int,
    name_pattern: str,
    mode: str,
    pool: StoragePool | None,
    host: Host | None = None,
    vcpus: int | None = None,
    memory_bytes: int | None = None,
    network: str = "",
    bridge: str = "",
    first_number: int = 1,
) -> tuple[list[str], Host | None, dict[str, list[str]]]:
    """Check a request before anything is made: the names, the host, and (pool, field errors)."""
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if mode not in Mode.values:
        refuse("mode", f"Choose one of: {', '.join(Mode.values)}.")
    names, name_errors = pattern_names(name_pattern, count, first_number)
    for field, messages in name_errors.items():
        for message in messages:
            refuse(field, message)
    if names and "name_pattern" not in errors:
        taken = list(
            VirtualMachine.objects.filter(
                provider_id=source.provider_id, name__in=names, removed_at__isnull=True
            ).values_list("name", flat=True)[:5]
        )
        if taken:
            refuse("name_pattern", f"Already in use on this host: {', '.join(sorted(taken))}.")
        busy = list(_active_requests(source.provider_id).filter(name__in=names).values_list("name", "request_id")[:5])
        if busy:
            refuse(
                "name_pattern",
                "Being provisioned by another request: "
                + ", ".join(f"{name} (request #{request_id})" for name, request_id in busy)
                + ".",
            )

    if host is None:
        host = Host.objects.filter(provider_id=source.provider_id, removed_at__isnull=True).first()
        if host is None:
            refuse("host", "No host of this provider is known yet: run a discovery first.")
    elif host.provider_id != source.provider_id or host.removed_at is not None:
        refuse("host", f"Host {host.hostname} is not a present host of {source.label}'s provider.")

    if vcpus is not None and not 1 <= vcpus <= MAX_VCPUS:
        refuse("vcpus", f"Between 1 and {MAX_VCPUS}.")
    if memory_bytes is not None:
        if memory_bytes < MIN_MEMORY_BYTES:
            refuse("memory_mib", f"At least {MIN_MEMORY_BYTES // MiB} MiB.")
        elif host is not None and host.memory_bytes and memory_bytes > host.memory_bytes:
            refuse("memory_mib", f"More than host {host.hostname} has ({human_bytes(host.memory_bytes)}).")
    if network and bridge:
        refuse("bridge", "Give a network or a bridge, not both.")
    if (
        network
        and not Network.objects.filter(provider_id=source.provider_id, name=network, removed_at__isnull=True).exists()
    ):
        refuse("network", f"No network {network!r} is known on this host.")
    if bridge and not NAME_RE.match(bridge):
        refuse("bridge", f"{bridge!r} is not a valid bridge name.")

    if pool is None:
        refuse("pool", "Choose the storage pool for the new boot volumes.")
    else:
        problem = pool_problem(pool)
        if pool.provider_id != source.provider_id:
            refuse("pool", f"Pool {pool.name} is on another provider than {source.label}: it cannot reach it.")
        elif problem:
            refuse("pool", f"{problem[:1].upper()}{problem[1:]}.")
        elif mode in Mode.values and "count" not in errors:
            need = space_needed(mode=mode, count=count, allocation_bytes=source.allocation_bytes)
            if need > pool.available_bytes:
                what = (
                    f"{count} full copies of {source.label} ({human_bytes(max(source.allocation_bytes, MiB))} each)"
                    if mode == Mode.FULL
                    else f"{count} space-optimized children"
                )
                refuse(
                    "pool",
                    f"Pool {pool.name} has {human_bytes(pool.available_bytes)} free; {what} need {human_bytes(need)}.",
                )
        if names and "name_pattern" not in errors:
            fmt = "qcow2" if mode == Mode.SPACE_OPTIMIZED else source.format
            volumes = [volume_file_name(n, fmt) for n in names]
            clash = list(StorageVolume.objects.filter(pool=pool, name__in=volumes).values_list("name", flat=True)[:5])
            if clash:
                refuse("name_pattern", f"Volumes already in pool {pool.name}: {', '.join(sorted(clash))}.")

    if source.template_vm_id is not None:
        template = VirtualMachine.objects.filter(pk=source.template_vm_id).first()
        if template is not None and template.removed_at is None and template.state != VirtualMachine.State.STOPPED:
            refuse(
                "golden_image",
                f"The golden image's VM {template.name!r} is {template.get_state_display().lower()}: "
                "shut it down first, the image must be quiescent.",
            )
    return names, host, errors


def request_provisioning(
    *,
    golden_image: GoldenImage,
    user: Any | None,
    count: int,
    name_pattern: str,
    mode: str,
    pool: StoragePool | None,
    host: Host | None = None,
    vcpus: int | None = None,
    memory_bytes: int | None = None,
    network: str = "",
    bridge: str = "",
    start: bool = False,
    first_number: int = 1,
    enqueue: bool = True,
) -> ProvisioningRequest:
    """Validate and record a request for ``count`` VMs from ``golden_image``; queue it.

    ``enqueue=False`` records it only: the caller executes it (``execute_provisioning``), e.g. the
    command line without a worker. Raises ValidationError with field errors when it cannot be met.
    """
    require_libvirt(golden_image.provider)
    return _record(
        source=source_of(golden_image),
        user=user,
        count=count,
        name_pattern=name_pattern,
        mode=mode,
        pool=pool,
        host=host,
        vcpus=vcpus,
        memory_bytes=memory_bytes,
        network=network,
        bridge=bridge,
        start=start,
        first_number=first_number,
        enqueue=enqueue,
    )


def request_vm_from_volume(
    *,
    volume: StorageVolume,
    template_vm: VirtualMachine,
    name: str,
    user: Any | None,
    mode: str,
    pool: StoragePool | None = None,
    host: Host | None = None,
    vcpus: int | None = None,
    memory_bytes: int | None = None,
    network: str = "",
    bridge: str = "",
    start: bool = False,
    enqueue: bool = True,
) -> ProvisioningRequest:
    """A new VM ``name`` whose boot disk is made from a pool volume (a full copy or a child of it),
    defined like ``template_vm``, in ``pool`` (default: the volume's). Executed like any provisioning
    request; field errors name this function's own fields (``name``, not the pattern it becomes).
    """
    source = source_from_volume(volume, template_vm)
    try:
        return _record(
            source=source,
            user=user,
            count=1,
            name_pattern=name.replace("{", "{{").replace("}", "}}"),
            mode=mode,
            pool=pool if pool is not None else volume.pool,
            host=host,
            vcpus=vcpus,
            memory_bytes=memory_bytes,
            network=network,
            bridge=bridge,
            start=start,
            first_number=1,
            enqueue=enqueue,
        )
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            raise
        raise ValidationError(
            {"name" if field == "name_pattern" else field: errors for field, errors in exc.error_dict.items()}
        ) from None


def _record(
    *,
    source: Source,
    user: Any | None,
    count: int,
    name_pattern: str,
    mode: str,
    pool: StoragePool | None,
    host: Host | None,
    vcpus: int | None,
    memory_bytes: int | None,
    network: str,
    bridge: str,
    start: bool,
    first_number: int,
    enqueue: bool,
) -> ProvisioningRequest:
    names, host, errors = validate_request(
        source=source,
        count=count,
        name_pattern=name_pattern,
        mode=mode,
        pool=pool,
        host=host,
        vcpus=vcpus,
        memory_bytes=memory_bytes,
        network=network,
        bridge=bridge,
        first_number=first_number,
    )
    if errors or pool is None or host is None:
        raise ValidationError(errors)
    fmt = "qcow2" if mode == Mode.SPACE_OPTIMIZED else source.format
    with transaction.atomic():
        op = Operation.objects.create(
            kind=Operation.Kind.PROVISION_VMS,
            provider_id=source.provider_id,
            target_name=f"{count} × {source.label}"[:255],
            params={"source": source.label, "count": count, "mode": mode, "pattern": name_pattern},
            requested_by=user if user is not None and user.is_authenticated else None,
            message="queued",
        )
        request = ProvisioningRequest.objects.create(
            operation=op,
            golden_image=source.golden_image,
            golden_image_name=source.label,
            from_golden_image=source.golden_image is not None,
            provider_id=source.provider_id,
            source_path=source.path,
            source_format=source.format,
            template_xml=source.template_xml,
            count=count,
            name_pattern=name_pattern.strip(),
            first_number=first_number,
            mode=mode,
            vcpus=vcpus or source.template_vcpus,
            memory_bytes=memory_bytes or source.template_memory_bytes,
            pool=pool,
            pool_name=pool.name,
            host=host,
            network=network,
            bridge=bridge,
            start=start,
        )
        ProvisionedVM.objects.bulk_create(
            ProvisionedVM(
                request=request,
                index=index,
                name=name,
                volume_name=volume_file_name(name, fmt),
                volume_path=os.path.join(pool.target_path, volume_file_name(name, fmt)) if pool.target_path else "",
                capacity_bytes=source.capacity_bytes,
            )
            for index, name in enumerate(names)
        )
    op_id = op.pk
    if enqueue:
        transaction.on_commit(lambda: _enqueue(op_id))
    return request


def _enqueue(op_id: int) -> None:
    from provisioning.tasks import run_provisioning

    enqueue_operation(op_id, run_provisioning.delay)


# --- execution --------------------------------------------------------------------------------


class _Abort(Exception):
    """The rest of the request cannot go on (the image went away, its VM was started …)."""


def execute_provisioning(op_id: int) -> Operation:
    """Claim and execute one provisioning request; a second delivery of the task does nothing.

    A delivery that finds the request running with no sign of life from its worker for
    ``VOM_OPERATION_STALE_AFTER`` seconds takes it over and resumes it.
    """
    op, claimed = claim_operation(op_id)
    request = ProvisioningRequest.objects.select_related("provider", "pool").get(operation_id=op_id)
    run = OperationRun(op)
    if not claimed and not _take_over(request, op):
        return op
    _beat(request)
    vms = list(request.vms.exclude(status__in=ENDED))
    total = request.count
    run.log(
        f"{total} VM(s) from {request.golden_image_name} ({request.get_mode_display().lower()}) "
        f"into pool {request.pool_name} on {request.provider.name}"
    )
    finished = total - len(vms)  # rows a worker before this one finished
    try:
        with libvirt_driver(request.provider) as driver:
            # A fault met while connected is handled while connected: what was made can be removed.
            try:
                _provision_rows(driver, request, vms, run, finished=finished)
                _read_allocation(driver, request, run)
            except DriverError as exc:
                run.log(str(exc), "error")
                _fail_unfinished(request, str(exc), run, driver)
            except Exception as exc:
                logger.exception("provisioning request #%s failed unexpectedly", request.pk)
                _fail_unfinished(request, f"internal error: {type(exc).__name__}", run, driver)
    except (DriverError, SecretError) as exc:  # the host could not be reached, or lost on the way
        run.log(str(exc), "error")
        _fail_unfinished(request, str(exc), run)
    except Exception as exc:
        logger.exception("provisioning request #%s failed unexpectedly", request.pk)
        _fail_unfinished(request, f"internal error: {type(exc).__name__}", run)
    run.progress(92, "refreshing the inventory")
    refresh_inventory(request.provider, run)
    return _finish(request, op, run)


def _provision_rows(
    driver: LibvirtDriver, request: ProvisioningRequest, rows: list[ProvisionedVM], run: OperationRun, *, finished: int
) -> None:
    """Make the rows' VMs in order, until the request is cancelled or cannot go on."""
    total = request.count
    for row in rows:
        # Only a VM not begun is cancelled: one a dead worker left half made is finished first.
        if row.status == V.PENDING and _cancel_asked(request):
            _cancel_waiting(request, run)
            break
        try:
            _check_can_go_on(driver, request)
        except _Abort as exc:
            _fail_rest(request, str(exc), run, driver)
            break
        _provision_one(driver, request, row, run)
        _beat(request)
        finished += 1
        run.progress(int(90 * finished / total), f"{finished} of {total} VMs handled")


def _fail_unfinished(
    request: ProvisioningRequest, reason: str, run: OperationRun, driver: LibvirtDriver | None = None
) -> None:
    """Every VM not finished fails with ``reason``, but those the user cancelled are cancelled (what
    the user no longer wants did not fail); with ``driver``, the volumes made for them are removed."""
    if _cancel_asked(request):
        _cancel_waiting(request, run)
    _fail_rest(request, reason, run, driver)


def _finish(request: ProvisioningRequest, op: Operation, run: OperationRun) -> Operation:
    """End the operation with the VMs' outcomes: succeeded only if every VM was made."""
    total = request.count
    done = request.vms.filter(status=V.DONE).count()
    failed = list(request.vms.filter(status=V.FAILED).values_list("name", flat=True))
    cancelled = request.vms.filter(status=V.CANCELLED).count()
    result = {"done": done, "failed": len(failed), "cancelled": cancelled}
    problems = []
    if cancelled:
        problems.append(f"cancelled by {_who(request)}: {cancelled} of {total} VMs not made")
    if failed:
        shown = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
        problems.append(f"{len(failed)} of {total} VMs failed: {shown}")
    run.log(f"{done} VM(s) provisioned")
    if problems:
        return finish_operation(op, ok=False, error="; ".join(problems), result=result)
    return finish_operation(op, ok=True, result=result)


def _who(request: ProvisioningRequest) -> str:
    user = request.cancelled_by
    return user.get_username() if user is not None else "the command line"


def cancel_provisioning(*, request: ProvisioningRequest, user: Any) -> ProvisioningRequest:
    """Ask for a queued or running request to stop: the VMs not begun are not made.

    A queued request ends at once. A running one stops before its next VM: the VM being made
    finishes first (libvirt cannot interrupt a copy), and the VMs already made stay. A running
    request whose worker has stopped (no heartbeat for ``VOM_OPERATION_STALE_AFTER`` seconds) ends
    here, as its expiry would end it. Refused, with the reason, for a request that has ended, has
    no VM left that has not begun, or whose cancellation was already asked for.
    """
    with transaction.atomic():
        request = (
            ProvisioningRequest.objects.select_for_update(of=("self",))
            .select_related("operation", "cancelled_by")
            .get(pk=request.pk)
        )
        op = request.operation
        if not op.is_active:
            raise ValidationError(f"request #{request.pk} has already ended ({op.get_status_display().lower()})")
        if request.cancel_requested is not None:
            when = f"{request.cancel_requested:%Y-%m-%d %H:%M:%S}"
            raise ValidationError(f"cancelling request #{request.pk} was already asked for at {when}")
        if not request.vms.filter(status=V.PENDING).exists():
            raise ValidationError(
                f"request #{request.pk} has no VM left to cancel: every VM has begun, and the request is finishing"
            )
        request.cancel_requested = timezone.now()
        request.cancelled_by = user if getattr(user, "is_authenticated", False) else None
        request.save(update_fields=["cancel_requested", "cancelled_by"])
        run = OperationRun(op)
        run.log(f"cancellation asked for by {_who(request)}", "warning")
        # Not begun yet: end it here, unless a worker claims it this very moment (compare and set,
        # as the worker's own claim does; the loser of the two leaves it to the winner).
        if Operation.objects.filter(pk=op.pk, status=Operation.Status.PENDING).update(
            status=Operation.Status.RUNNING, started=timezone.now(), message="cancelling"
        ):
            op.refresh_from_db()
            _cancel_waiting(request, run)
            _finish(request, op, run)
        elif _take_over_stale(request, op):
            run.log("the worker running this request stopped before it finished: ended here", "warning")
            _cancel_waiting(request, run)
            _abandon_rows(request, "abandoned: the worker running the request stopped before it finished")
            _finish(request, op, run)
    return request


def _take_over_stale(request: ProvisioningRequest, op: Operation) -> bool:
    """Whether ``op`` is running with no sign of life from its worker, and this caller now holds it
    (compare and set on the heartbeat, as a redelivered task's take-over does)."""
    op.refresh_from_db(fields=["status", "started"])
    if op.status != Operation.Status.RUNNING:
        return False
    limit = stale_limits()[0]
    last = request.heartbeat or op.started
    if last is None or last >= limit:
        return False
    return bool(
        ProvisioningRequest.objects.filter(pk=request.pk)
        .filter(Q(heartbeat=request.heartbeat) if request.heartbeat else Q(heartbeat__isnull=True))
        .update(heartbeat=timezone.now())
    )


def _cancel_asked(request: ProvisioningRequest) -> bool:
    """Whether a user has asked to cancel (read from the database: it is asked from another process)."""
    asked = (
        ProvisioningRequest.objects.filter(pk=request.pk, cancel_requested__isnull=False)
        .select_related("cancelled_by")
        .first()
    )
    if asked is None:
        return False
    request.cancel_requested, request.cancelled_by = asked.cancel_requested, asked.cancelled_by
    return True


def _cancel_reason(request: ProvisioningRequest) -> str:
    return f"cancelled by {_who(request)} before it was made"


def _cancel_waiting(request: ProvisioningRequest, run: OperationRun) -> None:
    """Every VM not begun (nothing made for it yet) is cancelled."""
    cancelled = request.vms.filter(status=V.PENDING, volume_created=False).update(
        status=V.CANCELLED, error=_cancel_reason(request), finished=timezone.now()
    )
    if cancelled:
        run.log(f"{cancelled} VM(s) cancelled by {_who(request)} before they were made", "warning")


def _beat(request: ProvisioningRequest) -> None:
    request.heartbeat = timezone.now()
    ProvisioningRequest.objects.filter(pk=request.pk).update(heartbeat=request.heartbeat)


def _take_over(request: ProvisioningRequest, op: Operation) -> bool:
    """Resume a running request whose worker stopped; only one delivery can win (compare and set)."""
    won = _take_over_stale(request, op)
    if won:
        OperationRun(op).log("resuming: the worker running this request stopped before it finished", "warning")
    return won


def _check_can_go_on(driver: LibvirtDriver, request: ProvisioningRequest) -> None:
    if request.from_golden_image:
        image = _golden_image(request)
        if image is None:
            raise _Abort(f"golden image {request.golden_image_name!r} was unregistered during the request")
        _check_quiescent(driver, image)
    if volume_by_path(driver, request.source_path) is None:
        raise _Abort(f"the image {request.source_path} no longer exists")


def _golden_image(request: ProvisioningRequest) -> GoldenImage | None:
    return GoldenImage.objects.filter(pk=request.golden_image_id).first() if request.golden_image_id else None


def _check_quiescent(driver: LibvirtDriver, image: GoldenImage) -> None:
    """Refuse to go on if the golden image's VM runs: the image would change as it is read."""
    try:
        started = domain_is_active(driver, image.template_vm_uuid)
    except DriverError:
        started = False  # the template VM was undefined: the image itself is what matters
    if started:
        raise _Abort(
            f"the golden image's VM {image.template_vm_name!r} was started during the request: "
            "the image is no longer quiescent"
        )


def _set(row: ProvisionedVM, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(row, name, value)
    ProvisionedVM.objects.filter(pk=row.pk).update(**fields)


def _fail_rest(
    request: ProvisioningRequest, reason: str, run: OperationRun, driver: LibvirtDriver | None = None
) -> None:
    """Every VM not yet finished fails with ``reason``; the volumes made for them are removed."""
    rows = list(request.vms.exclude(status__in=ENDED))
    if not rows:
        return
    run.log(f"{len(rows)} VM(s) not provisioned: {reason}", "error")
    for row in rows:
        cleanup = _left_behind(driver, request, row)
        _set(row, status=V.FAILED, error=f"{reason}{cleanup}"[:2000], finished=timezone.now())


def _left_behind(driver: LibvirtDriver | None, request: ProvisioningRequest, row: ProvisionedVM) -> str:
    """Remove the volume made for an unfinished row that no VM uses; text for the row's outcome."""
    # A row stopped while its volume was being made may have one (the name was free just before).
    begun = row.volume_created or (row.status == V.CREATING_VOLUME and bool(row.volume_path))
    if row.vm_uuid or not begun:
        return ""
    if driver is None:
        return f"; its volume {row.volume_name} may be left: the host could not be reached"
    try:
        if row.status == V.DEFINING and (vm_uuid := _ours(driver, row)):
            # The VM was defined on the volume, its record not yet written: both stay.
            _set(row, vm_uuid=vm_uuid)
            return f"; VM {row.name} had been defined on volume {row.volume_name}: both are kept"
        if not row.volume_created:
            if volume_by_path(driver, row.volume_path) is None:
                return ""
            _set(row, volume_created=True)
    except DriverError as exc:
        return f"; its volume {row.volume_name} may be left: {exc}"
    return _remove_volume(driver, request, row)


def _remove_volume(driver: LibvirtDriver, request: ProvisioningRequest, row: ProvisionedVM) -> str:
    """Delete the volume this request made for ``row``; returns text for the VM's outcome."""
    try:
        delete_volume(driver, request.pool_name, row.volume_name, missing_ok=True)
    except DriverError as exc:
        return f"; its volume {row.volume_name} could not be removed: {exc}"
    _set(row, volume_created=False)
    return f"; volume {row.volume_name} removed"


def _ours(driver: LibvirtDriver, row: ProvisionedVM) -> str | None:
    """The UUID of a VM named ``row.name`` booting from the row's volume (made by a dead worker), if any."""
    for user in domains_using(driver, row.volume_path):
        if user.vm_name == row.name:
            return user.vm_uuid
    return None


def _provision_one(driver: LibvirtDriver, request: ProvisioningRequest, row: ProvisionedVM, run: OperationRun) -> None:
    began = time.monotonic()
    if row.started is None:
        _set(row, started=timezone.now())
    # Only a step a dead worker left half-done needs the host searched for what it made (a scan of
    # every VM's definition: too dear to do for each new VM of a large request).
    resumed_defining = row.status == V.DEFINING
    try:
        if row.status in (V.PENDING, V.CREATING_VOLUME):
            _create_volume(driver, request, row)
        if row.status == V.DEFINING:
            _define(driver, request, row, resumed=resumed_defining)
        if row.status == V.STARTING:
            _start(driver, row)
    except _VMFailed as exc:
        cleanup = _remove_volume(driver, request, row) if row.volume_created and not row.vm_uuid else ""
        _set(row, status=V.FAILED, error=f"{exc}{cleanup}"[:2000], finished=timezone.now())
        run.log(f"{row.name}: failed: {exc}{cleanup}", "error")
        return
    _set(row, status=V.DONE, finished=timezone.now())
    note = f" ({row.warning})" if row.warning else ""
    run.log(f"{row.name}: done in {time.monotonic() - began:.2f} s{note}")


class _VMFailed(Exception):
    pass


def _create_volume(driver: LibvirtDriver, request: ProvisioningRequest, row: ProvisionedVM) -> None:
    if row.status == V.CREATING_VOLUME and row.volume_path and volume_by_path(driver, row.volume_path) is not None:
        # A worker died here: a volume under our name now was made by it (we checked it was free),
        # maybe cut short in the middle of a copy. Make it again rather than trust it.
        _set(row, volume_created=True)
        _remove_volume(driver, request, row)
    if row.volume_path and volume_by_path(driver, row.volume_path) is not None:
        raise _VMFailed(f"volume {row.volume_name} already exists in pool {request.pool_name} (made by someone else)")
    _set(row, status=V.CREATING_VOLUME)
    try:
        with _beating(request):
            info = _make_boot_volume(driver, request, row)
    except DriverError as exc:
        # A volume under our name now is a partial one of ours (it was free just before): remove it.
        if row.volume_path and volume_by_path(driver, row.volume_path) is not None:
            _set(row, volume_created=True)
        raise _VMFailed(f"cannot create the boot volume: {exc}") from exc
    _set(
        row,
        volume_created=True,
        volume_path=info.path,
        capacity_bytes=info.capacity_bytes,
        allocation_bytes=info.allocation_bytes,
        status=V.DEFINING,
    )
    image = _golden_image(request)
    if image is not None:
        # The image must have stayed quiescent while it was read: its VM started meanwhile fails this VM.
        try:
            _check_quiescent(driver, image)
        except _Abort as exc:
            raise _VMFailed(str(exc)) from exc


def _make_boot_volume(driver: LibvirtDriver, request: ProvisioningRequest, row: ProvisionedVM) -> VolumeInfo:
    if request.mode == Mode.SPACE_OPTIMIZED:
        return create_overlay_volume(
            driver, request.pool_name, row.volume_name, request.source_path, request.source_format
        )
    return clone_volume(driver, request.pool_name, request.source_path, row.volume_name, request.source_format)


@contextmanager
def _beating(request: ProvisioningRequest) -> Iterator[None]:
    """Keep the request's heartbeat fresh while one long call (a full copy of a large image) runs,
    so a live worker is never taken for a dead one."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                ProvisioningRequest.objects.filter(pk=request.pk).update(heartbeat=timezone.now())
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=beat, name=f"provisioning-{request.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _define(driver: LibvirtDriver, request: ProvisioningRequest, row: ProvisionedVM, *, resumed: bool) -> None:
    existing = _ours(driver, row) if resumed else None
    if existing is None:
        try:
            vm_uuid = define_vm_from_template(
                driver,
                request.template_xml,
                name=row.name,
                boot_volume_path=row.volume_path,
                boot_format="qcow2" if request.mode == Mode.SPACE_OPTIMIZED else request.source_format,
                vcpus=request.vcpus,
                memory_bytes=request.memory_bytes,
                network=request.network or None,
                bridge=request.bridge or None,
            )
        except DriverError as exc:
            raise _VMFailed(f"cannot define the VM: {exc}") from exc
    else:
        vm_uuid = existing
    _set(row, vm_uuid=vm_uuid, status=V.STARTING if request.start else V.DONE)


def _start(driver: LibvirtDriver, row: ProvisionedVM) -> None:
    """Start the new VM; a VM that will not start stays defined, with the reason as a warning."""
    try:
        if not domain_is_active(driver, row.vm_uuid):
            driver.start(row.vm_uuid)
    except DriverError as exc:
        _set(row, warning=f"defined but not started: {exc}"[:2000])


def _read_allocation(driver: LibvirtDriver, request: ProvisioningRequest, run: OperationRun) -> None:
    """Read each new volume's actual allocation from the platform (after the pool is refreshed)."""
    try:
        pool = refresh_pool(driver, request.pool_name)
    except DriverError as exc:
        run.log(f"could not refresh pool {request.pool_name}: {exc}", "warning")
        return
    allocation = {v.path: v.allocation_bytes for v in pool.volumes}
    changed = []
    for row in request.vms.filter(status=V.DONE).exclude(volume_path=""):
        if row.volume_path in allocation and allocation[row.volume_path] != row.allocation_bytes:
            row.allocation_bytes = allocation[row.volume_path]
            changed.append(row)
    ProvisionedVM.objects.bulk_update(changed, ["allocation_bytes"], batch_size=500)
