"""Create the first admin account: password from VOM_ADMIN_PASSWORD, or generated and printed once."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from vom.web.roles import ROLES


class Command(BaseCommand):
    help = "Create the role groups and, if no admin exists yet, the admin account."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("VOM_ADMIN_USER", "admin"))

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        for role in ROLES:
            Group.objects.get_or_create(name=role)
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin account {username!r} already exists; sign in with its password.")
            return
        password = os.environ.get("VOM_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, password=password, email="")
        if generated:
            self.stdout.write(self.style.WARNING(f"Created admin account {username!r} with password: {password}"))
            self.stdout.write("This password is shown once. Set VOM_ADMIN_PASSWORD to choose your own.")
        else:
            self.stdout.write(f"Created admin account {username!r} with the password from VOM_ADMIN_PASSWORD.")
