from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.roles import Role, roles_of
from accounts.selectors import areas_for, home_url_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each person to the entry page of their main role.

    Reviewers go to the review inbox, managers to the dashboard, admins to settings,
    auditors to the audit search. Someone with no installed area of theirs (for
    instance no role yet) gets a page saying who they are and what they may reach.
    """
    target = home_url_for(request.user)
    if target is not None:
        return redirect(target)
    roles = roles_of(request.user)
    return render(
        request,
        "accounts/home.html",
        {
            "roles": [label for value, label in Role.choices if value in roles],
            "areas": [{"label": a.label, "url": url} for a, url in areas_for(request.user)],
        },
    )
