"""The simulated manager's inventory: plain dataclasses, and generators for the demo and the benchmark.

Values use the oVirt API model's own vocabulary (lowercase enum values, sizes in bytes) so the XML
layer only has to arrange them. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from dataclasses import dataclass, field

GiB = 1024**3
TiB = 1024**4

# The 15 values of the v4 API model's VmStatus enum (ovirtsdk4.types.VmStatus). "image_illegal"
# belonged to API v3 and is not in v4; the v4 model has "unassigned" instead.
VM_STATUSES = (
    "down",
    "image_locked",
    "migrating",
    "not_responding",
    "paused",
    "powering_down",
    "powering_up",
    "reboot_in_progress",
    "restoring_state",
    "saving_state",
    "suspended",
    "unassigned",
    "unknown",
    "up",
    "wait_for_launch",
)
# The v3 value, for testing how a client copes with a status its SDK does not know.
LEGACY_VM_STATUSES = ("image_illegal",)
# VM states in which the VM has a host (the engine reports <host> only while it runs somewhere).
RUNNING_STATUSES = frozenset(
    {"up", "powering_up", "powering_down", "paused", "migrating", "reboot_in_progress", "saving_state"}
    | {"restoring_state", "wait_for_launch", "not_responding", "unknown"}
)
HOST_STATUSES = (
    "connecting",
    "down",
    "error",
    "initializing",
    "install_failed",
    "installing",
    "installing_os",
    "kdumping",
    "maintenance",
    "non_operational",
    "non_responsive",
    "pending_approval",
    "preparing_for_maintenance",
    "reboot",
    "unassigned",
    "up",
)
BLANK_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class DataCenter:
    id: str
    name: str
    description: str = ""
    status: str = "up"
    version: tuple[int, int] = (4, 7)


@dataclass
class Cluster:
    id: str
    name: str
    datacenter_id: str
    cpu_type: str = "Intel Cascadelake Server Family"
    description: str = ""


@dataclass
class Host:
    id: str
    name: str
    address: str
    cluster_id: str
    status: str = "up"
    cpu_name: str = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"
    cpu_type: str = "Intel Cascadelake Server Family"
    sockets: int = 2
    cores: int = 24
    threads: int = 2
    speed_mhz: int = 3000
    memory: int = 768 * GiB
    type: str = "rhel"  # HostType: rhel, ovirt_node, rhev_h
    version: str = "4.50.3.4-1.el8"
    libvirt_version: str = "8.0.0-10.module+el8.7.0"
    spm: str = "none"  # spm status: none, contending, spm


@dataclass
class LogicalUnit:
    id: str  # the LUN's WWID, e.g. 36001405…
    size: int
    vendor_id: str = "LIO-ORG"
    product_id: str = "block01"
    serial: str = ""
    address: str = ""  # iSCSI portal address ("" for FC)
    port: int = 3260
    target: str = ""
    lun_mapping: int = 0
    paths: int = 2
    storage_domain_id: str = ""
    volume_group_id: str = ""


@dataclass
class StorageDomain:
    id: str
    name: str
    datacenter_id: str
    type: str = "data"  # StorageDomainType: data, iso, export, image, volume, managed_block_storage
    storage_type: str = "nfs"  # StorageType: nfs, iscsi, fcp, glusterfs, posixfs, localfs, cinder …
    address: str = ""
    path: str = ""
    available: int = 0
    used: int = 0
    committed: int = 0
    master: bool = False
    status: str = "active"
    volume_group_id: str = ""
    luns: list[LogicalUnit] = field(default_factory=list)
    description: str = ""


@dataclass
class Network:
    id: str
    name: str
    datacenter_id: str
    description: str = ""
    vlan: int | None = None
    mtu: int = 0
    usages: tuple[str, ...] = ("vm",)


@dataclass
class VnicProfile:
    id: str
    name: str
    network_id: str


@dataclass
class Template:
    id: str
    name: str
    cluster_id: str | None
    os_type: str = "other"
    memory: int = GiB
    description: str = ""
    version_name: str = "base"


@dataclass
class Disk:
    id: str
    alias: str
    provisioned_size: int
    actual_size: int = 0
    format: str = "cow"  # DiskFormat: cow, raw
    sparse: bool = True
    storage_domain_id: str = ""  # image disks
    lun: LogicalUnit | None = None  # direct LUN disks
    lun_type: str = "iscsi"  # StorageType of the LUN
    shareable: bool = False
    status: str = "ok"
    description: str = ""

    @property
    def storage_type(self) -> str:
        return "lun" if self.lun is not None else "image"


@dataclass
class DiskAttachment:
    disk_id: str
    interface: str = "virtio_scsi"  # DiskInterface: virtio, virtio_scsi, ide, sata, spapr_vscsi
    bootable: bool = False
    active: bool = True
    read_only: bool = False
    logical_name: str = ""  # reported by the guest agent while the VM runs
    pass_discard: bool = False


@dataclass
class Nic:
    id: str
    name: str
    mac: str
    vnic_profile_id: str | None
    interface: str = "virtio"  # NicInterface: virtio, e1000, rtl8139 …
    plugged: bool = True
    linked: bool = True


@dataclass
class Vm:
    id: str
    name: str
    cluster_id: str
    status: str = "down"
    host_id: str | None = None
    template_id: str = BLANK_TEMPLATE_ID
    memory: int = 4 * GiB
    max_memory: int = 16 * GiB
    sockets: int = 2
    cores: int = 1
    threads: int = 1
    os_type: str = "rhel_8x64"
    ha_enabled: bool = False
    ha_priority: int = 0
    description: str = ""
    type: str = "server"
    stop_reason: str = ""
    creation_time: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    disk_attachments: list[DiskAttachment] = field(default_factory=list)
    nics: list[Nic] = field(default_factory=list)


@dataclass
class Inventory:
    """Everything the simulated manager knows. Guard changes with ``lock``."""

    datacenters: dict[str, DataCenter] = field(default_factory=dict)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    storage_domains: dict[str, StorageDomain] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    vnic_profiles: dict[str, VnicProfile] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    disks: dict[str, Disk] = field(default_factory=dict)
    vms: dict[str, Vm] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=lambda: {"admin@internal": "secret"})
    product_version: str = "4.5.4-1.el8"
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def add(self, obj: object) -> None:
        """File an object in the dictionary for its kind."""
        table = {
            DataCenter: self.datacenters,
            Cluster: self.clusters,
            Host: self.hosts,
            StorageDomain: self.storage_domains,
            Network: self.networks,
            VnicProfile: self.vnic_profiles,
            Template: self.templates,
            Disk: self.disks,
            Vm: self.vms,
        }[type(obj)]
        table[obj.id] = obj  # type: ignore[attr-defined]


# --- generators ------------------------------------------------------------------------------

_OS_TYPES = ("rhel_8x64", "rhel_9x64", "rhel_7x64", "windows_2019x64", "windows_2022", "other_linux")
_ROLES = ("web", "app", "db", "cache", "mq", "ldap", "build", "mon", "proxy", "batch")


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _mac(rng: random.Random) -> str:
    # The engine's default MAC pool starts at 56:6f:…
    return "56:6f:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(4))


def _wwid(rng: random.Random) -> str:
    return "36001405" + "".join(rng.choice("0123456789abcdef") for _ in range(25))


def demo_inventory(
    seed: int = 1,
    *,
    datacenters: int = 2,
    clusters: int = 3,
    hosts: int = 6,
    vms: int = 40,
    statuses: tuple[str, ...] | None = None,
) -> Inventory:
    """A realistic manager: data centers with NFS/iSCSI data domains and an ISO domain, clusters,
    hosts, templates, and VMs with disks (some on direct iSCSI LUNs) and NICs.

    Without ``statuses`` about two thirds of the VMs are up and the rest down, with a few in
    other states; with ``statuses`` the VMs cycle through the given values.
    """
    rng = random.Random(seed)
    inv = Inventory()
    base_time = dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)

    dcs = []
    for d in range(datacenters):
        dc = DataCenter(_uid(rng), f"DC-{['East', 'West', 'North', 'South'][d % 4]}{'' if d < 4 else d}")
        inv.add(dc)
        dcs.append(dc)
        mgmt = Network(_uid(rng), "ovirtmgmt", dc.id, "Management Network", usages=("vm", "management"))
        inv.add(mgmt)
        inv.add(VnicProfile(_uid(rng), "ovirtmgmt", mgmt.id))
        for vlan, name in ((100, "prod"), (200, "backend"), (300, "storage")):
            net = Network(
                _uid(rng), f"{name}-vlan{vlan}", dc.id, f"{name} network", vlan=vlan, mtu=9000 if vlan == 300 else 0
            )
            inv.add(net)
            inv.add(VnicProfile(_uid(rng), net.name, net.id))
        short = dc.name.split("-")[1].lower()
        inv.add(
            StorageDomain(
                _uid(rng), f"{short}-data-nfs01", dc.id, "data", "nfs", f"nfs01.{short}.example.com",
                f"/exports/{short}/data01", available=3 * TiB, used=1 * TiB, committed=5 * TiB, master=True,
            )
        )  # fmt: skip
        vg = _uid(rng)[:6] + "-" + _uid(rng)[:4]
        sd = StorageDomain(
            _uid(rng), f"{short}-data-iscsi01", dc.id, "data", "iscsi", "", "", available=6 * TiB, used=2 * TiB,
            committed=9 * TiB, volume_group_id=vg,
        )  # fmt: skip
        for n in range(2):
            sd.luns.append(
                LogicalUnit(
                    _wwid(rng), 4 * TiB, serial=f"SLIO-ORG_data{n}", address=f"10.{d}.50.10",
                    target=f"iqn.2003-01.org.linux-iscsi.san{d}:data", lun_mapping=n, storage_domain_id=sd.id,
                    volume_group_id=vg,
                )
            )  # fmt: skip
        inv.add(sd)
        inv.add(
            StorageDomain(
                _uid(rng), f"{short}-iso", dc.id, "iso", "nfs", f"nfs01.{short}.example.com", f"/exports/{short}/iso",
                available=400 * GiB, used=100 * GiB, committed=0,
            )
        )  # fmt: skip
        if d == 0:
            inv.add(
                StorageDomain(
                    _uid(rng), "export01", dc.id, "export", "nfs", "backup01.example.com", "/exports/export01",
                    available=8 * TiB, used=2 * TiB, committed=0, status="maintenance",
                )
            )  # fmt: skip

    cls = []
    for c in range(clusters):
        dc = dcs[c % len(dcs)]
        cl = Cluster(_uid(rng), f"{dc.name.split('-')[1]}-Cluster{c // len(dcs) + 1:02d}", dc.id)
        inv.add(cl)
        cls.append(cl)

    host_list: list[Host] = []
    for h in range(hosts):
        cl = cls[h % len(cls)]
        status = "maintenance" if hosts > 4 and h == hosts - 1 else "up"
        host = Host(
            _uid(rng), f"rhvh{h + 1:02d}.example.com", f"10.10.{h // 250}.{h % 250 + 11}", cl.id, status,
            sockets=rng.choice((1, 2)), cores=rng.choice((16, 24, 28)), threads=2,
            memory=rng.choice((384, 512, 768)) * GiB, type=rng.choice(("rhel", "rhev_h")),
        )  # fmt: skip
        inv.add(host)
        host_list.append(host)

    blank = Template(BLANK_TEMPLATE_ID, "Blank", None, "other", GiB, "Blank template")
    inv.add(blank)
    tpls = [blank]
    for i, (name, os_type) in enumerate(
        (("rhel8-base", "rhel_8x64"), ("rhel9-base", "rhel_9x64"), ("win2019", "windows_2019x64"))
    ):
        tpl = Template(_uid(rng), name, cls[i % len(cls)].id, os_type, 4 * GiB, f"{name} golden image")
        inv.add(tpl)
        tpls.append(tpl)

    sds_by_dc: dict[str, list[StorageDomain]] = {}
    for sd in inv.storage_domains.values():
        if sd.type == "data":
            sds_by_dc.setdefault(sd.datacenter_id, []).append(sd)
    profiles_by_dc: dict[str, list[VnicProfile]] = {}
    for prof in inv.vnic_profiles.values():
        profiles_by_dc.setdefault(inv.networks[prof.network_id].datacenter_id, []).append(prof)

    for v in range(vms):
        cl = cls[v % len(cls)]
        dc_id = cl.datacenter_id
        if statuses:
            status = statuses[v % len(statuses)]
        else:
            status = rng.choices(("up", "down", "suspended", "paused", "powering_up"), (64, 30, 2, 2, 2))[0]
        up_hosts = [h for h in host_list if h.cluster_id == cl.id and h.status == "up"]
        host_id = rng.choice(up_hosts).id if status in RUNNING_STATUSES and up_hosts else None
        if status in RUNNING_STATUSES and host_id is None:
            status = "down"
        tpl = rng.choice(tpls)
        role = _ROLES[v % len(_ROLES)]
        vm = Vm(
            _uid(rng), f"{role}{v // len(_ROLES) + 1:03d}-{cl.name.split('-')[0].lower()}", cl.id, status, host_id,
            tpl.id, memory=rng.choice((2, 4, 8, 16)) * GiB, sockets=rng.choice((1, 2, 4)),
            cores=rng.choice((1, 2)), os_type=tpl.os_type if tpl.id != BLANK_TEMPLATE_ID else rng.choice(_OS_TYPES),
            ha_enabled=v % 5 == 0, ha_priority=1 if v % 5 == 0 else 0, description=f"{role} server",
            creation_time=base_time + dt.timedelta(hours=v),
        )  # fmt: skip
        vm.max_memory = vm.memory * 4
        interface = rng.choice(("virtio_scsi", "virtio_scsi", "virtio"))
        for n in range(1 + (v % 3 == 0)):
            sd = rng.choice(sds_by_dc[dc_id])
            size = rng.choice((20, 40, 100)) * GiB if n == 0 else rng.choice((100, 250, 500)) * GiB
            sparse = sd.storage_type == "nfs" or n == 0
            disk = Disk(
                _uid(rng), f"{vm.name}_Disk{n + 1}", size, int(size * rng.uniform(0.1, 0.6)) if sparse else size,
                "cow" if sparse else "raw", sparse, sd.id,
            )  # fmt: skip
            inv.add(disk)
            letter = "abcdefgh"[n]
            prefix = "vd" if interface == "virtio" else "sd"
            vm.disk_attachments.append(
                DiskAttachment(
                    disk.id, interface, bootable=n == 0, logical_name=f"/dev/{prefix}{letter}" if host_id else ""
                )
            )
        dc_index = dcs.index(inv.datacenters[dc_id])
        if v % 7 == 3:  # a database VM with a direct iSCSI LUN (shareable, SCSI pass-through)
            lun = LogicalUnit(
                _wwid(rng), 200 * GiB, serial=f"SLIO-ORG_{vm.name}", address=f"10.{dc_index}.50.10",
                target="iqn.2003-01.org.linux-iscsi.san:db", lun_mapping=10 + v,
            )  # fmt: skip
            disk = Disk(_uid(rng), f"{vm.name}_lun", lun.size, 0, "raw", False, "", lun, "iscsi", shareable=True)
            inv.add(disk)
            vm.disk_attachments.append(DiskAttachment(disk.id, "virtio_scsi"))
        profs = profiles_by_dc[dc_id]
        for n in range(1 + (v % 4 == 0)):
            vm.nics.append(
                Nic(
                    _uid(rng), f"nic{n + 1}", _mac(rng), profs[n % len(profs)].id if v % 13 != 12 else None,
                    rng.choice(("virtio", "virtio", "e1000")), plugged=True, linked=not (v % 11 == 10),
                )
            )  # fmt: skip
        inv.add(vm)
    return inv


def benchmark_inventory(vms: int = 5000, seed: int = 7) -> Inventory:
    """A large manager for the benchmark: 4 data centers, 8 clusters, 100 hosts and ``vms`` VMs."""
    return demo_inventory(seed, datacenters=4, clusters=8, hosts=100, vms=vms)
