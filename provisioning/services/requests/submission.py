"""Recording a provisioning request: checked first, then one job with a child job per VM, queued.

Nothing is made here: :mod:`provisioning.services.requests.execution` makes the VMs on a worker.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from inventory.models import Host, Provider, StoragePool, StorageVolume, VirtualMachine
from provisioning.models import GoldenImage, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import require_libvirt, volume_file_name
from provisioning.services.requests.execution import KIND, VM_KIND, cancel_reason
from provisioning.services.requests.validation import Source, source_from_volume, source_of, validate_request
from vom.jobs import lifecycle
from vom.jobs.models import Job


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
    trigger: str = Job.Trigger.GUI,
) -> ProvisioningRequest:
    """Validate and record a request for ``count`` VMs from ``golden_image``; queue it.

    ``enqueue=False`` records it only: the caller executes it (``execute_provisioning``), e.g. the
    command line without a worker. Raises ValidationError with field errors when it cannot be met,
    and QueueUnavailable (nothing recorded) when the task queue is down.
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
        trigger=trigger,
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
    trigger: str = Job.Trigger.GUI,
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
            trigger=trigger,
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
    trigger: str,
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
    target: Any = source.golden_image or Provider.objects.get(pk=source.provider_id)
    with transaction.atomic():
        job = lifecycle.create(
            KIND,
            target=target,
            target_name=f"{count} × {source.label}",
            params={"source": source.label, "count": count, "mode": mode, "pattern": name_pattern},
            user=user,
            trigger=trigger,
        )
        request = ProvisioningRequest.objects.create(
            job=job,
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
        children = Job.objects.bulk_create(
            Job(
                kind=VM_KIND,
                parent=job,
                position=index,
                inline=True,
                target_name=name,
                requested_by=job.requested_by,
                trigger=Job.Trigger.JOB,
                message="waiting",
            )
            for index, name in enumerate(names)
        )
        ProvisionedVM.objects.bulk_create(
            ProvisionedVM(
                request=request,
                job=child,
                index=index,
                name=name,
                volume_name=volume_file_name(name, fmt),
                volume_path=os.path.join(pool.target_path, volume_file_name(name, fmt)) if pool.target_path else "",
                capacity_bytes=source.capacity_bytes,
            )
            for (index, name), child in zip(enumerate(names), children, strict=True)
        )
    if enqueue:
        lifecycle.submit(job)
    return request


def cancel_provisioning(*, request: ProvisioningRequest, user: Any) -> ProvisioningRequest:
    """Ask for a queued or running request to stop: the VMs not begun are not made.

    A queued request ends at once. A running one stops before its next VM: the VM being made
    finishes first (libvirt cannot interrupt a copy), and the VMs already made stay. Refused, with
    the reason, for a request that has ended, has no VM left that has not begun, or whose
    cancellation was already asked for.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=request.job_id)
        if not job.is_active:
            raise ValidationError(f"request #{request.pk} has already ended ({job.get_status_display().lower()})")
        if job.cancel_requested is not None:
            when = f"{job.cancel_requested:%Y-%m-%d %H:%M:%S}"
            raise ValidationError(f"cancelling request #{request.pk} was already asked for at {when}")
        if not request.vms.filter(phase=ProvisionedVM.Phase.WAITING, job__status=Job.Status.PENDING).exists():
            raise ValidationError(
                f"request #{request.pk} has no VM left to cancel: every VM has begun, and the request is finishing"
            )
        if job.status == Job.Status.PENDING:
            # Not begun: its VMs are cancelled with the reason now (the request itself ends below).
            who = user.get_username() if getattr(user, "is_authenticated", False) else "the command line"
            for row in request.vms.select_related("job"):
                ProvisionedVM.objects.filter(pk=row.pk).update(phase=ProvisionedVM.Phase.FINISHED)
                lifecycle.finish(
                    row.job,
                    status=Job.Status.CANCELLED,
                    only_if=Q(status=Job.Status.PENDING),
                    error=cancel_reason(who),
                )
        try:
            lifecycle.request_cancel(job, user=user)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    if job.status == Job.Status.CANCELLED:
        Job.objects.filter(pk=job.pk).update(result={"done": 0, "failed": 0, "cancelled": request.count})
    request.job = job
    return request
