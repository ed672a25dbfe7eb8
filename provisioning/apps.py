from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "provisioning"

    def ready(self) -> None:
        from provisioning.services import disks
        from provisioning.services.requests import execution
        from vom.jobs.kinds import register

        register(*execution.KINDS, *disks.KINDS)
