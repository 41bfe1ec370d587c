from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """The reviewer workspace: inbox, next item, sources, diffs and decisions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"
