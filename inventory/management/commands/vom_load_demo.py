"""Load the demo estate, discovered at once: the KVM hosts of demo/kvm/ (libvirt test:/// node files),
the Hyper-V servers of demo/hyperv/ (captured discovery outputs) and, when its URL is given, the
simulated RHEV manager (``python -m vom.simulators.rhev``, started by scripts/run.sh)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Provider
from inventory.services.discovery import DiscoveryBusy, discover_now
from inventory.services.providers import create_provider
from vom.jobs.models import Job

RHEV_USER = "admin@internal"
RHEV_PASSWORD = "secret"  # the simulator's password (vom.simulators.rhev)


class Command(BaseCommand):
    help = (
        "Add the demo providers (demo/kvm/*.xml, demo/hyperv/*.json, the RHEV simulator at --rhev-url or "
        "VOM_DEMO_RHEV_URL) and discover each once, unless already there."
    )

    def add_arguments(self, parser: Any) -> None:
        demo = Path(settings.BASE_DIR) / "demo"
        parser.add_argument("--dir", default=str(demo / "kvm"), help="the KVM node files")
        parser.add_argument("--hyperv-dir", default=str(demo / "hyperv"), help="the captured Hyper-V outputs")
        parser.add_argument(
            "--rhev-url",
            default=os.environ.get("VOM_DEMO_RHEV_URL", ""),
            help="the simulated RHEV manager's API URL (default: $VOM_DEMO_RHEV_URL; none: no RHEV provider)",
        )
        parser.add_argument("--rhev-password", default=os.environ.get("VOM_DEMO_RHEV_PASSWORD", RHEV_PASSWORD))

    def handle(self, *args: Any, dir: str, hyperv_dir: str, rhev_url: str, rhev_password: str, **options: Any) -> None:
        files = sorted(Path(dir).glob("*.xml"))
        if not files:
            raise CommandError(f"no demo node files in {dir}")
        for path in files:
            self._load(
                f"demo-{path.stem}",
                kind=Provider.Kind.LIBVIRT,
                uri=f"test://{path.resolve()}",
                description=f"Demo KVM host from {path.name} (libvirt test driver)",
            )
        for path in sorted(Path(hyperv_dir).glob("*.json")):
            self._load(
                f"demo-{path.stem}",
                kind=Provider.Kind.HYPERV,
                uri=f"captured://{path.resolve()}",
                description=f"Demo Hyper-V server from {path.name} (captured PowerShell output)",
            )
        if not rhev_url:
            self.stdout.write("demo-rhevm: skipped (no simulated RHEV manager: set VOM_DEMO_RHEV_URL or --rhev-url)")
            return
        self._load(
            "demo-rhevm",
            kind=Provider.Kind.RHEV,
            uri=rhev_url,
            username=RHEV_USER,
            password=rhev_password,
            insecure=rhev_url.startswith("http://"),
            description="Demo RHEV manager (simulated oVirt REST API v4, python -m vom.simulators.rhev)",
            update_uri=True,
        )

    def _load(self, name: str, *, update_uri: bool = False, **fields: Any) -> None:
        provider = Provider.objects.filter(name=name).first()
        if provider is None:
            provider = create_provider(name=name, discovery_interval=300, **fields)
        elif update_uri and provider.uri != fields["uri"]:
            # The simulator may listen on another port this time: follow it, and discover again.
            from inventory.services.providers import update_provider

            update_provider(provider=provider, uri=fields["uri"], password=fields.get("password"))
            provider.last_success_at = None
        if provider.last_success_at is not None:
            return
        try:
            run = discover_now(provider=provider, trigger=Job.Trigger.CLI)
        except DiscoveryBusy:
            return
        if run.status != Job.Status.SUCCEEDED:
            self.stderr.write(f"{name}: discovery failed: {run.error}")
        else:
            self.stdout.write(f"{name}: {provider.vms.count()} VMs discovered")
