"""Provision VMs from a golden image from the command line: queue the request, follow it, or run it here."""

from __future__ import annotations

import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from provisioning.management.commands._cli import golden_image_named, host_named, pool_named, refuse
from provisioning.models import ENDED_JOB, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import MiB
from provisioning.services.requests import request_provisioning
from vom.jobs.broker import QueueUnavailable
from vom.jobs.models import Job
from vom.jobs.runner import run_now
from vom.web.units import human_bytes

J = Job.Status
# Service field → the option that gave it.
OPTIONS = {
    "golden_image": "golden-image",
    "name_pattern": "pattern",
    "first_number": "first-number",
    "memory_mib": "memory-mib",
}


class Command(BaseCommand):
    help = (
        "Provision VMs from a golden image: validate and queue the request (a worker on the provisioning queue runs "
        "it), and with --wait follow it until done, or with --now run it in this process."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--golden-image", required=True, metavar="NAME")
        parser.add_argument("--count", required=True, type=int, metavar="N", help="how many VMs")
        parser.add_argument("--pattern", required=True, metavar="P", help="VM names, e.g. 'web-{n:02d}'")
        parser.add_argument("--first-number", type=int, default=1, metavar="K", help="the first n (default 1)")
        parser.add_argument(
            "--mode",
            choices=Mode.values,
            default=Mode.SPACE_OPTIMIZED,
            help="boot disks as copy-on-write children of the image (default) or full copies",
        )
        parser.add_argument("--pool", required=True, metavar="NAME", help="storage pool for the boot volumes")
        parser.add_argument("--host", metavar="HOSTNAME", help="default: the provider's host")
        parser.add_argument("--vcpus", type=int, metavar="N", help="default: the template VM's")
        parser.add_argument("--memory-mib", type=int, metavar="M", help="default: the template VM's")
        nic = parser.add_mutually_exclusive_group()
        nic.add_argument("--network", metavar="NAME", default="", help="libvirt network for the first NIC")
        nic.add_argument("--bridge", metavar="BR", default="", help="host bridge for the first NIC")
        parser.add_argument("--start", action="store_true", help="start each VM once defined")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--wait", action="store_true", help="follow the request until it is done")
        how.add_argument("--now", action="store_true", help="run the request in this process, without a worker")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks with --wait")

    def handle(self, *args: Any, **o: Any) -> None:
        image = golden_image_named(o["golden_image"])
        pool = pool_named(o["pool"], image.provider)
        host = host_named(o["host"], image.provider)
        request = {
            "golden_image": image,
            "user": None,
            "count": o["count"],
            "name_pattern": o["pattern"],
            "first_number": o["first_number"],
            "mode": o["mode"],
            "pool": pool,
            "host": host,
            "vcpus": o["vcpus"],
            "memory_bytes": o["memory_mib"] * MiB if o["memory_mib"] is not None else None,
            "network": o["network"],
            "bridge": o["bridge"],
            "start": o["start"],
            "trigger": Job.Trigger.CLI,
        }
        try:
            if o["now"]:
                provisioning = self.run_here(request)
            else:
                provisioning = request_provisioning(**request)
                self.announce(provisioning, "queued")
        except ValidationError as exc:
            raise refuse(self, exc, OPTIONS, outcome="nothing was provisioned") from None
        except QueueUnavailable as exc:
            raise CommandError(f"{exc} (or run it here without a worker: --now)", returncode=3) from None
        if o["wait"] or o["now"]:
            self.follow(provisioning, o["interval"])

    def run_here(self, request: dict[str, Any]) -> ProvisioningRequest:
        """Record the request without queuing it and execute it in this process (no worker, no broker)."""
        provisioning = request_provisioning(**request, enqueue=False)
        self.announce(provisioning, "running in this process")
        run_now(provisioning.job_id)
        return provisioning

    def announce(self, provisioning: ProvisioningRequest, what: str) -> None:
        path = reverse("api:provisioningrequest-detail", args=[provisioning.pk])
        self.stdout.write(
            f"Provisioning request #{provisioning.pk} {what} (operation #{provisioning.job_id}): "
            f"{provisioning.count} × {provisioning.golden_image_name}, {provisioning.get_mode_display().lower()}, "
            f"into pool {provisioning.pool_name}\n  {path}"
        )

    def follow(self, provisioning: ProvisioningRequest, interval: float) -> None:
        """Print each VM's outcome as it finishes until the request is done; CommandError if any failed."""
        reported: set[int] = set()
        began = time.monotonic()
        try:
            while True:
                op = Job.objects.get(pk=provisioning.job_id)
                finished = provisioning.vms.select_related("job").filter(job__status__in=ENDED_JOB)
                for row in finished.exclude(pk__in=reported).order_by("job__finished", "index"):
                    reported.add(row.pk)
                    self.stdout.write(self.outcome(row))
                if not op.is_active:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            path = reverse("api:provisioningrequest-detail", args=[provisioning.pk])
            raise CommandError(
                f"stopped following; request #{provisioning.pk} goes on: {path} "
                f"(to stop it: manage.py vom_provision_cancel {provisioning.pk})",
                returncode=130,
            ) from None
        done = provisioning.vms.filter(job__status=J.SUCCEEDED).count()
        failed = provisioning.vms.filter(job__status__in=(J.FAILED, J.ABANDONED)).count()
        cancelled = provisioning.vms.filter(job__status=J.CANCELLED).count()
        self.stdout.write(
            f"{done} of {provisioning.count} VMs provisioned, {failed} failed"
            + (f", {cancelled} cancelled" if cancelled else "")
            + f", in {time.monotonic() - began:.1f} s"
        )
        if cancelled:
            raise CommandError(f"the request was cancelled: {op.error or op.message}")
        if failed:
            raise CommandError(f"{failed} of {provisioning.count} VMs failed")
        if op.status != J.SUCCEEDED:
            raise CommandError(f"the request failed: {op.error or op.message}")

    @staticmethod
    def outcome(row: ProvisionedVM) -> str:
        if row.status == ProvisionedVM.Status.FAILED:
            return f"{row.name}: failed: {row.error}"
        if row.status == ProvisionedVM.Status.CANCELLED:
            return f"{row.name}: {row.error}"
        on_disk = human_bytes(row.allocation_bytes)
        line = f"{row.name}: done, boot volume {row.volume_name} ({on_disk} on disk), VM {row.vm_uuid}"
        return f"{line}; {row.warning}" if row.warning else line
