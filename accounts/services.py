"""Writes for people and roles."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction

from accounts.roles import Role


class UnknownRole(ValueError):
    pass


@transaction.atomic
def user_ensure(
    *,
    username: str,
    password: str,
    roles: Iterable[str],
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    superuser: bool = False,
) -> tuple[AbstractUser, bool]:
    """Make sure a user exists with (at least) these roles; returns (user, created).

    An existing user keeps their password and gains any missing role, so running it
    again changes nothing. Admins are staff, so they reach the Django admin.
    """
    wanted = set(roles)
    unknown = wanted - set(Role.values)
    if unknown:
        raise UnknownRole(f"unknown role(s): {', '.join(sorted(unknown))}")
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username,
        defaults={
            "first_name": first_name,
            "last_name": last_name,
            "email": email,
            "is_staff": superuser or Role.ADMIN in wanted,
            "is_superuser": superuser,
        },
    )
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    groups = Group.objects.filter(name__in=wanted)
    missing = wanted - {g.name for g in groups}
    for name in missing:  # the data migration makes them; this keeps a wiped DB working
        Group.objects.get_or_create(name=name)
    user.groups.add(*Group.objects.filter(name__in=wanted))
    return user, created
