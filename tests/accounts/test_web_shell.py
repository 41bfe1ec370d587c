import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")


def test_the_sign_in_page_has_the_form_and_htmx_from_django_htmx(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert 'autocomplete="current-password"' in html
    assert "/static/django_htmx/htmx" in html  # the copy django-htmx ships, no CDN
    assert "https://" not in html  # no external scripts, styles or fonts


def test_alice_signs_in_and_lands_on_her_review_inbox(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/review/"
    html = response.content.decode()
    assert "Your review inbox" in html
    assert "(reviewer)" in html


def test_a_wrong_password_is_refused_with_a_message(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_admins_land_in_their_area(client, adam):
    client.force_login(adam)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/settings/"


def test_navigation_offers_only_what_the_role_may_enter(client, alice, adam):
    client.force_login(alice)
    assert "Django admin" not in client.get("/").content.decode()
    client.force_login(adam)
    assert "Django admin" in client.get("/accounts/login/", follow=True).content.decode()


def test_someone_with_no_role_is_told_to_ask_an_admin(client, mallory):
    client.force_login(mallory)
    html = client.get("/").content.decode()
    assert "you hold no role yet" in html


def test_signing_out_takes_a_post_and_ends_the_session(client, alice):
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_forms_without_a_csrf_token_are_refused_kindly(alice):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


def test_unknown_pages_get_the_friendly_404(client, alice):
    client.force_login(alice)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html
    assert "/no/such/page/" in html


def test_non_staff_are_kept_out_of_the_django_admin(client, alice):
    client.force_login(alice)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_friendly_error_pages_render(rf, alice):
    from config.views import permission_denied, server_error

    request = rf.get("/")
    request.user = alice
    denied = permission_denied(request)
    assert denied.status_code == 403
    assert "You can't open this page" in denied.content.decode()
    broken = server_error(request)
    assert broken.status_code == 500
    assert "Something went wrong on our side" in broken.content.decode()


def test_an_unhandled_error_shows_the_500_page(alice, settings):
    from django.urls import path

    def explode(request):
        raise RuntimeError("boom")

    import config.urls

    settings.ROOT_URLCONF = type(
        "BrokenUrls",
        (),
        {
            "urlpatterns": [path("explode/", explode), *config.urls.urlpatterns],
            "handler500": "config.views.server_error",
        },
    )
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/explode/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
