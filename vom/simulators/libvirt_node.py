"""Build libvirt ``test:///`` node files: a whole fake hypervisor host in one XML document.

libvirt's test driver opens ``test:///absolute/path/node.xml`` and loads CPU/memory facts, domains
(with their run state, transient flag and snapshots), networks, host interfaces, storage pools with
their volumes, and node devices from that file. This module describes such a host with plain
dataclasses and writes the XML with :mod:`xml.etree.ElementTree` (never string formatting), so any
name, path or description is escaped correctly.

What libvirt 9.0's test driver does with a node file (checked by experiment):

* ``<test:runstate>`` takes a ``virDomainState`` number (1 running, 3 paused, 5 shut off, ...);
  without it a domain is running. ``<test:transient/>`` makes the domain transient; a transient
  domain cannot be shut off. ``<test:hasmanagedsave/>`` is allowed only for shut-off domains.
* ``<test:domainsnapshot>`` holds the *content* of a ``<domainsnapshot>`` (name, state,
  creationTime, parent, and a mandatory ``<active>`` 0/1 marking the current snapshot). Without an
  embedded ``<domain>`` libvirt logs a warning on every open, so the domain definition is embedded.
* Pools of every type parse (dir, logical, iscsi, disk, mpath, netfs ...); the driver forces each
  pool's capacity to 100 GiB and computes ``available = capacity - sum(allocation)`` unsigned, so
  volume allocations above 100 GiB per pool wrap around. :func:`build_node_xml` refuses that.
  Volumes keep ``<backingStore>``; a volume without a target path gets ``<pool path>/<name>``.
* The host name the driver reports (``getHostname``) is the real machine's, the capabilities carry
  no host UUID, and ``getSysinfo`` is a fixed string. The only host identity a node file can carry
  that libvirt exposes is the ``computer`` node device (``nodeDeviceLookupByName('computer')``:
  hardware vendor/product/serial/UUID), which real hosts expose the same way. This module writes
  that device with :attr:`NodeSpec.host_uuid`, and also a ``<vom:host name=... uuid=...>`` element
  (ignored by libvirt) so a reader of the file knows the intended host name; by convention the file
  is named ``<hostname>.xml`` as well.

A simulated host's state is shared by every process, as a real host's is: after each change the
driver writes it (:func:`dump_node`) to a sidecar file and other processes reload (see the end of
this module). A reloaded host loses what the test driver cannot load from a file: state reasons
(each domain gets reason 0, "unknown"), domain ids, autostart, a running domain's live definition
where it differs from its persistent one, and inactive networks and pools (loaded active).
"""

from __future__ import annotations

import copy
import hashlib
import os
import uuid as uuid_mod
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import libvirt

__all__ = [
    "SIDECAR_MARKER",
    "TEST_NS",
    "TEST_POOL_CAPACITY",
    "VOM_NS",
    "BackingStoreSpec",
    "DiskSpec",
    "DomainSpec",
    "GiB",
    "HostInterfaceSpec",
    "MiB",
    "NetworkSpec",
    "NicSpec",
    "NodeSpec",
    "PoolSpec",
    "RunState",
    "SnapshotSpec",
    "VolumeSpec",
    "build_domain_element",
    "build_node_element",
    "build_node_xml",
    "dump_node",
    "read_node_identity",
    "stable_mac",
    "stable_uuid",
    "write_node",
]

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
"""The test driver's domain extension namespace (``test:runstate`` etc.)."""

VOM_NS = "urn:vom:testnode:1"
"""Namespace of the ``<vom:host>`` marker, ignored by libvirt, read by :func:`read_node_identity`."""

TEST_POOL_CAPACITY = 100 * 1024**3
"""Capacity libvirt's test driver gives every pool, whatever the file says (bytes)."""

GiB = 1024**3
MiB = 1024**2

ET.register_namespace("test", TEST_NS)
ET.register_namespace("vom", VOM_NS)


class RunState(IntEnum):
    """``virDomainState`` values accepted by ``<test:runstate>``."""

    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7


@dataclass
class BackingStoreSpec:
    """One layer of a disk's backing chain (``<backingStore>``), nearest first via ``backing``."""

    path: str
    format: str = "qcow2"
    kind: str = "file"  # file | block
    backing: BackingStoreSpec | None = None


@dataclass
class DiskSpec:
    """A guest disk.

    ``kind`` selects the source: ``file`` and ``block`` use ``source`` as the path, ``volume`` uses
    ``pool``/``volume``, ``network`` uses ``protocol``, ``source`` (the export name, e.g. an iSCSI
    ``iqn.../1``) and ``hosts``.
    """

    target: str
    source: str = ""
    kind: str = "file"  # file | block | volume | network
    device: str = "disk"  # disk | cdrom | lun | floppy
    bus: str = "virtio"  # virtio | scsi | sata | ide | usb
    format: str | None = "qcow2"  # driver type: qcow2, raw ...
    cache: str | None = None  # none, writeback, writethrough, directsync, unsafe
    io: str | None = None  # native | threads
    serial: str | None = None
    wwn: str | None = None  # 0x + 16 hex digits
    readonly: bool = False
    shareable: bool = False
    pool: str | None = None
    volume: str | None = None
    protocol: str | None = None  # iscsi | rbd | nbd | gluster ...
    hosts: list[tuple[str, int]] = field(default_factory=list)
    backing: BackingStoreSpec | None = None
    boot_order: int | None = None


@dataclass
class NicSpec:
    """A guest NIC attached to a libvirt network (``kind='network'``) or a host bridge."""

    mac: str
    source: str = "default"
    kind: str = "network"  # network | bridge
    model: str | None = "virtio"


@dataclass
class SnapshotSpec:
    """A domain snapshot; ``state`` is the domain state it captured (running, shutoff, paused)."""

    name: str
    creation_time: int
    state: str = "shutoff"
    parent: str | None = None
    current: bool = False
    description: str | None = None


@dataclass
class DomainSpec:
    """A guest definition plus its test-driver state (run state, transient, snapshots)."""

    name: str
    uuid: str
    memory_kib: int
    vcpus: int
    current_memory_kib: int | None = None
    state: RunState = RunState.RUNNING
    transient: bool = False
    has_managed_save: bool = False
    virt_type: str = "test"
    arch: str = "x86_64"
    machine: str = "pc-q35-7.2"
    title: str | None = None
    description: str | None = None
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    snapshots: list[SnapshotSpec] = field(default_factory=list)
    scsi_controller_model: str = "virtio-scsi"


@dataclass
class VolumeSpec:
    """A storage volume. ``path`` defaults to ``<pool target>/<name>`` (as libvirt does)."""

    name: str
    capacity_bytes: int
    allocation_bytes: int | None = None  # None: libvirt takes the capacity
    format: str | None = None  # qcow2, raw, iso ... (file volumes)
    path: str | None = None
    kind: str | None = None  # file | block; None lets libvirt decide from the pool type
    backing_path: str | None = None
    backing_format: str | None = None


@dataclass
class PoolSpec:
    """A storage pool with its volumes. ``kind`` is the libvirt pool type."""

    name: str
    uuid: str
    target_path: str
    kind: str = "dir"  # dir | logical | iscsi | disk | mpath | netfs | fs
    source_devices: list[str] = field(default_factory=list)
    source_name: str | None = None  # volume group name (logical)
    source_host: str | None = None  # iscsi portal / NFS server
    source_port: int | None = None
    source_dir: str | None = None  # NFS export
    source_format: str | None = None  # lvm2, nfs, gpt ...
    volumes: list[VolumeSpec] = field(default_factory=list)

    def volume_path(self, volume: VolumeSpec) -> str:
        """Return the path libvirt will report for ``volume`` in this pool."""
        return volume.path or f"{self.target_path.rstrip('/')}/{volume.name}"


@dataclass
class NetworkSpec:
    """A libvirt virtual network. ``forward`` None means isolated."""

    name: str
    uuid: str
    bridge: str
    forward: str | None = "nat"  # nat | route | bridge | None (isolated)
    ip: str | None = None
    netmask: str | None = None
    dhcp_start: str | None = None
    dhcp_end: str | None = None
    mac: str | None = None


@dataclass
class HostInterfaceSpec:
    """A physical host interface (``<interface>`` at node level): ethernet, or a bridge over ports."""

    name: str
    mac: str | None = None
    kind: str = "ethernet"  # ethernet | bridge
    ip: str | None = None
    prefix: int | None = None
    ports: list[str] = field(default_factory=list)  # bridge member interfaces
    mtu: int | None = None


@dataclass
class NodeSpec:
    """A whole fake host: CPU and memory facts, identity, guests, networks, pools, interfaces."""

    hostname: str
    host_uuid: str
    memory_kib: int = 256 * 1024 * 1024
    cpu_model: str = "x86_64"
    cpu_mode: str | None = None
    cpu_nodes: int = 1
    cpu_sockets: int = 2
    cpu_cores: int = 8
    cpu_threads: int = 2
    cpu_active: int | None = None
    cpu_mhz: int = 2600
    hw_vendor: str = "Dell Inc."
    hw_product: str = "PowerEdge R740"
    hw_serial: str | None = None
    domains: list[DomainSpec] = field(default_factory=list)
    networks: list[NetworkSpec] = field(default_factory=list)
    pools: list[PoolSpec] = field(default_factory=list)
    interfaces: list[HostInterfaceSpec] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# deterministic identifiers


def stable_uuid(*parts: object) -> str:
    """Return a UUID (string) determined only by ``parts``, e.g. ``stable_uuid(seed, host, vm)``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid_mod.UUID(bytes=digest[:16], version=4))


def stable_mac(*parts: object, prefix: str = "52:54:00") -> str:
    """Return a MAC address in the QEMU range (``52:54:00``) determined only by ``parts``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return prefix + "".join(f":{b:02x}" for b in digest[:3])


# ---------------------------------------------------------------------------------------------
# building


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _backing_element(parent: ET.Element, backing: BackingStoreSpec | None) -> None:
    if backing is None:
        _sub(parent, "backingStore")  # end of chain
        return
    bs = _sub(parent, "backingStore", type=backing.kind)
    _sub(bs, "format", type=backing.format)
    if backing.kind == "block":
        _sub(bs, "source", dev=backing.path)
    else:
        _sub(bs, "source", file=backing.path)
    _backing_element(bs, backing.backing)


def _disk_element(parent: ET.Element, disk: DiskSpec) -> None:
    el = _sub(parent, "disk", type=disk.kind, device=disk.device)
    driver: dict[str, str] = {"name": "qemu"}
    if disk.format:
        driver["type"] = disk.format
    if disk.cache:
        driver["cache"] = disk.cache
    if disk.io:
        driver["io"] = disk.io
    _sub(el, "driver", **driver)
    if disk.kind == "file":
        if disk.source:
            _sub(el, "source", file=disk.source)
    elif disk.kind == "block":
        _sub(el, "source", dev=disk.source)
    elif disk.kind == "volume":
        if not disk.pool or not disk.volume:
            raise ValueError(f"disk {disk.target}: a volume disk needs pool and volume")
        _sub(el, "source", pool=disk.pool, volume=disk.volume)
    elif disk.kind == "network":
        if not disk.protocol:
            raise ValueError(f"disk {disk.target}: a network disk needs a protocol")
        src = _sub(el, "source", protocol=disk.protocol, name=disk.source)
        for host, port in disk.hosts:
            _sub(src, "host", name=host, port=str(port))
    else:
        raise ValueError(f"disk {disk.target}: unknown disk type {disk.kind!r}")
    if disk.backing is not None:
        _backing_element(el, disk.backing)
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.boot_order is not None:
        _sub(el, "boot", order=str(disk.boot_order))
    if disk.readonly:
        _sub(el, "readonly")
    if disk.shareable:
        _sub(el, "shareable")
    if disk.serial:
        _sub(el, "serial", disk.serial)
    if disk.wwn:
        _sub(el, "wwn", disk.wwn)


def _nic_element(parent: ET.Element, nic: NicSpec) -> None:
    el = _sub(parent, "interface", type=nic.kind)
    _sub(el, "mac", address=nic.mac)
    if nic.kind == "network":
        _sub(el, "source", network=nic.source)
    elif nic.kind == "bridge":
        _sub(el, "source", bridge=nic.source)
    else:
        raise ValueError(f"nic {nic.mac}: unknown interface type {nic.kind!r}")
    if nic.model:
        _sub(el, "model", type=nic.model)


def build_domain_element(dom: DomainSpec, *, with_test_state: bool = True) -> ET.Element:
    """Return the ``<domain>`` element for ``dom``.

    With ``with_test_state`` the test-driver extensions (run state, transient, managed save,
    snapshots) are added; without, the result is a plain libvirt domain definition.
    """
    el = ET.Element("domain", {"type": dom.virt_type})
    _sub(el, "name", dom.name)
    _sub(el, "uuid", dom.uuid)
    if dom.title:
        _sub(el, "title", dom.title)
    if dom.description:
        _sub(el, "description", dom.description)
    _sub(el, "memory", str(dom.memory_kib), unit="KiB")
    current = dom.current_memory_kib if dom.current_memory_kib is not None else dom.memory_kib
    _sub(el, "currentMemory", str(current), unit="KiB")
    _sub(el, "vcpu", str(dom.vcpus), placement="static")
    os_el = _sub(el, "os")
    _sub(os_el, "type", "hvm", arch=dom.arch, machine=dom.machine)
    if not any(d.boot_order is not None for d in dom.disks):
        _sub(os_el, "boot", dev="hd")
    features = _sub(el, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(el, "clock", offset="utc")
    _sub(el, "on_poweroff", "destroy")
    _sub(el, "on_reboot", "restart")
    _sub(el, "on_crash", "destroy")
    devices = _sub(el, "devices")
    for disk in dom.disks:
        _disk_element(devices, disk)
    if any(d.bus == "scsi" for d in dom.disks):
        _sub(devices, "controller", type="scsi", index="0", model=dom.scsi_controller_model)
    for nic in dom.nics:
        _nic_element(devices, nic)
    if with_test_state:
        _sub(el, f"{{{TEST_NS}}}runstate", str(int(dom.state)))
        if dom.transient:
            _sub(el, f"{{{TEST_NS}}}transient")
        if dom.has_managed_save:
            _sub(el, f"{{{TEST_NS}}}hasmanagedsave")
        for snap in dom.snapshots:
            _snapshot_element(el, dom, snap)
    return el


def _snapshot_element(parent: ET.Element, dom: DomainSpec, snap: SnapshotSpec) -> None:
    el = _sub(parent, f"{{{TEST_NS}}}domainsnapshot")
    _sub(el, "name", snap.name)
    if snap.description:
        _sub(el, "description", snap.description)
    _sub(el, "state", snap.state)
    if snap.parent:
        parent_el = _sub(el, "parent")
        _sub(parent_el, "name", snap.parent)
    _sub(el, "creationTime", str(snap.creation_time))
    _sub(el, "active", "1" if snap.current else "0")
    el.append(build_domain_element(dom, with_test_state=False))


def _network_element(net: NetworkSpec) -> ET.Element:
    el = ET.Element("network")
    _sub(el, "name", net.name)
    _sub(el, "uuid", net.uuid)
    if net.forward:
        _sub(el, "forward", mode=net.forward)
    _sub(el, "bridge", name=net.bridge)
    if net.mac:
        _sub(el, "mac", address=net.mac)
    if net.ip:
        ip = _sub(el, "ip", address=net.ip, netmask=net.netmask or "255.255.255.0")
        if net.dhcp_start and net.dhcp_end:
            dhcp = _sub(ip, "dhcp")
            _sub(dhcp, "range", start=net.dhcp_start, end=net.dhcp_end)
    return el


def _volume_element(pool: PoolSpec, vol: VolumeSpec) -> ET.Element:
    attrs = {"type": vol.kind} if vol.kind else {}
    el = ET.Element("volume", attrs)
    _sub(el, "name", vol.name)
    _sub(el, "capacity", str(vol.capacity_bytes), unit="bytes")
    if vol.allocation_bytes is not None:
        _sub(el, "allocation", str(vol.allocation_bytes), unit="bytes")
    target = _sub(el, "target")
    _sub(target, "path", pool.volume_path(vol))
    if vol.format:
        _sub(target, "format", type=vol.format)
    if vol.backing_path:
        bs = _sub(el, "backingStore")
        _sub(bs, "path", vol.backing_path)
        if vol.backing_format:
            _sub(bs, "format", type=vol.backing_format)
    return el


def _pool_element(pool: PoolSpec) -> ET.Element:
    el = ET.Element("pool", {"type": pool.kind})
    _sub(el, "name", pool.name)
    _sub(el, "uuid", pool.uuid)
    src = _sub(el, "source")
    if pool.source_host:
        host_attrs = {"name": pool.source_host}
        if pool.source_port is not None:
            host_attrs["port"] = str(pool.source_port)
        _sub(src, "host", **host_attrs)
    for dev in pool.source_devices:
        _sub(src, "device", path=dev)
    if pool.source_dir:
        _sub(src, "dir", path=pool.source_dir)
    if pool.source_name:
        _sub(src, "name", pool.source_name)
    if pool.source_format:
        _sub(src, "format", type=pool.source_format)
    target = _sub(el, "target")
    _sub(target, "path", pool.target_path)
    for vol in pool.volumes:
        el.append(_volume_element(pool, vol))
    return el


def _interface_element(iface: HostInterfaceSpec) -> ET.Element:
    el = ET.Element("interface", {"type": iface.kind, "name": iface.name})
    _sub(el, "start", mode="onboot")
    if iface.mac and iface.kind == "ethernet":
        _sub(el, "mac", address=iface.mac)
    if iface.mtu:
        _sub(el, "mtu", size=str(iface.mtu))
    if iface.ip:
        proto = _sub(el, "protocol", family="ipv4")
        _sub(proto, "ip", address=iface.ip, prefix=str(iface.prefix or 24))
    if iface.kind == "bridge":
        br = _sub(el, "bridge", stp="off")
        for port in iface.ports:
            port_el = _sub(br, "interface", type="ethernet", name=port)
            _sub(port_el, "mac", address=stable_mac(iface.name, port))
    return el


def _validate(spec: NodeSpec) -> None:
    if len(spec.cpu_model.encode()) > 31:
        raise ValueError(f"cpu model {spec.cpu_model!r}: libvirt keeps at most 31 bytes")
    seen_names: set[str] = set()
    seen_uuids: set[str] = set()
    for dom in spec.domains:
        if dom.name in seen_names:
            raise ValueError(f"duplicate domain name {dom.name!r}")
        if dom.uuid in seen_uuids:
            raise ValueError(f"duplicate domain uuid {dom.uuid}")
        seen_names.add(dom.name)
        seen_uuids.add(dom.uuid)
        if dom.transient and dom.state == RunState.SHUTOFF:
            raise ValueError(f"{dom.name}: a transient domain cannot be shut off")
        if dom.has_managed_save and dom.state != RunState.SHUTOFF:
            raise ValueError(f"{dom.name}: managed save needs a shut-off domain")
        targets = [d.target for d in dom.disks]
        if len(targets) != len(set(targets)):
            raise ValueError(f"{dom.name}: duplicate disk targets {targets}")
        snap_names = {s.name for s in dom.snapshots}
        if len(snap_names) != len(dom.snapshots):
            raise ValueError(f"{dom.name}: duplicate snapshot names")
        if sum(1 for s in dom.snapshots if s.current) > 1:
            raise ValueError(f"{dom.name}: more than one current snapshot")
        for snap in dom.snapshots:
            if snap.parent and snap.parent not in snap_names:
                raise ValueError(f"{dom.name}: snapshot {snap.name} has unknown parent")
    for pool in spec.pools:
        allocated = sum(
            v.allocation_bytes if v.allocation_bytes is not None else v.capacity_bytes for v in pool.volumes
        )
        if allocated > TEST_POOL_CAPACITY:
            raise ValueError(
                f"pool {pool.name}: volumes allocate {allocated} bytes, more than the "
                f"{TEST_POOL_CAPACITY} the test driver gives a pool"
            )


def build_node_element(spec: NodeSpec) -> ET.Element:
    """Return the ``<node>`` element for ``spec`` (validated; raises ``ValueError``)."""
    _validate(spec)
    root = ET.Element("node")
    _sub(
        root,
        f"{{{VOM_NS}}}host",
        name=spec.hostname,
        uuid=spec.host_uuid,
    )
    cpu = _sub(root, "cpu")
    if spec.cpu_mode:
        _sub(cpu, "mode", spec.cpu_mode)
    _sub(cpu, "nodes", str(spec.cpu_nodes))
    _sub(cpu, "sockets", str(spec.cpu_sockets))
    _sub(cpu, "cores", str(spec.cpu_cores))
    _sub(cpu, "threads", str(spec.cpu_threads))
    total = spec.cpu_nodes * spec.cpu_sockets * spec.cpu_cores * spec.cpu_threads
    _sub(cpu, "active", str(spec.cpu_active if spec.cpu_active is not None else total))
    _sub(cpu, "mhz", str(spec.cpu_mhz))
    _sub(cpu, "model", spec.cpu_model)
    _sub(root, "memory", str(spec.memory_kib))
    for dom in spec.domains:
        root.append(build_domain_element(dom))
    for net in spec.networks:
        root.append(_network_element(net))
    for iface in spec.interfaces:
        root.append(_interface_element(iface))
    for pool in spec.pools:
        root.append(_pool_element(pool))
    device = _sub(root, "device")
    _sub(device, "name", "computer")
    cap = _sub(device, "capability", type="system")
    _sub(cap, "product", spec.hw_product)
    hardware = _sub(cap, "hardware")
    _sub(hardware, "vendor", spec.hw_vendor)
    _sub(hardware, "version", spec.hw_product)
    _sub(hardware, "serial", spec.hw_serial or spec.host_uuid.split("-")[0].upper())
    _sub(hardware, "uuid", spec.host_uuid)
    firmware = _sub(cap, "firmware")
    _sub(firmware, "vendor", spec.hw_vendor)
    _sub(firmware, "version", "2.19.1")
    _sub(firmware, "release_date", "06/07/2023")
    return root


def build_node_xml(spec: NodeSpec, *, pretty: bool = True) -> bytes:
    """Serialize ``spec`` to node XML bytes (UTF-8, with declaration).

    The output depends only on ``spec``: the same spec always gives identical bytes. ``pretty``
    indents the document (slower; turn it off for large generated sets).
    """
    root = build_node_element(spec)
    if pretty:
        ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_node(spec: NodeSpec, path: str | Path, *, pretty: bool = True) -> Path:
    """Write the node file for ``spec`` to ``path`` (parents created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(build_node_xml(spec, pretty=pretty))
    return target


def read_node_identity(path: str | Path) -> tuple[str, str] | None:
    """Return ``(hostname, host_uuid)`` from a node file's ``<vom:host>`` marker, if it has one."""
    root = ET.parse(path).getroot()  # noqa: S314 - our own node files, not untrusted input
    marker = root.find(f"{{{VOM_NS}}}host")
    if marker is None:
        return None
    return marker.get("name", ""), marker.get("uuid", "")


SIDECAR_MARKER = f"{{{VOM_NS}}}state"  # a dump's first element: the source it was made from

_DUMPED_DOMAIN_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


def _parsed(xml: str) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - XML from libvirt, not untrusted input


def _dumped_domain(dom: Any) -> ET.Element:
    persistent = bool(dom.isPersistent())
    state, _reason = dom.state(0)  # the test driver loads no reason: every domain starts with 0
    # A persistent domain is loaded from its definition (a running one is started from it).
    el = _parsed(dom.XMLDesc(_DUMPED_DOMAIN_FLAGS if persistent else libvirt.VIR_DOMAIN_XML_SECURE))
    el.attrib.pop("id", None)
    _sub(el, f"{{{TEST_NS}}}runstate", str(int(state)))
    if not persistent:
        _sub(el, f"{{{TEST_NS}}}transient")
    if dom.hasManagedSaveImage(0):
        _sub(el, f"{{{TEST_NS}}}hasmanagedsave")
    current = str(dom.snapshotCurrent(0).getName()) if dom.hasCurrentSnapshot(0) else None
    for snap in dom.listAllSnapshots(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL):  # parents first
        snap_el = _sub(el, f"{{{TEST_NS}}}domainsnapshot")
        snap_el.extend(c for c in _parsed(snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE)) if c.tag != "active")
        _sub(snap_el, "active", "1" if str(snap.getName()) == current else "0")
    return el


def _dumped_pool(pool: Any) -> ET.Element:
    el = _parsed(pool.XMLDesc(0))
    if pool.isActive():  # the test driver loads every pool active; an inactive one lists no volumes
        el.extend(_parsed(vol.XMLDesc(0)) for vol in pool.listAllVolumes(0))
    return el


def dump_node(conn: Any, source_root: ET.Element, *, origin: tuple[str, int, int] | None = None) -> bytes:
    """The node file of the host behind the test:/// connection ``conn`` as it is now.

    The host's facts (``<vom:host>``, ``<cpu>``, ``<memory>``, host ``<interface>``s, node devices,
    ``<auth>``) are those of the original node file ``source_root``; every domain (run state,
    transient, managed save, snapshots), network and storage pool with its volumes is read from
    ``conn``. ``origin`` (source path, mtime_ns, size) is recorded in a first :data:`SIDECAR_MARKER`
    element. Opened again, the result discovers like ``conn`` but for what the test driver does not
    load from a file (see the module docstring).
    """
    root = ET.Element("node")
    source_dir = ""
    if origin is not None:
        _sub(root, SIDECAR_MARKER, source=origin[0], mtime_ns=str(origin[1]), size=str(origin[2]))
        source_dir = os.path.dirname(origin[0])
    kept = [copy.deepcopy(c) for c in source_root if c.tag not in ("domain", "network", "pool", SIDECAR_MARKER)]
    for child in kept:  # the test driver reads a relative file= reference relative to the node file
        if source_dir and child.get("file") and not os.path.isabs(child.get("file", "")):
            child.set("file", os.path.join(source_dir, child.get("file", "")))
    root.extend(c for c in kept if c.tag not in ("interface", "device"))
    root.extend(_dumped_domain(dom) for dom in conn.listAllDomains(0))
    root.extend(_parsed(net.XMLDesc(0)) for net in conn.listAllNetworks(0))
    root.extend(c for c in kept if c.tag == "interface")  # in build_node_element's order
    root.extend(_dumped_pool(pool) for pool in conn.listAllStoragePools(0))
    root.extend(c for c in kept if c.tag == "device")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
