"""Deterministic test data: providers, users with roles, and inventory applied through the real sync."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from django.contrib.auth.models import Group, User

from inventory.drivers.base import (
    DiskInfo,
    HostFacts,
    InventorySnapshot,
    NetworkInfo,
    NicInfo,
    PoolInfo,
    SnapshotInfo,
    VMInfo,
    VolumeInfo,
)
from inventory.models import Provider
from inventory.services import sync
from vom.simulators.libvirt_node import stable_mac

_seq = itertools.count(1)


def make_user(role: str, username: str | None = None, password: str = "pw-for-tests-1") -> User:
    user = User.objects.create_user(username=username or f"{role}{next(_seq)}", password=password)
    if role == "superuser":
        user.is_superuser = user.is_staff = True
        user.save()
    else:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def make_provider(name: str | None = None, uri: str = "test:///default", **fields: object) -> Provider:
    n = next(_seq)
    return Provider.objects.create(name=name or f"kvm{n:02d}", uri=uri, **fields)  # type: ignore[arg-type]


def _uuid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def make_snapshot(
    host: str = "kvm01", vms: int = 3, states: tuple[str, ...] = ("running", "shutoff", "paused")
) -> InventorySnapshot:
    """A host with ``vms`` VMs (each: a qcow2 disk on the default pool, a by-id block disk, a NIC)."""
    pool_path = "/var/lib/libvirt/images"
    volumes = [
        VolumeInfo(
            name="golden.qcow2",
            key=f"{pool_path}/golden.qcow2",
            path=f"{pool_path}/golden.qcow2",
            format="qcow2",
            capacity_bytes=10 << 30,
            allocation_bytes=3 << 30,
        )
    ]
    vm_infos = []
    for i in range(vms):
        name = f"{host}-vm{i:02d}"
        path = f"{pool_path}/{name}.qcow2"
        volumes.append(
            VolumeInfo(
                name=f"{name}.qcow2",
                key=path,
                path=path,
                format="qcow2",
                capacity_bytes=10 << 30,
                allocation_bytes=200 << 20,
                backing_store=f"{pool_path}/golden.qcow2",
                backing_format="qcow2",
            )
        )
        vm_infos.append(
            VMInfo(
                uuid=_uuid(f"{host}/{name}"),
                name=name,
                state=states[i % len(states)],
                state_reason="booted" if states[i % len(states)] == "running" else "",
                vcpus=2,
                max_vcpus=2,
                memory_bytes=2 << 30,
                max_memory_bytes=2 << 30,
                os_type="hvm",
                arch="x86_64",
                machine="pc-q35-7.2",
                domain_type="kvm",
                autostart=i == 0,
                disks=[
                    DiskInfo(
                        target="vda",
                        bus="virtio",
                        device="disk",
                        source_type="file",
                        source=path,
                        driver_format="qcow2",
                        cache="none",
                        backing_chain=[f"{pool_path}/golden.qcow2"],
                    ),
                    DiskInfo(
                        target="sda",
                        bus="scsi",
                        device="lun",
                        source_type="block",
                        source=f"/dev/disk/by-id/wwn-0x6001405{i:09d}",
                        driver_format="raw",
                        cache="none",
                        shareable=True,
                        wwn=f"6001405{i:09d}",
                    ),
                ],
                nics=[
                    NicInfo(
                        # From the host and VM names alone: hash() of a str changes with PYTHONHASHSEED.
                        mac=stable_mac(host, name),
                        type="network",
                        source="default",
                        model="virtio",
                    )
                ],
                snapshots=[
                    SnapshotInfo(
                        name="before-upgrade",
                        created=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                        state="shutoff",
                        current=True,
                    )
                ]
                if i == 0
                else [],
            )
        )
    return InventorySnapshot(
        hosts=[
            HostFacts(
                uid=_uuid(host),
                hostname=host,
                hypervisor_type="QEMU",
                hypervisor_version="7.2.0",
                libvirt_version="9.0.0",
                cpu_model="EPYC-Rome",
                cpu_arch="x86_64",
                cpu_sockets=2,
                cpu_cores=16,
                cpu_threads=2,
                cpu_count=64,
                cpu_mhz=2900,
                memory_bytes=256 << 30,
            )
        ],
        vms=vm_infos,
        pools=[
            PoolInfo(
                uuid=_uuid(f"{host}/pool/default"),
                name="default",
                type="dir",
                target_path=pool_path,
                capacity_bytes=2 << 40,
                allocation_bytes=1 << 40,
                available_bytes=1 << 40,
                state="running",
                active=True,
                autostart=True,
                volumes=volumes,
            )
        ],
        networks=[
            NetworkInfo(
                name="default",
                uuid=_uuid(f"{host}/net/default"),
                bridge="virbr0",
                forward_mode="nat",
                active=True,
                autostart=True,
                ip_address="192.168.122.1",
                netmask="255.255.255.0",
            )
        ],
    )


def make_inventory(provider: Provider | None = None, **kwargs: object) -> Provider:
    """A provider with a discovered host, VMs, pool, volumes and network, applied by the real sync."""
    provider = provider or make_provider()
    sync.apply_snapshot(provider, make_snapshot(host=provider.name, **kwargs))  # type: ignore[arg-type]
    Provider.objects.filter(pk=provider.pk).update(status=Provider.Status.OK)
    provider.refresh_from_db()
    return provider
