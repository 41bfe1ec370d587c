"""Small helpers the demo handlers share: reading input strictly, writing JSON-ready output."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from orchestration.workers import PermanentError, StepContext

CENT = Decimal("0.01")
# "1,234.56" and "1 234.56": thousands separated by commas or spaces, a dot for decimals.
_GROUPED = re.compile(r"^-?\d{1,3}(?:[, ]\d{3})+(?:\.\d+)?$")


def thaw(value: Any) -> Any:
    """A plain, JSON-ready copy of a value read from a context (read-only views inside)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def optional_str(data: Mapping[str, Any], key: str, *, where: str = "payload") -> str | None:
    """The trimmed string at `key`, None when absent or blank; PermanentError when not a string."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PermanentError(f"{where}.{key} is not a string: {value!r}")
    value = value.strip()
    return value or None


def required_str(data: Mapping[str, Any], key: str, *, where: str = "payload") -> str:
    """The trimmed, non-blank string at `key`; PermanentError naming the field otherwise."""
    if key not in data or data[key] is None:
        raise PermanentError(f"{where}.{key} is missing")
    value = optional_str(data, key, where=where)
    if value is None:
        raise PermanentError(f"{where}.{key} is empty")
    return value


def parse_money(value: Any, *, field: str) -> Decimal:
    """A finite amount rounded half-up to cents; PermanentError naming `field` otherwise.

    Accepts numbers and strings such as "1200", "1200.5", "1,200.50" or "1 200.50".
    Floats are read through their shortest repr, so 0.1 means 0.10, not 0.1000000000000000055.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise PermanentError(f"{field} is not a decimal number: {value!r}")
    text = str(value).strip()
    if _GROUPED.match(text):
        text = text.replace(",", "").replace(" ", "")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise PermanentError(f"{field} is not a decimal number: {value!r}") from None
    if not amount.is_finite():
        raise PermanentError(f"{field} is not a finite number: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def latest_output(ctx: StepContext, key: str) -> Mapping[str, Any] | None:
    """The most recent earlier output that carries `key`, found by content, not by step id.

    Handlers do not know the step ids a definition gives them, so each output that a
    later step needs carries a distinctive key ("invoice", "subject", "classifier").
    `ctx.outputs` keeps the order in which the steps completed; the last match wins.
    """
    found: Mapping[str, Any] | None = None
    for output in ctx.outputs.values():
        if isinstance(output, Mapping) and key in output:
            found = output
    return found


def reference(ctx: StepContext, prefix: str) -> str:
    """A deterministic reference for a side effect, derived from the step's idempotency key.

    Running the step again with the same key yields the same reference, which is what
    lets the system on the other side dedupe an at-least-once delivery.
    """
    key = ctx.idempotency_key.strip()
    if not key:
        raise PermanentError("idempotency_key is empty: a side effect needs a key to dedupe on")
    return f"{prefix}-{key[:8]}"
