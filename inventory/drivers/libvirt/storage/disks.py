"""Data disks of VMs: who uses a path, attach (live and persistent), detach, resize."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import libvirt

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt.connection import error_text
from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import attr, disk_targets, parse_xml, source_of
from inventory.drivers.libvirt.storage._common import (
    _HOTPLUG_BUSES,
    _check_capacity,
    _grow,
    _size,
    _sub,
    _unsupported,
    _volume_by_path,
    _xml,
)
from inventory.drivers.libvirt.storage.domains import _VM, _define, _read_vm
from inventory.drivers.libvirt.storage.templates import _bus_prefix, free_target

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
    return attr(disk.find("target"), "dev")


def _bus_of(disk: ET.Element) -> str:
    return attr(disk.find("target"), "bus")


def _path_of(disk: ET.Element) -> str:
    """The disk's source as the inventory records it (by the disk's ``type``)."""
    return source_of(disk)[0]


def _find_disk(root: ET.Element | None, target: str) -> ET.Element | None:
    if root is None:
        return None
    return next((d for d in _disks(root) if _target_of(d) == target), None)


def _same_path(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.normpath(a) == os.path.normpath(b)


def _xml_for_disk_scan(dom: Any) -> list[tuple[ET.Element, bool]]:
    """(XML, is live) of a domain: the running domain and the definition, or just the definition."""
    if not dom.isActive():
        return [(parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), False)]
    roots = [(parse_xml(dom.XMLDesc(0)), True)]
    if dom.isPersistent():
        roots.append((parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)), False))
    return roots


def domains_using(driver: LibvirtDriver, path: str) -> list[DiskUser]:
    """Every VM of the host with a disk whose source file or device is ``path``, by name and target.

    Both the running VMs and the definitions are read, so a disk attached only live and one
    attached only in a definition both count. A disk is ``shareable`` only if it is everywhere.
    """
    if not path:
        raise DriverError("the disk path must not be empty")
    with driver.errors("cannot list the VMs of the host"):
        domains = driver.connection().listAllDomains(0)
    found: dict[tuple[str, str], DiskUser] = {}
    for dom in domains:
        for root, live in driver.skip_vanished(_xml_for_disk_scan, dom, libvirt.VIR_ERR_NO_DOMAIN, "VM") or []:
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
    plugged: list[str] = []
    why_not = ""
    try:
        with driver.changing(f"cannot attach {target} to running VM {vm.name!r}"):
            dom = driver.domain(vm.uuid)
            try:
                if bus == "scsi" and vm.live is not None and not _has_scsi_controller(vm.live):
                    xml = _xml(_virtio_scsi_controller())
                    dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
                    plugged.append(xml)
                dom.attachDeviceFlags(_xml(disk), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as err:
                if not _unsupported(err):
                    raise
                why_not = error_text(err)
    except DriverError:
        _unplug(driver, vm, plugged)
        raise
    if why_not:
        _unplug(driver, vm, plugged)
        return False, why_not, None
    return True, "", plugged[0] if plugged else None


def _unplug(driver: LibvirtDriver, vm: _VM, device_xmls: Iterable[str]) -> list[str]:
    """Hot-unplug devices, best effort, in the order given; the errors, one line each."""
    problems = []
    for xml in device_xmls:
        device = ET.fromstring(xml).tag  # noqa: S314 - XML this module built
        try:
            with driver.changing(f"cannot unplug the {device}"):
                driver.domain(vm.uuid).detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except DriverError as err:
            problems.append(err.message)
    return problems


def _undo_hot_plug(driver: LibvirtDriver, vm: _VM, disk: ET.Element, controller: str | None) -> str:
    """Unplug a disk just hot-plugged (and its controller); say how it went, for the error raised."""
    problems = _unplug(driver, vm, [_xml(disk)] + ([controller] if controller else []))
    if problems:
        return f"undoing the hot-plug failed too: {'; '.join(problems)}"
    # libvirt returns once it has asked; a virtio-blk (PCI) unplug completes only when the guest agrees.
    try:
        with driver.errors(f"cannot read VM {vm.name!r}"):
            still_there = _find_disk(parse_xml(driver.domain(vm.uuid).XMLDesc(0)), _target_of(disk)) is not None
    except DriverError:
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
    taken = set().union(*(disk_targets(root) for root in (vm.live, vm.config) if root is not None)) - {""}
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
            undo = _undo_hot_plug(driver, vm, disk, controller)
            raise DriverError(f"{err}; {undo}", retryable=err.retryable) from err
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
        with driver.changing(f"cannot detach {target} from running VM {vm.name!r}"):
            dom = driver.domain(vm.uuid)
            try:
                dom.detachDeviceFlags(_xml(live_disk), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as err:
                if not _unsupported(err):
                    raise
                # The hypervisor cannot hot-unplug: the running VM keeps the disk until it stops.
    except DriverError as failure:
        if original is None:
            raise
        try:
            with driver.changing(f"cannot put disk {target} back in the definition of VM {vm.name!r}"):
                driver.connection().defineXML(original)
        except DriverError as undo:
            message = f"{failure}; {undo}"
        else:
            message = f"{failure}; the disk was put back in its definition"
        raise DriverError(message, retryable=failure.retryable) from failure


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
        with driver.errors(f"cannot read the size of {what}"):
            current = int(vm.dom.blockInfo(target, 0)[0])
        if capacity_bytes < current:
            raise DriverError(
                f"cannot shrink {what} from {_size(current)} to {_size(capacity_bytes)}: only growing is supported"
            )
        if capacity_bytes > current:
            with driver.changing(f"cannot resize {what} to {_size(capacity_bytes)}"):
                driver.domain(vm.uuid).blockResize(target, capacity_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        return

    def volume() -> Any:
        vol = _volume_by_path(driver, path) if path else None
        if vol is None:
            raise DriverError(
                f"{what} ({path or 'no source'}) is not a volume of a storage pool on this host: "
                "grow it where it is stored, or refresh its pool"
            )
        return vol

    _grow(driver, volume, what, capacity_bytes)
