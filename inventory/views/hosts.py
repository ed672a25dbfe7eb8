"""Hosts: the physical servers running a hypervisor."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inventory import selectors
from inventory.filters import HostFilterSet
from inventory.views import platform
from inventory.views.common import provider_options
from vom.web.views import paginate, sort_queryset

HOST_SORTS = {
    "hostname": ("hostname",),
    "provider": ("provider__name", "hostname"),
    "cpus": ("cpu_count",),
    "memory": ("memory_bytes",),
    "vms": ("vm_count",),
}
HOST_VMS_SHOWN = 200


def host_list(request: HttpRequest) -> HttpResponse:
    filterset = HostFilterSet(request.GET, queryset=selectors.host_list())
    queryset, sort = sort_queryset(request, filterset.qs, HOST_SORTS, "hostname")
    context = {
        "filter": filterset,
        "page": paginate(request, queryset),
        "sort": sort,
        "provider_options": provider_options(request),
    }
    return render(request, "inventory/hosts/list.html", context)


def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(selectors.host_list(), pk=pk)
    vms = selectors.vm_list().filter(host=host, removed_at__isnull=True).order_by("name", "pk")
    context = {
        "host": host,
        "platform": platform.host_facts(host),
        "vms": vms[:HOST_VMS_SHOWN],
        "vm_total": host.vm_count,  # type: ignore[attr-defined]
        "vms_shown": HOST_VMS_SHOWN,
        "pools": selectors.pool_list().filter(host=host).order_by("name"),
        "networks": selectors.network_list().filter(host=host).order_by("name"),
    }
    return render(request, "inventory/hosts/detail.html", context)
