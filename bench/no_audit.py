"""The app behind bench/settings_no_audit.py: audit.services.record becomes a no-op."""

from __future__ import annotations

import sys
from typing import Any

from django.apps import AppConfig


def record_nothing(**kwargs: Any) -> None:
    """Stands in for audit.services.record in the no-audit benchmark: writes nothing."""
    return None


class NoAuditConfig(AppConfig):
    name = "bench"
    label = "bench_no_audit"
    verbose_name = "Benchmark: audit trail off"

    def ready(self) -> None:
        from audit import services

        original = services.record
        # Modules imported from here on get the no-op from audit.services; the ones
        # already imported hold their own reference (`from audit.services import record`).
        services.record = record_nothing  # type: ignore[assignment]
        for module in list(sys.modules.values()):
            if getattr(module, "record", None) is original:
                module.record = record_nothing  # type: ignore[attr-defined]
