"""Load the demo estate: the test:/// node files shipped in demo/kvm/, discovered at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import DiscoveryRun, Provider
from inventory.services.discovery import DiscoveryBusy, discover_now
from inventory.services.providers import create_provider


class Command(BaseCommand):
    help = "Add a provider per demo node file (demo/kvm/*.xml) and discover it, unless already there."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dir", default=str(Path(settings.BASE_DIR) / "demo" / "kvm"))

    def handle(self, *args: Any, dir: str, **options: Any) -> None:
        files = sorted(Path(dir).glob("*.xml"))
        if not files:
            raise CommandError(f"no demo node files in {dir}")
        for path in files:
            name = f"demo-{path.stem}"
            provider = Provider.objects.filter(name=name).first()
            if provider is None:
                provider = create_provider(
                    name=name,
                    uri=f"test://{path.resolve()}",
                    description=f"Demo KVM host from {path.name} (libvirt test driver)",
                    discovery_interval=300,
                )
            if provider.last_success_at is not None:
                continue
            try:
                run = discover_now(provider=provider, trigger=DiscoveryRun.Trigger.CLI)
            except DiscoveryBusy:
                continue
            if run.status != DiscoveryRun.Status.SUCCEEDED:
                self.stderr.write(f"{name}: discovery failed: {run.error}")
            else:
                self.stdout.write(f"{name}: {provider.vms.count()} VMs discovered")
