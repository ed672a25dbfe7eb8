"""Executing a provisioning request: its job makes the VMs one after another, each a child job.

Per VM: the boot volume (a qcow2 child backed by the image, or a full copy), then the VM defined from
the template with a new name, UUID and MACs, then started if asked. A VM that fails leaves nothing
half-made (its volume is removed) and the others go on. Each phase is written to the VM's row
*before* the platform is called, so a request resumed after its worker died (the kind is resumable:
the job core's sweep hands it to another worker) finds what the dead worker made instead of making
it twice. A cancel is honoured between VMs: the VM being made is finished, those not begun are not.

Once the VMs are made the provider is discovered here, so the inventory shows them; if a discovery
of it is already running, the request waits for it between steps (no worker sleeps for it).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db.models import Q

from inventory.drivers.base import DriverError, VolumeInfo
from provisioning.models import GoldenImage, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import refresh_inventory
from provisioning.services.requests import platform as platforms
from provisioning.services.requests.platform import Platform
from vom.jobs import lifecycle
from vom.jobs.context import JobContext
from vom.jobs.kinds import JobKind
from vom.jobs.models import Job
from vom.jobs.outcomes import Done, Failed, JobFailed, Outcome, Wait

logger = logging.getLogger(__name__)
P = ProvisionedVM.Phase
J = Job.Status
KIND, VM_KIND = "provision_vms", "provision_vm"
# How long the request waits, between steps, for a discovery of the provider already running.
REFRESH_WAIT_SECONDS = 120
REFRESH_POLL_SECONDS = 2.0


class _Abort(Exception):
    """The rest of the request cannot go on (the image went away, its VM was started …)."""


class _VMFailed(Exception):
    """This VM cannot be made; the others go on."""


def execute(ctx: JobContext) -> Outcome:
    """A step of the request: make the VMs (the first step), then refresh the inventory."""
    request = ProvisioningRequest.objects.select_related("provider", "pool").get(job_id=ctx.job.pk)
    if ctx.checkpoint.get("phase") != "refresh":
        _make_vms(request, ctx)
        ctx.progress(92, "refreshing the inventory")
    if refresh_inventory(request.provider, ctx) is None:
        deadline = float(ctx.checkpoint.get("deadline") or time.time() + REFRESH_WAIT_SECONDS)
        if time.time() < deadline:
            message = "waiting for a discovery of the provider to end, to discover it again"
            return Wait(REFRESH_POLL_SECONDS, message, {"phase": "refresh", "deadline": deadline})
        ctx.log("a discovery of the provider is still running: the inventory updates at the next one", "warning")
    return outcome(request, ctx)


def _make_vms(request: ProvisioningRequest, ctx: JobContext) -> None:
    if ctx.resumed:
        ctx.log("resuming: the worker running this request stopped before it finished", "warning")
    rows = list(request.vms.select_related("job").exclude(job__status__in=_ENDED).order_by("index"))
    total = request.count
    if not ctx.resumed:
        ctx.log(
            f"{total} VM(s) from {request.golden_image_name} ({request.get_mode_display().lower()}) "
            f"into pool {request.pool_name} on {request.provider.name}"
        )
    finished = total - len(rows)  # rows a worker before this one finished
    try:
        with platforms.platform_for(request.provider) as platform:
            # A fault met while connected is handled while connected: what was made can be removed.
            try:
                _provision_rows(platform, request, rows, ctx, finished=finished)
                _read_allocation(platform, request, ctx)
            except DriverError as exc:
                ctx.log(str(exc), "error")
                _fail_unfinished(request, str(exc), ctx, platform)
            except Exception as exc:
                logger.exception("provisioning request #%s failed unexpectedly", request.pk)
                _fail_unfinished(request, f"internal error: {type(exc).__name__}", ctx, platform)
    except DriverError as exc:  # the host could not be reached, or was lost on the way
        ctx.log(str(exc), "error")
        _fail_unfinished(request, str(exc), ctx)
    except Exception as exc:
        logger.exception("provisioning request #%s failed unexpectedly", request.pk)
        _fail_unfinished(request, f"internal error: {type(exc).__name__}", ctx)


_ENDED = (J.SUCCEEDED, J.FAILED, J.CANCELLED, J.ABANDONED)


def _provision_rows(
    platform: Platform, request: ProvisioningRequest, rows: list[ProvisionedVM], ctx: JobContext, *, finished: int
) -> None:
    """Make the rows' VMs in order, until the request is cancelled or cannot go on."""
    total = request.count
    for row in rows:
        try:
            _check_can_go_on(platform, request)
        except _Abort as exc:
            _fail_rest(request, str(exc), ctx, platform)
            break
        # Asked the latest moment before the VM is begun. Only a VM not begun is cancelled: one a
        # dead worker left half made is finished first.
        if row.phase == P.WAITING and ctx.cancel_requested:
            _cancel_waiting(request, ctx)
            break
        _provision_one(platform, request, row, ctx)
        finished += 1
        ctx.progress(int(90 * finished / total), f"{finished} of {total} VMs handled")


def _provision_one(platform: Platform, request: ProvisioningRequest, row: ProvisionedVM, ctx: JobContext) -> None:
    began = time.monotonic()
    # Only a phase a dead worker left half-done needs the host searched for what it made (a scan of
    # every VM's definition: too dear to do for each new VM of a large request).
    resumed_defining = row.phase == P.DEFINING
    with ctx.child(row.job) as child:
        try:
            if row.phase in (P.WAITING, P.CREATING_VOLUME):
                _create_volume(platform, request, row)
            if row.phase == P.DEFINING:
                _define(platform, request, row, resumed=resumed_defining)
            if row.phase == P.STARTING:
                _start(platform, row)
        except _VMFailed as exc:
            cleanup = _remove_volume(platform, request, row) if row.volume_created and not row.vm_uuid else ""
            _set(row, phase=P.FINISHED)
            ctx.end_child(child, J.FAILED, error=f"{exc}{cleanup}"[:2000])
            ctx.log(f"{row.name}: failed: {exc}{cleanup}", "error")
            return
        _set(row, phase=P.FINISHED)
        ctx.end_child(child, J.SUCCEEDED)
    note = f" ({row.warning})" if row.warning else ""
    ctx.log(f"{row.name}: done in {time.monotonic() - began:.2f} s{note}")


def _create_volume(platform: Platform, request: ProvisioningRequest, row: ProvisionedVM) -> None:
    if row.phase == P.CREATING_VOLUME and row.volume_path and platform.volume_at(row.volume_path) is not None:
        # A worker died here: a volume under our name now was made by it (we checked it was free),
        # maybe cut short in the middle of a copy. Make it again rather than trust it.
        _set(row, volume_created=True)
        _remove_volume(platform, request, row)
    if row.volume_path and platform.volume_at(row.volume_path) is not None:
        raise _VMFailed(f"volume {row.volume_name} already exists in pool {request.pool_name} (made by someone else)")
    _set(row, phase=P.CREATING_VOLUME)
    try:
        info = _make_boot_volume(platform, request, row)
    except DriverError as exc:
        # A volume under our name now is a partial one of ours (it was free just before): remove it.
        if row.volume_path and platform.volume_at(row.volume_path) is not None:
            _set(row, volume_created=True)
        raise _VMFailed(f"cannot create the boot volume: {exc}") from exc
    except BaseException:
        # The console itself tripped (or the worker is stopping) after the volume may have been made.
        if row.volume_path and platform.volume_at(row.volume_path) is not None:
            _set(row, volume_created=True)
        raise
    _set(
        row,
        volume_created=True,
        volume_path=info.path,
        capacity_bytes=info.capacity_bytes,
        allocation_bytes=info.allocation_bytes,
        phase=P.DEFINING,
    )
    image = _golden_image(request)
    if image is not None:
        # The image must have stayed quiescent while it was read: its VM started meanwhile fails this VM.
        try:
            _check_quiescent(platform, image)
        except _Abort as exc:
            raise _VMFailed(str(exc)) from exc


def _make_boot_volume(platform: Platform, request: ProvisioningRequest, row: ProvisionedVM) -> VolumeInfo:
    if request.mode == Mode.SPACE_OPTIMIZED:
        return platform.make_child(request.pool_name, row.volume_name, request.source_path, request.source_format)
    return platform.make_copy(request.pool_name, request.source_path, row.volume_name, request.source_format)


def _define(platform: Platform, request: ProvisioningRequest, row: ProvisionedVM, *, resumed: bool) -> None:
    existing = _ours(platform, row) if resumed else None
    if existing is None:
        try:
            vm_uuid = platform.define_vm(
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
    _set(row, vm_uuid=vm_uuid, phase=P.STARTING if request.start else P.FINISHED)


def _start(platform: Platform, row: ProvisionedVM) -> None:
    """Start the new VM; a VM that will not start stays defined, with the reason as a warning."""
    try:
        if not platform.is_running(row.vm_uuid):
            platform.start(row.vm_uuid)
    except DriverError as exc:
        _set(row, warning=f"defined but not started: {exc}"[:2000])


def _check_can_go_on(platform: Platform, request: ProvisioningRequest) -> None:
    if request.from_golden_image:
        image = _golden_image(request)
        if image is None:
            raise _Abort(f"golden image {request.golden_image_name!r} was unregistered during the request")
        _check_quiescent(platform, image)
    if platform.volume_at(request.source_path) is None:
        raise _Abort(f"the image {request.source_path} no longer exists")


def _golden_image(request: ProvisioningRequest) -> GoldenImage | None:
    return GoldenImage.objects.filter(pk=request.golden_image_id).first() if request.golden_image_id else None


def _check_quiescent(platform: Platform, image: GoldenImage) -> None:
    """Refuse to go on if the golden image's VM runs: the image would change as it is read."""
    try:
        started = platform.is_running(image.template_vm_uuid)
    except DriverError as exc:
        if exc.retryable:
            raise  # the host is not answering: that is not "the VM is gone"
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


# --- what cannot be made ------------------------------------------------------------------------


def _unfinished(request: ProvisioningRequest) -> list[ProvisionedVM]:
    return list(request.vms.select_related("job").exclude(job__status__in=_ENDED).order_by("index"))


def _fail_rest(request: ProvisioningRequest, reason: str, ctx: JobContext, platform: Platform | None = None) -> None:
    """Every VM not yet finished fails with ``reason``; the volumes made for them are removed."""
    rows = _unfinished(request)
    if not rows:
        return
    ctx.log(f"{len(rows)} VM(s) not provisioned: {reason}", "error")
    for row in rows:
        cleanup = _left_behind(platform, request, row)
        _set(row, phase=P.FINISHED)
        ctx.end_child(row.job, J.FAILED, error=f"{reason}{cleanup}"[:2000])


def _fail_unfinished(
    request: ProvisioningRequest, reason: str, ctx: JobContext, platform: Platform | None = None
) -> None:
    """Every VM not finished fails with ``reason``, but those the user cancelled are cancelled (what
    the user no longer wants did not fail); with ``platform``, the volumes made for them are removed."""
    if ctx.cancel_requested:
        _cancel_waiting(request, ctx)
    _fail_rest(request, reason, ctx, platform)


def _left_behind(platform: Platform | None, request: ProvisioningRequest, row: ProvisionedVM) -> str:
    """Remove the volume made for an unfinished row that no VM uses; text for the row's outcome."""
    # A row stopped while its volume was being made may have one (the name was free just before).
    begun = row.volume_created or (row.phase == P.CREATING_VOLUME and bool(row.volume_path))
    if row.vm_uuid or not begun:
        return ""
    if platform is None:
        return f"; its volume {row.volume_name} may be left: the host could not be reached"
    try:
        if row.phase == P.DEFINING and (vm_uuid := _ours(platform, row)):
            # The VM was defined on the volume, its record not yet written: both stay.
            _set(row, vm_uuid=vm_uuid)
            return f"; VM {row.name} had been defined on volume {row.volume_name}: both are kept"
        if not row.volume_created:
            if platform.volume_at(row.volume_path) is None:
                return ""
            _set(row, volume_created=True)
    except DriverError as exc:
        return f"; its volume {row.volume_name} may be left: {exc}"
    return _remove_volume(platform, request, row)


def _remove_volume(platform: Platform, request: ProvisioningRequest, row: ProvisionedVM) -> str:
    """Delete the volume this request made for ``row``; returns text for the VM's outcome."""
    try:
        platform.delete_volume(request.pool_name, row.volume_name)
    except DriverError as exc:
        return f"; its volume {row.volume_name} could not be removed: {exc}"
    _set(row, volume_created=False)
    return f"; volume {row.volume_name} removed"


def _ours(platform: Platform, row: ProvisionedVM) -> str | None:
    """The UUID of a VM named ``row.name`` booting from the row's volume (made by a dead worker), if any."""
    for name, uuid in platform.vms_using(row.volume_path):
        if name == row.name:
            return uuid
    return None


def _read_allocation(platform: Platform, request: ProvisioningRequest, ctx: JobContext) -> None:
    """Read each new volume's actual allocation from the platform (after the pool is refreshed)."""
    try:
        pool = platform.refresh_pool(request.pool_name)
    except DriverError as exc:
        ctx.log(f"could not refresh pool {request.pool_name}: {exc}", "warning")
        return
    allocation = {v.path: v.allocation_bytes for v in pool.volumes}
    changed = []
    for row in request.vms.filter(job__status=J.SUCCEEDED).exclude(volume_path=""):
        if row.volume_path in allocation and allocation[row.volume_path] != row.allocation_bytes:
            row.allocation_bytes = allocation[row.volume_path]
            changed.append(row)
    ProvisionedVM.objects.bulk_update(changed, ["allocation_bytes"], batch_size=500)


# --- cancel and outcome -------------------------------------------------------------------------


def cancel_reason(who: str) -> str:
    return f"cancelled by {who} before it was made"


def _cancel_waiting(request: ProvisioningRequest, ctx: JobContext) -> None:
    """Every VM not begun (nothing made for it yet) is cancelled."""
    who = ctx.cancelled_by()
    waiting = request.vms.filter(phase=P.WAITING, volume_created=False, job__status__in=(J.PENDING, J.RUNNING))
    cancelled = 0
    for row in waiting.select_related("job"):
        _set(row, phase=P.FINISHED)
        cancelled += ctx.end_child(row.job, J.CANCELLED, error=cancel_reason(who))
    if cancelled:
        ctx.log(f"{cancelled} VM(s) cancelled by {who} before they were made", "warning")


def outcome(request: ProvisioningRequest, ctx: JobContext) -> Outcome:
    """The request's outcome from its VMs': succeeded only if every VM was made."""
    total = request.count
    statuses = list(request.vms.values_list("name", "job__status").order_by("index"))
    done = sum(1 for _, status in statuses if status == J.SUCCEEDED)
    failed = [name for name, status in statuses if status in (J.FAILED, J.ABANDONED)]
    cancelled = sum(1 for _, status in statuses if status == J.CANCELLED)
    result = {"done": done, "failed": len(failed), "cancelled": cancelled}
    problems = []
    if cancelled:
        problems.append(f"cancelled by {ctx.cancelled_by()}: {cancelled} of {total} VMs not made")
    if failed:
        shown = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
        problems.append(f"{len(failed)} of {total} VMs failed: {shown}")
    ctx.log(f"{done} VM(s) provisioned")
    if problems:
        return Failed("; ".join(problems), result)
    return Done(result)


def abandoned(job: Job, reason: str) -> None:
    """The request was ended as abandoned (its worker died too often): its unfinished VMs say what
    may be left of them on the host, for an admin to look at."""
    request = ProvisioningRequest.objects.filter(job=job).first()
    if request is None:
        return
    who = job.cancelled_by.get_username() if job.cancelled_by is not None else "the command line"
    for row in request.vms.select_related("job").exclude(job__status__in=_ENDED):
        if job.cancel_requested is not None and row.phase == P.WAITING and not row.volume_created:
            # What the user no longer wanted was not made: cancelled, not failed.
            ProvisionedVM.objects.filter(pk=row.pk).update(phase=P.FINISHED)
            lifecycle.finish(
                row.job, status=J.CANCELLED, only_if=Q(status__in=(J.PENDING, J.RUNNING)), error=cancel_reason(who)
            )
            continue
        left = ""
        if row.volume_created or row.phase != P.WAITING:
            left = f"; volume {row.volume_name} may be left in pool {request.pool_name}"
        if row.phase in (P.DEFINING, P.STARTING):
            left += f" and VM {row.name} may be defined"
        ProvisionedVM.objects.filter(pk=row.pk).update(phase=P.FINISHED)
        lifecycle.finish(
            row.job,
            status=J.ABANDONED,
            only_if=Q(status__in=(J.PENDING, J.RUNNING)),
            error=f"{reason}{left}"[:2000],
            message="abandoned",
        )


def run_vm(ctx: JobContext) -> Outcome:
    """A VM of a request is made by its request's job, never queued on its own."""
    raise JobFailed("a VM of a provisioning request is made by its request, not on its own")


KINDS = [
    JobKind(
        name=KIND,
        label="Provision VMs",
        queue="provisioning",
        run=execute,
        resumable=True,
        errors=(DriverError,),
        cancel_between_steps=False,  # it cancels the VMs not begun itself, between VMs
        page_template="provisioning/jobs/_request.html",
        on_abandoned=abandoned,
    ),
    JobKind(name=VM_KIND, label="Provision a VM", queue="provisioning", run=run_vm),
]
