"""A KVM host on libvirt's ``test:///`` driver, discovered, with a golden image ready to provision from.

Each test gets its own node file (a private simulated host); the ``kvm`` fixture returns the discovered
provider, ``golden`` registers ``golden.qcow2`` (the boot disk of the shut-off VM ``golden-vm``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inventory.drivers.libvirt import forget_test_connections
from inventory.models import Provider, StorageVolume
from inventory.services.discovery import discover_now
from provisioning.models import GoldenImage
from provisioning.services.golden_images import register_golden_image
from provisioning.services.requests import platform as platform_module
from provisioning.services.requests.platform import Platform
from tests.factories import make_provider
from tests.jobtools import open_broker_connections, sent  # noqa: F401 - sent: a fixture
from vom.simulators.libvirt_node import (
    DiskSpec,
    DomainSpec,
    GiB,
    MiB,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    stable_mac,
    stable_uuid,
    write_node,
)

IMAGES = "/var/lib/vom-images"
GOLDEN_PATH = f"{IMAGES}/golden.qcow2"
TEMPLATE_UUID = stable_uuid("prov-test", "golden-vm")
APP_UUID = stable_uuid("prov-test", "app-01")


def node_spec() -> NodeSpec:
    return NodeSpec(
        hostname="kvm-prov",
        host_uuid=stable_uuid("prov-test", "host"),
        pools=[
            PoolSpec(
                name="images",
                uuid=stable_uuid("prov-test", "images"),
                target_path=IMAGES,
                volumes=[
                    VolumeSpec(name="golden.qcow2", capacity_bytes=10 * GiB, allocation_bytes=2 * GiB, format="qcow2"),
                    VolumeSpec(name="app-01.qcow2", capacity_bytes=10 * GiB, allocation_bytes=1 * GiB, format="qcow2"),
                    VolumeSpec(name="shared.img", capacity_bytes=1 * GiB, allocation_bytes=1 * GiB, format="raw"),
                    VolumeSpec(name="old-web.qcow2", capacity_bytes=1 * GiB, allocation_bytes=1 * MiB, format="qcow2"),
                ],
            ),
            PoolSpec(
                name="lvm",
                uuid=stable_uuid("prov-test", "lvm"),
                target_path="/dev/vg0",
                kind="logical",
                source_name="vg0",
                source_format="lvm2",
                source_devices=["/dev/sdb"],
            ),
        ],
        networks=[
            NetworkSpec(
                name="default",
                uuid=stable_uuid("prov-test", "net"),
                bridge="virbr0",
                ip="192.168.122.1",
                netmask="255.255.255.0",
            )
        ],
        domains=[
            DomainSpec(
                name="golden-vm",
                uuid=TEMPLATE_UUID,
                memory_kib=2 * 1024 * 1024,
                vcpus=2,
                state=RunState.SHUTOFF,
                disks=[DiskSpec(target="vda", source=GOLDEN_PATH)],
                nics=[NicSpec(mac=stable_mac("prov-test", "golden-nic"))],
            ),
            DomainSpec(
                name="app-01",
                uuid=APP_UUID,
                memory_kib=1024 * 1024,
                vcpus=1,
                state=RunState.RUNNING,
                disks=[DiskSpec(target="vda", source=f"{IMAGES}/app-01.qcow2")],
                nics=[NicSpec(mac=stable_mac("prov-test", "app-nic"))],
            ),
        ],
    )


@pytest.fixture
def kvm(db, tmp_path: Path) -> Iterator[Provider]:
    path = write_node(node_spec(), tmp_path / "kvm-prov.xml")
    uri = f"test://{path}"
    provider = make_provider(name="kvm-prov", uri=uri)
    run = discover_now(provider=provider)
    assert run.status == "succeeded", run.error
    yield provider
    forget_test_connections(uri)


@pytest.fixture
def golden(kvm: Provider, admin_user) -> GoldenImage:
    volume = StorageVolume.objects.get(pool__provider=kvm, path=GOLDEN_PATH)
    return register_golden_image(name="debian-12", os="Debian 12", volume=volume, user=admin_user)


@pytest.fixture
def platform_faults(monkeypatch) -> Callable[[type[Platform]], None]:
    """Make a provisioning request reach its host through ``cls``, a subclass of the executor's one seam
    (:class:`~provisioning.services.requests.platform.Platform`) over the real test:/// driver, whose
    methods do the fault: ``platform_faults(StartsTheImageDuringTheCopy)``."""

    def use(cls: type[Platform]) -> None:
        real = platform_module.platform_for

        @contextmanager
        def faulty(provider: Provider) -> Iterator[Platform]:
            with real(provider) as platform:
                yield cls(platform.driver)

        monkeypatch.setattr(platform_module, "platform_for", faulty)

    return use


@pytest.fixture(autouse=True)
def _open_broker_connections():
    """Every test starts with open broker connections: a fixture that pointed the Celery app at another
    broker may have left closed ones behind (see ``tests.jobtools.open_broker_connections``), which even
    an eager ``apply_async`` takes a producer from."""
    open_broker_connections()


__all__ = ["APP_UUID", "GOLDEN_PATH", "IMAGES", "TEMPLATE_UUID", "MiB", "node_spec"]
