"""Provisioning primitives of ``inventory.drivers.libvirt.storage``.

Most tests use libvirt's ``test:///`` driver with a node file written into ``tmp_path`` (each test
gets a private host). The ``integration`` tests use the real libvirtd (``qemu:///system``) with a
directory pool of real qcow2 files in a fresh directory, removed at the end even on failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
import pytest

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt.storage import (
    VIRTIO_BLK_MAX_DISKS,
    AttachResult,
    DiskUser,
    attach_disk,
    clone_volume,
    create_overlay_volume,
    create_volume,
    define_vm_from_template,
    delete_volume,
    detach_disk,
    domain_definition,
    domain_is_active,
    domains_using,
    free_target,
    random_mac,
    refresh_pool,
    resize_disk,
    resize_volume,
    volume_by_path,
)
from vom.simulators.libvirt_node import (
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
    return str(drv.connection().lookupByUUIDString(TEMPLATE_UUID).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def volume_root(drv: LibvirtDriver, name: str) -> ET.Element:
    vol = drv.connection().storagePoolLookupByName("images").storageVolLookupByName(name)
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
    pool = driver.connection().storagePoolLookupByName("images")
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
    dom = driver.connection().lookupByName(name)
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
    root = ET.fromstring(driver.connection().lookupByUUIDString(new_uuid).XMLDesc(0))
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
    iface = ET.fromstring(driver.connection().lookupByUUIDString(new_uuid).XMLDesc(0)).find("devices/interface")
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
    copy = ET.fromstring(driver.connection().lookupByUUIDString(new_uuid).XMLDesc(0))
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
    assert "new-vm" not in [d.name() for d in driver.connection().listAllDomains()]


def test_random_mac_is_local_and_avoids_given_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    mac = random_mac()
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", mac)  # QEMU's locally administered range
    from inventory.drivers.libvirt.storage import templates

    draws = iter([0, 0, 0, 0, 0, 1])  # the first address drawn is taken, the second is free
    monkeypatch.setattr(templates._rng, "randrange", lambda _n: next(draws))
    assert random_mac({"52:54:00:00:00:00"}) == "52:54:00:00:00:01"


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


# --- data disks on the test driver ------------------------------------------------------------------
#
# What libvirt 9.0's test driver does here (checked by experiment): defineXML of a running domain
# changes only its definition, and the live domain takes it at the next start; attachDeviceFlags and
# detachDeviceFlags (any flags), blockResize and virStorageVolResize raise VIR_ERR_NO_SUPPORT
# ("this function is not supported by the connection driver"); pool refresh and blockInfo work.

DISK_POOL = "/var/lib/vom-data"
APP = stable_uuid("disk-test", "app-01")  # running
DB = stable_uuid("disk-test", "db-01")  # shut off, a shareable raw disk
WEB = stable_uuid("disk-test", "web-01")  # running, a disk without shareable
FULL = stable_uuid("disk-test", "full-01")  # shut off, as many virtio disks as virtio-blk allows
SCSI = stable_uuid("disk-test", "scsi-01")  # running, a SCSI disk on a virtio-scsi controller
TRANSIENT = stable_uuid("disk-test", "tmp-01")  # running, no definition
SHARED = f"{DISK_POOL}/shared.raw"
USED = f"{DISK_POOL}/web-data.qcow2"
SPARE = f"{DISK_POOL}/spare.qcow2"


def _vm(name: str, vm_uuid: str, *disks: DiskSpec, state: RunState = RunState.RUNNING, **kw: Any) -> DomainSpec:
    return DomainSpec(name=name, uuid=vm_uuid, memory_kib=512 * 1024, vcpus=1, state=state, disks=list(disks), **kw)


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[LibvirtDriver]:
    full_disks = [DiskSpec(target=free_target([], "virtio"), source=f"{DISK_POOL}/full-0.qcow2")]
    while len(full_disks) < VIRTIO_BLK_MAX_DISKS:
        target = free_target([d.target for d in full_disks], "virtio")
        full_disks.append(DiskSpec(target=target, source=f"{DISK_POOL}/full-{len(full_disks)}.qcow2"))
    spec = NodeSpec(
        hostname="kvm-disks",
        host_uuid=stable_uuid("disk-test", "host"),
        pools=[
            PoolSpec(
                name="data",
                uuid=stable_uuid("disk-test", "pool"),
                target_path=DISK_POOL,
                volumes=[
                    VolumeSpec(name="app-boot.qcow2", capacity_bytes=4 * GiB, allocation_bytes=GiB, format="qcow2"),
                    VolumeSpec(name="db-boot.qcow2", capacity_bytes=4 * GiB, allocation_bytes=GiB, format="qcow2"),
                    VolumeSpec(name="shared.raw", capacity_bytes=2 * GiB, format="raw"),
                    VolumeSpec(name="web-data.qcow2", capacity_bytes=GiB, allocation_bytes=MiB, format="qcow2"),
                    VolumeSpec(name="spare.qcow2", capacity_bytes=GiB, allocation_bytes=0, format="qcow2"),
                ],
            )
        ],
        domains=[
            _vm("app-01", APP, DiskSpec(target="vda", source=f"{DISK_POOL}/app-boot.qcow2")),
            _vm(
                "db-01",
                DB,
                DiskSpec(target="vda", source=f"{DISK_POOL}/db-boot.qcow2"),
                DiskSpec(target="vdb", source=SHARED, format="raw", cache="none", shareable=True),
                state=RunState.SHUTOFF,
            ),
            _vm(
                "web-01",
                WEB,
                DiskSpec(target="vda", source="/srv/web-boot.qcow2"),
                DiskSpec(target="vdb", source=USED),
            ),
            _vm("full-01", FULL, *full_disks, state=RunState.SHUTOFF),
            _vm("scsi-01", SCSI, DiskSpec(target="sda", source="/srv/scsi-boot.qcow2", bus="scsi")),
            _vm("tmp-01", TRANSIENT, DiskSpec(target="vda", source="/srv/tmp-boot.qcow2"), transient=True),
        ],
    )
    path = write_node(spec, tmp_path / "kvm-disks.xml")
    with LibvirtDriver(f"test://{path}") as drv:
        yield drv


def live_root(drv: LibvirtDriver, vm_uuid: str) -> ET.Element:
    return ET.fromstring(drv.connection().lookupByUUIDString(vm_uuid).XMLDesc(0))


def config_root(drv: LibvirtDriver, vm_uuid: str) -> ET.Element:
    dom = drv.connection().lookupByUUIDString(vm_uuid)
    return ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))


def disk_of(root: ET.Element, target: str) -> ET.Element | None:
    return next((d for d in root.iter("disk") if d.find("target").get("dev") == target), None)  # type: ignore[union-attr]


def targets(root: ET.Element) -> list[str]:
    return [d.find("target").get("dev") for d in root.iter("disk")]  # type: ignore[misc,union-attr]


def scsi_controllers(root: ET.Element) -> list[dict[str, str]]:
    return [dict(c.attrib) for c in root.iter("controller") if c.get("type") == "scsi"]


def host_state(drv: LibvirtDriver) -> dict[str, tuple[str, str]]:
    """Every VM's live XML and definition: a refusal must leave all of them as they were."""
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
    return {d.UUIDString(): (d.XMLDesc(0), d.XMLDesc(flags)) for d in drv.connection().listAllDomains()}


def restart(drv: LibvirtDriver, vm_uuid: str) -> None:
    dom = drv.connection().lookupByUUIDString(vm_uuid)
    dom.destroy()
    dom.create()


def test_domain_definition_is_the_inactive_xml_without_secrets(disks: LibvirtDriver) -> None:
    root = config_root(disks, DB)
    ET.SubElement(root.find("devices"), "graphics", {"type": "vnc", "port": "-1", "passwd": "s3cret"})  # type: ignore[arg-type]
    disks.connection().defineXML(ET.tostring(root, encoding="unicode"))

    definition = ET.fromstring(domain_definition(disks, DB))
    assert definition.findtext("name") == "db-01"
    assert definition.find("devices/graphics") is not None
    assert definition.find("devices/graphics").get("passwd") is None  # type: ignore[union-attr]
    assert "s3cret" not in domain_definition(disks, DB)
    # A running VM's definition has no live-only parts (its id).
    assert ET.fromstring(domain_definition(disks, APP)).get("id") is None
    assert live_root(disks, APP).get("id") is not None


def test_domain_is_active(disks: LibvirtDriver) -> None:
    assert domain_is_active(disks, APP) is True
    assert domain_is_active(disks, DB) is False
    disks.connection().lookupByUUIDString(DB).create()
    assert domain_is_active(disks, DB) is True


@pytest.mark.parametrize("call", [domain_definition, domain_is_active])
def test_unknown_vms(disks: LibvirtDriver, call: Any) -> None:
    missing = stable_uuid("disk-test", "missing")
    with pytest.raises(DriverError, match=rf"^VM {missing} not found"):
        call(disks, missing)
    with pytest.raises(DriverError, match="invalid VM id 'db-01': not a UUID"):
        call(disks, "db-01")


# --- volumes ---


def test_volume_by_path(disks: LibvirtDriver) -> None:
    info = volume_by_path(disks, SHARED)
    assert info is not None
    assert (info.name, info.path, info.format, info.capacity_bytes) == ("shared.raw", SHARED, "raw", 2 * GiB)
    assert volume_by_path(disks, f"{DISK_POOL}/nothing.qcow2") is None
    with pytest.raises(DriverError, match="must not be empty"):
        volume_by_path(disks, "")


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_create_volume_is_empty_and_sparse(disks: LibvirtDriver, fmt: str) -> None:
    info = create_volume(disks, "data", f"new-<&>.{fmt}", 10 * GiB, fmt)
    assert info.name == f"new-<&>.{fmt}"
    assert info.path == f"{DISK_POOL}/new-<&>.{fmt}"
    assert (info.format, info.capacity_bytes, info.allocation_bytes) == (fmt, 10 * GiB, 0)
    assert info.backing_store == ""
    assert volume_by_path(disks, info.path) == info


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("data", "spare.qcow2", GiB), "volume 'spare.qcow2' already exists in pool 'data'"),
        (("data", "x.qcow2", 0), "capacity must be positive, not 0"),
        (("data", "x.qcow2", -GiB), "capacity must be positive"),
        (("data", "x.vmdk", GiB, "vmdk"), "volume format 'vmdk' is not supported: use qcow2 or raw"),
        (("nope", "x.qcow2", GiB), "storage pool 'nope' not found"),
        (("data", "../x.qcow2", GiB), "is not a valid file name"),
    ],
)
def test_create_volume_refusals(disks: LibvirtDriver, args: tuple[Any, ...], complaint: str) -> None:
    before = refresh_pool(disks, "data").volumes
    with pytest.raises(DriverError) as exc:
        create_volume(disks, *args)
    assert complaint in str(exc.value)
    assert "\n" not in str(exc.value)
    if args[0] == "data":
        assert refresh_pool(disks, "data").volumes == before


def test_refresh_pool_reads_capacity_and_volumes_fresh(disks: LibvirtDriver) -> None:
    pool = refresh_pool(disks, "data")
    assert (pool.name, pool.type, pool.target_path, pool.active) == ("data", "dir", DISK_POOL, True)
    assert pool.capacity_bytes == 100 * GiB  # the test driver's fixed pool size
    names = {v.name for v in pool.volumes}
    assert names == {"app-boot.qcow2", "db-boot.qcow2", "shared.raw", "web-data.qcow2", "spare.qcow2"}
    assert pool.allocation_bytes == sum(v.allocation_bytes for v in pool.volumes)
    assert pool.available_bytes == pool.capacity_bytes - pool.allocation_bytes

    create_volume(disks, "data", "later.raw", GiB, "raw")
    again = refresh_pool(disks, "data")
    assert {v.name for v in again.volumes} == names | {"later.raw"}
    with pytest.raises(DriverError, match="storage pool 'nope' not found"):
        refresh_pool(disks, "nope")


def test_resize_volume_refuses_to_shrink(disks: LibvirtDriver) -> None:
    with pytest.raises(DriverError) as exc:
        resize_volume(disks, "data", "spare.qcow2", GiB // 2)
    assert str(exc.value) == (
        "cannot shrink volume 'spare.qcow2' in pool 'data' from 1 GiB to 512 MiB: only growing is supported"
    )
    # The same size changes nothing (and needs no resize call, which the test driver lacks).
    assert resize_volume(disks, "data", "spare.qcow2", GiB).capacity_bytes == GiB
    with pytest.raises(DriverError, match="capacity must be positive"):
        resize_volume(disks, "data", "spare.qcow2", 0)
    with pytest.raises(DriverError, match=re.escape("volume 'gone.qcow2' not found in pool 'data'")):
        resize_volume(disks, "data", "gone.qcow2", 2 * GiB)


def test_resize_volume_on_the_test_driver_says_it_cannot(disks: LibvirtDriver) -> None:
    with pytest.raises(DriverError) as exc:
        resize_volume(disks, "data", "spare.qcow2", 2 * GiB)
    assert str(exc.value).startswith("cannot resize volume 'spare.qcow2' in pool 'data' to 2 GiB: ")
    assert "not supported" in str(exc.value)
    assert volume_by_path(disks, SPARE).capacity_bytes == GiB  # type: ignore[union-attr]


# --- who uses a disk ---


def test_domains_using(disks: LibvirtDriver) -> None:
    assert domains_using(disks, SHARED) == [
        DiskUser(vm_name="db-01", vm_uuid=DB, target="vdb", shareable=True, active=False)
    ]
    assert domains_using(disks, USED) == [
        DiskUser(vm_name="web-01", vm_uuid=WEB, target="vdb", shareable=False, active=True)
    ]
    assert domains_using(disks, f"{DISK_POOL}//./web-data.qcow2") == domains_using(disks, USED)
    assert domains_using(disks, SPARE) == []
    assert domains_using(disks, "/srv/tmp-boot.qcow2") == [
        DiskUser(vm_name="tmp-01", vm_uuid=TRANSIENT, target="vda", shareable=False, active=True)
    ]


def test_domains_using_reads_definitions_and_running_vms(disks: LibvirtDriver) -> None:
    attach_disk(disks, APP, source_path=SPARE, bus="virtio", format="qcow2")
    # In the definition only (the test driver cannot hot-plug): not active yet.
    assert domains_using(disks, SPARE) == [
        DiskUser(vm_name="app-01", vm_uuid=APP, target="vdb", shareable=False, active=False)
    ]
    restart(disks, APP)
    assert domains_using(disks, SPARE) == [
        DiskUser(vm_name="app-01", vm_uuid=APP, target="vdb", shareable=False, active=True)
    ]


# --- attach ---


def test_attach_to_a_stopped_vm(disks: LibvirtDriver) -> None:
    result = attach_disk(disks, DB, source_path=SPARE, bus="virtio", format="qcow2")
    assert result == AttachResult(
        target="vdc",
        live=False,
        persistent=True,
        note="the VM is not running: the disk is in its definition and appears at its next start",
    )
    disk = disk_of(config_root(disks, DB), "vdc")
    assert disk is not None
    assert (disk.get("type"), disk.get("device")) == ("file", "disk")
    assert disk.find("driver").attrib == {"name": "qemu", "type": "qcow2"}  # type: ignore[union-attr]
    assert disk.find("source").get("file") == SPARE  # type: ignore[union-attr]
    assert disk.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    assert disk.find("shareable") is None and disk.find("readonly") is None
    disks.connection().lookupByUUIDString(DB).create()
    assert disk_of(live_root(disks, DB), "vdc") is not None


def test_attach_to_a_running_vm_is_persistent_even_where_hot_plug_is_missing(disks: LibvirtDriver) -> None:
    result = attach_disk(disks, APP, source_path=SPARE, bus="virtio", format="qcow2")
    assert (result.target, result.live, result.persistent) == ("vdb", False, True)
    assert result.note.startswith("not hot-plugged (this function is not supported by the connection driver")
    assert result.note.endswith("the disk is in the VM's definition and appears at its next start")
    assert targets(live_root(disks, APP)) == ["vda"]
    assert targets(config_root(disks, APP)) == ["vda", "vdb"]
    restart(disks, APP)
    assert targets(live_root(disks, APP)) == ["vda", "vdb"]
    # The next free target counts the definition too.
    assert attach_disk(disks, APP, source_path="/srv/more.qcow2", bus="virtio", format="qcow2").target == "vdc"


def test_attach_keeps_the_secrets_of_the_definition(disks: LibvirtDriver) -> None:
    root = config_root(disks, DB)
    ET.SubElement(root.find("devices"), "graphics", {"type": "vnc", "port": "-1", "passwd": "s3cret"})  # type: ignore[arg-type]
    disks.connection().defineXML(ET.tostring(root, encoding="unicode"))
    attach_disk(disks, DB, source_path=SPARE, bus="virtio", format="qcow2")
    after = config_root(disks, DB)
    assert after.find("devices/graphics").get("passwd") == "s3cret"  # type: ignore[union-attr]
    assert disk_of(after, "vdc") is not None


def test_attach_an_awkward_path_and_a_named_target(disks: LibvirtDriver) -> None:
    path = '/srv/data/it\'s <a> & "b".raw'
    result = attach_disk(disks, DB, source_path=path, bus="virtio", format="raw", target="vdk", read_only=True)
    assert result.target == "vdk"
    disk = disk_of(config_root(disks, DB), "vdk")
    assert disk is not None
    assert disk.find("source").get("file") == path  # type: ignore[union-attr]
    assert disk.find("readonly") is not None
    assert domains_using(disks, path)[0].target == "vdk"


def test_attach_a_block_device(disks: LibvirtDriver) -> None:
    lun = "/dev/disk/by-id/wwn-0x600a0b80001234560000abcd12345678"
    attach_disk(disks, DB, source_path=lun, bus="scsi", format="raw")
    disk = disk_of(config_root(disks, DB), "sda")
    assert disk is not None and disk.get("type") == "block"
    assert disk.find("source").attrib == {"dev": lun}  # type: ignore[union-attr]
    assert domains_using(disks, lun) == [DiskUser("db-01", DB, "sda", shareable=False, active=False)]


def test_virtio_blk_limit_then_virtio_scsi(disks: LibvirtDriver) -> None:
    assert len(targets(config_root(disks, FULL))) == VIRTIO_BLK_MAX_DISKS
    with pytest.raises(DriverError, match=r"already has 28 virtio disks.*attach the disk on the scsi bus"):
        attach_disk(disks, FULL, source_path=SPARE, bus="virtio", format="qcow2")
    with pytest.raises(DriverError, match="already has 28 virtio disks"):
        attach_disk(disks, FULL, source_path=SPARE, bus="virtio", format="qcow2", target="vdzz")
    assert scsi_controllers(config_root(disks, FULL)) == []

    assert attach_disk(disks, FULL, source_path=SPARE, bus="scsi", format="qcow2").target == "sda"
    assert attach_disk(disks, FULL, source_path="/srv/second.raw", bus="scsi", format="raw").target == "sdb"
    root = config_root(disks, FULL)
    assert scsi_controllers(root) == [{"type": "scsi", "index": "0", "model": "virtio-scsi"}]
    assert disk_of(root, "sda").find("address").get("controller") == "0"  # type: ignore[union-attr]
    assert len(targets(root)) == VIRTIO_BLK_MAX_DISKS + 2


def test_scsi_uses_the_existing_controller(disks: LibvirtDriver) -> None:
    before = scsi_controllers(config_root(disks, SCSI))
    assert before == [{"type": "scsi", "index": "0", "model": "virtio-scsi"}]
    result = attach_disk(disks, SCSI, source_path=SPARE, bus="scsi", format="qcow2")
    assert (result.target, result.live, result.persistent) == ("sdb", False, True)
    assert scsi_controllers(config_root(disks, SCSI)) == before


def test_sata_is_never_hot_plugged(disks: LibvirtDriver) -> None:
    result = attach_disk(disks, APP, source_path=SPARE, bus="sata", format="qcow2")
    assert (result.target, result.live, result.persistent) == ("sda", False, True)
    assert result.note.startswith("not hot-plugged (sata disks cannot be hot-plugged)")


def test_shareable_disks(disks: LibvirtDriver) -> None:
    # db-01 has SHARED as shareable: a second shareable attachment is fine …
    result = attach_disk(disks, APP, source_path=SHARED, bus="virtio", format="raw", shareable=True)
    disk = disk_of(config_root(disks, APP), result.target)
    assert disk is not None and disk.find("shareable") is not None
    assert disk.find("driver").attrib == {"name": "qemu", "type": "raw", "cache": "none"}  # type: ignore[union-attr]
    assert [(u.vm_name, u.shareable) for u in domains_using(disks, SHARED)] == [("app-01", True), ("db-01", True)]
    # … one without shareable is not.
    with pytest.raises(DriverError) as exc:
        attach_disk(disks, SCSI, source_path=SHARED, bus="scsi", format="raw")
    assert str(exc.value) == (
        f"{SHARED!r} is already attached to VM 'app-01' as vdb: attach it as shareable to use it in both"
    )


def test_a_disk_used_without_shareable_is_refused(disks: LibvirtDriver) -> None:
    for shareable in (False, True):
        with pytest.raises(DriverError) as exc:
            attach_disk(disks, APP, source_path=USED, bus="virtio", format="raw", shareable=shareable)
        assert str(exc.value) == f"{USED!r} is already attached to VM 'web-01' as vdb without shareable"
    assert targets(config_root(disks, APP)) == ["vda"]


def test_a_writable_shareable_disk_must_be_raw(disks: LibvirtDriver) -> None:
    with pytest.raises(DriverError, match="a writable shareable disk must be raw, not qcow2"):
        attach_disk(disks, DB, source_path=SPARE, bus="virtio", format="qcow2", shareable=True)
    result = attach_disk(disks, DB, source_path=SPARE, bus="virtio", format="qcow2", shareable=True, read_only=True)
    assert result.persistent


@pytest.mark.parametrize(
    ("vm", "kwargs", "complaint"),
    [
        (DB, {"source_path": SHARED}, f"{SHARED!r} is already attached to VM 'db-01' as vdb"),
        (DB, {"target": "vdb"}, "VM 'db-01' already has a disk vdb"),
        (DB, {"target": "sdb"}, "target 'sdb' is not a virtio disk name (vda, vdb …)"),
        (DB, {"target": "vd1"}, "target 'vd1' is not a virtio disk name"),
        (DB, {"bus": "floppy"}, "unknown disk bus 'floppy'"),
        (DB, {"format": "raw'/><x"}, "invalid disk format"),
        (DB, {"source_path": "data/x.qcow2"}, "the disk source must be an absolute path, not 'data/x.qcow2'"),
        (DB, {"source_path": ""}, "the disk source must be an absolute path"),
        (DB, {"source_path": "/srv/a\nb"}, "contains control characters"),
        (stable_uuid("disk-test", "missing"), {}, "not found"),
        (TRANSIENT, {}, "cannot attach vdb to transient VM 'tmp-01' (it has no definition): this function is not"),
    ],
)
def test_attach_refusals(disks: LibvirtDriver, vm: str, kwargs: dict[str, Any], complaint: str) -> None:
    args: dict[str, Any] = {"source_path": SPARE, "bus": "virtio", "format": "qcow2", **kwargs}
    before = host_state(disks)
    with pytest.raises(DriverError) as exc:
        attach_disk(disks, vm, **args)
    assert complaint in str(exc.value)
    assert "\n" not in str(exc.value)
    assert host_state(disks) == before


# --- detach ---


def test_detach_from_a_stopped_vm(disks: LibvirtDriver) -> None:
    detach_disk(disks, DB, "vdb")
    assert targets(config_root(disks, DB)) == ["vda"]
    assert domains_using(disks, SHARED) == []
    assert volume_by_path(disks, SHARED) is not None  # the volume is kept
    with pytest.raises(DriverError, match="VM 'db-01' has no disk vdb"):
        detach_disk(disks, DB, "vdb")


def test_detach_from_a_running_vm_on_the_test_driver(disks: LibvirtDriver) -> None:
    detach_disk(disks, WEB, "vdb")
    assert targets(config_root(disks, WEB)) == ["vda"]
    # The test driver cannot hot-unplug: the running VM keeps the disk until it stops.
    assert targets(live_root(disks, WEB)) == ["vda", "vdb"]
    restart(disks, WEB)
    assert targets(live_root(disks, WEB)) == ["vda"]


def test_attach_then_detach_before_a_restart(disks: LibvirtDriver) -> None:
    attach_disk(disks, APP, source_path=SPARE, bus="scsi", format="qcow2")
    detach_disk(disks, APP, "sda")
    assert targets(config_root(disks, APP)) == ["vda"]
    assert domains_using(disks, SPARE) == []


# --- resize ---


def test_online_resize_of_a_virtio_disk_is_refused(disks: LibvirtDriver) -> None:
    with pytest.raises(DriverError) as exc:
        resize_disk(disks, WEB, "vdb", 2 * GiB)
    assert str(exc.value) == (
        "disk vdb of VM 'web-01' is a virtio disk, which cannot be resized while the VM runs: shut the VM down first"
    )


def test_online_resize_of_a_scsi_disk_on_the_test_driver(disks: LibvirtDriver) -> None:
    # blockInfo works on the test driver (a fixed size of almost 1 TiB), blockResize does not.
    with pytest.raises(DriverError, match=r"cannot shrink disk sda of VM 'scsi-01' from \d+ bytes to 1 GiB"):
        resize_disk(disks, SCSI, "sda", GiB)
    with pytest.raises(DriverError) as exc:
        resize_disk(disks, SCSI, "sda", 2048 * GiB)
    assert str(exc.value).startswith("cannot resize disk sda of VM 'scsi-01' to 2 TiB: ")
    assert "not supported" in str(exc.value)


def test_offline_resize_goes_through_the_volume(disks: LibvirtDriver) -> None:
    with pytest.raises(DriverError) as exc:
        resize_disk(disks, DB, "vda", 2 * GiB)
    assert str(exc.value) == "cannot shrink disk vda of VM 'db-01' from 4 GiB to 2 GiB: only growing is supported"
    resize_disk(disks, DB, "vda", 4 * GiB)  # the same size: nothing to do
    with pytest.raises(DriverError, match=r"^cannot resize disk vda of VM 'db-01' to 8 GiB: .*not supported"):
        resize_disk(disks, DB, "vda", 8 * GiB)


def test_resize_refusals(disks: LibvirtDriver) -> None:
    attach_disk(disks, DB, source_path="/srv/elsewhere.qcow2", bus="virtio", format="qcow2")
    with pytest.raises(DriverError, match=r"disk vdc of VM 'db-01' \(/srv/elsewhere.qcow2\) is not a volume"):
        resize_disk(disks, DB, "vdc", 8 * GiB)
    with pytest.raises(DriverError, match="VM 'db-01' has no disk vdz"):
        resize_disk(disks, DB, "vdz", 8 * GiB)
    with pytest.raises(DriverError, match="capacity must be positive"):
        resize_disk(disks, DB, "vda", 0)
    # A disk another running VM also has is not resized under it.
    attach_disk(disks, APP, source_path=SHARED, bus="virtio", format="raw", shareable=True)
    restart(disks, APP)
    with pytest.raises(DriverError) as exc:
        resize_disk(disks, DB, "vdb", 4 * GiB)
    assert str(exc.value) == "disk vdb of VM 'db-01' is also attached to running VM 'app-01' as vdb: shut it down first"


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
def qemu_pool(libvirtd_uri: str) -> Iterator[tuple[LibvirtDriver, str, Path]]:
    """A directory pool in a fresh directory under /var/lib/libvirt/images, which QEMU can reach.

    Domains named ``<pool name>-…`` are destroyed and undefined at the end, then the volumes, the
    pool and the directory are removed, even when the test failed.
    """
    assert libvirtd_uri == QEMU_URI
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
        try:
            for dom in conn.listAllDomains():
                if dom.name().startswith(f"{name}-"):
                    persistent = dom.isPersistent()
                    if dom.isActive():
                        dom.destroy()  # a transient domain is gone with it
                    if persistent:
                        dom.undefine()
        finally:
            try:
                if pool is not None:
                    if pool.isActive():
                        pool.refresh(0)
                        for vol in pool.listAllVolumes(0):
                            vol.delete(0)
                        pool.destroy()
                    pool.undefine()
            finally:
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
    drv.connection().storagePoolLookupByName(pool_name).refresh(0)

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
    dom = drv.connection().lookupByUUIDString(vm_uuid)
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


def _tiny_vm_xml(name: str, boot_path: str, *, vnc_password: str | None = None, scsi_controller: bool = False) -> str:
    """A QEMU guest with no OS (software emulation): it boots to the firmware and keeps running."""
    dom = ET.Element("domain", {"type": "qemu"})
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", {"unit": "MiB"}).text = "64"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64", "machine": "pc"}).text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")  # PCI hot-plug on i440fx needs ACPI
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "emulator").text = "/usr/bin/qemu-system-x86_64"
    disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(disk, "driver", {"name": "qemu", "type": "qcow2"})
    ET.SubElement(disk, "source", {"file": boot_path})
    ET.SubElement(disk, "target", {"dev": "vda", "bus": "virtio"})
    if scsi_controller:
        ET.SubElement(devices, "controller", {"type": "scsi", "index": "0", "model": "virtio-scsi"})
    if vnc_password is not None:
        graphics = {"type": "vnc", "autoport": "yes", "listen": "127.0.0.1", "passwd": vnc_password}
        ET.SubElement(devices, "graphics", graphics)
    return ET.tostring(dom, encoding="unicode")


def _running_vm(drv: LibvirtDriver, pool_name: str, suffix: str, **kwargs: Any) -> Any:
    boot = create_volume(drv, pool_name, f"{suffix}-boot.qcow2", 64 * MiB)
    dom = drv.connection().defineXML(_tiny_vm_xml(f"{pool_name}-{suffix}", boot.path, **kwargs))
    dom.create()
    return dom


def _qemu_block_files(dom: Any) -> set[str]:
    """The image files QEMU itself has open for the guest (asked over its monitor, not libvirt's XML)."""
    reply = json.loads(libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": "query-block"}), 0))
    return {dev["inserted"]["file"] for dev in reply["return"] if "inserted" in dev}


def _virtual_size(path: str) -> int:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True, capture_output=True, text=True)
    return int(json.loads(out.stdout)["virtual-size"])


@pytest.mark.integration
def test_volumes_on_a_real_directory_pool(qemu_pool: tuple[LibvirtDriver, str, Path]) -> None:
    drv, pool_name, path = qemu_pool
    raw = create_volume(drv, pool_name, "data.raw", 256 * MiB, "raw")
    qcow = create_volume(drv, pool_name, "data.qcow2", 256 * MiB)
    assert (raw.format, raw.capacity_bytes, raw.path) == ("raw", 256 * MiB, str(path / "data.raw"))
    assert os.stat(raw.path).st_size == 256 * MiB
    assert _actual_size(raw.path) < MiB  # sparse
    assert _virtual_size(qcow.path) == 256 * MiB
    assert _actual_size(qcow.path) < MiB

    # A file made outside libvirt appears after a refresh, with the pool's real numbers.
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path / "outside.qcow2"), "32M"], check=True)
    assert volume_by_path(drv, str(path / "outside.qcow2")) is None
    pool = refresh_pool(drv, pool_name)
    assert {v.name for v in pool.volumes} == {"data.raw", "data.qcow2", "outside.qcow2"}
    fs = os.statvfs(path)  # libvirt counts the blocks free for root (f_bfree), not f_bavail
    assert pool.capacity_bytes == fs.f_blocks * fs.f_frsize
    assert abs(pool.available_bytes - fs.f_bfree * fs.f_frsize) < 256 * MiB  # others write to this disk too
    assert pool.allocation_bytes == pool.capacity_bytes - pool.available_bytes
    assert volume_by_path(drv, str(path / "outside.qcow2")).capacity_bytes == 32 * MiB  # type: ignore[union-attr]

    grown = resize_volume(drv, pool_name, "data.qcow2", 512 * MiB)
    assert grown.capacity_bytes == 512 * MiB
    assert _virtual_size(qcow.path) == 512 * MiB
    assert resize_volume(drv, pool_name, "data.raw", GiB).capacity_bytes == GiB
    assert os.stat(raw.path).st_size == GiB
    assert _actual_size(raw.path) < MiB  # still sparse
    with pytest.raises(DriverError, match=r"cannot shrink volume 'data\.raw' in pool '.*' from 1 GiB to 512 MiB"):
        resize_volume(drv, pool_name, "data.raw", 512 * MiB)
    assert os.stat(raw.path).st_size == GiB


@pytest.mark.integration
def test_live_virtio_attach_to_a_running_vm_is_persistent(qemu_pool: tuple[LibvirtDriver, str, Path]) -> None:
    drv, pool_name, _ = qemu_pool
    dom = _running_vm(drv, pool_name, "vm1", vnc_password="s3cret")
    vm_uuid = dom.UUIDString()
    data = create_volume(drv, pool_name, "vm1-data.qcow2", 32 * MiB)
    assert domain_is_active(drv, vm_uuid)

    result = attach_disk(drv, vm_uuid, source_path=data.path, bus="virtio", format="qcow2")
    assert result == AttachResult(target="vdb", live=True, persistent=True, note="")
    live = ET.fromstring(dom.XMLDesc(0))
    assert disk_of(live, "vdb").find("source").get("file") == data.path  # type: ignore[union-attr]
    assert data.path in _qemu_block_files(dom)
    definition = ET.fromstring(domain_definition(drv, vm_uuid))
    assert disk_of(definition, "vdb").find("source").get("file") == data.path  # type: ignore[union-attr]
    secure = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    assert secure.find("devices/graphics").get("passwd") == "s3cret"  # type: ignore[union-attr]
    assert domains_using(drv, data.path) == [DiskUser(f"{pool_name}-vm1", vm_uuid, "vdb", shareable=False, active=True)]

    with pytest.raises(DriverError, match="is a virtio disk, which cannot be resized while the VM runs: shut"):
        resize_disk(drv, vm_uuid, "vdb", 64 * MiB)
    assert _virtual_size(data.path) == 32 * MiB

    dom.destroy()
    dom.create()
    assert disk_of(ET.fromstring(dom.XMLDesc(0)), "vdb") is not None
    assert data.path in _qemu_block_files(dom)

    # Shut down, the disk grows through its volume.
    dom.destroy()
    resize_disk(drv, vm_uuid, "vdb", 64 * MiB)
    assert _virtual_size(data.path) == 64 * MiB

    # Detaching a virtio-blk disk from a running guest is a request the guest must answer; this one
    # has no OS, so it keeps the disk until it stops. The definition no longer has it, and
    # domains_using still reports the running VM, so nobody deletes the volume under it.
    dom.create()
    detach_disk(drv, vm_uuid, "vdb")
    assert targets(ET.fromstring(domain_definition(drv, vm_uuid))) == ["vda"]
    assert targets(ET.fromstring(dom.XMLDesc(0))) == ["vda", "vdb"]
    assert domains_using(drv, data.path) == [DiskUser(f"{pool_name}-vm1", vm_uuid, "vdb", shareable=False, active=True)]
    dom.destroy()
    assert domains_using(drv, data.path) == []


@pytest.mark.integration
def test_scsi_attach_adds_virtio_scsi_and_resizes_online(qemu_pool: tuple[LibvirtDriver, str, Path]) -> None:
    drv, pool_name, _ = qemu_pool
    vm1 = _running_vm(drv, pool_name, "vm1")
    vm2 = _running_vm(drv, pool_name, "vm2")
    assert scsi_controllers(ET.fromstring(vm1.XMLDesc(0))) == []
    shared = create_volume(drv, pool_name, "shared.raw", 32 * MiB, "raw")

    result = attach_disk(drv, vm1.UUIDString(), source_path=shared.path, bus="scsi", format="raw", shareable=True)
    assert result == AttachResult(target="sda", live=True, persistent=True, note="")
    for root in (ET.fromstring(vm1.XMLDesc(0)), ET.fromstring(domain_definition(drv, vm1.UUIDString()))):
        assert [c["model"] for c in scsi_controllers(root)] == ["virtio-scsi"]
        disk = disk_of(root, "sda")
        assert disk is not None and disk.find("shareable") is not None
        assert disk.find("driver").get("cache") == "none"  # type: ignore[union-attr]
    assert shared.path in _qemu_block_files(vm1)

    # Online growth of a SCSI disk: QEMU grows the image and the guest sees the new size.
    resize_disk(drv, vm1.UUIDString(), "sda", 64 * MiB)
    assert vm1.blockInfo("sda", 0)[0] == 64 * MiB
    assert os.stat(shared.path).st_size == 64 * MiB
    with pytest.raises(DriverError, match=r"cannot shrink disk sda of VM .* from 64 MiB to 32 MiB"):
        resize_disk(drv, vm1.UUIDString(), "sda", 32 * MiB)
    assert os.stat(shared.path).st_size == 64 * MiB

    # The second VM may share it only as shareable.
    with pytest.raises(DriverError, match="attach it as shareable to use it in both"):
        attach_disk(drv, vm2.UUIDString(), source_path=shared.path, bus="scsi", format="raw")
    attach_disk(drv, vm2.UUIDString(), source_path=shared.path, bus="scsi", format="raw", shareable=True)
    assert shared.path in _qemu_block_files(vm2)
    assert [(u.vm_name, u.active) for u in domains_using(drv, shared.path)] == [
        (f"{pool_name}-vm1", True),
        (f"{pool_name}-vm2", True),
    ]
    with pytest.raises(DriverError, match=f"also attached to running VM '{pool_name}-vm2' as sda: shut it down"):
        resize_disk(drv, vm1.UUIDString(), "sda", 96 * MiB)

    # A SCSI disk leaves a running guest at once (no guest cooperation needed), and its definition.
    detach_disk(drv, vm2.UUIDString(), "sda")
    assert disk_of(ET.fromstring(vm2.XMLDesc(0)), "sda") is None
    assert shared.path not in _qemu_block_files(vm2)
    assert disk_of(ET.fromstring(domain_definition(drv, vm2.UUIDString())), "sda") is None
    assert [u.vm_name for u in domains_using(drv, shared.path)] == [f"{pool_name}-vm1"]
    assert stat.S_ISREG(os.stat(shared.path).st_mode)  # detaching keeps the volume


@pytest.mark.integration
def test_a_transient_vm_gets_the_hot_plug_only(qemu_pool: tuple[LibvirtDriver, str, Path]) -> None:
    drv, pool_name, _ = qemu_pool
    boot = create_volume(drv, pool_name, "tmp-boot.qcow2", 64 * MiB)
    data = create_volume(drv, pool_name, "tmp-data.qcow2", 32 * MiB)
    dom = drv.connection().createXML(_tiny_vm_xml(f"{pool_name}-tmp", boot.path), 0)
    assert not dom.isPersistent()
    result = attach_disk(drv, dom.UUIDString(), source_path=data.path, bus="virtio", format="qcow2")
    assert (result.target, result.live, result.persistent) == ("vdb", True, False)
    assert result.note == (
        "attached to the running VM only: it is transient (has no definition), so the disk is gone once the VM stops"
    )
    assert data.path in _qemu_block_files(dom)
    assert domains_using(drv, data.path) == [
        DiskUser(f"{pool_name}-tmp", dom.UUIDString(), "vdb", shareable=False, active=True)
    ]


def _fill_pci_slots(conn: Any, root: ET.Element) -> None:
    """Redefine ``root`` with a NIC pinned to every free slot of PCI bus 0 (the i440fx machine's only
    bus): a device without an address then needs a pci-bridge, which has no slot left either."""
    devices = root.find("devices")
    assert devices is not None
    used = {
        int(a.get("slot") or "0", 16)
        for a in root.iter("address")
        if a.get("type") == "pci" and int(a.get("bus") or "0", 16) == 0
    }
    for slot in sorted(set(range(1, 32)) - used):
        nic = ET.SubElement(devices, "interface", {"type": "user"})
        ET.SubElement(nic, "model", {"type": "virtio"})
        address = {"type": "pci", "domain": "0x0000", "bus": "0x00", "slot": f"{slot:#04x}", "function": "0x0"}
        ET.SubElement(nic, "address", address)
    conn.defineXML(ET.tostring(root, encoding="unicode"))


@pytest.mark.integration
def test_a_definition_that_cannot_take_the_disk_undoes_the_hot_plug(
    qemu_pool: tuple[LibvirtDriver, str, Path],
) -> None:
    drv, pool_name, path = qemu_pool
    dom = _running_vm(drv, pool_name, "vm1", scsi_controller=True)
    vm_uuid, name = dom.UUIDString(), f"{pool_name}-vm1"
    data = create_volume(drv, pool_name, "data.raw", 32 * MiB, "raw")
    # Only the definition has a SCSI disk sdz, pinned to unit 0. The next free target is sda, which
    # the running VM takes at unit 0; the definition refuses it there (a duplicate drive address).
    root = ET.fromstring(domain_definition(drv, vm_uuid))
    devices = root.find("devices")
    assert devices is not None
    pinned = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(pinned, "driver", {"name": "qemu", "type": "raw"})
    ET.SubElement(pinned, "source", {"file": str(path / "pinned.raw")})
    ET.SubElement(pinned, "target", {"dev": "sdz", "bus": "scsi"})
    ET.SubElement(pinned, "address", {"type": "drive", "controller": "0", "bus": "0", "target": "0", "unit": "0"})
    drv.connection().defineXML(ET.tostring(root, encoding="unicode"))
    before = domain_definition(drv, vm_uuid)

    with pytest.raises(DriverError) as exc:
        attach_disk(drv, vm_uuid, source_path=data.path, bus="scsi", format="raw")
    message = str(exc.value)
    assert message.startswith(f"cannot add disk sda to the definition of VM {name!r}: ")
    assert "duplicate" in message.lower()
    assert message.endswith("; the hot-plug was undone")
    assert "\n" not in message
    assert disk_of(ET.fromstring(dom.XMLDesc(0)), "sda") is None
    assert data.path not in _qemu_block_files(dom)
    assert domain_definition(drv, vm_uuid) == before
    assert domains_using(drv, data.path) == []

    # A virtio-blk disk is a PCI device: with the definition's PCI slots full it cannot be added there,
    # and this guest has no OS to agree to the unplug. The error says the running VM still has it.
    _fill_pci_slots(drv.connection(), ET.fromstring(before))
    before = domain_definition(drv, vm_uuid)
    with pytest.raises(DriverError) as exc:
        attach_disk(drv, vm_uuid, source_path=data.path, bus="virtio", format="raw")
    message = str(exc.value)
    assert message.startswith(f"cannot add disk vdb to the definition of VM {name!r}: ")
    assert "PCI" in message  # libvirt 9.0 fails placing a pci-bridge for it
    assert message.endswith(
        "; the running VM was asked to release the hot-plugged disk but still has it (the guest must agree to a "
        "PCI unplug): it goes away when the VM stops"
    )
    assert domain_definition(drv, vm_uuid) == before
    assert domains_using(drv, data.path) == [DiskUser(name, vm_uuid, "vdb", shareable=False, active=True)]
