"""Storage pools and their volumes; virtual networks."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from inventory import selectors
from inventory.filters import NetworkFilterSet, PoolFilterSet, VolumeFilterSet
from inventory.models import VirtualDisk
from inventory.views.common import host_options, pool_options, provider_options
from vom.web.views import paginate, sort_queryset

POOL_SORTS = {
    "name": ("name",),
    "provider": ("provider__name", "name"),
    "host": ("host__hostname", "name"),
    "capacity": ("capacity_bytes",),
    "available": ("available_bytes",),
}
VOLUME_SORTS = {
    "name": ("name",),
    "pool": ("pool__name", "name"),
    "capacity": ("capacity_bytes",),
    "allocation": ("allocation_bytes",),
    "format": ("format", "name"),
}
NETWORK_SORTS = {
    "name": ("name",),
    "provider": ("provider__name", "name"),
    "host": ("host__hostname", "name"),
}


def _disks_with_vm() -> Prefetch:  # type: ignore[type-arg]
    return Prefetch("disks", queryset=VirtualDisk.objects.select_related("vm").order_by("vm__name", "target"))


def pool_list(request: HttpRequest) -> HttpResponse:
    filterset = PoolFilterSet(request.GET, queryset=selectors.pool_list())
    queryset, sort = sort_queryset(request, filterset.qs, POOL_SORTS, "name")
    context = {
        "filter": filterset,
        "page": paginate(request, queryset),
        "sort": sort,
        "provider_options": provider_options(request),
        "host_options": host_options(request),
    }
    return render(request, "inventory/storage/pool_list.html", context)


def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(selectors.pool_list(), pk=pk)
    volumes = pool.volumes.prefetch_related(_disks_with_vm()).order_by("name")
    return render(request, "inventory/storage/pool_detail.html", {"pool": pool, "volumes": volumes})


def volume_list(request: HttpRequest) -> HttpResponse:
    filterset = VolumeFilterSet(request.GET, queryset=selectors.volume_list())
    queryset, sort = sort_queryset(request, filterset.qs, VOLUME_SORTS, "name")
    context = {
        "filter": filterset,
        "page": paginate(request, queryset.prefetch_related(_disks_with_vm())),
        "sort": sort,
        "provider_options": provider_options(request),
        "pool_options": pool_options(request),
    }
    return render(request, "inventory/storage/volume_list.html", context)


def network_list(request: HttpRequest) -> HttpResponse:
    filterset = NetworkFilterSet(request.GET, queryset=selectors.network_list())
    queryset, sort = sort_queryset(request, filterset.qs, NETWORK_SORTS, "name")
    context = {
        "filter": filterset,
        "page": paginate(request, queryset),
        "sort": sort,
        "provider_options": provider_options(request),
        "host_options": host_options(request),
    }
    return render(request, "inventory/storage/network_list.html", context)
