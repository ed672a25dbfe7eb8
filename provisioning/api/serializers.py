"""Provisioning API serializers: every field named; shapes are checked here, meaning in ``provisioning.services``.

Request bodies name objects by id; an unknown id is a 400 on its field. Bounds given here only keep
numbers inside what the database and Python handle: the services give the real limits, and say them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory.models import Host, StoragePool, StorageVolume, VirtualDisk, VirtualMachine
from provisioning import selectors
from provisioning.models import GoldenImage, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import VOLUME_FORMATS, GiB
from provisioning.services.disks import DISK_BUSES
from provisioning.services.savings import Child, ImageSavings, ParentGroup, Savings, image_savings

MAX_NUMBER_INPUT = 10**12
MAX_MEMORY_MIB_INPUT = 1024**3  # 1 EiB
MAX_SIZE_BYTES_INPUT = 2**62
MAX_SIZE_GIB_INPUT = 2**32


def _name_of(source: str) -> serializers.CharField:
    return serializers.CharField(source=source, read_only=True, allow_null=True)


def _object(
    model: type[Any], what: str, queryset: Any = None, **kwargs: Any
) -> serializers.PrimaryKeyRelatedField[Any]:
    """A body field naming an object by id; an unknown id is refused on the field with a plain reason."""
    return serializers.PrimaryKeyRelatedField(
        queryset=queryset if queryset is not None else model.objects.all(),
        error_messages={
            "does_not_exist": f"No {what} with id {{pk_value}}.",
            "incorrect_type": f"A {what} id (a number), not {{data_type}}.",
        },
        **kwargs,
    )


# --- savings --------------------------------------------------------------------------------------


class SavingsSerializer(serializers.Serializer[Savings]):
    """Actual allocation of space-optimized children against as many full copies of their parent."""

    children = serializers.IntegerField(help_text="Space-optimized (copy-on-write) children.")
    children_bytes = serializers.IntegerField(help_text="What the children take on disk, as last read.")
    full_equivalent_bytes = serializers.IntegerField(help_text="What as many full copies of the parent would take.")
    saved_bytes = serializers.IntegerField()
    children_percent = serializers.FloatField(help_text="children_bytes in percent of full_equivalent_bytes.")
    full_copies = serializers.IntegerField(help_text="Full copies made (not part of the comparison).")
    full_copies_bytes = serializers.IntegerField()

    def to_representation(self, instance: Savings) -> dict[str, Any]:
        return dict(instance.as_dict())


class ImageChildSerializer(serializers.Serializer[Child]):
    """A volume made from the image and the VM using it."""

    volume = serializers.IntegerField(source="volume.pk")
    volume_name = serializers.CharField(source="volume.name")
    volume_path = serializers.CharField(source="volume.path")
    pool = serializers.IntegerField(source="volume.pool_id")
    pool_name = serializers.CharField(source="volume.pool.name")
    mode = serializers.ChoiceField(choices=Mode.choices)
    format = serializers.CharField(source="volume.format")
    allocation_bytes = serializers.IntegerField(source="volume.allocation_bytes")
    capacity_bytes = serializers.IntegerField(source="volume.capacity_bytes")
    vm = serializers.IntegerField(source="vm.pk", allow_null=True, default=None)
    vm_name = serializers.CharField(source="vm.name", allow_null=True, default=None)
    request = serializers.IntegerField(
        source="request_id", allow_null=True, help_text="The provisioning request that made it, if one did."
    )


class ParentVolumeSerializer(serializers.ModelSerializer[StorageVolume]):
    class Meta:
        model = StorageVolume
        fields = ["id", "name", "path", "format", "capacity_bytes", "allocation_bytes", "pool"]
        read_only_fields = fields


class ImageSavingsSerializer(serializers.Serializer[ImageSavings]):
    golden_image = serializers.IntegerField(source="image.pk")
    name = serializers.CharField(source="image.name")
    parent = ParentVolumeSerializer(allow_null=True, help_text="The image's volume as last discovered.")
    savings = SavingsSerializer()
    children = ImageChildSerializer(many=True)


# --- golden images --------------------------------------------------------------------------------


class GoldenImageSerializer(serializers.ModelSerializer[GoldenImage]):
    """A golden image: its volume, the VM definition new VMs copy, and what its children save.

    ``savings`` is read from the inventory's actual allocations (the list and the detail count alike).
    """

    url = serializers.HyperlinkedIdentityField(view_name="api:goldenimage-detail")
    provider_name = _name_of("provider.name")
    pool_name = _name_of("pool.name")
    savings = serializers.SerializerMethodField()
    children_count = serializers.SerializerMethodField(help_text="Space-optimized children and full copies.")
    created_by = _name_of("created_by.username")

    class Meta:
        model = GoldenImage
        fields = [
            "id",
            "url",
            "name",
            "os",
            "description",
            "provider",
            "provider_name",
            "pool",
            "pool_name",
            "volume",
            "volume_name",
            "volume_path",
            "format",
            "capacity_bytes",
            "allocation_bytes",
            "template_vm",
            "template_vm_name",
            "template_vm_uuid",
            "template_vcpus",
            "template_memory_bytes",
            "children_count",
            "savings",
            "created",
            "created_by",
        ]
        read_only_fields = fields

    def _savings(self, image: GoldenImage) -> Savings:
        """From the list's annotations (``selectors.golden_image_list``), else read with ``image_savings``; once."""
        cached: Savings | None = getattr(image, "_api_savings", None)
        if cached is None:
            cached = Savings.of_listed(image) if hasattr(image, "child_count") else image_savings(image).savings
            setattr(image, "_api_savings", cached)  # noqa: B010 - a plain cache on the row, not a model field
        return cached

    @extend_schema_field(SavingsSerializer)
    def get_savings(self, image: GoldenImage) -> dict[str, Any]:
        return dict(self._savings(image).as_dict())

    @extend_schema_field(serializers.IntegerField())
    def get_children_count(self, image: GoldenImage) -> int:
        savings = self._savings(image)
        return savings.children + savings.full_copies


class GoldenImageCreateSerializer(serializers.Serializer[Any]):
    """Register a volume, or a shut-off VM's boot disk, as a golden image (at least one of the two).

    With only ``volume``, the template VM is the one VM using it; with only ``template_vm``, the volume
    is its boot disk.
    """

    name = serializers.CharField(max_length=100)
    os = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=10000, required=False, allow_blank=True, default="")
    volume = _object(
        StorageVolume,
        "volume",
        StorageVolume.objects.select_related("pool", "pool__provider"),
        required=False,
        allow_null=True,
    )
    template_vm = _object(
        VirtualMachine, "VM", VirtualMachine.objects.select_related("provider"), required=False, allow_null=True
    )


class ProvisionSerializer(serializers.Serializer[Any]):
    """N new VMs from the golden image. ``vcpus``/``memory_mib`` default to the template VM's."""

    count = serializers.IntegerField(min_value=0, max_value=MAX_NUMBER_INPUT)
    name_pattern = serializers.CharField(
        max_length=100, trim_whitespace=False, help_text="e.g. web-{n:02d}; only {n} may appear in braces."
    )
    first_number = serializers.IntegerField(min_value=0, max_value=MAX_NUMBER_INPUT, default=1)
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.SPACE_OPTIMIZED)
    vcpus = serializers.IntegerField(min_value=0, max_value=MAX_NUMBER_INPUT, required=False, allow_null=True)
    memory_mib = serializers.IntegerField(min_value=0, max_value=MAX_MEMORY_MIB_INPUT, required=False, allow_null=True)
    pool = _object(StoragePool, "storage pool", StoragePool.objects.select_related("provider"))
    host = _object(
        Host, "host", required=False, allow_null=True, help_text="Default: the provider's host (KVM: the only one)."
    )
    network = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    bridge = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    start = serializers.BooleanField(required=False, default=False)


class VMFromVolumeSerializer(serializers.Serializer[Any]):
    """One new VM whose boot disk is a full copy or a space-optimized child of ``volume``, defined like
    ``template_vm``. ``vcpus``/``memory_mib`` default to the template VM's."""

    volume = _object(StorageVolume, "volume", StorageVolume.objects.select_related("pool", "pool__provider"))
    template_vm = _object(
        VirtualMachine,
        "VM",
        VirtualMachine.objects.select_related("provider"),
        help_text="The new VM is defined like this VM of the volume's provider; only its definition is read, so it "
        "may run.",
    )
    name = serializers.CharField(max_length=100, help_text="The new VM's name; its boot volume is <name>.qcow2/.img.")
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.FULL)
    pool = _object(
        StoragePool,
        "storage pool",
        StoragePool.objects.select_related("provider"),
        required=False,
        allow_null=True,
        help_text="Where the boot volume is made. Default: the volume's pool.",
    )
    host = _object(
        Host, "host", required=False, allow_null=True, help_text="Default: the provider's host (KVM: the only one)."
    )
    vcpus = serializers.IntegerField(min_value=0, max_value=MAX_NUMBER_INPUT, required=False, allow_null=True)
    memory_mib = serializers.IntegerField(min_value=0, max_value=MAX_MEMORY_MIB_INPUT, required=False, allow_null=True)
    network = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    bridge = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    start = serializers.BooleanField(required=False, default=False)


# --- provisioning requests --------------------------------------------------------------------------


class ProvisionedVMSerializer(serializers.ModelSerializer[ProvisionedVM]):
    """One VM of a request: its step and what was made for it; ``vm`` is the inventory's VM once discovered."""

    vm = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ProvisionedVM.Status.choices, read_only=True)
    error = serializers.CharField(read_only=True)
    started = serializers.DateTimeField(read_only=True, allow_null=True)
    finished = serializers.DateTimeField(read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ProvisionedVM
        fields = [
            "index",
            "name",
            "job",
            "status",
            "phase",
            "volume_name",
            "volume_path",
            "capacity_bytes",
            "allocation_bytes",
            "vm_uuid",
            "vm",
            "error",
            "warning",
            "started",
            "finished",
            "duration_seconds",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_vm(self, row: ProvisionedVM) -> int | None:
        vm_ids: dict[str, int] = self.context.get("vm_ids", {})
        return vm_ids.get(row.vm_uuid) if row.vm_uuid else None


class ProvisioningRequestSerializer(serializers.ModelSerializer[ProvisioningRequest]):
    """A request as asked, with its job's status and progress and how many VMs are done or failed."""

    url = serializers.HyperlinkedIdentityField(view_name="api:provisioningrequest-detail")
    status = serializers.CharField(source="job.status", read_only=True)
    progress = serializers.IntegerField(source="job.progress", read_only=True)
    message = serializers.CharField(source="job.message", read_only=True)
    error = serializers.CharField(source="job.error", read_only=True)
    requested_by = _name_of("job.requested_by.username")
    created = serializers.DateTimeField(source="job.created", read_only=True)
    started = serializers.DateTimeField(source="job.started", read_only=True, allow_null=True)
    finished = serializers.DateTimeField(source="job.finished", read_only=True, allow_null=True)
    provider_name = _name_of("provider.name")
    host_name = _name_of("host.hostname")
    done = serializers.IntegerField(source="done_count", read_only=True, help_text="VMs provisioned.")
    failed = serializers.IntegerField(source="failed_count", read_only=True, help_text="VMs that failed.")
    cancelled = serializers.IntegerField(
        source="cancelled_count", read_only=True, help_text="VMs not made because the request was cancelled."
    )
    cancelled_by = _name_of("job.cancelled_by.username")
    cancel_requested = serializers.DateTimeField(source="job.cancel_requested", read_only=True, allow_null=True)

    class Meta:
        model = ProvisioningRequest
        fields = [
            "id",
            "url",
            "job",
            "status",
            "progress",
            "message",
            "error",
            "requested_by",
            "created",
            "started",
            "finished",
            "golden_image",
            "golden_image_name",
            "from_golden_image",
            "provider",
            "provider_name",
            "source_path",
            "count",
            "name_pattern",
            "first_number",
            "mode",
            "vcpus",
            "memory_bytes",
            "pool",
            "pool_name",
            "host",
            "host_name",
            "network",
            "bridge",
            "start",
            "done",
            "failed",
            "cancelled",
            "cancel_requested",
            "cancelled_by",
        ]
        read_only_fields = fields


class ProvisioningRequestDetailSerializer(ProvisioningRequestSerializer):
    """A request with one row per VM (its outcome, and the inventory VM once discovered)."""

    vms = serializers.SerializerMethodField()

    class Meta(ProvisioningRequestSerializer.Meta):
        fields = [*ProvisioningRequestSerializer.Meta.fields, "vms"]
        read_only_fields = fields

    @extend_schema_field(ProvisionedVMSerializer(many=True))
    def get_vms(self, request: ProvisioningRequest) -> list[dict[str, Any]]:
        rows = list(request.vms.all())
        vms = selectors.vms_by_uuid(request.provider_id, (row.vm_uuid for row in rows))  # one query for all rows
        vm_ids = {uuid: vm.pk for uuid, vm in vms.items()}
        return list(ProvisionedVMSerializer(rows, many=True, context={**self.context, "vm_ids": vm_ids}).data)


# --- storage savings per pool ----------------------------------------------------------------------


class ParentGroupSerializer(serializers.Serializer[ParentGroup]):
    """The children in the pool of one parent image; a parent the inventory does not know has no comparison."""

    parent_path = serializers.CharField()
    parent_volume = serializers.IntegerField(
        source="parent.pk", allow_null=True, default=None, help_text="The parent's volume id, if known."
    )
    parent_name = serializers.CharField(source="parent.name", allow_null=True, default=None)
    parent_allocation_bytes = serializers.IntegerField(source="parent.allocation_bytes", allow_null=True, default=None)
    golden_image = serializers.IntegerField(source="golden_image.pk", allow_null=True, default=None)
    golden_image_name = serializers.CharField(source="golden_image.name", allow_null=True, default=None)
    savings = SavingsSerializer()


class PoolSavingsSerializer(serializers.Serializer[Any]):
    """A pool holding copy-on-write children, with what they save against full copies of their parents."""

    pool = serializers.IntegerField(source="pool.pk")
    pool_name = serializers.CharField(source="pool.name")
    provider = serializers.IntegerField(source="pool.provider_id")
    provider_name = serializers.CharField(source="pool.provider.name")
    type = serializers.CharField(source="pool.type")
    capacity_bytes = serializers.IntegerField(source="pool.capacity_bytes")
    allocation_bytes = serializers.IntegerField(source="pool.allocation_bytes")
    available_bytes = serializers.IntegerField(source="pool.available_bytes")
    savings = SavingsSerializer(help_text="Totals over the children whose parent the inventory knows.")
    parents = serializers.IntegerField(help_text="Parent images the pool's children are made from.")
    unknown_parent_children = serializers.IntegerField(
        help_text="Children whose parent the inventory does not know: listed, not compared."
    )


class PoolSavingsDetailSerializer(PoolSavingsSerializer):
    groups = ParentGroupSerializer(many=True, help_text="One entry per parent image.")


# --- storage operations -----------------------------------------------------------------------------


class _SizeMixin(serializers.Serializer[Any]):
    """``size_bytes`` or ``size_gib`` (exactly one); validated data carries ``size_bytes``."""

    size_bytes = serializers.IntegerField(min_value=0, max_value=MAX_SIZE_BYTES_INPUT, required=False, allow_null=True)
    size_gib = serializers.FloatField(min_value=0, max_value=MAX_SIZE_GIB_INPUT, required=False, allow_null=True)

    size_required = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        size_bytes, size_gib = attrs.pop("size_bytes", None), attrs.pop("size_gib", None)
        if size_bytes is not None and size_gib is not None:
            raise serializers.ValidationError({"size_gib": ["Give size_bytes or size_gib, not both."]})
        if size_gib is not None:
            attrs["size_bytes"] = round(size_gib * GiB)
            attrs["size_field"] = "size_gib"
        elif size_bytes is not None:
            attrs["size_bytes"] = size_bytes
            attrs["size_field"] = "size_bytes"
        elif self.size_required:
            raise serializers.ValidationError({"size_gib": ["Give the size: size_bytes or size_gib."]})
        return attrs


class DataDiskSerializer(_SizeMixin):
    """A data disk for a VM: a new volume (``pool`` + size, optional ``name``/``format``) or an existing ``volume``.

    It is attached as the next free target on ``bus``: to the running VM where the platform allows it,
    and always to the VM's persistent definition.
    """

    vm = _object(VirtualMachine, "VM", VirtualMachine.objects.select_related("provider"))
    bus = serializers.ChoiceField(choices=list(DISK_BUSES), default="virtio")
    pool = _object(StoragePool, "storage pool", required=False, allow_null=True)
    format = serializers.ChoiceField(choices=list(VOLUME_FORMATS), default="qcow2")
    name = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default="", help_text="Default: <vm>-dataN.<ext>."
    )
    volume = _object(
        StorageVolume,
        "volume",
        StorageVolume.objects.select_related("pool"),
        required=False,
        allow_null=True,
        help_text="Attach this existing volume instead of making one.",
    )
    shareable = serializers.BooleanField(required=False, default=False)

    size_required = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs.get("volume") is not None:
            extra = [f for f in ("pool", "size_bytes") if attrs.get(f) is not None] + (
                ["name"] if attrs["name"] else []
            )
            if extra:
                raise serializers.ValidationError(
                    {"volume": [f"Give an existing volume or a new one's {', '.join(extra)}, not both."]}
                )
        return attrs


class DiskResizeSerializer(_SizeMixin):
    """Grow one of a VM's disks to the new size (virtio disks only while the VM is shut off)."""

    disk = _object(VirtualDisk, "disk", VirtualDisk.objects.select_related("vm", "vm__provider", "volume"))
    vm = _object(
        VirtualMachine,
        "VM",
        VirtualMachine.objects.select_related("provider"),
        required=False,
        allow_null=True,
        help_text="The disk's VM; may be omitted.",
    )


class VolumeCloneSerializer(serializers.Serializer[Any]):
    """Clone a volume: a full copy or a space-optimized child, in its pool or another of the same host."""

    volume = _object(StorageVolume, "volume", StorageVolume.objects.select_related("pool", "pool__provider"))
    name = serializers.CharField(max_length=255, help_text="The new volume's name, as the file name (e.g. copy.qcow2).")
    pool = _object(
        StoragePool, "storage pool", required=False, allow_null=True, help_text="Default: the volume's pool."
    )
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.FULL)
