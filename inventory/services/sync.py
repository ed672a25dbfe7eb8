"""Apply a discovery snapshot to the database: compare, then write only the difference, in bulk.

An unchanged rediscovery writes no inventory row. VMs, hosts, pools and networks that disappear are
marked removed (history is kept); the parts of a VM or pool (disks, NICs, snapshots, volumes) that
disappear from a VM or pool that is still there are deleted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db import connection, models, transaction
from django.db.models import QuerySet
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
    VMStateReading,
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


class _WouldWrite(Exception):
    """A dry pass found something to write."""


class _Reconciler(Generic[M]):
    """Compares rows of one model with incoming field values by natural key and writes the difference.

    Existing rows are read as plain dictionaries (no model instances: a rediscovery of 20,000 VMs
    must stay cheap); model instances are built only for rows that are written.
    ``on_missing``: "mark" sets ``removed_at`` on rows that are gone, "delete" deletes them.
    """

    def __init__(
        self,
        model: type[M],
        queryset: QuerySet[M],
        key: Callable[[dict[str, Any]], Hashable],
        *,
        on_missing: str,
        need_ids: bool = True,
    ) -> None:
        self.model = model
        self.queryset = queryset.order_by()
        self.columns = [f.attname for f in model._meta.concrete_fields if f.attname != "first_seen"]
        self.key = key
        self.existing: dict[Hashable, dict[str, Any]] = {key(row): row for row in self.queryset.values(*self.columns)}
        self.on_missing = on_missing
        self.need_ids = need_ids
        self.created: dict[Hashable, dict[str, Any]] = {}
        self.updated: list[dict[str, Any]] = []
        self.updated_fields: set[str] = set()
        self.seen: set[Hashable] = set()
        self.counts = KindCounts()
        self.marks_removed = "removed_at" in self.columns

    def offer(self, key: Hashable, values: dict[str, Any]) -> None:
        """Create or update the row for ``key`` to ``values`` (written at :meth:`flush`)."""
        if key in self.seen:
            # The platform listed the same object twice (e.g. one MAC on two NICs): the first one
            # wins, or the two would take turns and every rediscovery would write.
            return
        self.seen.add(key)
        row = self.existing.get(key)
        if row is None:
            self.created.setdefault(key, values)
            return
        changed = {name: value for name, value in values.items() if row[name] != value}
        if self.marks_removed and row["removed_at"] is not None:
            changed["removed_at"] = None
        if changed:
            row.update(changed)
            self.updated_fields.update(changed)
            self.updated.append(row)

    def pk_of(self, key: Hashable) -> int:
        """The row id for ``key`` (after :meth:`flush` for new rows)."""
        return int(self.existing[key]["id"])

    def pk_by(self, field: str) -> dict[Any, int]:
        """Map a field's value to the row id, over all rows (after :meth:`flush`)."""
        return {row[field]: int(row["id"]) for row in self.existing.values() if row[field]}

    def flush(self, now: datetime, *, scope: Callable[[Hashable], bool] | None = None, dry: bool = False) -> KindCounts:
        """Write creations, updates and removals. ``scope`` limits removals to keys it accepts.

        ``dry``: write nothing; raise :class:`_WouldWrite` if there is anything to write.
        """
        manager = self.model._default_manager
        gone_keys = [key for key in self.existing if key not in self.seen and (scope is None or scope(key))]
        gone = [self.existing[key] for key in gone_keys]
        if self.on_missing == "mark":
            gone = [row for row in gone if row["removed_at"] is None]
        if dry:
            if self.created or self.updated or gone:
                raise _WouldWrite
            return self.counts
        if self.created:
            _insert_rows(self.model, list(self.created.values()), now)
            if self.need_ids:  # read back the new ids by natural key, for the rows that refer to them
                for row in self.queryset.values(*self.columns):
                    key = self.key(row)
                    if key in self.created:
                        self.existing[key] = row
        if self.updated:
            fields = sorted(self.updated_fields)
            objs = [self.model(pk=row["id"], **{f: row[f] for f in fields}) for row in self.updated]
            manager.bulk_update(objs, fields, batch_size=BATCH)
        self.counts.added = len(self.created)
        self.counts.changed = len(self.updated)
        if self.on_missing == "mark":
            for row in gone:
                row["removed_at"] = now
            if gone:
                manager.bulk_update([self.model(pk=row["id"], removed_at=now) for row in gone], ["removed_at"])
        elif gone:
            pks = [row["id"] for row in gone]
            for start in range(0, len(pks), BATCH):
                manager.filter(pk__in=pks[start : start + BATCH]).delete()
            for key in gone_keys:  # a deleted row must not be found, and referred to, any more
                del self.existing[key]
        self.counts.removed = len(gone)
        return self.counts


def _insert_rows(model: type[models.Model], rows: list[dict[str, Any]], now: datetime) -> None:
    """INSERT many rows with one prepared statement (``executemany``).

    ``bulk_create`` spends most of a first discovery preparing each value through the ORM's
    compiler; the values here are already plain, so only JSON and datetimes need adapting.
    """
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    adapt = {f.attname for f in fields if isinstance(f, models.JSONField | models.DateTimeField)}
    defaults = {
        f.attname: now if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False) else f.get_default()
        for f in fields
    }
    prepared = []
    for values in rows:
        row = []
        for f in fields:
            value = values.get(f.attname, defaults[f.attname])
            if f.attname in adapt and value is not None:
                value = f.get_db_prep_save(value, connection)
            row.append(value)
        prepared.append(row)
    qn = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 - table and column names from the model
        qn(model._meta.db_table), ", ".join(qn(str(f.column)) for f in fields), ", ".join(["%s"] * len(fields))
    )
    with connection.cursor() as cursor:
        for start in range(0, len(prepared), BATCH):
            cursor.executemany(sql, prepared[start : start + BATCH])


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it will read back from a JSON column (tuples as lists, dates as text), so that
    comparing it with the stored value finds no change where there is none."""
    if not value:
        return {}
    result: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return result


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
        "details": _json(h.extra),
    }


def _vm_values(provider: Provider, v: VMInfo, host_id: int | None) -> dict[str, Any]:
    return {
        "provider_id": provider.pk,
        "host_id": host_id,
        "uuid": v.uuid,
        "name": v.name,
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
        "details": _json(v.extra),
        **_vm_check(provider, v),
    }


StateValues = tuple[str, str, str]  # (normalized state, the platform's word, its reason)


def _state_of(provider: Provider, v: VMInfo) -> StateValues:
    return (states.normalize(provider.kind, v.state, v.state_reason), v.state, v.state_reason)


def _stored_state(row: dict[str, Any] | None) -> StateValues | None:
    if row is None:
        return None
    return (row["state"], row["raw_state"], row["state_reason"])


def write_states(readings: dict[int, StateValues], read_at: datetime) -> set[int]:
    """Write VMs' states read at ``read_at``, compare-and-set: a VM whose state was read later (by an
    operation, a monitor or another discovery) keeps it. One UPDATE per distinct state; returns the
    ids of the VMs written.
    """
    by_state: dict[StateValues, list[int]] = {}
    for vm_id, values in readings.items():
        by_state.setdefault(values, []).append(vm_id)
    written: set[int] = set()
    older = models.Q(state_read_at__isnull=True) | models.Q(state_read_at__lte=read_at)
    for (state, raw_state, reason), ids in by_state.items():
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            candidates = VirtualMachine.objects.filter(older, pk__in=batch)
            ids_written = list(candidates.values_list("pk", flat=True))
            if candidates.update(state=state, raw_state=raw_state, state_reason=reason[:100], state_read_at=read_at):
                written.update(ids_written)
    return written


def record_vm_state(vm: VirtualMachine, reading: VMStateReading) -> str:
    """Store one VM's state as just read (compare-and-set on ``reading.read_at``); ``vm`` is brought up
    to date with what the database holds afterwards. Returns the normalized state."""
    values = (
        states.normalize(vm.provider.kind, reading.state, reading.state_reason),
        reading.state,
        reading.state_reason,
    )
    if not write_states({vm.pk: values}, reading.read_at):
        current = VirtualMachine.objects.filter(pk=vm.pk).values("state", "raw_state", "state_reason").first()
        if current is not None:
            values = (current["state"], current["raw_state"], current["state_reason"])
    vm.state, vm.raw_state, vm.state_reason = values
    return vm.state


def _vm_check(provider: Provider, v: VMInfo) -> dict[str, Any]:
    """RHEV: a VM the manager itself restarts (its own HA on) must not also be managed here."""
    if provider.kind != Provider.Kind.RHEV:
        return {}
    if v.extra.get("ha_enabled"):
        from inventory.drivers.rhev import HA_ENABLED_REASON

        return {"check_ok": False, "check_message": HA_ENABLED_REASON}
    return {"check_ok": True, "check_message": ""}


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
        "details": _json(d.extra),
    }


def _nic_values(vm_id: int, n: NicInfo) -> dict[str, Any]:
    return {
        "vm_id": vm_id,
        "mac": n.mac.lower(),
        "type": n.type,
        "source": n.source,
        "model": n.model,
        "target": n.target,
        "details": _json(n.extra),
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
        "details": _json(s.extra),
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
        "details": _json(p.extra),
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
        "details": _json(n.extra),
    }


def apply_snapshot(provider: Provider, snapshot: InventorySnapshot) -> SyncResult:
    """Bring the provider's inventory rows in line with ``snapshot`` in one transaction.

    A first pass only reads: when nothing changed (the usual rediscovery) no write transaction is
    opened at all, so discoveries of many providers do not queue for the database's write lock.
    """
    now = timezone.now()
    try:
        return _apply(provider, snapshot, now, dry=True)
    except _WouldWrite:
        pass
    with transaction.atomic():
        return _apply(provider, snapshot, now, dry=False)


def _apply(provider: Provider, snapshot: InventorySnapshot, now: datetime, *, dry: bool) -> SyncResult:
    result = SyncResult()
    manager_facts = _json(snapshot.facts)
    if manager_facts and manager_facts != provider.facts:
        if dry:
            raise _WouldWrite
        Provider.objects.filter(pk=provider.pk).update(facts=manager_facts)
        provider.facts = manager_facts
        result.add("manager", KindCounts(changed=1))
    hosts = _Reconciler(Host, Host.objects.filter(provider=provider), lambda r: r["uid"], on_missing="mark")
    for facts in snapshot.hosts:
        hosts.offer(facts.uid, _host_values(provider, facts))
    result.add("host", hosts.flush(now, dry=dry))
    host_ids = {facts.uid: hosts.pk_of(facts.uid) for facts in snapshot.hosts}
    # A provider that is one host (libvirt) owns its pools and networks through that host.
    only_host = host_ids[snapshot.hosts[0].uid] if len(snapshot.hosts) == 1 else None

    pools = _Reconciler(
        StoragePool, StoragePool.objects.filter(provider=provider), lambda r: r["uuid"], on_missing="mark"
    )
    for pool in snapshot.pools:
        pools.offer(pool.uuid, _pool_values(provider, pool, only_host))
    result.add("pool", pools.flush(now, dry=dry))

    volumes = _Reconciler(
        StorageVolume,
        StorageVolume.objects.filter(pool__provider=provider),
        lambda r: (r["pool_id"], r["key"]),
        on_missing="delete",
    )
    listed_pool_ids: set[int] = set()
    volume_keys_by_name: dict[tuple[str, str], tuple[int, str]] = {}
    for pool in snapshot.pools:
        pool_id = pools.pk_of(pool.uuid)
        if pool.active:  # an inactive pool cannot list its volumes: keep what was known
            listed_pool_ids.add(pool_id)
        for vol in pool.volumes:
            volumes.offer((pool_id, vol.key), _volume_values(pool_id, vol))
            volume_keys_by_name[(pool.name, vol.name)] = (pool_id, vol.key)
    result.add("volume", volumes.flush(now, dry=dry, scope=lambda key: key[0] in listed_pool_ids))  # type: ignore[index]
    volume_by_path = volumes.pk_by("path")
    volume_by_name = {name: volumes.pk_of(key) for name, key in volume_keys_by_name.items()}

    # Nothing refers to networks, disks, NICs or snapshots by id: their new ids need not be read back.
    networks = _Reconciler(
        Network, Network.objects.filter(provider=provider), lambda r: r["name"], on_missing="mark", need_ids=False
    )
    for net in snapshot.networks:
        networks.offer(net.name, _network_values(provider, net, only_host))
    result.add("network", networks.flush(now, dry=dry))

    vms = _Reconciler(
        VirtualMachine, VirtualMachine.objects.filter(provider=provider), lambda r: r["uuid"], on_missing="mark"
    )
    for vm in snapshot.vms:
        host_id = host_ids.get(vm.host_uid, only_host) if vm.host_uid else only_host
        vms.offer(vm.uuid, _vm_values(provider, vm, host_id))
    skipped = set(snapshot.skipped_vm_uuids)
    vm_counts = vms.flush(now, dry=dry, scope=lambda uuid: uuid not in skipped)
    # The states last: compare-and-set on the time of the reading, not part of the bulk update.
    readings = {vm.uuid: _state_of(provider, vm) for vm in snapshot.vms}
    differing = {
        uuid: reading for uuid, reading in readings.items() if _stored_state(vms.existing.get(uuid)) != reading
    }
    if dry and differing:
        raise _WouldWrite
    written = write_states(
        {int(vms.existing[uuid]["id"]): reading for uuid, reading in differing.items()}, snapshot.read_at
    )
    created = {int(vms.existing[key]["id"]) for key in vms.created if key in vms.existing}
    updated = {int(row["id"]) for row in vms.updated}
    vm_counts.changed = len((updated | written) - created)
    result.add("vm", vm_counts)
    vm_ids = {vm.uuid: vms.pk_of(vm.uuid) for vm in snapshot.vms}
    seen_vm_ids = set(vm_ids.values())

    def in_seen_vm(key: Hashable) -> bool:
        return key[0] in seen_vm_ids  # type: ignore[index]

    disks = _Reconciler(
        VirtualDisk,
        VirtualDisk.objects.filter(vm__provider=provider),
        lambda r: (r["vm_id"], r["target"]),
        on_missing="delete",
        need_ids=False,
    )
    nics = _Reconciler(
        NetworkInterface,
        NetworkInterface.objects.filter(vm__provider=provider),
        lambda r: (r["vm_id"], r["mac"]),
        on_missing="delete",
        need_ids=False,
    )
    snaps = _Reconciler(
        VMSnapshot,
        VMSnapshot.objects.filter(vm__provider=provider),
        lambda r: (r["vm_id"], r["name"]),
        on_missing="delete",
        need_ids=False,
    )
    for vm in snapshot.vms:
        vm_id = vm_ids[vm.uuid]
        for disk in vm.disks:
            volume_id = volume_by_path.get(disk.source) or volume_by_name.get((disk.source_pool, disk.source_volume))
            disks.offer((vm_id, disk.target), _disk_values(vm_id, disk, volume_id))
        for nic in vm.nics:
            nics.offer((vm_id, nic.mac.lower()), _nic_values(vm_id, nic))
        for snap in vm.snapshots:
            snaps.offer((vm_id, snap.name), _snapshot_values(vm_id, snap))
    result.add("disk", disks.flush(now, dry=dry, scope=in_seen_vm))
    result.add("nic", nics.flush(now, dry=dry, scope=in_seen_vm))
    result.add("snapshot", snaps.flush(now, dry=dry, scope=in_seen_vm))
    return result
