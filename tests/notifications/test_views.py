"""The notifications page, the bell, and marking read: each person sees and changes
only their own notifications."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
LIST = "/notifications/"
BELL = "/notifications/bell/"


def read_url(note: Notification) -> str:
    return reverse("notifications:read", args=[note.pk])


def test_the_urls_are_where_the_nav_expects_them():
    assert reverse("notifications:list") == LIST
    assert reverse("notifications:bell") == BELL


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", LIST),
        ("get", BELL),
        ("post", "/notifications/1/read/"),
        ("post", "/notifications/read-all/"),
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_a_bell_poll_after_the_session_ended_changes_nothing(client):
    response = client.get(BELL, **HTMX)
    assert response.status_code == 204  # not swapped: no sign-in form in the nav bar


def test_the_page_shows_my_notifications_unread_first(client, alice, bob, notify):
    old = notify(alice, "Old and read", read_at=timezone.now())
    notify(alice, "Older unread")
    notify(alice, "Newest unread")
    notify(bob, "Bob's business")
    client.force_login(alice)
    response = client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 unread notifications." in html
    assert html.index("Newest unread") < html.index("Older unread") < html.index(old.title)
    assert "Bob&#x27;s business" not in html and "Bob's business" not in html


def test_the_page_is_paginated(client, alice, notify):
    for n in range(30):
        notify(alice, f"Note {n:02d}")
    client.force_login(alice)
    first = client.get(LIST).content.decode()
    assert "Note 29" in first and "Note 04" not in first
    assert "Page 1 of 2" in first
    second = client.get(LIST, {"page": 2}).content.decode()
    assert "Note 04" in second and "Note 29" not in second


def test_an_htmx_page_request_gets_the_list_alone(client, alice, notify):
    notify(alice, "Hello")
    client.force_login(alice)
    html = client.get(LIST, **HTMX).content.decode()
    assert 'id="notification-list"' in html
    assert "<html" not in html


def test_marking_one_read(client, alice, notify):
    note = notify(alice)
    client.force_login(alice)
    response = client.post(read_url(note))
    assert response.status_code == 302
    assert response["Location"] == LIST
    note.refresh_from_db()
    assert note.read_at is not None


def test_marking_one_read_again_keeps_the_first_time(client, alice, notify):
    note = notify(alice)
    client.force_login(alice)
    client.post(read_url(note))
    note.refresh_from_db()
    first = note.read_at
    client.post(read_url(note))
    note.refresh_from_db()
    assert note.read_at == first


def test_marking_one_read_with_htmx_swaps_the_item_and_rings_the_bell(client, alice, notify):
    note = notify(alice, "First")
    notify(alice, "Second")
    client.force_login(alice)
    response = client.post(read_url(note), **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "notifications-changed"
    html = response.content.decode()
    assert f'id="notification-{note.pk}"' in html
    assert "Mark as read" not in html
    assert 'hx-swap-oob="innerHTML"' in html and "1 unread notification." in html


def test_opening_a_notification_marks_it_read_and_goes_there(client, alice, notify):
    note = notify(alice, url="/review/items/7/")
    client.force_login(alice)
    response = client.post(read_url(note), {"open": "1"})
    assert response.status_code == 302
    assert response["Location"] == "/review/items/7/"
    note.refresh_from_db()
    assert note.read_at is not None


def test_a_notification_never_sends_anyone_off_site(client, alice, notify):
    note = notify(alice, url="https://evil.example/phish")
    client.force_login(alice)
    response = client.post(read_url(note), {"open": "1"})
    assert response["Location"] == LIST


def test_marking_all_read_marks_only_mine(client, alice, bob, notify):
    notify(alice)
    notify(alice)
    theirs = notify(bob)
    client.force_login(alice)
    response = client.post(reverse("notifications:read_all"))
    assert response.status_code == 302
    assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mallory_cannot_read_or_mark_alices_notification(client, alice, mallory, notify):
    note = notify(alice, "Alice's secret escalation")
    client.force_login(mallory)
    assert client.post(read_url(note)).status_code == 404
    assert client.post(read_url(note), {"open": "1"}).status_code == 404
    assert client.post(read_url(note), **HTMX).status_code == 404
    assert "secret escalation" not in client.get(LIST).content.decode()
    client.post(reverse("notifications:read_all"))
    note.refresh_from_db()
    assert note.read_at is None


def test_marking_read_needs_a_post(client, alice, notify):
    note = notify(alice)
    client.force_login(alice)
    assert client.get(read_url(note)).status_code == 405
    note.refresh_from_db()
    assert note.read_at is None


def test_the_bell_says_how_many_are_unread_in_words(client, alice, bob, notify):
    notify(alice)
    notify(alice)
    notify(alice)
    notify(alice, read_at=timezone.now())
    notify(bob)
    client.force_login(alice)
    html = client.get(BELL, **HTMX).content.decode()
    assert 'aria-label="3 unread notifications"' in html
    assert '<span class="bell-count">3</span>' in html
    assert 'href="/notifications/"' in html


def test_the_bell_with_nothing_unread(client, alice):
    client.force_login(alice)
    html = client.get(BELL, **HTMX).content.decode()
    assert 'aria-label="No unread notifications"' in html
    assert "bell-count" not in html


def test_the_bell_caps_a_long_count_but_names_it_exactly(client, alice, notify):
    Notification.objects.bulk_create(
        Notification(user=alice, title="x", topic="t", event_id=f"00000000-0000-0000-0000-{n:012d}")
        for n in range(120)
    )
    client.force_login(alice)
    html = client.get(BELL).content.decode()
    assert 'aria-label="120 unread notifications"' in html
    assert '<span class="bell-count">99+</span>' in html


def test_the_bell_is_one_count_query(client, alice, notify, django_assert_num_queries):
    notify(alice)
    client.force_login(alice)
    client.get(BELL)  # warm up the session
    # The session, the user, the count: polled every 30 s by every open page.
    with django_assert_num_queries(3):
        client.get(BELL, **HTMX)


def test_every_page_of_a_signed_in_person_polls_the_bell(client, alice):
    client.force_login(alice)
    html = client.get(LIST).content.decode()
    assert 'hx-get="/notifications/bell/"' in html
    assert 'hx-trigger="load, every 30s' in html


def test_signed_out_pages_have_no_bell(client):
    html = client.get(reverse("login")).content.decode()
    assert "/notifications/bell/" not in html


def test_turning_email_off_and_on(client, alice):
    client.force_login(alice)
    response = client.post(reverse("notifications:preferences"), {})
    assert response.status_code == 302
    assert alice.notification_preference.email_enabled is False
    assert "checked" not in client.get(LIST).content.decode().split('id="email_enabled"')[1][:40]
    client.post(reverse("notifications:preferences"), {"email_enabled": "on"})
    alice.notification_preference.refresh_from_db()
    assert alice.notification_preference.email_enabled is True
