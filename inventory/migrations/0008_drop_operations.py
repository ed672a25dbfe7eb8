"""The operation and discovery-run tables are gone (their rows are jobs now, see 0007); every write of
a VM's state carries the time the platform was read (compare-and-set)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("inventory", "0007_operations_become_jobs"),
    ]

    operations = [
        migrations.DeleteModel(name="OperationLogEntry"),
        migrations.DeleteModel(name="Operation"),
        migrations.DeleteModel(name="DiscoveryRun"),
        migrations.AddField(
            model_name="virtualmachine",
            name="state_read_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
