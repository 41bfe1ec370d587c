import threading

import pytest
from django.db import connection

from audit.context import Actor
from audit.models import AuditAction, AuditEvent
from orchestration import services
from routing.models import ItemState, Queue, ReviewerProfile, RoutingRule, WorkItem
from routing.services import queue_for, queue_grant, work_item_claim_next
from tests.orchestration.conftest import with_wait_and_review
from tests.routing.helpers import claim

pytestmark = pytest.mark.django_db
system = Actor.system("test")


@pytest.fixture
def queues(db):
    invoices = Queue.objects.create(name="invoices", title="Invoices")
    kyc = Queue.objects.create(name="kyc", title="KYC")
    qa = Queue.objects.create(name="qa", title="QA")
    RoutingRule.objects.create(order=1, queue=qa, kind="qa")
    RoutingRule.objects.create(order=2, queue=invoices, skill="invoices")
    RoutingRule.objects.create(order=3, queue=kyc, skill="kyc", region="us")
    return {"invoices": invoices, "kyc": kyc, "qa": qa}


def profile(user, skills, regions=("eu",), capacity=5):
    ReviewerProfile.objects.create(
        user=user, skills=dict.fromkeys(skills, 3), regions=list(regions), capacity=capacity
    )
    return user


def to_review(
    run_all, *, skills=("invoices",), region="eu", priority=3, confidence=0.3, impact="medium"
):
    case = run_all(
        services.case_submit,
        workflow="wait-review",
        payload={"amount": "500"},
        actor=system,
        skills=list(skills),
        region=region,
        priority=priority,
        confidence=confidence,
        impact=impact,
    )
    run_all(services.case_signal, case=case, name="documents_received", data={}, actor=system)
    return case


def test_rules_pick_the_first_match_and_unmatched_work_goes_to_triage(queues):
    assert queue_for(kind="review", region="eu", skills=["invoices"], workflow_slug="x") == (
        queues["invoices"],
        True,
    )
    assert queue_for(kind="qa", region="eu", skills=["invoices"], workflow_slug="x") == (
        queues["qa"],
        True,
    )
    assert (
        queue_for(kind="review", region="eu", skills=["kyc"], workflow_slug="x")[0].name == "triage"
    )
    assert queue_for(kind="review", region="us", skills=["kyc"], workflow_slug="x") == (
        queues["kyc"],
        True,
    )
    assert queue_for(kind="review", region="eu", skills=[], workflow_slug="x", hint="kyc") == (
        queues["kyc"],
        True,
    )


def test_the_gate_queues_human_reviews_with_an_audit_event(flow, run_all, queues):
    flow(with_wait_and_review())
    case = to_review(run_all)
    item = WorkItem.objects.get(case=case)
    assert (item.kind, item.queue, item.state, item.priority) == (
        "review",
        queues["invoices"],
        "queued",
        3,
    )
    assert item.due_at is not None  # the step's SLA
    assert AuditEvent.objects.filter(
        case_id=str(case.pk), action=AuditAction.ITEM_ENQUEUED
    ).exists()


def test_work_no_rule_takes_is_flagged_in_triage_and_never_dropped(flow, run_all, queues):
    flow(with_wait_and_review())
    RoutingRule.objects.all().delete()
    case = to_review(run_all, skills=("kyc",), region="eu")
    item = WorkItem.objects.get(case=case)
    assert item.queue.name == "triage"
    event = AuditEvent.objects.get(case_id=str(case.pk), action=AuditAction.ITEM_ENQUEUED)
    assert "no routing rule matched" in event.reason


def test_a_sampled_automatic_approval_becomes_a_qa_item(flow, run_all, queues, adam):
    from tests.orchestration.test_thresholds import CELLS, EDGES, RATES

    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="x",
        actor=adam,
    )
    case = to_review(run_all, confidence=0.99, impact="low")  # auto, sampled at 100 %
    case.refresh_from_db()
    assert case.status == "approved"
    item = WorkItem.objects.get(case=case)
    assert (item.kind, item.queue) == ("qa", queues["qa"])


def test_claiming_takes_the_most_urgent_then_oldest_item_once(flow, run_all, queues, alice):
    flow(with_wait_and_review())
    profile(alice, ["invoices"])
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    old_normal = to_review(run_all, priority=3)
    urgent = to_review(run_all, priority=1)
    to_review(run_all, priority=3)
    first = work_item_claim_next(reviewer=alice)
    second = work_item_claim_next(reviewer=alice)
    assert first is not None and first.case_id == urgent.pk
    assert second is not None and second.case_id == old_normal.pk
    assert (first.state, first.assignee) == (ItemState.CLAIMED, alice)
    assert (
        AuditEvent.objects.filter(action=AuditAction.ITEM_CLAIMED, actor_name="alice").count() == 2
    )


def test_claiming_respects_queue_permission_skills_region_capacity_and_wip(
    flow, run_all, queues, alice, bob, mallory
):
    flow(with_wait_and_review())
    profile(alice, ["invoices"], capacity=1)
    profile(bob, ["kyc"], regions=["eu"])
    profile(mallory, ["invoices"])
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    queue_grant(queue=queues["invoices"], user=bob, actor=system)
    for _ in range(3):
        to_review(run_all)
    to_review(run_all, region="apac")
    assert work_item_claim_next(reviewer=mallory) is None  # no permission on the queue
    assert work_item_claim_next(reviewer=bob) is None  # lacks the invoices skill
    assert work_item_claim_next(reviewer=alice) is not None
    assert work_item_claim_next(reviewer=alice) is None  # at her capacity of 1
    ReviewerProfile.objects.filter(user=alice).update(capacity=10)
    Queue.objects.filter(pk=queues["invoices"].pk).update(wip_limit=2)
    assert work_item_claim_next(reviewer=alice) is not None
    assert work_item_claim_next(reviewer=alice) is None  # the queue's WIP limit of 2
    Queue.objects.filter(pk=queues["invoices"].pk).update(wip_limit=0)
    third = work_item_claim_next(reviewer=alice)
    assert third is not None
    assert work_item_claim_next(reviewer=alice) is None  # the apac item is not for her region


def test_someone_without_a_reviewer_profile_claims_nothing(flow, run_all, queues, alice):
    flow(with_wait_and_review())
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    to_review(run_all)
    assert work_item_claim_next(reviewer=alice) is None
    assert not WorkItem.objects.filter(state=ItemState.CLAIMED).exists()
    profile(alice, ["invoices"])
    assert work_item_claim_next(reviewer=alice) is not None


def region_claimed(user) -> str | None:
    item = work_item_claim_next(reviewer=user)
    return item.region if item is not None else None


def test_a_changed_profile_or_permission_changes_what_the_next_claim_may_take(
    flow, run_all, queues, alice
):
    """The claim's SQL is built once per shape (person, queues, regions, skills...):
    every change to those between two claims is honoured by the next one."""
    from guardian.shortcuts import remove_perm

    flow(with_wait_and_review())
    profile(alice, ["invoices"], regions=["eu"], capacity=10)
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    for region in ("eu", "eu", "apac", "apac", "eu"):
        to_review(run_all, region=region)
    assert region_claimed(alice) == "eu"
    assert region_claimed(alice) == "eu"
    ReviewerProfile.objects.filter(user=alice).update(regions=["apac"])
    assert region_claimed(alice) == "apac"
    ReviewerProfile.objects.filter(user=alice).update(regions=["eu"], skills={"kyc": 3})
    assert work_item_claim_next(reviewer=alice) is None  # the items need invoices
    ReviewerProfile.objects.filter(user=alice).update(skills={"invoices": 3})
    remove_perm("routing.work_on_queue", alice, queues["invoices"])
    assert work_item_claim_next(reviewer=alice) is None  # no longer her queue
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    assert region_claimed(alice) == "eu"
    assert work_item_claim_next(reviewer=alice) is None  # the last one is apac


def test_queues_granted_through_a_group_or_as_superuser_count_from_the_next_claim(
    flow, run_all, queues, alice
):
    """The queue query's SQL is kept per person: the grants it reads are not."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    flow(with_wait_and_review())
    profile(alice, ["invoices"], regions=["eu"], capacity=10)
    for _ in range(3):
        to_review(run_all, region="eu")
    assert work_item_claim_next(reviewer=alice) is None  # no queue of hers yet
    team = Group.objects.create(name="invoice team")
    assign_perm("routing.work_on_queue", team, queues["invoices"])
    alice.groups.add(team)
    assert region_claimed(alice) == "eu"  # granted through her group
    alice.groups.remove(team)
    assert work_item_claim_next(reviewer=alice) is None
    alice.is_superuser = True
    alice.save(update_fields=["is_superuser"])
    assert region_claimed(alice) == "eu"  # a superuser may work every queue
    alice.is_superuser = False
    alice.save(update_fields=["is_superuser"])
    assert work_item_claim_next(reviewer=alice) is None


@pytest.mark.postgres
def test_a_claim_on_postgresql_is_one_read_one_update_and_one_audit_write(
    flow, run_all, queues, alice, django_assert_num_queries
):
    """The profile, the load and the open queues come in one read; the claim's UPDATE
    also reads the head of the case's audit chain, so the claim's event goes in with
    one round trip even when this process has never written to that chain."""
    from audit import services as audit_services
    from audit.verification import verify

    flow(with_wait_and_review())
    profile(alice, ["invoices"], capacity=10)
    queue_grant(queue=queues["invoices"], user=alice, actor=system)
    cases = [to_review(run_all) for _ in range(4)]
    assert work_item_claim_next(reviewer=alice) is not None  # builds and keeps the SQL
    audit_services._HEAD_HINTS.clear()  # as in a process that never saw these cases
    with django_assert_num_queries(5) as captured:  # BEGIN, read, UPDATE, audit, COMMIT
        item = work_item_claim_next(reviewer=alice)
    assert item is not None and item.case_id == cases[1].pk
    statements = [query["sql"] for query in captured.captured_queries]
    # Guardian's grant subqueries are planned once per claim, not once for the granted
    # queues and again for those with a WIP limit.
    assert statements[1].count('"guardian_userobjectpermission"') == 1
    assert statements[1].count('"guardian_groupobjectpermission"') == 1
    assert "audit_head_hash" in statements[2]
    assert "pg_advisory_xact_lock" in statements[3] and "INSERT" in statements[3]
    event = AuditEvent.objects.get(action=AuditAction.ITEM_CLAIMED, object_id=str(item.pk))
    assert event.prev_hash == (
        AuditEvent.objects.filter(case_id=str(item.case_id), chain_seq=event.chain_seq - 1)
        .values_list("hash", flat=True)
        .get()
    )
    assert verify(case_id=str(item.case_id)).ok
    # A queue with a WIP limit costs one more read, its claimed items counted.
    Queue.objects.filter(pk=queues["invoices"].pk).update(wip_limit=5)
    with django_assert_num_queries(6):
        assert work_item_claim_next(reviewer=alice) is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_reviewers_claim_a_thousand_items_exactly_once(django_user_model):
    from django.utils import timezone

    services.workflow_load(document=with_wait_and_review(), actor=system)
    case = services.case_submit(workflow="wait-review", payload={"amount": "1"}, actor=system)
    run = case.step_runs.first()
    queue = Queue.objects.create(name="bulk", title="Bulk")
    now = timezone.now()
    WorkItem.objects.bulk_create(
        WorkItem(case=case, step_run=run, kind="review", queue=queue, enqueued_at=now, rank_at=now)
        for _ in range(1000)
    )
    reviewers = []
    for n in range(16):
        user = django_user_model.objects.create(username=f"r{n}")
        profile(user, [], capacity=1000)
        queue_grant(queue=queue, user=user, actor=system)
        reviewers.append(user)
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(reviewer) -> None:
        try:
            while (item := work_item_claim_next(reviewer=reviewer)) is not None:
                with lock:
                    claimed.append(item.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(claimed) == 1000
    assert len(set(claimed)) == 1000
    assert WorkItem.objects.filter(state=ItemState.CLAIMED).count() == 1000
    assert WorkItem.objects.filter(assignee__isnull=True).count() == 0
    # Every claim's event went into the one case's chain: concurrent claimers can read
    # the same head, and whoever is overtaken takes the audit trail's slow path.
    from audit.verification import verify

    assert AuditEvent.objects.filter(action=AuditAction.ITEM_CLAIMED).count() == 1000
    assert verify(case_id=str(case.pk)).ok


def test_a_rule_whose_queue_does_not_take_the_item_is_passed_over(queues):
    kyc = queues["kyc"]
    kyc.regions, kyc.priority_classes = ["us"], [1, 2]
    kyc.save()
    catch_all = Queue.objects.create(name="catch-all", title="Catch all")
    RoutingRule.objects.create(order=9, queue=catch_all)
    RoutingRule.objects.create(order=4, queue=kyc, skill="kyc")  # no region condition
    assert (
        queue_for(kind="review", region="us", skills=["kyc"], workflow_slug="x", priority=1)[0]
        == kyc
    )
    # the queue serves the US only, and classes 1-2 only
    assert (
        queue_for(kind="review", region="eu", skills=["kyc"], workflow_slug="x", priority=1)[0]
        == catch_all
    )
    assert (
        queue_for(kind="review", region="us", skills=["kyc"], workflow_slug="x", priority=3)[0]
        == catch_all
    )
    invoices = queues["invoices"]
    invoices.required_skills = ["invoices", "fx"]
    invoices.save()
    assert (
        queue_for(kind="review", region="eu", skills=["invoices"], workflow_slug="x")[0]
        == catch_all
    )


def test_cancelling_a_case_withdraws_its_open_review_items(flow, run_all, queues, alice):
    flow(with_wait_and_review())
    queue_grant(queue=queues["invoices"], user=profile(alice, ["invoices"]), actor=system)
    case = to_review(run_all)
    item = claim(alice)
    run_all(services.case_cancel, case=case, actor=system, reason="customer withdrew")
    item.refresh_from_db()
    assert (item.state, item.decided_at is not None) == (ItemState.CANCELLED, True)
    event = AuditEvent.objects.get(object_id=str(item.pk), action=AuditAction.ITEM_RELEASED)
    assert event.reason == "case cancelled: customer withdrew"


def test_a_review_decided_through_the_engine_leaves_no_open_item(flow, run_all, queues):
    flow(with_wait_and_review())
    case = to_review(run_all)
    run = case.step_runs.get(step_id="check")
    run_all(services.review_step_complete, step_run=run, outcome="approve", actor=system)
    assert WorkItem.objects.get(case=case).state == ItemState.CANCELLED
