"""Providers (discovery sources): list, add, edit, delete, detail, discover now; discovery runs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inventory import selectors
from inventory.filters import ProviderFilterSet
from inventory.forms import ProviderEditForm, ProviderForm
from inventory.models import Provider, StoragePool, StorageVolume, VirtualMachine
from inventory.services import discovery as discovery_service
from inventory.services import operations as operation_service
from inventory.services import providers as provider_service
from vom.jobs.models import Job
from vom.jobs.selectors import jobs_on
from vom.web.roles import ADMIN, OPERATOR, role_required
from vom.web.views import render_fragment, requested_fragment, unknown_fragment

DISCOVERY_HISTORY = 25
FAILED_CHECKS_SHOWN = 20
# The provider page's live regions: the status badge in the title, facts with inventory and hosts,
# and the discovery history. Each polls while a discovery of the provider is queued or running.
PROVIDER_FRAGMENTS = ("status", "overview", "discoveries")


def provider_list(request: HttpRequest) -> HttpResponse:
    filterset = ProviderFilterSet(request.GET, queryset=selectors.provider_list().order_by("name"))
    return render(request, "inventory/providers/list.html", {"filter": filterset, "providers": filterset.qs})


def _history(provider: Provider) -> list[Job]:
    return list(discovery_service.discoveries(provider).select_related("requested_by")[:DISCOVERY_HISTORY])


def _overview_context(provider: Provider) -> dict[str, Any]:
    """The self-updating part of the provider page: facts, inventory counts and hosts."""
    vm_states = dict(
        VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = {
        "pools": StoragePool.objects.filter(provider=provider, removed_at__isnull=True).count(),
        "volumes": StorageVolume.objects.filter(pool__provider=provider).count(),
        "networks": provider.networks.filter(removed_at__isnull=True).count(),
        "removed_vms": provider.vms.filter(removed_at__isnull=False).count(),
    }
    check_vms = VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True, check_ok=False)
    return {
        "check_operation": jobs_on("inventory.provider", provider.pk)
        .filter(kind=operation_service.Kind.ENVIRONMENT_CHECK)
        .first(),
        "failed_check_vms": list(check_vms.order_by("name")[:FAILED_CHECKS_SHOWN]),
        "failed_check_count": check_vms.count(),
        "manager": _manager_facts(provider),
        "hosts": selectors.host_list().filter(provider=provider).order_by("hostname"),
        "vm_states": [
            (value, label, vm_states[value]) for value, label in VirtualMachine.State.choices if vm_states.get(value)
        ],
        "counts": counts,
    }


def _manager_facts(provider: Provider) -> dict[str, Any] | None:
    """What the manager itself told (RHEV: product, data centers, clusters, templates), list-shaped."""
    facts = provider.facts or {}
    if not facts:
        return None

    def rows(key: str) -> list[dict[str, Any]]:
        value = facts.get(key)
        return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []

    product = facts.get("product") if isinstance(facts.get("product"), dict) else {}
    clusters = rows("clusters")
    cluster_names = {c.get("id"): c.get("name") for c in clusters}
    templates = [{**t, "cluster": cluster_names.get(t.get("cluster_id"), "")} for t in rows("templates")]
    return {"product": product, "datacenters": rows("datacenters"), "clusters": clusters, "templates": templates}


def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    fragment = requested_fragment(request)
    if fragment not in (None, *PROVIDER_FRAGMENTS):
        raise unknown_fragment(fragment)
    # The active run is read before the provider and its inventory: a run is marked finished in the
    # transaction that updates the provider, after its inventory was written. So an answer that no
    # longer shows the run active (the last one a live region fetches) shows what the run found.
    active_run = discovery_service.active_discovery(Provider(pk=pk))
    provider = get_object_or_404(selectors.provider_list(), pk=pk)
    context: dict[str, Any] = {"provider": provider, "active_run": active_run}
    if fragment == "discoveries":
        context["discoveries"] = _history(provider)
        return render_fragment(request, "inventory/providers/_discoveries.html", context)
    if fragment == "status":
        return render_fragment(request, "inventory/providers/_status.html", context)
    context.update(_overview_context(provider))
    if fragment == "overview":
        return render_fragment(request, "inventory/providers/_overview.html", context)
    context["discoveries"] = _history(provider)
    return render(request, "inventory/providers/detail.html", context)


@role_required(ADMIN)
def provider_add(request: HttpRequest) -> HttpResponse:
    form = ProviderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            provider = provider_service.create_provider(**form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Provider {provider.name} added. Discover it now to load its inventory.")
            return redirect(provider)
    return render(request, "inventory/providers/form.html", {"form": form, "provider": None})


@role_required(ADMIN)
def provider_edit(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk)
    form = ProviderEditForm(request.POST or None, provider=provider)
    if request.method == "POST" and form.is_valid():
        # The service changes the instance it is given before validating: give it its own copy so a
        # refused change does not show up in this page's title.
        target = Provider.objects.get(pk=provider.pk)
        try:
            provider_service.update_provider(provider=target, **form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Provider {target.name} saved.")
            return redirect(target)
    return render(request, "inventory/providers/form.html", {"form": form, "provider": provider})


@role_required(ADMIN)
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(selectors.provider_list(), pk=pk)
    if request.method == "POST":
        name = provider.name
        provider_service.delete_provider(provider=provider)
        messages.success(request, f"Provider {name} and its inventory were deleted.")
        return redirect("provider-list")
    return render(request, "inventory/providers/confirm_delete.html", {"provider": provider})


@require_POST
@role_required(OPERATOR)
def provider_discover(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    provider = get_object_or_404(Provider, pk=pk)
    active_before = discovery_service.active_discovery(provider)
    run = discovery_service.request_discovery(provider=provider, trigger=Job.Trigger.GUI, user=request.user)
    if active_before is not None and run.pk == active_before.pk:
        status = run.get_status_display().lower()
        messages.info(request, f"A discovery of {provider.name} is already {status} (#{run.pk}).")
    else:
        messages.success(request, f"Discovery of {provider.name} queued (#{run.pk}).")
    return redirect(provider)


def discovery_detail(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """A discovery is a job: its page is the job's (this address is kept for links made before)."""
    run = get_object_or_404(discovery_service.discoveries(), pk=pk)
    return redirect(run)


@require_POST
@role_required(OPERATOR)
def provider_check(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    """Queue the environment check (credentials, and for RHEV the manager's own HA per VM)."""
    provider = get_object_or_404(Provider, pk=pk)
    try:
        job = operation_service.request_environment_check(provider=provider, user=request.user)
    except ValidationError as exc:
        messages.info(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Environment check of {provider.name} queued (operation #{job.pk}).")
    return redirect(provider)
