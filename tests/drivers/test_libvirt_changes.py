"""Every call that changes a libvirt host runs inside ``LibvirtDriver.changing()``, with the lookup of
what it changes inside the block, and the storage functions use only the driver's public members.

A driver subclass records each ``changing`` block and the connection calls made inside it (its
``connection()`` hands out a recording wrapper while a block is open), against the real libvirt
``test:///`` driver.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt import storage as storage_package
from inventory.drivers.libvirt.storage import (
    attach_disk,
    clone_volume,
    create_overlay_volume,
    create_volume,
    define_vm_from_template,
    delete_volume,
    detach_disk,
    domain_definition,
    refresh_pool,
    resize_disk,
    resize_volume,
)
from vom.simulators.libvirt_node import (
    DiskSpec,
    DomainSpec,
    GiB,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    stable_uuid,
    write_node,
)

POOL_DIR = "/var/lib/vom-images"
VM = stable_uuid("changes", "vm")


class _RecordingConnection:
    """A ``virConnect`` stand-in that records the names of the calls made through it."""

    def __init__(self, conn: Any, calls: list[str]) -> None:
        self._conn = conn
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return attr(*args, **kwargs)

        return call


class RecordingDriver(LibvirtDriver):
    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.changes: list[tuple[str, list[str]]] = []
        self._inside: list[str] | None = None

    def connection(self) -> Any:
        conn = super().connection()
        return conn if self._inside is None else _RecordingConnection(conn, self._inside)

    @contextmanager
    def changing(self, action: str) -> Iterator[None]:
        calls: list[str] = []
        outer, self._inside = self._inside, calls
        try:
            with super().changing(action):
                yield
        finally:
            self._inside = outer
            self.changes.append((action, calls))

    def take(self) -> list[tuple[str, list[str]]]:
        changes, self.changes = self.changes, []
        return changes


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[RecordingDriver]:
    spec = NodeSpec(
        hostname="kvm-changes",
        host_uuid=stable_uuid("changes", "host"),
        pools=[
            PoolSpec(
                name="images",
                uuid=stable_uuid("changes", "pool"),
                target_path=POOL_DIR,
                volumes=[VolumeSpec(name="golden.qcow2", capacity_bytes=2 * GiB, format="qcow2")],
            )
        ],
        domains=[
            DomainSpec(
                name="vm",
                uuid=VM,
                memory_kib=1024 * 1024,
                vcpus=1,
                state=RunState.SHUTOFF,
                disks=[DiskSpec(target="vda", source=f"{POOL_DIR}/golden.qcow2")],
            )
        ],
    )
    path = write_node(spec, tmp_path / "kvm-changes.xml")
    with RecordingDriver(f"test://{path}") as drv:
        yield drv


def test_driver_operations_change_inside_changing(driver: RecordingDriver) -> None:
    driver.start(VM)
    driver.snapshot_create(VM, "s1")
    driver.snapshot_revert(VM, "s1")
    driver.snapshot_delete(VM, "s1")
    driver.power_off(VM)
    assert driver.take() == [
        (f"cannot start VM {VM}", ["lookupByUUIDString"]),
        (f"cannot create snapshot 's1' of VM {VM}", ["lookupByUUIDString"]),
        (f"cannot revert VM {VM} to snapshot 's1'", ["lookupByUUIDString"]),
        (f"cannot delete snapshot 's1' of VM {VM}", ["lookupByUUIDString"]),
        (f"cannot power off VM {VM}", ["lookupByUUIDString"]),
    ]


def test_storage_functions_change_inside_changing(driver: RecordingDriver) -> None:
    golden = f"{POOL_DIR}/golden.qcow2"
    create_volume(driver, "images", "data.raw", GiB, format="raw")
    create_overlay_volume(driver, "images", "child.qcow2", golden)
    clone_volume(driver, "images", golden, "copy.qcow2")
    with pytest.raises(DriverError, match="not supported"):  # test:/// cannot resize: still a change asked
        resize_volume(driver, "images", "data.raw", 2 * GiB)
    refresh_pool(driver, "images")
    delete_volume(driver, "images", "copy.qcow2")
    new_vm = define_vm_from_template(
        driver, domain_definition(driver, VM), name="new-vm", boot_volume_path=f"{POOL_DIR}/child.qcow2"
    )
    attach_disk(driver, VM, source_path=f"{POOL_DIR}/data.raw", bus="virtio", format="raw")
    with pytest.raises(DriverError, match="not supported"):
        resize_disk(driver, VM, "vdb", 3 * GiB)
    detach_disk(driver, VM, "vdb")
    changes = driver.take()
    assert [action for action, _ in changes] == [
        "cannot create volume 'data.raw' in pool 'images'",
        "cannot create overlay volume 'child.qcow2' in pool 'images'",
        f"cannot clone '{golden}' to volume 'copy.qcow2' in pool 'images'",
        "cannot resize volume 'data.raw' in pool 'images' to 2 GiB",
        "cannot refresh storage pool 'images'",
        "cannot delete volume 'copy.qcow2' in pool 'images'",
        "cannot define VM 'new-vm'",
        "cannot add disk vdb to the definition of VM 'vm'",
        "cannot resize disk vdb of VM 'vm' to 3 GiB",
        "cannot remove disk vdb from the definition of VM 'vm'",
    ]
    # What is changed was looked up inside the block (a define needs no lookup).
    assert [calls for _, calls in changes] == [
        ["storagePoolLookupByName"],
        ["storagePoolLookupByName"],
        ["storageVolLookupByPath", "storagePoolLookupByName"],
        ["storagePoolLookupByName"],
        ["storagePoolLookupByName"],
        ["storagePoolLookupByName"],
        ["defineXML"],
        ["defineXML"],
        ["storageVolLookupByPath"],
        ["defineXML"],
    ]
    assert new_vm


def test_storage_uses_only_public_members_of_the_driver() -> None:
    """No ``driver._…`` anywhere in the storage package."""
    for path in Path(storage_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        private = [
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "driver"
            and node.attr.startswith("_")
        ]
        assert private == [], f"{path.name} uses {private}"
