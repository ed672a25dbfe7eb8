"""One row per long-running unit of work (a discovery, a VM operation, a provisioning request …).

The lifecycle (``vom.jobs.lifecycle``) is the only writer of the lifecycle columns: status, claim,
step, heartbeat, started/finished. The apps own their kinds (``vom.jobs.kinds``) and may keep details
of their own in a table with a one-to-one link to the job (a discovery's counts, a request's VMs).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.urls import reverse


class Job(models.Model):
    """A unit of work: created → claimed → running (heartbeat, progress, log) → ended.

    ``kind`` names a :class:`vom.jobs.kinds.JobKind` registered by the app that owns it; it has no
    choices at the database level, so an app adds kinds without a migration of this table.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        ABANDONED = "abandoned", "Abandoned"

    class Trigger(models.TextChoices):
        GUI = "gui", "GUI"
        API = "api", "API"
        CLI = "cli", "Command line"
        SCHEDULE = "schedule", "Schedule"
        JOB = "job", "Another job"

    kind = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.GUI)
    # What the job acts on: any object of any app (a VM, a provider, a golden image, a service group).
    target_type = models.ForeignKey(ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    target_id = models.PositiveBigIntegerField(null=True, blank=True)
    target = GenericForeignKey("target_type", "target_id")
    target_name = models.CharField(max_length=255, blank=True, help_text="The target's name when requested.")
    # While the job is queued or running, no other job with the same lock can be (e.g. "vm:12").
    lock = models.CharField(max_length=200, blank=True)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    position = models.PositiveIntegerField(default=0, help_text="Order among the parent's children.")
    # Run by the parent's executor in the parent's worker (not queued on its own).
    inline = models.BooleanField(default=False)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # What the executor keeps between its steps (a deadline, the phase it is in).
    checkpoint = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    retryable = models.BooleanField(default=False, help_text="A failure that trying again later may not repeat.")
    # The claim: a token per claim of a step; every write of a worker is conditional on it.
    claim = models.CharField(max_length=32, blank=True)
    step = models.PositiveIntegerField(default=0, help_text="The step the next message of this job runs.")
    heartbeat = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the worker holding it.")
    wake_at = models.DateTimeField(null=True, blank=True, help_text="When the next step is due (between steps).")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When its step was last handed to the queue.")
    sends = models.PositiveSmallIntegerField(default=0, help_text="Times the current step was handed to the queue.")
    resumes = models.PositiveSmallIntegerField(default=0, help_text="Times it was resumed after its worker died.")
    cancel_requested = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [
            models.Index(fields=["target_type", "target_id", "-created"]),
            models.Index(fields=["parent", "position"]),
            models.Index(fields=["status", "heartbeat"]),
        ]
        constraints = [
            # The lock: the database refuses a second queued or running job holding the same one.
            models.UniqueConstraint(
                fields=["lock"],
                condition=Q(status__in=["pending", "running"]) & ~Q(lock=""),
                name="job_one_active_per_lock",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind_label} {self.target_name} ({self.status})".strip()

    def get_absolute_url(self) -> str:
        return reverse("job-detail", args=[self.pk])

    @property
    def kind_label(self) -> str:
        from vom.jobs.kinds import label_of

        return label_of(self.kind)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def between_steps(self) -> bool:
        """Running, but no worker holds it now: its next step waits for its time (``wake_at``)."""
        return self.status == self.Status.RUNNING and not self.claim

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None

    def target_url(self) -> str | None:
        """The page of the target, if it still exists and has one."""
        target: Any = self.target
        return target.get_absolute_url() if target is not None and hasattr(target, "get_absolute_url") else None


ACTIVE = (Job.Status.PENDING, Job.Status.RUNNING)
ENDED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.ABANDONED)


class JobLogEntry(models.Model):
    """One line of a job's log, written as the work goes on so the GUI can show it."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log")
    time = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["time", "pk"]

    def __str__(self) -> str:
        return self.message
