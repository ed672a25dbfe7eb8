"""What every app's REST API stands on: pagination, filtering and ordering of lists, 202 answers, and
the one mapping of what services raise to HTTP answers.

A service speaks in Django's terms; the API answers:

- ``ValidationError`` with field errors → 400 ``{"field": ["why"]}`` (bad input);
- ``ValidationError`` with only a message → 409 ``{"detail": "why"}`` (refused in the object's current
  state: the VM is running, an operation is already in progress, the request has ended);
- :class:`~vom.jobs.lifecycle.Locked` → 409 (another job holds what this one needs);
- :class:`~vom.jobs.broker.QueueUnavailable` → 503 (the task queue is down: nothing was recorded).

Never a 500 for any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from vom.jobs.broker import QueueUnavailable
from vom.jobs.lifecycle import Locked
from vom.web.pagination import DeferredJoinPaginator

T = TypeVar("T")


class DetailSerializer(serializers.Serializer[Any]):
    """A refusal or an error: one sentence saying why."""

    detail = serializers.CharField()


FIELD_ERRORS = OpenApiResponse(description='Field errors: `{"field": ["why"]}`.')
REFUSED = OpenApiResponse(DetailSerializer, description="Refused in the object's current state, with the reason.")
QUEUE_DOWN = OpenApiResponse(DetailSerializer, description="The task queue is unreachable: nothing was queued.")


class Refused(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Refused in the current state."
    default_code = "refused"


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task queue is unreachable."
    default_code = "queue_unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, after the one mapping of the services' exceptions (see the module docstring)."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict) if hasattr(exc, "error_dict") else Refused("; ".join(exc.messages))
    elif isinstance(exc, Locked):
        exc = Refused(str(exc))
    elif isinstance(exc, QueueUnavailable):
        exc = ServiceUnavailable(str(exc))
    return drf_exception_handler(exc, context)


def call_service(service: Callable[..., T], *, renamed: Mapping[str, str] | None = None, **kwargs: Any) -> T:
    """Call a service; its field errors are renamed to the fields the request body names them.

    What it raises is answered by :func:`exception_handler` (400, 409 or 503).
    """
    try:
        return service(**kwargs)
    except DjangoValidationError as exc:
        if not hasattr(exc, "error_dict") or not renamed:
            raise
        raise DjangoValidationError(
            {renamed.get(field, field): messages for field, messages in exc.message_dict.items()}
        ) from None


class VomPagination(PageNumberPagination):
    """``?page=N`` and ``?page_size=`` (default 50, at most 500)."""

    django_paginator_class = DeferredJoinPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class StableOrderingFilter(OrderingFilter):
    """``?ordering=`` over the view's whitelist, then by id, so pages never overlap or skip rows.

    The default is the view's ``ordering``: annotated selectors lose the model's Meta.ordering (Django
    ignores it in GROUP BY queries), so every list names its order here.
    """

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not {"pk", "-pk", "id", "-id"} & set(ordering):
            ordering.append("pk")
        return ordering


LIST_FILTERS = [DjangoFilterBackend, StableOrderingFilter]


class ListFiltersMixin(viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Lists are filtered with the GUI's FilterSet, ordered by a whitelist and paginated; one object is not.

    One object by id is found whether or not it matches the list's filters: a VM marked removed keeps its
    detail (history), and an operation on it is refused with the reason rather than answered with a 404.
    """

    pagination_class = VomPagination
    filter_backends = LIST_FILTERS

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.detail:
            return queryset
        return super().filter_queryset(queryset)


class ReadOnlyViewSet(ListFiltersMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]
    """A read-only list and detail."""


def accepted(request: Request, data: Any, obj: Model, view_name: str) -> Response:
    """202 with ``data`` and the queued object's URL as ``Location``."""
    location = reverse(view_name, args=[obj.pk], request=request)
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
