"""Verdicts on review items (review/services.py): four-eyes and every way around it, stale
forms and double submits, and what the engine does with the case after a verdict."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from config.errors import ApplicationError, Conflict
from orchestration import intake, services
from orchestration.models import Case, CaseStatus, OutboxEvent, StepStatus
from review.models import Decision, DecisionRole
from review.services import StaleItem, item_edit, item_snooze, item_token, next_item
from routing.models import ItemKind, ItemState, WorkItem
from routing.services import work_items_reassign
from tests.orchestration.test_review_outcomes import reserve_then_review
from tests.review.conftest import (
    DRAFT,
    WORKFLOW,
    Desk,
    booked,
    decide,
    drafted,
    gate_sends,
    open_item,
    submitted,
    system,
    taken,
)
from tests.routing.helpers import grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def single(desk: Desk) -> Desk:
    """Every case goes to one reviewer."""
    gate_sends("review")
    return desk


@pytest.fixture
def four_eyes(desk: Desk) -> Desk:
    """Every case needs a maker and a checker."""
    gate_sends("four_eyes")
    return desk


def made(run_all, maker: Any, *, by: Any = system, verdict: str = "approve") -> WorkItem:
    """A four-eyes item whose maker has given the first verdict."""
    submitted(run_all, by=by)
    item = taken(maker)
    assert item.kind == ItemKind.FOUR_EYES
    decide(run_all, item, maker, verdict)
    item.refresh_from_db()
    assert item.state == ItemState.AWAITING_CHECKER
    return item


def held(run_all, person: Any) -> WorkItem:
    """The review item of a fresh case, taken by `person`."""
    submitted(run_all)
    return taken(person)


def trail(item: WorkItem) -> tuple[Any, ...]:
    """Everything a refused attempt must leave as it was."""
    fresh = WorkItem.objects.select_related("case").get(pk=item.pk)
    return (
        fresh.state,
        fresh.kind,
        fresh.queue_id,
        fresh.assignee_id,
        fresh.maker_id,
        fresh.claimed_at,
        fresh.case.status,
        fresh.step_run.status,
        list(Decision.objects.filter(work_item=item).values_list("id", flat=True)),
        AuditEvent.objects.filter(action=AuditAction.DECISION_RECORDED).count(),
    )


def force_onto(item: WorkItem, person: Any) -> None:
    """Hand the item to `person` behind routing's back, straight in the database."""
    WorkItem.objects.filter(pk=item.pk).update(
        state=ItemState.CLAIMED, assignee=person, claimed_at=timezone.now()
    )


def roles_and_people(item: WorkItem) -> list[tuple[str, str]]:
    return [
        (d.role, d.reviewer.get_username())
        for d in Decision.objects.filter(work_item=item).select_related("reviewer").order_by("id")
    ]


# Four-eyes ---------------------------------------------------------------------------


def test_the_makers_verdict_waits_unassigned_for_a_checker(four_eyes, run_all, alice):
    case = submitted(run_all)
    item = taken(alice)
    assert item.kind == ItemKind.FOUR_EYES
    decision = decide(run_all, item, alice, "approve")
    item.refresh_from_db()
    case.refresh_from_db()
    assert (decision.role, decision.reviewer, decision.agrees_with_maker) == (
        DecisionRole.MAKER,
        alice,
        None,
    )
    assert (item.state, item.maker, item.assignee, item.claimed_at) == (
        ItemState.AWAITING_CHECKER,
        alice,
        None,
        None,
    )
    assert case.status == CaseStatus.IN_REVIEW
    assert item.step_run.status == StepStatus.WAITING  # the engine has not been told
    assert booked == []


@pytest.mark.parametrize(("verdict", "ending"), [("approve", "approved"), ("reject", "rejected")])
def test_a_checker_who_agrees_completes_the_step_and_the_case_moves_on(
    verdict, ending, four_eyes, run_all, alice, bob
):
    item = made(run_all, alice, verdict=verdict)
    checked = taken(bob)
    assert (checked.pk, checked.maker, checked.assignee) == (item.pk, alice, bob)
    decide(run_all, checked, bob, verdict, rationale="I agree with alice")
    item.refresh_from_db()
    assert item.state == ItemState.DONE
    assert item.step_run.outcome == verdict
    assert item.case.status == ending
    maker, checker = Decision.objects.filter(work_item=item).order_by("id")
    assert (maker.role, maker.reviewer, maker.verdict) == (DecisionRole.MAKER, alice, verdict)
    assert (checker.role, checker.reviewer, checker.verdict) == (
        DecisionRole.CHECKER,
        bob,
        verdict,
    )
    assert (checker.maker, checker.agrees_with_maker) == (alice, True)
    assert len(booked) == (1 if verdict == "approve" else 0)


def test_a_checker_who_disagrees_sends_the_item_to_the_escalation_queue(
    four_eyes, run_all, alice, bob
):
    item = made(run_all, alice)
    decide(run_all, taken(bob), bob, "reject", rationale="the vendor is not on the approved list")
    item.refresh_from_db()
    assert (item.queue, item.kind, item.state, item.assignee, item.maker) == (
        four_eyes.escalations,
        ItemKind.REVIEW,  # the escalation reviewer decides alone
        ItemState.QUEUED,
        None,
        None,
    )
    checker = Decision.objects.get(work_item=item, role=DecisionRole.CHECKER)
    assert (checker.agrees_with_maker, checker.maker) == (False, alice)
    assert item.case.status == CaseStatus.IN_REVIEW
    assert item.step_run.status == StepStatus.WAITING
    moved = AuditEvent.objects.get(action=AuditAction.ITEM_REASSIGNED, object_id=str(item.pk))
    assert moved.reason.startswith("four-eyes disagreement: maker approve, checker reject")


def test_the_escalation_reviewer_settles_a_disagreement_alone(
    four_eyes, run_all, alice, bob, carol
):
    item = made(run_all, alice)
    decide(run_all, taken(bob), bob, "reject")
    settled = taken(carol)
    assert settled.pk == item.pk
    decide(run_all, settled, carol, "approve", rationale="the vendor was added last week")
    item.refresh_from_db()
    assert item.case.status == CaseStatus.APPROVED
    assert roles_and_people(item) == [
        (DecisionRole.MAKER, "alice"),
        (DecisionRole.CHECKER, "bob"),
        (DecisionRole.SINGLE, "carol"),
    ]


def test_the_maker_cannot_settle_a_disagreement_about_their_own_verdict(
    four_eyes, run_all, alice, bob
):
    grant(four_eyes.escalations, alice)
    made(run_all, alice)
    decide(run_all, taken(bob), bob, "reject")
    assert next_item(reviewer=alice) is None


def test_the_maker_never_gets_their_own_item_back_as_checker(four_eyes, run_all, bob, carol):
    # bob holds the checker role, so only being the maker keeps the item from him
    item = made(run_all, bob)
    assert next_item(reviewer=bob) is None
    assert taken(carol).pk == item.pk


def test_a_manager_cannot_hand_the_item_back_to_its_maker(four_eyes, run_all, bob, maria):
    item = made(run_all, bob)
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        work_items_reassign(
            item_ids=[item.pk], to_user=bob, actor=maria, reason="bob knows this vendor"
        )
    assert refused.value.field == "to_user"
    assert f"bob may not work items [{item.pk}]" in refused.value.message
    assert trail(item) == before


def test_the_database_refuses_the_maker_as_the_items_holder(four_eyes, run_all, bob):
    item = made(run_all, bob)
    before = trail(item)
    with pytest.raises(IntegrityError), transaction.atomic():
        force_onto(item, bob)
    assert trail(item) == before


@pytest.mark.parametrize(
    ("form", "refusal", "message"),
    [
        ("the maker's own, from before", StaleItem, "This item changed since you opened it"),
        ("the waiting item's", Conflict, "You do not hold this item"),
        ("the checker's", Conflict, "You do not hold this item"),
    ],
)
def test_the_maker_posting_the_checkers_verdict_is_refused(
    form, refusal, message, four_eyes, run_all, bob, carol
):
    submitted(run_all)
    item = taken(bob)
    own = item_token(item)
    decide(run_all, item, bob, "approve")
    if form == "the checker's":
        taken(carol)
    item.refresh_from_db()
    token = own if form == "the maker's own, from before" else item_token(item)
    before = trail(item)
    with pytest.raises(refusal) as refused:
        decide(run_all, item, bob, "approve", token=token, rationale="looks fine to me twice")
    assert refused.value.message.startswith(message)
    assert trail(item) == before


def test_a_checker_who_submitted_the_case_can_neither_take_nor_decide_it(
    four_eyes, run_all, alice, bob, maria
):
    item = made(run_all, alice, by=bob)
    assert item.case.submitted_by == bob
    assert next_item(reviewer=bob) is None
    with pytest.raises(ApplicationError) as refused:
        work_items_reassign(item_ids=[item.pk], to_user=bob, actor=maria, reason="cover")
    assert refused.value.field == "to_user"
    force_onto(item, bob)  # past routing: the service still refuses
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        decide(run_all, item, bob, "approve")
    assert refused.value.message == "You submitted this case, so you cannot check it."
    assert trail(item) == before


def test_someone_without_the_checker_role_can_neither_take_nor_check_an_item(
    four_eyes, run_all, alice, carol, maria
):
    item = made(run_all, carol)
    assert next_item(reviewer=alice) is None  # alice reviews but does not check
    with pytest.raises(ApplicationError) as refused:
        work_items_reassign(item_ids=[item.pk], to_user=alice, actor=maria, reason="cover")
    assert refused.value.field == "to_user"
    force_onto(item, alice)
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        decide(run_all, item, alice, "approve")
    assert refused.value.message == "Only a person with the checker role may check."
    assert trail(item) == before


def test_a_checkers_form_from_before_a_reassignment_is_stale(
    four_eyes, run_all, alice, bob, carol, maria
):
    item = made(run_all, alice)
    taken(bob)
    item.refresh_from_db()
    bobs_form = item_token(item)
    work_items_reassign(item_ids=[item.pk], to_user=carol, actor=maria, reason="bob is off sick")
    before = trail(item)
    for person in (bob, carol):
        with pytest.raises(StaleItem) as refused:
            decide(run_all, item, person, "approve", token=bobs_form)
        assert "changed since you opened it" in refused.value.message
    assert trail(item) == before
    decide(run_all, item, carol, "approve")
    assert roles_and_people(item) == [
        (DecisionRole.MAKER, "alice"),
        (DecisionRole.CHECKER, "carol"),
    ]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param({"reviewer": "alice"}, id="the maker checks"),
        pytest.param({"reviewer": "carol", "submitter": "carol"}, id="the submitter checks"),
        pytest.param({"maker": None}, id="a check naming no maker"),
        pytest.param({"rationale": ""}, id="no rationale"),
    ],
)
def test_the_database_refuses_a_checker_decision_that_breaks_four_eyes(
    row, four_eyes, run_all, alice, bob, carol
):
    item = made(run_all, alice, by=carol)
    people = {"alice": alice, "bob": bob, "carol": carol, None: None}
    fields: dict[str, Any] = {
        "reviewer": "bob",
        "maker": "alice",
        "submitter": "carol",
        "rationale": "agreed",
    } | row
    for name in ("reviewer", "maker", "submitter"):
        fields[name] = people[fields[name]]
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            work_item=item, case=item.case, role=DecisionRole.CHECKER, verdict="approve", **fields
        )
    # the same row with bob checking, as four-eyes wants, is accepted
    Decision.objects.create(
        work_item=item,
        case=item.case,
        role=DecisionRole.CHECKER,
        verdict="approve",
        reviewer=bob,
        maker=alice,
        submitter=carol,
        rationale="agreed",
    )


@pytest.mark.parametrize("name", ["approve", "decision", "resubmitted"])
def test_an_api_client_cannot_give_the_checkers_verdict(name, four_eyes, run_all, alice):
    _, secret = intake.api_client_create(
        name="erp", scopes=["cases:write", "cases:read", "signals:write"], actor=system
    )
    erp = Client(HTTP_AUTHORIZATION=f"Token {secret}")
    response = run_all(
        erp.post,
        "/api/v1/cases/",
        json.dumps({"workflow": WORKFLOW, "payload": {"amount": "1200.00"}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    case = Case.objects.get(pk=response.json()["id"])
    item = taken(alice)
    assert item.case == case
    decide(run_all, item, alice, "approve")
    before = trail(item)
    response = run_all(
        erp.post,
        f"/api/v1/cases/{case.pk}/signals/",
        json.dumps({"name": name, "payload": {"verdict": "approve", "reviewer": "bob"}}),
        content_type="application/json",
    )
    assert response.status_code == 409, response.content
    assert f"is not waiting for signal '{name}'" in response.json()["detail"]
    assert trail(item) == before


# Stale forms and double submits --------------------------------------------------------


def test_a_double_submitted_verdict_records_one_decision(single, run_all, alice):
    item = held(run_all, alice)
    form = item_token(item)
    decide(run_all, item, alice, "approve", token=form)
    with pytest.raises(StaleItem) as refused:
        decide(run_all, item, alice, "approve", token=form)
    assert refused.value.message == "This item has already been decided; nothing was recorded."
    assert Decision.objects.filter(work_item=item).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.DECISION_RECORDED).count() == 1
    assert len(booked) == 1


def test_a_double_submitted_makers_verdict_records_one_decision(four_eyes, run_all, alice):
    submitted(run_all)
    item = taken(alice)
    form = item_token(item)
    decide(run_all, item, alice, "approve", token=form)
    before = trail(item)
    with pytest.raises(StaleItem) as refused:
        decide(run_all, item, alice, "approve", token=form)
    assert "changed since you opened it" in refused.value.message
    assert trail(item) == before


def test_a_decided_item_refuses_further_verdicts_edits_and_snoozes(single, run_all, alice):
    item = held(run_all, alice)
    decide(run_all, item, alice, "reject")
    item.refresh_from_db()
    form = item_token(item)  # even a form made after the decision
    before = trail(item)
    already = "This item has already been decided; nothing was recorded."
    with pytest.raises(StaleItem, match=already):
        decide(run_all, item, alice, "approve", token=form)
    with pytest.raises(StaleItem, match=already):
        item_edit(item=item, reviewer=alice, field="amount", value="1", token=form)
    with pytest.raises(StaleItem, match=already):
        item_snooze(
            item=item,
            reviewer=alice,
            until=timezone.now() + dt.timedelta(hours=1),
            reason="waiting for the vendor",
            token=form,
        )
    assert trail(item) == before
    assert not item.edits.exists()


def test_a_reviewers_form_from_before_a_reassignment_is_stale(single, run_all, alice, bob, maria):
    item = held(run_all, alice)
    alices_form = item_token(item)
    work_items_reassign(item_ids=[item.pk], to_user=bob, actor=maria, reason="alice is away")
    before = trail(item)
    with pytest.raises(StaleItem):
        decide(run_all, item, alice, "approve", token=alices_form)
    with pytest.raises(StaleItem):
        item_edit(item=item, reviewer=alice, field="amount", value="1", token=alices_form)
    assert trail(item) == before
    assert not item.edits.exists()


def test_a_verdict_from_someone_who_does_not_hold_the_item_is_refused(single, run_all, alice, bob):
    item = held(run_all, alice)
    before = trail(item)
    with pytest.raises(Conflict) as refused:
        decide(run_all, item, bob, "approve", token=item_token(item))
    assert refused.value.message == "You do not hold this item; take it from your queue first."
    assert trail(item) == before


def test_the_database_keeps_one_decision_per_role_per_item(four_eyes, run_all, alice):
    item = made(run_all, alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            work_item=item,
            case=item.case,
            role=DecisionRole.MAKER,
            verdict="reject",
            reviewer=alice,
            rationale="second thoughts",
        )
    assert Decision.objects.filter(work_item=item).count() == 1


def test_a_verdict_that_loses_a_race_is_refused_and_changes_nothing(single, run_all, alice):
    item = held(run_all, alice)
    # Another request recorded a decision after this one checked the form.
    Decision.objects.create(
        work_item=item,
        case=item.case,
        role=DecisionRole.SINGLE,
        verdict="reject",
        reviewer=alice,
        rationale="the first click",
    )
    before = trail(item)
    with pytest.raises(Conflict) as refused:
        decide(run_all, item, alice, "approve")
    assert refused.value.message == (
        "This verdict has already been recorded; nothing was recorded again."
    )
    assert trail(item) == before


# What the engine does next ------------------------------------------------------------


def test_approving_applies_the_edits_and_the_next_step_sees_them(single, run_all, alice):
    item = held(run_all, alice)
    form = item_token(item)
    item_edit(item=item, reviewer=alice, field="amount", value="1250", token=form)
    item_edit(item=item, reviewer=alice, field="vendor", value="ACME Group", token=form)
    decision = decide(run_all, item, alice, "approve")
    assert [(e["field"], e["before"], e["after"]) for e in decision.edits] == [
        ("amount", 1200, 1250),
        ("vendor", "ACME GmbH", "ACME Group"),
    ]
    item.refresh_from_db()
    assert item.case.status == CaseStatus.APPROVED
    assert item.case.proposed == DRAFT | {"amount": 1250, "vendor": "ACME Group"}
    assert [(seen["amount"], seen["vendor"]) for seen in booked] == [(1250, "ACME Group")]
    review = item.case.step_runs.get(step_id="check")
    assert review.output is not None
    assert (review.outcome, review.output["decision_id"]) == ("approve", decision.pk)


def test_a_checkers_approval_applies_the_makers_edits(four_eyes, run_all, alice, bob):
    submitted(run_all)
    item = taken(alice)
    item_edit(item=item, reviewer=alice, field="amount", value="1250", token=item_token(item))
    decide(run_all, item, alice, "approve")
    decide(run_all, taken(bob), bob, "approve")
    item.refresh_from_db()
    assert item.case.proposed["amount"] == 1250
    assert [seen["amount"] for seen in booked] == [1250]


def test_rejecting_ends_the_case_rejected_and_the_next_step_never_runs(single, run_all, alice):
    item = held(run_all, alice)
    decide(run_all, item, alice, "reject", rationale="a duplicate of INV-41")
    item.refresh_from_db()
    assert (item.state, item.case.status) == (ItemState.DONE, CaseStatus.REJECTED)
    assert booked == []


def test_rejecting_leaves_the_proposal_as_the_worker_made_it(single, run_all, alice):
    item = held(run_all, alice)
    item_edit(item=item, reviewer=alice, field="amount", value="99999", token=item_token(item))
    decide(run_all, item, alice, "reject", rationale="this is not an invoice at all")
    item.refresh_from_db()
    assert item.case.status == CaseStatus.REJECTED
    assert item.case.proposed["amount"] == DRAFT["amount"]


def test_rejecting_runs_the_compensations_of_the_steps_before(desk, flow, run_all, alice):
    from tests.orchestration.conftest import undo_order

    flow(reserve_then_review())
    gate_sends("review", workflow="reserve-review")
    case = submitted(run_all, workflow="reserve-review")
    decide(run_all, taken(alice), alice, "reject", rationale="the reservation is not needed")
    case.refresh_from_db()
    assert undo_order == ["reserve:R-"]
    assert case.status == CaseStatus.COMPENSATED


def test_returning_to_the_previous_step_drafts_again_and_a_fresh_item_waits(single, run_all, alice):
    item = held(run_all, alice)
    decision = decide(
        run_all,
        item,
        alice,
        "return",
        return_to="previous",
        rationale="the amount is the net, not the gross",
    )
    assert decision.return_to == "previous"
    item.refresh_from_db()
    case = item.case
    assert (item.state, case.status) == (ItemState.DONE, CaseStatus.IN_REVIEW)
    assert drafted[str(case.pk)] == 2
    returned = item.step_run.output
    assert returned is not None
    assert returned["instructions"] == "the amount is the net, not the gross"
    fresh = open_item(case)
    assert fresh.pk != item.pk
    assert fresh.step_run_id != item.step_run_id
    assert fresh.state == ItemState.QUEUED


def test_returning_to_the_submitter_parks_the_case_until_it_is_resubmitted(single, run_all, alice):
    item = held(run_all, alice)
    decide(run_all, item, alice, "return", return_to="submitter", rationale="attach the signed PDF")
    case = Case.objects.get(pk=item.case_id)
    assert case.status == CaseStatus.WAITING
    assert not WorkItem.objects.filter(case=case, state__in=["queued", "claimed"]).exists()
    returned = OutboxEvent.objects.get(topic="case.returned", case=case)
    assert returned.payload["instructions"] == "attach the signed PDF"
    run_all(
        services.case_signal,
        case=case,
        name="resubmitted",
        data={"payload": {"pdf": "signed.pdf"}},
        actor=system,
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_REVIEW
    assert open_item(case).pk != item.pk
    assert drafted[str(case.pk)] == 1  # only the review runs again


def test_a_return_must_say_where_to(single, run_all, alice):
    item = held(run_all, alice)
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        decide(run_all, item, alice, "return", rationale="fix it", return_to="manager")
    assert refused.value.field == "return_to"
    assert trail(item) == before


def test_a_checker_cannot_return_the_case(four_eyes, run_all, alice, bob):
    item = made(run_all, alice)
    taken(bob)
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        decide(run_all, item, bob, "return", return_to="previous", rationale="redo it")
    assert "returning is the maker's call" in refused.value.message
    assert trail(item) == before


def test_escalating_moves_the_item_unassigned_to_the_escalation_queue(single, run_all, alice):
    item = held(run_all, alice)
    decision = decide(run_all, item, alice, "escalate", rationale="above my signing limit")
    item.refresh_from_db()
    assert (decision.role, decision.verdict) == (DecisionRole.SINGLE, "escalate")
    assert (item.queue, item.state, item.assignee, item.escalation_level) == (
        single.escalations,
        ItemState.QUEUED,
        None,
        1,
    )
    assert item.case.status == CaseStatus.IN_REVIEW
    moved = AuditEvent.objects.get(action=AuditAction.ITEM_REASSIGNED, object_id=str(item.pk))
    assert moved.reason == "escalated by alice: above my signing limit"


def test_escalating_raises_the_items_priority(single, run_all, alice):
    item = held(run_all, alice)
    assert item.priority == 3
    decide(run_all, item, alice, "escalate", rationale="above my signing limit")
    item.refresh_from_db()
    assert item.priority == 2


def test_the_escalation_reviewer_decides_an_item_a_reviewer_escalated(
    single, run_all, alice, carol
):
    item = held(run_all, alice)
    decide(run_all, item, alice, "escalate", rationale="above my signing limit")
    decide(run_all, taken(carol), carol, "approve", rationale="within my limit")
    item.refresh_from_db()
    assert item.case.status == CaseStatus.APPROVED


def test_escalating_with_no_escalation_queue_is_refused(single, run_all, alice):
    single.invoices.escalation_queue = None
    single.invoices.save()
    item = held(run_all, alice)
    before = trail(item)
    with pytest.raises(ApplicationError) as refused:
        decide(run_all, item, alice, "escalate", rationale="above my signing limit")
    assert refused.value.message == (
        "Queue Invoices has no escalation queue; ask a manager to reassign it."
    )
    assert trail(item) == before


def test_a_disagreement_with_no_escalation_queue_is_flagged_for_a_manager(
    four_eyes, run_all, alice, bob
):
    four_eyes.invoices.escalation_queue = None
    four_eyes.invoices.save()
    item = made(run_all, alice)
    decide(run_all, taken(bob), bob, "reject")
    item.refresh_from_db()
    # back in its queue as a single review that neither alice nor bob may take
    assert (item.state, item.assignee, item.maker, item.queue, item.kind) == (
        ItemState.QUEUED,
        None,
        None,
        four_eyes.invoices,
        "review",
    )
    assert set(item.excluded_reviewers) == {alice.pk, bob.pk}
    assert item.flag == "four-eyes disagreement: a manager must pick who settles it"
    assert item.case.status == CaseStatus.IN_REVIEW


def test_a_flagged_disagreement_can_be_settled_by_the_person_a_manager_picks(
    four_eyes, run_all, alice, bob, carol, maria
):
    four_eyes.invoices.escalation_queue = None
    four_eyes.invoices.save()
    item = made(run_all, alice)
    decide(run_all, taken(bob), bob, "reject")
    work_items_reassign(item_ids=[item.pk], to_user=carol, actor=maria, reason="settle it")
    decide(run_all, item, carol, "approve", rationale="the vendor was added last week")
    item.refresh_from_db()
    assert item.case.status == CaseStatus.APPROVED


def test_a_decision_is_audited_with_its_rationale(single, run_all, alice):
    item = held(run_all, alice)
    decision = decide(
        run_all,
        item,
        alice,
        "approve",
        rationale="checked the PDF",
        reasons=["amount matches", "vendor known"],
    )
    assert decision.rationale == "amount matches; vendor known; checked the PDF"
    event = AuditEvent.objects.get(action=AuditAction.DECISION_RECORDED)
    assert (event.actor_name, event.object_id, event.case_id) == (
        "alice",
        str(decision.pk),
        str(item.case_id),
    )
    assert event.reason == "amount matches; vendor known; checked the PDF"
    assert event.after is not None
    assert (event.after["verdict"], event.after["role"]) == ("approve", DecisionRole.SINGLE)
