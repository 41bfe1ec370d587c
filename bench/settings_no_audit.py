"""Arbiter's settings with the audit trail switched off: for the benchmark ONLY.

The audit goal compares intake with its audit events to intake without them. This
module loads config.settings unchanged and adds one app (bench.no_audit) whose ready()
swaps `audit.services.record` for a no-op everywhere it was imported. Nothing in the
product points at it; it refuses to load unless the benchmark sets
ARBITER_BENCHMARK_NO_AUDIT=1, so a stray DJANGO_SETTINGS_MODULE cannot turn off the
audit trail of a real deployment.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

if os.environ.get("ARBITER_BENCHMARK_NO_AUDIT") != "1":
    raise ImproperlyConfigured(
        "bench.settings_no_audit switches the audit trail off and exists for the benchmark "
        "only (bench/run.py sets ARBITER_BENCHMARK_NO_AUDIT=1). Use config.settings."
    )

INSTALLED_APPS = [*INSTALLED_APPS, "bench.no_audit.NoAuditConfig"]
