"""Platform drivers, looked up by the provider's kind from a plain dictionary."""

from __future__ import annotations

from collections.abc import Callable

from inventory.drivers.base import Credentials, Driver, DriverError


def _libvirt(uri: str, credentials: Credentials) -> Driver:
    from inventory.drivers.libvirt import LibvirtDriver

    return LibvirtDriver(uri, credentials)


DRIVERS: dict[str, Callable[[str, Credentials], Driver]] = {
    "libvirt": _libvirt,
}


def driver_for(kind: str, uri: str, credentials: Credentials) -> Driver:
    """A driver for one provider; DriverError when the kind has none."""
    try:
        factory = DRIVERS[kind]
    except KeyError:
        raise DriverError(f"no driver for provider kind {kind!r}") from None
    return factory(uri, credentials)
