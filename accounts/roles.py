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


@dataclass(frozen=True)
class Area:
    """A part of the product, the URL name of its entry page, and who it is for.

    With `staff`, the person must also be staff (the Django admin refuses others).
    """

    label: str
    url_name: str
    roles: frozenset[str]
    staff: bool = False


# The navigation, in display order.
AREAS: tuple[Area, ...] = (
    Area("Review", "review:inbox", frozenset({Role.REVIEWER, Role.CHECKER})),
    Area("QA", "review:qa_list", frozenset({Role.REVIEWER, Role.CHECKER})),
    Area("Dashboard", "dashboard:index", frozenset({Role.MANAGER, Role.ADMIN})),
    Area("Audit", "audit:search", frozenset({Role.AUDITOR, Role.MANAGER, Role.ADMIN})),
    Area("Settings", "settings:index", frozenset({Role.ADMIN})),
    Area("Django admin", "admin:index", frozenset({Role.ADMIN, Role.AUDITOR}), staff=True),
)

# Where each role's home is, strongest role first; within a role the first page that
# exists wins (a later issue's page takes over from the fallback once it ships).
ROLE_HOMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (Role.ADMIN, ("settings:index", "admin:index")),
    (Role.MANAGER, ("dashboard:index", "audit:search")),
    (Role.REVIEWER, ("review:inbox",)),
    (Role.CHECKER, ("review:inbox",)),
    (Role.AUDITOR, ("audit:search",)),
)
