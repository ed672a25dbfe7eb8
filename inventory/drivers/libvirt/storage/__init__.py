"""Libvirt storage primitives: volumes (children, copies, data volumes), disks of VMs, VMs from a template.

Plain functions taking a :class:`~inventory.drivers.libvirt.LibvirtDriver` (they use its connection)
and returning plain dataclasses:

* :func:`create_overlay_volume` — a space-optimized child: a qcow2 volume whose ``<backingStore>``
  is the golden image (``virStorageVolCreateXML``); it stores only the blocks the VM changes.
* :func:`clone_volume` — a full copy (``virStorageVolCreateXMLFrom``).
* :func:`delete_volume` — remove a volume, e.g. one made for a VM that could not be defined.
* :func:`define_vm_from_template` — define a new persistent VM from a template's domain XML with a
  new name, UUID and MAC addresses and the new boot volume.
* :func:`free_target` — the next free disk target on a bus (``vdX`` / ``sdX`` / ``hdX``).
* :func:`create_volume`, :func:`resize_volume`, :func:`volume_by_path`, :func:`refresh_pool` — empty
  data volumes, growing them, and reading volumes and pools fresh from the platform.
* :func:`attach_disk`, :func:`detach_disk`, :func:`resize_disk`, :func:`domains_using` — data disks
  of a VM. An attachment is made to the running VM *and* to its persistent definition
  (``dumpxml`` + ``define``, DESIGN §3.2): a disk attached only live disappears at the next restart.
* :func:`domain_definition`, :func:`domain_is_active` — a VM's persistent definition, and whether it runs.

The functions use only the driver's public primitives (``connection()``, ``errors()``, ``error()``,
``domain()``, ``pool_info()``, ``skip_vanished()``), and every call that changes the host runs in
``driver.changing(…)`` with the lookup of what it changes inside the block.

All XML is built and edited with :mod:`xml.etree.ElementTree`, never by string formatting, so any
name or path is escaped correctly. Every ``libvirt.libvirtError`` leaves as a one-line
:class:`~inventory.drivers.base.DriverError` that says whether retrying can help.
"""

from inventory.drivers.libvirt.storage._common import VIRTIO_BLK_MAX_DISKS
from inventory.drivers.libvirt.storage.disks import (
    AttachResult,
    DiskUser,
    attach_disk,
    detach_disk,
    domains_using,
    resize_disk,
)
from inventory.drivers.libvirt.storage.domains import domain_definition, domain_is_active
from inventory.drivers.libvirt.storage.templates import define_vm_from_template, free_target, random_mac
from inventory.drivers.libvirt.storage.volumes import (
    clone_volume,
    create_overlay_volume,
    create_volume,
    delete_volume,
    refresh_pool,
    resize_volume,
    volume_by_path,
)

__all__ = [
    "VIRTIO_BLK_MAX_DISKS",
    "AttachResult",
    "DiskUser",
    "attach_disk",
    "clone_volume",
    "create_overlay_volume",
    "create_volume",
    "define_vm_from_template",
    "delete_volume",
    "detach_disk",
    "domain_definition",
    "domain_is_active",
    "domains_using",
    "free_target",
    "random_mac",
    "refresh_pool",
    "resize_disk",
    "resize_volume",
    "volume_by_path",
]
