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
    reason: str = "",
) -> tuple[AbstractUser, bool]:
    """Make sure a user exists with (at least) these roles; returns (user, created).

    An existing user keeps their password and gains any missing role, so running it
    again changes nothing. Admins and auditors are staff: admins configure through the
    Django admin, auditors read it (their permissions are view-only). The audit events
    for the new user and its roles come from accounts.signals, which also catch the
    same changes made in the Django admin.
    """
    wanted = set(roles)
    unknown = wanted - set(Role.values)
    if unknown:
        raise UnknownRole(f"unknown role(s): {', '.join(sorted(unknown))}")
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created = user is None
    if user is None:
        user = user_model(
            username=username,
            first_name=first_name,
            last_name=last_name,
            email=email,
            is_staff=superuser or bool(wanted & {Role.ADMIN, Role.AUDITOR}),
            is_superuser=superuser,
        )
        user.set_password(password)
        user._change_reason = reason or "user created"  # type: ignore[attr-defined]
        user.save()
    missing = wanted - set(user.groups.values_list("name", flat=True))
    if missing:
        user._change_reason = reason or "roles granted"  # type: ignore[attr-defined]
        user.groups.add(*Group.objects.filter(name__in=missing))
    return user, created
