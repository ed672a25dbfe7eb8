"""Provisioning REST API: golden images, provisioning requests, VMs from volumes, storage savings, disks, clones.

Thin, like the inventory's API: validate the body's shape, call one service, answer. Status codes are
the inventory API's (see ``inventory.api.views``):

- 200 read; 201 golden image registered; 204 golden image unregistered;
- 202 a provisioning request or a storage operation was queued (``Location``: its URL);
- 400 bad input with field errors (``{"field": ["why"]}``): unknown ids, a name pattern that gives a
  taken or invalid name, a pool on another provider or of the wrong type, too little space, a running
  template VM, a virtio disk resized while its VM runs …;
- 403 signed in without the role: viewer reads; operator provisions (from golden images or volumes),
  adds and resizes disks, clones volumes; admin registers and unregisters golden images;
- 404 no such object in the URL; 405 method not allowed;
- 409 refused in the object's current state, with ``{"detail": "reason"}``: the VM already has an
  operation in progress, was removed, or is not on a KVM provider; the host cannot be reached.

A service's ValidationError carrying field errors is a 400 with those fields; one carrying only a
message is a refusal of the current state, a 409.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from inventory.models import StoragePool
from provisioning import selectors
from provisioning.api import serializers as s
from provisioning.api.filters import GoldenImageFilterSet, ProvisioningRequestFilterSet
from provisioning.models import GoldenImage
from provisioning.services.common import MiB
from provisioning.services.disks import Kind as DiskKind
from provisioning.services.disks import request_disk_add, request_disk_resize, request_volume_clone
from provisioning.services.golden_images import register_golden_image, unregister_golden_image
from provisioning.services.requests import cancel_provisioning, request_provisioning, request_vm_from_volume
from provisioning.services.savings import image_savings, pool_savings
from vom.jobs.api import QUEUED_JOB, JobSerializer, job_accepted
from vom.jobs.filters import JobFilterSet
from vom.jobs.models import Job
from vom.jobs.selectors import job_list
from vom.web.api import FIELD_ERRORS, QUEUE_DOWN, REFUSED, ListFiltersMixin, VomPagination, accepted, call_service
from vom.web.roles import ADMIN, OPERATOR

# --- golden images ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(description="Golden images, with their children and what the space-optimized ones save."),
    retrieve=extend_schema(description="One golden image; its children are listed by `savings/`."),
    create=extend_schema(
        request=s.GoldenImageCreateSerializer,
        responses={201: s.GoldenImageSerializer, 400: FIELD_ERRORS, 409: REFUSED},
        summary="Register a golden image",
        description="Register a discovered `volume`, or a shut-off `template_vm`'s boot disk, as a golden image. "
        "The template VM must be shut off (the image must be quiescent): a running one is refused on "
        "`template_vm` (400). The VM's definition and the volume's size are read from the host now; 409 when the "
        "host cannot be reached. Admin role.",
    ),
    destroy=extend_schema(
        summary="Unregister a golden image",
        description="Forget the golden image. Its volume stays: its space-optimized children still read from it. "
        "Admin role.",
    ),
)
class GoldenImageViewSet(
    ListFiltersMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,  # type: ignore[type-arg]
):
    """Golden images. Reads: viewer; provision: operator; register/unregister: admin."""

    serializer_class = s.GoldenImageSerializer
    filterset_class = GoldenImageFilterSet
    ordering_fields = ["name", "os", "created", "capacity_bytes", "allocation_bytes"]
    ordering = ["name"]
    write_role = ADMIN
    action_roles = {"provision": OPERATOR}

    def get_queryset(self) -> QuerySet[GoldenImage]:
        if self.action == "list":
            return selectors.golden_image_list()
        return selectors.golden_image_detail()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "create":
            return s.GoldenImageCreateSerializer
        return s.GoldenImageSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.GoldenImageCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = call_service(register_golden_image, user=request.user, **body.validated_data)
        image = self.get_queryset().get(pk=image.pk)
        data = s.GoldenImageSerializer(image, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})

    def perform_destroy(self, instance: GoldenImage) -> None:
        unregister_golden_image(image=instance)

    @extend_schema(
        request=s.ProvisionSerializer,
        responses={
            202: OpenApiResponse(
                s.ProvisioningRequestDetailSerializer,
                description="Queued. `Location` is the request's URL: poll it for progress and per-VM outcomes.",
            ),
            400: FIELD_ERRORS,
            409: REFUSED,
            503: QUEUE_DOWN,
        },
        summary="Provision VMs from the golden image",
        description="Validate and queue a provisioning request: `count` VMs named by `name_pattern` (e.g. "
        "`web-{n:02d}`, numbered from `first_number`), each booting from a `space_optimized` child of the image or "
        "a `full` copy in `pool`, defined from the template with a new name, UUID and MACs, started if `start`. "
        "Refused with field errors before anything is made: names taken or invalid, a pool on another provider, "
        "not a directory pool, or with too little space for the mode, an unknown network or host, the template "
        "VM running (`golden_image`). Operator role.",
    )
    @action(detail=True, methods=["post"])
    def provision(self, request: Request, pk: str | None = None) -> Response:
        image = self.get_object()
        body = s.ProvisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        memory_mib = data.pop("memory_mib", None)
        provisioning = call_service(
            request_provisioning,
            golden_image=image,
            user=request.user,
            trigger=Job.Trigger.API,
            memory_bytes=memory_mib * MiB if memory_mib is not None else None,
            **data,
        )
        provisioning = selectors.request_list().get(pk=provisioning.pk)
        payload = s.ProvisioningRequestDetailSerializer(provisioning, context={"request": request}).data
        return accepted(request, payload, provisioning, "api:provisioningrequest-detail")

    @extend_schema(
        responses={200: s.ImageSavingsSerializer},
        filters=False,
        summary="The golden image's children and savings",
        description="Every volume made from the image — space-optimized children found on disk, and full copies it "
        "made — with the VM using it, and what the children take against as many full copies (actual "
        "allocations as last read from the host).",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def savings(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.ImageSavingsSerializer(image_savings(self.get_object())).data)


# --- provisioning requests ---------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(description="Provisioning requests, newest first: parameters, status, VMs done and failed."),
    retrieve=extend_schema(description="One request with one row per VM: its step, outcome, volume and VM."),
)
class ProvisioningRequestViewSet(ListFiltersMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """Provisioning requests (read-only: they are made by ``POST /api/golden-images/{id}/provision/`` and
    ``POST /api/vms-from-volume/``)."""

    filterset_class = ProvisioningRequestFilterSet
    ordering_fields = ["id", "count", "golden_image_name", "job__created", "job__status"]
    ordering = ["-id"]
    write_role = OPERATOR

    def get_queryset(self) -> QuerySet[Any]:
        if self.action == "retrieve":
            return selectors.request_list().prefetch_related("vms")
        return selectors.request_list()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action in ("retrieve", "cancel"):
            return s.ProvisioningRequestDetailSerializer
        return s.ProvisioningRequestSerializer

    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(
                s.ProvisioningRequestDetailSerializer,
                description="Cancellation asked for. A queued request has ended (`status` failed, every VM "
                "`cancelled`); a running one stops before its next VM: poll `Location`.",
            ),
            409: REFUSED,
        },
        summary="Cancel a provisioning request",
        description="A queued request ends at once. A running one stops before its next VM: the VM being made "
        "finishes first (a copy cannot be interrupted), the VMs already made stay, the others end `cancelled`. "
        "409: the request has already ended, its cancellation was already asked for, or every VM has begun "
        "(nothing is left to stop). Operator role.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        provisioning = call_service(cancel_provisioning, request=self.get_object(), user=request.user)
        provisioning = self.get_queryset().prefetch_related("vms").get(pk=provisioning.pk)
        payload = s.ProvisioningRequestDetailSerializer(provisioning, context={"request": request}).data
        return accepted(request, payload, provisioning, "api:provisioningrequest-detail")


# --- a new VM from a pool volume ----------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        description="Provisioning requests made from a pool volume rather than a golden image "
        "(`from_golden_image` false), newest first."
    ),
    create=extend_schema(
        request=s.VMFromVolumeSerializer,
        responses={
            202: OpenApiResponse(
                s.ProvisioningRequestDetailSerializer,
                description="Queued. `Location` is the request's URL: poll it for progress and the VM's outcome.",
            ),
            400: FIELD_ERRORS,
            409: REFUSED,
            503: QUEUE_DOWN,
        },
        summary="Provision a VM from a pool volume",
        description="Validate and queue a provisioning request for one VM `name` whose boot disk is a `full` copy or "
        "a `space_optimized` child of `volume`, made in `pool` (default: the volume's), defined like `template_vm` "
        "(its definition is read from the host now, with a new name, UUID and MACs; `vcpus`/`memory_mib` default to "
        "its own) and started if `start`. Refused with field errors before anything is made: the volume in use by a "
        "VM that is not shut off (`volume`), a template VM of another provider (`template_vm`), a name taken or "
        "invalid (`name`), a pool on another provider, not a directory pool, or with too little space, an unknown "
        "network or host. 409: the volume is not on a KVM provider, or the host cannot be reached. Operator role.",
    ),
)
class VMFromVolumeViewSet(ListFiltersMixin, mixins.ListModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """POST queues a one-VM provisioning request (202 + ``Location``); GET lists the requests made from volumes."""

    filterset_class = ProvisioningRequestFilterSet
    ordering_fields = ["id", "golden_image_name", "job__created", "job__status"]
    ordering = ["-id"]
    write_role = OPERATOR

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.request_list().filter(from_golden_image=False)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return s.VMFromVolumeSerializer if self.action == "create" else s.ProvisioningRequestSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.VMFromVolumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        memory_mib = data.pop("memory_mib", None)
        provisioning = call_service(
            request_vm_from_volume,
            user=request.user,
            trigger=Job.Trigger.API,
            memory_bytes=memory_mib * MiB if memory_mib is not None else None,
            **data,
        )
        provisioning = selectors.request_list().get(pk=provisioning.pk)
        payload = s.ProvisioningRequestDetailSerializer(provisioning, context={"request": request}).data
        return accepted(request, payload, provisioning, "api:provisioningrequest-detail")


# --- storage savings per pool -------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        description="Every pool holding copy-on-write children, most space saved first, with the totals: what the "
        "children take on disk against as many full copies of their parents."
    ),
    retrieve=extend_schema(
        description="One pool (any pool, by id) with its totals and one group per parent image.",
    ),
)
class PoolSavingsViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Storage savings per pool, from the actual allocations as last discovered."""

    queryset = StoragePool.objects.select_related("provider", "host")
    pagination_class = VomPagination  # over the rows the selector computed (three queries for every pool)
    filter_backends: list[Any] = []
    serializer_class = s.PoolSavingsSerializer

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return s.PoolSavingsDetailSerializer if self.action == "retrieve" else s.PoolSavingsSerializer

    def list(self, request: Request) -> Response:
        _total, rows = selectors.savings_by_pool()
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.PoolSavingsSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.PoolSavingsDetailSerializer(pool_savings(self.get_object())).data)


# --- storage operations --------------------------------------------------------------------------------


class _StorageOperationViewSet(ListFiltersMixin, mixins.ListModelMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """POST queues one job (202 + ``Location``); GET lists the jobs of this kind, newest first."""

    kind: str = ""
    body_class: type[BaseSerializer[Any]]
    filterset_class = JobFilterSet
    ordering_fields = ["created", "started", "finished", "status"]
    ordering = ["-created"]
    write_role = OPERATOR

    def get_queryset(self) -> QuerySet[Job]:
        return job_list().filter(kind=self.kind)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return self.body_class if self.action == "create" else JobSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = self.body_class(data=request.data)
        body.is_valid(raise_exception=True)
        return job_accepted(request, self.request_operation(dict(body.validated_data)))

    def request_operation(self, data: dict[str, Any]) -> Job:
        raise NotImplementedError


def _size_names(data: dict[str, Any]) -> dict[str, str]:
    """The services name size errors ``size_gib``; a caller who sent ``size_bytes`` sees them there."""
    return {"size_gib": data.pop("size_field", "size_gib")}


@extend_schema_view(
    list=extend_schema(description="Data-disk operations (`disk_add`), newest first."),
    create=extend_schema(
        request=s.DataDiskSerializer,
        responses={202: QUEUED_JOB, 400: FIELD_ERRORS, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Provision a data disk for a VM",
        description="Queue a `disk_add` operation: create a volume of `size_bytes` (or `size_gib`) and `format` in "
        "`pool` — or take the existing `volume` — and attach it to `vm` as the next free target on `bus`: to the "
        "running VM where the platform allows it, and always to its persistent definition (the mapping survives a "
        "restart). Refused on its field: more virtio-blk disks than the bus allows (use scsi), a volume already "
        "attached elsewhere without `shareable`, a pool on another host. 409: the VM has an operation in progress, "
        "was removed or is not on a KVM provider. Operator role.",
    ),
)
class DataDiskViewSet(_StorageOperationViewSet):
    kind = DiskKind.DISK_ADD
    body_class = s.DataDiskSerializer

    def request_operation(self, data: dict[str, Any]) -> Job:
        renamed = _size_names(data)
        return call_service(request_disk_add, renamed=renamed, user=self.request.user, trigger=Job.Trigger.API, **data)  # type: ignore[no-any-return]


@extend_schema_view(
    list=extend_schema(description="Disk-resize operations (`disk_resize`), newest first."),
    create=extend_schema(
        request=s.DiskResizeSerializer,
        responses={202: QUEUED_JOB, 400: FIELD_ERRORS, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Grow a VM's disk",
        description="Queue a `disk_resize` operation growing `disk` to `size_bytes` (or `size_gib`). Refused on "
        "`disk` for a virtio disk of a VM that is not shut off (virtio-blk has no online resize), and on the size "
        "when it is not larger (shrinking is not done from the console). 409: the VM has an operation in "
        "progress. Operator role.",
    ),
)
class DiskResizeViewSet(_StorageOperationViewSet):
    kind = DiskKind.DISK_RESIZE
    body_class = s.DiskResizeSerializer

    def request_operation(self, data: dict[str, Any]) -> Job:
        renamed = _size_names(data)
        disk = data["disk"]
        vm = data.get("vm") or disk.vm
        return call_service(  # type: ignore[no-any-return]
            request_disk_resize,
            renamed=renamed,
            vm=vm,
            disk=disk,
            size_bytes=data["size_bytes"],
            user=self.request.user,
            trigger=Job.Trigger.API,
        )


@extend_schema_view(
    list=extend_schema(description="Volume-clone operations (`volume_clone`), newest first."),
    create=extend_schema(
        request=s.VolumeCloneSerializer,
        responses={202: QUEUED_JOB, 400: FIELD_ERRORS, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Clone a volume",
        description="Queue a `volume_clone` operation: a `full` copy of `volume`, or a `space_optimized` qcow2 "
        "child backed by it, named `name`, in `pool` (default: the volume's own). Refused on its field: a name "
        "taken or invalid, a pool on another host, not a directory pool, or with too little space. 409: the "
        "volume is not on a KVM provider. Operator role.",
    ),
)
class VolumeCloneViewSet(_StorageOperationViewSet):
    kind = DiskKind.VOLUME_CLONE
    body_class = s.VolumeCloneSerializer

    def request_operation(self, data: dict[str, Any]) -> Job:
        return call_service(request_volume_clone, user=self.request.user, trigger=Job.Trigger.API, **data)  # type: ignore[no-any-return]
