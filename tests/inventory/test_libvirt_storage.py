"""Provisioning primitives of ``inventory.drivers.libvirt_storage``.

Most tests use libvirt's ``test:///`` driver with a node file written into ``tmp_path`` (each test
gets a private host). The ``integration`` tests use the real libvirtd (``qemu:///system``) with a
directory pool of real qcow2 files in a fresh directory, removed at the end even on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt_storage import (
    VIRTIO_BLK_MAX_DISKS,
    clone_volume,
    create_overlay_volume,
    define_vm_from_template,
    delete_volume,
    free_target,
    random_mac,
)
from inventory.testnode import (
    DiskSpec,
    DomainSpec,
    GiB,
    MiB,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    stable_mac,
    stable_uuid,
    write_node,
)

POOL_DIR = "/var/lib/vom-images"
GOLDEN = f"{POOL_DIR}/golden.qcow2"
TEMPLATE_UUID = stable_uuid("storage-test", "golden")
TEMPLATE_MACS = {stable_mac("storage-test", "nic0"), stable_mac("storage-test", "nic1")}


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[LibvirtDriver]:
    spec = NodeSpec(
        hostname="kvm-storage",
        host_uuid=stable_uuid("storage-test", "host"),
        pools=[
            PoolSpec(
                name="images",
                uuid=stable_uuid("storage-test", "pool"),
                target_path=POOL_DIR,
                volumes=[
                    VolumeSpec(name="golden.qcow2", capacity_bytes=3 * GiB, allocation_bytes=2 * GiB, format="qcow2")
                ],
            )
        ],
        domains=[
            DomainSpec(
                name="golden-vm",
                uuid=TEMPLATE_UUID,
                memory_kib=1024 * 1024,
                vcpus=2,
                state=RunState.SHUTOFF,
                disks=[
                    DiskSpec(target="vda", source=GOLDEN),
                    DiskSpec(target="vdb", source="/srv/data/golden-data.img", format="raw"),
                    DiskSpec(target="sda", source="/srv/iso/tools.iso", device="cdrom", bus="sata", format="raw"),
                ],
                nics=[
                    NicSpec(mac=stable_mac("storage-test", "nic0")),
                    NicSpec(mac=stable_mac("storage-test", "nic1"), kind="bridge", source="br0"),
                ],
            )
        ],
    )
    path = write_node(spec, tmp_path / "kvm-storage.xml")
    with LibvirtDriver(f"test://{path}") as drv:
        yield drv


def template_xml(drv: LibvirtDriver) -> str:
    return str(drv._connection().lookupByUUIDString(TEMPLATE_UUID).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def volume_root(drv: LibvirtDriver, name: str) -> ET.Element:
    vol = drv._connection().storagePoolLookupByName("images").storageVolLookupByName(name)
    return ET.fromstring(vol.XMLDesc(0))


# --- volumes on the test driver ---------------------------------------------------------------


def test_overlay_has_the_golden_image_as_backing_store(driver: LibvirtDriver) -> None:
    info = create_overlay_volume(driver, "images", "web-01.qcow2", GOLDEN)
    assert info.path == f"{POOL_DIR}/web-01.qcow2"
    assert info.format == "qcow2"
    assert info.capacity_bytes == 3 * GiB  # taken from the golden image
    assert (info.backing_store, info.backing_format) == (GOLDEN, "qcow2")
    root = volume_root(driver, "web-01.qcow2")
    assert root.findtext("backingStore/path") == GOLDEN
    assert root.find("backingStore/format").get("type") == "qcow2"  # type: ignore[union-attr]
    assert root.find("target/format").get("type") == "qcow2"  # type: ignore[union-attr]


def test_overlay_with_a_larger_capacity_and_an_awkward_name(driver: LibvirtDriver) -> None:
    info = create_overlay_volume(driver, "images", "a<b&c>.qcow2", GOLDEN, capacity_bytes=5 * GiB)
    assert (info.name, info.capacity_bytes) == ("a<b&c>.qcow2", 5 * GiB)
    assert volume_root(driver, "a<b&c>.qcow2").findtext("name") == "a<b&c>.qcow2"


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"name": "golden.qcow2"}, "volume 'golden.qcow2' already exists in pool 'images'"),
        ({"pool_name": "nope"}, "storage pool 'nope' not found"),
        ({"backing_path": "/elsewhere/base.qcow2"}, "is not a known volume: give the capacity"),
        ({"capacity_bytes": GiB}, "is smaller than the backing image"),
        ({"capacity_bytes": 0}, "capacity must be positive"),
        ({"name": "sub/dir.qcow2"}, "is not a valid file name"),
        ({"name": ""}, "volume name must not be empty"),
    ],
)
def test_overlay_refusals(driver: LibvirtDriver, kwargs: dict[str, Any], complaint: str) -> None:
    args: dict[str, Any] = {"pool_name": "images", "name": "child.qcow2", "backing_path": GOLDEN, **kwargs}
    with pytest.raises(DriverError) as exc:
        create_overlay_volume(driver, **args)
    assert complaint in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not exc.value.retryable


def test_overlay_of_an_unknown_image_with_a_capacity(driver: LibvirtDriver) -> None:
    info = create_overlay_volume(driver, "images", "c.qcow2", "/elsewhere/base.raw", "raw", capacity_bytes=GiB)
    assert (info.backing_store, info.backing_format, info.capacity_bytes) == ("/elsewhere/base.raw", "raw", GiB)


def test_libvirt_errors_become_one_line_driver_errors(driver: LibvirtDriver) -> None:
    with pytest.raises(DriverError) as exc:
        create_overlay_volume(driver, "images", "c.qcow2", GOLDEN, backing_format="no-such-format")
    assert str(exc.value).startswith("cannot create overlay volume 'c.qcow2' in pool 'images': ")
    assert "\n" not in str(exc.value)
    assert not exc.value.retryable


def test_clone_is_a_full_copy(driver: LibvirtDriver) -> None:
    info = clone_volume(driver, "images", GOLDEN, "full-01.qcow2")
    assert (info.path, info.format, info.capacity_bytes) == (f"{POOL_DIR}/full-01.qcow2", "qcow2", 3 * GiB)
    assert info.backing_store == ""
    assert volume_root(driver, "full-01.qcow2").find("backingStore") is None
    with pytest.raises(DriverError, match="already exists"):
        clone_volume(driver, "images", GOLDEN, "full-01.qcow2")
    with pytest.raises(DriverError, match=re.escape("source volume '/nope.qcow2' not found")):
        clone_volume(driver, "images", "/nope.qcow2", "full-02.qcow2")


def test_delete_volume(driver: LibvirtDriver) -> None:
    create_overlay_volume(driver, "images", "doomed.qcow2", GOLDEN)
    delete_volume(driver, "images", "doomed.qcow2")
    pool = driver._connection().storagePoolLookupByName("images")
    assert "doomed.qcow2" not in pool.listVolumes()
    with pytest.raises(DriverError, match=re.escape("volume 'doomed.qcow2' not found in pool 'images'")):
        delete_volume(driver, "images", "doomed.qcow2")
    delete_volume(driver, "images", "doomed.qcow2", missing_ok=True)


# --- VMs from a template on the test driver ------------------------------------------------------


def test_define_from_template_with_an_awkward_name(driver: LibvirtDriver) -> None:
    boot = create_overlay_volume(driver, "images", "web-01.qcow2", GOLDEN)
    name = "web <01> & co"
    new_uuid = define_vm_from_template(driver, template_xml(driver), name=name, boot_volume_path=boot.path)

    assert new_uuid != TEMPLATE_UUID
    uuid.UUID(new_uuid)
    dom = driver._connection().lookupByName(name)
    assert dom.UUIDString() == new_uuid
    assert dom.isPersistent() and not dom.isActive()
    root = ET.fromstring(dom.XMLDesc(0))
    assert root.findtext("name") == name
    macs = [m.get("address") for m in root.iter("mac")]
    assert len(macs) == 2 and len(set(macs)) == 2
    assert not set(macs) & TEMPLATE_MACS
    assert all(m is not None and m.startswith("52:54:00:") for m in macs)
    disks = root.findall("devices/disk")
    boot_disk = disks[0]
    assert boot_disk.find("source").get("file") == boot.path  # type: ignore[union-attr]
    assert boot_disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert boot_disk.find("target").get("dev") == "vda"  # type: ignore[union-attr]
    # The template's writable data disk is not shared with the copy; its CD-ROM stays.
    assert [d.find("target").get("dev") for d in disks] == ["vda", "sda"]  # type: ignore[union-attr]
    # The template is untouched.
    template = ET.fromstring(template_xml(driver))
    assert template.find("devices/disk/source").get("file") == GOLDEN  # type: ignore[union-attr]
    assert {m.get("address") for m in template.iter("mac")} == TEMPLATE_MACS


def test_define_with_vcpus_memory_and_network(driver: LibvirtDriver) -> None:
    new_uuid = define_vm_from_template(
        driver,
        template_xml(driver),
        name="db-01",
        boot_volume_path=f"{POOL_DIR}/db-01.img",
        boot_format="raw",
        vcpus=6,
        memory_bytes=4 * GiB,
        network="prod",
    )
    root = ET.fromstring(driver._connection().lookupByUUIDString(new_uuid).XMLDesc(0))
    assert root.findtext("vcpu") == "6"
    assert root.find("memory").get("unit") == "KiB" and root.findtext("memory") == str(4 * GiB // 1024)  # type: ignore[union-attr]
    assert root.find("devices/disk/driver").get("type") == "raw"  # type: ignore[union-attr]
    iface = root.find("devices/interface")
    assert iface is not None and iface.get("type") == "network"
    assert iface.find("source").get("network") == "prod"  # type: ignore[union-attr]


def test_define_with_a_bridge(driver: LibvirtDriver) -> None:
    new_uuid = define_vm_from_template(
        driver, template_xml(driver), name="app-01", boot_volume_path="/x.qcow2", bridge="br-prod"
    )
    iface = ET.fromstring(driver._connection().lookupByUUIDString(new_uuid).XMLDesc(0)).find("devices/interface")
    assert iface is not None and iface.get("type") == "bridge"
    assert iface.find("source").get("bridge") == "br-prod"  # type: ignore[union-attr]


def test_instance_bound_parts_are_not_copied(driver: LibvirtDriver) -> None:
    root = ET.fromstring(template_xml(driver))
    root.set("id", "7")
    sysinfo = ET.SubElement(root, "sysinfo", {"type": "smbios"})
    system = ET.SubElement(sysinfo, "system")
    ET.SubElement(system, "entry", {"name": "uuid"}).text = TEMPLATE_UUID
    ET.SubElement(system, "entry", {"name": "manufacturer"}).text = "ACME"
    boot = root.find("devices/disk")
    assert boot is not None
    ET.SubElement(boot, "serial").text = "GOLDEN-SERIAL"
    ET.SubElement(boot, "alias", {"name": "virtio-disk0"})
    new_uuid = define_vm_from_template(
        driver, ET.tostring(root, encoding="unicode"), name="copy", boot_volume_path="/c.qcow2"
    )
    copy = ET.fromstring(driver._connection().lookupByUUIDString(new_uuid).XMLDesc(0))
    assert copy.findtext("uuid") == new_uuid
    assert [e.get("name") for e in copy.iter("entry")] == ["manufacturer"]
    assert copy.find("devices/disk/serial") is None


def test_duplicate_names_are_refused(driver: LibvirtDriver) -> None:
    xml = template_xml(driver)
    with pytest.raises(DriverError, match="a VM named 'golden-vm' is already defined"):
        define_vm_from_template(driver, xml, name="golden-vm", boot_volume_path="/a.qcow2")
    define_vm_from_template(driver, xml, name="a<b&c", boot_volume_path="/a.qcow2")
    with pytest.raises(DriverError, match="a VM named 'a<b&c' is already defined"):
        define_vm_from_template(driver, xml, name="a<b&c", boot_volume_path="/b.qcow2")


@pytest.mark.parametrize(
    ("xml", "kwargs", "complaint"),
    [
        ("<domain", {}, "the template is not valid domain XML"),
        ("<network/>", {}, "the template is not domain XML (root element <network>)"),
        ("<domain type='test'><name>t</name><memory>1024</memory></domain>", {}, "no disk to boot from"),
        (None, {"name": ""}, "VM name must not be empty"),
        (None, {"network": "a", "bridge": "b"}, "not both"),
        (None, {"vcpus": 0}, "vCPUs must be at least 1"),
        (None, {"memory_bytes": 1000}, "memory must be at least 1 MiB"),
    ],
)
def test_define_refusals(driver: LibvirtDriver, xml: str | None, kwargs: dict[str, Any], complaint: str) -> None:
    args: dict[str, Any] = {"name": "new-vm", "boot_volume_path": "/a.qcow2", **kwargs}
    with pytest.raises(DriverError) as exc:
        define_vm_from_template(driver, xml if xml is not None else template_xml(driver), **args)
    assert complaint in str(exc.value)
    assert "new-vm" not in [d.name() for d in driver._connection().listAllDomains()]


def test_random_mac_is_local_and_avoids_given_addresses() -> None:
    mac = random_mac()
    assert mac.startswith("52:54:00:") and len(mac) == 17
    assert int(mac[:2], 16) & 0x02  # locally administered
    assert random_mac({mac}) != mac


# --- targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "bus", "expected"),
    [
        ([], "virtio", "vda"),
        (["vda", "vdb"], "virtio", "vdc"),
        (["vda", "vdc"], "virtio", "vdb"),
        (["vda", "sda"], "scsi", "sdb"),
        (["vda", "sda", "sdb"], "sata", "sdc"),
        (["VDA"], "virtio", "vdb"),
        ([f"sd{chr(c)}" for c in range(ord("a"), ord("z") + 1)], "scsi", "sdaa"),
        ([f"vd{chr(c)}" for c in range(ord("a"), ord("z") + 1)], "virtio", "vdaa"),
        (["hda", "hdb"], "ide", "hdc"),
    ],
)
def test_free_target(existing: list[str], bus: str, expected: str) -> None:
    assert free_target(existing, bus) == expected


def test_free_target_refuses_virtio_past_the_limit() -> None:
    existing = [free_target([], "virtio")]
    while len(existing) < VIRTIO_BLK_MAX_DISKS:
        existing.append(free_target(existing, "virtio"))
    assert existing[-1] == "vdab" and len(existing) == 28
    with pytest.raises(DriverError, match=r"already has 28 virtio disks.*scsi bus"):
        free_target(existing, "virtio")
    assert free_target(existing, "scsi") == "sda"  # virtio-scsi lifts the limit


def test_free_target_refusals() -> None:
    with pytest.raises(DriverError, match="unknown disk bus 'floppy'"):
        free_target([], "floppy")
    with pytest.raises(DriverError, match="no free target left on the ide bus"):
        free_target(["hda", "hdb", "hdc", "hdd"], "ide")


# --- the real libvirtd ----------------------------------------------------------------------------

QEMU_URI = "qemu:///system"
IMAGES = Path("/var/lib/libvirt/images")


def _qemu_reachable() -> bool:
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        return False
    try:
        libvirt.open(QEMU_URI).close()
    except libvirt.libvirtError:
        return False
    return True


def _pool_xml(name: str, path: Path) -> str:
    root = ET.Element("pool", {"type": "dir"})
    ET.SubElement(root, "name").text = name
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "path").text = str(path)
    return ET.tostring(root, encoding="unicode")


def _template_for_qemu(name: str) -> str:
    root = ET.Element("domain", {"type": "qemu"})
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory", {"unit": "MiB"}).text = "128"
    ET.SubElement(root, "vcpu").text = "1"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64"}).text = "hvm"
    devices = ET.SubElement(root, "devices")
    disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(disk, "driver", {"name": "qemu", "type": "qcow2"})
    ET.SubElement(disk, "source", {"file": "/nonexistent/golden.qcow2"})
    ET.SubElement(disk, "target", {"dev": "vda", "bus": "virtio"})
    iface = ET.SubElement(devices, "interface", {"type": "user"})
    ET.SubElement(iface, "mac", {"address": "52:54:00:aa:bb:cc"})
    return ET.tostring(root, encoding="unicode")


def _actual_size(path: str) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture
def qemu_pool() -> Iterator[tuple[LibvirtDriver, str, Path]]:
    if not _qemu_reachable():
        pytest.skip("no libvirtd at qemu:///system, or qemu-img/qemu-io missing")
    suffix = uuid.uuid4().hex[:10]
    name = f"vom-tests-{suffix}"
    path = IMAGES / name
    conn: Any = libvirt.open(QEMU_URI)
    drv = LibvirtDriver(QEMU_URI)
    pool: Any = None
    try:
        pool = conn.storagePoolDefineXML(_pool_xml(name, path), 0)
        pool.build(0)
        pool.create(0)
        yield drv, name, path
    finally:
        drv.close()
        for dom in conn.listAllDomains():
            if dom.name().startswith(f"{name}-"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        if pool is not None:
            if pool.isActive():
                pool.refresh(0)
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
                pool.destroy()
            pool.undefine()
        shutil.rmtree(path, ignore_errors=True)
        conn.close()
    assert not path.exists()


@pytest.mark.integration
def test_overlays_and_full_clone_on_a_real_directory_pool(qemu_pool: tuple[LibvirtDriver, str, Path]) -> None:
    drv, pool_name, path = qemu_pool
    golden = str(path / "golden.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", golden, "64M"], check=True)
    # Write 48 MiB of real data so a full copy has something to copy.
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 48M", golden], check=True, capture_output=True)
    drv._connection().storagePoolLookupByName(pool_name).refresh(0)

    children = [create_overlay_volume(drv, pool_name, f"child-{n}.qcow2", golden) for n in range(3)]
    for child in children:
        assert child.capacity_bytes == 64 * MiB
        assert (child.backing_store, child.backing_format) == (golden, "qcow2")
        out = subprocess.run(
            ["qemu-img", "info", "--output=json", "--backing-chain", child.path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        chain = json.loads(out)
        assert [layer["filename"] for layer in chain] == [child.path, golden]
        assert chain[0]["format"] == "qcow2"
        assert chain[0]["backing-filename"] == golden
        assert chain[0]["virtual-size"] == 64 * MiB

    full = clone_volume(drv, pool_name, golden, "full.qcow2")
    assert full.backing_store == ""
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", full.path], check=True, capture_output=True, text=True
        ).stdout
    )
    assert "backing-filename" not in info and info["virtual-size"] == 64 * MiB
    full_size = _actual_size(full.path)
    overlay_sizes = [_actual_size(c.path) for c in children]
    assert full_size >= 48 * MiB
    assert all(size * 20 < full_size for size in overlay_sizes), (full_size, overlay_sizes)

    # A VM defined from a template on the first child; then the child is cleaned up with it.
    vm_name = f"{pool_name}-vm<&>"
    vm_uuid = define_vm_from_template(
        drv, _template_for_qemu("template"), name=vm_name, boot_volume_path=children[0].path
    )
    dom = drv._connection().lookupByUUIDString(vm_uuid)
    root = ET.fromstring(dom.XMLDesc(0))
    assert root.findtext("name") == vm_name
    assert root.find("devices/disk/source").get("file") == children[0].path  # type: ignore[union-attr]
    assert root.find("devices/interface/mac").get("address") != "52:54:00:aa:bb:cc"  # type: ignore[union-attr]
    with pytest.raises(DriverError, match="already defined"):
        define_vm_from_template(drv, _template_for_qemu("template"), name=vm_name, boot_volume_path=children[1].path)
    dom.undefine()

    for child in children:
        delete_volume(drv, pool_name, child.name)
        assert not Path(child.path).exists()
    assert Path(golden).exists()
