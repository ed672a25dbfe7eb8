"""The libvirt driver: KVM/QEMU hosts (and the ``test:///`` driver used by demos and tests).

One :class:`LibvirtDriver` talks to one libvirt URI, i.e. one host. It discovers every defined
domain (running, paused, shut off, transient) with its disks, NICs and snapshots, plus the host's
storage pools, volumes and networks, and runs power and snapshot operations on a domain by UUID.
:mod:`inventory.drivers.libvirt.storage` adds the storage primitives (volumes, disks, VMs
from a template) on top of the driver's public primitives.

Every ``libvirt.libvirtError`` leaves this package as a one-line :class:`DriverError` whose
``retryable`` flag says whether the failure was in reaching the host (retry later) or in the
request itself (retrying will not help). Every call is bounded in time (see :mod:`.connection`).

The parts: :mod:`.uri` (checking and showing URIs), :mod:`.probe` (does a remote host answer),
:mod:`.connection` (opening, keepalive, errors, kept test:// connections), :mod:`.parse` (libvirt
XML and enums as dataclasses), :mod:`.driver` (the driver class).
"""

from inventory.drivers.libvirt.connection import forget_test_connections
from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import REASON_NAMES
from inventory.drivers.libvirt.uri import validate_uri

__all__ = ["REASON_NAMES", "LibvirtDriver", "forget_test_connections", "validate_uri"]
