"""What a request is checked against before anything is made: its source, names, host, pool and space."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt.storage import domain_definition
from inventory.models import Host, Network, StoragePool, StorageVolume, VirtualMachine
from provisioning.models import GoldenImage, Mode, ProvisionedVM
from provisioning.services.common import NAME_RE, MiB, libvirt_driver, pool_problem, require_libvirt, volume_file_name
from provisioning.services.requests.naming import pattern_names
from vom.jobs.models import ACTIVE, Job
from vom.web.units import human_bytes

# What a fresh qcow2 child takes before the guest writes: header, L1 and refcount tables (~200 KiB).
OVERLAY_INITIAL_BYTES = 1 * MiB
MIN_MEMORY_BYTES = 64 * MiB
MAX_VCPUS = 512


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
    except DriverError as exc:
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


def names_being_provisioned(provider_id: int) -> QuerySet[ProvisionedVM]:
    """VMs of the provider's queued or running requests that are, or may yet be, made."""
    return ProvisionedVM.objects.filter(request__provider_id=provider_id, request__job__status__in=ACTIVE).exclude(
        job__status__in=(Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.ABANDONED)
    )


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
        busy = list(
            names_being_provisioned(source.provider_id).filter(name__in=names).values_list("name", "request_id")[:5]
        )
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
