from django.apps import AppConfig


class OrchestrationConfig(AppConfig):
    """Workflows, cases, step runs, the engine and its workers."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "orchestration"

    def ready(self) -> None:
        # Registering the demo handlers fills the allow-list before any definition is parsed.
        import orchestration.handlers  # noqa: F401
        from audit import registry
        from orchestration import selectors

        registry.register_timeline_source("steps", selectors.step_timeline)
        registry.register_timeline_source("case history", selectors.case_history_timeline)
        registry.register_evidence_section("case", selectors.case_evidence)
        registry.register_evidence_section("steps", selectors.steps_evidence)
