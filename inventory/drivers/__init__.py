"""Platform drivers, looked up by the provider's kind from a plain dictionary.

Every factory takes the provider's ``options``; for every kind these include
``connect_timeout`` and ``read_timeout`` (seconds, default 10 and 120), which bound each call
the driver makes to the platform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inventory.drivers.base import Credentials, Driver, DriverError

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def _timeouts(options: dict[str, Any]) -> dict[str, float]:
    """The connect and read timeouts of ``options`` (seconds), with the defaults where absent."""
    connect = options.get("connect_timeout")
    read = options.get("read_timeout")
    return {
        "connect_timeout": float(connect) if connect is not None else DEFAULT_CONNECT_TIMEOUT,
        "read_timeout": float(read) if read is not None else DEFAULT_READ_TIMEOUT,
    }


def _libvirt(uri: str, credentials: Credentials, options: dict[str, Any]) -> Driver:
    from inventory.drivers.libvirt import LibvirtDriver

    return LibvirtDriver(uri, credentials, **_timeouts(options))


def _rhev(uri: str, credentials: Credentials, options: dict[str, Any]) -> Driver:
    from inventory.drivers.rhev import RhevDriver

    return RhevDriver(
        uri,
        credentials,
        ca_file=options.get("ca_file"),
        insecure=bool(options.get("insecure")),
        cluster=options.get("cluster") or None,
        **_timeouts(options),
    )


def _hyperv(uri: str, credentials: Credentials, options: dict[str, Any]) -> Driver:
    from inventory.drivers.hyperv import HyperVDriver

    return HyperVDriver(
        uri,
        credentials,
        transport=options.get("transport"),  # a captured:// demo host's replay; None: WinRM to the server
        auth=options.get("auth", "negotiate"),
        ssl=bool(options.get("ssl", True)),
        port=options.get("port"),
        cert_validation=bool(options.get("cert_validation", True)),
        **_timeouts(options),
    )


DRIVERS: dict[str, Callable[[str, Credentials, dict[str, Any]], Driver]] = {
    "libvirt": _libvirt,
    "rhev": _rhev,
    "hyperv": _hyperv,
}


def driver_for(kind: str, uri: str, credentials: Credentials, options: dict[str, Any] | None = None) -> Driver:
    """A driver for one provider; DriverError when the kind has none."""
    try:
        factory = DRIVERS[kind]
    except KeyError:
        raise DriverError(f"no driver for provider kind {kind!r}") from None
    return factory(uri, credentials, options or {})
