"""FilterSets shared by the HTML list views and the API viewsets: a filter means the same in both."""

from __future__ import annotations

from typing import Any

import django_filters as df
from django.db.models import Q, QuerySet

from inventory.models import (
    Host,
    Network,
    Provider,
    StoragePool,
    StorageVolume,
    VirtualDisk,
    VirtualMachine,
)
from vom.jobs.models import Job

REMOVED_CHOICES = (("no", "Present"), ("yes", "Removed"), ("all", "All"))


class _RemovedMixin(df.FilterSet):
    """Rows marked removed are hidden unless asked for (``removed=yes`` or ``removed=all``)."""

    removed = df.ChoiceFilter(choices=REMOVED_CHOICES, method="filter_removed", empty_label=None)

    def filter_removed(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        value = self.form.cleaned_data.get("removed") or "no"
        if value == "no":
            return queryset.filter(removed_at__isnull=True)
        if value == "yes":
            return queryset.filter(removed_at__isnull=False)
        return queryset


class ProviderFilterSet(df.FilterSet):
    q = df.CharFilter(method="search", label="Search")
    kind = df.ChoiceFilter(choices=Provider.Kind.choices)
    status = df.ChoiceFilter(choices=Provider.Status.choices)

    class Meta:
        model = Provider
        fields = ["q", "kind", "status", "enabled"]

    def search(self, queryset: QuerySet[Provider], name: str, value: str) -> QuerySet[Provider]:
        return queryset.filter(Q(name__icontains=value) | Q(uri__icontains=value))


class HostFilterSet(_RemovedMixin):
    q = df.CharFilter(method="search", label="Search")
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())

    class Meta:
        model = Host
        fields = ["q", "provider", "removed"]

    def search(self, queryset: QuerySet[Host], name: str, value: str) -> QuerySet[Host]:
        return queryset.filter(Q(hostname__icontains=value) | Q(cpu_model__icontains=value))


class VMFilterSet(_RemovedMixin):
    q = df.CharFilter(method="search", label="Search", help_text="Name, UUID or MAC address")
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())
    host = df.ModelChoiceFilter(queryset=Host.objects.all())
    state = df.MultipleChoiceFilter(choices=VirtualMachine.State.choices)
    platform = df.ChoiceFilter(field_name="provider__kind", choices=Provider.Kind.choices, label="Platform")
    persistent = df.BooleanFilter()

    class Meta:
        model = VirtualMachine
        fields = ["q", "provider", "host", "state", "platform", "persistent", "removed"]

    def search(self, queryset: QuerySet[VirtualMachine], name: str, value: str) -> QuerySet[VirtualMachine]:
        value = value.strip()
        match = Q(name__icontains=value) | Q(uuid__iexact=value)
        if value.count(":") == 5:
            match |= Q(nics__mac__iexact=value)
        return queryset.filter(match).distinct() if ":" in value else queryset.filter(match)


class DiskFilterSet(df.FilterSet):
    q = df.CharFilter(method="search", label="Search")
    vm = df.ModelChoiceFilter(queryset=VirtualMachine.objects.all())
    provider = df.ModelChoiceFilter(field_name="vm__provider", queryset=Provider.objects.all())

    class Meta:
        model = VirtualDisk
        fields = ["q", "vm", "provider", "bus", "device", "source_type", "persistent"]

    def search(self, queryset: QuerySet[VirtualDisk], name: str, value: str) -> QuerySet[VirtualDisk]:
        return queryset.filter(Q(source__icontains=value) | Q(serial__icontains=value) | Q(wwn__icontains=value))


class PoolFilterSet(_RemovedMixin):
    q = df.CharFilter(field_name="name", lookup_expr="icontains", label="Search")
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())
    host = df.ModelChoiceFilter(queryset=Host.objects.all())

    class Meta:
        model = StoragePool
        fields = ["q", "provider", "host", "type", "active", "removed"]


class VolumeFilterSet(df.FilterSet):
    q = df.CharFilter(method="search", label="Search")
    pool = df.ModelChoiceFilter(queryset=StoragePool.objects.all())
    provider = df.ModelChoiceFilter(field_name="pool__provider", queryset=Provider.objects.all())

    class Meta:
        model = StorageVolume
        fields = ["q", "pool", "provider", "format"]

    def search(self, queryset: QuerySet[StorageVolume], name: str, value: str) -> QuerySet[StorageVolume]:
        return queryset.filter(Q(name__icontains=value) | Q(path__icontains=value))


class NetworkFilterSet(_RemovedMixin):
    q = df.CharFilter(field_name="name", lookup_expr="icontains", label="Search")
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())
    host = df.ModelChoiceFilter(queryset=Host.objects.all())

    class Meta:
        model = Network
        fields = ["q", "provider", "host", "forward_mode", "active", "removed"]


class DiscoveryFilterSet(df.FilterSet):
    """Discoveries (jobs of kind ``discovery``): by provider, status and what started them."""

    provider = df.NumberFilter(field_name="target_id", min_value=1, max_value=2**63 - 1)
    status = df.MultipleChoiceFilter(choices=Job.Status.choices)
    trigger = df.ChoiceFilter(choices=Job.Trigger.choices)

    class Meta:
        model = Job
        fields = ["provider", "status", "trigger"]
