"""Routing's own Prometheus instruments; /metrics (metrics/prometheus.py) exposes them
with the rest. Defined here so routing does not depend on the metrics app above it."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Histogram

P = ParamSpec("P")
R = TypeVar("R")

CLAIM_DURATION = Histogram(
    "arbiter_claim_duration_seconds",
    "Time one call of work_item_claim_next takes, by result (claimed, empty, error).",
    ["result"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def timed_claim(claim: Callable[P, R]) -> Callable[P, R]:
    """Observe how long each claim takes in arbiter_claim_duration_seconds."""

    @functools.wraps(claim)
    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        result = "error"
        try:
            item = claim(*args, **kwargs)
            result = "empty" if item is None else "claimed"
            return item
        finally:
            CLAIM_DURATION.labels(result=result).observe(time.perf_counter() - started)

    return timed
