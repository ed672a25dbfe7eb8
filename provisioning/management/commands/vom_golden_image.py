"""Golden images from the command line: list, register (a volume or a shut-off VM's boot disk), unregister."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from provisioning import selectors
from provisioning.management.commands._cli import golden_image_named, provider_named, refuse, vm_named, volume_at
from provisioning.services.golden_images import register_golden_image, unregister_golden_image
from provisioning.services.savings import Savings
from vom.web.units import human_bytes

# Service field → the option that gave it.
OPTIONS = {"template_vm": "vm"}
COLUMNS = ("NAME", "OS", "PROVIDER", "POOL", "VOLUME", "FORMAT", "SIZE", "ON DISK", "TEMPLATE VM", "CHILDREN", "SAVED")


class Command(BaseCommand):
    help = "List, register or unregister golden images (prepared boot volumes new VMs are made from)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="{list,register,unregister}")
        sub.add_parser("list", help="list the golden images, their children and the space they save")
        register = sub.add_parser(
            "register",
            help="register a discovered volume, or a shut-off VM's boot disk, as a golden image",
            description="The template VM (whose definition new VMs copy) must be shut off. With --volume it is "
            "the one VM using the volume; with --vm, the volume is the VM's boot disk.",
        )
        register.add_argument("--name", required=True, help="the golden image's name")
        source = register.add_mutually_exclusive_group(required=True)
        source.add_argument("--volume", metavar="PATH", help="the volume's path on the host")
        source.add_argument("--vm", metavar="NAME", help="a shut-off VM whose boot disk is the image")
        register.add_argument("--provider", metavar="NAME", help="the provider, when the path or name is on several")
        register.add_argument("--os", default="", help="the operating system, e.g. 'Debian 12'")
        register.add_argument("--description", default="")
        unregister = sub.add_parser("unregister", help="forget a golden image (its volume stays)")
        unregister.add_argument("name")

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        if subcommand == "list":
            self.list_images()
        elif subcommand == "register":
            self.register(**options)
        else:
            self.unregister(options["name"])

    def list_images(self) -> None:
        rows = []
        for image in selectors.golden_image_list():
            rows.append(
                (
                    image.name,
                    image.os or "-",
                    image.provider.name,
                    image.pool.name if image.pool else "-",
                    image.volume_path,
                    image.format,
                    human_bytes(image.capacity_bytes),
                    human_bytes(image.parent_bytes),  # type: ignore[attr-defined]
                    image.template_vm_name,
                    f"{image.child_count} + {image.full_count} full",  # type: ignore[attr-defined]
                    human_bytes(Savings.of_listed(image).saved_bytes),
                )
            )
        if not rows:
            self.stdout.write("No golden images: register one with `manage.py vom_golden_image register`.")
            return
        widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
        for row in [COLUMNS, *rows]:
            self.stdout.write(
                "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )

    def register(self, *, name: str, volume: str | None, vm: str | None, provider: str | None, **o: Any) -> None:
        where = provider_named(provider)
        source = volume_at(volume, where) if volume else None
        template = vm_named(vm, where) if vm else None
        try:
            image = register_golden_image(
                name=name, user=None, volume=source, template_vm=template, os=o["os"], description=o["description"]
            )
        except ValidationError as exc:
            raise refuse(self, exc, OPTIONS, outcome="the golden image was not registered") from None
        self.stdout.write(
            f"Registered golden image {image.name} (#{image.pk}): {image.volume_path} ({image.format}, "
            f"{human_bytes(image.capacity_bytes)}, {human_bytes(image.allocation_bytes)} on disk) on "
            f"{image.provider.name}; template VM {image.template_vm_name}"
        )

    def unregister(self, name: str) -> None:
        image = golden_image_named(name)
        try:
            unregister_golden_image(image=image)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Unregistered golden image {image.name}; its volume {image.volume_path} stays.")
