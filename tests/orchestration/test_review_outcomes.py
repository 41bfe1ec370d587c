"""What the engine does with a review's verdict: reject runs the saga, return sends the
case back for rework (to the previous task step or to the submitter)."""

from typing import Any

import pytest

from audit.context import Actor
from config.errors import ApplicationError, Conflict
from orchestration import services
from orchestration.models import OutboxEvent, StepRun
from routing.models import ItemState, WorkItem
from tests.orchestration.conftest import FAST, calls, undo_order

pytestmark = pytest.mark.django_db
system = Actor.system("test")


def reserve_then_review() -> dict[str, Any]:
    return {
        "slug": "reserve-review",
        "title": "Reserve, then review",
        "start": "reserve",
        "steps": [
            {
                "id": "reserve",
                "kind": "task",
                "handler": "test.reserve",
                "retry": FAST,
                "compensate": "test.undo_reserve",
                "next": {"ok": "check"},
            },
            {
                "id": "check",
                "kind": "review",
                "next": {"approve": "end:approved", "reject": "end:rejected"},
            },
        ],
    }


@pytest.fixture
def in_review(flow, run_all):
    flow(reserve_then_review())
    undo_order.clear()
    calls.clear()
    case = run_all(
        services.case_submit,
        workflow="reserve-review",
        payload={"amount": "5"},
        actor=system,
        confidence=0.2,
        impact="high",
    )
    case.refresh_from_db()
    assert case.status == "in_review"
    return case


def review_run(case) -> StepRun:
    return case.step_runs.filter(step_id="check").latest("id")


def test_a_rejection_undoes_completed_steps_before_the_case_ends(in_review, run_all):
    run_all(
        services.review_step_complete,
        step_run=review_run(in_review),
        outcome="reject",
        actor=system,
    )
    in_review.refresh_from_db()
    assert undo_order == ["reserve:R-"]
    assert in_review.status == "compensated"


def test_returning_to_the_previous_step_runs_it_again_with_the_instructions(in_review, run_all):
    first = review_run(in_review)
    run_all(
        services.review_step_return,
        step_run=first,
        to="previous",
        instructions="the reservation is for the wrong amount",
        actor=system,
    )
    in_review.refresh_from_db()
    assert calls["test.reserve"] == 2
    first.refresh_from_db()
    assert first.output is not None
    assert (first.outcome, first.output["instructions"]) == (
        "return",
        "the reservation is for the wrong amount",
    )
    # the rework came back to the review: a fresh run and a fresh work item
    assert in_review.status == "in_review"
    assert review_run(in_review).pk != first.pk
    assert WorkItem.objects.filter(step_run=first, state=ItemState.CANCELLED).exists()
    assert WorkItem.objects.filter(step_run=review_run(in_review), state=ItemState.QUEUED).exists()


def test_returning_to_the_submitter_waits_for_a_resubmission(in_review, run_all):
    first = review_run(in_review)
    run_all(
        services.review_step_return,
        step_run=first,
        to="submitter",
        instructions="attach the signed contract",
        actor=system,
    )
    in_review.refresh_from_db()
    assert in_review.status == "waiting"
    event = OutboxEvent.objects.get(topic="case.returned")
    assert event.payload["instructions"] == "attach the signed contract"
    run_all(
        services.case_signal,
        case=in_review,
        name="resubmitted",
        data={"payload": {"contract": "signed.pdf"}},
        actor=system,
    )
    in_review.refresh_from_db()
    assert in_review.status == "in_review"
    assert in_review.payload == {"amount": "5", "contract": "signed.pdf"}
    assert review_run(in_review).pk != first.pk
    assert calls["test.reserve"] == 1  # only the review runs again


def test_a_resubmission_nobody_asked_for_is_refused(in_review, run_all):
    with pytest.raises(Conflict):
        services.case_signal(case=in_review, name="resubmitted", data={}, actor=system)


def test_a_return_needs_instructions_and_a_known_target(in_review):
    run = review_run(in_review)
    with pytest.raises(ApplicationError) as refused:
        services.review_step_return(step_run=run, to="previous", instructions=" ", actor=system)
    assert refused.value.field == "instructions"
    with pytest.raises(ApplicationError) as refused:
        services.review_step_return(step_run=run, to="manager", instructions="x", actor=system)
    assert refused.value.field == "to"
    run.refresh_from_db()
    assert run.status == "waiting"
