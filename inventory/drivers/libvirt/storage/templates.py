"""New VMs from a template definition (new name, UUID, MACs, boot disk) and free disk targets."""

from __future__ import annotations

import re
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import libvirt

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import parse_xml
from inventory.drivers.libvirt.storage._common import (
    _BUS_LIMITS,
    _MAC_PREFIX,
    _TARGET_PREFIXES,
    VIRTIO_BLK_MAX_DISKS,
    _check_name,
    _rng,
    _sub,
    _xml,
)

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
        driver.connection().lookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise driver.error(err, f"cannot look up VM {name!r}") from err
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
        root = parse_xml(template_xml)
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

    with driver.changing(f"cannot define VM {name!r}"):
        try:
            dom = driver.connection().defineXML(_xml(root))
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_OPERATION_FAILED and _domain_exists(driver, name):
                raise DriverError(f"a VM named {name!r} is already defined") from err
            raise
    with driver.errors(f"cannot read the UUID of VM {name!r}"):
        return str(dom.UUIDString())
