"""The QA screen: a QA reviewer takes a sampled automatic approval and files a finding."""

import re

import pytest
from django.urls import reverse

from audit.context import Actor
from orchestration import selectors, services
from orchestration.models import QaFinding
from routing.models import ItemKind, ItemState, Queue, ReviewerProfile, RoutingRule, WorkItem
from routing.services import queue_grant
from tests.orchestration.conftest import with_wait_and_review
from tests.orchestration.test_thresholds import CELLS, EDGES, RATES

pytestmark = pytest.mark.django_db
system = Actor.system("test")
QA_LIST = reverse("review:qa_list")
AUTO_CELL = "low x [0.95, 1]"  # auto, sampled at 100 % under CELLS / RATES


@pytest.fixture
def queues(db):
    invoices = Queue.objects.create(name="invoices", title="Invoices")
    qa = Queue.objects.create(name="qa", title="QA")
    RoutingRule.objects.create(order=1, queue=qa, kind="qa")
    RoutingRule.objects.create(order=2, queue=invoices, skill="invoices")
    return {"invoices": invoices, "qa": qa}


@pytest.fixture
def world(flow, queues, adam):
    """The wait-review workflow whose low-impact, high-confidence cell approves
    automatically and samples every such approval for QA."""
    flow(with_wait_and_review())
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="launch",
        actor=adam,
    )
    return queues


def qa_reviewer(user, queue, *, capacity=5):
    ReviewerProfile.objects.create(
        user=user, skills={"invoices": 3}, regions=["eu"], capacity=capacity
    )
    queue_grant(queue=queue, user=user, actor=system)
    return user


def approved_automatically(run_all, *, ref="INV-1", payload=None, confidence=0.99, impact="low"):
    case = run_all(
        services.case_submit,
        workflow="wait-review",
        payload=payload or {"amount": "500", "vendor": "ACME GmbH"},
        actor=system,
        external_ref=ref,
        skills=["invoices"],
        region="eu",
        confidence=confidence,
        impact=impact,
    )
    run_all(services.case_signal, case=case, name="documents_received", data={}, actor=system)
    return case


@pytest.fixture
def bob_qa(world, client, bob):
    qa_reviewer(bob, world["qa"])
    client.force_login(bob)
    return client


def take(client):
    response = client.post(QA_LIST)
    assert response.status_code == 302
    return response


def taken_item(client, run_all, **kwargs):
    case = approved_automatically(run_all, **kwargs)
    response = take(client)
    item = WorkItem.objects.get(case=case, kind=ItemKind.QA)
    assert response.url == reverse("review:qa_item", args=[item.pk])
    return item


def item_url(item):
    return reverse("review:qa_item", args=[item.pk])


def test_a_sampled_automatic_approval_waits_as_a_qa_item(bob_qa, run_all):
    case = approved_automatically(run_all)
    case.refresh_from_db()
    assert case.status == "approved"  # the case went on
    html = bob_qa.get(QA_LIST).content.decode()
    assert "<strong>1</strong> QA item waiting" in html
    assert "You hold no QA items." in html


def test_taking_the_next_qa_item_opens_it_with_the_gate_record(bob_qa, run_all, bob):
    item = taken_item(bob_qa, run_all, ref="INV-42")
    item.refresh_from_db()
    assert (item.state, item.assignee) == (ItemState.CLAIMED, bob)
    page = bob_qa.get(item_url(item))
    html = page.content.decode()
    assert page.status_code == 200
    assert AUTO_CELL in html
    assert "INV-42" in html and "wait-review" in html
    assert "version 1" in html  # the policy version the gate used
    assert "0.99" in html and "100" in html  # confidence and sample rate
    assert "the review gate (no person)" in html
    listed = bob_qa.get(QA_LIST).content.decode()
    assert item_url(item) in listed and "No QA items waiting" in listed


def test_taking_next_from_the_qa_screen_never_takes_a_review_item(bob_qa, run_all, world, bob):
    queue_grant(queue=world["invoices"], user=bob, actor=system)
    approved_automatically(run_all, ref="TO-REVIEW", confidence=0.3)  # a human review
    response = take(bob_qa)
    assert response.url == QA_LIST
    assert not WorkItem.objects.filter(assignee=bob).exists()


def test_agreeing_files_a_finding_and_finishes_the_item(bob_qa, run_all, bob):
    item = taken_item(bob_qa, run_all)
    response = bob_qa.post(item_url(item), {"verdict": "agree", "note": ""}, follow=True)
    assert response.redirect_chain == [(QA_LIST, 302)]
    assert "Finding filed: you agreed with the automatic approval of INV-1." in (
        response.content.decode()
    )
    finding = QaFinding.objects.get()
    assert (finding.agrees, finding.reviewer, finding.cell) == (True, bob, AUTO_CELL)
    item.refresh_from_db()
    assert item.state == ItemState.DONE and item.decided_at is not None


def test_disagreeing_without_a_note_is_refused_next_to_the_note_and_saves_nothing(bob_qa, run_all):
    item = taken_item(bob_qa, run_all)
    response = bob_qa.post(item_url(item), {"verdict": "disagree", "note": "  "})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="note-error"' in html
    assert "say what is wrong with the automatic approval" in html
    assert 'aria-describedby="note-help note-error"' in html
    assert 'value="disagree" id="id_verdict_1" checked' in html  # the choice is kept
    assert not QaFinding.objects.exists()
    item.refresh_from_db()
    assert item.state == ItemState.CLAIMED and item.decided_at is None


def test_a_finding_needs_a_verdict(bob_qa, run_all):
    item = taken_item(bob_qa, run_all)
    response = bob_qa.post(item_url(item), {"note": "looks fine"})
    assert response.status_code == 400
    assert 'id="verdict-error"' in response.content.decode()
    assert not QaFinding.objects.exists()


def test_a_disagreement_with_a_note_is_counted_for_its_cell(bob_qa, run_all):
    item = taken_item(bob_qa, run_all)
    response = bob_qa.post(
        item_url(item), {"verdict": "disagree", "note": "the vendor is on the block list"}
    )
    assert response.status_code == 302
    finding = QaFinding.objects.get()
    assert (finding.agrees, finding.note) == (False, "the vendor is on the block list")
    [row] = selectors.calibration_report("wait-review")
    assert (row.cell, row.policy_version, row.checked, row.disagreed) == (AUTO_CELL, 1, 1, 1)


def test_a_double_submit_records_one_finding_and_says_so(bob_qa, run_all):
    item = taken_item(bob_qa, run_all)
    first = bob_qa.post(item_url(item), {"verdict": "agree"})
    second = bob_qa.post(item_url(item), {"verdict": "agree"}, follow=True)
    assert first.status_code == 302
    assert second.redirect_chain == [(QA_LIST, 302)]
    assert "already finished; nothing was recorded again" in second.content.decode()
    assert QaFinding.objects.count() == 1


def test_a_finding_the_service_refuses_leaves_the_item_claimed(bob_qa, run_all, bob):
    item = taken_item(bob_qa, run_all)
    services.qa_finding_record(step_run=item.step_run, reviewer=bob, agrees=True)
    response = bob_qa.post(item_url(item), {"verdict": "disagree", "note": "on second thought"})
    assert response.status_code == 409
    assert "this reviewer has already checked this approval" in response.content.decode()
    assert QaFinding.objects.get().agrees is True
    item.refresh_from_db()
    assert item.state == ItemState.CLAIMED  # completing it was rolled back with the finding


def test_a_finished_item_sends_its_reviewer_back_to_the_list(bob_qa, run_all):
    item = taken_item(bob_qa, run_all)
    bob_qa.post(item_url(item), {"verdict": "agree"})
    response = bob_qa.get(item_url(item), follow=True)
    assert response.redirect_chain == [(QA_LIST, 302)]
    assert "This QA item is already finished." in response.content.decode()


def test_another_reviewer_gets_404_on_bobs_item(world, bob_qa, run_all, client, carol):
    item = taken_item(bob_qa, run_all)
    qa_reviewer(carol, world["qa"])
    client.force_login(carol)
    assert client.get(item_url(item)).status_code == 404
    assert client.post(item_url(item), {"verdict": "agree"}).status_code == 404
    missing = reverse("review:qa_item", args=[item.pk + 1000])
    assert client.get(missing).status_code == 404  # same answer as for an item that exists
    assert not QaFinding.objects.exists()
    item.refresh_from_db()
    assert item.state == ItemState.CLAIMED


def test_mallory_is_refused_the_list_and_finds_no_item(bob_qa, run_all, client, mallory):
    item = taken_item(bob_qa, run_all)
    client.force_login(mallory)
    assert client.get(QA_LIST).status_code == 403
    assert client.post(QA_LIST).status_code == 403
    assert client.get(item_url(item)).status_code == 404
    assert client.post(item_url(item), {"verdict": "agree"}).status_code == 404
    assert not QaFinding.objects.exists()


@pytest.mark.parametrize("person", ["maria", "audrey", "adam"])
def test_people_without_a_review_role_may_not_work_qa(world, client, person, request):
    client.force_login(request.getfixturevalue(person))
    assert client.get(QA_LIST).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for url in (QA_LIST, reverse("review:qa_item", args=[1])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_taking_with_nothing_waiting_says_so(bob_qa):
    response = bob_qa.post(QA_LIST, follow=True)
    assert response.redirect_chain == [(QA_LIST, 302)]
    assert "No QA item is waiting for you right now." in response.content.decode()


def test_taking_at_capacity_says_so(bob_qa, run_all, bob):
    ReviewerProfile.objects.filter(user=bob).update(capacity=1)
    taken_item(bob_qa, run_all, ref="INV-1")
    approved_automatically(run_all, ref="INV-2")
    response = bob_qa.post(QA_LIST, follow=True)
    assert "You are at your capacity" in response.content.decode()
    assert WorkItem.objects.filter(assignee=bob).count() == 1


def test_a_reviewer_without_a_profile_is_told_why_nothing_comes(world, run_all, client, alice):
    queue_grant(queue=world["qa"], user=alice, actor=system)
    approved_automatically(run_all)
    client.force_login(alice)
    response = client.post(QA_LIST, follow=True)
    assert "You have no reviewer profile yet" in response.content.decode()


def test_the_payload_is_shown_escaped(bob_qa, run_all):
    payload = {"amount": "500", "vendor": "<script>alert('x')</script>"}
    item = taken_item(bob_qa, run_all, payload=payload)
    html = bob_qa.get(item_url(item)).content.decode()
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html


def test_the_qa_list_reads_a_fixed_number_of_queries(bob_qa, run_all, django_assert_num_queries):
    for n in range(3):
        approved_automatically(run_all, ref=f"INV-{n}")
        take(bob_qa)
    # session, user, roles; held items with their cases, workflows and step runs
    # joined; the waiting count with the workable queues as a subquery
    with django_assert_num_queries(5):
        response = bob_qa.get(QA_LIST)
    assert len(re.findall(r'href="/review/qa/\d+/"', response.content.decode())) == 3
