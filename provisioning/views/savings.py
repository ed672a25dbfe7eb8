"""Storage savings: space-optimized children against full copies, for all pools and for one pool."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from inventory.models import StoragePool
from provisioning import selectors
from provisioning.services.savings import pool_savings
from provisioning.views.golden_images import CHILDREN_COLOR, FULL_EQUIVALENT_COLOR
from vom.web import charts
from vom.web.units import human_bytes

POOLS_CHARTED = 10
GROUPS_CHARTED = 10
CHART = {"width": 760, "label_width": 260, "value_width": 80}


def _pairs(items: list[tuple[str, int, int, str]]) -> list[charts.Datum]:
    """Two bars per item: what its children take and what as many full copies would take."""
    data = []
    for label, children_bytes, full_bytes, href in items:
        data.append(
            charts.Datum(f"{label}: children", children_bytes, CHILDREN_COLOR, href, human_bytes(children_bytes))
        )
        data.append(
            charts.Datum(f"{label}: as full copies", full_bytes, FULL_EQUIVALENT_COLOR, href, human_bytes(full_bytes))
        )
    return data


def storage_savings(request: HttpRequest) -> HttpResponse:
    total, rows = selectors.savings_by_pool()
    chart = charts.hbar(
        _pairs(
            [
                (
                    f"{row.pool.host.hostname if row.pool.host else row.pool.provider.name}/{row.pool.name}",
                    row.savings.children_bytes,
                    row.savings.full_equivalent_bytes,
                    reverse("storage-savings-pool", args=[row.pool.pk]),
                )
                for row in rows[:POOLS_CHARTED]
            ]
        ),
        title="Space-optimized children against full copies, per pool",
        **CHART,
    )
    context = {"total": total, "rows": rows, "chart": chart, "charted": min(len(rows), POOLS_CHARTED)}
    return render(request, "provisioning/savings/overview.html", context)


def pool_savings_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(StoragePool.objects.select_related("provider", "host"), pk=pk)
    summary = pool_savings(pool)
    compared = summary.compared
    chart = charts.hbar(
        _pairs(
            [
                (
                    group.golden_image.name if group.golden_image else group.parent.name,  # type: ignore[union-attr]
                    group.savings.children_bytes,
                    group.savings.full_equivalent_bytes,
                    group.golden_image.get_absolute_url() if group.golden_image else "",
                )
                for group in compared[:GROUPS_CHARTED]
            ]
        ),
        title=f"Space-optimized children in pool {pool.name} against full copies",
        **CHART,
    )
    context = {
        "pool": pool,
        "total": summary.savings,
        "groups": summary.groups,
        "chart": chart,
        "charted": min(len(compared), GROUPS_CHARTED),
        "compared": len(compared),
    }
    return render(request, "provisioning/savings/pool.html", context)
