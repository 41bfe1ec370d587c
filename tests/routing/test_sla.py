import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from orchestration.models import OutboxEvent
from routing.models import BusinessCalendar, ItemState, Queue, SLAPolicy, WorkItem
from routing.services import sla_sweep, work_item_claim_next
from tests.routing.helpers import age, claim, enqueue, grant, load_flow, reviewer

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def workflow(db):
    load_flow()


@pytest.fixture
def queues(maria):
    escalation = Queue.objects.create(name="escalations", title="Escalations")
    policy = SLAPolicy.objects.create(
        name="four-hours", target=4 * HOUR, warn_at_percent=75, idle_limit=HOUR
    )
    main = Queue.objects.create(
        name="main", title="Main", sla_policy=policy, escalation_queue=escalation, owner=maria
    )
    return main, escalation


def actions(item) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_id=str(item.pk), action__startswith="sla.")
        .order_by("id")
        .values_list("action", flat=True)
    ) + list(
        AuditEvent.objects.filter(object_id=str(item.pk), action=AuditAction.ITEM_ESCALATED)
        .order_by("id")
        .values_list("after__rung", flat=True)
    )


def test_due_and_warning_times_come_from_the_queues_policy_in_business_time(queues):
    main, _ = queues
    calendar = BusinessCalendar.objects.create(
        name="eu-office", time_zone="Europe/Berlin", weekdays=["mon", "tue", "wed", "thu", "fri"]
    )
    SLAPolicy.objects.filter(pk=main.sla_policy_id).update(calendar=calendar)
    item = enqueue(main)
    from routing.calendar import business_add

    assert item.due_at == business_add(calendar, item.enqueued_at, 4 * HOUR)
    assert item.warn_at == business_add(calendar, item.enqueued_at, 3 * HOUR)
    assert item.escalate_at == item.due_at


def test_without_a_policy_the_steps_own_sla_counts_around_the_clock():
    queue = Queue.objects.create(name="plain", title="Plain")
    item = enqueue(queue, sla=600)
    assert item.due_at is not None and item.warn_at is not None
    assert item.due_at - item.enqueued_at == dt.timedelta(seconds=600)
    assert item.warn_at - item.enqueued_at == dt.timedelta(seconds=450)
    assert enqueue(queue).due_at is None


def test_the_sweep_warns_once_when_an_item_is_at_risk(queues, alice, maria):
    main, _ = queues
    grant(main, reviewer(alice))
    item = enqueue(main)
    work_item_claim_next(reviewer=alice)
    now = timezone.now()
    assert sla_sweep(now=now)["warned"] == 0
    later = now + 3 * HOUR + dt.timedelta(minutes=1)
    assert sla_sweep(now=later)["warned"] == 1
    assert sla_sweep(now=later)["warned"] == 0
    item.refresh_from_db()
    assert item.warned_at == later and item.breached_at is None
    event = OutboxEvent.objects.get(topic="sla.at_risk")
    assert event.payload["item_id"] == item.pk
    assert set(event.payload["notify_user_ids"]) == {alice.pk, maria.pk}
    assert actions(item) == [AuditAction.SLA_WARNED]


def test_the_escalation_ladder_climbs_one_rung_at_a_time_and_never_twice(queues, alice, bob):
    main, escalation = queues
    SLAPolicy.objects.filter(pk=main.sla_policy_id).update(idle_limit=None)
    grant(main, reviewer(alice), reviewer(bob))
    item = enqueue(main, priority=3)
    work_item_claim_next(reviewer=alice)
    start = item.enqueued_at
    # rung 1 at the due time: breached, assignee and owner told
    for _ in range(2):
        sla_sweep(now=start + 4 * HOUR + dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert (item.escalation_level, item.assignee, item.state) == (1, alice, ItemState.CLAIMED)
    assert item.breached_at is not None
    assert OutboxEvent.objects.filter(topic="sla.breached").count() == 1
    # rung 2 at 125 %: taken from alice and handed to someone else who may work it
    for _ in range(2):
        sla_sweep(now=start + 5 * HOUR + dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert (item.escalation_level, item.assignee, item.reassignment_count) == (2, bob, 1)
    # rung 3 at 150 %: moved to the escalation queue, one class more urgent, unassigned
    for _ in range(2):
        sla_sweep(now=start + 6 * HOUR + dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert (item.escalation_level, item.queue, item.priority, item.state) == (
        3,
        escalation,
        2,
        ItemState.QUEUED,
    )
    assert item.escalate_at is None
    assert actions(item) == [AuditAction.SLA_WARNED, AuditAction.SLA_BREACHED, 2, 3]
    sla_sweep(now=start + 48 * HOUR)
    assert actions(item) == [AuditAction.SLA_WARNED, AuditAction.SLA_BREACHED, 2, 3]


def test_without_an_escalation_queue_the_last_rung_flags_the_item_for_managers(alice):
    policy = SLAPolicy.objects.create(name="short", target=HOUR)
    queue = Queue.objects.create(name="lonely", title="Lonely", sla_policy=policy)
    item = enqueue(queue)
    sla_sweep(now=item.enqueued_at + 2 * HOUR)
    item.refresh_from_db()
    # each sweep climbs one rung: breach, reassign (nobody else can take it), flag
    sla_sweep(now=item.enqueued_at + 2 * HOUR)
    sla_sweep(now=item.enqueued_at + 2 * HOUR)
    item.refresh_from_db()
    assert item.escalation_level == 3 and item.queue == queue
    assert "no escalation queue" in item.flag
    assert OutboxEvent.objects.get(topic="item.escalated").payload["notify_roles"] == ["manager"]


def test_an_item_claimed_but_untouched_past_the_idle_limit_goes_back_to_its_queue(queues, alice):
    main, _ = queues
    grant(main, reviewer(alice))
    enqueue(main)
    item = claim(alice)
    claimed_at = item.claimed_at
    assert claimed_at is not None
    sla_sweep(now=claimed_at + HOUR - dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert item.assignee == alice
    sla_sweep(now=claimed_at + HOUR + dt.timedelta(seconds=1))
    item.refresh_from_db()
    assert (item.state, item.assignee_id, item.reassignment_count) == ("queued", None, 1)
    event = AuditEvent.objects.get(object_id=str(item.pk), action=AuditAction.ITEM_REASSIGNED)
    assert event.reason == "idle past the limit"


def test_an_absent_reviewers_items_move_to_their_delegate(queues, alice, bob):
    main, _ = queues
    grant(main, reviewer(alice), reviewer(bob))
    enqueue(main)
    item = claim(alice)
    now = timezone.now()
    reviewer(alice, absent_from=now - dt.timedelta(minutes=5), delegate=bob)
    sla_sweep(now=now)
    item.refresh_from_db()
    assert (item.state, item.assignee, item.reassignment_count) == (ItemState.CLAIMED, bob, 1)
    event = AuditEvent.objects.get(object_id=str(item.pk), action=AuditAction.ITEM_REASSIGNED)
    assert "absent" in event.reason and "delegate bob" in event.reason
    assert OutboxEvent.objects.filter(topic="item.reassigned").count() == 1


def test_items_of_someone_who_went_off_shift_go_back_when_the_delegate_cannot_take_them(
    queues, alice, carol
):
    main, _ = queues
    grant(main, reviewer(alice))
    reviewer(carol)  # her delegate, but carol may not work this queue
    enqueue(main)
    item = claim(alice)
    reviewer(alice, on_shift=False, delegate=carol)
    sla_sweep()
    item.refresh_from_db()
    assert (item.state, item.assignee) == (ItemState.QUEUED, None)


def test_the_sweep_touches_only_items_whose_time_has_come(queues, alice):
    main, _ = queues
    fresh = enqueue(main)
    old = age(enqueue(main), 4 * HOUR + dt.timedelta(minutes=1))
    before = fresh.updated_at
    counts = sla_sweep()
    fresh.refresh_from_db()
    old.refresh_from_db()
    assert counts["warned"] == 1 and counts["escalated"] == 1
    assert fresh.updated_at == before and fresh.warned_at is None
    assert old.breached_at is not None
    assert WorkItem.objects.filter(breached_at__isnull=False).count() == 1


def _breach_batch(queue, size: int):
    items = [enqueue(queue) for _ in range(size)]
    WorkItem.objects.filter(pk__in=[i.pk for i in items]).update(warned_at=timezone.now())
    return items


def test_a_batch_of_breaches_is_marked_audited_and_announced_item_by_item(queues, maria):
    from audit.verification import verify

    main, _ = queues
    items = _breach_batch(main, 5)
    later = max(i.escalate_at for i in items) + dt.timedelta(seconds=1)
    assert sla_sweep(now=later)["escalated"] == 5
    for item in items:
        item.refresh_from_db()
        assert (item.escalation_level, item.breached_at, item.updated_at) == (1, later, later)
        # The next rung comes at 125 % of the four-hour target.
        assert item.escalate_at == item.enqueued_at + 5 * HOUR
        assert actions(item) == [AuditAction.SLA_BREACHED]
        event = OutboxEvent.objects.get(topic="sla.breached", payload__item_id=item.pk)
        assert event.payload["notify_user_ids"] == [maria.pk]
        assert event.payload["case_id"] == str(item.case_id)
        assert verify(case_id=str(item.case_id)).ok
    assert sla_sweep(now=later)["escalated"] == 0


def test_breaching_more_items_costs_no_more_statements(queues):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    main, _ = queues
    counts = []
    for size in (2, 9):
        items = _breach_batch(main, size)
        later = max(i.escalate_at for i in items) + dt.timedelta(seconds=1)
        with CaptureQueriesContext(connection) as captured:
            assert sla_sweep(now=later)["escalated"] == size
        counts.append(len(captured.captured_queries))
    if connection.vendor == "postgresql":
        assert counts[0] == counts[1]
    else:  # SQLite appends audit events one by one (two statements each)
        assert counts[1] - counts[0] == 2 * 7
