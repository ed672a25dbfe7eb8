"""Add a provider from the command line; the password is read from a prompt or stdin, never argv."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Provider
from inventory.services.providers import create_provider


class Command(BaseCommand):
    help = "Add a provider (a libvirt URI such as qemu+ssh://root@kvm01/system)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("uri")
        parser.add_argument("--kind", default=Provider.Kind.LIBVIRT, choices=Provider.Kind.values)
        parser.add_argument("--username", default="")
        parser.add_argument("--ask-password", action="store_true", help="prompt for the password")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        parser.add_argument("--interval", type=int, default=300, help="seconds between discoveries")
        parser.add_argument("--disabled", action="store_true", help="do not discover on the schedule")

    def handle(self, *args: Any, **o: Any) -> None:
        password = ""
        if o["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        elif o["ask_password"]:
            password = getpass.getpass("Password: ")
        try:
            provider = create_provider(
                name=o["name"],
                uri=o["uri"],
                kind=o["kind"],
                username=o["username"],
                password=password,
                discovery_interval=o["interval"],
                enabled=not o["disabled"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        self.stdout.write(f"Added provider {provider.name} (#{provider.pk}) for {provider.uri}")
