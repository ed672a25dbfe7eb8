"""Register the demo's golden images: the boot volumes of the shut-off ``*-template`` VMs of the demo
KVM hosts (``vom_load_demo`` adds and discovers those hosts first). Already registered ones are kept."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from inventory.models import Provider, VirtualMachine
from provisioning.models import GoldenImage
from provisioning.services.golden_images import boot_disk, register_golden_image


class Command(BaseCommand):
    help = "Register the demo KVM hosts' template VMs' boot volumes as golden images (skips those already there)."

    def handle(self, *args: Any, **options: Any) -> None:
        templates = VirtualMachine.objects.filter(
            provider__kind=Provider.Kind.LIBVIRT,
            provider__name__startswith="demo-",
            name__endswith="-template",
            state=VirtualMachine.State.STOPPED,
            removed_at__isnull=True,
        ).prefetch_related("disks")
        for vm in templates:
            disk = boot_disk(vm)
            if disk is None or GoldenImage.objects.filter(provider_id=vm.provider_id, volume_path=disk.source).exists():
                continue
            name = vm.name.removesuffix("-template")
            os_name = vm.description.split(":", 1)[-1].split(",")[0].strip() if vm.description else ""
            try:
                image = register_golden_image(name=name, os=os_name, template_vm=vm, user=None)
            except ValidationError as exc:
                self.stdout.write(f"{name}: not registered: {'; '.join(exc.messages)}")
                continue
            self.stdout.write(f"{image.name}: golden image {image.volume_path} on {vm.provider.name}")
