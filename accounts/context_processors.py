from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.roles import roles_of
from accounts.selectors import areas_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The navigation of the base template: the areas the signed-in person may enter."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_areas": [], "user_roles": []}
    return {
        "nav_areas": [{"label": area.label, "url": url} for area, url in areas_for(user)],
        "user_roles": sorted(roles_of(user)),
    }
