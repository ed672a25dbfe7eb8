"""What provisioning asks of a KVM host, in one class: the seam of the executor.

The executor reaches the host only through :class:`Platform`, made by :func:`platform_for`. Tests
inject faults here (a subclass that fails a copy, or starts the golden image's VM while one is made)
over the real libvirt test driver, instead of patching the executor's private helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from inventory.drivers.base import PoolInfo, VolumeInfo
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.libvirt.storage import (
    clone_volume,
    create_overlay_volume,
    define_vm_from_template,
    delete_volume,
    domain_is_active,
    domains_using,
    refresh_pool,
    volume_by_path,
)
from inventory.models import Provider
from provisioning.services.common import libvirt_driver


class Platform:
    """One KVM host, as a provisioning request uses it. Every failure is a DriverError."""

    def __init__(self, driver: LibvirtDriver) -> None:
        self.driver = driver

    def volume_at(self, path: str) -> VolumeInfo | None:
        return volume_by_path(self.driver, path)

    def make_child(self, pool: str, name: str, backing_path: str, backing_format: str) -> VolumeInfo:
        """A space-optimized (qcow2) child of ``backing_path``."""
        return create_overlay_volume(self.driver, pool, name, backing_path, backing_format)

    def make_copy(self, pool: str, source_path: str, name: str, source_format: str) -> VolumeInfo:
        """A full copy of ``source_path``."""
        return clone_volume(self.driver, pool, source_path, name, source_format)

    def delete_volume(self, pool: str, name: str) -> None:
        delete_volume(self.driver, pool, name, missing_ok=True)

    def define_vm(
        self,
        template_xml: str,
        *,
        name: str,
        boot_volume_path: str,
        boot_format: str,
        vcpus: int,
        memory_bytes: int,
        network: str | None,
        bridge: str | None,
    ) -> str:
        """Define a new VM from ``template_xml`` (new name, UUID and MACs); returns its UUID."""
        return define_vm_from_template(
            self.driver,
            template_xml,
            name=name,
            boot_volume_path=boot_volume_path,
            boot_format=boot_format,
            vcpus=vcpus,
            memory_bytes=memory_bytes,
            network=network,
            bridge=bridge,
        )

    def is_running(self, vm_uuid: str) -> bool:
        return domain_is_active(self.driver, vm_uuid)

    def start(self, vm_uuid: str) -> None:
        self.driver.start(vm_uuid)

    def vms_using(self, path: str) -> list[tuple[str, str]]:
        """(name, UUID) of every VM of the host with a disk on ``path``."""
        return [(user.vm_name, user.vm_uuid) for user in domains_using(self.driver, path)]

    def refresh_pool(self, pool: str) -> PoolInfo:
        return refresh_pool(self.driver, pool)


@contextmanager
def platform_for(provider: Provider) -> Iterator[Platform]:
    """The provider's host, connected for the block (DriverError when it cannot be reached)."""
    with libvirt_driver(provider) as driver:
        yield Platform(driver)
