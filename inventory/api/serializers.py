"""API serializers: every field named; shapes are checked here, meaning in ``inventory.services``.

List serializers are flat (related objects as id + name, read through ``select_related``) so a page of
500 VMs costs the same few queries as a page of 5; detail serializers nest what one object holds.
Provider passwords are write-only: responses say ``has_password`` and never carry the secret.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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
from inventory.services.export import DISK_OWN_FIELDS
from inventory.services.operations import SPECS, Kind, allowed_operations
from vom.jobs.api import JobSerializer
from vom.jobs.models import Job

# The VM power actions of the API: URL segment (``POST /api/vms/{id}/<action>/``) → operation kind.
VM_POWER_ACTIONS: dict[str, str] = {
    "start": Kind.VM_START,
    "shutdown": Kind.VM_SHUTDOWN,
    "power-off": Kind.VM_POWER_OFF,
    "reboot": Kind.VM_REBOOT,
    "suspend": Kind.VM_SUSPEND,
    "resume": Kind.VM_RESUME,
}
BULK_MAX_IDS = 1000
SNAPSHOT_NAME_MAX = 100  # the operation service refuses longer names


def _name_of(source: str) -> serializers.CharField:
    """A related object's display name, read through a join; null when the relation is empty."""
    return serializers.CharField(source=source, read_only=True, allow_null=True)


# --- providers and discovery -------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer[Provider]):
    """A provider. ``password`` is write-only; ``clear_password: true`` removes the stored one.

    On update, an omitted or empty ``password`` keeps the stored password. ``kind`` is fixed once created.
    """

    # Declared explicitly so that uniqueness and meaning are judged by the provider service alone.
    name = serializers.CharField(max_length=100)
    uri = serializers.CharField(max_length=500, label="URI")
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1000,
        style={"input_type": "password"},
        help_text="Write-only. Omit or leave empty to keep the stored password.",
    )
    clear_password = serializers.BooleanField(
        write_only=True, required=False, default=False, help_text="Remove the stored password."
    )
    has_password = serializers.BooleanField(read_only=True)
    ca_certificate = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=65536,
        trim_whitespace=False,
        help_text="RHEV: the manager's CA certificate in PEM form (public, so readable). Ignored for other kinds.",
    )
    facts = serializers.JSONField(
        read_only=True, help_text="What the manager reported: RHEV product, datacenters, clusters, templates."
    )
    host_count = serializers.IntegerField(read_only=True)
    vm_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "uri",
            "username",
            "password",
            "clear_password",
            "has_password",
            "discovery_interval",
            "enabled",
            "description",
            "ca_certificate",
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
            "status",
            "stale_reason",
            "last_discovery_at",
            "last_success_at",
            "host_count",
            "vm_count",
            "created",
            "updated",
        ]
        read_only_fields = [
            "status",
            "stale_reason",
            "last_discovery_at",
            "last_success_at",
            "check_ok",
            "check_message",
            "checked_at",
            "created",
            "updated",
        ]
        extra_kwargs = {
            "insecure": {"help_text": "RHEV: do not verify the manager's TLS certificate."},
            "cluster_filter": {"help_text": "RHEV: discover only this cluster. Empty: all clusters."},
            "winrm_auth": {"help_text": "Hyper-V: WinRM authentication (basic only with use_https)."},
            "use_https": {"help_text": "Hyper-V: WinRM over HTTPS."},
            "port": {"help_text": "Hyper-V: WinRM port; null: 5986 with HTTPS, 5985 without."},
            "cert_validation": {"help_text": "Hyper-V: validate the server's certificate."},
        }

    def validate_kind(self, value: str) -> str:
        if self.instance is not None and value != self.instance.kind:
            raise serializers.ValidationError("The kind of a provider cannot be changed.")
        return value


class DiscoverySerializer(serializers.ModelSerializer[Job]):
    """A discovery (a job of kind ``discovery``): of which provider, how it went, what it changed."""

    provider = serializers.IntegerField(source="target_id", read_only=True, allow_null=True)
    provider_name = serializers.CharField(source="target_name", read_only=True)
    requested_by = _name_of("requested_by.username")
    duration_ms = serializers.SerializerMethodField()
    added = serializers.SerializerMethodField()
    changed = serializers.SerializerMethodField()
    removed = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "provider",
            "provider_name",
            "status",
            "trigger",
            "requested_by",
            "created",
            "started",
            "finished",
            "duration_ms",
            "added",
            "changed",
            "removed",
            "counts",
            "error",
            "retryable",
        ]
        read_only_fields = fields

    def _result(self, job: Job, name: str) -> Any:
        return (job.result or {}).get(name)

    def get_duration_ms(self, job: Job) -> int | None:
        value = self._result(job, "duration_ms")
        return int(value) if value is not None else None

    def get_added(self, job: Job) -> int:
        return int(self._result(job, "added") or 0)

    def get_changed(self, job: Job) -> int:
        return int(self._result(job, "changed") or 0)

    def get_removed(self, job: Job) -> int:
        return int(self._result(job, "removed") or 0)

    def get_counts(self, job: Job) -> dict[str, dict[str, int]]:
        counts = self._result(job, "counts")
        return counts if isinstance(counts, dict) else {}


# --- inventory ---------------------------------------------------------------------------------


class HostSerializer(serializers.ModelSerializer[Host]):
    provider_name = _name_of("provider.name")
    platform = serializers.CharField(source="provider.kind", read_only=True)
    vm_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "hostname",
            "uid",
            "provider",
            "provider_name",
            "platform",
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
            "vm_count",
            "details",
            "first_seen",
            "removed_at",
        ]
        read_only_fields = fields


class VMListSerializer(serializers.ModelSerializer[VirtualMachine]):
    """A VM in a list: flat, only columns of the VM row and its joined provider and host."""

    provider_name = _name_of("provider.name")
    platform = serializers.CharField(source="provider.kind", read_only=True)
    host_name = _name_of("host.hostname")

    class Meta:
        model = VirtualMachine
        fields = [
            "id",
            "name",
            "uuid",
            "state",
            "raw_state",
            "state_reason",
            "provider",
            "provider_name",
            "platform",
            "host",
            "host_name",
            "vcpus",
            "memory_bytes",
            "persistent",
            "autostart",
            "first_seen",
            "removed_at",
        ]
        read_only_fields = fields


class VolumeRefSerializer(serializers.ModelSerializer[StorageVolume]):
    """The pool volume backing a virtual disk."""

    pool_name = _name_of("pool.name")

    class Meta:
        model = StorageVolume
        fields = ["id", "name", "path", "format", "capacity_bytes", "allocation_bytes", "pool", "pool_name"]
        read_only_fields = fields


# A disk's own facts, the same in the VM detail, the disk list and the export.
DISK_FIELDS = DISK_OWN_FIELDS


class VMDiskSerializer(serializers.ModelSerializer[VirtualDisk]):
    """A disk as the guest sees it, with its host-side source and the pool volume behind it, if any."""

    volume = VolumeRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = VirtualDisk
        fields = [
            "id",
            *DISK_FIELDS,
            "volume",
            "details",
        ]
        read_only_fields = fields


class VMNicSerializer(serializers.ModelSerializer[NetworkInterface]):
    class Meta:
        model = NetworkInterface
        fields = ["id", "mac", "type", "source", "model", "target", "details"]
        read_only_fields = fields


class VMSnapshotRefSerializer(serializers.ModelSerializer[VMSnapshot]):
    class Meta:
        model = VMSnapshot
        fields = ["id", "name", "created_at", "state", "description", "parent", "current", "details"]
        read_only_fields = fields


class VMDetailSerializer(VMListSerializer):
    """One VM with its disks, NICs and snapshots, and the power operations its state allows now."""

    disks = VMDiskSerializer(many=True, read_only=True)
    nics = VMNicSerializer(many=True, read_only=True)
    snapshots = VMSnapshotRefSerializer(many=True, read_only=True)
    allowed_operations = serializers.SerializerMethodField(
        help_text="Operation kinds the VM's state allows now (vm_start → POST …/start/, vm_power_off → …/power-off/)."
    )

    class Meta(VMListSerializer.Meta):
        fields = [
            *VMListSerializer.Meta.fields,
            "max_vcpus",
            "max_memory_bytes",
            "os_type",
            "arch",
            "machine",
            "domain_type",
            "description",
            "details",
            "check_ok",
            "check_message",
            "disks",
            "nics",
            "snapshots",
            "allowed_operations",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=sorted(SPECS))))
    def get_allowed_operations(self, vm: VirtualMachine) -> list[str]:
        return allowed_operations(vm)


class DiskSerializer(serializers.ModelSerializer[VirtualDisk]):
    """A virtual disk in the disk list: its VM, its host-side source and the pool volume behind it."""

    vm_name = _name_of("vm.name")
    provider = serializers.IntegerField(source="vm.provider_id", read_only=True)
    provider_name = _name_of("vm.provider.name")
    volume_name = _name_of("volume.name")
    pool = serializers.IntegerField(source="volume.pool_id", read_only=True, allow_null=True)
    pool_name = _name_of("volume.pool.name")

    class Meta:
        model = VirtualDisk
        fields = [
            "id",
            "vm",
            "vm_name",
            "provider",
            "provider_name",
            *DISK_FIELDS,
            "volume",
            "volume_name",
            "pool",
            "pool_name",
            "details",
        ]
        read_only_fields = fields


class NicSerializer(serializers.ModelSerializer[NetworkInterface]):
    vm_name = _name_of("vm.name")

    class Meta:
        model = NetworkInterface
        fields = ["id", "vm", "vm_name", "mac", "type", "source", "model", "target", "details"]
        read_only_fields = fields


class SnapshotSerializer(serializers.ModelSerializer[VMSnapshot]):
    vm_name = _name_of("vm.name")

    class Meta:
        model = VMSnapshot
        fields = ["id", "vm", "vm_name", "name", "created_at", "state", "description", "parent", "current", "details"]
        read_only_fields = fields


class PoolSerializer(serializers.ModelSerializer[StoragePool]):
    provider_name = _name_of("provider.name")
    host_name = _name_of("host.hostname")
    used_percent = serializers.IntegerField(read_only=True)
    volume_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = StoragePool
        fields = [
            "id",
            "name",
            "uuid",
            "provider",
            "provider_name",
            "host",
            "host_name",
            "type",
            "target_path",
            "source",
            "capacity_bytes",
            "allocation_bytes",
            "available_bytes",
            "used_percent",
            "state",
            "active",
            "autostart",
            "persistent",
            "volume_count",
            "details",
            "first_seen",
            "removed_at",
        ]
        read_only_fields = fields


class VolumeSerializer(serializers.ModelSerializer[StorageVolume]):
    pool_name = _name_of("pool.name")
    provider = serializers.IntegerField(source="pool.provider_id", read_only=True)
    provider_name = _name_of("pool.provider.name")
    disk_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = StorageVolume
        fields = [
            "id",
            "name",
            "key",
            "path",
            "format",
            "pool",
            "pool_name",
            "provider",
            "provider_name",
            "capacity_bytes",
            "allocation_bytes",
            "backing_store",
            "backing_format",
            "disk_count",
        ]
        read_only_fields = fields


class NetworkSerializer(serializers.ModelSerializer[Network]):
    provider_name = _name_of("provider.name")
    host_name = _name_of("host.hostname")

    class Meta:
        model = Network
        fields = [
            "id",
            "name",
            "uuid",
            "provider",
            "provider_name",
            "host",
            "host_name",
            "bridge",
            "forward_mode",
            "active",
            "autostart",
            "persistent",
            "ip_address",
            "netmask",
            "details",
            "first_seen",
            "removed_at",
        ]
        read_only_fields = fields


# --- requests ----------------------------------------------------------------------------------


def validate_snapshot_name(value: str) -> None:
    """The shape the operation service accepts: ≤ 100 characters, no '/', no control characters."""
    if "/" in value:
        raise serializers.ValidationError("A snapshot name cannot contain '/'.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise serializers.ValidationError("A snapshot name cannot contain control characters.")


class SnapshotCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=SNAPSHOT_NAME_MAX, validators=[validate_snapshot_name])
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class BulkActionSerializer(serializers.Serializer[Any]):
    """``ids`` of VMs (each must exist) and one power ``action`` to request for every one of them."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        min_length=1,
        max_length=BULK_MAX_IDS,
        help_text=f"VM ids, at most {BULK_MAX_IDS}.",
    )
    action = serializers.ChoiceField(choices=list(VM_POWER_ACTIONS))

    def validate_ids(self, value: list[int]) -> list[int]:
        ids = list(dict.fromkeys(value))  # duplicates would only be refused as "already in progress"
        found = set(VirtualMachine.objects.filter(pk__in=ids).values_list("pk", flat=True))
        missing = [pk for pk in ids if pk not in found]
        if missing:
            shown = ", ".join(str(pk) for pk in missing[:20]) + (" …" if len(missing) > 20 else "")
            raise serializers.ValidationError(f"No VM with id {shown}.")
        return ids


class MigrateSerializer(serializers.Serializer[Any]):
    """Where to live-migrate a VM: a host of the same provider, or omitted/null to let the manager choose."""

    host = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Target host id; omit to let the manager choose.",
    )


class BulkRefusalSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class BulkActionResultSerializer(serializers.Serializer[Any]):
    queued = JobSerializer(many=True)
    refused = BulkRefusalSerializer(many=True)
