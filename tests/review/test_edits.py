"""What a reviewer does to an item short of a verdict (review/services.py): one-click edits
checked against the field's type, worker suggestions applied, the rationale a verdict
needs, and snoozing until a follow-up time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from config.errors import ApplicationError, Conflict
from review.models import Decision, ItemEdit
from review.selectors import edits_diff, suggestions_for
from review.services import (
    MAX_TEXT,
    StaleItem,
    coerce,
    current_values,
    decision_record,
    item_edit,
    item_snooze,
    item_token,
    suggestion_apply,
)
from routing.models import ItemState, SLAPolicy, WorkItem
from routing.services import sla_sweep
from tests.review.conftest import DRAFT, Desk, decide, gate_sends, submitted, taken

pytestmark = pytest.mark.django_db


@pytest.fixture
def single(desk: Desk) -> Desk:
    gate_sends("review")
    return desk


@pytest.fixture
def item(single, run_all, alice) -> WorkItem:
    """The review item of a freshly drafted invoice, held by alice."""
    submitted(run_all)
    return taken(alice)


def edit(item: WorkItem, person: Any, field: str, value: str, **extra: Any) -> ItemEdit:
    """`person` changes a field on the form as it stands now."""
    item.refresh_from_db()
    return item_edit(
        item=item, reviewer=person, field=field, value=value, token=item_token(item), **extra
    )


# Reading a value as the field's type --------------------------------------------------


@pytest.mark.parametrize(
    ("current", "raw", "value"),
    [
        pytest.param(1200, " 1250 ", 1250, id="whole number"),
        pytest.param(1200, "-5", -5, id="negative whole number"),
        pytest.param(0.19, "0.2", 0.2, id="number"),
        pytest.param(0.19, "7", 7.0, id="number without a point"),
        pytest.param(False, "yes", True, id="yes"),
        pytest.param(True, "FALSE", False, id="false in capitals"),
        pytest.param(True, "0", False, id="zero is no"),
        pytest.param("2026-11-30", "2026-12-15", "2026-12-15", id="date"),
        pytest.param({"city": "Berlin"}, '{"city": "Hamburg"}', {"city": "Hamburg"}, id="object"),
        pytest.param([1], "[1, 2]", [1, 2], id="list"),
        pytest.param("ACME", "  ACME GmbH ", "ACME GmbH", id="text, trimmed"),
        pytest.param("ACME", "2026-12-15", "2026-12-15", id="text that looks like a date"),
        pytest.param(None, "anything", "anything", id="no value yet: text"),
    ],
)
def test_a_value_is_read_as_the_type_the_field_has(current, raw, value):
    read = coerce("field", current, raw)
    assert read == value
    assert type(read) is type(value)


@pytest.mark.parametrize(
    ("current", "raw", "problem"),
    [
        pytest.param(1200, "12.5", "amount is a whole number, not '12.5'", id="fraction"),
        pytest.param(1200, "twelve", "amount is a whole number, not 'twelve'", id="word"),
        pytest.param(1200, "", "amount is a whole number, not ''", id="empty"),
        pytest.param(0.19, "abc", "amount is a number, not 'abc'", id="not a number"),
        pytest.param(0.19, "nan", "amount must be a finite number", id="nan"),
        pytest.param(0.19, "-inf", "amount must be a finite number", id="infinity"),
        pytest.param(0.19, "1e999", "amount must be a finite number", id="overflow"),
        pytest.param(False, "maybe", "amount is yes or no, not 'maybe'", id="maybe"),
        pytest.param("2026-11-30", "30.11.2026", "amount is a date like 2026-11-30", id="format"),
        pytest.param("2026-11-30", "2026-02-30", "amount is a date like 2026-11-30", id="no day"),
        pytest.param({}, "{oops", "amount must be valid JSON", id="broken JSON"),
        pytest.param({}, "[1]", "amount must be an object in JSON", id="list for object"),
        pytest.param([], '{"a": 1}', "amount must be a list in JSON", id="object for list"),
        pytest.param("x", "y" * (MAX_TEXT + 1), f"amount: at most {MAX_TEXT}", id="too long"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(current, raw, problem):
    with pytest.raises(ApplicationError) as refused:
        coerce("amount", current, raw)
    assert refused.value.field == "value"
    assert refused.value.message.startswith(problem)


# Edits ---------------------------------------------------------------------------------


def test_an_edit_is_kept_as_a_change_and_audited(item, alice):
    change = edit(item, alice, "amount", "1250")
    assert (change.field, change.before, change.after, change.editor, change.source) == (
        "amount",
        1200,
        1250,
        alice,
        "",
    )
    assert current_values(item)["amount"] == 1250
    item.case.refresh_from_db()
    assert item.case.proposed["amount"] == 1200  # the case changes only with a verdict
    event = AuditEvent.objects.get(action=AuditAction.ITEM_EDITED)
    assert (event.actor_name, event.object_id, event.case_id) == (
        "alice",
        str(item.pk),
        str(item.case_id),
    )
    assert (event.before, event.after) == ({"amount": 1200}, {"amount": 1250})


@pytest.mark.parametrize(
    ("field", "raw", "after"),
    [
        ("rate", "0.07", 0.07),
        ("paid", "yes", True),
        ("due", "2026-12-15", "2026-12-15"),
        ("lines", '[{"sku": "A-1", "qty": 3}]', [{"sku": "A-1", "qty": 3}]),
        ("address", '{"city": "Hamburg"}', {"city": "Hamburg"}),
        ("vendor", "ACME Group", "ACME Group"),
    ],
)
def test_every_kind_of_proposed_field_can_be_edited(field, raw, after, item, alice):
    change = edit(item, alice, field, raw)
    assert (change.before, change.after) == (DRAFT[field], after)
    assert current_values(item) == DRAFT | {field: after}


def test_edits_are_listed_in_order_and_the_last_one_counts(item, alice):
    edit(item, alice, "amount", "1250")
    edit(item, alice, "vendor", "ACME Group")
    edit(item, alice, "amount", "1300")
    assert [(e.field, e.before, e.after) for e in item.edits.all()] == [
        ("amount", 1200, 1250),
        ("vendor", "ACME GmbH", "ACME Group"),
        ("amount", 1250, 1300),
    ]
    assert current_values(item) == DRAFT | {"amount": 1300, "vendor": "ACME Group"}
    assert [(d.field, d.before, d.after) for d in edits_diff(item)] == [
        ("amount", "1200", "1300"),
        ("vendor", "ACME GmbH", "ACME Group"),
    ]


@pytest.mark.parametrize(
    ("field", "raw", "fault", "problem"),
    [
        ("colour", "red", "field", "'colour' is not a proposed field of this case"),
        ("amount", "1200", "value", "amount already has that value"),
        ("amount", "1,250", "value", "amount is a whole number, not '1,250'"),
        ("paid", "perhaps", "value", "paid is yes or no, not 'perhaps'"),
    ],
)
def test_a_refused_edit_names_the_problem_and_changes_nothing(
    field, raw, fault, problem, item, alice
):
    with pytest.raises(ApplicationError) as refused:
        edit(item, alice, field, raw)
    assert (refused.value.field, refused.value.message) == (fault, problem)
    assert not item.edits.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ITEM_EDITED).exists()


def test_only_the_holder_edits_and_only_on_a_current_form(item, alice, bob, maria):
    with pytest.raises(Conflict, match="You do not hold this item"):
        edit(item, bob, "amount", "1")
    form = item_token(item)
    from routing.services import work_items_reassign

    work_items_reassign(item_ids=[item.pk], to_user=bob, actor=maria, reason="alice is away")
    with pytest.raises(StaleItem):
        item_edit(item=item, reviewer=alice, field="amount", value="1", token=form)
    assert not item.edits.exists()


def test_the_checker_may_not_edit(single, run_all, alice, bob):
    gate_sends("four_eyes")
    submitted(run_all)
    item = taken(alice)
    edit(item, alice, "amount", "1250")  # the maker may
    decide(run_all, item, alice, "approve")
    taken(bob)
    with pytest.raises(ApplicationError) as refused:
        edit(item, bob, "amount", "1300")
    assert refused.value.message == (
        "A checker confirms or disputes the maker's verdict; edits are the maker's."
    )
    assert [e.after for e in item.edits.all()] == [1250]


# Suggestions ---------------------------------------------------------------------------


def test_the_workers_suggestions_for_proposed_fields_are_offered(item):
    assert [(s["field"], s["value"], s["reason"]) for s in suggestions_for(item)] == [
        ("amount", 1250, "the invoice total reads 1,250"),
        ("due", "2026-12-15", "the terms say 45 days"),
    ]  # not "colour": the case proposes no such field


def test_a_suggestion_is_applied_in_one_click_with_its_source(item, alice):
    change = suggestion_apply(item=item, reviewer=alice, index=0, token=item_token(item))
    assert (change.field, change.before, change.after) == ("amount", 1200, 1250)
    assert change.source == "suggestion: the invoice total reads 1,250"
    assert current_values(item)["amount"] == 1250
    event = AuditEvent.objects.get(action=AuditAction.ITEM_EDITED)
    assert event.reason == "suggestion: the invoice total reads 1,250"


def test_a_suggestion_that_is_gone_is_refused(item, alice):
    with pytest.raises(ApplicationError) as refused:
        suggestion_apply(item=item, reviewer=alice, index=2, token=item_token(item))
    assert (refused.value.field, refused.value.message) == (
        "suggestion",
        "that suggestion no longer exists",
    )
    assert not item.edits.exists()


def test_a_suggestion_already_applied_is_refused_the_second_time(item, alice):
    suggestion_apply(item=item, reviewer=alice, index=1, token=item_token(item))
    with pytest.raises(ApplicationError, match="due already has that value"):
        suggestion_apply(item=item, reviewer=alice, index=1, token=item_token(item))
    assert item.edits.count() == 1


# Rationale -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reasons"),
    [("", []), ("   ", []), ("", ["", "  "])],
    ids=["nothing", "blank text", "blank reasons"],
)
def test_a_verdict_without_a_rationale_is_refused(text, reasons, item, alice):
    with pytest.raises(ApplicationError) as refused:
        decision_record(
            item=item,
            reviewer=alice,
            verdict="approve",
            rationale=text,
            reasons=reasons,
            token=item_token(item),
        )
    assert refused.value.field == "rationale"
    assert refused.value.message.startswith("Give a rationale")
    item.refresh_from_db()
    assert item.state == ItemState.CLAIMED
    assert not Decision.objects.exists()


def test_a_quick_pick_reason_is_rationale_enough(item, alice, run_all):
    decision = decide(run_all, item, alice, "approve", rationale="", reasons=["amount matches"])
    assert decision.rationale == "amount matches"


def test_a_rationale_longer_than_the_limit_is_refused(item, alice):
    with pytest.raises(ApplicationError) as refused:
        decision_record(
            item=item,
            reviewer=alice,
            verdict="approve",
            rationale="x" * (MAX_TEXT + 1),
            token=item_token(item),
        )
    assert refused.value.field == "rationale"
    assert not Decision.objects.exists()


def test_an_unknown_verdict_is_refused(item, alice):
    with pytest.raises(ApplicationError) as refused:
        decision_record(
            item=item, reviewer=alice, verdict="shrug", rationale="why not", token=item_token(item)
        )
    assert (refused.value.field, refused.value.message) == ("verdict", "unknown verdict 'shrug'")
    assert not Decision.objects.exists()


# Snoozing ------------------------------------------------------------------------------


def snooze(item: WorkItem, person: Any, until: dt.datetime, reason: str = "vendor calls back"):
    return item_snooze(
        item=item, reviewer=person, until=until, reason=reason, token=item_token(item)
    )


def test_a_snoozed_item_stays_with_its_holder_until_the_follow_up(item, alice):
    until = timezone.now() + dt.timedelta(hours=2)
    snoozed = snooze(item, alice, until, reason="  vendor calls back at 3  ")
    item.refresh_from_db()
    assert (item.snoozed_until, item.snooze_reason) == (until, "vendor calls back at 3")
    assert (item.state, item.assignee) == (ItemState.CLAIMED, alice)
    assert snoozed.pk == item.pk
    event = AuditEvent.objects.get(action=AuditAction.ITEM_SNOOZED)
    assert (event.reason, event.after) == ("vendor calls back at 3", {"until": until.isoformat()})


@pytest.mark.parametrize(
    ("ahead", "reason", "fault", "problem"),
    [
        (dt.timedelta(hours=-1), "later", "until", "The follow-up time must be in the future."),
        (dt.timedelta(0), "later", "until", "The follow-up time must be in the future."),
        (dt.timedelta(days=31), "later", "until", "Snooze for at most 30 days."),
        (dt.timedelta(hours=1), "   ", "reason", "Say why you are snoozing it."),
    ],
    ids=["past", "now", "over 30 days", "no reason"],
)
def test_a_snooze_needs_a_reason_and_a_follow_up_within_30_days(
    ahead, reason, fault, problem, item, alice
):
    with pytest.raises(ApplicationError) as refused:
        snooze(item, alice, timezone.now() + ahead, reason=reason)
    assert (refused.value.field, refused.value.message) == (fault, problem)
    item.refresh_from_db()
    assert item.snoozed_until is None


def test_a_snooze_of_up_to_30_days_is_allowed(item, alice):
    snooze(item, alice, timezone.now() + dt.timedelta(days=30))
    item.refresh_from_db()
    assert item.snoozed_until is not None


def test_the_idle_sweep_leaves_a_snoozed_item_alone_until_its_follow_up(single, item, alice):
    policy = SLAPolicy.objects.create(
        name="idle-hour", target=dt.timedelta(hours=8), idle_limit=dt.timedelta(hours=1)
    )
    single.invoices.sla_policy = policy
    single.invoices.save()
    snooze(item, alice, timezone.now() + dt.timedelta(hours=2))
    item.refresh_from_db()
    assert item.last_activity_at is not None
    parked = item.last_activity_at
    sla_sweep(now=parked + dt.timedelta(minutes=90))  # idle past the limit, but snoozed
    item.refresh_from_db()
    assert (item.state, item.assignee) == (ItemState.CLAIMED, alice)
    sla_sweep(now=parked + dt.timedelta(hours=2, minutes=1))  # follow-up time passed
    item.refresh_from_db()
    assert (item.state, item.assignee) == (ItemState.QUEUED, None)
