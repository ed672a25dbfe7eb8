from django.apps import AppConfig


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"

    def ready(self) -> None:
        from inventory.services import discovery, operations
        from vom.jobs.kinds import register

        register(*discovery.KINDS, *operations.KINDS)
