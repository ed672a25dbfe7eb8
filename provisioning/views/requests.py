"""Provisioning requests: the list, and one request's progress per VM, live while it runs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from provisioning import selectors
from provisioning.models import ProvisionedVM, ProvisioningRequest, ended_by_cancel
from provisioning.services.requests import cancel_provisioning
from vom.web.roles import OPERATOR, role_required
from vom.web.views import paginate, render_fragment, requested_fragment, unknown_fragment

V = ProvisionedVM.Status
# The request page's live regions: the progress card, and the per-VM table with the log.
LIVE_REGIONS = ("live", "vms")
# A VM's step → badge colour (the classes of vom.css).
STEP_CLASS: dict[str, str] = {
    V.PENDING: "grey",
    V.CREATING_VOLUME: "blue",
    V.DEFINING: "blue",
    V.STARTING: "blue",
    V.DONE: "green",
    V.FAILED: "red",
    V.CANCELLED: "amber",
}


def request_list(request: HttpRequest) -> HttpResponse:
    context = {"page": paginate(request, selectors.request_list())}
    fragment = requested_fragment(request)
    if fragment == "table":
        return render_fragment(request, "provisioning/requests/_table.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    return render(request, "provisioning/requests/list.html", context)


def _live_context(provisioning: ProvisioningRequest) -> dict[str, Any]:
    """The request's job (read first, with the request), then its VMs and their inventory VMs.

    A VM's row is written before its job finishes, and the request's job finishes after the
    inventory was refreshed: an answer that shows the job finished shows every VM's outcome
    and links them to the inventory.
    """
    op = provisioning.job
    rows = list(provisioning.vms.select_related("job"))
    vms = selectors.vms_by_uuid(provisioning.provider_id, (row.vm_uuid for row in rows))
    table = [{"row": row, "vm": vms.get(row.vm_uuid), "badge": STEP_CLASS.get(row.status, "grey")} for row in rows]
    counts = {status: 0 for status in V.values}
    for row in rows:
        counts[row.status] += 1
    return {
        "provisioning": provisioning,
        "op": op,
        "vm_rows": table,
        "done": counts[V.DONE],
        "failed": counts[V.FAILED],
        "in_progress": counts[V.CREATING_VOLUME] + counts[V.DEFINING] + counts[V.STARTING],
        "waiting": counts[V.PENDING],
        "cancelled": counts[V.CANCELLED],
        "was_cancelled": ended_by_cancel(op, cancelled=counts[V.CANCELLED], failed=counts[V.FAILED]),
        "log": list(op.log.all()),
    }


def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    provisioning = get_object_or_404(selectors.request_detail(), pk=pk)
    context = _live_context(provisioning)
    fragment = requested_fragment(request)
    if fragment in LIVE_REGIONS:
        return render_fragment(request, f"provisioning/requests/_{fragment}.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    return render(request, "provisioning/requests/detail.html", context)


@require_POST
@role_required(OPERATOR)
def request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    provisioning = get_object_or_404(ProvisioningRequest, pk=pk)
    try:
        provisioning = cancel_provisioning(request=provisioning, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Not cancelled: {'; '.join(exc.messages)}.")
        return redirect(provisioning)
    provisioning.job.refresh_from_db()
    if provisioning.job.is_active:
        messages.warning(
            request,
            f"Cancelling request #{provisioning.pk}: it stops before its next VM. The VM being made finishes "
            "first; the VMs already made stay.",
        )
    else:
        messages.success(request, f"Request #{provisioning.pk} cancelled before it started: no VM was made.")
    return redirect(provisioning)
