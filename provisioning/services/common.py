"""What the provisioning services share: the libvirt driver of a provider, names, and the inventory refresh."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError

from inventory.drivers.libvirt import LibvirtDriver
from inventory.models import Provider, StoragePool
from inventory.services.discovery import DiscoveryBusy, discover_now
from inventory.services.providers import provider_driver
from vom.jobs.context import JobContext
from vom.jobs.models import Job

# A VM or volume name the console makes: usable as a libvirt name, a file name and (mostly) a host name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
NAME_RULE = "1–63 letters, digits, '.', '_' or '-', starting with a letter or digit"
FILE_POOL_TYPES = frozenset({"dir", "fs", "netfs"})
VOLUME_FORMATS = ("qcow2", "raw")
MiB = 1024**2
GiB = 1024**3


def require_libvirt(provider: Provider) -> None:
    if provider.kind != Provider.Kind.LIBVIRT:
        raise ValidationError(
            f"{provider.name} is a {provider.get_kind_display()} provider: provisioning from this console "
            "works on KVM (libvirt) providers"
        )


@contextmanager
def libvirt_driver(provider: Provider) -> Iterator[LibvirtDriver]:
    """The provider's libvirt driver, closed afterwards. Raises DriverError when unreachable."""
    driver = provider_driver(provider)
    try:
        if not isinstance(driver, LibvirtDriver):
            raise ValidationError(f"{provider.name} is not a KVM (libvirt) provider")
        yield driver
    finally:
        driver.close()


def pool_problem(pool: StoragePool) -> str | None:
    """Why new volumes cannot be made in ``pool``, or None."""
    if pool.removed_at is not None:
        return f"storage pool {pool.name} was removed on {pool.removed_at:%Y-%m-%d %H:%M}"
    if not pool.active:
        return f"storage pool {pool.name} is not active"
    if pool.type not in FILE_POOL_TYPES:
        return f"storage pool {pool.name} is a {pool.type or 'unknown'} pool: use a directory or file-system pool"
    return None


def volume_file_name(base: str, fmt: str) -> str:
    return f"{base}.{'qcow2' if fmt == 'qcow2' else 'img'}"


def refresh_inventory(provider: Provider, ctx: JobContext) -> Job | None:
    """Discover ``provider`` now, in this worker, so the inventory shows what was just made.

    None when a discovery of the provider is already running: it may have read the platform before
    the change, so the caller tries again in a later step (a worker never waits for it).
    """
    try:
        result = discover_now(provider=provider, trigger=Job.Trigger.JOB)
    except DiscoveryBusy:
        return None
    if result.status == Job.Status.SUCCEEDED:
        ctx.log(f"inventory refreshed (discovery #{result.pk})")
    else:
        ctx.log(f"the inventory could not be refreshed: {result.error}", "warning")
    return result
