"""The jobs' REST API (``/api/operations/``): every job of every app, its log and its children, and
cancel. Reads: viewer; cancel: operator. A queued job is cancelled at once; a running one stops
before its next step (202 with the job either way)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from vom.jobs import lifecycle, selectors
from vom.jobs.filters import JobFilterSet
from vom.jobs.models import Job, JobLogEntry
from vom.web.api import REFUSED, ReadOnlyViewSet, Refused, accepted
from vom.web.roles import OPERATOR


class JobTargetSerializer(serializers.Serializer[Any]):
    type = serializers.CharField(help_text="`app_label.model`, e.g. `inventory.virtualmachine`")
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField(allow_null=True, help_text="The target's page in the GUI, if it still exists.")


class JobSerializer(serializers.ModelSerializer[Job]):
    """A job in a list: what, on what, by whom, and how far it got."""

    kind_label = serializers.CharField(read_only=True)
    target = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)
    cancelled_by = serializers.CharField(source="cancelled_by.username", read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "kind_label",
            "status",
            "trigger",
            "target",
            "target_name",
            "parent",
            "position",
            "params",
            "requested_by",
            "created",
            "started",
            "finished",
            "duration_seconds",
            "heartbeat",
            "progress",
            "message",
            "error",
            "retryable",
            "result",
            "cancel_requested",
            "cancelled_by",
        ]
        read_only_fields = fields

    @extend_schema_field(JobTargetSerializer(allow_null=True))
    def get_target(self, job: Job) -> dict[str, Any] | None:
        if job.target_type_id is None or job.target_id is None:
            return None
        content_type = job.target_type
        assert content_type is not None
        return {
            "type": f"{content_type.app_label}.{content_type.model}",
            "id": job.target_id,
            "name": job.target_name,
            "url": job.target_url(),
        }


class JobLogEntrySerializer(serializers.ModelSerializer[JobLogEntry]):
    class Meta:
        model = JobLogEntry
        fields = ["time", "level", "message"]
        read_only_fields = fields


class JobChildSerializer(serializers.ModelSerializer[Job]):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "target_name",
            "position",
            "started",
            "finished",
            "progress",
            "message",
            "error",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    log = JobLogEntrySerializer(many=True, read_only=True)
    children = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "log", "children"]
        read_only_fields = fields

    @extend_schema_field(JobChildSerializer(many=True))
    def get_children(self, job: Job) -> Any:
        return JobChildSerializer(selectors.children_of(job), many=True).data


def job_accepted(request: Request, job: Job) -> Response:
    """202 with the queued job as ``/api/operations/{id}/`` shows it; ``Location``: that URL."""
    job = selectors.job_list().get(pk=job.pk)
    return accepted(request, JobSerializer(job).data, job, "api:job-detail")


QUEUED_JOB = OpenApiResponse(JobSerializer, description="Queued. `Location` is the job's URL: poll it for progress.")


class JobViewSet(ReadOnlyViewSet):
    """Every job of every app — discoveries, VM operations, provisioning requests, storage operations —
    newest first; the detail carries the log written as the work goes on and the job's children."""

    filterset_class = JobFilterSet
    ordering_fields = ["created", "started", "finished", "status", "kind"]
    ordering = ["-created"]
    action_roles = {"cancel": OPERATOR}

    def get_queryset(self) -> QuerySet[Job]:
        return selectors.job_detail() if self.action == "retrieve" else selectors.job_list()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return JobDetailSerializer if self.action == "retrieve" else JobSerializer

    @extend_schema(
        request=None,
        responses={202: JobSerializer, 409: REFUSED},
        summary="Cancel a job",
        description="A queued job ends at once (cancelled); a running one stops before its next step. "
        "409 when it has already ended or its cancellation was already asked for. Operator role.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        try:
            lifecycle.request_cancel(job, user=request.user)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        return Response(JobSerializer(selectors.job_list().get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED)
