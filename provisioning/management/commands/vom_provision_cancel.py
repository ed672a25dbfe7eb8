"""Cancel a queued or running provisioning request from the command line."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from provisioning.models import ProvisioningRequest
from provisioning.services.requests import cancel_provisioning


class Command(BaseCommand):
    help = (
        "Cancel a provisioning request: a queued one ends at once; a running one stops before its next VM "
        "(the VM being made finishes, the VMs already made stay)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("request", type=int, metavar="REQUEST_ID", help="the request's number (#N)")

    def handle(self, *args: Any, **o: Any) -> None:
        request = ProvisioningRequest.objects.filter(pk=o["request"]).first()
        if request is None:
            raise CommandError(f"no provisioning request #{o['request']}")
        try:
            request = cancel_provisioning(request=request, user=None)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        request.job.refresh_from_db()
        if request.job.is_active:
            self.stdout.write(
                f"Request #{request.pk}: cancellation asked for; it stops before its next VM "
                "(the VM being made finishes first)."
            )
        else:
            self.stdout.write(f"Request #{request.pk} cancelled before it started: no VM was made.")
