from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """The reviewer workspace: inbox, next item, sources, diffs and decisions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"

    def ready(self) -> None:
        from audit import registry
        from review import selectors

        registry.register_timeline_source("decisions", selectors.decision_timeline)
        registry.register_evidence_section("decisions", selectors.decisions_evidence)
