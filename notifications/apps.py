from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """In-app and email notifications, fed by the outbox. Nothing depends on this app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        from notifications.services import notifications_create_from_event
        from orchestration.outbox import register_consumer

        register_consumer(notifications_create_from_event, name="notifications")
