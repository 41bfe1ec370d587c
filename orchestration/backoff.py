"""Retry timing: exponential backoff with full jitter, capped (AWS architecture blog's
"Exponential Backoff And Jitter": sleep = random(0, min(cap, base * 2 ** attempt)))."""

from __future__ import annotations

import random

from orchestration.definition import RetryPolicy

_rng = random.SystemRandom()


def backoff_ceiling(policy: RetryPolicy, attempt: int) -> float:
    """The largest delay after failed attempt number `attempt` (1-based)."""
    return min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random = _rng) -> float:
    """Seconds to wait before the next attempt: uniform in [0, ceiling] (full jitter)."""
    return rng.uniform(0, backoff_ceiling(policy, attempt))
