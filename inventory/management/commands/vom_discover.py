"""Run a discovery synchronously (no worker needed) and print what it found and changed."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inventory.models import Provider
from inventory.services.discovery import DiscoveryBusy, discover_now
from vom.jobs.models import Job


class Command(BaseCommand):
    help = "Discover one provider (by name) or all of them, in this process, and print the result."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("names", nargs="*", help="provider names (default: all enabled providers)")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the results as JSON")

    def handle(self, *args: Any, names: list[str], as_json: bool, **options: Any) -> None:
        if names:
            providers = list(Provider.objects.filter(name__in=names))
            unknown = sorted(set(names) - {p.name for p in providers})
            if unknown:
                raise CommandError(f"no provider named {', '.join(map(repr, unknown))}")
        else:
            providers = list(Provider.objects.filter(enabled=True))
            if not providers:
                raise CommandError("no providers: add one with `manage.py vom_add_provider NAME URI`")
        results = []
        failed = 0
        for provider in providers:
            try:
                run = discover_now(provider=provider, trigger=Job.Trigger.CLI)
            except DiscoveryBusy as exc:
                failed += 1
                results.append({"provider": provider.name, "status": "busy", "error": str(exc)})
                if not as_json:
                    self.stderr.write(f"{provider.name}: {exc}")
                continue
            ok = run.status == Job.Status.SUCCEEDED
            failed += not ok
            found = run.result or {}
            results.append(
                {
                    "provider": provider.name,
                    "job": run.pk,
                    "status": run.status,
                    "duration_ms": found.get("duration_ms"),
                    "added": found.get("added", 0),
                    "changed": found.get("changed", 0),
                    "removed": found.get("removed", 0),
                    "counts": found.get("counts", {}),
                    "error": run.error,
                }
            )
            if as_json:
                continue
            if ok:
                vms = provider.vms.filter(removed_at__isnull=True).count()
                self.stdout.write(
                    f"{provider.name}: ok in {found.get('duration_ms')} ms, {vms} VMs; "
                    f"added {found.get('added', 0)}, changed {found.get('changed', 0)}, "
                    f"removed {found.get('removed', 0)}"
                )
            else:
                self.stderr.write(f"{provider.name}: failed: {run.error}")
        if as_json:
            self.stdout.write(json.dumps(results, indent=2))
        if failed:
            raise CommandError(f"{failed} of {len(providers)} discoveries failed")
