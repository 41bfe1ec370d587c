"""Orchestration's models: the engine's (workflows, cases, step runs, timers, outbox)
and intake's (API clients, idempotency records, webhooks)."""

from orchestration.models.engine import *  # noqa: F403
from orchestration.models.engine import __all__ as _engine_all
from orchestration.models.intake import *  # noqa: F403
from orchestration.models.intake import __all__ as _intake_all
from orchestration.models.thresholds import *  # noqa: F403
from orchestration.models.thresholds import __all__ as _thresholds_all

__all__ = [*_engine_all, *_intake_all, *_thresholds_all]
