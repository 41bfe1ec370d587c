import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.context import Actor
from audit.models import AuditAction, AuditEvent
from orchestration import services
from orchestration.models import CaseStatus, OutboxEvent, StepStatus, ThresholdPolicy
from orchestration.thresholds import DEFAULT_GRID, IMPACTS, InvalidGrid, build_grid, is_sampled
from tests.orchestration.conftest import with_wait_and_review

EDGES = [0.5, 0.8, 0.95]
CELLS = {
    "low": ["review", "review", "auto", "auto"],
    "medium": ["review", "review", "review", "auto"],
    "high": ["four_eyes", "review", "review", "review"],
    "critical": ["block", "four_eyes", "four_eyes", "four_eyes"],
}
RATES = {"low": [0, 0, 10, 100], "medium": [0, 0, 0, 0], "high": [0] * 4, "critical": [0] * 4}
admin = Actor.system("admin-test")


@pytest.mark.parametrize(
    ("confidence", "band"),
    [(0.0, 0), (0.4999, 0), (0.5, 1), (0.7999, 1), (0.8, 2), (0.95, 3), (1.0, 3), (None, 0)],
)
def test_a_confidence_on_an_edge_belongs_to_the_band_above(confidence, band):
    assert DEFAULT_GRID.band_of(confidence) == band


@given(confidence=st.floats(0, 1), impact=st.sampled_from(IMPACTS))
def test_every_confidence_and_impact_lands_in_exactly_one_cell(confidence, impact):
    grid = build_grid(edges=EDGES, cells=CELLS, sample_rates=RATES)
    matches = [
        band
        for band in range(grid.bands)
        if (band == 0 or confidence >= grid.edges[band - 1])
        and (band == grid.bands - 1 or confidence < grid.edges[band])
    ]
    assert matches == [grid.band_of(confidence)]
    assert grid.decide(confidence, impact).action == CELLS[impact][matches[0]]


def test_the_sample_rate_holds_over_ten_thousand_cases():
    sampled = sum(is_sampled(str(uuid.uuid4()), 3, 10) for _ in range(10_000))
    # Binomial(10 000, 0.1): mean 1 000, sd 30; 5 sd either side.
    assert 850 <= sampled <= 1150


def test_sampling_is_deterministic_per_case_and_policy_version():
    case_id = str(uuid.uuid4())
    assert {is_sampled(case_id, 7, 50) for _ in range(20)} in ({True}, {False})
    assert not is_sampled(case_id, 7, 0)
    assert is_sampled(case_id, 7, 100)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"edges": [0.8, 0.5, 0.95]}, "edges must increase strictly: 0.5 follows 0.8"),
        ({"edges": [0, 0.5, 0.95]}, "edge 1 (0) must lie strictly between 0 and 1"),
        ({"edges": [0.5, 0.8, 1]}, "edge 3 (1) must lie strictly between 0 and 1"),
        ({"cells": {**CELLS, "low": ["review", "auto"]}}, "impact low: 2 cells set, 4 needed"),
        (
            {"cells": {**CELLS, "high": ["review", "maybe", "review", "review"]}},
            "unknown action 'maybe'",
        ),
        (
            {"cells": {**CELLS, "critical": ["auto", "review", "review", "review"]}},
            "a critical cell is set to auto",
        ),
        ({"sample_rates": {**RATES, "low": [0, 0, 150, 0]}}, "(150) must be 0-100 %"),
    ],
)
def test_an_invalid_grid_is_refused_naming_the_problem(change, problem):
    with pytest.raises(InvalidGrid) as excinfo:
        build_grid(**({"edges": EDGES, "cells": CELLS, "sample_rates": RATES} | change))
    assert any(problem in p for p in excinfo.value.problems), excinfo.value.problems


def test_critical_auto_needs_the_override_and_a_reason():
    cells = {**CELLS, "critical": ["auto", "review", "review", "review"]}
    with pytest.raises(InvalidGrid, match="needs a reason"):
        build_grid(edges=EDGES, cells=cells, allow_critical_auto=True)
    grid = build_grid(edges=EDGES, cells=cells, allow_critical_auto=True, override_reason="pilot")
    assert grid.decide(0.1, "critical").action == "auto"


@pytest.mark.django_db
def test_every_save_is_a_new_version_with_who_and_why_and_bad_grids_save_nothing(flow, adam):
    flow(with_wait_and_review())
    first = services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="launch",
        actor=adam,
    )
    second = services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=[0.6, 0.9, 0.97],
        cells=CELLS,
        sample_rates=RATES,
        reason="fewer automatic approvals",
        actor=adam,
    )
    assert (first.version, second.version) == (1, 2)
    assert (second.created_by, second.reason) == (adam, "fewer automatic approvals")
    changed = AuditEvent.objects.filter(action=AuditAction.POLICY_CHANGED).order_by("id").last()
    assert changed is not None and changed.actor_name == "adam"
    assert changed.before["edges"] == EDGES and changed.after["edges"] == [0.6, 0.9, 0.97]
    with pytest.raises(InvalidGrid):
        services.threshold_policy_save(
            workflow_slug="wait-review",
            edges=[0.9, 0.1],
            cells=CELLS,
            sample_rates=RATES,
            reason="oops",
            actor=adam,
        )
    with pytest.raises(services.ApplicationError):
        services.threshold_policy_save(
            workflow_slug="wait-review",
            edges=EDGES,
            cells=CELLS,
            sample_rates=RATES,
            reason=" ",
            actor=adam,
        )
    assert ThresholdPolicy.objects.count() == 2


def _to_review(run_all, confidence, impact="low"):
    case = run_all(
        services.case_submit,
        workflow="wait-review",
        payload={"amount": "500"},
        actor=admin,
        confidence=confidence,
        impact=impact,
    )
    run_all(services.case_signal, case=case, name="documents_received", data={}, actor=admin)
    case.refresh_from_db()
    return case, case.step_runs.get(step_id="check")


@pytest.mark.django_db
def test_the_gate_records_its_policy_version_cell_and_action(flow, run_all, adam):
    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="launch",
        actor=adam,
    )
    case, review = _to_review(run_all, 0.85, "high")
    assert review.gate["policy_version"] == 1
    assert review.gate["cell"] == "high x [0.8, 0.95)"
    assert review.gate["action"] == "review"
    assert case.status == CaseStatus.IN_REVIEW
    requested = OutboxEvent.objects.filter(case=case, topic="review.requested").get()
    assert requested.payload["action"] == "review"
    assert AuditEvent.objects.filter(case_id=str(case.pk), action=AuditAction.GATE_DECIDED).exists()
    # A later version leaves the recorded decision alone.
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells={**CELLS, "high": ["block"] * 4},
        sample_rates=RATES,
        reason="stricter",
        actor=adam,
    )
    review.refresh_from_db()
    assert (review.gate["policy_version"], review.gate["action"]) == (1, "review")
    # ...while the next case's gate reads the new one (the policy's SQL is kept; the
    # row it reads is not).
    _, later = _to_review(run_all, 0.85, "high")
    assert (later.gate["policy_version"], later.gate["action"]) == (2, "block")


@pytest.mark.django_db
def test_auto_approves_and_a_sampled_case_also_goes_to_qa(flow, run_all, adam):
    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="launch",
        actor=adam,
    )
    case, review = _to_review(run_all, 0.99, "low")  # low x [0.95, 1]: auto, 100 % sampled
    assert case.status == CaseStatus.APPROVED
    assert (review.status, review.outcome) == (StepStatus.SUCCEEDED, "approve")
    assert review.gate["sampled"] is True
    assert OutboxEvent.objects.filter(case=case, topic="qa.requested").exists()


@pytest.mark.django_db
def test_block_stops_the_case_with_an_event(flow, run_all, adam):
    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="launch",
        actor=adam,
    )
    case, review = _to_review(run_all, 0.2, "critical")
    assert (case.status, case.outcome) == (CaseStatus.BLOCKED, "blocked")
    assert review.gate["action"] == "block"
    assert OutboxEvent.objects.filter(case=case, topic="case.blocked").exists()


@pytest.mark.django_db
def test_four_eyes_is_handed_to_people_with_its_action(flow, run_all):
    flow(with_wait_and_review())
    case, review = _to_review(run_all, 0.3, "high")  # the built-in default grid
    assert review.gate["policy_scope"] == "built-in default"
    assert review.gate["action"] == "four_eyes"
    assert case.status == CaseStatus.IN_REVIEW


@pytest.mark.django_db
def test_a_step_policy_overrides_the_workflow_policy(flow, run_all, adam):
    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="wf",
        actor=adam,
    )
    services.threshold_policy_save(
        workflow_slug="wait-review",
        step_id="check",
        edges=EDGES,
        cells={**CELLS, "medium": ["block"] * 4},
        sample_rates=RATES,
        reason="step",
        actor=adam,
    )
    case, review = _to_review(run_all, 0.6, "medium")
    assert review.gate["policy_scope"] == "check"
    assert case.status == CaseStatus.BLOCKED
