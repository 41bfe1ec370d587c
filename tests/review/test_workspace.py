"""The inbox and the item workspace through the web client: who sees what, edits,
verdicts, four-eyes and stale forms."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from review.models import Decision
from review.services import item_edit, item_token
from routing.models import ItemState, WorkItem
from routing.services import work_item_claim_next
from tests.conftest import PASSWORD
from tests.review.workspace import queues, review_item, staff
from tests.routing.helpers import reviewer

pytestmark = pytest.mark.django_db
INBOX = reverse("review:inbox")


def page(item) -> str:
    return reverse("review:item", args=[item.pk])


def signed_in(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def invoices(db):
    return queues()[0]


@pytest.fixture
def held(invoices, alice, bob):
    """A review item alice holds; bob works the same queue."""
    staff(invoices, alice, bob)
    item = review_item(invoices)
    claimed = work_item_claim_next(reviewer=alice)
    assert claimed == item
    return claimed


def decide(client, item, **data):
    item.refresh_from_db()
    form = {"token": item_token(item), "rationale": "matches the invoice", **data}
    return client.post(reverse("review:decide", args=[item.pk]), form)


def test_the_inbox_lists_what_i_hold_with_its_sla_state_in_words(client, held, alice):
    response = signed_in(client, alice).get(INBOX)
    html = response.content.decode()
    assert response.status_code == 200
    assert page(held) in html
    assert "on time" in html and "due in" in html
    assert "Invoices: <strong>0</strong> waiting for you" in html


@pytest.mark.parametrize("name", ["mallory", "maria", "audrey"])
def test_only_reviewers_have_an_inbox(client, request, name):
    person = request.getfixturevalue(name)
    assert signed_in(client, person).get(INBOX).status_code == 403
    assert client.post(reverse("review:next")).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client, held):
    for url in (INBOX, page(held)):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_next_item_claims_through_routing_and_opens_the_workspace(client, invoices, alice):
    staff(invoices, alice)
    item = review_item(invoices)
    response = signed_in(client, alice).post(reverse("review:next"))
    assert response["Location"] == page(item)
    assert WorkItem.objects.get(pk=item.pk).assignee == alice
    response = client.post(reverse("review:next"), follow=True)
    assert "Nothing is waiting for you right now" in response.content.decode()


def test_the_holder_sees_header_sources_diff_suggestions_and_the_verdict_form(client, held, alice):
    html = signed_in(client, alice).get(page(held)).content.decode()
    for text in ("Wait and review", "Threshold cell", "Region", "on time", "Invoice text"):
        assert text in html
    assert '<a href="https://erp.example/v/1" rel="noopener noreferrer"' in html
    assert '<th scope="col">item</th>' in html  # the table source
    assert "<del>Ltd</del><ins>Limited</ins>" in html  # word-level diff of the vendor
    assert 'id="verdict-form"' in html and "New value for amount" in html
    assert "<kbd>a</kbd>" in html


def test_another_reviewer_of_the_queue_sees_the_item_read_only(client, held, bob):
    html = signed_in(client, bob).get(page(held)).content.decode()
    assert "alice holds this item" in html
    assert 'id="verdict-form"' not in html and "New value for" not in html


@pytest.mark.parametrize("name", ["carol", "mallory", "audrey"])
def test_people_outside_the_queue_get_404_and_learn_nothing(client, request, held, name):
    person = request.getfixturevalue(name)
    signed_in(client, person)
    assert client.get(page(held)).status_code == 404
    assert client.get(reverse("review:item", args=[held.pk + 1000])).status_code == 404
    assert decide(client, held, verdict="approve").status_code == 404
    assert not Decision.objects.exists()


def test_managers_see_items_of_their_regions_only(client, held, maria):
    signed_in(client, maria)
    assert client.get(page(held)).status_code == 404  # no profile, no regions
    reviewer(maria, regions=["us"])
    assert client.get(page(held)).status_code == 404
    reviewer(maria, regions=["eu"])
    html = client.get(page(held)).content.decode()
    assert "Read only" in html and 'id="verdict-form"' not in html


def test_untrusted_case_content_renders_inert(client, invoices, alice):
    staff(invoices, alice)
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    review_item(
        invoices,
        payload={"note": evil},
        proposed={"note": evil + "!"},
        sources=[
            {"title": evil, "kind": "text", "content": evil},
            {"title": "link", "kind": "url", "url": "javascript:alert(3)"},
            {"title": "tree", "kind": "json", "content": {evil: [evil]}},
            {"title": "table", "kind": "table", "content": [{evil: evil}]},
        ],
    )
    item = work_item_claim_next(reviewer=alice)
    assert item is not None
    html = signed_in(client, alice).get(page(item)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert "only http and https addresses open" in html


def test_an_inline_edit_with_htmx_returns_the_values_panel(client, held, alice):
    signed_in(client, alice)
    url = reverse("review:edit", args=[held.pk])
    form = {"token": item_token(held), "field": "amount", "value": "1300.5"}
    response = client.post(url, form, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section aria-labelledby="values-heading"')
    assert "amount changed." in html and "1300.5" in html
    bad = client.post(url, {**form, "value": "lots"}, headers={"HX-Request": "true"})
    assert bad.status_code == 400
    assert "amount is a number, not &#x27;lots&#x27;" in bad.content.decode()
    assert held.edits.count() == 1


def test_approving_with_a_rationale_completes_the_review_with_the_edits(client, held, alice):
    signed_in(client, alice)
    client.post(
        reverse("review:edit", args=[held.pk]),
        {"token": item_token(held), "field": "amount", "value": "1300"},
    )
    response = decide(client, held, verdict="approve")
    assert response.status_code == 302 and response["Location"] == INBOX
    held.refresh_from_db()
    held.case.refresh_from_db()
    assert held.state == ItemState.DONE
    assert held.case.status == "approved"
    assert held.case.proposed["amount"] == 1300.0
    decision = Decision.objects.get()
    assert (decision.role, decision.verdict, decision.edits[0]["after"]) == (
        "single",
        "approve",
        1300.0,
    )


def test_a_verdict_without_a_rationale_is_refused_and_nothing_is_recorded(client, held, alice):
    response = decide(signed_in(client, alice), held, verdict="approve", rationale="")
    assert response.status_code == 400
    assert "Give a rationale" in response.content.decode()
    assert not Decision.objects.exists()
    held.refresh_from_db()
    assert held.state == ItemState.CLAIMED


def test_a_stale_form_after_reassignment_is_refused(client, held, alice, bob, maria):
    from routing.services import work_items_reassign

    signed_in(client, alice)
    stale = item_token(held)
    work_items_reassign(item_ids=[held.pk], to_user=bob, actor=maria, reason="alice is out")
    response = client.post(
        reverse("review:decide", args=[held.pk]),
        {"token": stale, "verdict": "approve", "rationale": "ok"},
        follow=True,
    )
    assert "This item changed since you opened it" in response.content.decode()
    assert not Decision.objects.exists()


def test_a_double_submitted_verdict_records_one_decision(client, held, alice):
    signed_in(client, alice)
    form = {"token": item_token(held), "verdict": "reject", "rationale": "wrong vendor"}
    url = reverse("review:decide", args=[held.pk])
    client.post(url, form)
    response = client.post(url, form, follow=True)
    assert "already been decided" in response.content.decode()
    assert Decision.objects.count() == 1


def test_approve_and_next_lands_on_the_next_item(client, invoices, alice):
    staff(invoices, alice)
    first, second = review_item(invoices), review_item(invoices)
    signed_in(client, alice).post(reverse("review:next"))
    response = decide(client, first, verdict="approve", then="next")
    assert response["Location"] == page(second)


def test_four_eyes_maker_then_a_different_checker(client, invoices, alice, bob):
    staff(invoices, alice, bob)
    item = review_item(invoices, kind="four_eyes")
    signed_in(client, alice).post(reverse("review:next"))
    assert decide(client, item, verdict="approve").status_code == 302
    item.refresh_from_db()
    assert (item.state, item.maker, item.assignee) == (ItemState.AWAITING_CHECKER, alice, None)
    # alice cannot take her own item back as checker, nor post the checker's verdict
    response = client.post(reverse("review:next"), follow=True)
    assert "Nothing is waiting" in response.content.decode()
    refused = decide(client, item, verdict="approve")
    assert refused.status_code in (302, 409)
    assert Decision.objects.count() == 1
    # bob, a checker, takes it and sees the maker's verdict
    client.logout()
    signed_in(client, bob).post(reverse("review:next"))
    html = client.get(page(item)).content.decode()
    assert "The maker's verdict" in html and "matches the invoice" in html
    assert "Checker: confirm or dispute alice" in html
    assert decide(client, item, verdict="approve").status_code == 302
    item.refresh_from_db()
    item.case.refresh_from_db()
    assert item.state == ItemState.DONE and item.case.status == "approved"
    assert list(Decision.objects.values_list("role", "reviewer__username")) == [
        ("maker", "alice"),
        ("checker", "bob"),
    ]


def test_snoozing_parks_the_item_in_the_inbox_with_its_follow_up_time(client, held, alice):
    signed_in(client, alice)
    url = reverse("review:snooze", args=[held.pk])
    bad = client.post(url, {"token": item_token(held), "until": "2020-01-01T09:00", "reason": "x"})
    assert bad.status_code == 400 and "must be in the future" in bad.content.decode()
    too_late = (timezone.now() + dt.timedelta(days=31)).strftime("%Y-%m-%dT%H:%M")
    bad = client.post(url, {"token": item_token(held), "until": too_late, "reason": "x"})
    assert bad.status_code == 400 and "at most 30 days" in bad.content.decode()
    follow_up = timezone.localtime() + dt.timedelta(days=2)
    response = client.post(
        url,
        {
            "token": item_token(held),
            "until": follow_up.strftime("%Y-%m-%dT%H:%M"),
            "reason": "waiting on AP",
        },
    )
    assert response.status_code == 302
    inbox = client.get(INBOX).content.decode()
    snoozed = inbox[inbox.index('id="snoozed-heading"') :]
    assert "waiting on AP" in snoozed and follow_up.strftime("%Y-%m-%d %H:%M") in snoozed


def test_the_inbox_and_workspace_cost_a_fixed_number_of_queries(
    client, invoices, alice, django_assert_num_queries
):
    staff(invoices, alice)
    for _ in range(4):
        review_item(invoices)
        work_item_claim_next(reviewer=alice)
    signed_in(client, alice)
    # SQLite reads the waiting items' skill lists once more (it has no JSON containment).
    with django_assert_num_queries(7 if connection.vendor == "postgresql" else 8):
        response = client.get(INBOX)
    assert len(re.findall(r'href="/review/items/\d+/"', response.content.decode())) == 4
    item = WorkItem.objects.filter(assignee=alice).first()
    assert item is not None
    with django_assert_num_queries(10):
        assert client.get(page(item)).status_code == 200
    for amount in ("1", "2", "3"):  # more edits, same queries
        item_edit(item=item, reviewer=alice, field="amount", value=amount, token=item_token(item))
    with django_assert_num_queries(10):
        assert client.get(page(item)).status_code == 200


@pytest.mark.parametrize("name", ["carol", "mallory"])
def test_every_action_refuses_outsiders_with_404_and_records_nothing(client, request, held, name):
    signed_in(client, request.getfixturevalue(name))
    token = item_token(held)
    for url, data in (
        (reverse("review:edit", args=[held.pk]), {"field": "amount", "value": "1"}),
        (reverse("review:suggestion", args=[held.pk, 0]), {}),
        (reverse("review:decide", args=[held.pk]), {"verdict": "approve", "rationale": "x"}),
        (reverse("review:snooze", args=[held.pk]), {"until": "2099-01-01T00:00", "reason": "x"}),
    ):
        assert client.post(url, {"token": token, **data}).status_code == 404, url
    held.refresh_from_db()
    assert (held.state, held.edits.count(), Decision.objects.count()) == ("claimed", 0, 0)


def test_a_reviewer_who_may_see_but_does_not_hold_the_item_cannot_act_on_it(client, held, bob):
    signed_in(client, bob)
    token = item_token(held)
    edit = client.post(
        reverse("review:edit", args=[held.pk]), {"token": token, "field": "amount", "value": "1"}
    )
    assert edit.status_code == 409 and "You do not hold this item" in edit.content.decode()
    verdict = decide(client, held, verdict="approve")
    assert verdict.status_code == 409
    assert not Decision.objects.exists() and held.edits.count() == 0


def test_decisions_and_edits_are_in_the_case_timeline_and_evidence_pack(
    client, held, alice, audrey
):
    signed_in(client, alice)
    client.post(
        reverse("review:edit", args=[held.pk]),
        {"token": item_token(held), "field": "amount", "value": "1300"},
    )
    decide(client, held, verdict="approve", rationale="checked against the PDF")
    client.logout()
    signed_in(client, audrey)
    evidence = client.get(reverse("audit:evidence_json", args=[held.case_id])).json()
    [decision] = (
        evidence["sections"]["decisions"] if "sections" in evidence else evidence["decisions"]
    )
    assert (decision["verdict"], decision["reviewer"], decision["rationale"]) == (
        "approve",
        "alice",
        "checked against the PDF",
    )
    assert decision["edits"][0]["after"] == 1300.0
    timeline = client.get(reverse("audit:case_timeline", args=[held.case_id])).content.decode()
    assert "reviewer approve" in timeline and "checked against the PDF" in timeline
