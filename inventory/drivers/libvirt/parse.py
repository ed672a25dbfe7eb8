"""What libvirt says, as plain data: state and reason names, and the XML of domains, volumes and networks.

Pure functions, no connection: the driver reads the XML and this module turns it into dataclasses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from inventory.drivers.base import DiskInfo, NetworkInfo, NicInfo, SnapshotInfo, VMInfo, VolumeInfo

__all__ = [
    "POOL_STATE_NAMES",
    "REASON_NAMES",
    "attr",
    "disk_targets",
    "find_text",
    "parse_network_xml",
    "parse_snapshot",
    "parse_volume",
    "parse_xml",
    "pool_source",
    "reason_name",
    "source_of",
    "state_name",
    "version",
    "vm_info",
    "volume_info",
]

# --- libvirt enums as names ------------------------------------------------------------------

STATE_NAMES: dict[int, str] = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# Reason codes are per state and their numbers are part of libvirt's stable ABI, so a tuple
# indexed by the code is exact; the names are the lower-cased enum suffixes
# (VIR_DOMAIN_SHUTOFF_DESTROYED -> "destroyed").
REASON_NAMES: dict[int, tuple[str, ...]] = {
    libvirt.VIR_DOMAIN_NOSTATE: ("unknown",),
    libvirt.VIR_DOMAIN_RUNNING: tuple(
        "unknown booted migrated restored from_snapshot unpaused migration_canceled save_canceled wakeup crashed"
        " postcopy postcopy_failed".split()
    ),
    libvirt.VIR_DOMAIN_BLOCKED: ("unknown",),
    libvirt.VIR_DOMAIN_PAUSED: tuple(
        "unknown user migration save dump ioerror watchdog from_snapshot shutting_down snapshot crashed starting_up"
        " postcopy postcopy_failed api_error".split()
    ),
    libvirt.VIR_DOMAIN_SHUTDOWN: ("unknown", "user"),
    libvirt.VIR_DOMAIN_SHUTOFF: tuple(
        "unknown shutdown destroyed crashed migrated saved failed from_snapshot daemon".split()
    ),
    libvirt.VIR_DOMAIN_CRASHED: ("unknown", "panicked"),
    libvirt.VIR_DOMAIN_PMSUSPENDED: ("unknown",),
}

POOL_STATE_NAMES: dict[int, str] = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: "inactive",
    libvirt.VIR_STORAGE_POOL_BUILDING: "building",
    libvirt.VIR_STORAGE_POOL_RUNNING: "running",
    libvirt.VIR_STORAGE_POOL_DEGRADED: "degraded",
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: "inaccessible",
}


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"unknown-{state}")


def reason_name(state: int, reason: int) -> str:
    names = REASON_NAMES.get(state, ())
    # A newer daemon may report a reason this table does not know yet; keep the number visible.
    return names[reason] if 0 <= reason < len(names) else f"reason-{reason}"


# --- XML helpers -----------------------------------------------------------------------------

# libvirt's scaled-integer units: "KB" is 1000 bytes, "K" and "KiB" are 1024.
_UNIT_FACTORS: dict[str, int] = {"b": 1, "bytes": 1}
for _power, _letter in enumerate("kmgtpe", start=1):
    _UNIT_FACTORS[f"{_letter}b"] = 1000**_power
    _UNIT_FACTORS[_letter] = _UNIT_FACTORS[f"{_letter}ib"] = 1024**_power


def parse_xml(text: str) -> ET.Element:
    """Parse XML produced by a libvirt daemon.

    libvirt never writes a DTD, so a document declaring one did not come from libvirt; refusing
    it keeps entity-expansion tricks from a compromised host away from the parser.
    """
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ET.ParseError("unexpected DTD in libvirt XML")
    return ET.fromstring(text)  # noqa: S314 - DTDs are refused above


def _bytes(elem: ET.Element | None, default_unit: str) -> int:
    """A libvirt scaled integer (``<memory unit='KiB'>1024</memory>``) in bytes."""
    if elem is None or not (elem.text or "").strip():
        return 0
    unit = (elem.get("unit") or default_unit).lower()
    try:
        return int((elem.text or "0").strip()) * _UNIT_FACTORS.get(unit, 1)
    except ValueError:
        return 0


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def attr(elem: ET.Element | None, name: str) -> str:
    return (elem.get(name) or "") if elem is not None else ""


def find_text(elem: ET.Element, path: str) -> str:
    return (elem.findtext(path) or "").strip()


def version(number: int) -> str:
    """libvirt packs versions as major * 1,000,000 + minor * 1,000 + micro."""
    return f"{number // 1_000_000}.{number // 1_000 % 1_000}.{number % 1_000}"


def source_of(elem: ET.Element) -> tuple[str, str, str]:
    """The (source, pool, volume) of a ``<disk>`` or ``<backingStore>`` by its ``type``."""
    kind = elem.get("type") or "file"
    src = elem.find("source")
    if src is None:
        return "", "", ""  # e.g. an empty CD-ROM drive, or the end of a backing chain
    if kind == "file":
        return src.get("file") or "", "", ""
    if kind == "block":
        return src.get("dev") or "", "", ""
    if kind == "dir":
        return src.get("dir") or "", "", ""
    if kind == "volume":
        pool, volume = src.get("pool") or "", src.get("volume") or ""
        return f"{pool}/{volume}", pool, volume
    if kind == "network":
        host = src.find("host")
        address = attr(host, "name") or attr(host, "socket")
        if attr(host, "port"):
            address = f"{address}:{attr(host, 'port')}"
        return f"{src.get('protocol') or ''}://{address}/{src.get('name') or ''}", "", ""
    # nvme, vhostuser …: no single path names them; keep whatever identifying attribute exists.
    return src.get("file") or src.get("dev") or src.get("path") or "", "", ""


def _backing_chain(disk: ET.Element) -> list[str]:
    chain: list[str] = []
    store = disk.find("backingStore")
    while store is not None:
        source, _, _ = source_of(store)
        if not source:
            break
        chain.append(source)
        store = store.find("backingStore")
    return chain


def _parse_disk(disk: ET.Element, persistent_targets: set[str] | None) -> DiskInfo:
    target_elem = disk.find("target")
    driver = disk.find("driver")
    target = attr(target_elem, "dev")
    source, pool, volume = source_of(disk)
    return DiskInfo(
        target=target,
        bus=attr(target_elem, "bus"),
        device=disk.get("device") or "disk",
        source_type=disk.get("type") or "file",
        source=source,
        source_pool=pool,
        source_volume=volume,
        driver_format=attr(driver, "type"),
        cache=attr(driver, "cache"),
        serial=find_text(disk, "serial"),
        wwn=find_text(disk, "wwn"),
        read_only=disk.find("readonly") is not None,
        shareable=disk.find("shareable") is not None,
        backing_chain=_backing_chain(disk),
        persistent=persistent_targets is None or target in persistent_targets,
    )


def _parse_nic(iface: ET.Element) -> NicInfo:
    src = iface.find("source")
    return NicInfo(
        mac=attr(iface.find("mac"), "address"),
        type=iface.get("type") or "",
        # A running domain's network interface also shows the bridge; the network is the name
        # administrators configured, so it wins.
        source=attr(src, "network") or attr(src, "bridge") or attr(src, "dev"),
        model=attr(iface.find("model"), "type"),
        target=attr(iface.find("target"), "dev"),
    )


def disk_targets(root: ET.Element) -> set[str]:
    return {attr(disk.find("target"), "dev") for disk in root.iterfind("devices/disk")}


def parse_snapshot(xml: str, name: str, current: bool) -> SnapshotInfo:
    root = parse_xml(xml)
    created_text = find_text(root, "creationTime")
    created = dt.datetime.fromtimestamp(int(created_text), tz=dt.UTC) if created_text.isdigit() else None
    return SnapshotInfo(
        name=name,
        created=created,
        state=find_text(root, "state"),
        description=find_text(root, "description"),
        parent=find_text(root, "parent/name"),
        current=current,
    )


def pool_source(root: ET.Element) -> str:
    src = root.find("source")
    if src is None:
        return ""
    host = attr(src.find("host"), "name")
    directory = attr(src.find("dir"), "path")
    devices = [d.get("path") or "" for d in src.iterfind("device")]
    name = find_text(src, "name")
    if host and directory:
        return f"{host}:{directory}"  # netfs, glusterfs
    if host and devices:
        return f"{host}:{devices[0]}"  # iscsi: portal and IQN
    if name:
        return name  # logical VG (rather than its PVs), rbd pool, zfs pool
    if devices:
        return ",".join(d for d in devices if d)  # disk, fs
    if directory:
        return directory
    return attr(src.find("adapter"), "name")  # scsi host adapter


def parse_volume(xml: str, name: str, key: str) -> VolumeInfo:
    root = parse_xml(xml)
    backing = root.find("backingStore")
    return VolumeInfo(
        name=name,
        key=key,
        path=find_text(root, "target/path"),
        format=attr(root.find("target/format"), "type"),
        capacity_bytes=_bytes(root.find("capacity"), "bytes"),
        allocation_bytes=_bytes(root.find("allocation"), "bytes"),
        backing_store=find_text(backing, "path") if backing is not None else "",
        backing_format=attr(backing.find("format"), "type") if backing is not None else "",
    )


def volume_info(vol: Any) -> VolumeInfo:
    return parse_volume(vol.XMLDesc(0), str(vol.name()), str(vol.key()))


def _netmask(ip: ET.Element) -> str:
    if ip.get("netmask"):
        return ip.get("netmask") or ""
    prefix = ip.get("prefix")
    if not prefix:
        return ""
    try:
        network = ipaddress.ip_network(f"{ip.get('address')}/{prefix}", strict=False)
    except ValueError:
        return prefix
    # IPv6 has no dotted netmask; its prefix length is what administrators read.
    return str(network.netmask) if network.version == 4 else prefix


def parse_network_xml(info: NetworkInfo, xml: str) -> None:
    root = parse_xml(xml)
    forward = root.find("forward")
    # <forward/> without a mode means NAT; no <forward> at all means an isolated network.
    info.forward_mode = (forward.get("mode") or "nat") if forward is not None else ""
    info.bridge = attr(root.find("bridge"), "name")
    ip = root.find("ip")
    if ip is not None:
        info.ip_address = ip.get("address") or ""
        info.netmask = _netmask(ip)


def vm_info(
    *,
    name: str,
    vm_uuid: str,
    state: int,
    reason: int,
    persistent: bool,
    autostart: bool,
    root: ET.Element,
    inactive: ET.Element | None,
    host_uid: str,
    snapshots: list[SnapshotInfo],
) -> VMInfo:
    """A domain's facts from its XML (``root``: the live XML of a running domain, else the definition).

    ``inactive`` is the persistent definition of a running domain, None otherwise: disks only in
    one of the two are marked (hot-plugged without --config, or waiting for the next start).
    """
    persistent_targets: set[str] | None = None
    pending: list[DiskInfo] = []
    if inactive is not None:
        # A disk hot-plugged without --config is only in the live XML; one added to the definition
        # of a running VM that cannot hot-plug it is only in the inactive XML, until the next start.
        persistent_targets = disk_targets(inactive)
        live_targets = disk_targets(root)
        for disk in inactive.iterfind("devices/disk"):
            if attr(disk.find("target"), "dev") not in live_targets:
                info = _parse_disk(disk, None)
                info.extra["pending"] = "in the definition only: attached at the next start"
                pending.append(info)
    vcpu = root.find("vcpu")
    max_vcpus = _int(vcpu.text if vcpu is not None else None)
    os_type = root.find("os/type")
    max_memory = _bytes(root.find("memory"), "KiB")
    return VMInfo(
        uuid=vm_uuid,
        name=name,
        state=state_name(state),
        state_reason=reason_name(state, reason),
        host_uid=host_uid,
        vcpus=_int(attr(vcpu, "current") or None, max_vcpus),
        max_vcpus=max_vcpus,
        memory_bytes=_bytes(root.find("currentMemory"), "KiB") or max_memory,
        max_memory_bytes=max_memory,
        os_type=(os_type.text or "").strip() if os_type is not None else "",
        arch=attr(os_type, "arch"),
        machine=attr(os_type, "machine"),
        autostart=autostart,
        persistent=persistent,
        domain_type=root.get("type") or "",
        description=find_text(root, "description"),
        disks=[_parse_disk(d, persistent_targets) for d in root.iterfind("devices/disk")] + pending,
        nics=[_parse_nic(i) for i in root.iterfind("devices/interface")],
        snapshots=snapshots,
    )
