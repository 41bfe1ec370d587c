"""Fixtures of the reviewer workspace: an invoices queue with its escalation queue, the
people who work them, and a workflow that drafts an invoice, reviews it and books it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from audit.context import Actor
from orchestration import services
from orchestration.models import Case, CaseStatus
from orchestration.thresholds import IMPACTS
from orchestration.workers import StepContext, worker
from review.models import Decision
from review.services import decision_record, item_token, next_item
from routing.models import OPEN_STATES, Queue, RoutingRule, WorkItem
from tests.orchestration.conftest import (  # noqa: F401  (flow, run_all: shared fixtures)
    FAST,
    flow,
    run_all,
    undo_order,
)
from tests.routing.helpers import grant, reviewer

system = Actor.system("test")
WORKFLOW = "invoice-review"

# What the drafting worker proposes: one field of each type a reviewer can edit.
DRAFT: dict[str, Any] = {
    "amount": 1200,
    "rate": 0.19,
    "paid": False,
    "due": "2026-11-30",
    "vendor": "ACME GmbH",
    "lines": [{"sku": "A-1", "qty": 2}],
    "address": {"city": "Berlin"},
}
SUGGESTIONS: list[dict[str, Any]] = [
    {"field": "amount", "value": 1250, "reason": "the invoice total reads 1,250"},
    {"field": "due", "value": "2026-12-15", "reason": "the terms say 45 days"},
    {"field": "colour", "value": "red", "reason": "not a field the case proposes"},
]

drafted: Counter[str] = Counter()  # case id -> times drafted
booked: list[dict[str, Any]] = []  # what the booking step saw as the proposed values


@worker("review-tests.draft")
def draft(ctx: StepContext) -> dict[str, Any]:
    drafted[ctx.case_id] += 1
    return {"proposed": dict(DRAFT), "suggestions": SUGGESTIONS}


@worker("review-tests.book")
def book(ctx: StepContext) -> dict[str, Any]:
    booked.append(dict(ctx.proposed))
    return {"booked": True}


def draft_review_book() -> dict[str, Any]:
    return {
        "slug": WORKFLOW,
        "title": "Draft, review and book an invoice",
        "start": "draft",
        "steps": [
            {
                "id": "draft",
                "kind": "task",
                "handler": "review-tests.draft",
                "retry": FAST,
                "next": {"ok": "check"},
            },
            {
                "id": "check",
                "kind": "review",
                "next": {"approve": "book", "reject": "end:rejected"},
            },
            {
                "id": "book",
                "kind": "task",
                "handler": "review-tests.book",
                "retry": FAST,
                "next": {"ok": "end:approved"},
            },
        ],
    }


@pytest.fixture(autouse=True)
def _reset_review_workers() -> None:
    drafted.clear()
    booked.clear()
    undo_order.clear()


@dataclass(frozen=True)
class Desk:
    invoices: Queue
    escalations: Queue


@pytest.fixture
def desk(flow, alice, bob, carol) -> Desk:  # noqa: F811  (the shared fixture)
    """Every review goes to the invoices queue, worked by alice (a reviewer), bob and
    carol (reviewers and checkers); its escalations go to a queue only carol works."""
    flow(draft_review_book())
    escalations = Queue.objects.create(name="escalations", title="Escalations")
    invoices = Queue.objects.create(name="invoices", title="Invoices", escalation_queue=escalations)
    RoutingRule.objects.create(order=1, queue=invoices)
    for person in (alice, bob, carol):
        grant(invoices, reviewer(person))
    grant(escalations, carol)
    return Desk(invoices=invoices, escalations=escalations)


def gate_sends(action: str, workflow: str = WORKFLOW) -> None:
    """Whatever its confidence and impact, a case of `workflow` reaching its review
    gate goes to `action`: "review" (one person) or "four_eyes" (maker and checker)."""
    services.threshold_policy_save(
        workflow_slug=workflow,
        edges=[0.5, 0.8, 0.95],
        cells={impact: [action] * 4 for impact in IMPACTS},
        sample_rates={impact: [0] * 4 for impact in IMPACTS},
        reason=f"tests: every case to {action}",
        actor=system,
    )


def submitted(run, *, by: Any = system, workflow: str = WORKFLOW) -> Case:
    """A case drafted and waiting in review; `run` is the run_all fixture."""
    case = run(
        services.case_submit,
        workflow=workflow,
        payload={"amount": "1200.00", "vendor": "ACME"},
        actor=by,
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW
    return case


def open_item(case: Case) -> WorkItem:
    """The one open review item of the case."""
    return WorkItem.objects.get(case=case, state__in=OPEN_STATES)


def taken(person: Any) -> WorkItem:
    """The next review item for `person`, which the test expects to exist."""
    item = next_item(reviewer=person)
    assert item is not None, f"nothing to take for {person}"
    return item


def decide(
    run,
    item: WorkItem,
    person: Any,
    verdict: str,
    rationale: str = "checked against the invoice",
    token: str | None = None,
    **extra: Any,
) -> Decision:
    """`person` gives a verdict on the form as it stands now (or on `token`'s form)."""
    if token is None:
        item.refresh_from_db()
        token = item_token(item)
    return run(
        decision_record,
        item=item,
        reviewer=person,
        verdict=verdict,
        rationale=rationale,
        token=token,
        **extra,
    )
