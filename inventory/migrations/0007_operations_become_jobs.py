"""Operations and discovery runs become jobs of the job core (vom.jobs), keeping their history.

Operations keep their ids (their pages' addresses stay the same); discovery runs get job ids after
them. Work that was queued or running when the console was upgraded cannot be continued by the new
workers (its messages name tasks that no longer exist): it is ended as abandoned, with the reason.
"""

from django.db import migrations

UPGRADED = "abandoned: the console was upgraded while it was queued or running"
DISCOVERY_TRIGGERS = {"manual": "gui", "api": "api", "cli": "cli", "schedule": "schedule", "operation": "job"}


def _content_type(apps, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    return ContentType.objects.get_or_create(app_label="inventory", model=model)[0]


def forwards(apps, schema_editor):
    Operation = apps.get_model("inventory", "Operation")
    OperationLogEntry = apps.get_model("inventory", "OperationLogEntry")
    DiscoveryRun = apps.get_model("inventory", "DiscoveryRun")
    Job = apps.get_model("jobs", "Job")
    JobLogEntry = apps.get_model("jobs", "JobLogEntry")
    vm_type, provider_type = _content_type(apps, "virtualmachine"), _content_type(apps, "provider")

    def ended(status, error, finished, created):
        if status in ("pending", "queued", "running"):
            return "abandoned", UPGRADED, finished or created
        return status, error, finished

    for op in Operation.objects.all().iterator():
        status, error, finished = ended(op.status, op.error, op.finished, op.created)
        if op.vm_id is not None:
            target = {"target_type": vm_type, "target_id": op.vm_id}
        elif op.provider_id is not None:
            target = {"target_type": provider_type, "target_id": op.provider_id}
        else:
            target = {}
        Job.objects.create(
            pk=op.pk,
            kind=op.kind,
            status=status,
            target_name=op.target_name,
            params=op.params,
            result=op.result,
            requested_by_id=op.requested_by_id,
            started=op.started,
            finished=finished,
            progress=op.progress,
            message=op.message if status == op.status else "abandoned",
            error=error,
            **target,
        )
        Job.objects.filter(pk=op.pk).update(created=op.created)  # auto_now_add would set "now"
    for entry in OperationLogEntry.objects.all().iterator():
        new = JobLogEntry.objects.create(job_id=entry.operation_id, level=entry.level, message=entry.message)
        JobLogEntry.objects.filter(pk=new.pk).update(time=entry.time)

    for run in DiscoveryRun.objects.all().order_by("pk").iterator():
        status, error, finished = ended(run.status, run.error, run.finished, run.created)
        job = Job.objects.create(
            kind="discovery",
            status="pending" if status == "queued" else status,
            trigger=DISCOVERY_TRIGGERS.get(run.trigger, "gui"),
            target_type=provider_type,
            target_id=run.provider_id,
            target_name=run.provider.name,
            requested_by_id=run.requested_by_id,
            started=run.started,
            finished=finished,
            progress=100 if status == "succeeded" else 0,
            message=f"+{run.added} ~{run.changed} -{run.removed}" if status == "succeeded" else (error or status)[:500],
            error=error,
            retryable=run.retryable,
            result={
                "added": run.added,
                "changed": run.changed,
                "removed": run.removed,
                "counts": run.counts,
                "duration_ms": run.duration_ms,
            },
        )
        Job.objects.filter(pk=job.pk).update(created=run.created)


class Migration(migrations.Migration):

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0001_initial"),
        ("inventory", "0006_provisioning_operation_kinds"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
