"""The RHEV driver: one RHEV-M / oVirt engine through its REST API v4, with the official ``ovirtsdk4``.

Discovery reads the whole manager in a handful of requests: the API root (which checks the URL and
the credentials), data centers, clusters, hosts, storage domains, networks, vNIC profiles,
templates, and every VM with its disk attachments, disks and NICs followed inline
(``follow=disk_attachments.disk,nics``), optionally limited to one cluster (``search=cluster=NAME``).

Every ``ovirtsdk4.Error`` (SSO refusal, unreachable manager, TLS problem, ``<fault>`` answer, a
request that timed out) leaves this package as a one-line :class:`DriverError` whose ``retryable``
says whether trying again later can help. The password never appears in a message.

The parts: :mod:`.connection` (the SDK connection bounded in time; curl's errors),
:mod:`.parse` (the SDK's types as dataclasses), :mod:`.driver` (the driver class).
"""

from inventory.drivers.rhev.driver import HA_ENABLED_REASON, RhevDriver, RhevSnapshot

__all__ = ["HA_ENABLED_REASON", "RhevDriver", "RhevSnapshot"]
