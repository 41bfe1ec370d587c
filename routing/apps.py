from django.apps import AppConfig


class RoutingConfig(AppConfig):
    """Queues, reviewer profiles, work items, claiming, assignment and SLAs."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "routing"

    def ready(self) -> None:
        from orchestration.services import register_review_closed_hook, register_review_hook
        from routing.services import work_item_enqueue, work_items_withdraw

        register_review_hook(work_item_enqueue)
        register_review_closed_hook(work_items_withdraw)
