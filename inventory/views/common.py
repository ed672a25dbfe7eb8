"""Select options of the inventory's list pages: providers, and hosts or pools scoped to the chosen provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from inventory.models import Host, Provider, StoragePool
from vom.web.views import id_param, select_options

M = TypeVar("M", bound=Model)

# Beyond this many hosts (or pools), their select lists them only once a provider is chosen.
CHOICES_WITHOUT_PROVIDER = 300


def provider_options(request: HttpRequest) -> SafeString:
    """The options of a list page's ``provider`` select, with the requested one selected."""
    providers = Provider.objects.order_by("name", "pk").values_list("pk", "name")
    return select_options(providers, request.GET.get("provider") or None, "All providers")


def _scoped_to_provider(queryset: QuerySet[M], request: HttpRequest, param: str) -> QuerySet[M]:
    """Present rows of the chosen provider; without a provider, all of them while there are few.

    The chosen row itself is always kept, even when it is marked removed, so the select shows it.
    """
    chosen = id_param(request, param)
    queryset = queryset.filter(Q(removed_at__isnull=True) | Q(pk=chosen))
    provider_id = id_param(request, "provider")
    if provider_id:
        return queryset.filter(provider_id=provider_id)
    if queryset.count() > CHOICES_WITHOUT_PROVIDER:
        return queryset.filter(pk=chosen)
    return queryset


def host_options(request: HttpRequest) -> SafeString:
    """The options of a list page's ``host`` select (see ``_scoped_to_provider`` for which hosts)."""
    hosts = _scoped_to_provider(Host.objects.all(), request, "host")
    return select_options(
        hosts.order_by("hostname", "pk").values_list("pk", "hostname"), request.GET.get("host") or None, "All hosts"
    )


def pool_options(request: HttpRequest) -> SafeString:
    """The options of a list page's ``pool`` select; pools of all providers are named with their provider."""
    pools = _scoped_to_provider(StoragePool.objects.all(), request, "pool").order_by("name", "provider__name", "pk")
    if id_param(request, "provider"):
        choices: Iterable[tuple[Any, str]] = pools.values_list("pk", "name")
    else:
        choices = (
            (pk, f"{name} ({provider})") for pk, name, provider in pools.values_list("pk", "name", "provider__name")
        )
    return select_options(choices, request.GET.get("pool") or None, "All pools")
