"""Arbiter's settings with POST /api/v1/cases/ answered by a one-INSERT view: for the
benchmark ONLY (the intake line's Django floor, bench/floor_urls.py).

Everything else is config.settings unchanged: the middleware stack, the API's token
authentication, scope check and throttle. Nothing in the product points at it; it
refuses to load unless the benchmark sets ARBITER_BENCHMARK_FLOOR=1, so a stray
DJANGO_SETTINGS_MODULE cannot replace the intake of a real deployment.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F403

if os.environ.get("ARBITER_BENCHMARK_FLOOR") != "1":
    raise ImproperlyConfigured(
        "bench.settings_floor replaces case intake with a one-INSERT view and exists for the "
        "benchmark only (bench/intake.py sets ARBITER_BENCHMARK_FLOOR=1). Use config.settings."
    )

ROOT_URLCONF = "bench.floor_urls"
