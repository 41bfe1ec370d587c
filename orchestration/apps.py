from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    """Workflows, cases, step runs, the engine and its workers."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "orchestration"
