"""Node files built by ``vom.simulators.libvirt_node``, loaded by libvirt's real test driver.

Independent of Django: ``.venv/bin/python -m pytest tests/inventory/test_testnode.py -p no:django``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vom.simulators.libvirt_node import (
    TEST_POOL_CAPACITY,
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
    build_node_xml,
    read_node_identity,
    stable_mac,
    stable_uuid,
    write_node,
)

libvirt = pytest.importorskip("libvirt")

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = "/var/lib/libvirt/images/rhel9-golden.qcow2"
BASE = "/var/lib/libvirt/images/base.raw"
LUN = "/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-03.com.example:tgt-lun-1"
MPATH = "/dev/disk/by-id/dm-uuid-mpath-3600508b4000156d70001200000000011"
WWN_DISK = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
WEIRD = "a<b&\"c'"


def _dom(name: str, state: RunState = RunState.RUNNING, **kw: Any) -> DomainSpec:
    return DomainSpec(name=name, uuid=stable_uuid("t", name), memory_kib=2 * 1024 * 1024, vcpus=2, state=state, **kw)


def full_spec() -> NodeSpec:
    """A node with every kind of disk, every state, a transient guest and a snapshot chain."""
    disks = [
        DiskSpec(
            "vda",
            "/var/lib/libvirt/images/db-root.qcow2",
            format="qcow2",
            backing=BackingStoreSpec(GOLDEN, "qcow2", backing=BackingStoreSpec(BASE, "raw")),
        ),
        DiskSpec("sda", LUN, kind="block", device="lun", bus="scsi", format="raw", cache="none", shareable=True),
        DiskSpec(
            "sdb",
            MPATH,
            kind="block",
            bus="scsi",
            format="raw",
            cache="none",
            io="native",
            serial="PGDATA01",
            wwn="0x600508b400011011",
            shareable=True,
        ),
        DiskSpec("vdb", kind="volume", pool="default", volume="db-data.qcow2", format="qcow2"),
        DiskSpec(
            "vdc",
            "iqn.2010-03.com.example:tgt/2",
            kind="network",
            protocol="iscsi",
            hosts=[("10.0.0.5", 3260)],
            format="raw",
        ),
        DiskSpec("vdd", WWN_DISK, kind="block", format="raw"),
        DiskSpec("sdc", "/var/lib/libvirt/iso/rhel.iso", device="cdrom", bus="sata", format="raw", readonly=True),
        DiskSpec("hda", "/var/lib/libvirt/images/old.img", bus="ide", format="raw"),
    ]
    snaps = [
        SnapshotSpec("s1", 1_700_000_000, "running"),
        SnapshotSpec("s2", 1_700_000_500, "running", parent="s1", current=True, description="after <upgrade> & reboot"),
        SnapshotSpec("s1-branch", 1_700_000_900, "shutoff", parent="s1"),
    ]
    return NodeSpec(
        hostname="kvm99",
        host_uuid=stable_uuid("t", "host"),
        memory_kib=64 * 1024 * 1024,
        cpu_model="Intel Xeon Gold 6242R",
        cpu_sockets=2,
        cpu_cores=4,
        cpu_threads=2,
        cpu_mhz=2900,
        domains=[
            _dom(
                "db",
                RunState.RUNNING,
                disks=disks,
                snapshots=snaps,
                description="orders <primary> & more",
                nics=[
                    NicSpec("52:54:00:00:00:01", "br0", kind="bridge"),
                    NicSpec("52:54:00:00:00:02", "default", model="e1000e"),
                    NicSpec("52:54:00:00:00:03", "isolated"),
                ],
            ),
            _dom("paused", RunState.PAUSED),
            _dom("off", RunState.SHUTOFF, has_managed_save=True),
            _dom("transient", RunState.RUNNING, transient=True),
            _dom("transient-paused", RunState.PAUSED, transient=True),
            _dom(WEIRD, RunState.SHUTOFF, description=WEIRD),
        ],
        networks=[
            NetworkSpec(
                "default",
                stable_uuid("t", "default"),
                "virbr0",
                forward="nat",
                ip="192.168.122.1",
                dhcp_start="192.168.122.2",
                dhcp_end="192.168.122.254",
            ),
            NetworkSpec("br0", stable_uuid("t", "br0"), "br0", forward="bridge"),
            NetworkSpec("isolated", stable_uuid("t", "isolated"), "virbr1", forward=None, ip="10.99.0.1"),
        ],
        interfaces=[
            HostInterfaceSpec("eno1", "b8:ca:3a:00:00:01", ip="10.10.1.99", prefix=24),
            HostInterfaceSpec("br0", kind="bridge", ports=["eno2"]),
        ],
        pools=[
            PoolSpec(
                "default",
                stable_uuid("t", "pool"),
                "/var/lib/libvirt/images",
                volumes=[
                    VolumeSpec("rhel9-golden.qcow2", 20 * GiB, 3 * GiB, "qcow2"),
                    VolumeSpec(
                        "db-root.qcow2", 40 * GiB, 700 * MiB, "qcow2", backing_path=GOLDEN, backing_format="qcow2"
                    ),
                    VolumeSpec("db-data.qcow2", 200 * GiB, 8 * GiB, "qcow2"),
                ],
            ),
            PoolSpec(
                "vg_guests",
                stable_uuid("t", "vg"),
                "/dev/vg_guests",
                kind="logical",
                source_devices=[MPATH],
                source_name="vg_guests",
                source_format="lvm2",
                volumes=[VolumeSpec("app-data", 20 * GiB, 20 * GiB, path="/dev/vg_guests/app-data", kind="block")],
            ),
            PoolSpec(
                "iscsi-san",
                stable_uuid("t", "iscsi"),
                "/dev/disk/by-path",
                kind="iscsi",
                source_host="10.0.0.5",
                source_port=3260,
                source_devices=["iqn.2010-03.com.example:tgt"],
                volumes=[VolumeSpec("unit:0:0:1", 10 * GiB, 10 * GiB, path=LUN, kind="block")],
            ),
        ],
    )


@pytest.fixture(scope="module")
def node_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_node(full_spec(), tmp_path_factory.mktemp("node") / "kvm99.xml")


@pytest.fixture(scope="module")
def conn(node_path: Path) -> Iterator[Any]:
    connection = libvirt.open(f"test://{node_path}")
    yield connection
    connection.close()


def _disks(conn: Any, name: str) -> dict[str, ET.Element]:
    root = ET.fromstring(conn.lookupByName(name).XMLDesc())
    return {d.find("target").get("dev"): d for d in root.findall("./devices/disk")}


def test_node_facts(conn: Any, node_path: Path) -> None:
    model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
    assert (model, memory_mib, cpus, mhz) == ("Intel Xeon Gold 6242R", 64 * 1024, 16, 2900)
    assert (nodes, sockets, cores, threads) == (1, 2, 4, 2)
    computer = ET.fromstring(conn.nodeDeviceLookupByName("computer").XMLDesc())
    assert computer.findtext("capability/hardware/uuid") == stable_uuid("t", "host")
    assert read_node_identity(node_path) == ("kvm99", stable_uuid("t", "host"))


def test_states_and_persistence(conn: Any) -> None:
    got = {d.name(): (d.state()[0], bool(d.isPersistent())) for d in conn.listAllDomains()}
    assert got == {
        "db": (libvirt.VIR_DOMAIN_RUNNING, True),
        "paused": (libvirt.VIR_DOMAIN_PAUSED, True),
        "off": (libvirt.VIR_DOMAIN_SHUTOFF, True),
        "transient": (libvirt.VIR_DOMAIN_RUNNING, False),
        "transient-paused": (libvirt.VIR_DOMAIN_PAUSED, False),
        WEIRD: (libvirt.VIR_DOMAIN_SHUTOFF, True),
    }
    assert conn.lookupByName("off").hasManagedSaveImage() == 1
    assert conn.lookupByName("db").ID() > 0
    assert conn.lookupByName("off").ID() == -1


def test_snapshots(conn: Any) -> None:
    dom = conn.lookupByName("db")
    snaps = {s.getName(): s for s in dom.listAllSnapshots()}
    assert set(snaps) == {"s1", "s2", "s1-branch"}
    assert dom.snapshotCurrent().getName() == "s2"
    assert snaps["s2"].getParent().getName() == "s1"
    assert {c.getName() for c in snaps["s1"].listAllChildren()} == {"s2", "s1-branch"}
    xml = ET.fromstring(snaps["s2"].getXMLDesc())
    assert xml.findtext("description") == "after <upgrade> & reboot"
    assert xml.findtext("creationTime") == "1700000500"
    assert xml.findtext("state") == "running"
    assert conn.lookupByName("paused").listAllSnapshots() == []


def test_disks_of_every_kind(conn: Any) -> None:
    disks = _disks(conn, "db")
    assert set(disks) == {"vda", "sda", "sdb", "vdb", "vdc", "vdd", "sdc", "hda"}

    vda = disks["vda"]
    assert vda.find("source").get("file") == "/var/lib/libvirt/images/db-root.qcow2"
    assert vda.find("driver").get("type") == "qcow2"
    chain = [vda.find("backingStore/source").get("file"), vda.find("backingStore/backingStore/source").get("file")]
    assert chain == [GOLDEN, BASE]
    assert vda.find("backingStore/backingStore/format").get("type") == "raw"

    sda = disks["sda"]
    assert (sda.get("type"), sda.get("device")) == ("block", "lun")
    assert sda.find("source").get("dev") == LUN
    assert sda.find("target").get("bus") == "scsi"
    assert sda.find("driver").get("cache") == "none"
    assert sda.find("shareable") is not None

    sdb = disks["sdb"]
    assert sdb.find("source").get("dev") == MPATH
    assert sdb.findtext("serial") == "PGDATA01"
    assert sdb.findtext("wwn") == "0x600508b400011011"
    assert sdb.find("driver").get("io") == "native"

    vdb = disks["vdb"]
    assert vdb.get("type") == "volume"
    assert (vdb.find("source").get("pool"), vdb.find("source").get("volume")) == ("default", "db-data.qcow2")

    vdc = disks["vdc"]
    assert vdc.get("type") == "network"
    assert vdc.find("source").get("protocol") == "iscsi"
    assert vdc.find("source/host").attrib == {"name": "10.0.0.5", "port": "3260"}

    assert disks["vdd"].find("source").get("dev") == WWN_DISK
    cdrom = disks["sdc"]
    assert cdrom.get("device") == "cdrom" and cdrom.find("readonly") is not None
    assert disks["hda"].find("target").get("bus") == "ide"

    root = ET.fromstring(conn.lookupByName("db").XMLDesc())
    scsi = [c for c in root.findall("./devices/controller") if c.get("type") == "scsi"]
    assert [c.get("model") for c in scsi] == ["virtio-scsi"]
    assert root.findtext("description") == "orders <primary> & more"
    assert root.find("os/type").attrib == {"arch": "x86_64", "machine": "pc-q35-7.2"}
    assert root.find("memory").text == str(2 * 1024 * 1024)


def test_nics(conn: Any) -> None:
    root = ET.fromstring(conn.lookupByName("db").XMLDesc())
    nics = [
        (
            i.get("type"),
            i.find("mac").get("address"),
            i.find("source").get("network") or i.find("source").get("bridge"),
            i.find("model").get("type"),
        )
        for i in root.findall("./devices/interface")
    ]
    assert nics == [
        ("bridge", "52:54:00:00:00:01", "br0", "virtio"),
        ("network", "52:54:00:00:00:02", "default", "e1000e"),
        ("network", "52:54:00:00:00:03", "isolated", "virtio"),
    ]


def test_pools_volumes_and_correlation(conn: Any) -> None:
    pools = {p.name(): p for p in conn.listAllStoragePools()}
    types = {n: ET.fromstring(p.XMLDesc()).get("type") for n, p in pools.items()}
    assert types == {"default": "dir", "vg_guests": "logical", "iscsi-san": "iscsi"}
    for pool in pools.values():
        capacity, allocation, available = pool.info()[1:]
        assert capacity == TEST_POOL_CAPACITY and allocation + available == capacity

    root_vol = conn.storageVolLookupByPath("/var/lib/libvirt/images/db-root.qcow2")
    xml = ET.fromstring(root_vol.XMLDesc())
    assert xml.findtext("backingStore/path") == GOLDEN
    assert xml.find("backingStore/format").get("type") == "qcow2"
    assert root_vol.info()[1:] == [40 * GiB, 700 * MiB]

    # every file/block disk source of "db" except the unpooled ones is a volume path
    volume_paths = {v.path() for p in pools.values() for v in p.listAllVolumes()}
    sources = {
        (d.find("source").get("file") or d.find("source").get("dev"))
        for d in _disks(conn, "db").values()
        if d.get("type") in ("file", "block")
    }
    assert sources & volume_paths == {"/var/lib/libvirt/images/db-root.qcow2", LUN}
    assert conn.storageVolLookupByPath(LUN).name() == "unit:0:0:1"


def test_networks_and_interfaces(conn: Any) -> None:
    forwards = {}
    for net in conn.listAllNetworks():
        fwd = ET.fromstring(net.XMLDesc()).find("forward")
        forwards[net.name()] = None if fwd is None else fwd.get("mode")
    assert forwards == {"default": "nat", "br0": "bridge", "isolated": None}
    assert sorted(conn.listInterfaces()) == ["br0", "eno1"]


def test_special_characters_round_trip(conn: Any, node_path: Path) -> None:
    dom = conn.lookupByName(WEIRD)
    assert dom.name() == WEIRD
    root = ET.fromstring(dom.XMLDesc())
    assert root.findtext("name") == WEIRD
    assert root.findtext("description") == WEIRD
    # and the file itself parses back to the same name
    names = [d.findtext("name") for d in ET.parse(node_path).getroot().findall("domain")]
    assert WEIRD in names


def test_deterministic_bytes(tmp_path: Path) -> None:
    first, second = build_node_xml(full_spec()), build_node_xml(full_spec())
    assert first == second
    write_node(full_spec(), tmp_path / "a.xml")
    write_node(full_spec(), tmp_path / "b.xml")
    assert (tmp_path / "a.xml").read_bytes() == (tmp_path / "b.xml").read_bytes() == first
    assert build_node_xml(full_spec(), pretty=False) != first  # only whitespace differs
    assert stable_uuid(1, "x") == stable_uuid(1, "x") != stable_uuid(2, "x")
    assert stable_mac(1, "x") == stable_mac(1, "x")
    assert stable_mac(1, "x").startswith("52:54:00:")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda s: setattr(s.domains[1], "transient", True) or setattr(s.domains[1], "state", RunState.SHUTOFF),
            "transient",
        ),
        (lambda s: s.domains.append(_dom("db")), "duplicate domain name"),
        (lambda s: setattr(s.domains[0].snapshots[0], "current", True), "current snapshot"),
        (lambda s: s.pools[0].volumes.append(VolumeSpec("big", 200 * GiB, 99 * GiB)), "allocate"),
        (lambda s: setattr(s, "cpu_model", "x" * 40), "cpu model"),
    ],
)
def test_invalid_specs_are_refused(mutate: Any, message: str) -> None:
    spec = full_spec()
    mutate(spec)
    with pytest.raises(ValueError, match=message):
        build_node_xml(spec)


def _load_script(name: str, path: Path) -> ModuleType:
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    module_spec.loader.exec_module(module)
    return module


def test_committed_demo_matches_generator() -> None:
    make_demo = _load_script("vom_make_demo", ROOT / "scripts" / "make_demo.py")
    specs = make_demo.build_demo()
    assert [s.hostname for s in specs] == ["kvm01", "kvm02", "kvm03"]
    assert sum(len(s.domains) for s in specs) >= 60
    for spec in specs:
        path = ROOT / "demo" / "kvm" / f"{spec.hostname}.xml"
        assert path.read_bytes() == build_node_xml(spec), f"{path} is stale: rerun make_demo"
        info = make_demo.verify(path, spec)
        assert info["vms"] == len(spec.domains)


def test_bench_nodegen_small(tmp_path: Path) -> None:
    from bench.nodegen import generate

    paths = generate(tmp_path / "a", hosts=3, vms_per_host=4, seed=7)
    again = generate(tmp_path / "b", hosts=3, vms_per_host=4, seed=7)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    assert [p.name for p in paths] == ["bench-h0001.xml", "bench-h0002.xml", "bench-h0003.xml"]
    c = libvirt.open(f"test://{paths[1]}")
    try:
        domains = c.listAllDomains()
        assert len(domains) == 4
        pool = c.storagePoolLookupByName("default")
        volume_paths = {v.path() for v in pool.listAllVolumes()}
        for dom in domains:
            root = ET.fromstring(dom.XMLDesc())
            disks = root.findall("./devices/disk")
            assert [d.get("type") for d in disks] == ["file", "block"]
            assert disks[0].find("source").get("file") in volume_paths
            assert disks[1].find("source").get("dev").startswith("/dev/disk/by-id/")
            assert len(root.findall("./devices/interface")) == 1
        assert len(c.listAllNetworks()) == 1
    finally:
        c.close()


@pytest.mark.skipif(shutil.which("virsh") is None, reason="virsh not installed")
def test_virsh_baseline_small(tmp_path: Path) -> None:
    from bench.nodegen import generate
    from bench.virsh_baseline import time_virsh_way

    paths = generate(tmp_path, hosts=4, vms_per_host=2, seed=3)
    result = time_virsh_way(paths, sample_hosts=2)
    assert result["sample_hosts"] == 2
    assert result["sample_vms"] == 4
    assert result["sample_seconds"] > 0
    assert result["seconds_per_vm"] == pytest.approx(result["sample_seconds"] / 4)
    assert result["scaled_seconds_total"] == pytest.approx(result["sample_seconds"] * 2)
