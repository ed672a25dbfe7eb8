"""Write the demo KVM estate: libvirt ``test:///`` node files ``demo/kvm/kvm01.xml`` … ``kvm03.xml``.

Three hosts, sixty guests of realistic shapes (databases on multipath LUNs, an Oracle RAC pair
sharing disks across two hosts, web and app tiers on qcow2 overlays of golden images, a CI stack,
Kubernetes, Windows servers on SATA, templates, a legacy IDE guest, a Ceph RBD client, an iSCSI
network disk), every state the test driver can show, snapshots, and per-host storage pools whose
volumes carry exactly the paths the disks use, so that disk → volume → pool correlation works.

Run from the project root: ``.venv/bin/python scripts/make_demo.py [--out DIR] [--seed N]``.
Each written file is loaded back with ``libvirt.open('test:///…')`` and checked; a summary is
printed. The output depends only on the seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(PROJECT_ROOT))

from vom.simulators.libvirt_node import (  # noqa: E402
    BackingStoreSpec,
    DiskSpec,
    DomainSpec,
    GiB,
    HostInterfaceSpec,
    MiB,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    SnapshotSpec,
    VolumeSpec,
    stable_mac,
    stable_uuid,
    write_node,
)

DEFAULT_SEED = 1701
DEFAULT_OUT = PROJECT_ROOT / "demo" / "kvm"

IMAGES = "/var/lib/libvirt/images"
ISO_DIR = "/var/lib/libvirt/iso"
VG = "vg_guests"

# shared SAN, seen identically by every host (consistent storage mapping)
ISCSI_PORTAL = "10.0.0.5"
ISCSI_IQN = "iqn.2010-03.com.example:storage.tgt01"


def iscsi_lun_path(lun: int) -> str:
    """Return the persistent by-path name of iSCSI LUN ``lun`` on the demo storage array."""
    return f"/dev/disk/by-path/ip-{ISCSI_PORTAL}:3260-iscsi-{ISCSI_IQN}-lun-{lun}"


ISCSI_LUNS: dict[int, int] = {1: 2 * GiB, 2: 50 * GiB, 3: 30 * GiB}  # lun -> size (voting, gitlab, nas)


def mpath(lun: int) -> str:
    """Return the ``/dev/disk/by-id/dm-uuid-mpath-<WWID>`` name of FC SAN LUN number ``lun``."""
    return f"/dev/disk/by-id/dm-uuid-mpath-3600508b4000156d700012000{lun:08x}"


GOLDEN: dict[str, tuple[int, int]] = {  # name -> (capacity, allocation)
    "rhel9-golden.qcow2": (20 * GiB, 2900 * MiB),
    "ubuntu2204-golden.qcow2": (20 * GiB, 2300 * MiB),
    "win2019-golden.qcow2": (60 * GiB, 10700 * MiB),
}
ISOS: dict[str, int] = {
    "rhel-9.3-x86_64-dvd.iso": 9940 * MiB,
    "ubuntu-22.04.4-live-server-amd64.iso": 2010 * MiB,
    "virtio-win-0.1.240.iso": 598 * MiB,
    "SW_DVD9_Win_Server_STD_CORE_2019_1809.iso": 4980 * MiB,
}

_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}


def _target_name(prefix: str, index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return prefix + letters


@dataclass
class Host:
    """Accumulates one demo host: pools fill up as guests are added."""

    name: str
    seed: int
    mgmt_ip: str
    storage_ip: str
    vendor: str
    product: str
    cpu_model: str
    sockets: int
    cores: int
    memory_gib: int
    golden: list[str] = field(default_factory=lambda: list(GOLDEN))
    domains: list[DomainSpec] = field(default_factory=list)
    rng: random.Random = field(init=False)
    default_pool: PoolSpec = field(init=False)
    iso_pool: PoolSpec = field(init=False)
    lvm_pool: PoolSpec = field(init=False)
    iscsi_pool: PoolSpec = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.name}")
        uid = self.uid
        self.default_pool = PoolSpec("default", uid("pool", "default"), IMAGES)
        for name in self.golden:
            cap, alloc = GOLDEN[name]
            self.default_pool.volumes.append(VolumeSpec(name, cap, alloc, "qcow2"))
        self.iso_pool = PoolSpec("iso", uid("pool", "iso"), ISO_DIR)
        for name, size in ISOS.items():
            self.iso_pool.volumes.append(VolumeSpec(name, size, size, "iso"))
        self.lvm_pool = PoolSpec(
            VG,
            uid("pool", VG),
            f"/dev/{VG}",
            kind="logical",
            source_devices=[mpath(0xFF00 + int(self.name[-2:]))],
            source_name=VG,
            source_format="lvm2",
        )
        self.iscsi_pool = PoolSpec(
            "iscsi-san",
            uid("pool", "iscsi-san"),
            "/dev/disk/by-path",
            kind="iscsi",
            source_host=ISCSI_PORTAL,
            source_port=3260,
            source_devices=[ISCSI_IQN],
        )
        for lun, size in ISCSI_LUNS.items():
            self.iscsi_pool.volumes.append(
                VolumeSpec(f"unit:0:0:{lun}", size, size, path=iscsi_lun_path(lun), kind="block")
            )

    def uid(self, *parts: object) -> str:
        """Return a UUID stable for this seed, host and ``parts``."""
        return stable_uuid(self.seed, self.name, *parts)

    # -- disks ----------------------------------------------------------------------------

    def overlay(self, vm: str, golden: str, cap_gib: int, bus: str = "virtio") -> DiskSpec:
        """A space-optimized root disk: a qcow2 child of ``golden`` in the default pool."""
        windows = golden.startswith("win")
        alloc = self.rng.randrange(1800, 3600) if windows else self.rng.randrange(180, 1400)
        name = f"{vm}-root.qcow2"
        gpath = f"{IMAGES}/{golden}"
        self.default_pool.volumes.append(
            VolumeSpec(name, cap_gib * GiB, alloc * MiB, "qcow2", backing_path=gpath, backing_format="qcow2")
        )
        return DiskSpec("", f"{IMAGES}/{name}", bus=bus, format="qcow2", backing=BackingStoreSpec(gpath, "qcow2"))

    def image(
        self, name: str, cap_gib: int, alloc_mib: int, fmt: str = "qcow2", bus: str = "virtio", as_volume: bool = False
    ) -> DiskSpec:
        """A standalone image file in the default pool (data disk or full copy)."""
        self.default_pool.volumes.append(VolumeSpec(name, cap_gib * GiB, alloc_mib * MiB, fmt))
        if as_volume:
            return DiskSpec("", kind="volume", pool="default", volume=name, bus=bus, format=fmt)
        return DiskSpec("", f"{IMAGES}/{name}", bus=bus, format=fmt)

    def golden_disk(self, golden: str, bus: str = "virtio") -> DiskSpec:
        """The golden image itself (a template guest boots from it)."""
        return DiskSpec("", f"{IMAGES}/{golden}", bus=bus, format="qcow2")

    def lv(self, name: str, cap_gib: int, bus: str = "virtio") -> DiskSpec:
        """A logical volume in the guests' volume group, given as a block device."""
        path = f"/dev/{VG}/{name}"
        self.lvm_pool.volumes.append(VolumeSpec(name, cap_gib * GiB, cap_gib * GiB, path=path, kind="block"))
        return DiskSpec("", path, kind="block", bus=bus, format="raw", cache="none", io="native")

    @staticmethod
    def san(path: str, serial: str, *, shared: bool = False, wwn: str | None = None, bus: str = "scsi") -> DiskSpec:
        """A SAN LUN by persistent name: raw, host cache off (required when shared)."""
        return DiskSpec(
            "",
            path,
            kind="block",
            bus=bus,
            format="raw",
            cache="none",
            io="native",
            serial=serial,
            wwn=wwn,
            shareable=shared,
        )

    @staticmethod
    def iso(name: str, bus: str = "sata", boot: int | None = None) -> DiskSpec:
        """A CD-ROM drive holding an ISO from the iso pool."""
        return DiskSpec("", f"{ISO_DIR}/{name}", device="cdrom", bus=bus, format="raw", readonly=True, boot_order=boot)

    # -- guests ---------------------------------------------------------------------------

    def vm(
        self,
        name: str,
        vcpus: int,
        mem_gib: float,
        state: RunState,
        disks: list[DiskSpec],
        nics: list[tuple[str, str, str]],
        description: str,
        *,
        transient: bool = False,
        machine: str = "pc-q35-7.2",
        snapshots: list[SnapshotSpec] | None = None,
    ) -> DomainSpec:
        """Add a guest; disk targets are named by bus order, MACs derived from the seed."""
        counters: Counter[str] = Counter()
        for disk in disks:
            prefix = _PREFIX[disk.bus]
            disk.target = _target_name(prefix, counters[prefix])
            counters[prefix] += 1
        dom = DomainSpec(
            name=name,
            uuid=self.uid("vm", name),
            memory_kib=int(mem_gib * 1024 * 1024),
            vcpus=vcpus,
            state=state,
            transient=transient,
            machine=machine,
            description=description,
            disks=disks,
            nics=[
                NicSpec(stable_mac(self.seed, self.name, name, i), source, kind, model)
                for i, (kind, source, model) in enumerate(nics)
            ],
            snapshots=snapshots or [],
        )
        self.domains.append(dom)
        return dom

    def node(self) -> NodeSpec:
        """Return the finished :class:`NodeSpec`."""
        octet = int(self.name[-2:])
        return NodeSpec(
            hostname=self.name,
            host_uuid=self.uid("host"),
            memory_kib=self.memory_gib * 1024 * 1024,
            cpu_model=self.cpu_model,
            cpu_sockets=self.sockets,
            cpu_cores=self.cores,
            cpu_threads=2,
            cpu_mhz=2900,
            hw_vendor=self.vendor,
            hw_product=self.product,
            hw_serial=f"SGH{self.seed % 1000:03d}{octet:02d}X7K",
            domains=self.domains,
            networks=[
                NetworkSpec(
                    "default",
                    self.uid("net", "default"),
                    "virbr0",
                    forward="nat",
                    ip="192.168.122.1",
                    netmask="255.255.255.0",
                    dhcp_start="192.168.122.2",
                    dhcp_end="192.168.122.254",
                ),
                NetworkSpec("br0", self.uid("net", "br0"), "br0", forward="bridge"),
                NetworkSpec(
                    "isolated",
                    self.uid("net", "isolated"),
                    "virbr1",
                    forward=None,
                    ip="10.99.0.1",
                    netmask="255.255.255.0",
                ),
            ],
            pools=[self.default_pool, self.iso_pool, self.lvm_pool, self.iscsi_pool],
            interfaces=[
                HostInterfaceSpec(
                    "eno1", stable_mac(self.seed, self.name, "eno1", prefix="b8:ca:3a"), ip=self.mgmt_ip, prefix=24
                ),
                HostInterfaceSpec("br0", kind="bridge", ports=["eno2"]),
                HostInterfaceSpec(
                    "ens1f0",
                    stable_mac(self.seed, self.name, "ens1f0", prefix="f4:e9:d4"),
                    ip=self.storage_ip,
                    prefix=24,
                    mtu=9000,
                ),
            ],
        )


R, P, S = RunState.RUNNING, RunState.PAUSED, RunState.SHUTOFF
BR0 = ("bridge", "br0", "virtio")
NAT = ("network", "default", "virtio")
ISO = ("network", "isolated", "virtio")
BR0_E1000E = ("bridge", "br0", "e1000e")

# Oracle RAC shared storage: the same persistent names on kvm01 and kvm02
RAC_ASM_DATA = mpath(0xA1)
RAC_ASM_FRA = mpath(0xA2)
T0 = 1_717_200_000  # 2024-06-01, base of snapshot creation times


def rac_disks(h: Host, vm: str) -> list[DiskSpec]:
    """Boot overlay plus the storage both RAC nodes share (voting LUN passed through as SCSI)."""
    voting = DiskSpec(
        "", iscsi_lun_path(1), kind="block", device="lun", bus="scsi", format="raw", cache="none", shareable=True
    )
    return [
        h.overlay(vm, "rhel9-golden.qcow2", 60),
        voting,
        Host.san(RAC_ASM_DATA, "ASMDATA01", shared=True, wwn="0x600508b400010a01"),
        Host.san(RAC_ASM_FRA, "ASMFRA01", shared=True, wwn="0x600508b400010a02"),
    ]


def build_kvm01(seed: int) -> Host:
    """Production databases, RAC node 1, web and app tiers, streaming."""
    h = Host(
        "kvm01", seed, "10.10.1.11", "10.0.0.21", "Dell Inc.", "PowerEdge R740", "Intel Xeon Gold 6242R", 2, 20, 768
    )
    rh = "rhel9-golden.qcow2"
    h.vm(
        "db-prod-01",
        16,
        64,
        R,
        [
            h.overlay("db-prod-01", rh, 40),
            Host.san(mpath(0x11), "PGDATA01", wwn="0x600508b400011011"),
            Host.san(mpath(0x12), "PGWAL01", wwn="0x600508b400011012"),
        ],
        [BR0, ISO],
        "PostgreSQL 15 primary - orders database",
    )
    h.vm(
        "db-prod-02",
        16,
        64,
        R,
        [
            h.overlay("db-prod-02", rh, 40),
            Host.san(mpath(0x21), "PGDATA02", wwn="0x600508b400011021"),
            Host.san(mpath(0x22), "PGWAL02", wwn="0x600508b400011022"),
        ],
        [BR0, ISO],
        "PostgreSQL 15 streaming standby of db-prod-01",
    )
    h.vm(
        "ora-rac-01",
        8,
        32,
        R,
        rac_disks(h, "ora-rac-01"),
        [BR0, ISO],
        "Oracle 19c RAC node 1 (ASM on shared SAN LUNs, voting disk on iSCSI LUN 1)",
    )
    for i in range(1, 5):
        nics = [BR0, NAT] if i == 1 else [BR0]
        h.vm(
            f"web-{i:02d}",
            2,
            4,
            P if i == 4 else R,
            [h.overlay(f"web-{i:02d}", rh, 20)],
            nics,
            f"nginx web front end {i}",
        )
    h.vm("haproxy-01", 2, 2, R, [h.overlay("haproxy-01", rh, 20)], [BR0, NAT], "HAProxy load balancer for the web tier")
    for i in (1, 2):
        vm = f"app-prod-{i:02d}"
        h.vm(
            vm,
            4,
            8,
            R,
            [h.overlay(vm, rh, 20), h.lv(f"{vm}-data", 20)],
            [BR0, ISO],
            f"order service application server {i}",
        )
    h.vm("redis-prod-01", 2, 8, R, [h.overlay("redis-prod-01", rh, 20)], [ISO], "Redis session cache")
    for i in range(1, 4):
        vm = f"kafka-{i:02d}"
        h.vm(vm, 4, 16, R, [h.overlay(vm, rh, 20), h.image(f"{vm}-data.qcow2", 200, 2600)], [BR0], f"Kafka broker {i}")
    h.vm(
        "elk-01",
        8,
        32,
        R,
        [h.overlay("elk-01", rh, 40), h.lv("elk-01-data", 40)],
        [BR0],
        "Elasticsearch + Kibana log analytics",
    )
    h.vm("mq-prod-01", 4, 8, P, [h.overlay("mq-prod-01", rh, 20)], [BR0], "RabbitMQ broker (paused for maintenance)")
    h.vm("batch-01", 4, 16, S, [h.overlay("batch-01", rh, 40)], [BR0], "nightly batch runner, started by the scheduler")
    h.vm(
        "db-prod-01-clone",
        8,
        32,
        S,
        [h.image("db-prod-01-clone-root.qcow2", 40, 3100)],
        [ISO],
        "full copy of db-prod-01's boot volume for upgrade rehearsal",
    )
    h.vm(
        "ubuntu-build-01",
        2,
        4,
        S,
        [h.overlay("ubuntu-build-01", "ubuntu2204-golden.qcow2", 20), Host.iso("ubuntu-22.04.4-live-server-amd64.iso")],
        [NAT],
        "package build box",
    )
    h.vm(
        "db-reports",
        4,
        16,
        R,
        [h.overlay("db-reports", rh, 40)],
        [BR0, ISO],
        "reporting replica",
        snapshots=[
            SnapshotSpec(
                "before-schema-v42", T0 + 86_400, "running", current=True, description="before the v42 schema migration"
            )
        ],
    )
    return h


def build_kvm02(seed: int) -> Host:
    """RAC node 2, CI/CD, Kubernetes, backup."""
    h = Host(
        "kvm02", seed, "10.10.1.12", "10.0.0.22", "Dell Inc.", "PowerEdge R740", "Intel Xeon Gold 6242R", 2, 20, 768
    )
    rh, ub = "rhel9-golden.qcow2", "ubuntu2204-golden.qcow2"
    h.vm(
        "ora-rac-02",
        8,
        32,
        R,
        rac_disks(h, "ora-rac-02"),
        [BR0, ISO],
        "Oracle 19c RAC node 2 (same shared LUNs as ora-rac-01)",
    )
    h.vm(
        "jenkins",
        4,
        8,
        R,
        [h.overlay("jenkins", rh, 40), h.image("jenkins-home.qcow2", 200, 12800, as_volume=True)],
        [BR0],
        "Jenkins LTS controller",
        snapshots=[
            SnapshotSpec(
                "before-upgrade-2.401", T0 + 3 * 86_400, "running", description="before the Jenkins 2.401 upgrade"
            ),
            SnapshotSpec(
                "plugins-2024-06",
                T0 + 10 * 86_400,
                "running",
                parent="before-upgrade-2.401",
                current=True,
                description="after the June plugin refresh",
            ),
        ],
    )
    for i in range(1, 5):
        vm = f"jenkins-agent-{i:02d}"
        h.vm(
            vm,
            8 if i == 4 else 4,
            16 if i == 4 else 8,
            S if i == 4 else R,
            [h.overlay(vm, ub, 40)],
            [BR0],
            f"Jenkins build agent {i}",
        )
    h.vm(
        "gitlab",
        8,
        16,
        R,
        [
            h.overlay("gitlab", rh, 40),
            DiskSpec("", kind="volume", pool="iscsi-san", volume="unit:0:0:2", format="raw", cache="none"),
        ],
        [BR0],
        "GitLab CE, repositories on iSCSI LUN 2",
    )
    h.vm("nexus", 4, 8, R, [h.overlay("nexus", rh, 20), h.lv("nexus-blobs", 60)], [BR0], "Nexus artifact repository")
    h.vm("sonarqube", 4, 8, S, [h.overlay("sonarqube", rh, 20)], [BR0], "SonarQube (retired)")
    for i in range(1, 4):
        vm = f"k8s-master-{i:02d}"
        h.vm(vm, 4, 8, R, [h.overlay(vm, ub, 40)], [BR0], f"Kubernetes control plane {i}")
    for i in range(1, 4):
        vm = f"k8s-worker-{i:02d}"
        h.vm(vm, 8, 32, R, [h.overlay(vm, ub, 80)], [BR0, ISO], f"Kubernetes worker {i}")
    h.vm(
        "backup-proxy",
        4,
        8,
        R,
        [
            h.overlay("backup-proxy", rh, 20),
            Host.san("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "ZA1B2C3D"),
            Host.san("/dev/disk/by-path/pci-0000:3b:00.0-fc-0x500a09838abc1234-lun-4", "FCBKP004"),
        ],
        [BR0, ISO],
        "backup proxy: local SAS disk and an FC LUN passed through by persistent name",
    )
    h.vm(
        "perf-probe",
        2,
        4,
        P,
        [h.overlay("perf-probe", ub, 20)],
        [NAT],
        "transient guest started with virsh create for a load test",
        transient=True,
    )
    h.vm(
        "test-vm-01",
        1,
        1,
        R,
        [h.overlay("test-vm-01", rh, 20)],
        [NAT],
        "scratch test guest",
        snapshots=[SnapshotSpec("clean-install", T0 + 5 * 86_400, "shutoff", current=True)],
    )
    h.vm("test-vm-02", 1, 2, S, [h.overlay("test-vm-02", ub, 20)], [NAT], "scratch test guest")
    h.vm(
        "ceph-client-01",
        2,
        4,
        R,
        [
            h.overlay("ceph-client-01", ub, 20),
            DiskSpec(
                "",
                "rbd/ceph-client-01-data",
                kind="network",
                protocol="rbd",
                hosts=[("ceph-mon-01", 6789), ("ceph-mon-02", 6789), ("ceph-mon-03", 6789)],
                format="raw",
                cache="none",
            ),
        ],
        [BR0],
        "Ceph RBD client",
    )
    return h


def build_kvm03(seed: int) -> Host:
    """Windows, templates, infrastructure, legacy."""
    h = Host(
        "kvm03", seed, "10.10.1.13", "10.0.0.23", "HPE", "ProLiant DL380 Gen10", "Intel Xeon Gold 6230", 2, 20, 512
    )
    rh, ub, win = "rhel9-golden.qcow2", "ubuntu2204-golden.qcow2", "win2019-golden.qcow2"
    virtio_win = "virtio-win-0.1.240.iso"
    h.vm(
        "win2019-ad",
        2,
        4,
        R,
        [h.overlay("win2019-ad", win, 60, bus="sata"), Host.iso(virtio_win)],
        [BR0_E1000E],
        "Active Directory domain controller (corp.example.com)",
        snapshots=[
            SnapshotSpec(
                "pre-patch-2024-06",
                T0 + 12 * 86_400,
                "running",
                current=True,
                description="before June cumulative update",
            )
        ],
    )
    h.vm(
        "win2019-ad-02",
        2,
        4,
        R,
        [h.overlay("win2019-ad-02", win, 60)],
        [BR0],
        "second domain controller (virtio drivers installed)",
    )
    h.vm(
        "win2019-sql01",
        8,
        32,
        R,
        [
            h.overlay("win2019-sql01", win, 80),
            Host.san(mpath(0x31), "SQLDATA01", wwn="0x600508b400011031"),
            Host.san(mpath(0x32), "SQLLOG01", wwn="0x600508b400011032"),
        ],
        [BR0, ISO],
        "SQL Server 2019",
    )
    h.vm("win2019-rds-01", 4, 16, P, [h.overlay("win2019-rds-01", win, 80)], [BR0], "Remote Desktop session host")
    for i, state in ((1, R), (2, S), (3, S)):
        vm = f"win10-vdi-{i:02d}"
        h.vm(vm, 2, 4, state, [h.overlay(vm, win, 60, bus="sata")], [BR0_E1000E], f"VDI desktop {i}")
    h.vm(
        "rhel9-template",
        2,
        4,
        S,
        [h.golden_disk(rh)],
        [NAT],
        "golden image template: RHEL 9.3, sealed",
        snapshots=[SnapshotSpec("sealed", T0, "shutoff", current=True)],
    )
    h.vm("ubuntu2204-template", 2, 4, S, [h.golden_disk(ub)], [NAT], "golden image template: Ubuntu 22.04")
    h.vm(
        "win2019-template",
        2,
        4,
        S,
        [h.golden_disk(win, bus="sata")],
        [BR0_E1000E],
        "golden image template: Windows Server 2019, sysprepped",
    )
    h.vm(
        "dev-sandbox", 2, 4, R, [h.overlay("dev-sandbox", ub, 20)], [NAT], "transient developer sandbox", transient=True
    )
    h.vm(
        "prometheus-01",
        4,
        8,
        R,
        [h.overlay("prometheus-01", rh, 20), h.image("prometheus-01-tsdb.qcow2", 100, 6400)],
        [BR0],
        "Prometheus monitoring",
    )
    h.vm("grafana-01", 2, 4, R, [h.overlay("grafana-01", rh, 20)], [BR0], "Grafana dashboards")
    for i in (1, 2):
        h.vm(f"dns-{i:02d}", 1, 1, R, [h.overlay(f"dns-{i:02d}", rh, 20)], [BR0], f"BIND resolver {i}")
    h.vm("bastion-01", 1, 2, R, [h.overlay("bastion-01", rh, 20)], [BR0, NAT, ISO], "SSH bastion")
    legacy = h.image("legacy-erp.img", 40, 14200, fmt="raw", bus="ide")
    h.vm(
        "legacy-erp",
        2,
        4,
        S,
        [legacy, Host.iso("rhel-9.3-x86_64-dvd.iso", bus="ide")],
        [("bridge", "br0", "e1000")],
        "legacy ERP on an i440fx machine with IDE disks",
        machine="pc-i440fx-7.2",
        snapshots=[
            SnapshotSpec("installed", T0 - 200 * 86_400, "shutoff"),
            SnapshotSpec("sp1", T0 - 120 * 86_400, "shutoff", parent="installed"),
            SnapshotSpec("sp2", T0 - 30 * 86_400, "shutoff", parent="sp1", current=True),
        ],
    )
    h.vm(
        "nas-gw",
        2,
        4,
        R,
        [
            h.overlay("nas-gw", rh, 20),
            DiskSpec(
                "",
                f"{ISCSI_IQN}/3",
                kind="network",
                protocol="iscsi",
                hosts=[(ISCSI_PORTAL, 3260)],
                format="raw",
                cache="none",
            ),
        ],
        [BR0],
        "NFS gateway, iSCSI LUN 3 through QEMU's own initiator",
    )
    h.vm(
        "pxe-installer",
        2,
        2,
        S,
        [
            DiskSpec("", f"{IMAGES}/pxe-installer.qcow2", format="qcow2", boot_order=2),
            Host.iso("rhel-9.3-x86_64-dvd.iso", boot=1),
        ],
        [NAT],
        "installs new golden images from the DVD",
    )
    h.default_pool.volumes.append(VolumeSpec("pxe-installer.qcow2", 20 * GiB, 196 * MiB, "qcow2"))
    h.vm(
        "log-archive",
        2,
        8,
        R,
        [
            h.overlay("log-archive", rh, 20),
            h.lv("log-archive-data", 60),
            Host.san("/dev/disk/by-id/wwn-0x5000c500b2c3d4e5", "ZB2C3D4E", bus="virtio"),
        ],
        [BR0],
        "log archive on a local SAS disk",
    )
    return h


BUILDERS = (build_kvm01, build_kvm02, build_kvm03)


def build_demo(seed: int = DEFAULT_SEED) -> list[NodeSpec]:
    """Return the demo hosts' specs."""
    return [builder(seed).node() for builder in BUILDERS]


def write_demo(out_dir: Path = DEFAULT_OUT, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write ``<out_dir>/<host>.xml`` for every demo host and return the paths."""
    return [write_node(spec, out_dir / f"{spec.hostname}.xml") for spec in build_demo(seed)]


# ---------------------------------------------------------------------------------------------
# verification against the real test driver


_STATE_NAMES = {1: "running", 2: "blocked", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed", 7: "pmsuspended"}


def verify(path: Path, spec: NodeSpec) -> dict[str, Any]:
    """Load ``path`` with libvirt's test driver, check it against ``spec``, return counts."""
    import xml.etree.ElementTree as ET

    import libvirt

    conn = libvirt.open(f"test://{path.resolve()}")
    try:
        expected = {d.name: d for d in spec.domains}
        domains = conn.listAllDomains()
        assert {d.name() for d in domains} == set(expected), f"{path}: domain names differ"
        volumes: dict[str, str] = {}
        pool_vols: set[tuple[str, str]] = set()
        for pool in conn.listAllStoragePools():
            for vol in pool.listAllVolumes():
                volumes[vol.path()] = f"{pool.name()}/{vol.name()}"
                pool_vols.add((pool.name(), vol.name()))
        states: Counter[str] = Counter()
        disks: Counter[str] = Counter()
        correlated = uncorrelated = snapshots = transient = 0
        for dom in domains:
            want = expected[dom.name()]
            state = dom.state()[0]
            assert state == int(want.state), f"{dom.name()}: state {state} != {want.state}"
            assert dom.isPersistent() == (not want.transient), f"{dom.name()}: persistence"
            transient += 0 if dom.isPersistent() else 1
            states[_STATE_NAMES[state]] += 1
            snaps = dom.listAllSnapshots()
            assert len(snaps) == len(want.snapshots), f"{dom.name()}: snapshots"
            snapshots += len(snaps)
            root = ET.fromstring(dom.XMLDesc())  # noqa: S314 - XML from libvirt itself
            for disk in root.findall("./devices/disk"):
                kind, device = disk.get("type", ""), disk.get("device", "")
                disks[f"{kind}/{device}"] += 1
                src = disk.find("source")
                assert src is not None
                if kind == "volume":
                    ok = (src.get("pool"), src.get("volume")) in pool_vols
                elif kind in ("file", "block"):
                    ok = (src.get("file") or src.get("dev") or "") in volumes
                else:
                    ok = False
                if ok:
                    correlated += 1
                else:
                    uncorrelated += 1
                if disk.find("backingStore/source") is not None:
                    disks["with backingStore"] += 1
                if disk.find("shareable") is not None:
                    disks["shareable"] += 1
        pools = {p.name(): len(p.listAllVolumes()) for p in conn.listAllStoragePools()}
        for pool in conn.listAllStoragePools():
            cap, alloc, avail = pool.info()[1:]
            assert alloc + avail == cap, f"{pool.name()}: allocation overflows the pool"
        return {
            "vms": len(domains),
            "states": dict(states),
            "transient": transient,
            "snapshots": snapshots,
            "disks": dict(disks),
            "disks_with_volume": correlated,
            "disks_without_volume": uncorrelated,
            "pools": pools,
            "networks": sorted(n.name() for n in conn.listAllNetworks()),
            "interfaces": sorted(conn.listInterfaces()),
        }
    finally:
        conn.close()


# --- Hyper-V: captured discovery outputs (demo/hyperv/hv01.json, hv02.json) ---------------------------

DEFAULT_HYPERV_OUT = PROJECT_ROOT / "demo" / "hyperv"
_HV_EPOCH = 1_733_000_000  # the captures' "now" (2024-11-30), so the files depend only on the seed


@dataclass
class HvDisk:
    """One Get-VMHardDiskDrive row: a VHD(X) (with its parent chain) or a pass-through disk."""

    path: str = ""
    size_gib: int = 40
    used_gib: float = 10.0
    vhd_type: str = "Dynamic"  # Fixed, Dynamic, Differencing
    chain: list[str] = field(default_factory=list)  # parent first
    disk_number: int | None = None
    passthrough_text: str = ""
    controller: str = "SCSI"
    number: int = 0
    location: int = 0


@dataclass
class HvVm:
    name: str
    state: str = "Running"
    generation: int = 2
    version: str = "9.0"
    cpus: int = 2
    memory_gib: float = 4
    dynamic: bool = False
    clustered: bool = False
    notes: str = ""
    disks: list[HvDisk] = field(default_factory=list)
    dvd: str | None = None  # an ISO path, "" for an empty drive, None for no drive
    nics: list[tuple[str, list[str]]] = field(default_factory=list)  # (switch, IPs when running)
    checkpoints: list[str] = field(default_factory=list)  # oldest first; the VM runs on the last one
    heartbeat: str = "OkApplicationsHealthy"
    uptime_hours: float = 0
    start_action: str = "StartIfRunning"
    no_os: bool = False


def _hv_vms_hv01() -> list[HvVm]:
    csv = "C:\\ClusterStorage\\Volume1\\Hyper-V"
    d = "D:\\Hyper-V"
    prod, backup, mgmt = "vSwitch-Prod", "vSwitch-Backup", "vSwitch-Mgmt"
    return [
        HvVm(
            "dc01",
            cpus=2,
            memory_gib=4,
            clustered=True,
            notes="AD DS / DNS, corp.example.com",
            disks=[HvDisk(f"{csv}\\dc01\\dc01.vhdx", 60, 18)],
            nics=[(prod, ["10.20.1.10"])],
            uptime_hours=2210,
        ),
        HvVm(
            "exch01",
            cpus=8,
            memory_gib=32,
            clustered=True,
            notes="Exchange 2019 CU14",
            disks=[
                HvDisk(f"{csv}\\exch01\\exch01_OS.vhdx", 120, 41),
                HvDisk(f"{csv}\\exch01\\exch01_DB01.vhdx", 800, 800, "Fixed", location=1),
                HvDisk(f"{csv}\\exch01\\exch01_LOG01.vhdx", 200, 200, "Fixed", location=2),
            ],
            nics=[(prod, ["10.20.1.21"]), (backup, ["10.99.1.21"])],
            uptime_hours=1490,
        ),
        HvVm(
            "sql01",
            cpus=8,
            memory_gib=16,
            dynamic=True,
            clustered=True,
            notes="SQL Server 2019 - owner DBA team",
            disks=[
                HvDisk(f"{csv}\\sql01\\sql01_OS.vhdx", 127, 38),
                HvDisk(f"{csv}\\sql01\\sql01_DATA.vhdx", 500, 500, "Fixed", location=1),
            ],
            nics=[(prod, ["10.20.1.31", "fe80::8d4:1c2e:9a3b:7f10"]), (backup, ["10.99.1.31"])],
            checkpoints=["before-CU16", "before-CU18"],
            uptime_hours=365,
        ),
        HvVm(
            "file01",
            generation=1,
            version="8.0",
            cpus=2,
            memory_gib=8,
            notes="Gen 1, data on a SAN LUN (pass-through)",
            disks=[
                HvDisk(f"{d}\\file01\\file01.vhd", 60, 22, controller="IDE"),
                HvDisk(disk_number=4, passthrough_text="Disk 4 2.00 TB Bus 0 Lun 4 Target 0", location=0),
            ],
            dvd="D:\\ISO\\SW_DVD9_Win_Server_STD_CORE_2019_1809.iso",
            nics=[(prod, ["10.20.1.40"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=986,
            start_action="Start",
        ),
        HvVm(
            "app01",
            cpus=4,
            memory_gib=8,
            dynamic=True,
            notes="ERP application server",
            disks=[HvDisk(f"{d}\\app01\\app01.vhdx", 80, 31)],
            nics=[(prod, ["10.20.2.11"])],
            checkpoints=["pre-release-4.2"],
            uptime_hours=72,
        ),
        HvVm(
            "app02",
            state="Off",
            cpus=4,
            memory_gib=8,
            dynamic=True,
            notes="ERP application server (standby)",
            disks=[HvDisk(f"{d}\\app02\\app02.vhdx", 80, 29)],
            nics=[(prod, ["10.20.2.12"])],
        ),
        HvVm(
            "web01",
            cpus=2,
            memory_gib=4,
            clustered=True,
            disks=[
                HvDisk(f"{csv}\\web01\\web01.vhdx", 60, 3, "Differencing", [f"{csv}\\Golden\\ws2019-web-golden.vhdx"])
            ],
            nics=[(prod, ["10.20.3.11"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=400,
        ),
        HvVm(
            "web02",
            cpus=2,
            memory_gib=4,
            clustered=True,
            disks=[
                HvDisk(f"{csv}\\web02\\web02.vhdx", 60, 3.4, "Differencing", [f"{csv}\\Golden\\ws2019-web-golden.vhdx"])
            ],
            nics=[(prod, ["10.20.3.12"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=400,
        ),
        HvVm(
            "pxe-deploy",
            state="Off",
            cpus=1,
            memory_gib=2,
            notes="empty VM for PXE deployment tests (no OS)",
            disks=[HvDisk(f"{d}\\pxe-deploy\\pxe-deploy.vhdx", 40, 0.004)],
            nics=[(prod, [])],
            no_os=True,
            start_action="Nothing",
        ),
        HvVm(
            "legacy-nt",
            state="Saved",
            generation=1,
            version="5.0",
            cpus=1,
            memory_gib=2,
            notes="saved before the host move; do not start without the app owner",
            disks=[HvDisk(f"{d}\\legacy-nt\\legacy-nt.vhd", 30, 30, "Fixed", controller="IDE")],
            nics=[(prod, [])],
        ),
        HvVm(
            "test-paused",
            state="Paused",
            cpus=2,
            memory_gib=4,
            disks=[HvDisk(f"{d}\\test-paused\\test-paused.vhdx", 40, 12)],
            nics=[(prod, ["10.20.9.5"])],
            uptime_hours=5,
        ),
        HvVm(
            "backup-proxy",
            cpus=4,
            memory_gib=8,
            notes="Veeam proxy",
            disks=[HvDisk(f"{d}\\backup-proxy\\backup-proxy.vhdx", 80, 25)],
            nics=[(prod, ["10.20.1.60"]), (backup, ["10.99.1.60"]), (mgmt, ["10.250.0.60"])],
            uptime_hours=720,
        ),
        HvVm(
            "print01",
            state="Off",
            generation=1,
            version="8.0",
            cpus=1,
            memory_gib=2,
            disks=[HvDisk(f"{d}\\print01\\print01.vhdx", 40, 14, controller="IDE")],
            nics=[(prod, [])],
            dvd="",
        ),
    ]


def _hv_vms_hv02() -> list[HvVm]:
    csv = "C:\\ClusterStorage\\Volume2\\VMs"
    e = "E:\\Hyper-V"
    team, storage = "SET-Team", "vSwitch-Storage"
    golden = f"{csv}\\Golden\\ubuntu-22.04-golden.vhdx"
    vms = [
        HvVm(
            f"k8s-master-0{i}",
            cpus=4,
            memory_gib=8,
            version="10.0",
            clustered=True,
            disks=[HvDisk(f"{csv}\\k8s-master-0{i}\\k8s-master-0{i}.vhdx", 64, 3 + i, "Differencing", [golden])],
            nics=[(team, [f"192.168.40.{10 + i}"]), (storage, [f"192.168.50.{10 + i}"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=300 + i,
        )
        for i in (1, 2, 3)
    ]
    vms += [
        HvVm(
            f"k8s-worker-0{i}",
            cpus=8,
            memory_gib=16,
            version="10.0",
            clustered=True,
            disks=[
                HvDisk(f"{csv}\\k8s-worker-0{i}\\k8s-worker-0{i}.vhdx", 128, 9 + i, "Differencing", [golden]),
                HvDisk(f"{csv}\\k8s-worker-0{i}\\k8s-worker-0{i}-containers.vhdx", 200, 40 + i, location=1),
            ],
            nics=[(team, [f"192.168.40.{20 + i}"]), (storage, [f"192.168.50.{20 + i}"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=299,
        )
        for i in (1, 2, 3, 4)
    ]
    vms += [
        HvVm(
            "ci-runner",
            cpus=8,
            memory_gib=16,
            version="10.0",
            notes="GitLab runner",
            disks=[HvDisk(f"{e}\\ci-runner\\ci-runner.vhdx", 200, 66)],
            nics=[(team, ["192.168.41.30"])],
            checkpoints=["pre-upgrade-16.5", "pre-upgrade-17.0"],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=18,
        ),
        HvVm(
            "win11-vdi-01",
            state="Off",
            cpus=4,
            memory_gib=8,
            dynamic=True,
            version="10.0",
            disks=[HvDisk(f"{e}\\win11-vdi-01\\win11-vdi-01.vhdx", 127, 24)],
            nics=[(team, [])],
        ),
        HvVm(
            "blank-lab",
            state="Off",
            cpus=2,
            memory_gib=2,
            version="10.0",
            notes="no guest OS yet",
            disks=[HvDisk(f"{e}\\blank-lab\\blank-lab.vhdx", 60, 0.004)],
            dvd="",
            nics=[(team, [])],
            no_os=True,
            start_action="Nothing",
        ),
        HvVm(
            "db-analytics",
            cpus=16,
            memory_gib=64,
            version="10.0",
            notes="PostgreSQL, data on a dedicated LUN",
            disks=[
                HvDisk(f"{e}\\db-analytics\\db-analytics.vhdx", 80, 21),
                HvDisk(disk_number=5, passthrough_text="Disk 5 4.00 TB Bus 0 Lun 5 Target 0", location=1),
            ],
            nics=[(team, ["192.168.41.40"]), (storage, ["192.168.50.40"])],
            uptime_hours=1200,
        ),
        HvVm(
            "jump01",
            state="Saved",
            cpus=2,
            memory_gib=4,
            version="10.0",
            disks=[HvDisk(f"{e}\\jump01\\jump01.vhdx", 60, 19)],
            nics=[(team, [])],
        ),
        HvVm(
            "appliance-fw",
            generation=1,
            version="9.0",
            cpus=2,
            memory_gib=2,
            notes="vendor firewall appliance (Gen 1)",
            disks=[HvDisk(f"{e}\\appliance-fw\\appliance-fw.vhd", 16, 16, "Fixed", controller="IDE")],
            nics=[(team, ["192.168.40.1"]), ("vSwitch-DMZ", ["203.0.113.10"])],
            heartbeat="OkApplicationsUnknown",
            uptime_hours=4000,
            start_action="Start",
        ),
        HvVm(
            "monitoring",
            cpus=4,
            memory_gib=8,
            dynamic=True,
            version="10.0",
            clustered=True,
            disks=[HvDisk(f"{csv}\\monitoring\\monitoring.vhdx", 100, 37)],
            nics=[(team, ["192.168.40.50"])],
            uptime_hours=720,
        ),
    ]
    return vms


def _hv_vm_document(
    host_tag: str, index: int, vm: HvVm, seed: int, ms_dates: bool, timespan_objects: bool
) -> dict[str, Any]:
    vm_id = stable_uuid(seed, host_tag, vm.name)
    running = vm.state in ("Running", "Paused")

    def date(when: int) -> str:
        if ms_dates:
            return f"/Date({when * 1000})/"
        return dt.datetime.fromtimestamp(when, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")

    def uptime(hours: float) -> object:
        seconds = int(hours * 3600) if running else 0
        if not timespan_objects:
            days, rest = divmod(seconds, 86400)
            return f"{days}.{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        return {
            "Ticks": seconds * 10_000_000,
            "Days": seconds // 86400,
            "Hours": seconds % 86400 // 3600,
            "Milliseconds": 0,
            "Minutes": seconds % 3600 // 60,
            "Seconds": seconds % 60,
            "TotalDays": seconds / 86400,
            "TotalHours": seconds / 3600,
            "TotalMilliseconds": seconds * 1000.0,
            "TotalMinutes": seconds / 60,
            "TotalSeconds": float(seconds),
        }

    drives: list[dict[str, Any]] = []
    snapshots: list[dict[str, Any]] = []
    snapshot_disks: list[list[str]] = [[] for _ in vm.checkpoints]
    for disk in vm.disks:
        if disk.disk_number is not None:
            drives.append(
                {
                    "ControllerType": disk.controller,
                    "ControllerNumber": disk.number,
                    "ControllerLocation": disk.location,
                    "Path": disk.passthrough_text,
                    "DiskNumber": disk.disk_number,
                    "Vhd": None,
                }
            )
            continue
        chain = list(disk.chain)  # parents of disk.path, parent first
        path = disk.path
        # each checkpoint turned the disk in use into the parent of a new .avhdx
        for n, _ in enumerate(vm.checkpoints):
            snapshot_disks[n].append(path)
            chain.insert(0, path)
            folder, _, file_name = disk.path.rpartition("\\")
            stem, _, ext = file_name.rpartition(".")
            guid = stable_uuid(seed, host_tag, vm.name, path, n).upper()
            path = f"{folder}\\{stem}_{guid}.{'avhdx' if ext == 'vhdx' else 'avhd'}"
        vhd_type = "Differencing" if chain else disk.vhd_type
        size = disk.size_gib * GiB
        used = int(disk.used_gib * GiB) if not vm.checkpoints else int(0.35 * GiB) + disk.number * MiB
        if vhd_type == "Fixed":
            used = size + 4 * MiB
        drives.append(
            {
                "ControllerType": disk.controller,
                "ControllerNumber": disk.number,
                "ControllerLocation": disk.location,
                "Path": path,
                "DiskNumber": None,
                "Vhd": {
                    "VhdFormat": "VHDX" if path.lower().endswith(("vhdx", "avhdx")) else "VHD",
                    "VhdType": vhd_type,
                    "ParentPath": chain[0] if chain else "",
                    "Size": size,
                    "FileSize": used,
                    "Chain": chain,
                },
            }
        )
    for n, name in enumerate(vm.checkpoints):
        snapshots.append(
            {
                "Name": name,
                "Id": stable_uuid(seed, host_tag, vm.name, "checkpoint", name),
                "CreationTime": date(_HV_EPOCH - (len(vm.checkpoints) - n) * 9 * 86400 - index * 3600),
                "ParentSnapshotName": vm.checkpoints[n - 1] if n else None,
                "SnapshotType": "Standard",
                "Notes": "before patching" if n else "",
                "HardDrives": snapshot_disks[n],
            }
        )
    dvds = []
    if vm.dvd is not None:
        ide = vm.generation == 1
        dvds.append(
            {
                "ControllerType": "IDE" if ide else "SCSI",
                "ControllerNumber": 1 if ide else 0,
                "ControllerLocation": 0 if ide else len(vm.disks),
                "Path": vm.dvd or None,
            }
        )
    nics = []
    for n, (switch, ips) in enumerate(vm.nics):
        mac = "000000000000" if vm.no_os else f"00155D{host_tag[-2:]}{index:02X}{n:02X}"
        nics.append(
            {
                "Name": "Network Adapter" if n == 0 else f"Network Adapter {n + 1}",
                "MacAddress": mac,
                "SwitchName": switch,
                "DynamicMacAddressEnabled": True,
                "IPAddresses": ips if vm.state == "Running" else [],
            }
        )
    memory = int(vm.memory_gib * GiB)
    return {
        "Name": vm.name,
        "Id": vm_id,
        "State": vm.state,
        "Status": "Operating normally",
        "Generation": vm.generation,
        "Version": vm.version,
        "ProcessorCount": vm.cpus,
        "MemoryAssigned": (memory * 3 // 4 if vm.dynamic else memory) if running else 0,
        "MemoryStartup": memory,
        "MemoryMinimum": 512 * MiB if vm.dynamic else memory,
        "MemoryMaximum": memory * 2 if vm.dynamic else memory,
        "DynamicMemoryEnabled": vm.dynamic,
        "Uptime": uptime(vm.uptime_hours),
        "Heartbeat": vm.heartbeat if vm.state == "Running" and not vm.no_os else "",
        "IsClustered": vm.clustered,
        "Notes": vm.notes,
        "Path": drives[0]["Path"].rsplit("\\", 1)[0] if drives and drives[0]["DiskNumber"] is None else "",
        "ParentSnapshotName": vm.checkpoints[-1] if vm.checkpoints else None,
        "AutomaticStartAction": vm.start_action,
        "HardDrives": drives,
        "DvdDrives": dvds,
        "Snapshots": snapshots,
        "NetworkAdapters": nics,
    }


def build_hyperv_demo(seed: int = DEFAULT_SEED) -> dict[str, tuple[dict[str, Any], bool]]:
    """The two demo Hyper-V servers as DISCOVERY_SCRIPT documents: name -> (document, PowerShell 5.1 style)."""
    hosts: dict[str, tuple[dict[str, Any], bool]] = {}
    specs = [
        (
            "hv01",
            _hv_vms_hv01(),
            True,
            {
                "ComputerName": "HV01",
                "FullyQualifiedDomainName": "HV01.corp.example.com",
                "LogicalProcessorCount": 48,
                "MemoryCapacity": 384 * GiB,
                "VirtualHardDiskPath": "C:\\ClusterStorage\\Volume1\\Hyper-V",
                "VirtualMachinePath": "C:\\ClusterStorage\\Volume1\\Hyper-V",
                "OSCaption": "Microsoft Windows Server 2019 Datacenter",
                "OSVersion": "10.0.17763",
                "OSBuildNumber": "17763",
                "EnvironmentOSVersion": "10.0.17763.0",
            },
            [
                ("C:\\", "", "NTFS", 240, 171),
                ("C:\\ClusterStorage\\Volume1\\", "CSV-SSD01", "CSVFS", 4096, 1730),
                ("D:\\", "VMSTORE", "ReFS", 2048, 1310),
            ],
        ),
        (
            "hv02",
            _hv_vms_hv02(),
            False,
            {
                "ComputerName": "HV02",
                "FullyQualifiedDomainName": "HV02.corp.example.com",
                "LogicalProcessorCount": 64,
                "MemoryCapacity": 512 * GiB,
                "VirtualHardDiskPath": "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks",
                "VirtualMachinePath": "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V",
                "OSCaption": "Microsoft Windows Server 2022 Datacenter",
                "OSVersion": "10.0.20348",
                "OSBuildNumber": "20348",
                "EnvironmentOSVersion": "10.0.20348.0",
            },
            [
                ("C:\\", "", "NTFS", 240, 185),
                ("C:\\ClusterStorage\\Volume2\\", "CSV-NVME02", "CSVFS", 8192, 5120),
                ("E:\\", "DATA", "ReFS", 4096, 2980),
            ],
        ),
    ]
    for tag, vms, ps51, host, volumes in specs:
        document = {
            "Host": host,
            "Volumes": [
                {
                    "Name": name,
                    "Label": label,
                    "FileSystem": fs,
                    "Capacity": cap * GiB,
                    "FreeSpace": free * GiB,
                    "DeviceID": f"\\\\?\\Volume{{{stable_uuid(seed, tag, 'volume', name)}}}\\",
                }
                for name, label, fs, cap, free in volumes
            ],
            "VMs": [_hv_vm_document(tag, i + 1, vm, seed, ps51, ps51) for i, vm in enumerate(vms)],
        }
        hosts[tag] = (document, ps51)
    return hosts


def write_hyperv_demo(out: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write demo/hyperv/hvNN.json as ConvertTo-Json prints them; check each with the driver's parser."""
    from inventory.drivers.hyperv import parse_discovery

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for tag, (document, ps51) in build_hyperv_demo(seed).items():
        if ps51:  # Windows PowerShell 5.1: indented, "\/Date(…)\/"
            text = json.dumps(document, indent=4).replace("/Date(", "\\/Date(").replace(")/", ")\\/")
        else:  # PowerShell 7 with -Compress
            text = json.dumps(document, separators=(",", ":"))
        path = out / f"{tag}.json"
        path.write_text(text + "\n")
        snapshot = parse_discovery(text)
        states = Counter(vm.state for vm in snapshot.vms)
        print(f"wrote {path}: {len(snapshot.vms)} VMs {dict(states)}")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the demo node files, verify each with libvirt, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-verify", action="store_true", help="skip loading with libvirt")
    parser.add_argument("--hyperv-out", type=Path, default=DEFAULT_HYPERV_OUT)
    parser.add_argument("--hyperv-only", action="store_true", help="write only the Hyper-V captured outputs")
    args = parser.parse_args(argv)
    write_hyperv_demo(args.hyperv_out, args.seed)
    if args.hyperv_only:
        return 0
    specs = build_demo(args.seed)
    macs = [n.mac for s in specs for d in s.domains for n in d.nics]
    if len(macs) != len(set(macs)):
        raise SystemExit("duplicate MAC addresses in the demo; choose another seed")
    total: Counter[str] = Counter()
    for spec in specs:
        path = write_node(spec, args.out / f"{spec.hostname}.xml")
        print(f"wrote {path}")
        if args.no_verify:
            continue
        info = verify(path, spec)
        print(
            f"  {spec.hostname}: {info['vms']} VMs {info['states']}, "
            f"transient {info['transient']}, snapshots {info['snapshots']}"
        )
        print(f"  disks {info['disks']}")
        print(
            f"  disks matched to a pool volume {info['disks_with_volume']}, "
            f"not in any pool {info['disks_without_volume']}"
        )
        print(f"  pools {info['pools']}  networks {info['networks']}  interfaces {info['interfaces']}")
        total["vms"] += info["vms"]
        total.update({f"state:{k}": v for k, v in info["states"].items()})
        total.update({f"disk:{k}": v for k, v in info["disks"].items()})
        total["transient"] += info["transient"]
        total["snapshots"] += info["snapshots"]
        total["disks_with_volume"] += info["disks_with_volume"]
        total["disks_without_volume"] += info["disks_without_volume"]
    if not args.no_verify:
        print(f"total: {len(specs)} hosts, " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
