"""A simulated host written by :func:`~vom.simulators.libvirt_node.dump_node` and opened again
discovers like the host it was written from: hosts, VMs (states, disks, NICs, snapshots), pools,
volumes (allocations, backing stores) and networks. The one exception is libvirt's: the test driver
starts every domain it loads with state reason 0 ("unknown")."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from inventory.drivers.libvirt import LibvirtDriver, storage
from inventory.drivers.libvirt.connection import _read_origin
from tests.inventory.test_libvirt_node import full_spec
from tests.provisioning.conftest import APP_UUID, GOLDEN_PATH, TEMPLATE_UUID, node_spec
from tests.simulators.conftest import REPO
from vom.simulators.libvirt_node import GiB, dump_node, write_node

DEMO = sorted((REPO / "demo" / "kvm").glob("*.xml"))


def inventory(driver: LibvirtDriver, *, reasons: bool = True) -> dict[str, Any]:
    """Everything a discovery finds, in an order that does not depend on libvirt's hash tables."""
    found = dataclasses.asdict(driver.discover())
    found.pop("read_at")
    found["vms"].sort(key=lambda vm: vm["uuid"])
    for vm in found["vms"]:
        vm["snapshots"].sort(key=lambda snap: snap["name"])
        if not reasons:
            vm.pop("state_reason")
    found["pools"].sort(key=lambda pool: pool["uuid"])
    for pool in found["pools"]:
        pool["volumes"].sort(key=lambda volume: volume["key"])
    found["networks"].sort(key=lambda net: net["uuid"])
    return found


def reopened(driver: LibvirtDriver, tmp_path: Path) -> LibvirtDriver:
    """The host of ``driver`` dumped to a node file of the same name (the name is the host name)."""
    source = Path(driver.uri.removeprefix("test://"))
    data = dump_node(driver.connection(), ET.parse(source).getroot())
    target = tmp_path / "dumped" / source.name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(data)
    return LibvirtDriver(f"test://{target}")


@pytest.mark.parametrize("path", DEMO, ids=[p.name for p in DEMO])
def test_the_demo_hosts_round_trip(path, tmp_path, state_dir):
    driver = LibvirtDriver(f"test://{path}")
    assert inventory(reopened(driver, tmp_path)) == inventory(driver)


@pytest.mark.parametrize("make", [node_spec, full_spec], ids=["provisioning", "every-kind"])
def test_generated_hosts_round_trip(make, tmp_path, state_dir):
    spec = make()
    driver = LibvirtDriver(f"test://{write_node(spec, tmp_path / f'{spec.hostname}.xml')}")
    assert inventory(reopened(driver, tmp_path)) == inventory(driver)


def test_a_host_round_trips_after_every_kind_of_change(tmp_path, state_dir):
    driver = LibvirtDriver(f"test://{write_node(node_spec(), tmp_path / 'kvm-prov.xml')}")

    def same() -> None:
        again = reopened(driver, tmp_path)
        assert inventory(again, reasons=False) == inventory(driver, reasons=False)
        assert {vm.state_reason for vm in again.discover().vms} == {"unknown"}

    driver.start(TEMPLATE_UUID)
    driver.suspend(APP_UUID)
    same()
    driver.resume(APP_UUID)
    driver.shutdown(TEMPLATE_UUID)
    same()
    driver.power_off(APP_UUID)
    driver.snapshot_create(TEMPLATE_UUID, "s1", "the <first> & only")
    driver.snapshot_create(TEMPLATE_UUID, "s2")
    driver.start(TEMPLATE_UUID)
    driver.snapshot_create(TEMPLATE_UUID, "s3-running")
    same()
    driver.snapshot_revert(TEMPLATE_UUID, "s1")
    same()
    driver.snapshot_delete(TEMPLATE_UUID, "s2")
    same()
    boot = storage.create_overlay_volume(driver, "images", "new-vm.qcow2", GOLDEN_PATH)
    storage.clone_volume(driver, "images", GOLDEN_PATH, "clone.qcow2")
    storage.create_volume(driver, "images", "data.qcow2", GiB)
    storage.create_volume(driver, "lvm", "lv-data", GiB, format="raw")
    storage.delete_volume(driver, "images", "old-web.qcow2")
    template = storage.domain_definition(driver, TEMPLATE_UUID)
    new = storage.define_vm_from_template(driver, template, name="new-vm", boot_volume_path=boot.path)
    same()
    driver.start(new)
    driver.snapshot_create(new, "fresh")
    same()
    found = inventory(driver)
    volumes = {v["name"]: v for pool in found["pools"] for v in pool["volumes"]}
    assert volumes["new-vm.qcow2"]["backing_store"] == GOLDEN_PATH and "old-web.qcow2" not in volumes
    (golden,) = [vm for vm in found["vms"] if vm["name"] == "golden-vm"]
    assert [(s["name"], s["current"]) for s in golden["snapshots"]] == [("s1", True), ("s3-running", False)]


def test_the_dump_names_its_source_and_keeps_the_host_facts(tmp_path, state_dir):
    path = write_node(node_spec(), tmp_path / "kvm-prov.xml")
    driver = LibvirtDriver(f"test://{path}")
    source = ET.parse(path).getroot()
    data = dump_node(driver.connection(), source, origin=(str(path), 123, 456))
    dumped = tmp_path / "dump.xml"
    dumped.write_bytes(data)
    with open(dumped, "rb") as handle:
        assert _read_origin(handle) == (str(path), (123, 456))
    with open(path, "rb") as handle:
        assert _read_origin(handle) is None  # a node file as written is no dump
    root = ET.fromstring(data)
    facts = [ET.tostring(el) for el in source if el.tag not in ("domain", "network", "pool")]
    assert [ET.tostring(el) for el in root if el.tag not in ("domain", "network", "pool")][1:] == facts
