"""REST API viewsets: thin — validate the request's shape, call one service, answer.

Status codes, the same on every endpoint:

- 200 read, 201 provider created, 204 provider deleted;
- 202 an operation or a discovery was queued (body: the job, as ``/api/operations/{id}/`` or
  ``/api/discoveries/{id}/`` shows it; ``Location``: its URL);
- 400 bad input, with field errors (``{"field": ["why"]}``) — malformed URI, duplicate name, bad filter;
- 401/403 not signed in (DRF answers 403 while session authentication is listed first in settings);
  403 signed in without the role (viewer reads, operator runs operations and discovery, admin configures);
- 404 no such object; 405 method not allowed;
- 409 the operation was refused in the VM's current state, with ``{"detail": "reason"}``
  (start a running VM, a snapshot name already used or unknown, an operation already in progress).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from django.db.models import IntegerField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.template import engines
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from drf_spectacular.views import SpectacularRedocView
from rest_framework import serializers as drf_serializers
from rest_framework import status, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from inventory import selectors
from inventory.api import serializers as s
from inventory.filters import (
    DiscoveryFilterSet,
    DiskFilterSet,
    HostFilterSet,
    NetworkFilterSet,
    PoolFilterSet,
    ProviderFilterSet,
    VMFilterSet,
    VolumeFilterSet,
)
from inventory.models import NetworkInterface, Provider, VirtualMachine, VMSnapshot
from inventory.services.discovery import discoveries, request_discovery
from inventory.services.operations import (
    LABELS,
    Kind,
    request_bulk_vm_operation,
    request_environment_check,
    request_vm_operation,
)
from inventory.services.providers import KIND_FIELDS, create_provider, delete_provider, update_provider
from vom.jobs.api import QUEUED_JOB, JobSerializer, job_accepted
from vom.jobs.models import Job
from vom.web.api import QUEUE_DOWN, REFUSED, ListFiltersMixin, ReadOnlyViewSet, accepted
from vom.web.roles import ADMIN, OPERATOR


class InventoryViewSet(ReadOnlyViewSet):
    """Read-only inventory."""


# --- sign-in ---------------------------------------------------------------------------------


@extend_schema(
    auth=[],
    request=AuthTokenSerializer,
    responses={
        200: inline_serializer("Token", {"token": drf_serializers.CharField()}),
        400: OpenApiResponse(description="Wrong username or password (`non_field_errors`)."),
    },
    description="Exchange a username and password for an API token; send it as `Authorization: Token <key>`. "
    "The same token is returned until it is deleted.",
)
@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class TokenView(ObtainAuthToken):
    """The one endpoint open to anonymous callers: it is how they stop being anonymous."""


# --- documentation pages -----------------------------------------------------------------------

# drf-spectacular's Redoc page links Google Fonts; the console loads nothing from outside the server.
_REDOC_PAGE = """{% extends "drf_spectacular/redoc.html" %}{% block head %}
<title>{{ title|default:"Redoc" }}</title>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { margin: 0; padding: 0; }</style>
{% endblock head %}"""


class _LocalRedocRenderer(TemplateHTMLRenderer):
    def resolve_template(self, template_names: Iterable[str]) -> Any:
        return engines["django"].from_string(_REDOC_PAGE)


class RedocView(SpectacularRedocView):
    """Redoc with its script from drf-spectacular-sidecar under /static/ and system fonts."""

    renderer_classes = [_LocalRedocRenderer]


# --- providers ---------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(responses={201: s.ProviderSerializer}),
    destroy=extend_schema(description="Remove the provider and everything discovered behind it."),
)
@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class ProviderViewSet(ListFiltersMixin, viewsets.ModelViewSet):  # type: ignore[type-arg]
    """Discovery sources. Reads: viewer; add/change/remove: admin; discover now: operator."""

    serializer_class = s.ProviderSerializer
    filterset_class = ProviderFilterSet
    ordering_fields = ["name", "kind", "status", "last_discovery_at", "created", "host_count", "vm_count"]
    ordering = ["name"]
    write_role = ADMIN
    action_roles = {"discover": OPERATOR, "check": OPERATOR}

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.provider_list()

    def _own_settings_only(self, data: dict[str, Any], kind: str) -> dict[str, Any]:
        """Another platform's settings are refused when sent (400), and dropped when only defaulted."""
        others = {name for k, names in KIND_FIELDS.items() if k != kind for name in names}
        sent = sorted(others & set(getattr(self.request, "data", {}) or {}))
        if sent:
            raise ValidationError({field: [f"Not a setting of {kind} providers."] for field in sent})
        return {field: value for field, value in data.items() if field not in others}

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        data.pop("clear_password", None)
        provider = create_provider(**self._own_settings_only(data, data.get("kind", Provider.Kind.LIBVIRT)))
        serializer.instance = selectors.provider_list().get(pk=provider.pk)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        changes = self._own_settings_only(dict(serializer.validated_data), cast(Provider, serializer.instance).kind)
        changes.pop("kind", None)  # validated equal to the current kind; the service takes no kind
        password = changes.pop("password", None)
        clear_password = changes.pop("clear_password", False)
        provider = update_provider(
            provider=cast(Provider, serializer.instance), password=password, clear_password=clear_password, **changes
        )
        serializer.instance = selectors.provider_list().get(pk=provider.pk)

    def perform_destroy(self, instance: Any) -> None:
        delete_provider(provider=instance)

    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(s.DiscoverySerializer, description="Queued (or the one already active)."),
            503: QUEUE_DOWN,
        },
        description="Queue a discovery of this provider now. If one is already queued or running, that run "
        "is returned instead of starting a second. Operator role.",
    )
    @action(detail=True, methods=["post"])
    def discover(self, request: Request, pk: str | None = None) -> Response:
        run = request_discovery(provider=self.get_object(), trigger=Job.Trigger.API, user=request.user)
        run = discoveries().select_related("requested_by").get(pk=run.pk)
        return accepted(request, s.DiscoverySerializer(run).data, run, "api:discovery-detail")

    @extend_schema(
        request=None,
        responses={202: QUEUED_JOB, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Check the environment",
        description="Queue an `environment_check` operation: the URL and credentials work and, for RHEV, the "
        "manager's own high availability is disabled for each VM. The result lands in `check_ok`, "
        "`check_message` and `checked_at` of the provider and `check_ok`/`check_message` of its VMs. Operator role.",
    )
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        op = request_environment_check(provider=self.get_object(), user=request.user, trigger=Job.Trigger.API)
        return job_accepted(request, op)

    @extend_schema(responses={200: s.DiscoverySerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"])
    def discoveries(self, request: Request, pk: str | None = None) -> Response:
        """This provider's discoveries, newest first."""
        provider = self.get_object()
        runs = discoveries(provider).select_related("requested_by")
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(s.DiscoverySerializer(page, many=True).data)


class DiscoveryViewSet(InventoryViewSet):
    """Discoveries, newest first: jobs of kind ``discovery`` (also listed under ``/api/operations/``)."""

    serializer_class = s.DiscoverySerializer
    filterset_class = DiscoveryFilterSet
    ordering_fields = ["created", "started", "finished", "duration_ms", "status"]
    ordering = ["-created"]

    def get_queryset(self) -> QuerySet[Any]:
        # The duration is in the job's result: read out of the JSON so it can be ordered by.
        duration = Cast(KT("result__duration_ms"), IntegerField())
        return discoveries().select_related("requested_by").annotate(duration_ms=duration)


# --- inventory ---------------------------------------------------------------------------------


class HostViewSet(InventoryViewSet):
    serializer_class = s.HostSerializer
    filterset_class = HostFilterSet
    ordering_fields = ["hostname", "cpu_count", "memory_bytes", "vm_count", "first_seen"]
    ordering = ["hostname"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.host_list()


F = TypeVar("F", bound=Callable[..., Any])


def _power_action_schema(kind: str) -> Callable[[F], F]:
    label = LABELS[kind]
    return extend_schema(
        request=None,
        responses={202: QUEUED_JOB, 409: REFUSED, 503: QUEUE_DOWN},
        summary=f"{label} the VM",
        description=f"Queue a `{kind}` operation. Operator role. 409 with the reason when the VM's state "
        "does not allow it or it already has an operation in progress.",
    )


SNAPSHOT_NAME_PARAM = OpenApiParameter(
    "snapshot_name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The snapshot's name, percent-encoded (names never contain '/').",
)


@extend_schema_view(
    list=extend_schema(description="VMs, flat: provider and host as id + name. Removed VMs only with `removed`."),
    retrieve=extend_schema(description="One VM with disks (source and volume), NICs, snapshots, allowed operations."),
)
class VMViewSet(InventoryViewSet):
    """Virtual machines; power and snapshot operations (operator) are queued and answered with 202."""

    filterset_class = VMFilterSet
    ordering_fields = [
        "name",
        "state",
        "vcpus",
        "memory_bytes",
        "first_seen",
        "removed_at",
        "provider__name",
        "host__hostname",
    ]
    ordering = ["name"]
    write_role = OPERATOR

    def get_queryset(self) -> QuerySet[Any]:
        if self.action == "retrieve":
            return selectors.vm_detail()
        return selectors.vm_list()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return s.VMDetailSerializer if self.action == "retrieve" else s.VMListSerializer

    def _request(self, kind: str, params: dict[str, Any] | None = None) -> Response:
        op = request_vm_operation(
            vm=self.get_object(), kind=kind, user=self.request.user, params=params, trigger=Job.Trigger.API
        )
        return job_accepted(self.request, op)

    @_power_action_schema(Kind.VM_START)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_START)

    @_power_action_schema(Kind.VM_SHUTDOWN)
    @action(detail=True, methods=["post"])
    def shutdown(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_SHUTDOWN)

    @_power_action_schema(Kind.VM_POWER_OFF)
    @action(detail=True, methods=["post"], url_path="power-off")
    def power_off(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_POWER_OFF)

    @_power_action_schema(Kind.VM_REBOOT)
    @action(detail=True, methods=["post"])
    def reboot(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_REBOOT)

    @_power_action_schema(Kind.VM_SUSPEND)
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_SUSPEND)

    @_power_action_schema(Kind.VM_RESUME)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._request(Kind.VM_RESUME)

    @extend_schema(
        request=s.MigrateSerializer,
        responses={
            202: QUEUED_JOB,
            400: OpenApiResponse(description="Field errors."),
            409: REFUSED,
            503: QUEUE_DOWN,
        },
        summary="Live-migrate the VM",
        description="Queue a `vm_migrate` operation (RHEV VMs that are running). `host`: a host id of the same "
        "provider; omit it to let the manager choose. Operator role. 409 with the reason when refused.",
    )
    @action(detail=True, methods=["post"])
    def migrate(self, request: Request, pk: str | None = None) -> Response:
        body = s.MigrateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        host = body.validated_data.get("host")
        return self._request(Kind.VM_MIGRATE, {"host": host} if host else {})

    @extend_schema(responses={200: s.VMSnapshotRefSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], pagination_class=None)
    def snapshots(self, request: Request, pk: str | None = None) -> Response:
        """The VM's snapshots (POST to the same URL creates one)."""
        vm = self.get_object()
        return Response(s.VMSnapshotRefSerializer(vm.snapshots.all(), many=True).data)

    @extend_schema(
        request=s.SnapshotCreateSerializer,
        responses={
            202: QUEUED_JOB,
            400: OpenApiResponse(description="Field errors."),
            409: REFUSED,
            503: QUEUE_DOWN,
        },
        summary="Create a snapshot",
        description="Queue a `snapshot_create` operation. The name is stored verbatim (any characters but "
        "'/' and control characters, at most 100). Operator role.",
    )
    @snapshots.mapping.post
    def create_snapshot(self, request: Request, pk: str | None = None) -> Response:
        body = s.SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = {"snapshot": body.validated_data["name"], "description": body.validated_data["description"]}
        return self._request(Kind.SNAPSHOT_CREATE, params)

    @extend_schema(
        request=None,
        parameters=[SNAPSHOT_NAME_PARAM],
        responses={202: QUEUED_JOB, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Revert to a snapshot",
        description="Queue a `snapshot_revert` operation. Operator role.",
    )
    @action(detail=True, methods=["post"], url_path=r"snapshots/(?P<snapshot_name>[^/]+)/revert")
    def revert_snapshot(self, request: Request, pk: str | None = None, snapshot_name: str = "") -> Response:
        return self._request(Kind.SNAPSHOT_REVERT, {"snapshot": snapshot_name})

    @extend_schema(
        request=None,
        parameters=[SNAPSHOT_NAME_PARAM],
        responses={202: QUEUED_JOB, 409: REFUSED, 503: QUEUE_DOWN},
        summary="Delete a snapshot",
        description="Queue a `snapshot_delete` operation (202, not 204: the snapshot is gone when the "
        "operation succeeds). Operator role.",
    )
    @action(detail=True, methods=["delete"], url_path=r"snapshots/(?P<snapshot_name>[^/]+)")
    def delete_snapshot(self, request: Request, pk: str | None = None, snapshot_name: str = "") -> Response:
        return self._request(Kind.SNAPSHOT_DELETE, {"snapshot": snapshot_name})

    @extend_schema(
        request=s.BulkActionSerializer,
        responses={
            202: s.BulkActionResultSerializer,
            400: OpenApiResponse(description="Field errors."),
            503: QUEUE_DOWN,
        },
        summary="One power action on many VMs",
        description="Queue `action` for each VM in `ids`. Always 202 for a valid request: `queued` holds the "
        "operations, `refused` each VM whose state did not allow it, with the reason. Unknown ids → 400.",
    )
    @action(detail=False, methods=["post"], url_path="bulk-action")
    def bulk_action(self, request: Request) -> Response:
        body = s.BulkActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids: list[int] = body.validated_data["ids"]
        by_id = VirtualMachine.objects.select_related("provider").prefetch_related("disks").in_bulk(ids)
        queued, refused = request_bulk_vm_operation(
            vms=[by_id[pk] for pk in ids if pk in by_id],
            kind=s.VM_POWER_ACTIONS[body.validated_data["action"]],
            user=request.user,
            trigger=Job.Trigger.API,
        )
        data = {
            "queued": JobSerializer(queued, many=True).data,
            "refused": [{"id": vm.pk, "name": vm.name, "reason": reason} for vm, reason in refused],
        }
        return Response(data, status=status.HTTP_202_ACCEPTED)


class DiskViewSet(InventoryViewSet):
    serializer_class = s.DiskSerializer
    filterset_class = DiskFilterSet
    ordering_fields = ["target", "source", "bus", "vm__name"]
    ordering = ["vm__name", "target"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.disk_list()


class NicViewSet(InventoryViewSet):
    serializer_class = s.NicSerializer
    filterset_fields = ["vm", "mac", "source", "type"]
    ordering_fields = ["mac", "source", "vm__name"]
    ordering = ["vm__name", "mac"]
    queryset = NetworkInterface.objects.select_related("vm")


class SnapshotViewSet(InventoryViewSet):
    serializer_class = s.SnapshotSerializer
    filterset_fields = ["vm", "name", "current"]
    ordering_fields = ["name", "created_at", "vm__name"]
    ordering = ["vm__name", "created_at", "name"]
    queryset = VMSnapshot.objects.select_related("vm")


class PoolViewSet(InventoryViewSet):
    serializer_class = s.PoolSerializer
    filterset_class = PoolFilterSet
    ordering_fields = ["name", "type", "capacity_bytes", "allocation_bytes", "available_bytes", "volume_count"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.pool_list()


class VolumeViewSet(InventoryViewSet):
    serializer_class = s.VolumeSerializer
    filterset_class = VolumeFilterSet
    ordering_fields = ["name", "path", "format", "capacity_bytes", "allocation_bytes", "disk_count"]
    ordering = ["pool__name", "name"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.volume_list()


class NetworkViewSet(InventoryViewSet):
    serializer_class = s.NetworkSerializer
    filterset_class = NetworkFilterSet
    ordering_fields = ["name", "bridge", "forward_mode", "active"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.network_list()
