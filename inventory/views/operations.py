"""Operations: what was asked, by whom, and how it went, live while it runs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inventory import selectors
from inventory.filters import OperationFilterSet
from inventory.models import Operation
from inventory.services.operations import can_force_power_off
from inventory.views.common import provider_options
from vom.web.views import paginate, render_fragment, requested_fragment, unknown_fragment


def operation_list(request: HttpRequest) -> HttpResponse:
    filterset = OperationFilterSet(request.GET, queryset=selectors.operation_list().order_by("-created", "-pk"))
    page = paginate(request, filterset.qs)
    context = {
        "filter": filterset,
        "page": page,
        "statuses": Operation.Status.choices,
        "kinds": Operation.Kind.choices,
        "selected_status": request.GET.get("status", ""),
        "selected_kind": request.GET.get("kind", ""),
    }
    fragment = requested_fragment(request)
    if fragment == "table":
        return render_fragment(request, "inventory/operations/_table.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    context["provider_options"] = provider_options(request)
    return render(request, "inventory/operations/list.html", context)


def operation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    op = get_object_or_404(selectors.operation_list(), pk=pk)
    context = {"op": op, "log": list(op.log.all()), "can_force": can_force_power_off(op, op.vm)}
    fragment = requested_fragment(request)
    if fragment == "live":
        return render_fragment(request, "inventory/operations/_live.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    return render(request, "inventory/operations/detail.html", context)
