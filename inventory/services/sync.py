"""Apply a discovery snapshot to the database: compare, then write only the difference, in bulk.

An unchanged rediscovery writes no inventory row. VMs, hosts, pools and networks that disappear are
marked removed (history is kept); the parts of a VM or pool (disks, NICs, snapshots, volumes) that
disappear from a VM or pool that is still there are deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db import models, transaction
from django.utils import timezone

from inventory import states
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
from inventory.models import (
    Host,
    Network,
    NetworkInterface,
    Provider,
    StoragePool,
    StorageVolume,
    VirtualDisk,
    VirtualMachine,
    VMSnapshot,
)

M = TypeVar("M", bound=models.Model)
BATCH = 500


@dataclass
class KindCounts:
    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.changed + self.removed


@dataclass
class SyncResult:
    """What a sync wrote, per kind of object."""

    kinds: dict[str, KindCounts] = field(default_factory=dict)

    def add(self, kind: str, counts: KindCounts) -> None:
        self.kinds[kind] = counts

    @property
    def added(self) -> int:
        return sum(c.added for c in self.kinds.values())

    @property
    def changed(self) -> int:
        return sum(c.changed for c in self.kinds.values())

    @property
    def removed(self) -> int:
        return sum(c.removed for c in self.kinds.values())

    @property
    def rows_written(self) -> int:
        return self.added + self.changed + self.removed

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {kind: dataclasses.asdict(c) for kind, c in self.kinds.items() if c.total}


class _Reconciler(Generic[M]):
    """Compares rows of one model with incoming field values by natural key and writes the difference.

    ``on_missing``: "mark" sets ``removed_at`` on rows that are gone, "delete" deletes them.
    """

    def __init__(self, model: type[M], existing: Iterable[M], key: Callable[[M], Hashable], *, on_missing: str):
        self.model = model
        self.existing: dict[Hashable, M] = {key(obj): obj for obj in existing}
        self.on_missing = on_missing
        self.to_create: list[M] = []
        self.to_update: list[M] = []
        self.updated_fields: set[str] = set()
        self.seen: set[Hashable] = set()
        self.counts = KindCounts()
        self.marks_removed = hasattr(model, "removed_at")

    def offer(self, key: Hashable, values: dict[str, Any]) -> M:
        """The row for ``key``, created or updated to ``values`` (written at :meth:`flush`)."""
        self.seen.add(key)
        obj = self.existing.get(key)
        if obj is None:
            obj = self.model(**values)
            self.to_create.append(obj)
            self.existing[key] = obj
            return obj
        changed = [name for name, value in values.items() if getattr(obj, name) != value]
        if self.marks_removed and obj.removed_at is not None:
            changed.append("removed_at")
            values = {**values, "removed_at": None}
        if changed:
            for name in changed:
                setattr(obj, name, values[name])
            self.updated_fields.update(changed)
            self.to_update.append(obj)
        return obj

    def flush(self, now: datetime, *, scope: Callable[[Hashable], bool] | None = None) -> KindCounts:
        """Write creations, updates and removals. ``scope`` limits removals to keys it accepts."""
        if self.to_create:
            self.model.objects.bulk_create(self.to_create, batch_size=BATCH)
        if self.to_update:
            self.model.objects.bulk_update(self.to_update, sorted(self.updated_fields), batch_size=BATCH)
        self.counts.added = len(self.to_create)
        self.counts.changed = len(self.to_update)
        gone = [obj for key, obj in self.existing.items() if key not in self.seen and (scope is None or scope(key))]
        if self.on_missing == "mark":
            gone = [obj for obj in gone if obj.removed_at is None]
            for obj in gone:
                obj.removed_at = now
            if gone:
                self.model.objects.bulk_update(gone, ["removed_at"], batch_size=BATCH)
        elif gone:
            pks = [obj.pk for obj in gone]
            for start in range(0, len(pks), BATCH):
                self.model.objects.filter(pk__in=pks[start : start + BATCH]).delete()
        self.counts.removed = len(gone)
        return self.counts


def _host_values(provider: Provider, h: HostFacts) -> dict[str, Any]:
    return {
        "provider_id": provider.pk,
        "uid": h.uid,
        "hostname": h.hostname,
        "hypervisor_type": h.hypervisor_type,
        "hypervisor_version": h.hypervisor_version,
        "libvirt_version": h.libvirt_version,
        "cpu_model": h.cpu_model,
        "cpu_arch": h.cpu_arch,
        "cpu_sockets": h.cpu_sockets,
        "cpu_cores": h.cpu_cores,
        "cpu_threads": h.cpu_threads,
        "cpu_count": h.cpu_count,
        "cpu_mhz": h.cpu_mhz,
        "memory_bytes": h.memory_bytes,
    }


def _vm_values(provider: Provider, v: VMInfo, host_id: int | None) -> dict[str, Any]:
    return {
        "provider_id": provider.pk,
        "host_id": host_id,
        "uuid": v.uuid,
        "name": v.name,
        "state": states.normalize(provider.kind, v.state, v.state_reason),
        "raw_state": v.state,
        "state_reason": v.state_reason,
        "vcpus": v.vcpus,
        "max_vcpus": v.max_vcpus,
        "memory_bytes": v.memory_bytes,
        "max_memory_bytes": v.max_memory_bytes,
        "os_type": v.os_type,
        "arch": v.arch,
        "machine": v.machine,
        "domain_type": v.domain_type,
        "autostart": v.autostart,
        "persistent": v.persistent,
        "description": v.description,
    }


def _disk_values(vm_id: int, d: DiskInfo, volume_id: int | None) -> dict[str, Any]:
    return {
        "vm_id": vm_id,
        "target": d.target,
        "bus": d.bus,
        "device": d.device,
        "source_type": d.source_type,
        "source": d.source,
        "source_pool": d.source_pool,
        "source_volume": d.source_volume,
        "driver_format": d.driver_format,
        "cache": d.cache,
        "serial": d.serial,
        "wwn": d.wwn,
        "read_only": d.read_only,
        "shareable": d.shareable,
        "backing_chain": list(d.backing_chain),
        "persistent": d.persistent,
        "volume_id": volume_id,
    }


def _nic_values(vm_id: int, n: NicInfo) -> dict[str, Any]:
    return {
        "vm_id": vm_id,
        "mac": n.mac.lower(),
        "type": n.type,
        "source": n.source,
        "model": n.model,
        "target": n.target,
    }


def _snapshot_values(vm_id: int, s: SnapshotInfo) -> dict[str, Any]:
    return {
        "vm_id": vm_id,
        "name": s.name,
        "created_at": s.created,
        "state": s.state,
        "description": s.description,
        "parent": s.parent,
        "current": s.current,
    }


def _pool_values(provider: Provider, p: PoolInfo, host_id: int | None) -> dict[str, Any]:
    return {
        "provider_id": provider.pk,
        "host_id": host_id,
        "uuid": p.uuid,
        "name": p.name,
        "type": p.type,
        "target_path": p.target_path,
        "source": p.source,
        "capacity_bytes": p.capacity_bytes,
        "allocation_bytes": p.allocation_bytes,
        "available_bytes": p.available_bytes,
        "state": p.state,
        "active": p.active,
        "autostart": p.autostart,
        "persistent": p.persistent,
    }


def _volume_values(pool_id: int, v: VolumeInfo) -> dict[str, Any]:
    return {
        "pool_id": pool_id,
        "name": v.name,
        "key": v.key,
        "path": v.path,
        "format": v.format,
        "capacity_bytes": v.capacity_bytes,
        "allocation_bytes": v.allocation_bytes,
        "backing_store": v.backing_store,
        "backing_format": v.backing_format,
    }


def _network_values(provider: Provider, n: NetworkInfo, host_id: int | None) -> dict[str, Any]:
    return {
        "provider_id": provider.pk,
        "host_id": host_id,
        "name": n.name,
        "uuid": n.uuid,
        "bridge": n.bridge,
        "forward_mode": n.forward_mode,
        "active": n.active,
        "autostart": n.autostart,
        "persistent": n.persistent,
        "ip_address": n.ip_address,
        "netmask": n.netmask,
    }


def apply_snapshot(provider: Provider, snapshot: InventorySnapshot) -> SyncResult:
    """Bring the provider's inventory rows in line with ``snapshot`` in one transaction."""
    now = timezone.now()
    result = SyncResult()
    with transaction.atomic():
        hosts = _Reconciler(Host, Host.objects.filter(provider=provider), lambda h: h.uid, on_missing="mark")
        for facts in snapshot.hosts:
            hosts.offer(facts.uid, _host_values(provider, facts))
        result.add("host", hosts.flush(now))
        host_ids = {uid: h.pk for uid, h in hosts.existing.items() if isinstance(uid, str)}
        # A provider that is one host (libvirt) owns its pools and networks through that host.
        only_host = host_ids[snapshot.hosts[0].uid] if len(snapshot.hosts) == 1 else None

        pools = _Reconciler(
            StoragePool, StoragePool.objects.filter(provider=provider), lambda p: p.uuid, on_missing="mark"
        )
        for pool in snapshot.pools:
            pools.offer(pool.uuid, _pool_values(provider, pool, only_host))
        result.add("pool", pools.flush(now))

        volumes = _Reconciler(
            StorageVolume,
            StorageVolume.objects.filter(pool__provider=provider),
            lambda v: (v.pool_id, v.key),
            on_missing="delete",
        )
        listed_pool_ids: set[int] = set()
        for pool in snapshot.pools:
            pool_id = pools.existing[pool.uuid].pk
            if pool.active:  # an inactive pool cannot list its volumes: keep what was known
                listed_pool_ids.add(pool_id)
            for vol in pool.volumes:
                volumes.offer((pool_id, vol.key), _volume_values(pool_id, vol))
        result.add("volume", volumes.flush(now, scope=lambda key: key[0] in listed_pool_ids))  # type: ignore[index]
        volume_by_path = {v.path: v.pk for v in volumes.existing.values() if v.path and v.pk}
        volume_by_name = {
            (pools.existing[p.uuid].name, vol.name): volumes.existing[(pools.existing[p.uuid].pk, vol.key)].pk
            for p in snapshot.pools
            for vol in p.volumes
        }

        networks = _Reconciler(Network, Network.objects.filter(provider=provider), lambda n: n.name, on_missing="mark")
        for net in snapshot.networks:
            networks.offer(net.name, _network_values(provider, net, only_host))
        result.add("network", networks.flush(now))

        vms = _Reconciler(
            VirtualMachine, VirtualMachine.objects.filter(provider=provider), lambda v: v.uuid, on_missing="mark"
        )
        for vm in snapshot.vms:
            host_id = host_ids.get(vm.host_uid, only_host) if vm.host_uid else only_host
            vms.offer(vm.uuid, _vm_values(provider, vm, host_id))
        skipped = set(snapshot.skipped_vm_uuids)
        result.add("vm", vms.flush(now, scope=lambda uuid: uuid not in skipped))
        vm_ids = {vm.uuid: vms.existing[vm.uuid].pk for vm in snapshot.vms}
        seen_vm_ids = set(vm_ids.values())

        def in_seen_vm(key: Hashable) -> bool:
            return key[0] in seen_vm_ids  # type: ignore[index,no-any-return]

        disks = _Reconciler(
            VirtualDisk,
            VirtualDisk.objects.filter(vm__provider=provider),
            lambda d: (d.vm_id, d.target),
            on_missing="delete",
        )
        nics = _Reconciler(
            NetworkInterface,
            NetworkInterface.objects.filter(vm__provider=provider),
            lambda n: (n.vm_id, n.mac),
            on_missing="delete",
        )
        snaps = _Reconciler(
            VMSnapshot,
            VMSnapshot.objects.filter(vm__provider=provider),
            lambda s: (s.vm_id, s.name),
            on_missing="delete",
        )
        for vm in snapshot.vms:
            vm_id = vm_ids[vm.uuid]
            for disk in vm.disks:
                volume_id = volume_by_path.get(disk.source) or volume_by_name.get(
                    (disk.source_pool, disk.source_volume)
                )
                disks.offer((vm_id, disk.target), _disk_values(vm_id, disk, volume_id))
            for nic in vm.nics:
                nics.offer((vm_id, nic.mac.lower()), _nic_values(vm_id, nic))
            for snap in vm.snapshots:
                snaps.offer((vm_id, snap.name), _snapshot_values(vm_id, snap))
        result.add("disk", disks.flush(now, scope=in_seen_vm))
        result.add("nic", nics.flush(now, scope=in_seen_vm))
        result.add("snapshot", snaps.flush(now, scope=in_seen_vm))
    return result
