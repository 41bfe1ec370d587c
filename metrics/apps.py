from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Flow metrics, SLOs with error budgets, workforce planning and /metrics."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "metrics"
