"""Cases with proposals and sources, routed to a queue as review or four-eyes items."""

from __future__ import annotations

from typing import Any

from audit.context import Actor
from orchestration import services
from routing.models import Queue, WorkItem
from routing.services import work_item_enqueue
from tests.routing.helpers import grant, load_flow, reviewer

system = Actor.system("test")

SOURCES: list[dict[str, Any]] = [
    {"title": "Invoice text", "kind": "text", "content": "ACME Ltd\nTotal 1,250.00 EUR"},
    {"title": "Extracted", "kind": "json", "content": {"vendor": "ACME", "lines": [1, 2]}},
    {
        "title": "Lines",
        "kind": "table",
        "content": [{"item": "bolts", "amount": "250.00"}, {"item": "nuts", "amount": "1000.00"}],
    },
    {"title": "Vendor record", "kind": "url", "url": "https://erp.example/v/1"},
]


def queues() -> tuple[Queue, Queue]:
    escalation = Queue.objects.create(name="escalations", title="Escalations")
    main = Queue.objects.create(name="invoices", title="Invoices", escalation_queue=escalation)
    return main, escalation


def review_item(
    queue: Queue,
    *,
    kind: str = "review",
    payload: dict[str, Any] | None = None,
    proposed: dict[str, Any] | None = None,
    sources: list[Any] | None = None,
    submitted_by: Any = None,
) -> WorkItem:
    """A case waiting at a review step (the test workflow's `check`), with its item."""
    load_flow()
    case = services.case_submit(
        workflow="wait-review",
        payload=payload if payload is not None else {"vendor": "ACME Ltd", "amount": "1250.00"},
        proposed=proposed if proposed is not None else {"vendor": "ACME Limited", "amount": 1250.0},
        sources=SOURCES if sources is None else sources,
        actor=submitted_by or system,
        region="eu",
    )
    run = case.step_runs.create(step_id="check", kind="review", status="waiting")
    case.status = "in_review"
    case.save(update_fields=["status"])
    return work_item_enqueue(
        case=case, step_run=run, kind=kind, routing={"queue": queue.name}, sla=3600
    )


def staff(queue: Queue, *people: Any) -> None:
    for person in people:
        reviewer(person, capacity=10)
    grant(queue, *people)
