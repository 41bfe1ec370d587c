"""A real browser: Debian's Chromium, headless, driven by Playwright for Python."""

import pytest

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alice_signs_in_and_lands_on_her_review_inbox(alice, live_server, page):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # A reviewer's home is the review inbox.
    page.wait_for_url(f"{live_server.url}/review/")
    assert page.get_by_role("heading", name="Your review inbox").is_visible()
    assert page.get_by_role("button", name="Sign out").is_visible()
    assert page.evaluate("typeof htmx") == "object"  # htmx loaded from our own static files


def test_a_wrong_password_keeps_alice_on_the_sign_in_page(alice, live_server, page):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").is_visible()
    assert "/accounts/login/" in page.url
