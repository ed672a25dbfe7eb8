"""Golden images: register a prepared, shut-down VM's boot volume; unregister one."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt.storage import domain_definition, domain_is_active, volume_by_path
from inventory.models import StorageVolume, VirtualDisk, VirtualMachine
from provisioning.models import GoldenImage
from provisioning.services.common import libvirt_driver, require_libvirt

S = VirtualMachine.State


def boot_disk(vm: VirtualMachine) -> VirtualDisk | None:
    """The disk a VM boots from as the console sees it: its first ``device="disk"`` disk by target."""
    disks = [d for d in vm.disks.all() if d.device == "disk" and d.source]
    return min(disks, key=lambda d: (len(d.target), d.target)) if disks else None


def _template_for(volume: StorageVolume) -> VirtualMachine | None:
    """The present VM whose disk is ``volume`` (the VM the image was prepared in), if exactly one."""
    vms = list(
        VirtualMachine.objects.filter(
            disks__source=volume.path, provider_id=volume.pool.provider_id, removed_at__isnull=True
        ).distinct()[:2]
    )
    return vms[0] if len(vms) == 1 else None


def register_golden_image(
    *,
    name: str,
    user: Any | None,
    volume: StorageVolume | None = None,
    template_vm: VirtualMachine | None = None,
    os: str = "",
    description: str = "",
) -> GoldenImage:
    """Register ``volume`` (or ``template_vm``'s boot disk) as a golden image.

    The template VM — the VM whose definition new VMs copy — defaults to the VM that uses the volume.
    It must be shut off: the image must be quiescent. Its persistent definition and the volume's size
    are read from the platform now. Raises ValidationError with field errors.
    """
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A name is required."]
    elif len(name) > 100:
        errors["name"] = ["At most 100 characters."]
    elif GoldenImage.objects.filter(name__iexact=name).exists():
        errors["name"] = [f"A golden image named {name!r} already exists."]
    if volume is None and template_vm is None:
        errors["volume"] = ["Choose a volume or a shut-off VM whose boot disk is the image."]
    if volume is None and template_vm is not None:
        disk = boot_disk(template_vm)
        volume = (
            StorageVolume.objects.select_related("pool", "pool__provider")
            .filter(path=disk.source, pool__provider_id=template_vm.provider_id)
            .first()
            if disk is not None
            else None
        )
        if volume is None:
            errors["template_vm"] = [
                f"VM {template_vm.name!r} has no boot disk in a storage pool the console knows: register its volume."
            ]
    if volume is not None and template_vm is None:
        template_vm = _template_for(volume)
        if template_vm is None:
            errors["template_vm"] = [
                f"No single VM uses {volume.name}: choose the VM whose definition new VMs should copy."
            ]
    if errors or volume is None or template_vm is None:
        raise ValidationError(errors)

    provider = volume.pool.provider
    require_libvirt(provider)
    boot = boot_disk(template_vm)
    if boot is None or boot.source != volume.path:
        used = template_vm.disks.filter(source=volume.path).first()
        why = (
            f"{volume.name} is its {used.target}, not the disk it boots from ({boot.target if boot else 'none'})"
            if used is not None
            else f"it does not use {volume.name}"
        )
        raise ValidationError(
            {"template_vm": [f"VM {template_vm.name!r} cannot be the template: {why}. New VMs boot from the image."]}
        )
    if template_vm.provider_id != provider.pk:
        raise ValidationError(
            {"template_vm": [f"VM {template_vm.name!r} is not on {provider.name}, the volume's host."]}
        )
    if template_vm.removed_at is not None:
        raise ValidationError({"template_vm": [f"VM {template_vm.name!r} was removed."]})
    if template_vm.state != S.STOPPED:
        raise ValidationError(
            {
                "template_vm": [
                    f"VM {template_vm.name!r} is {template_vm.get_state_display().lower()}: shut it down first, "
                    "a golden image must be quiescent."
                ]
            }
        )
    if GoldenImage.objects.filter(provider=provider, volume_path=volume.path).exists():
        raise ValidationError({"volume": [f"{volume.path} is already a golden image."]})

    try:
        with libvirt_driver(provider) as driver:
            if domain_is_active(driver, template_vm.uuid):  # the inventory may be older than the host
                raise ValidationError(
                    {
                        "template_vm": [
                            f"VM {template_vm.name!r} is running: shut it down first, the image must be quiescent."
                        ]
                    }
                )
            template_xml = domain_definition(driver, template_vm.uuid)
            info = volume_by_path(driver, volume.path)
    except DriverError as exc:
        raise ValidationError(f"cannot read the image from {provider.name}: {exc}") from exc
    if info is None:
        raise ValidationError({"volume": [f"{volume.path} no longer exists on {provider.name}."]})

    try:
        with transaction.atomic():
            return GoldenImage.objects.create(
                name=name,
                os=(os or "").strip()[:100],
                description=description or "",
                provider=provider,
                pool=volume.pool,
                volume=volume,
                volume_name=volume.name,
                volume_path=volume.path,
                format=info.format or volume.format or "raw",
                capacity_bytes=info.capacity_bytes,
                allocation_bytes=info.allocation_bytes,
                template_vm=template_vm,
                template_vm_name=template_vm.name,
                template_vm_uuid=template_vm.uuid,
                template_xml=template_xml,
                template_vcpus=max(template_vm.vcpus, 1),
                template_memory_bytes=template_vm.memory_bytes,
                created_by=user if user is not None and user.is_authenticated else None,
            )
    except IntegrityError:  # registered by someone else a moment ago
        raise ValidationError({"name": ["That golden image was registered a moment ago."]}) from None


def unregister_golden_image(*, image: GoldenImage) -> None:
    """Forget the golden image. The volume stays: its space-optimized children still read from it."""
    image.delete()
