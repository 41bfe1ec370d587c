from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Audit events and evidence. Depends on no other app of ours; all of them write to it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        from audit import registry, selectors
        from audit.history import cache_history_managers

        cache_history_managers()

        registry.register_timeline_source("audit", selectors.audit_timeline)
        registry.register_evidence_section("audit_chain", selectors.audit_chain_evidence)
        registry.register_evidence_section("verification", selectors.verification_evidence)
