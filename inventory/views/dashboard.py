"""The dashboard: what there is, in what state, what is stale, and what is happening right now."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from inventory.models import Host, Network, Provider, StoragePool, VirtualDisk, VirtualMachine
from inventory.services.discovery import discoveries
from vom.jobs.selectors import active_jobs
from vom.web import charts
from vom.web.views import render_fragment, requested_fragment, unknown_fragment

# Colours of the normalized VM states (the same as the badges in vom.css).
STATE_COLORS = {
    "running": "#16a34a",
    "paused": "#d97706",
    "suspended": "#f59e0b",
    "stopped": "#6b7280",
    "crashed": "#dc2626",
    "unknown": "#9333ea",
    "starting": "#3b82f6",
    "stopping": "#60a5fa",
    "migrating": "#0ea5e9",
}

TOP_PROVIDERS = 10
RECENT_DISCOVERIES = 10
RUNNING_OPERATIONS = 20


def _vm_link(**params: Any) -> str:
    return f"{reverse('vm-list')}?{urlencode(params)}"


def summary_context() -> dict[str, Any]:
    """Totals, VM counts by state / platform / provider as charts, and the stale providers."""
    present_vms = VirtualMachine.objects.filter(removed_at__isnull=True)
    by_state = dict(present_vms.values_list("state").annotate(n=Count("pk")).order_by())
    state_data = [
        charts.Datum(label, by_state[value], STATE_COLORS.get(value, ""), _vm_link(state=value))
        for value, label in VirtualMachine.State.choices
        if by_state.get(value)
    ]
    by_kind = dict(present_vms.values_list("provider__kind").annotate(n=Count("pk")).order_by())
    # Every platform gets a bar, zero included, once there are VMs; with none the chart says "No data"
    # like the other two.
    platform_data = (
        [
            charts.Datum(label, by_kind.get(value, 0), href=_vm_link(platform=value))
            for value, label in Provider.Kind.choices
        ]
        if by_kind
        else []
    )
    by_provider = list(
        present_vms.values_list("provider_id", "provider__name")
        .annotate(n=Count("pk"))
        .order_by("-n", "provider__name")
    )
    provider_data = [charts.Datum(name, n, href=_vm_link(provider=pk)) for pk, name, n in by_provider[:TOP_PROVIDERS]]
    if len(by_provider) > TOP_PROVIDERS:
        provider_data.append(charts.Datum("others", sum(n for _, _, n in by_provider[TOP_PROVIDERS:]), "#9ca3af"))
    totals = {
        "providers": Provider.objects.count(),
        "hosts": Host.objects.filter(removed_at__isnull=True).count(),
        "vms": sum(by_state.values()),
        "disks": VirtualDisk.objects.filter(vm__removed_at__isnull=True).count(),
        "pools": StoragePool.objects.filter(removed_at__isnull=True).count(),
        "networks": Network.objects.filter(removed_at__isnull=True).count(),
    }
    return {
        "totals": totals,
        "state_chart": charts.donut(state_data, title="VMs by state"),
        "platform_chart": charts.hbar(platform_data, title="VMs by platform"),
        "provider_chart": charts.hbar(provider_data, title="VMs by provider"),
        "stale_providers": Provider.objects.filter(status=Provider.Status.STALE).order_by("name"),
    }


def dashboard(request: HttpRequest) -> HttpResponse:
    fragment = requested_fragment(request)
    if fragment == "summary":
        return render_fragment(request, "inventory/dashboard/_summary.html", summary_context())
    if fragment == "operations":
        return render_fragment(
            request,
            "inventory/dashboard/_operations.html",
            {"jobs": active_jobs()[:RUNNING_OPERATIONS]},
        )
    if fragment == "discoveries":
        return render_fragment(
            request,
            "inventory/dashboard/_discoveries.html",
            {"discoveries": discoveries().select_related("requested_by")[:RECENT_DISCOVERIES]},
        )
    if fragment:
        raise unknown_fragment(fragment)
    context = summary_context()
    context["jobs"] = active_jobs()[:RUNNING_OPERATIONS]
    context["discoveries"] = discoveries().select_related("requested_by")[:RECENT_DISCOVERIES]
    return render(request, "inventory/dashboard/dashboard.html", context)
