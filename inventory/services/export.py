"""The whole inventory as plain JSON-ready data (no secrets), for backups and other tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import Model, Prefetch
from django.utils import timezone

from inventory.models import Provider, StoragePool, VirtualMachine

PROVIDER_FIELDS = [
    "name",
    "kind",
    "uri",
    "username",
    "discovery_interval",
    "enabled",
    "description",
    "status",
    "stale_reason",
    "last_discovery_at",
    "last_success_at",
    "insecure",
    "cluster_filter",
    "winrm_auth",
    "use_https",
    "port",
    "cert_validation",
    "facts",
    "check_ok",
    "check_message",
    "checked_at",
]
HOST_FIELDS = [
    "uid",
    "hostname",
    "hypervisor_type",
    "hypervisor_version",
    "libvirt_version",
    "cpu_model",
    "cpu_arch",
    "cpu_sockets",
    "cpu_cores",
    "cpu_threads",
    "cpu_count",
    "cpu_mhz",
    "memory_bytes",
    "removed_at",
    "details",
]
VM_FIELDS = [
    "uuid",
    "name",
    "state",
    "raw_state",
    "state_reason",
    "vcpus",
    "max_vcpus",
    "memory_bytes",
    "max_memory_bytes",
    "os_type",
    "arch",
    "machine",
    "domain_type",
    "autostart",
    "persistent",
    "description",
    "removed_at",
    "details",
    "check_ok",
    "check_message",
]
DISK_OWN_FIELDS = [
    "target",
    "bus",
    "device",
    "source_type",
    "source",
    "source_pool",
    "source_volume",
    "driver_format",
    "cache",
    "serial",
    "wwn",
    "read_only",
    "shareable",
    "backing_chain",
    "persistent",
]
DISK_FIELDS = [*DISK_OWN_FIELDS, "details"]
NIC_FIELDS = ["mac", "type", "source", "model", "target", "details"]
SNAPSHOT_FIELDS = ["name", "created_at", "state", "description", "parent", "current", "details"]
POOL_FIELDS = [
    "uuid",
    "name",
    "type",
    "target_path",
    "source",
    "capacity_bytes",
    "allocation_bytes",
    "available_bytes",
    "state",
    "active",
    "autostart",
    "persistent",
    "removed_at",
    "details",
]
VOLUME_FIELDS = [
    "name",
    "key",
    "path",
    "format",
    "capacity_bytes",
    "allocation_bytes",
    "backing_store",
    "backing_format",
]
NETWORK_FIELDS = [
    "name",
    "uuid",
    "bridge",
    "forward_mode",
    "active",
    "autostart",
    "persistent",
    "ip_address",
    "netmask",
    "removed_at",
    "details",
]


def _plain(obj: Model, fields: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def _providers() -> Iterator[dict[str, Any]]:
    vms = VirtualMachine.objects.select_related("host").prefetch_related("disks", "nics", "snapshots")
    pools = StoragePool.objects.prefetch_related("volumes")
    for provider in Provider.objects.prefetch_related(
        "hosts", Prefetch("vms", queryset=vms), Prefetch("pools", queryset=pools), "networks"
    ):
        item = _plain(provider, PROVIDER_FIELDS)
        item["has_password"] = provider.has_password
        item["hosts"] = [_plain(h, HOST_FIELDS) for h in provider.hosts.all()]
        item["vms"] = [
            {
                **_plain(vm, VM_FIELDS),
                "host": vm.host.hostname if vm.host else None,
                "disks": [_plain(d, DISK_FIELDS) for d in vm.disks.all()],
                "nics": [_plain(n, NIC_FIELDS) for n in vm.nics.all()],
                "snapshots": [_plain(s, SNAPSHOT_FIELDS) for s in vm.snapshots.all()],
            }
            for vm in provider.vms.all()
        ]
        item["pools"] = [
            {**_plain(p, POOL_FIELDS), "volumes": [_plain(v, VOLUME_FIELDS) for v in p.volumes.all()]}
            for p in provider.pools.all()
        ]
        item["networks"] = [_plain(n, NETWORK_FIELDS) for n in provider.networks.all()]
        yield item


def export_inventory() -> dict[str, Any]:
    """Every provider with its hosts, VMs (disks, NICs, snapshots), pools (volumes) and networks."""
    return {"exported_at": timezone.now().isoformat(), "format": "vom-inventory/1", "providers": list(_providers())}
