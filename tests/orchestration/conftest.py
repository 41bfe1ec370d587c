"""Test handlers and workflows for the engine. Handlers count their effects per
idempotency key, the way a real downstream system would dedupe them."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from audit.context import Actor
from orchestration import services
from orchestration.workers import PermanentError, StepContext, worker

calls: Counter[str] = Counter()  # handler name -> calls
effects: dict[str, set[str]] = defaultdict(set)  # handler name -> idempotency keys applied
undo_order: list[str] = []
failures_left: dict[str, int] = {}


@worker("test.collect")
def collect(ctx: StepContext) -> dict[str, Any]:
    calls["test.collect"] += 1
    effects["test.collect"].add(ctx.idempotency_key)
    return {"proposed": {"amount": ctx.payload.get("amount", "1.00")}, "confidence": 0.91}


@worker("test.reserve")
def reserve(ctx: StepContext) -> dict[str, Any]:
    calls["test.reserve"] += 1
    effects["test.reserve"].add(ctx.idempotency_key)
    return {"reservation": f"R-{ctx.idempotency_key[:6]}"}


@worker("test.flaky")
def flaky(ctx: StepContext) -> dict[str, Any]:
    calls["test.flaky"] += 1
    if failures_left.get("test.flaky", 0) > 0:
        failures_left["test.flaky"] -= 1
        raise ConnectionError("downstream refused the connection")
    effects["test.flaky"].add(ctx.idempotency_key)
    return {"done": True, "attempt": ctx.attempt}


@worker("test.doomed")
def doomed(ctx: StepContext) -> dict[str, Any]:
    calls["test.doomed"] += 1
    raise PermanentError("payload.account does not exist")


@worker("test.slow")
def slow(ctx: StepContext) -> dict[str, Any]:
    calls["test.slow"] += 1
    if failures_left.get("test.slow", 0) > 0:
        failures_left["test.slow"] -= 1
        time.sleep(1.0)
    return {}


@worker("test.undo_collect")
def undo_collect(ctx: StepContext) -> dict[str, Any]:
    undo_order.append("collect")
    return {}


@worker("test.undo_reserve")
def undo_reserve(ctx: StepContext) -> dict[str, Any]:
    assert ctx.compensating is not None
    undo_order.append(f"reserve:{ctx.compensating['reservation'][:2]}")
    if failures_left.get("test.undo_reserve", 0) > 0:
        failures_left["test.undo_reserve"] -= 1
        raise ConnectionError("ledger is down")
    return {}


@worker("test.route", outcomes=("small", "large"))
def route(ctx: StepContext) -> dict[str, Any]:
    return {"outcome": "large" if float(ctx.payload.get("amount", 0)) > 100 else "small"}


FAST = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.02}


def three_tasks(final: str = "test.flaky") -> dict[str, Any]:
    return {
        "slug": "three-tasks",
        "title": "Three tasks",
        "start": "collect",
        "steps": [
            {
                "id": "collect",
                "kind": "task",
                "handler": "test.collect",
                "retry": FAST,
                "compensate": "test.undo_collect",
                "next": {"ok": "reserve"},
            },
            {
                "id": "reserve",
                "kind": "task",
                "handler": "test.reserve",
                "retry": FAST,
                "compensate": "test.undo_reserve",
                "next": {"ok": "finish"},
            },
            {
                "id": "finish",
                "kind": "task",
                "handler": final,
                "retry": FAST,
                "timeout": 0.3,
                "next": {"ok": "end:approved"},
            },
        ],
    }


def with_wait_and_review() -> dict[str, Any]:
    return {
        "slug": "wait-review",
        "title": "Wait and review",
        "start": "route",
        "steps": [
            {
                "id": "route",
                "kind": "task",
                "handler": "test.route",
                "next": {"small": "end:approved", "large": "docs"},
            },
            {
                "id": "docs",
                "kind": "wait",
                "signal": "documents_received",
                "wait_seconds": 3600,
                "next": {"signal": "check", "timeout": "end:rejected"},
            },
            {
                "id": "check",
                "kind": "review",
                "routing": {"skills": ["invoices"]},
                "sla": 600,
                "next": {"approve": "end:approved", "reject": "end:rejected"},
            },
        ],
    }


@pytest.fixture(autouse=True)
def _reset_handler_state():
    calls.clear()
    effects.clear()
    undo_order.clear()
    failures_left.clear()


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries are due at once, so eager tests need no clock tricks."""
    monkeypatch.setattr(services, "retry_delay", lambda policy, attempt: 0.0)


@pytest.fixture
def flow(db):
    def load(document: dict[str, Any]):
        workflow, _ = services.workflow_load(document=document, actor=Actor.system("test"))
        return workflow

    return load


@pytest.fixture
def run_all(django_capture_on_commit_callbacks):
    """Run a block, then everything it enqueued on commit (eager Celery), to quiescence."""

    class Runner:
        def __call__(self, fn, *args, **kwargs):
            with django_capture_on_commit_callbacks(execute=True):
                return fn(*args, **kwargs)

    return Runner()
