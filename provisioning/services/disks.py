"""Storage for existing VMs: provision a data disk, resize a disk, clone a volume.

Each is validated here against the inventory (so the refusal comes at once, with the reason), recorded
as a job (``vom.jobs``; a disk add or resize holds its VM's lock, like any VM operation) and executed
on the provisioning queue, where the driver checks again against the platform itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt.storage import (
    VIRTIO_BLK_MAX_DISKS,
    attach_disk,
    clone_volume,
    create_overlay_volume,
    create_volume,
    delete_volume,
    domains_using,
    resize_disk,
)
from inventory.models import Provider, StoragePool, StorageVolume, VirtualDisk, VirtualMachine
from inventory.services.operations import create_vm_job
from provisioning.models import Mode
from provisioning.services.common import (
    NAME_RE,
    NAME_RULE,
    VOLUME_FORMATS,
    GiB,
    MiB,
    libvirt_driver,
    pool_problem,
    refresh_inventory,
    require_libvirt,
    volume_file_name,
)
from provisioning.services.requests import space_needed
from vom.jobs import lifecycle
from vom.jobs.context import JobContext
from vom.jobs.kinds import JobKind
from vom.jobs.models import Job
from vom.jobs.outcomes import Done, JobFailed, Outcome
from vom.web.units import human_bytes

logger = logging.getLogger(__name__)
S = VirtualMachine.State


class Kind:
    DISK_ADD = "disk_add"
    DISK_RESIZE = "disk_resize"
    VOLUME_CLONE = "volume_clone"


DISK_BUSES = ("virtio", "scsi")
MIN_DISK_BYTES = 1 * MiB
MAX_DISK_BYTES = 64 * 1024 * GiB


def vm_problem(vm: VirtualMachine) -> str | None:
    """Why ``vm`` gets no disks from this console, or None."""
    if vm.provider.kind != vm.provider.Kind.LIBVIRT:
        return f"{vm.provider.get_kind_display()} VMs get their disks from their manager, not from this console"
    if vm.removed_at is not None:
        return f"VM {vm.name!r} was removed on {vm.removed_at:%Y-%m-%d %H:%M}"
    return None


def _queue_vm_job(*, vm: VirtualMachine, kind: str, params: dict[str, Any], user: Any | None, trigger: str) -> Job:
    return lifecycle.submit(create_vm_job(vm=vm, kind=kind, params=params, user=user, trigger=trigger))


# --- data disks -------------------------------------------------------------------------------


def _is_backing_image(vm: VirtualMachine, path: str) -> bool:
    return StorageVolume.objects.filter(
        pool__provider_id=vm.provider_id, pool__removed_at__isnull=True, backing_store=path
    ).exists()


def _attached_elsewhere(volume_path: str, vm: VirtualMachine, shareable: bool) -> str | None:
    users = VirtualDisk.objects.filter(source=volume_path, vm__removed_at__isnull=True).select_related("vm")
    for disk in users:
        if disk.vm_id == vm.pk:
            return f"{volume_path} is already attached to VM {vm.name!r} as {disk.target}"
        if not (shareable and disk.shareable):
            return (
                f"{volume_path} is already attached to VM {disk.vm.name!r} as {disk.target} without 'shareable': "
                "a disk used by two VMs must be shareable on both"
            )
    return None


def request_disk_add(
    *,
    vm: VirtualMachine,
    user: Any | None,
    bus: str = "virtio",
    pool: StoragePool | None = None,
    size_bytes: int | None = None,
    format: str = "qcow2",
    name: str = "",
    volume: StorageVolume | None = None,
    shareable: bool = False,
    trigger: str = Job.Trigger.GUI,
) -> Job:
    """Provision a data disk for ``vm``: a new volume in ``pool`` (or an existing ``volume``), attached
    as the next free target on ``bus`` — to the running VM where the platform allows it, and always to
    its persistent definition. Raises ValidationError with field errors.
    """
    problem = vm_problem(vm)
    if problem:
        raise ValidationError(problem)
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if bus not in DISK_BUSES:
        refuse("bus", f"Choose one of: {', '.join(DISK_BUSES)}.")
    elif bus == "virtio":
        virtio = sum(1 for d in vm.disks.all() if d.bus == "virtio")
        if virtio >= VIRTIO_BLK_MAX_DISKS:
            refuse(
                "bus",
                f"VM {vm.name!r} already has {virtio} virtio disks, the most virtio-blk allows "
                f"({VIRTIO_BLK_MAX_DISKS}, one PCI slot each): use the scsi bus (virtio-scsi).",
            )
    params: dict[str, Any] = {"bus": bus, "shareable": bool(shareable)}
    if volume is not None:
        if volume.pool.provider_id != vm.provider_id:
            refuse("volume", f"Volume {volume.name} is on another host than VM {vm.name!r}.")
        elif not volume.path:
            refuse("volume", f"Volume {volume.name} has no path the VM could use.")
        elif _is_backing_image(vm, volume.path):
            refuse(
                "volume",
                f"{volume.name} is the backing image of space-optimized volumes: a VM writing to it corrupts them.",
            )
        else:
            clash = _attached_elsewhere(volume.path, vm, bool(shareable))
            if clash:
                refuse("volume", f"{clash[:1].upper()}{clash[1:]}.")
        params.update(volume_path=volume.path, volume=volume.name, format=volume.format or "raw")
    else:
        name = (name or "").strip()
        if format not in VOLUME_FORMATS:
            refuse("format", f"Choose one of: {', '.join(VOLUME_FORMATS)}.")
        if not name:
            name = _free_volume_name(vm, pool, format)
        elif not NAME_RE.match(name):
            refuse("name", f"Not a valid volume name: {NAME_RULE}.")
        if size_bytes is None or not MIN_DISK_BYTES <= size_bytes <= MAX_DISK_BYTES:
            refuse("size_gib", f"Between {human_bytes(MIN_DISK_BYTES)} and {human_bytes(MAX_DISK_BYTES)}.")
        if pool is None:
            refuse("pool", "Choose the pool for the new volume.")
        else:
            problem = pool_problem(pool)
            if pool.provider_id != vm.provider_id:
                refuse("pool", f"Pool {pool.name} is on another host than VM {vm.name!r}.")
            elif problem:
                refuse("pool", f"{problem[:1].upper()}{problem[1:]}.")
            elif "name" not in errors and StorageVolume.objects.filter(pool=pool, name=name).exists():
                refuse("name", f"Pool {pool.name} already has a volume named {name!r}.")
            # A new qcow2 or sparse raw volume takes almost nothing at first; it grows to its size.
            if size_bytes and format == "raw" and size_bytes > pool.available_bytes:
                refuse("size_gib", f"Pool {pool.name} has {human_bytes(pool.available_bytes)} free.")
        if pool is not None:
            params.update(pool=pool.name, size_bytes=size_bytes, format=format, name=name)
    if errors:
        raise ValidationError(errors)
    return _queue_vm_job(vm=vm, kind=Kind.DISK_ADD, params=params, user=user, trigger=trigger)


def _free_volume_name(vm: VirtualMachine, pool: StoragePool | None, fmt: str) -> str:
    taken = set(StorageVolume.objects.filter(pool=pool).values_list("name", flat=True)) if pool else set()
    base = vm.name if NAME_RE.match(vm.name) else "disk"
    for number in range(1, 10000):
        candidate = volume_file_name(f"{base}-data{number}", fmt)
        if candidate not in taken:
            return candidate
    return volume_file_name(f"{base}-data", fmt)


def request_disk_resize(
    *, vm: VirtualMachine, disk: VirtualDisk, size_bytes: int, user: Any | None, trigger: str = Job.Trigger.GUI
) -> Job:
    """Grow one of ``vm``'s disks. virtio disks only while the VM is shut off (no online resize)."""
    problem = vm_problem(vm)
    if problem:
        raise ValidationError(problem)
    if disk.vm_id != vm.pk:
        raise ValidationError({"disk": [f"{disk.target} is not a disk of VM {vm.name!r}."]})
    if not disk.source:
        raise ValidationError({"disk": [f"{disk.target} has no source to resize."]})
    current = disk.volume.capacity_bytes if disk.volume is not None else 0
    if not MIN_DISK_BYTES <= size_bytes <= MAX_DISK_BYTES:
        raise ValidationError(
            {"size_gib": [f"Between {human_bytes(MIN_DISK_BYTES)} and {human_bytes(MAX_DISK_BYTES)}."]}
        )
    if current and size_bytes <= current:
        raise ValidationError(
            {
                "size_gib": [
                    f"{disk.target} is {human_bytes(current)}: give a larger size (shrinking a disk loses data and "
                    "is not done from the console)."
                ]
            }
        )
    if disk.bus == "virtio" and vm.state != S.STOPPED:
        raise ValidationError(
            {
                "disk": [
                    f"{disk.target} is a virtio disk and VM {vm.name!r} is {vm.get_state_display().lower()}: "
                    "virtio-blk has no online resize. Shut the VM down first."
                ]
            }
        )
    if _is_backing_image(vm, disk.source):
        raise ValidationError(
            {"disk": [f"{disk.target} is the backing image of space-optimized volumes: changing it corrupts them."]}
        )
    params = {"target": disk.target, "size_bytes": size_bytes, "path": disk.source}
    return _queue_vm_job(vm=vm, kind=Kind.DISK_RESIZE, params=params, user=user, trigger=trigger)


# --- volume clones ----------------------------------------------------------------------------


def request_volume_clone(
    *,
    volume: StorageVolume,
    name: str,
    user: Any | None,
    pool: StoragePool | None = None,
    mode: str = Mode.FULL,
    trigger: str = Job.Trigger.GUI,
) -> Job:
    """Clone ``volume`` into ``pool`` (its own by default): a full copy or a space-optimized child."""
    provider = volume.pool.provider
    require_libvirt(provider)
    pool = pool or volume.pool
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    fmt = "qcow2" if mode == Mode.SPACE_OPTIMIZED else (volume.format or "raw")
    if not NAME_RE.match(name):
        errors["name"] = [f"Not a valid volume name: {NAME_RULE}."]
    elif StorageVolume.objects.filter(pool=pool, name=name).exists():
        errors["name"] = [f"Pool {pool.name} already has a volume named {name!r}."]
    if mode not in Mode.values:
        errors["mode"] = [f"Choose one of: {', '.join(Mode.values)}."]
    problem = pool_problem(pool)
    if mode == Mode.FULL and problem and pool.removed_at is None and pool.active:
        problem = None  # a full copy can go to any active pool (an LV, …); a qcow2 child needs files
    if pool.provider_id != provider.pk:
        errors["pool"] = [f"Pool {pool.name} is on another host than the volume."]
    elif problem:
        errors["pool"] = [f"{problem[:1].upper()}{problem[1:]}."]
    else:
        need = space_needed(mode=mode, count=1, allocation_bytes=volume.allocation_bytes)
        if need > pool.available_bytes:
            errors["pool"] = [
                f"Pool {pool.name} has {human_bytes(pool.available_bytes)} free; the clone needs {human_bytes(need)}."
            ]
    if not volume.path:
        errors["volume"] = [f"Volume {volume.name} has no path to clone from."]
    if errors:
        raise ValidationError(errors)
    job = lifecycle.create(
        Kind.VOLUME_CLONE,
        target=volume,
        target_name=volume.name,
        params={
            "provider": provider.pk,
            "source": volume.path,
            "source_format": volume.format or "raw",
            "pool": pool.name,
            "name": name,
            "mode": mode,
            "format": fmt,
        },
        user=user,
        trigger=trigger,
    )
    return lifecycle.submit(job)


# --- execution --------------------------------------------------------------------------------


def _provider_of(ctx: JobContext) -> tuple[Provider, VirtualMachine | None]:
    if ctx.job.kind == Kind.VOLUME_CLONE:
        provider = Provider.objects.filter(pk=int(ctx.params.get("provider") or 0)).first()
        if provider is None:
            raise JobFailed("the host was deleted from the inventory before the clone ran")
        return provider, None
    vm = VirtualMachine.objects.select_related("provider").filter(pk=ctx.target_pk).first()
    if vm is None:
        raise JobFailed("the VM was deleted from the inventory before it ran")
    return vm.provider, vm


def execute_storage_job(ctx: JobContext) -> Outcome:
    """A disk add, disk resize or volume clone: one step, the platform asked once."""
    provider, vm = _provider_of(ctx)
    ctx.log(f"{ctx.job.kind_label} on {provider.name}: {ctx.job.target_name}")
    try:
        with libvirt_driver(provider) as driver:
            ctx.progress(10, ctx.job.kind_label.lower())
            result = _EXECUTORS[ctx.job.kind](driver, vm, ctx)
    except ValidationError as exc:
        raise JobFailed("; ".join(exc.messages)) from None
    ctx.progress(90, "refreshing the inventory")
    refresh_inventory(provider, ctx)
    ctx.log("done")
    return Done(result)


StorageExecutor = Callable[[LibvirtDriver, VirtualMachine | None, JobContext], dict[str, Any]]


def _disk_add(driver: LibvirtDriver, vm: VirtualMachine | None, ctx: JobContext) -> dict[str, Any]:
    assert vm is not None
    p = ctx.params
    created = False
    result: dict[str, Any] = {}
    path = str(p.get("volume_path") or "")
    if not path:
        ctx.log(f"creating {p['format']} volume {p['name']} ({human_bytes(int(p['size_bytes']))}) in pool {p['pool']}")
        info = create_volume(driver, str(p["pool"]), str(p["name"]), int(p["size_bytes"]), str(p["format"]))
        path, created = info.path, True
        result["volume_path"] = path
    try:
        attached = attach_disk(
            driver,
            vm.uuid,
            source_path=path,
            bus=str(p["bus"]),
            format=str(p["format"]),
            shareable=bool(p["shareable"]),
        )
    except DriverError as exc:
        # Remove the new volume unless a VM still holds it (a hot-plug the guest has not released yet).
        if created and not domains_using(driver, path):
            delete_volume(driver, str(p["pool"]), str(p["name"]), missing_ok=True)
            raise JobFailed(f"cannot attach the disk: {exc}; volume {p['name']} removed") from exc
        if created:
            message = f"cannot attach the disk: {exc}; volume {p['name']} is still in use and was kept"
            raise JobFailed(message, result) from exc
        raise JobFailed(f"cannot attach the disk: {exc}") from exc
    result.update(target=attached.target, live=attached.live, persistent=attached.persistent)
    where = " and ".join(
        w for w, ok in (("the running VM", attached.live), ("its definition", attached.persistent)) if ok
    )
    ctx.log(f"{path} attached as {attached.target} ({p['bus']}) to {where}")
    if attached.note:
        ctx.log(attached.note, "warning")
    return result


def _disk_resize(driver: LibvirtDriver, vm: VirtualMachine | None, ctx: JobContext) -> dict[str, Any]:
    assert vm is not None
    size = int(ctx.params["size_bytes"])
    resize_disk(driver, vm.uuid, str(ctx.params["target"]), size)
    ctx.log(f"{ctx.params['target']} grown to {human_bytes(size)}; grow the partition and file system in the guest")
    return {"size_bytes": size}


def _volume_clone(driver: LibvirtDriver, vm: VirtualMachine | None, ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    if p["mode"] == Mode.SPACE_OPTIMIZED:
        info = create_overlay_volume(
            driver, str(p["pool"]), str(p["name"]), str(p["source"]), str(p.get("source_format") or "qcow2")
        )
    else:
        info = clone_volume(driver, str(p["pool"]), str(p["source"]), str(p["name"]), str(p["format"]))
    ctx.log(f"{info.path} created ({human_bytes(info.allocation_bytes)} allocated)")
    return {"volume_path": info.path, "allocation_bytes": info.allocation_bytes}


_EXECUTORS: dict[str, StorageExecutor] = {
    Kind.DISK_ADD: _disk_add,
    Kind.DISK_RESIZE: _disk_resize,
    Kind.VOLUME_CLONE: _volume_clone,
}
_LABELS = {Kind.DISK_ADD: "Add disk", Kind.DISK_RESIZE: "Resize disk", Kind.VOLUME_CLONE: "Clone volume"}
KINDS = [
    JobKind(name=kind, label=_LABELS[kind], queue="provisioning", run=execute_storage_job, errors=(DriverError,))
    for kind in _EXECUTORS
]
