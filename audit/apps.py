from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Audit events and evidence. Depends on no other app of ours; all of them write to it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
