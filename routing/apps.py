from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Queues, reviewer profiles, work items, claiming, assignment and SLAs."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "routing"
