"""The operations pages: every job of every app in one list, and one job with its log and children."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render

from vom.jobs import kinds, lifecycle, selectors
from vom.jobs.filters import JobFilterSet
from vom.jobs.models import Job
from vom.web.roles import OPERATOR, role_required
from vom.web.views import paginate, redirect_back, render_fragment, requested_fragment, unknown_fragment


def job_list(request: HttpRequest) -> HttpResponse:
    filterset = JobFilterSet(request.GET, queryset=selectors.job_list().order_by("-created", "-pk"))
    page = paginate(request, filterset.qs)
    context: dict[str, Any] = {
        "filter": filterset,
        "page": page,
        "statuses": Job.Status.choices,
        "kinds": kinds.choices(),
        "selected_status": request.GET.get("status", ""),
        "selected_kind": request.GET.get("kind", ""),
    }
    fragment = requested_fragment(request)
    if fragment == "table":
        return render_fragment(request, "jobs/_table.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    return render(request, "jobs/list.html", context)


def job_context(job: Job) -> dict[str, Any]:
    """What the job page shows: the job, its log, its children, and its kind's own part of the page."""
    try:
        kind: kinds.JobKind | None = kinds.kind_of(job.kind)
    except LookupError:
        kind = None
    children = list(selectors.children_of(job))
    return {
        "job": job,
        "log": list(job.log.all()),
        "children": children,
        "children_active": any(child.is_active for child in children),
        "kind_template": kind.page_template if kind is not None else "",
    }


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.job_detail(), pk=pk)
    context = job_context(job)
    fragment = requested_fragment(request)
    if fragment == "live":
        return render_fragment(request, "jobs/_live.html", context)
    if fragment:
        raise unknown_fragment(fragment)
    return render(request, "jobs/detail.html", context)


@role_required(OPERATOR)
def job_cancel(request: HttpRequest, pk: int) -> HttpResponseRedirect:
    job = get_object_or_404(Job, pk=pk)
    if request.method == "POST":
        try:
            lifecycle.request_cancel(job, user=request.user)
        except ValueError as exc:
            messages.error(request, f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        else:
            if job.status == Job.Status.CANCELLED:
                messages.success(request, f"{job.kind_label} #{job.pk} cancelled before it started.")
            else:
                messages.info(request, f"Cancelling {job.kind_label} #{job.pk}: it stops before its next step.")
    return redirect_back(request, "job-detail", job.pk)
