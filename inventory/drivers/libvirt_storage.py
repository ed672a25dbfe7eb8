"""Libvirt primitives for rapid provisioning: boot volumes from a golden image, VMs from a template.

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
* :func:`domain_definition`, :func:`domain_is_active` — what the provisioning service reads.

All XML is built and edited with :mod:`xml.etree.ElementTree`, never by string formatting, so any
name or path is escaped correctly. Every ``libvirt.libvirtError`` leaves as a one-line
:class:`~inventory.drivers.base.DriverError` that says whether retrying can help.
"""

from __future__ import annotations

import os
import random
import re
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import libvirt

from inventory.drivers.base import DriverError, PoolInfo, VolumeInfo
from inventory.drivers.libvirt import LibvirtDriver, _error_text, _parse_xml, _volume_info

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

VIRTIO_BLK_MAX_DISKS = 28
"""virtio-blk disks a guest can have: one PCI slot each, 32 slots, a few taken by other devices."""

_TARGET_PREFIXES: dict[str, str] = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}
_BUS_LIMITS: dict[str, int] = {"ide": 4}  # two IDE channels × master/slave
_MAC_PREFIX = "52:54:00"  # QEMU's range; 0x52 has the locally-administered bit set
_rng = random.SystemRandom()
_VOLUME_FORMATS = ("qcow2", "raw")
_HOTPLUG_BUSES = frozenset({"virtio", "scsi", "usb"})  # QEMU cannot hot-plug sata or ide disks
_UNSUPPORTED_ERRORS = frozenset({libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED})
# A definition that will be redefined is read with its secrets (a VNC/SPICE password …): libvirt
# leaves them out otherwise, and the redefinition would silently drop them.
_REDEFINE_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
# Keep the usual prefixes when a definition with these namespaces is written back.
ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
ET.register_namespace("libosinfo", "http://libosinfo.org/xmlns/libvirt/domain/1.0")


# --- helpers ----------------------------------------------------------------------------------


def _check_name(kind: str, name: str) -> None:
    if not name or not name.strip():
        raise DriverError(f"{kind} name must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise DriverError(f"{kind} name {name!r} contains control characters")


def _check_volume_name(name: str) -> None:
    _check_name("volume", name)
    if "/" in name or name in (".", ".."):
        raise DriverError(f"volume name {name!r} is not a valid file name")


def _xml(elem: ET.Element) -> str:
    return ET.tostring(elem, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _pool(driver: LibvirtDriver, pool_name: str) -> Any:
    conn = driver._connection()
    try:
        pool = conn.storagePoolLookupByName(pool_name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise DriverError(f"storage pool {pool_name!r} not found") from err
        raise driver._fail(err, f"cannot look up storage pool {pool_name!r}") from err
    with driver._errors(f"cannot read storage pool {pool_name!r}"):
        active = bool(pool.isActive())
    if not active:
        raise DriverError(f"storage pool {pool_name!r} is not active")
    return pool


def _volume_in_pool(driver: LibvirtDriver, pool: Any, pool_name: str, name: str) -> Any | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise driver._fail(err, f"cannot look up volume {name!r} in pool {pool_name!r}") from err


def _refuse_existing_volume(driver: LibvirtDriver, pool: Any, pool_name: str, name: str) -> None:
    if _volume_in_pool(driver, pool, pool_name, name) is not None:
        raise DriverError(f"volume {name!r} already exists in pool {pool_name!r}")


def _volume_by_path(driver: LibvirtDriver, path: str) -> Any | None:
    try:
        return driver._connection().storageVolLookupByPath(path)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise driver._fail(err, f"cannot look up volume {path!r}") from err


def _capacity_of(driver: LibvirtDriver, vol: Any, what: str) -> int:
    with driver._errors(f"cannot read volume {what!r}"):
        return int(vol.info()[1])


def _check_capacity(capacity_bytes: int) -> None:
    if capacity_bytes <= 0:
        raise DriverError(f"capacity must be positive, not {capacity_bytes}")


def _size(n: int) -> str:
    """``n`` bytes the way a user reads it: "64 MiB" when exact, else the byte count."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def _unsupported(err: libvirt.libvirtError) -> bool:
    """Whether the hypervisor driver cannot do this at all (device hot-plug on ``test:///`` …)."""
    code = err.get_error_code()
    return code in _UNSUPPORTED_ERRORS or "this function is not supported" in (err.get_error_message() or "")


def _grow(driver: LibvirtDriver, vol: Any, what: str, capacity_bytes: int) -> VolumeInfo:
    """Grow ``vol`` to ``capacity_bytes``; a smaller size is refused, the same size changes nothing."""
    _check_capacity(capacity_bytes)
    with driver._errors(f"cannot read the size of {what}"):
        current = int(vol.info()[1])
    if capacity_bytes < current:
        raise DriverError(
            f"cannot shrink {what} from {_size(current)} to {_size(capacity_bytes)}: only growing is supported"
        )
    with driver._errors(f"cannot resize {what} to {_size(capacity_bytes)}"):
        if capacity_bytes > current:
            vol.resize(capacity_bytes, 0)
        return _volume_info(vol)


# --- volumes ----------------------------------------------------------------------------------


def create_overlay_volume(
    driver: LibvirtDriver,
    pool_name: str,
    name: str,
    backing_path: str,
    backing_format: str = "qcow2",
    capacity_bytes: int | None = None,
) -> VolumeInfo:
    """Create a qcow2 copy-on-write child of ``backing_path`` (the golden image) in ``pool_name``.

    ``capacity_bytes`` defaults to the golden image's capacity (the image must then be a volume
    libvirt knows, in any pool); a child may be larger than its parent but not smaller.
    """
    _check_volume_name(name)
    if not backing_path:
        raise DriverError("the backing image path must not be empty")
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    backing = _volume_by_path(driver, backing_path)
    if capacity_bytes is None:
        if backing is None:
            raise DriverError(f"backing image {backing_path!r} is not a known volume: give the capacity")
        capacity_bytes = _capacity_of(driver, backing, backing_path)
    elif capacity_bytes <= 0:
        raise DriverError(f"capacity must be positive, not {capacity_bytes}")
    elif backing is not None and capacity_bytes < _capacity_of(driver, backing, backing_path):
        raise DriverError(f"capacity {capacity_bytes} is smaller than the backing image {backing_path!r}")

    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_bytes), unit="bytes")
    _sub(root, "allocation", "0", unit="bytes")
    target = _sub(root, "target")
    _sub(target, "format", type="qcow2")
    store = _sub(root, "backingStore")
    _sub(store, "path", backing_path)
    _sub(store, "format", type=backing_format)
    with driver._errors(f"cannot create overlay volume {name!r} in pool {pool_name!r}"):
        vol = pool.createXML(_xml(root), 0)
        return _volume_info(vol)


def clone_volume(
    driver: LibvirtDriver, pool_name: str, source_path: str, name: str, format: str = "qcow2"
) -> VolumeInfo:
    """Create ``name`` in ``pool_name`` as a full copy of the volume at ``source_path``."""
    _check_volume_name(name)
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    source = _volume_by_path(driver, source_path)
    if source is None:
        raise DriverError(f"source volume {source_path!r} not found")
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(_capacity_of(driver, source, source_path)), unit="bytes")
    target = _sub(root, "target")
    _sub(target, "format", type=format)
    with driver._errors(f"cannot clone {source_path!r} to volume {name!r} in pool {pool_name!r}"):
        vol = pool.createXMLFrom(_xml(root), source, 0)
        return _volume_info(vol)


def create_volume(
    driver: LibvirtDriver, pool_name: str, name: str, capacity_bytes: int, format: str = "qcow2"
) -> VolumeInfo:
    """Create an empty data volume ``name`` of ``capacity_bytes`` in ``pool_name``.

    It is sparse (allocation 0): it takes space as the guest writes. ``format`` is qcow2 or raw.
    """
    _check_volume_name(name)
    if format not in _VOLUME_FORMATS:
        raise DriverError(f"volume format {format!r} is not supported: use {' or '.join(_VOLUME_FORMATS)}")
    _check_capacity(capacity_bytes)
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_bytes), unit="bytes")
    _sub(root, "allocation", "0", unit="bytes")
    target = _sub(root, "target")
    _sub(target, "format", type=format)
    with driver._errors(f"cannot create volume {name!r} in pool {pool_name!r}"):
        vol = pool.createXML(_xml(root), 0)
        return _volume_info(vol)


def resize_volume(driver: LibvirtDriver, pool_name: str, name: str, capacity_bytes: int) -> VolumeInfo:
    """Grow volume ``name`` of ``pool_name`` to ``capacity_bytes`` (shrinking is refused).

    Only the volume grows: a VM using it sees the new size at its next start, and the partitions
    and file systems inside are the guest's to grow.
    """
    _check_capacity(capacity_bytes)
    pool = _pool(driver, pool_name)
    vol = _volume_in_pool(driver, pool, pool_name, name)
    if vol is None:
        raise DriverError(f"volume {name!r} not found in pool {pool_name!r}")
    return _grow(driver, vol, f"volume {name!r} in pool {pool_name!r}", capacity_bytes)


def volume_by_path(driver: LibvirtDriver, path: str) -> VolumeInfo | None:
    """The volume at ``path`` in any storage pool of the host, or None if libvirt knows none there."""
    if not path:
        raise DriverError("the volume path must not be empty")
    vol = _volume_by_path(driver, path)
    if vol is None:
        return None
    with driver._errors(f"cannot read volume {path!r}"):
        return _volume_info(vol)


def refresh_pool(driver: LibvirtDriver, pool_name: str) -> PoolInfo:
    """Rescan ``pool_name`` on the host and return it with its volumes, read fresh from the platform.

    A refresh picks up volumes made or removed outside libvirt and the current capacity, allocation
    and free space.
    """
    pool = _pool(driver, pool_name)
    try:
        pool.refresh(0)
    except libvirt.libvirtError as err:
        if not _unsupported(err):
            raise driver._fail(err, f"cannot refresh storage pool {pool_name!r}") from err
    with driver._errors(f"cannot read storage pool {pool_name!r}"):
        return driver._pool_info(pool)


def delete_volume(driver: LibvirtDriver, pool_name: str, name: str, *, missing_ok: bool = False) -> None:
    """Delete volume ``name`` of ``pool_name`` (its data too). ``missing_ok``: a missing one is fine."""
    pool = _pool(driver, pool_name)
    vol = _volume_in_pool(driver, pool, pool_name, name)
    if vol is None:
        if missing_ok:
            return
        raise DriverError(f"volume {name!r} not found in pool {pool_name!r}")
    with driver._errors(f"cannot delete volume {name!r} in pool {pool_name!r}"):
        vol.delete(0)


# --- targets ----------------------------------------------------------------------------------


def _target_name(prefix: str, index: int) -> str:
    """libvirt's naming: 0 → a, 25 → z, 26 → aa, 701 → zz, 702 → aaa."""
    letters = ""
    index += 1
    while index > 0:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def _bus_prefix(bus: str) -> str:
    prefix = _TARGET_PREFIXES.get(bus)
    if prefix is None:
        raise DriverError(f"unknown disk bus {bus!r}: use one of {', '.join(sorted(_TARGET_PREFIXES))}")
    return prefix


def free_target(existing_targets: Iterable[str], bus: str) -> str:
    """The first target name on ``bus`` not in ``existing_targets`` (targets of every bus).

    virtio gives ``vdX``, scsi/sata/usb ``sdX``, ide ``hdX``. virtio-blk is refused once the guest
    has :data:`VIRTIO_BLK_MAX_DISKS` virtio disks (each takes a PCI slot): use virtio-scsi.
    """
    prefix = _bus_prefix(bus)
    taken = {t.strip().lower() for t in existing_targets}
    on_bus = sum(1 for t in taken if re.fullmatch(rf"{prefix}[a-z]+", t))
    if bus == "virtio" and on_bus >= VIRTIO_BLK_MAX_DISKS:
        raise DriverError(
            f"the VM already has {on_bus} virtio disks, the most virtio-blk allows "
            f"({VIRTIO_BLK_MAX_DISKS}, one PCI slot each): attach the disk on the scsi bus (virtio-scsi)"
        )
    limit = _BUS_LIMITS.get(bus, 18278)  # sda … sdzzz
    for index in range(limit):
        candidate = _target_name(prefix, index)
        if candidate not in taken:
            return candidate
    raise DriverError(f"no free target left on the {bus} bus ({limit} in use)")


# --- VMs from a template ------------------------------------------------------------------------


def random_mac(avoid: Iterable[str] = ()) -> str:
    """A random MAC in QEMU's locally-administered range 52:54:00:xx:xx:xx, not one of ``avoid``."""
    used = {m.lower() for m in avoid}
    while True:
        mac = _MAC_PREFIX + "".join(f":{_rng.randrange(256):02x}" for _ in range(3))
        if mac not in used:
            return mac


def _domain_exists(driver: LibvirtDriver, name: str) -> bool:
    try:
        driver._connection().lookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise driver._fail(err, f"cannot look up VM {name!r}") from err
    return True


def _set_identity(root: ET.Element, name: str, new_uuid: str) -> None:
    root.attrib.pop("id", None)  # live XML: the running domain's id
    name_el = root.find("name")
    if name_el is None:
        name_el = ET.Element("name")
        root.insert(0, name_el)
    name_el.text = name
    uuid_el = root.find("uuid")
    if uuid_el is None:
        uuid_el = ET.Element("uuid")
        root.insert(list(root).index(name_el) + 1, uuid_el)
    uuid_el.text = new_uuid


def _strip_instance_bound(root: ET.Element) -> None:
    """Remove what belongs to the template's instance and must not be copied to a new VM."""
    for parent in root.iter():
        for child in list(parent):
            if child.tag == "genid":  # VM generation id: libvirt makes a new one when needed
                parent.remove(child)
            elif child.tag == "alias" and not (child.get("name") or "").startswith("ua-"):
                parent.remove(child)  # live-only device aliases
            elif child.tag == "seclabel" and parent is root and child.get("type") == "dynamic":
                parent.remove(child)  # a generated label: libvirt gives the new VM its own
    sysinfo_system = root.find("sysinfo/system")
    if sysinfo_system is not None:  # must equal the domain UUID, or libvirt refuses the definition
        for entry in sysinfo_system.findall("entry"):
            if entry.get("name") == "uuid":
                sysinfo_system.remove(entry)
    nvram = root.find("os/nvram")
    if nvram is not None:  # per-VM UEFI variables: libvirt creates <name>_VARS.fd from the template
        nvram.text = None
    for iface in root.findall("devices/interface"):
        for target in iface.findall("target"):  # vnetN of the running template
            iface.remove(target)


def _replace_macs(root: ET.Element) -> None:
    template_macs = {(m.get("address") or "").lower() for m in root.iter("mac")}
    new: set[str] = set()
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        if mac is None:
            continue  # libvirt generates one
        address = random_mac(template_macs | new)
        new.add(address)
        mac.set("address", address)


def _set_boot_disk(root: ET.Element, path: str, fmt: str) -> None:
    devices = root.find("devices")
    disks = devices.findall("disk") if devices is not None else []
    boot = next((d for d in disks if (d.get("device") or "disk") == "disk"), None)
    if devices is None or boot is None:
        raise DriverError("the template has no disk to boot from")
    # Other writable disks would be shared with the template's VM: the new VM gets the boot disk only.
    for disk in disks:
        shared = disk.find("readonly") is not None or disk.find("shareable") is not None
        if disk is not boot and (disk.get("device") or "disk") in ("disk", "lun") and not shared:
            devices.remove(disk)
    boot.set("type", "file")
    old_source = boot.find("source")
    position = list(boot).index(old_source) if old_source is not None else len(boot)
    for tag in ("source", "backingStore", "auth", "encryption", "serial", "wwn", "mirror"):
        for child in boot.findall(tag):
            boot.remove(child)
    source = ET.Element("source", {"file": path})
    boot.insert(min(position, len(boot)), source)
    driver_el = boot.find("driver")
    if driver_el is None:
        driver_el = ET.Element("driver", {"name": "qemu"})
        boot.insert(0, driver_el)
    driver_el.set("type", fmt)


def _set_vcpus(root: ET.Element, vcpus: int) -> None:
    if vcpus < 1:
        raise DriverError(f"vCPUs must be at least 1, not {vcpus}")
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = _sub(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    for per_vcpu in root.findall("vcpus"):
        root.remove(per_vcpu)
    topology = root.find("cpu/topology")
    if topology is not None:
        topology.attrib.update({"sockets": str(vcpus), "dies": "1", "cores": "1", "threads": "1"})
    cputune = root.find("cputune")
    if cputune is not None:
        for pin in cputune.findall("vcpupin"):
            if int(pin.get("vcpu") or 0) >= vcpus:
                cputune.remove(pin)


def _set_memory(root: ET.Element, memory_bytes: int) -> None:
    if memory_bytes < 1024 * 1024:
        raise DriverError(f"memory must be at least 1 MiB, not {memory_bytes} bytes")
    kib = str(memory_bytes // 1024)
    for tag in ("memory", "currentMemory"):
        elem = root.find(tag)
        if elem is None:
            elem = _sub(root, tag)
        elem.text = kib
        elem.set("unit", "KiB")


def _set_network(root: ET.Element, kind: str, source_name: str) -> None:
    iface = root.find("devices/interface")
    if iface is None:
        raise DriverError(f"the template has no network interface to connect to {kind} {source_name!r}")
    iface.set("type", kind)
    for old in iface.findall("source"):
        iface.remove(old)
    position = 1 if iface.find("mac") is not None else 0
    iface.insert(position, ET.Element("source", {kind: source_name}))


def define_vm_from_template(
    driver: LibvirtDriver,
    template_xml: str,
    *,
    name: str,
    boot_volume_path: str,
    boot_format: str = "qcow2",
    vcpus: int | None = None,
    memory_bytes: int | None = None,
    network: str | None = None,
    bridge: str | None = None,
) -> str:
    """Define a persistent VM from ``template_xml`` and return its new UUID.

    The copy gets ``name``, a new UUID and new random MAC addresses; its first ``device="disk"``
    disk becomes a file disk on ``boot_volume_path`` (format ``boot_format``), and other writable
    disks of the template are dropped (they would be shared with the template's VM). ``vcpus``,
    ``memory_bytes`` and the first interface's libvirt ``network`` or host ``bridge`` replace the
    template's when given. The VM is not started. A name already defined is refused.
    """
    _check_name("VM", name)
    if not boot_volume_path:
        raise DriverError("the boot volume path must not be empty")
    if network is not None and bridge is not None:
        raise DriverError("give a network or a bridge for the interface, not both")
    try:
        root = _parse_xml(template_xml)
    except ET.ParseError as err:
        raise DriverError(f"the template is not valid domain XML: {err}") from err
    if root.tag != "domain":
        raise DriverError(f"the template is not domain XML (root element <{root.tag}>)")
    if _domain_exists(driver, name):
        raise DriverError(f"a VM named {name!r} is already defined")

    new_uuid = str(uuid_module.uuid4())
    _set_identity(root, name, new_uuid)
    _strip_instance_bound(root)
    _replace_macs(root)
    _set_boot_disk(root, boot_volume_path, boot_format)
    if vcpus is not None:
        _set_vcpus(root, vcpus)
    if memory_bytes is not None:
        _set_memory(root, memory_bytes)
    if network is not None:
        _set_network(root, "network", network)
    elif bridge is not None:
        _set_network(root, "bridge", bridge)

    conn = driver._connection()
    try:
        dom = conn.defineXML(_xml(root))
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED and _domain_exists(driver, name):
            raise DriverError(f"a VM named {name!r} is already defined") from err
        raise driver._fail(err, f"cannot define VM {name!r}") from err
    with driver._errors(f"cannot read the UUID of VM {name!r}"):
        return str(dom.UUIDString())


# --- reading VMs --------------------------------------------------------------------------------


@dataclass
class _VM:
    """One read of a domain: what it is now and both of its XML documents."""

    dom: Any
    name: str
    uuid: str
    active: bool
    live: ET.Element | None  # the running domain, None when it is not running
    config: ET.Element | None  # the persistent definition with its secrets, None for a transient VM


def _vm_name(driver: LibvirtDriver, dom: Any) -> str:
    with driver._errors("cannot read the name of a VM"):
        return str(dom.name())


def _read_vm(driver: LibvirtDriver, vm_uuid: str) -> _VM:
    dom = driver._domain(vm_uuid)
    name = _vm_name(driver, dom)
    with driver._errors(f"cannot read VM {name!r}"):
        active = bool(dom.isActive())
        persistent = bool(dom.isPersistent())
        live = _parse_xml(dom.XMLDesc(0)) if active else None
        config = _parse_xml(dom.XMLDesc(_REDEFINE_FLAGS)) if persistent else None
        return _VM(dom=dom, name=name, uuid=str(dom.UUIDString()), active=active, live=live, config=config)


def _define(driver: LibvirtDriver, root: ET.Element, action: str) -> None:
    """Replace a VM's persistent definition by ``root`` (``virsh define`` of an edited ``dumpxml``)."""
    with driver._errors(action):
        driver._connection().defineXML(_xml(root))


def domain_definition(driver: LibvirtDriver, vm_uuid: str) -> str:
    """The VM's persistent definition (inactive domain XML), without secrets such as passwords."""
    dom = driver._domain(vm_uuid)
    with driver._errors(f"cannot read the definition of VM {_vm_name(driver, dom)!r}"):
        return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def domain_is_active(driver: LibvirtDriver, vm_uuid: str) -> bool:
    """Whether the VM is running (or paused): whether a live domain exists."""
    dom = driver._domain(vm_uuid)
    with driver._errors(f"cannot read the state of VM {_vm_name(driver, dom)!r}"):
        return bool(dom.isActive())


# --- disks of VMs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiskUser:
    """A VM with a disk on a given path. ``active``: the running VM has it (not only its definition)."""

    vm_name: str
    vm_uuid: str
    target: str
    shareable: bool
    active: bool


@dataclass(frozen=True)
class AttachResult:
    """Where a disk was attached: ``live`` to the running VM, ``persistent`` to its definition."""

    target: str
    live: bool
    persistent: bool
    note: str  # "" when attached live and persistently; else one sentence: why not, when the guest sees it


def _disks(root: ET.Element) -> list[ET.Element]:
    return root.findall("devices/disk")


def _target_of(disk: ET.Element) -> str:
    target = disk.find("target")
    return (target.get("dev") or "") if target is not None else ""


def _bus_of(disk: ET.Element) -> str:
    target = disk.find("target")
    return (target.get("bus") or "") if target is not None else ""


def _path_of(disk: ET.Element) -> str:
    source = disk.find("source")
    return (source.get("file") or source.get("dev") or "") if source is not None else ""


def _find_disk(root: ET.Element | None, target: str) -> ET.Element | None:
    if root is None:
        return None
    return next((d for d in _disks(root) if _target_of(d) == target), None)


def _same_path(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.normpath(a) == os.path.normpath(b)


def _xml_for_disk_scan(dom: Any) -> list[tuple[ET.Element, bool]]:
    """(XML, is live) of a domain: the running domain and the definition, or just the definition."""
    if not dom.isActive():
        return [(_parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), False)]
    roots = [(_parse_xml(dom.XMLDesc(0)), True)]
    if dom.isPersistent():
        roots.append((_parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), False))
    return roots


def domains_using(driver: LibvirtDriver, path: str) -> list[DiskUser]:
    """Every VM of the host with a disk whose source file or device is ``path``, by name and target.

    Both the running VMs and the definitions are read, so a disk attached only live and one
    attached only in a definition both count. A disk is ``shareable`` only if it is everywhere.
    """
    if not path:
        raise DriverError("the disk path must not be empty")
    with driver._errors("cannot list the VMs of the host"):
        domains = driver._connection().listAllDomains(0)
    found: dict[tuple[str, str], DiskUser] = {}
    for dom in domains:
        for root, live in driver._skip_vanished(_xml_for_disk_scan, dom, libvirt.VIR_ERR_NO_DOMAIN, "VM") or []:
            for disk in _disks(root):
                if not _same_path(_path_of(disk), path):
                    continue
                user = DiskUser(
                    vm_name=(root.findtext("name") or "").strip(),
                    vm_uuid=(root.findtext("uuid") or "").strip(),
                    target=_target_of(disk),
                    shareable=disk.find("shareable") is not None,
                    active=live,
                )
                seen = found.get((user.vm_uuid, user.target))
                if seen is not None:
                    user = DiskUser(
                        vm_name=user.vm_name,
                        vm_uuid=user.vm_uuid,
                        target=user.target,
                        shareable=user.shareable and seen.shareable,
                        active=user.active or seen.active,
                    )
                found[(user.vm_uuid, user.target)] = user
    return sorted(found.values(), key=lambda u: (u.vm_name, u.target))


def _check_source_path(path: str) -> None:
    if not path.startswith("/"):
        raise DriverError(f"the disk source must be an absolute path, not {path!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise DriverError(f"disk source {path!r} contains control characters")


def _disk_element(path: str, bus: str, fmt: str, target: str, shareable: bool, read_only: bool) -> ET.Element:
    block = path.startswith("/dev/")  # a LUN or logical volume by its persistent name (DESIGN §3.2)
    disk = ET.Element("disk", {"type": "block" if block else "file", "device": "disk"})
    driver_attrs = {"name": "qemu", "type": fmt}
    if shareable:
        driver_attrs["cache"] = "none"  # a host cache would hide one guest's writes from the other
    _sub(disk, "driver", **driver_attrs)
    _sub(disk, "source", **({"dev": path} if block else {"file": path}))
    _sub(disk, "target", dev=target, bus=bus)
    if shareable:
        _sub(disk, "shareable")
    if read_only:
        _sub(disk, "readonly")
    return disk


def _has_scsi_controller(root: ET.Element) -> bool:
    return any(c.get("type") == "scsi" for c in root.findall("devices/controller"))


def _virtio_scsi_controller() -> ET.Element:
    # Added only where there is no SCSI controller yet, so index 0 is free.
    return ET.Element("controller", {"type": "scsi", "index": "0", "model": "virtio-scsi"})


def _refuse_shared_use(driver: LibvirtDriver, vm: _VM, path: str, shareable: bool) -> None:
    for user in domains_using(driver, path):
        if user.vm_uuid.lower() == vm.uuid.lower():
            raise DriverError(f"{path!r} is already attached to VM {vm.name!r} as {user.target}")
        if not user.shareable:
            raise DriverError(f"{path!r} is already attached to VM {user.vm_name!r} as {user.target} without shareable")
        if not shareable:
            raise DriverError(
                f"{path!r} is already attached to VM {user.vm_name!r} as {user.target}: "
                "attach it as shareable to use it in both"
            )


def _attach_live(driver: LibvirtDriver, vm: _VM, disk: ET.Element) -> tuple[bool, str, str | None]:
    """Hot-plug ``disk`` (and the virtio-scsi controller a SCSI disk needs) into the running VM.

    Returns (attached, why not, the controller XML if one was plugged). A hypervisor driver that
    cannot hot-plug at all is not an error: the caller still changes the definition.
    """
    target, bus = _target_of(disk), _bus_of(disk)
    controller: str | None = None
    try:
        if bus == "scsi" and vm.live is not None and not _has_scsi_controller(vm.live):
            xml = _xml(_virtio_scsi_controller())
            vm.dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            controller = xml
        vm.dom.attachDeviceFlags(_xml(disk), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as err:
        if controller is not None:
            _unplug(vm, [controller])
        if _unsupported(err):
            return False, _error_text(err), None
        raise driver._fail(err, f"cannot attach {target} to running VM {vm.name!r}") from err
    return True, "", controller


def _unplug(vm: _VM, device_xmls: Iterable[str]) -> list[str]:
    """Hot-unplug devices, best effort, in the order given; the errors, one line each."""
    problems = []
    for xml in device_xmls:
        try:
            vm.dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as err:
            problems.append(_error_text(err))
    return problems


def _undo_hot_plug(vm: _VM, disk: ET.Element, controller: str | None) -> str:
    """Unplug a disk just hot-plugged (and its controller); say how it went, for the error raised."""
    problems = _unplug(vm, [_xml(disk)] + ([controller] if controller else []))
    if problems:
        return f"undoing the hot-plug failed too: {'; '.join(problems)}"
    # libvirt returns once it has asked; a virtio-blk (PCI) unplug completes only when the guest agrees.
    try:
        still_there = _find_disk(_parse_xml(vm.dom.XMLDesc(0)), _target_of(disk)) is not None
    except (libvirt.libvirtError, ET.ParseError):
        still_there = True
    if still_there:
        return (
            "the running VM was asked to release the hot-plugged disk but still has it (the guest must agree "
            "to a PCI unplug): it goes away when the VM stops"
        )
    return "the hot-plug was undone"


def attach_disk(
    driver: LibvirtDriver,
    vm_uuid: str,
    *,
    source_path: str,
    bus: str,
    format: str,
    target: str | None = None,
    shareable: bool = False,
    read_only: bool = False,
) -> AttachResult:
    """Attach the file or device ``source_path`` to VM ``vm_uuid`` as a disk, live and persistently.

    ``target`` defaults to the first free one on ``bus`` (``free_target``: virtio-blk stops at
    :data:`VIRTIO_BLK_MAX_DISKS`; the scsi bus, on a virtio-scsi controller added if the VM has no
    SCSI controller, does not). A path under ``/dev/`` becomes a block disk, any other a file disk.
    A path attached to another VM is refused unless both attachments are shareable; shareable
    disks get host caching off and, when writable, must be raw.

    A running VM gets the disk hot-plugged, and the definition gets it too (``dumpxml`` + ``define``)
    so it survives a restart. If the definition cannot be changed, the hot-plug is undone. Where
    the disk cannot be hot-plugged (the hypervisor driver cannot, or the bus is sata/ide), it is
    in the definition only and the guest sees it at the next start: ``AttachResult.note`` says so
    (it is empty when the disk was attached both ways). A transient VM (no definition) gets the
    hot-plug only.
    """
    _check_source_path(source_path)
    prefix = _bus_prefix(bus)
    if not re.fullmatch(r"[a-z0-9]+", format):
        raise DriverError(f"invalid disk format {format!r}")
    if shareable and not read_only and format != "raw":
        raise DriverError(
            f"a writable shareable disk must be raw, not {format}: two VMs cannot write one {format} image"
        )
    vm = _read_vm(driver, vm_uuid)
    taken = {_target_of(d) for root in (vm.live, vm.config) if root is not None for d in _disks(root)} - {""}
    first_free = free_target(taken, bus)  # refuses a full bus (virtio-blk's limit) whatever the target
    if target is None:
        target = first_free
    elif not re.fullmatch(rf"{prefix}[a-z]+", target):
        raise DriverError(f"target {target!r} is not a {bus} disk name ({prefix}a, {prefix}b …)")
    elif target in taken:
        raise DriverError(f"VM {vm.name!r} already has a disk {target}")
    _refuse_shared_use(driver, vm, source_path, shareable)
    disk = _disk_element(source_path, bus, format, target, shareable, read_only)

    live, why_not, controller = False, "", None
    if vm.active:
        if bus in _HOTPLUG_BUSES:
            live, why_not, controller = _attach_live(driver, vm, disk)
        else:
            why_not = f"{bus} disks cannot be hot-plugged"
    if vm.config is None:
        if not live:
            raise DriverError(f"cannot attach {target} to transient VM {vm.name!r} (it has no definition): {why_not}")
        return AttachResult(
            target=target,
            live=True,
            persistent=False,
            note="attached to the running VM only: it is transient (has no definition), so the disk is gone "
            "once the VM stops",
        )

    devices = vm.config.find("devices")
    if devices is None:
        devices = _sub(vm.config, "devices")
    if bus == "scsi" and not _has_scsi_controller(vm.config):
        devices.append(_virtio_scsi_controller())
    devices.append(disk)
    try:
        _define(driver, vm.config, f"cannot add disk {target} to the definition of VM {vm.name!r}")
    except DriverError as err:
        if live:
            raise DriverError(f"{err}; {_undo_hot_plug(vm, disk, controller)}", retryable=err.retryable) from err
        raise
    if live:
        note = ""
    elif vm.active:
        note = f"not hot-plugged ({why_not}): the disk is in the VM's definition and appears at its next start"
    else:
        note = "the VM is not running: the disk is in its definition and appears at its next start"
    return AttachResult(target=target, live=live, persistent=True, note=note)


def detach_disk(driver: LibvirtDriver, vm_uuid: str, target: str) -> None:
    """Remove disk ``target`` from VM ``vm_uuid``: from its definition and from the running VM.

    The disk's volume is kept. If the running VM refuses to let the disk go, the definition is
    restored. Where the hypervisor driver cannot hot-unplug (``test:///``), the running VM keeps the
    disk until it stops. A virtio-blk unplug needs the guest's cooperation: libvirt asks and waits
    a few seconds, and a guest that does not answer (no OS, hung) keeps the disk until it stops.
    So before deleting the volume, ask :func:`domains_using` whether a running VM still has it.
    """
    vm = _read_vm(driver, vm_uuid)
    live_disk = _find_disk(vm.live, target)
    config_disk = _find_disk(vm.config, target)
    if live_disk is None and config_disk is None:
        raise DriverError(f"VM {vm.name!r} has no disk {target}")
    original: str | None = None
    if vm.config is not None and config_disk is not None:
        original = _xml(vm.config)
        for devices in vm.config.findall("devices"):  # the one the disk was found in
            if any(child is config_disk for child in devices):
                devices.remove(config_disk)
        _define(driver, vm.config, f"cannot remove disk {target} from the definition of VM {vm.name!r}")
    if live_disk is None:
        return
    try:
        vm.dom.detachDeviceFlags(_xml(live_disk), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as err:
        if _unsupported(err):
            return  # the running VM keeps the disk until it stops; the definition no longer has it
        failure = driver._fail(err, f"cannot detach {target} from running VM {vm.name!r}")
        if original is None:
            raise failure from err
        try:
            driver._connection().defineXML(original)
        except libvirt.libvirtError as undo:
            message = f"{failure}; restoring its definition failed too: {_error_text(undo)}"
        else:
            message = f"{failure}; the disk was put back in its definition"
        raise DriverError(message, retryable=failure.retryable) from err


def resize_disk(driver: LibvirtDriver, vm_uuid: str, target: str, capacity_bytes: int) -> None:
    """Grow disk ``target`` of VM ``vm_uuid`` to ``capacity_bytes`` (shrinking is refused).

    A running VM's disk is grown online (``blockResize``), except a virtio-blk disk, which cannot be
    (DESIGN §3.2): shut the VM down first. A stopped VM's disk is grown through its volume, which
    must be in a storage pool libvirt knows. A disk another running VM also uses is refused.
    """
    _check_capacity(capacity_bytes)
    vm = _read_vm(driver, vm_uuid)
    live_disk = _find_disk(vm.live, target)
    disk = live_disk if live_disk is not None else _find_disk(vm.config, target)
    if disk is None:
        raise DriverError(f"VM {vm.name!r} has no disk {target}")
    what = f"disk {target} of VM {vm.name!r}"
    path = _path_of(disk)
    if path:
        others = [u for u in domains_using(driver, path) if u.active and u.vm_uuid.lower() != vm.uuid.lower()]
        if others:
            raise DriverError(
                f"{what} is also attached to running VM {others[0].vm_name!r} as {others[0].target}: shut it down first"
            )
    if live_disk is not None:
        if _bus_of(live_disk) == "virtio":
            raise DriverError(
                f"{what} is a virtio disk, which cannot be resized while the VM runs: shut the VM down first"
            )
        with driver._errors(f"cannot read the size of {what}"):
            current = int(vm.dom.blockInfo(target, 0)[0])
        if capacity_bytes < current:
            raise DriverError(
                f"cannot shrink {what} from {_size(current)} to {_size(capacity_bytes)}: only growing is supported"
            )
        if capacity_bytes > current:
            with driver._errors(f"cannot resize {what} to {_size(capacity_bytes)}"):
                vm.dom.blockResize(target, capacity_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        return
    vol = _volume_by_path(driver, path) if path else None
    if vol is None:
        raise DriverError(
            f"{what} ({path or 'no source'}) is not a volume of a storage pool on this host: "
            "grow it where it is stored, or refresh its pool"
        )
    _grow(driver, vol, what, capacity_bytes)
