"""Querysets of jobs shared by the GUI and the API, with the joins their pages need."""

from __future__ import annotations

from django.db.models import QuerySet

from vom.jobs.models import ACTIVE, Job


def job_list() -> QuerySet[Job]:
    """Jobs with their users, and their targets read in one query per kind of target (pages link them)."""
    return Job.objects.select_related("requested_by", "cancelled_by", "target_type").prefetch_related("target")


def job_detail() -> QuerySet[Job]:
    return job_list().select_related("parent").prefetch_related("log")


def active_jobs() -> QuerySet[Job]:
    """Top-level jobs queued or running (children show on their parent's page), newest first."""
    return job_list().filter(status__in=ACTIVE, parent__isnull=True).order_by("-created", "-pk")


def children_of(job: Job) -> QuerySet[Job]:
    return job_list().filter(parent=job).order_by("position", "pk")


def jobs_on(obj_type: str, obj_id: int) -> QuerySet[Job]:
    """Jobs whose target is the object ``obj_type`` (``app_label.model``) #``obj_id``, newest first."""
    app_label, _, model = obj_type.partition(".")
    return (
        job_list()
        .filter(target_type__app_label=app_label, target_type__model=model, target_id=obj_id)
        .order_by("-created", "-pk")
    )
