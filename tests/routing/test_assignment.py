import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from config.errors import ApplicationError, Conflict
from routing.models import ItemState, Queue, Strategy, WorkItem
from routing.services import (
    queue_push,
    work_item_claim_next,
    work_item_complete,
    work_items_move,
    work_items_reassign,
)
from tests.routing.helpers import age, claim, enqueue, grant, load_flow, reviewer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def workflow(db):
    load_flow()


def push_queue(strategy: str, **extra) -> Queue:
    return Queue.objects.create(
        name=strategy.replace("_", "-"), title=strategy, strategy=strategy, **extra
    )


def holders(queue) -> list[str]:
    return [
        item.assignee.username if item.assignee else "-"
        for item in WorkItem.objects.filter(queue=queue).order_by("id")
    ]


def test_round_robin_pushes_to_each_eligible_reviewer_in_turn(alice, bob, carol):
    queue = push_queue(Strategy.ROUND_ROBIN)
    grant(queue, reviewer(alice), reviewer(bob), reviewer(carol))
    for _ in range(5):
        enqueue(queue)
    assert holders(queue) == ["alice", "bob", "carol", "alice", "bob"]
    assert WorkItem.objects.filter(queue=queue, state=ItemState.CLAIMED).count() == 5


def test_round_robin_skips_people_who_are_off_shift_or_absent(alice, bob, carol):
    queue = push_queue(Strategy.ROUND_ROBIN)
    now = timezone.now()
    grant(
        queue,
        reviewer(alice),
        reviewer(bob, on_shift=False),
        reviewer(carol, absent_from=now - dt.timedelta(days=1)),
    )
    for _ in range(2):
        enqueue(queue)
    assert holders(queue) == ["alice", "alice"]


def test_least_loaded_pushes_to_whoever_holds_the_fewest_items(alice, bob):
    queue = push_queue(Strategy.LEAST_LOADED)
    other = Queue.objects.create(name="other", title="Other")
    grant(queue, reviewer(alice), reviewer(bob))
    grant(other, alice)
    for _ in range(2):
        work_item = enqueue(other)
        WorkItem.objects.filter(pk=work_item.pk).update(state=ItemState.CLAIMED, assignee=alice)
    for _ in range(3):
        enqueue(queue)
    # alice already holds two elsewhere: bob gets two before alice gets one
    assert holders(queue) == ["bob", "bob", "alice"]


def test_skill_match_pushes_to_the_best_level_and_breaks_ties_by_load(alice, bob, carol):
    queue = push_queue(Strategy.SKILL_MATCH)
    grant(
        queue,
        reviewer(alice, {"kyc": 2}),
        reviewer(bob, {"kyc": 5}),
        reviewer(carol, {"kyc": 5}),
    )
    for _ in range(3):
        enqueue(queue, skills=["kyc"])
    assert holders(queue) == ["bob", "carol", "bob"]


def test_pushing_respects_capacity_and_waiting_items_go_out_when_someone_frees_up(alice, bob):
    queue = push_queue(Strategy.LEAST_LOADED)
    grant(queue, reviewer(alice, capacity=1), reviewer(bob, capacity=1))
    items = [enqueue(queue) for _ in range(3)]
    assert holders(queue) == ["alice", "bob", "-"]
    first = WorkItem.objects.get(pk=items[0].pk)
    work_item_complete(item=first, actor=alice)
    queue_push(queue=queue)  # what the on-commit hook of work_item_complete does
    assert WorkItem.objects.get(pk=items[2].pk).assignee == alice


def test_pushing_respects_the_queues_wip_limit(alice, bob):
    queue = push_queue(Strategy.ROUND_ROBIN, wip_limit=2)
    grant(queue, reviewer(alice), reviewer(bob))
    for _ in range(3):
        enqueue(queue)
    assert holders(queue) == ["alice", "bob", "-"]


def test_an_item_waits_in_a_push_queue_when_nobody_has_its_skills_or_region(alice, bob):
    queue = push_queue(Strategy.ROUND_ROBIN)
    grant(queue, reviewer(alice, {"kyc": 3}, regions=["eu"]), reviewer(bob, regions=["us"]))
    enqueue(queue, skills=["aml"], region="eu")
    enqueue(queue, region="apac")
    assert holders(queue) == ["-", "-"]


def test_pull_claims_respect_personal_capacity_and_the_queue_wip_limit(alice, bob):
    queue = Queue.objects.create(name="pull", title="Pull", wip_limit=3)
    grant(queue, reviewer(alice, capacity=2), reviewer(bob, capacity=5))
    for _ in range(5):
        enqueue(queue)
    assert work_item_claim_next(reviewer=alice) is not None
    assert work_item_claim_next(reviewer=alice) is not None
    assert work_item_claim_next(reviewer=alice) is None  # her capacity
    assert work_item_claim_next(reviewer=bob) is not None
    assert work_item_claim_next(reviewer=bob) is None  # the queue's WIP limit of 3


def test_a_queue_at_its_wip_limit_is_passed_over_for_the_reviewer_s_other_queues(alice, bob):
    """Limited and unlimited queues granted side by side, the limited one through a
    group: once full it hands out nothing, and the others go on in claim order."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    limited = Queue.objects.create(name="limited", title="Limited", wip_limit=1)
    other = Queue.objects.create(name="other", title="Other")
    roomy = Queue.objects.create(name="roomy", title="Roomy", wip_limit=5)
    team = Group.objects.create(name="limited team")
    assign_perm("routing.work_on_queue", team, limited)
    alice.groups.add(team)
    grant(limited, reviewer(bob))
    grant(other, reviewer(alice, capacity=5))
    grant(roomy, alice)
    for queue, priority in ((limited, 1), (limited, 1), (other, 2), (roomy, 3)):
        enqueue(queue, priority=priority)
    assert claim(bob).queue == limited
    # The limited queue's one place is taken: Alice gets the other queues' items, less
    # urgent than the one still waiting there, and then nothing.
    assert claim(alice).queue == other
    assert claim(alice).queue == roomy
    assert work_item_claim_next(reviewer=alice) is None
    assert WorkItem.objects.filter(queue=limited, state=ItemState.QUEUED).count() == 1


def test_a_reviewer_never_receives_an_item_outside_their_queues_skills_or_region(
    alice, bob, mallory
):
    mine = Queue.objects.create(name="mine", title="Mine")
    theirs = Queue.objects.create(name="theirs", title="Theirs")
    grant(mine, reviewer(alice, {"kyc": 3}, regions=["eu"]))
    grant(theirs, reviewer(bob, {"kyc": 3, "aml": 3}, regions=["eu", "us"]))
    reviewer(mallory, {"kyc": 5, "aml": 5}, regions=["eu", "us"])
    enqueue(theirs, skills=["kyc"])
    enqueue(mine, skills=["aml"])
    enqueue(mine, region="us")
    assert work_item_claim_next(reviewer=alice) is None
    assert work_item_claim_next(reviewer=mallory) is None  # no queue permission at all
    fitting = enqueue(mine, skills=["kyc"], region="eu")
    assert work_item_claim_next(reviewer=alice) == fitting


def test_off_shift_or_absent_reviewers_claim_nothing(alice):
    queue = Queue.objects.create(name="pull", title="Pull")
    now = timezone.now()
    grant(queue, reviewer(alice, absent_from=now - dt.timedelta(hours=1)))
    enqueue(queue)
    assert work_item_claim_next(reviewer=alice) is None
    reviewer(alice, absent_from=None, on_shift=False)
    assert work_item_claim_next(reviewer=alice) is None
    # a weekly schedule with no hours today keeps her out even when flagged on shift
    today = now.strftime("%a").lower()
    tomorrow = (now + dt.timedelta(days=1)).strftime("%a").lower()
    reviewer(alice, on_shift=True, shift_schedule={tomorrow: [["00:00", "24:00"]]})
    assert work_item_claim_next(reviewer=alice) is None
    reviewer(alice, shift_schedule={today: [["00:00", "24:00"]]})
    assert work_item_claim_next(reviewer=alice) is not None


def test_the_aging_boost_lets_a_low_class_overtake_after_waiting(alice):
    queue = Queue.objects.create(name="pull", title="Pull", aging_step=dt.timedelta(hours=1))
    grant(queue, reviewer(alice, capacity=10))
    old_low = age(enqueue(queue, priority=5), dt.timedelta(hours=3, minutes=30))
    fresh_urgent = enqueue(queue, priority=2)
    fresh_low = enqueue(queue, priority=5)
    # 5 classes - 3.5 h of aging ranks like a class 1.5 item: ahead of a fresh class 2
    assert work_item_claim_next(reviewer=alice) == old_low
    assert work_item_claim_next(reviewer=alice) == fresh_urgent
    assert work_item_claim_next(reviewer=alice) == fresh_low


def test_managers_reassign_items_to_a_person_or_back_to_the_queue_with_a_reason(alice, bob, maria):
    queue = Queue.objects.create(name="pull", title="Pull")
    grant(queue, reviewer(alice), reviewer(bob))
    items = [enqueue(queue) for _ in range(2)]
    work_item_claim_next(reviewer=alice)
    ids = [item.pk for item in items]
    with pytest.raises(ApplicationError) as refused:
        work_items_reassign(item_ids=ids, to_user=bob, actor=maria, reason="  ")
    assert refused.value.field == "reason"
    assert work_items_reassign(item_ids=ids, to_user=bob, actor=maria, reason="alice is out") == 2
    moved = WorkItem.objects.filter(pk__in=ids)
    assert {(i.assignee, i.state, i.reassignment_count) for i in moved} == {
        (bob, ItemState.CLAIMED, 1)
    }
    events = AuditEvent.objects.filter(action=AuditAction.ITEM_REASSIGNED, reason="alice is out")
    assert events.count() == 2
    assert work_items_reassign(item_ids=ids, to_user=None, actor=maria, reason="rebalance") == 2
    assert set(moved.values_list("state", flat=True)) == {ItemState.QUEUED}


def test_reassigning_to_someone_who_cannot_work_the_item_changes_nothing(alice, carol, maria):
    queue = Queue.objects.create(name="pull", title="Pull")
    grant(queue, reviewer(alice))
    reviewer(carol)  # no permission on the queue
    item = enqueue(queue)
    with pytest.raises(ApplicationError) as refused:
        work_items_reassign(item_ids=[item.pk], to_user=carol, actor=maria, reason="try")
    assert refused.value.field == "to_user"
    assert WorkItem.objects.get(pk=item.pk).reassignment_count == 0


def test_managers_move_items_between_queues_and_decided_items_stay_put(alice, maria):
    source = Queue.objects.create(name="source", title="Source")
    target = Queue.objects.create(name="target", title="Target")
    grant(source, reviewer(alice))
    waiting, decided = enqueue(source), enqueue(source)
    WorkItem.objects.filter(pk=decided.pk).update(state=ItemState.DONE)
    with pytest.raises(Conflict):
        work_items_move(item_ids=[waiting.pk, decided.pk], queue=target, actor=maria, reason="x")
    assert WorkItem.objects.get(pk=waiting.pk).queue == source  # all or nothing
    assert work_items_move(item_ids=[waiting.pk], queue=target, actor=maria, reason="x") == 1
    assert WorkItem.objects.get(pk=waiting.pk).queue == target


def test_completing_an_item_someone_else_holds_is_refused(alice, bob):
    queue = Queue.objects.create(name="pull", title="Pull")
    grant(queue, reviewer(alice))
    enqueue(queue)
    item = claim(alice)
    with pytest.raises(Conflict):
        work_item_complete(item=item, actor=bob)
    assert work_item_complete(item=item, actor=alice).state == ItemState.DONE
    with pytest.raises(Conflict):
        work_item_complete(item=item, actor=alice)
