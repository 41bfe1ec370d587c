"""The reviewer workspace in a real browser: taking the next item, reading sources and
the diff, inline edits with htmx, verdicts, four-eyes, inert case content, keyboard
shortcuts, layout and focus, and screenshots kept as test artifacts."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Locator, Page, expect

from review.models import Decision
from review.services import item_token
from routing.models import ItemState, Queue, WorkItem
from routing.services import work_item_claim_next
from tests.review.workspace import queues, staff
from tests.review.workspace import review_item as _review_item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"

# Case content that would run if any of it reached the page as markup.
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
JS_URL = "javascript:window.__pwned=3"
JS_LINK = '<a href="javascript:window.__pwned=4">click</a>'
ALERTS = "<script>alert(1)</script><img src=x onerror=alert(2)><svg onload=alert(3)>"
STYLE = "<style>main{display:none}</style>"


@pytest.fixture
def invoices(transactional_db: None) -> Queue:
    return queues()[0]


def review_item(queue: Queue, **case: Any) -> WorkItem:
    """A queued review item (outside a test transaction, so the audit record needs one)."""
    with transaction.atomic():
        return _review_item(queue, **case)


def workspace_url(live_server: Any, item: WorkItem) -> str:
    return f"{live_server.url}/review/items/{item.pk}/"


def take_next_item(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Next item").click()


def region(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def sign_out(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def test_alice_takes_the_next_item_edits_a_field_and_approves(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    sign_in("alice")
    page.goto(f"{live_server.url}/review/")
    take_next_item(page)
    assert page.url == workspace_url(live_server, item)

    sources = region(page, "Sources")
    expect(sources.locator("pre.source-text")).to_contain_text("Total 1,250.00 EUR")
    expect(sources.locator(".json-tree summary", has_text="vendor")).to_be_visible()
    expect(sources.get_by_role("columnheader", name="item")).to_be_visible()
    expect(sources.get_by_role("cell", name="bolts")).to_be_visible()
    link = sources.get_by_role("link", name="https://erp.example/v/1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    vendor = region(page, "Proposed against submitted").get_by_role(
        "row", name=re.compile("^vendor")
    )
    expect(vendor.locator("del")).to_have_text("Ltd")
    expect(vendor.locator("ins")).to_have_text("Limited")

    # The inline edit swaps the values panel in place: same URL, same window.
    page.evaluate("window.__samePage = true")
    page.get_by_label("New value for amount").fill("1300.5")
    values = region(page, "Values to decide on")
    values.get_by_role("row", name=re.compile("^amount")).get_by_role("button", name="Save").click()
    notice = values.get_by_role("status")
    expect(notice).to_have_text("amount changed.")
    expect(notice).to_be_focused()
    expect(values.get_by_role("row", name=re.compile("^amount"))).to_contain_text("1300.5")
    expect(values.locator(".edit-log")).to_contain_text("1250.0 → 1300.5")
    assert page.url == workspace_url(live_server, item)
    assert page.evaluate("window.__samePage") is True

    page.get_by_label("Approve", exact=True).check()
    page.get_by_label("Proposal corrected against the source").check()
    page.get_by_label(re.compile("^Rationale")).fill("the invoice total is 1,300.50")
    with page.expect_navigation():
        page.get_by_role("button", name="Submit verdict").click()
    assert page.url == f"{live_server.url}/review/"
    expect(page.locator(".message-success")).to_contain_text("Approve:")
    expect(page.get_by_text("You hold no items.")).to_be_visible()

    item.refresh_from_db()
    item.case.refresh_from_db()
    assert item.state == ItemState.DONE
    assert item.case.status == "approved"
    assert item.case.proposed["amount"] == 1300.5
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.verdict) == (alice, "approve")
    assert decision.rationale == (
        "Proposal corrected against the source; the invoice total is 1,300.50"
    )


def test_a_four_eyes_item_is_approved_by_alice_then_bob(
    live_server, page, sign_in, invoices, alice, bob
):
    staff(invoices, alice, bob)
    item = review_item(invoices, kind="four_eyes")
    sign_in("alice")
    page.goto(f"{live_server.url}/review/")
    take_next_item(page)
    expect(page.get_by_text("Maker: your verdict goes to a checker next.")).to_be_visible()
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label(re.compile("^Rationale")).fill("alice: matches the invoice")
    with page.expect_navigation():
        page.get_by_role("button", name="Submit verdict").click()
    expect(page.locator(".message-success")).to_contain_text("now waits for a checker")

    take_next_item(page)  # her own item is not hers to check
    assert page.url == f"{live_server.url}/review/"
    expect(page.locator(".messages")).to_contain_text("Nothing is waiting for you right now")

    sign_out(page)
    sign_in("bob")
    page.goto(f"{live_server.url}/review/")
    take_next_item(page)
    assert page.url == workspace_url(live_server, item)
    maker = region(page, "The maker's verdict")
    expect(maker).to_contain_text("alice chose approve")
    expect(maker).to_contain_text("alice: matches the invoice")
    expect(page.get_by_text("Checker: confirm or dispute alice's verdict.")).to_be_visible()
    page.get_by_role("radio", name="Approve (agree if the maker approved)").check()
    page.get_by_label("Matches the source documents").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Submit verdict").click()
    expect(page.locator(".message-success")).to_contain_text("Approve:")

    item.refresh_from_db()
    assert item.state == ItemState.DONE
    assert list(Decision.objects.order_by("id").values_list("role", "reviewer__username")) == [
        ("maker", "alice"),
        ("checker", "bob"),
    ]


def test_alice_cannot_check_her_own_item(live_server, page, sign_in, invoices, alice, bob):
    staff(invoices, alice, bob)
    item = review_item(invoices, kind="four_eyes")
    sign_in("alice")
    page.goto(f"{live_server.url}/review/")
    take_next_item(page)
    # A second tab keeps the form as it was before her maker verdict.
    stale = page.context.new_page()
    stale.goto(page.url)
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label(re.compile("^Rationale")).fill("as maker")
    with page.expect_navigation():
        page.get_by_role("button", name="Submit verdict").click()

    page.goto(workspace_url(live_server, item))
    expect(page.get_by_text("Read only: it waits for a checker.")).to_be_visible()
    expect(page.locator("#verdict-form")).to_have_count(0)
    expect(page.locator("[data-edit-field]")).to_have_count(0)

    stale.get_by_label("Approve", exact=True).check()
    stale.get_by_label(re.compile("^Rationale")).fill("as checker")
    with stale.expect_navigation():
        stale.get_by_role("button", name="Submit verdict").click()
    expect(stale.locator(".message-warning")).to_contain_text(
        "This item changed since you opened it"
    )
    expect(stale.locator(".message-warning")).to_contain_text("nothing was recorded")
    expect(stale.locator("#verdict-form")).to_have_count(0)

    # A checker's form forged with the item's current token: she still does not hold it.
    item.refresh_from_db()
    with page.expect_navigation():
        page.evaluate(
            """([action, token]) => {
                const form = Object.assign(document.createElement("form"),
                    {method: "post", action: action});
                const fields = {
                    csrfmiddlewaretoken: document.querySelector(
                        "[name=csrfmiddlewaretoken]").value,
                    token: token, verdict: "approve", rationale: "as checker",
                };
                for (const [name, value] of Object.entries(fields)) {
                    form.append(Object.assign(document.createElement("input"),
                        {type: "hidden", name: name, value: value}));
                }
                document.body.append(form);
                form.submit();
            }""",
            [f"/review/items/{item.pk}/decide/", item_token(item)],
        )
    expect(page.get_by_role("alert")).to_contain_text(
        "Nothing was recorded: You do not hold this item"
    )
    expect(page.locator("#verdict-form")).to_have_count(0)

    item.refresh_from_db()
    assert (item.state, item.maker, item.assignee) == (ItemState.AWAITING_CHECKER, alice, None)
    assert list(Decision.objects.values_list("role", "reviewer__username")) == [("maker", "alice")]


def test_untrusted_case_content_renders_inert(live_server, page, sign_in, invoices, alice):
    staff(invoices, alice)
    safe_link = f'{live_server.url}/review/?q="><img src=x onerror=alert(5)>'
    item = review_item(
        invoices,
        payload={"note": SCRIPT + IMG, "memo": ALERTS},
        proposed={"note": SCRIPT + IMG + " checked", "memo": ALERTS + STYLE, "link": JS_LINK},
        sources=[
            {"title": SCRIPT, "kind": "text", "content": f"{JS_LINK}\n{IMG}\n{ALERTS}\n{STYLE}"},
            {"title": IMG, "kind": "url", "url": JS_URL},
            {"title": "mixed case", "kind": "url", "url": " JaVaScRiPt:alert(4)"},
            {"title": "tree", "kind": "json", "content": {SCRIPT: [IMG, JS_LINK, ALERTS]}},
            {"title": "table", "kind": "table", "content": [{SCRIPT: IMG, "link": JS_LINK}]},
            {"title": ALERTS, "kind": "url", "url": safe_link},
        ],
    )
    assert work_item_claim_next(reviewer=alice) == item
    dialogs: list[str] = []

    def record_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record_dialog)
    sign_in("alice")
    page.goto(workspace_url(live_server, item))
    expect(page.locator("main")).to_be_visible()

    sources = region(page, "Sources")
    for raw in (SCRIPT, IMG, JS_URL, JS_LINK, ALERTS, STYLE, "JaVaScRiPt:alert(4)"):
        expect(sources).to_contain_text(raw)
    expect(region(page, "Proposed against submitted")).to_contain_text(SCRIPT + IMG + " checked")
    expect(region(page, "Values to decide on")).to_contain_text(JS_LINK)
    assert page.locator('a[href^="javascript:" i], main script, main img, main style').count() == 0

    links = sources.get_by_role("link")
    expect(links).to_have_count(1)
    for n in range(links.count()):
        with page.context.expect_page() as opened:
            links.nth(n).click()
        popup = opened.value
        popup.wait_for_load_state()
        assert popup.url.startswith(f"{live_server.url}/review/?q=")
        assert popup.evaluate("window.opener") is None  # rel="noopener"
        popup.close()
    for key in ("?", "?", "a"):
        page.keyboard.press(key)
    page.locator("main").focus()
    page.keyboard.press("e")
    page.keyboard.press("Enter")  # saves the first value unchanged: the panel swaps
    expect(region(page, "Values to decide on").get_by_role("alert")).to_have_text(
        "link already has that value"
    )
    expect(region(page, "Values to decide on")).to_contain_text(JS_LINK)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    # The probes work: markup that did reach the page would run and be caught.
    page.evaluate("() => window.alert('probe')")
    assert dialogs == ["probe"]
    page.locator("main").evaluate("(main, html) => main.insertAdjacentHTML('beforeend', html)", IMG)
    page.wait_for_function("window.__pwned === 2")


def test_keyboard_shortcuts_choose_a_verdict_focus_fields_and_toggle_the_legend(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    page.goto(workspace_url(live_server, item))
    approve = page.get_by_label("Approve", exact=True)
    reject = page.get_by_label("Reject", exact=True)
    rationale = page.get_by_label(re.compile("^Rationale"))

    page.keyboard.press("a")
    expect(approve).to_be_checked()
    expect(rationale).to_be_focused()

    page.locator("main").focus()
    page.keyboard.press("r")
    expect(reject).to_be_checked()
    expect(rationale).to_be_focused()
    page.keyboard.type("a rationale, approved by nobody")
    expect(rationale).to_have_value("a rationale, approved by nobody")
    expect(reject).to_be_checked()
    expect(approve).not_to_be_checked()

    legend = page.get_by_role("complementary", name="Keyboard shortcuts")
    expect(legend).to_be_visible()
    page.locator("main").focus()
    page.keyboard.press("?")
    expect(legend).to_be_hidden()
    page.keyboard.press("?")
    expect(legend).to_be_visible()

    page.keyboard.press("e")
    first_edit = page.locator("[data-edit-field]").first
    expect(first_edit).to_be_focused()
    expect(first_edit).to_have_accessible_name("New value for amount")
    page.keyboard.type("a")  # typing in the field is not a shortcut
    expect(first_edit).to_have_value("a")
    expect(reject).to_be_checked()

    page.locator("main").focus()
    with page.expect_navigation():
        page.keyboard.press("n")
    assert page.url == f"{live_server.url}/review/"
    expect(page.locator(".messages")).to_contain_text("Nothing is waiting for you right now")


def test_at_1280_by_800_the_sources_and_the_verdict_sit_side_by_side(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in("alice")
    page.goto(workspace_url(live_server, item))
    sources = region(page, "Sources").bounding_box()
    verdict = page.locator("#verdict-form").bounding_box()
    assert sources is not None and verdict is not None
    assert verdict["x"] >= sources["x"] + sources["width"]
    assert verdict["y"] < sources["y"] + sources["height"]  # beside it, not below
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.goto(f"{live_server.url}/review/")
    expect(page.get_by_role("region", name="Items you hold").get_by_role("row")).to_have_count(2)
    assert page.evaluate(NO_SIDEWAYS_SCROLL)


@pytest.fixture
def narrow(page: Page) -> Page:
    page.set_viewport_size({"width": 390, "height": 844})
    return page


def test_on_a_narrow_screen_the_workspace_stacks(live_server, narrow, sign_in, invoices, alice):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    narrow.goto(workspace_url(live_server, item))
    sources = region(narrow, "Sources").bounding_box()
    verdict = narrow.locator("#verdict-form").bounding_box()
    assert sources is not None and verdict is not None
    assert verdict["y"] >= sources["y"] + sources["height"]
    assert verdict["x"] < sources["x"] + sources["width"]  # below it, not beside


def test_on_a_narrow_screen_the_workspace_does_not_scroll_sideways(
    live_server, narrow, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    narrow.goto(workspace_url(live_server, item))
    expect(region(narrow, "Sources")).to_be_visible()
    assert narrow.evaluate(NO_SIDEWAYS_SCROLL)


def test_on_a_narrow_screen_the_inbox_does_not_scroll_sideways(
    live_server, narrow, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    narrow.goto(f"{live_server.url}/review/")
    expect(narrow.get_by_role("region", name="Items you hold").get_by_role("row")).to_have_count(2)
    assert narrow.evaluate(NO_SIDEWAYS_SCROLL)


def test_every_control_of_the_workspace_has_a_label_and_errors_take_the_focus(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    page.goto(workspace_url(live_server, item))
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.outerHTML)"""
    )
    assert unlabelled == []

    # A value of the wrong type: the panel swaps in place and its alert takes the focus.
    page.get_by_label("New value for amount").fill("lots")
    page.get_by_label("New value for amount").press("Enter")
    alert = region(page, "Values to decide on").get_by_role("alert")
    expect(alert).to_have_text("amount is a number, not 'lots'")
    expect(alert).to_be_focused()
    expect(page.get_by_label("New value for amount")).to_have_attribute("aria-invalid", "true")

    # A verdict without a rationale: the page comes back with the error focused.
    page.get_by_label("Approve", exact=True).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Submit verdict").click()
    error = page.locator("#workspace-error")
    expect(error).to_contain_text("Nothing was recorded: Give a rationale")
    expect(error).to_be_focused()
    expect(page.get_by_label(re.compile("^Rationale"))).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Approve", exact=True)).to_be_checked()
    assert not Decision.objects.exists()


def test_the_bell_refreshing_does_not_steal_the_focus_after_an_edit(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    sign_in("alice")
    page.goto(workspace_url(live_server, item))
    page.get_by_label("New value for amount").fill("1300")
    page.get_by_label("New value for amount").press("Enter")
    expect(region(page, "Values to decide on").get_by_role("status")).to_be_focused()
    rationale = page.get_by_label(re.compile("^Rationale"))
    rationale.click()
    rationale.type("half a sent")
    # What the bell's `every 30s` poll does, without waiting 30 seconds.
    page.evaluate(
        """() => new Promise(resolve => {
            document.body.addEventListener(
                'htmx:afterSettle', () => setTimeout(resolve, 0), {once: true});
            htmx.trigger(document.body, 'notifications-changed');
        })"""
    )
    # The swap is over, so look once instead of waiting for the focus to come back.
    focused = page.evaluate("document.activeElement.id || document.activeElement.textContent")
    assert focused == "rationale"


def test_screenshots_of_the_inbox_and_the_workspace_are_kept(
    live_server, page, sign_in, invoices, alice
):
    staff(invoices, alice)
    item = review_item(invoices)
    assert work_item_claim_next(reviewer=alice) == item
    artifacts = Path(os.environ.get("ARBITER_ARTIFACTS_DIR") or REPO / "var" / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in("alice")
    page.goto(f"{live_server.url}/review/")
    expect(page.get_by_role("heading", name="Your review inbox")).to_be_visible()
    page.screenshot(path=artifacts / "inbox.png", full_page=True)
    page.goto(workspace_url(live_server, item))
    expect(region(page, "Sources")).to_be_visible()
    page.screenshot(path=artifacts / "workspace.png", full_page=True)
    for name in ("inbox.png", "workspace.png"):
        data = (artifacts / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name
