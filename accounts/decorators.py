"""View guards by role: signed in (else to sign-in), holding one of the roles (else 403)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from accounts.roles import Role, roles_of

View = Callable[..., HttpResponse]
MANAGING_ROLES = frozenset({Role.MANAGER, Role.ADMIN})


def roles_required(roles: Iterable[str], message: str) -> Callable[[View], View]:
    """Let through signed-in people holding any of `roles`; others get 403 with
    `message`, anonymous visitors the sign-in page."""
    allowed = frozenset(roles)

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not roles_of(request.user) & allowed:
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return login_required(guarded)

    return decorate


managers_only = roles_required(MANAGING_ROLES, "The dashboard is for managers and admins.")
