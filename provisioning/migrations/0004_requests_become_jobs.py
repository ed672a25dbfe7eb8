"""A provisioning request's operation becomes its job (same id: see inventory 0007), and each of its
VMs a child job of it, with the VM's phase kept on the row. Cancel requests move to the job.

Runs before inventory drops the operation table (it reads the requests' operation ids).
"""

import django.db.models.deletion
from django.db import migrations, models

PHASES = {"pending": "waiting", "creating_volume": "creating_volume", "defining": "defining", "starting": "starting"}
CHILD_STATUS = {"done": "succeeded", "failed": "failed", "cancelled": "cancelled"}


def forwards(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Job = apps.get_model("jobs", "Job")
    ProvisioningRequest = apps.get_model("provisioning", "ProvisioningRequest")
    image_type = ContentType.objects.get_or_create(app_label="provisioning", model="goldenimage")[0]
    for request in ProvisioningRequest.objects.all().iterator():
        job = Job.objects.get(pk=request.operation_id)
        job.cancel_requested = request.cancel_requested
        job.cancelled_by_id = request.cancelled_by_id
        if request.golden_image_id is not None:
            job.target_type, job.target_id = image_type, request.golden_image_id
        job.save()
        request.job_id = job.pk
        request.save(update_fields=["job"])
        for row in request.vms.all().order_by("index"):
            status = CHILD_STATUS.get(row.status)
            if status is None:  # unfinished: its request was abandoned with the upgrade (inventory 0007)
                status = "abandoned" if job.status == "abandoned" else "failed"
            child = Job.objects.create(
                kind="provision_vm",
                status=status,
                parent=job,
                position=row.index,
                inline=True,
                target_name=row.name,
                requested_by_id=job.requested_by_id,
                started=row.started,
                finished=row.finished or job.finished,
                progress=100 if status == "succeeded" else 0,
                message="done" if status == "succeeded" else (row.error or status)[:500],
                error=row.error if status != "succeeded" else "",
            )
            Job.objects.filter(pk=child.pk).update(created=job.created)
            row.job_id = child.pk
            row.phase = PHASES.get(row.status, "finished")
            row.save(update_fields=["job", "phase"])


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0001_initial"),
        ("inventory", "0007_operations_become_jobs"),
        ("provisioning", "0003_request_cancel"),
    ]
    run_before = [("inventory", "0008_drop_operations")]

    operations = [
        migrations.AddField(
            model_name="provisioningrequest",
            name="job",
            field=models.OneToOneField(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="provisioning_request",
                to="jobs.job",
            ),
        ),
        migrations.AddField(
            model_name="provisionedvm",
            name="job",
            field=models.OneToOneField(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="provisioned_vm", to="jobs.job"
            ),
        ),
        migrations.AddField(
            model_name="provisionedvm",
            name="phase",
            field=models.CharField(
                choices=[
                    ("waiting", "Waiting"),
                    ("creating_volume", "Creating the boot volume"),
                    ("defining", "Defining the VM"),
                    ("starting", "Starting"),
                    ("finished", "Finished"),
                ],
                default="waiting",
                max_length=16,
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="provisioningrequest",
            name="job",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="provisioning_request", to="jobs.job"
            ),
        ),
        migrations.AlterField(
            model_name="provisionedvm",
            name="job",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="provisioned_vm", to="jobs.job"
            ),
        ),
        migrations.RemoveField(model_name="provisioningrequest", name="operation"),
        migrations.RemoveField(model_name="provisioningrequest", name="heartbeat"),
        migrations.RemoveField(model_name="provisioningrequest", name="cancel_requested"),
        migrations.RemoveField(model_name="provisioningrequest", name="cancelled_by"),
        migrations.RemoveField(model_name="provisionedvm", name="status"),
        migrations.RemoveField(model_name="provisionedvm", name="started"),
        migrations.RemoveField(model_name="provisionedvm", name="finished"),
        migrations.RemoveField(model_name="provisionedvm", name="error"),
    ]
