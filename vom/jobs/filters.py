"""The one FilterSet of jobs, used by the operations page and the API: a filter means the same in both."""

from __future__ import annotations

from typing import Any

import django_filters as df
from django.db.models import Q, QuerySet

from vom.jobs import kinds
from vom.jobs.models import Job


class JobFilterSet(df.FilterSet):  # type: ignore[misc]
    """By kind, status, target (its type and id, or a part of its name), user and parent.

    Without ``parent`` only top-level jobs are listed: a job's children show on its own page.
    """

    status = df.MultipleChoiceFilter(choices=Job.Status.choices)
    kind = df.MultipleChoiceFilter(choices=kinds.choices, label="Kind")
    target_type = df.CharFilter(
        method="filter_target_type", label="Target type", help_text="e.g. inventory.virtualmachine"
    )
    target_id = df.NumberFilter(min_value=1, max_value=2**63 - 1)
    target = df.CharFilter(field_name="target_name", lookup_expr="icontains", label="Target")
    user = df.CharFilter(method="filter_user", label="Requested by", help_text="A user name")
    trigger = df.ChoiceFilter(choices=Job.Trigger.choices)
    parent = df.NumberFilter(min_value=1, max_value=2**63 - 1)

    class Meta:
        model = Job
        fields = ["status", "kind", "target_type", "target_id", "target", "user", "trigger", "parent"]

    def filter_target_type(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        app_label, _, model = value.strip().lower().partition(".")
        return queryset.filter(target_type__app_label=app_label, target_type__model=model)

    def filter_user(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        return queryset.filter(Q(requested_by__username__iexact=value.strip()))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("parent") is None:
            queryset = queryset.filter(parent__isnull=True)
        return queryset
