"""FilterSets of the provisioning API lists (``?status=``, ``?golden_image=`` …); a bad value is a 400."""

from __future__ import annotations

import django_filters as df

from inventory.models import Provider, StoragePool
from provisioning.models import GoldenImage, Mode, ProvisioningRequest
from vom.jobs.models import Job


class GoldenImageFilterSet(df.FilterSet):
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())
    pool = df.ModelChoiceFilter(queryset=StoragePool.objects.all())
    os = df.CharFilter(lookup_expr="icontains", label="OS contains")
    q = df.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = GoldenImage
        fields = ["provider", "pool", "os", "q"]


class ProvisioningRequestFilterSet(df.FilterSet):
    status = df.MultipleChoiceFilter(field_name="job__status", choices=Job.Status.choices)
    golden_image = df.ModelChoiceFilter(queryset=GoldenImage.objects.all())
    provider = df.ModelChoiceFilter(queryset=Provider.objects.all())
    mode = df.ChoiceFilter(choices=Mode.choices)
    cancelled = df.BooleanFilter(
        field_name="job__cancel_requested", lookup_expr="isnull", exclude=True, label="Cancellation asked for"
    )

    class Meta:
        model = ProvisioningRequest
        fields = ["status", "golden_image", "provider", "mode", "cancelled"]
