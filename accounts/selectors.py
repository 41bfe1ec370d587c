"""Read-side helpers for people and the parts of the product they can reach."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import NoReverseMatch, reverse

from accounts.roles import AREAS, ROLE_HOMES, Area, roles_of


def areas_for(user: AbstractBaseUser | AnonymousUser) -> list[tuple[Area, str]]:
    """The areas this user may enter that are installed, with their URLs, in home order."""
    if not user.is_authenticated:
        return []
    roles = roles_of(user)
    is_staff = bool(getattr(user, "is_staff", False))
    found = []
    for area in AREAS:
        if not area.roles & roles or (area.staff and not is_staff):
            continue
        try:
            url = reverse(area.url_name)
        except NoReverseMatch:
            # The area's app has not shipped that page (yet); it is simply not offered.
            continue
        found.append((area, url))
    return found


def home_url_for(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Where this user's home is, or None when no page of their roles exists yet."""
    roles = roles_of(user)
    for role, url_names in ROLE_HOMES:
        if role not in roles:
            continue
        for url_name in url_names:
            try:
                return reverse(url_name)
            except NoReverseMatch:
                continue
    return None
