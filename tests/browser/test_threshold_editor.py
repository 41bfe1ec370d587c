"""The grid editor's live preview, in a real browser (htmx swaps the editor on change)."""

import pytest

from audit.context import Actor
from orchestration import services
from tests.orchestration.conftest import with_wait_and_review

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_changing_a_cell_previews_how_recent_decisions_would_move(adam, live_server, page, sign_in):
    services.workflow_load(document=with_wait_and_review(), actor=Actor.system("test"))
    for confidence in (0.85, 0.97):  # low impact: the default grid approves both
        case = services.case_submit(
            workflow="wait-review",
            payload={"amount": "500"},
            actor=Actor.system("test"),
            confidence=confidence,
            impact="low",
        )
        services.case_signal(
            case=case, name="documents_received", data={}, actor=Actor.system("test")
        )
    sign_in("adam")
    page.goto(f"{live_server.url}/settings/thresholds/?workflow=wait-review")
    assert "0 of 2 gate decisions would change" in page.inner_text("#preview")
    page.select_option("#cell_low_2", "review")
    page.wait_for_function(
        "() => document.querySelector('#preview').innerText.includes('1 of 2 gate decisions')"
    )
    assert "action-review" in page.eval_on_selector("#cell_low_2", "e => e.closest('td').className")
    # Nothing was saved by previewing; saving needs a reason.
    with page.expect_navigation():
        page.get_by_role("button", name="Save as a new version").click()
    assert "say why the grid changes" in page.inner_text("[role=alert]")
    page.fill("#reason", "hotel invoices need a person")
    with page.expect_navigation():
        page.get_by_role("button", name="Save as a new version").click()
    assert "hotel invoices need a person" in page.inner_text("main")
    policy = services.policy_for("wait-review", "check")
    assert policy is not None
    assert policy.cells["low"][2] == "review"
