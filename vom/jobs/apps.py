from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The job core: one lifecycle for every long-running unit of work of every app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "vom.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # The job task is sent by name (vom.jobs.broker); this registers it with the Celery app.
        from vom.jobs import tasks  # noqa: F401
