"""Read-side helpers for people and the parts of the product they can reach."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import NoReverseMatch, reverse

from accounts.roles import AREAS, Area, roles_of


def areas_for(user: AbstractBaseUser | AnonymousUser) -> list[tuple[Area, str]]:
    """The areas this user may enter that are installed, with their URLs, in home order."""
    if not user.is_authenticated:
        return []
    roles = roles_of(user)
    is_staff = bool(getattr(user, "is_staff", False))
    found = []
    for area in AREAS:
        allowed = bool(area.roles & roles) or (area.staff and is_staff)
        if not allowed:
            continue
        try:
            url = reverse(area.url_name)
        except NoReverseMatch:
            # The area's app has not shipped that page (yet); it is simply not offered.
            continue
        found.append((area, url))
    return found


def home_url_for(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Where this user's home is, or None when no area of theirs exists."""
    areas = areas_for(user)
    return areas[0][1] if areas else None
