"""Virtual machines: the searchable list with bulk actions, the detail page, and operations on one VM.

The list stays fast at tens of thousands of VMs: one joined query per page (``selectors.vm_list``),
a count, and the filter form's choices; nothing is read per row.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inventory import selectors
from inventory.filters import REMOVED_CHOICES, VMFilterSet
from inventory.forms import BulkVMActionForm, SnapshotCreateForm, VMActionForm
from inventory.models import Host, Provider, VirtualMachine
from inventory.services import operations as operation_service
from inventory.views import platform
from inventory.views.common import host_options, provider_options
from vom.jobs.models import Job
from vom.jobs.selectors import jobs_on
from vom.web.roles import OPERATOR, role_required
from vom.web.views import (
    PAGE_SIZES,
    paginate,
    redirect_back,
    render_fragment,
    requested_fragment,
    select_options,
    sort_queryset,
    unknown_fragment,
)

VM_SORTS = {
    "name": ("name",),
    "state": ("state", "name"),
    "host": ("host__hostname", "name"),
    "provider": ("provider__name", "name"),
    "vcpus": ("vcpus", "name"),
    "memory": ("memory_bytes", "name"),
}
VM_OPERATIONS_SHOWN = 20
REFUSALS_LISTED = 10
Kind = operation_service.Kind
LABELS = operation_service.LABELS

# How each power action is presented: button style and, for the disruptive ones, a confirmation.
ACTION_STYLE: dict[str, tuple[str, str]] = {
    Kind.VM_START: ("btn-green", ""),
    Kind.VM_SHUTDOWN: ("", "Shut down the guest OS of {name}?"),
    Kind.VM_POWER_OFF: ("btn-red", "Power off {name} at once? Unsaved data in the guest is lost."),
    Kind.VM_REBOOT: ("", "Reboot {name}?"),
    Kind.VM_SUSPEND: ("", ""),
    Kind.VM_RESUME: ("btn-green", ""),
    Kind.VM_MIGRATE: ("", "Live-migrate {name}?"),
}


def vm_list(request: HttpRequest) -> HttpResponse:
    filterset = VMFilterSet(request.GET, queryset=selectors.vm_list())
    queryset, sort = sort_queryset(request, filterset.qs, VM_SORTS, "name")
    page = paginate(request, queryset)
    context = {
        "filter": filterset,
        "page": page,
        "sort": sort,
        "per_page": page.paginator.per_page,
        "page_sizes": PAGE_SIZES,
        "states": VirtualMachine.State.choices,
        "selected_states": request.GET.getlist("state"),
        "removed_choices": REMOVED_CHOICES,
        "bulk_kinds": [(kind, LABELS[kind]) for kind in operation_service.VM_ACTIONS],
        "platforms": dict(Provider.Kind.choices),
        "provider_options": provider_options(request),
        "host_options": host_options(request),
        "platform_options": select_options(Provider.Kind.choices, request.GET.get("platform"), "All platforms"),
    }
    return render(request, "inventory/vms/list.html", context)


@require_POST
@role_required(OPERATOR)
def vm_bulk_action(request: HttpRequest) -> HttpResponseRedirect:
    form = BulkVMActionForm(request.POST)
    if not form.is_valid():
        problems = [str(error) for errors in form.errors.values() for error in errors]
        messages.error(request, "Nothing was queued: " + " ".join(problems))
        return redirect_back(request, "vm-list")
    kind = form.cleaned_data["kind"]
    label = LABELS[kind]
    queued, refused = operation_service.request_bulk_vm_operation(
        vms=form.cleaned_data["vm"], kind=kind, user=request.user
    )
    if queued:
        messages.success(request, f"{label} queued for {len(queued)} VM{'s' if len(queued) != 1 else ''}.")
    if refused:
        listed = "; ".join(_refusal_text(vm, reason) for vm, reason in refused[:REFUSALS_LISTED])
        more = f"; and {len(refused) - REFUSALS_LISTED} more" if len(refused) > REFUSALS_LISTED else ""
        messages.warning(
            request, f"{label} refused for {len(refused)} VM{'s' if len(refused) != 1 else ''} — {listed}{more}."
        )
    return redirect_back(request, "vm-list")


def _refusal_text(vm: VirtualMachine, reason: str) -> str:
    """The service's reason, prefixed with the VM's name unless the reason already names it."""
    return reason if repr(vm.name) in reason or vm.name in reason else f"{vm.name}: {reason}"


def _vm_operations(vm: VirtualMachine) -> list[Job]:
    return list(jobs_on("inventory.virtualmachine", vm.pk)[:VM_OPERATIONS_SHOWN])


def _actions(vm: VirtualMachine) -> list[dict[str, str]]:
    actions = []
    for kind in operation_service.allowed_operations(vm):
        style, confirm = ACTION_STYLE.get(kind, ("", ""))
        actions.append({"kind": kind, "label": LABELS[kind], "style": style, "confirm": confirm.format(name=vm.name)})
    return actions


def _live_context(vm: VirtualMachine) -> dict[str, Any]:
    """What the self-updating regions of the VM page show: state, actions, recent operations."""
    operations = _vm_operations(vm)
    actions = _actions(vm)
    latest = operations[0] if operations else None
    can_force = latest is not None and operation_service.can_force_power_off(latest, vm)
    migrate_hosts: list[Host] = []
    if any(a["kind"] == Kind.VM_MIGRATE for a in actions):
        migrate_hosts = list(
            Host.objects.filter(provider_id=vm.provider_id, removed_at__isnull=True)
            .exclude(pk=vm.host_id or 0)
            .order_by("hostname", "pk")
        )
    return {
        "vm": vm,
        "actions": actions,
        "migrate_hosts": migrate_hosts,
        "operations": operations,
        # One operation at a time per VM (the service refuses a second): say so instead of offering it.
        "busy": next((op for op in operations if op.is_active), None),
        "force_operation": latest if can_force else None,
    }


def vm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    fragment = requested_fragment(request)
    if fragment in ("state", "operations"):
        vm = get_object_or_404(selectors.vm_list(), pk=pk)
        return render_fragment(request, f"inventory/vms/_{fragment}.html", _live_context(vm))
    if fragment:
        raise unknown_fragment(fragment)
    vm = get_object_or_404(selectors.vm_detail(), pk=pk)
    context = _live_context(vm)
    context["snapshot_form"] = SnapshotCreateForm()
    kind = vm.provider.kind
    context["platform"] = platform.vm_facts(vm)
    context["disk_rows"] = [(disk, platform.disk_facts(disk, kind)) for disk in vm.disks.all()]
    context["nic_rows"] = [(nic, platform.nic_facts(nic, kind)) for nic in vm.nics.all()]
    context["snapshots_supported"] = operation_service.supported(vm, Kind.SNAPSHOT_CREATE)
    return render(request, "inventory/vms/detail.html", context)


@require_POST
@role_required(OPERATOR)
def vm_action(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    vm = get_object_or_404(selectors.vm_list(), pk=pk)
    form = VMActionForm(request.POST)
    if not form.is_valid():
        problems = [f"{field}: {error}" for field, errors in form.errors.items() for error in errors]
        messages.error(request, "Not queued: " + " ".join(problems))
        return redirect(vm)
    try:
        job = operation_service.request_vm_operation(
            vm=vm, kind=form.cleaned_data["kind"], user=request.user, params=form.params()
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"{job.kind_label} of {vm.name} queued (operation #{job.pk}).")
    return redirect(vm)
