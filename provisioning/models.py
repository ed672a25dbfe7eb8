"""Provisioning: golden images, provisioning requests and their per-VM steps.

A request is executed as a job (``vom.jobs``, kind ``provision_vms``) on the ``provisioning`` queue;
each VM it makes is a child job (kind ``provision_vm``, run inline by the request's worker) with a
:class:`ProvisionedVM` row of its own whose phase is written *before* each platform call, so a worker
that dies half-way leaves a record of what may exist.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse

from inventory.models import Host, Provider, StoragePool, StorageVolume, VirtualMachine
from vom.jobs.models import Job


class Mode(models.TextChoices):
    SPACE_OPTIMIZED = "space_optimized", "Space-optimized (copy-on-write child)"
    FULL = "full", "Full copy"


class GoldenImage(models.Model):
    """One prepared boot volume (OS installed, configured, shut down) that new VMs are made from.

    ``template_xml`` is the persistent definition of the VM the image was prepared in, read when the
    image was registered; new VMs are defined from it with a new name, UUID, MACs and boot disk.
    """

    name = models.CharField(max_length=100, unique=True)
    os = models.CharField("OS", max_length=100, blank=True)
    description = models.TextField(blank=True)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="golden_images")
    pool = models.ForeignKey(StoragePool, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    volume = models.ForeignKey(StorageVolume, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    volume_name = models.CharField(max_length=255)
    volume_path = models.CharField(max_length=1000)
    format = models.CharField(max_length=16)
    capacity_bytes = models.BigIntegerField(default=0)
    allocation_bytes = models.BigIntegerField(default=0, help_text="Space the image takes on disk, as last read.")
    template_vm = models.ForeignKey(
        VirtualMachine, on_delete=models.SET_NULL, null=True, blank=True, related_name="golden_images"
    )
    template_vm_name = models.CharField(max_length=255)
    template_vm_uuid = models.CharField("template VM UUID", max_length=64)
    template_xml = models.TextField()
    template_vcpus = models.PositiveIntegerField(default=1)
    template_memory_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "volume_path"], name="golden_image_unique_volume"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("golden-image-detail", args=[self.pk])


class ProvisioningRequest(models.Model):
    """N new VMs from one golden image: what was asked. Status, progress, log and cancel live on the job."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="provisioning_request")
    golden_image = models.ForeignKey(
        GoldenImage, on_delete=models.SET_NULL, null=True, blank=True, related_name="requests"
    )
    golden_image_name = models.CharField(max_length=100, help_text="The image's name (or the volume's).")
    from_golden_image = models.BooleanField(
        default=True, help_text="False: the boot volumes are made from a plain pool volume."
    )
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="provisioning_requests")
    source_path = models.CharField(max_length=1000, help_text="The image the boot volumes are made from.")
    source_format = models.CharField(max_length=16)
    template_xml = models.TextField()
    count = models.PositiveIntegerField()
    name_pattern = models.CharField(max_length=100)
    first_number = models.PositiveIntegerField(default=1)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    vcpus = models.PositiveIntegerField()
    memory_bytes = models.BigIntegerField()
    pool = models.ForeignKey(StoragePool, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    pool_name = models.CharField(max_length=255)
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    network = models.CharField(max_length=255, blank=True, help_text="libvirt network for the first NIC.")
    bridge = models.CharField(max_length=64, blank=True, help_text="Host bridge for the first NIC.")
    start = models.BooleanField(default=False)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return f"{self.count} × {self.golden_image_name} ({self.get_mode_display()})"

    def get_absolute_url(self) -> str:
        return reverse("provisioning-request-detail", args=[self.pk])


class ProvisionedVM(models.Model):
    """One VM of a request: the child job that makes it, its phase, and what was made for it."""

    class Phase(models.TextChoices):
        WAITING = "waiting", "Waiting"
        CREATING_VOLUME = "creating_volume", "Creating the boot volume"
        DEFINING = "defining", "Defining the VM"
        STARTING = "starting", "Starting"
        FINISHED = "finished", "Finished"

    class Status(models.TextChoices):
        """How a VM's progress reads (its job's status, with the phase while it runs)."""

        PENDING = "pending", "Waiting"
        CREATING_VOLUME = "creating_volume", "Creating the boot volume"
        DEFINING = "defining", "Defining the VM"
        STARTING = "starting", "Starting"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    request = models.ForeignKey(ProvisioningRequest, on_delete=models.CASCADE, related_name="vms")
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="provisioned_vm")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.WAITING)
    volume_name = models.CharField(max_length=255)
    volume_path = models.CharField(max_length=1000, blank=True)
    volume_created = models.BooleanField(default=False, help_text="True once this request made the volume.")
    capacity_bytes = models.BigIntegerField(default=0)
    allocation_bytes = models.BigIntegerField(default=0, help_text="Actual allocation read after creation.")
    vm_uuid = models.CharField("VM UUID", max_length=64, blank=True)
    warning = models.TextField(blank=True)

    class Meta:
        ordering = ["request", "index"]
        constraints = [
            models.UniqueConstraint(fields=["request", "index"], name="provisioned_vm_unique_index"),
            models.UniqueConstraint(fields=["request", "name"], name="provisioned_vm_unique_name"),
        ]
        indexes = [models.Index(fields=["volume_path"])]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        """The VM's progress in one word: its job's outcome, or the phase it is in while it runs."""
        return status_of(self.job.status, self.phase)

    def get_status_display(self) -> str:
        return str(self.Status(self.status).label)

    @property
    def is_finished(self) -> bool:
        return self.job.status in ENDED_JOB

    @property
    def started(self) -> Any:
        return self.job.started

    @property
    def finished(self) -> Any:
        return self.job.finished

    @property
    def error(self) -> str:
        return str(self.job.error)

    @property
    def duration_seconds(self) -> float | None:
        return self.job.duration_seconds


ENDED_JOB = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED, Job.Status.ABANDONED)
_OUTCOMES: dict[str, str] = {
    Job.Status.PENDING: ProvisionedVM.Status.PENDING,
    Job.Status.SUCCEEDED: ProvisionedVM.Status.DONE,
    Job.Status.FAILED: ProvisionedVM.Status.FAILED,
    Job.Status.ABANDONED: ProvisionedVM.Status.FAILED,
    Job.Status.CANCELLED: ProvisionedVM.Status.CANCELLED,
}


def status_of(job_status: str, phase: str) -> str:
    """A VM's status word from its job's status and its phase."""
    if job_status == Job.Status.RUNNING:
        return phase if phase in ProvisionedVM.Status.values else ProvisionedVM.Status.PENDING
    return _OUTCOMES.get(job_status, ProvisionedVM.Status.PENDING)


def ended_by_cancel(job: Job, *, cancelled: int, failed: int) -> bool:
    """Whether a request's job ended because it was cancelled, with no VM failed: shown as
    cancelled, not as a failure (the job itself has failed: it did not make every VM)."""
    return not job.is_active and cancelled > 0 and failed == 0
