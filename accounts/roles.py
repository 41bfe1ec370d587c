"""The roles of Arbiter. Each role is a Django group of the same name."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models


class Role(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    CHECKER = "checker", "Checker"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Admin"
    AUDITOR = "auditor", "Auditor"


def roles_of(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The role names a user holds; empty for anonymous users. Cached on the user object."""
    if not user.is_authenticated:
        return set()
    cached: set[str] | None = getattr(user, "_arbiter_roles", None)
    if cached is None:
        valid = set(Role.values)
        names = user.groups.values_list("name", flat=True)  # type: ignore[attr-defined]
        cached = {name for name in names if name in valid}
        user._arbiter_roles = cached  # type: ignore[attr-defined]
    return cached


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


@dataclass(frozen=True)
class Area:
    """A part of the product, the URL name of its entry page, and who it is for."""

    label: str
    url_name: str
    roles: frozenset[str]
    staff: bool = False


# In the order a person's home is chosen: the first area of theirs that exists wins.
AREAS: tuple[Area, ...] = (
    Area("Settings", "settings:index", frozenset({Role.ADMIN})),
    Area("Dashboard", "dashboard:index", frozenset({Role.MANAGER, Role.ADMIN})),
    Area("Review", "review:inbox", frozenset({Role.REVIEWER, Role.CHECKER})),
    Area("Audit", "audit:search", frozenset({Role.AUDITOR, Role.MANAGER, Role.ADMIN})),
    Area("Django admin", "admin:index", frozenset({Role.ADMIN}), staff=True),
)
