"""Providers: add, change, remove; and the driver for one, with its credentials decrypted."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from inventory import secrets
from inventory.drivers import driver_for
from inventory.drivers.base import Credentials, Driver
from inventory.models import Provider

MIN_INTERVAL = 30
MAX_INTERVAL = 7 * 24 * 3600


def validate_uri(kind: str, uri: str) -> str | None:
    """A one-line reason why ``uri`` is not usable for ``kind``, or None."""
    try:
        has_password = urlsplit(uri).password is not None
    except ValueError:
        has_password = False
    if has_password:
        # A password in the URI would be stored and shown in clear: it belongs in the password field.
        return "do not put a password in the URI; enter it in the password field, where it is stored encrypted"
    if kind == Provider.Kind.LIBVIRT:
        from inventory.drivers.libvirt import validate_uri as validate_libvirt_uri

        return validate_libvirt_uri(uri) or _test_node_outside_allowed_dirs(uri)
    return f"{kind} providers are not supported yet"


def _test_node_outside_allowed_dirs(uri: str) -> str | None:
    """A test:/// node file must lie in one of VOM_TEST_NODE_DIRS (it is read by this machine)."""
    parts = urlsplit(uri)
    if parts.scheme != "test" or parts.path == "/default":
        return None
    real = os.path.realpath(parts.path)
    allowed = [os.path.realpath(d) for d in settings.VOM_TEST_NODE_DIRS]
    if any(os.path.commonpath([real, d]) == d for d in allowed):
        return None
    return f"test node files are only read from {', '.join(settings.VOM_TEST_NODE_DIRS)} (VOM_TEST_NODE_DIRS)"


def _validate(*, name: str, kind: str, uri: str, discovery_interval: int, exclude_pk: int | None) -> None:
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if not name:
        errors["name"] = ["A name is required."]
    elif len(name) > 100:
        errors["name"] = ["At most 100 characters."]
    elif Provider.objects.filter(name=name).exclude(pk=exclude_pk or 0).exists():
        errors["name"] = [f"A provider named {name!r} already exists."]
    if kind not in Provider.Kind.values:
        errors["kind"] = [f"Unknown kind {kind!r}."]
    else:
        problem = validate_uri(kind, uri)
        if problem:
            errors["uri"] = [problem]
    if not MIN_INTERVAL <= discovery_interval <= MAX_INTERVAL:
        errors["discovery_interval"] = [f"Between {MIN_INTERVAL} and {MAX_INTERVAL} seconds."]
    if errors:
        raise ValidationError(errors)


def create_provider(
    *,
    name: str,
    uri: str,
    kind: str = Provider.Kind.LIBVIRT,
    username: str = "",
    password: str = "",
    discovery_interval: int = 300,
    enabled: bool = True,
    description: str = "",
) -> Provider:
    """Add a provider. Raises ValidationError with field errors; the password is stored encrypted."""
    uri = uri.strip()
    _validate(name=name, kind=kind, uri=uri, discovery_interval=discovery_interval, exclude_pk=None)
    try:
        with transaction.atomic():
            return Provider.objects.create(
                name=name.strip(),
                kind=kind,
                uri=uri,
                username=username.strip(),
                password_encrypted=secrets.encrypt(password),
                discovery_interval=discovery_interval,
                enabled=enabled,
                description=description.strip(),
            )
    except IntegrityError:  # the same name, added by someone else a moment ago
        raise ValidationError({"name": [f"A provider named {name.strip()!r} already exists."]}) from None


def update_provider(
    *, provider: Provider, password: str | None = None, clear_password: bool = False, **changes: Any
) -> Provider:
    """Change a provider. ``password=None`` keeps the stored one; ``clear_password`` removes it."""
    allowed = {"name", "uri", "username", "discovery_interval", "enabled", "description"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    changes = {field: value.strip() if isinstance(value, str) else value for field, value in changes.items()}
    _validate(
        name=changes.get("name", provider.name),
        kind=provider.kind,
        uri=changes.get("uri", provider.uri),
        discovery_interval=changes.get("discovery_interval", provider.discovery_interval),
        exclude_pk=provider.pk,
    )
    for field, value in changes.items():  # only once valid: a caller keeping the object never holds bad values
        setattr(provider, field, value)
    if clear_password:
        provider.password_encrypted = ""
    elif password:
        provider.password_encrypted = secrets.encrypt(password)
    try:
        with transaction.atomic():
            provider.save()
    except IntegrityError:
        raise ValidationError({"name": [f"A provider named {provider.name!r} already exists."]}) from None
    return provider


def delete_provider(*, provider: Provider) -> None:
    """Remove a provider and everything discovered behind it."""
    provider.delete()


def provider_credentials(provider: Provider) -> Credentials:
    return Credentials(
        username=provider.username or None,
        password=secrets.decrypt(provider.password_encrypted) or None,
    )


def provider_driver(provider: Provider) -> Driver:
    """The platform driver for ``provider`` (raises DriverError or SecretError)."""
    return driver_for(provider.kind, provider.uri, provider_credentials(provider))
