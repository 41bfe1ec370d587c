"""Changes to people and roles are kept twice: as history rows and as audit events."""

import pytest
from django.contrib.auth.models import Group, Permission

from accounts.roles import Role
from accounts.services import user_ensure
from audit.models import AuditAction, AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_creating_a_user_is_audited_and_kept_in_history():
    user, _ = user_ensure(
        username="dora", password="x-long-password", roles=[Role.REVIEWER], reason="new hire"
    )
    created = AuditEvent.objects.get(action=AuditAction.USER_CREATED, object_id=str(user.pk))
    assert created.after == {"username": "dora", "is_staff": False, "is_superuser": False}
    assert created.reason == "new hire"
    roles = AuditEvent.objects.get(action=AuditAction.USER_ROLES_CHANGED, object_id=str(user.pk))
    assert (roles.before, roles.after) == ({"roles": []}, {"roles": ["reviewer"]})
    first = user.history.earliest()  # type: ignore[attr-defined]
    assert first.history_type == "+"
    assert first.history_change_reason == "new hire"
    assert not hasattr(first, "password")  # hashes stay out of history


def test_an_admin_changing_roles_in_the_django_admin_is_the_recorded_actor(client, alice):
    from django.contrib.auth import get_user_model

    superuser = get_user_model().objects.create_superuser("root", "root@example.test", PASSWORD)
    client.force_login(superuser)
    checker = Group.objects.get(name=Role.CHECKER)
    reviewer = Group.objects.get(name=Role.REVIEWER)
    response = client.post(
        f"/admin/auth/user/{alice.pk}/change/",
        {
            "username": "alice",
            "first_name": "Alice",
            "last_name": "",
            "email": "alice@example.test",
            "is_active": "on",
            "groups": [reviewer.pk, checker.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "09:00:00",
            "change_reason": "alice passed checker training",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.filter(
        action=AuditAction.USER_ROLES_CHANGED, object_id=str(alice.pk)
    ).latest("id")
    assert event.actor_name == "root"
    assert event.after == {"roles": ["checker", "reviewer"]}
    assert event.client_ip == "127.0.0.1"
    assert event.reason == "alice passed checker training"
    latest = alice.history.latest()
    assert latest.history_user == superuser  # who; simple-history also keeps when
    assert latest.history_type == "~"
    assert latest.history_change_reason == "alice passed checker training"


def test_an_admin_change_without_a_reason_is_refused(admin_client, alice):
    response = admin_client.post(
        f"/admin/auth/user/{alice.pk}/change/",
        {
            "username": "alice-renamed",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "09:00:00",
        },
    )
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_removing_people_from_a_group_is_audited_from_the_group_side_too(alice, bob):
    reviewers = Group.objects.get(name=Role.REVIEWER)
    reviewers.user_set.remove(alice, bob)
    changes = AuditEvent.objects.filter(
        action=AuditAction.USER_ROLES_CHANGED, after={"roles": []}
    ).values_list("object_id", flat=True)
    assert str(alice.pk) in changes
    bob_change = AuditEvent.objects.filter(
        action=AuditAction.USER_ROLES_CHANGED, object_id=str(bob.pk)
    ).latest("id")
    assert bob_change.after == {"roles": ["checker"]}


def test_sign_in_sign_out_and_failed_sign_in_are_audited(client, alice):
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/logout/")
    actions = list(
        AuditEvent.objects.filter(
            action__in=[
                AuditAction.USER_SIGN_IN_FAILED,
                AuditAction.USER_SIGNED_IN,
                AuditAction.USER_SIGNED_OUT,
            ]
        )
        .order_by("id")
        .values_list("action", "actor_name")
    )
    assert actions == [
        ("user.sign_in_failed", "anonymous"),
        ("user.signed_in", "alice"),
        ("user.signed_out", "alice"),
    ]
    failed = AuditEvent.objects.get(action=AuditAction.USER_SIGN_IN_FAILED)
    assert failed.after == {"username": "alice"}
    assert "wrong" not in str(failed.after)


def test_auditors_hold_view_permissions_only():
    codenames = Permission.objects.filter(group__name=Role.AUDITOR).values_list(
        "codename", flat=True
    )
    assert codenames
    assert all(c.startswith("view_") for c in codenames)
    assert {"view_auditevent", "view_user", "view_historicaluser"} <= set(codenames)


def test_auditors_read_the_django_admin_and_change_nothing(client, audrey, alice):
    assert audrey.is_staff
    client.force_login(audrey)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/auth/user/{alice.pk}/change/").status_code == 200
    assert client.get("/admin/auth/user/add/").status_code == 403
    response = client.post(f"/admin/auth/user/{alice.pk}/change/", {"username": "mallory"})
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_nobody_can_add_change_or_delete_audit_events_in_the_admin(admin_client):
    event = AuditEvent.objects.first()  # the admin user's creation
    assert event is not None
    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403
    response = admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_admin_adding_a_user_gives_the_reason_to_history_and_audit(admin_client):
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "erin",
            "usable_password": "true",
            "password1": "a-Long-enough-passphrase-42",
            "password2": "a-Long-enough-passphrase-42",
            "change_reason": "joins the KYC team",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created = AuditEvent.objects.get(action=AuditAction.USER_CREATED, after__username="erin")
    assert created.reason == "joins the KYC team"
    assert created.actor_name == "admin"
