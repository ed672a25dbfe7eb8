"""Export the whole inventory as JSON (stdout or a file). Passwords are never exported."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inventory.services.export import export_inventory


class Command(BaseCommand):
    help = "Write the whole inventory as JSON to stdout or to --output FILE."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args: Any, output: str | None, **options: Any) -> None:
        data = export_inventory()
        if output:
            try:
                with open(output, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=2)
            except OSError as exc:
                raise CommandError(f"cannot write {output}: {exc.strerror}") from None
            vms = sum(len(p["vms"]) for p in data["providers"])
            self.stdout.write(f"Exported {len(data['providers'])} providers and {vms} VMs to {output}")
        else:
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
