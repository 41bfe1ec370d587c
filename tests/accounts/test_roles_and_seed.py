import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.roles import Role, roles_of
from accounts.services import UnknownRole, user_ensure

pytestmark = pytest.mark.django_db


def test_every_role_is_a_group_after_migrating():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "reviewer",
        "checker",
        "manager",
        "admin",
        "auditor",
    }


def test_an_unknown_role_is_refused_and_no_user_is_made():
    with pytest.raises(UnknownRole, match="unknown role"):
        user_ensure(username="zed", password="x", roles=["overlord"])
    assert not get_user_model().objects.filter(username="zed").exists()


def test_admins_are_staff_so_they_reach_the_django_admin(adam):
    assert adam.is_staff
    assert not adam.is_superuser


def test_seed_demo_creates_the_demo_people_with_their_roles(settings):
    call_command("seed_demo")
    users = get_user_model().objects
    assert roles_of(users.get(username="alice")) == {Role.REVIEWER}
    assert roles_of(users.get(username="bob")) == {Role.REVIEWER, Role.CHECKER}
    assert roles_of(users.get(username="carol")) == {Role.REVIEWER, Role.CHECKER}
    assert roles_of(users.get(username="manager")) == {Role.MANAGER}
    assert users.get(username="admin").is_superuser
    assert authenticate(username="alice", password=settings.DEMO_PASSWORD) is not None


def test_seed_demo_twice_creates_nothing_twice():
    call_command("seed_demo")
    users_before = get_user_model().objects.count()
    memberships_before = get_user_model().groups.through.objects.count()
    call_command("seed_demo")
    assert get_user_model().objects.count() == users_before
    assert get_user_model().groups.through.objects.count() == memberships_before


def test_seed_demo_keeps_a_password_someone_changed():
    call_command("seed_demo")
    alice = get_user_model().objects.get(username="alice")
    alice.set_password("alice-chose-this-one")
    alice.save()
    call_command("seed_demo")
    assert authenticate(username="alice", password="alice-chose-this-one") is not None
