"""The notifications page, the bell, and marking notifications read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from notifications import selectors, services
from notifications.models import Notification

PAGE_SIZE = 25
# Sent with every change, so the bell refreshes at once instead of at its next poll.
CHANGED = "notifications-changed"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class SignedInRequest(HtmxHttpRequest):
    """A request behind @login_required: its user is a person, not AnonymousUser."""

    user: User


def _list_context(request: SignedInRequest) -> dict[str, object]:
    page = Paginator(selectors.notifications_for(request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return {
        "page": page,
        "notifications": page.object_list,
        "unread": selectors.unread_count(request.user),
        "email_enabled": selectors.email_enabled_for(request.user),
        "has_email": bool(getattr(request.user, "email", "")),
    }


def _back_to_list(request: HttpRequest) -> HttpResponse:
    page = request.POST.get("page", "")
    target = reverse("notifications:list")
    return redirect(f"{target}?page={page}" if page.isdigit() else target)


@require_GET
@login_required
def notification_list(request: SignedInRequest) -> HttpResponse:
    """The signed-in person's notifications, unread first, paginated."""
    template = "notifications/list.html#items" if request.htmx else "notifications/list.html"
    return render(request, template, _list_context(request))


@require_GET
def bell(request: HtmxHttpRequest) -> HttpResponse:
    """The unread count for the nav bar, polled by htmx."""
    if not request.user.is_authenticated:
        # A poll after the session ended: keep the bell as it is rather than swap the
        # sign-in page into the nav bar (204 is not swapped, see base.html).
        if request.htmx:
            return HttpResponse(status=204)
        return redirect_to_login(request.get_full_path())
    # Rendered without the request: the context processors (navigation, roles) would
    # cost queries on every poll of every open page, and the bell needs none of them.
    html = render_to_string(
        "notifications/bell.html", {"unread": selectors.unread_count(request.user)}
    )
    return HttpResponse(html)


@require_POST
@login_required
def mark_read(request: SignedInRequest, pk: int) -> HttpResponse:
    """Mark one notification read; with `open`, then go where it points."""
    notification = get_object_or_404(Notification, pk=pk, user_id=request.user.pk)
    services.notification_mark_read(notification=notification, actor=request.user)
    if "open" in request.POST:
        allowed = url_has_allowed_host_and_scheme(
            notification.url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
        return redirect(notification.url if notification.url and allowed else "notifications:list")
    if request.htmx:
        context = {"n": notification, "unread": selectors.unread_count(request.user)}
        response = render(request, "notifications/marked_read.html", context)
        response["HX-Trigger"] = CHANGED
        return response
    return _back_to_list(request)


@require_POST
@login_required
def mark_all_read(request: SignedInRequest) -> HttpResponse:
    """Mark every unread notification of the signed-in person read."""
    services.notifications_mark_all_read(actor=request.user)
    if request.htmx:
        response = render(request, "notifications/list.html#items", _list_context(request))
        response["HX-Trigger"] = CHANGED
        return response
    return _back_to_list(request)


@require_POST
@login_required
def preferences(request: SignedInRequest) -> HttpResponse:
    """Turn notification emails on or off."""
    enabled = request.POST.get("email_enabled") == "on"
    services.notification_preference_set(actor=request.user, email_enabled=enabled)
    messages.success(
        request,
        "Notifications will be emailed to you." if enabled else "Notification emails are off.",
    )
    return _back_to_list(request)
