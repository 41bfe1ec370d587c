"""Browser fixtures: Debian's Chromium, headless, driven by Playwright for Python."""

import os

import pytest

from tests.conftest import PASSWORD, chromium_path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the
    # test makes around it are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
            # While Playwright's loop runs on this thread, Django keeps its connections
            # per context, not per thread: the test's ORM calls got a connection of
            # their own, which nothing else closes (the test database could not be
            # dropped at the end of the run: "accessed by other users").
            from django.db import connections

            connections.close_all()
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def sign_in(live_server, page):
    def go(username: str) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()

    return go
