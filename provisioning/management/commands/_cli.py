"""What the provisioning commands share: refusals as one line per field, and lookups by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from inventory.models import Host, Provider, StoragePool, StorageVolume, VirtualMachine
from provisioning.models import GoldenImage


def refusal_lines(exc: ValidationError, options: Mapping[str, str] | None = None) -> list[str]:
    """``field: reason`` per message of a service's ValidationError, fields named as the command's options."""
    if not hasattr(exc, "error_dict"):
        return list(exc.messages)
    names = options or {}
    return [
        f"{names.get(field, field)}: {message}" for field, messages in exc.message_dict.items() for message in messages
    ]


def refuse(
    command: Any, exc: ValidationError, options: Mapping[str, str] | None = None, *, outcome: str
) -> CommandError:
    """Write each reason on its own line to stderr; the CommandError returned says what (not) happened."""
    for line in refusal_lines(exc, options):
        command.stderr.write(line)
    return CommandError(outcome)


def provider_named(name: str | None) -> Provider | None:
    if not name:
        return None
    provider = Provider.objects.filter(name=name).first()
    if provider is None:
        raise CommandError(f"provider: no provider named {name!r}")
    return provider


def _only(rows: list[Any], provider_names: list[str], what: str) -> Any:
    """The one row found, None for none; several (on several providers) need --provider."""
    if len(rows) > 1:
        raise CommandError(
            f"{what} is on several providers ({', '.join(sorted(set(provider_names)))}): give --provider"
        )
    return rows[0] if rows else None


def volume_at(path: str, provider: Provider | None) -> StorageVolume:
    volumes = StorageVolume.objects.filter(path=path, pool__removed_at__isnull=True).select_related("pool__provider")
    if provider is not None:
        volumes = volumes.filter(pool__provider=provider)
    rows = list(volumes[:10])
    volume = _only(rows, [v.pool.provider.name for v in rows], f"volume: {path}")
    if volume is None:
        where = f" on {provider.name}" if provider else ""
        raise CommandError(f"volume: no volume {path!r} is known{where}: give the path of a discovered volume")
    return volume  # type: ignore[no-any-return]


def vm_named(name: str, provider: Provider | None) -> VirtualMachine:
    vms = VirtualMachine.objects.filter(name=name, removed_at__isnull=True).select_related("provider")
    if provider is not None:
        vms = vms.filter(provider=provider)
    rows = list(vms[:10])
    vm = _only(rows, [v.provider.name for v in rows], f"vm: {name!r}")
    if vm is None:
        where = f" on {provider.name}" if provider else ""
        raise CommandError(f"vm: no VM named {name!r}{where}")
    return vm  # type: ignore[no-any-return]


def golden_image_named(name: str) -> GoldenImage:
    image = GoldenImage.objects.select_related("provider").filter(name__iexact=name).first()
    if image is None:
        known = ", ".join(GoldenImage.objects.order_by("name").values_list("name", flat=True)[:10]) or "none yet"
        raise CommandError(f"golden-image: no golden image named {name!r} (known: {known})")
    return image


def pool_named(name: str, provider: Provider) -> StoragePool:
    pools = StoragePool.objects.filter(provider=provider, name=name).order_by("removed_at", "-pk")
    pool = pools.filter(removed_at__isnull=True).first() or pools.first()
    if pool is None:
        raise CommandError(f"pool: no storage pool named {name!r} on {provider.name}")
    return pool


def host_named(hostname: str | None, provider: Provider) -> Host | None:
    if not hostname:
        return None
    host = Host.objects.filter(provider=provider, hostname=hostname, removed_at__isnull=True).first()
    if host is None:
        raise CommandError(f"host: no host named {hostname!r} on {provider.name}")
    return host
