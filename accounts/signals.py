"""Audit events for people: accounts created, roles changed, sign-ins.

Django's auth and admin change users outside our services, so these hang off its
signals. Each handler records inside a transaction (a savepoint when the change
itself is in one), so the event commits with the change it describes.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import AuditAction
from audit.services import record

User = get_user_model()


def _role_names(user: Any) -> list[str]:
    return sorted(Group.objects.filter(user=user).values_list("name", flat=True))


@receiver(post_save, sender=User, dispatch_uid="accounts.audit_user_created")
def audit_user_created(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created or kwargs.get("raw"):
        return
    with transaction.atomic():
        record(
            actor=None,
            action=AuditAction.USER_CREATED,
            subject=instance,
            after={
                "username": instance.username,
                "is_staff": instance.is_staff,
                "is_superuser": instance.is_superuser,
            },
            reason=getattr(instance, "_change_reason", "") or "",
        )


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.audit_roles")
def audit_roles_changed(
    sender: type, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    # Changed from the user's side (user.groups.add) or the group's (group.user_set.add).
    users = [instance] if not reverse else list(User.objects.filter(pk__in=pk_set or ()))
    if action.startswith("pre_"):
        for user in users:
            user._roles_before = _role_names(user)
        if reverse and action == "pre_clear":
            instance._users_before = list(instance.user_set.all())
        return
    if reverse and action == "post_clear":
        users = getattr(instance, "_users_before", [])
    with transaction.atomic():
        for user in users:
            before = getattr(user, "_roles_before", None)
            after = _role_names(user)
            if before == after:
                continue
            record(
                actor=None,
                action=AuditAction.USER_ROLES_CHANGED,
                subject=user,
                before={"roles": before} if before is not None else None,
                after={"roles": after},
                reason=getattr(user, "_change_reason", "") or "",
            )


@receiver(user_logged_in, dispatch_uid="accounts.audit_signed_in")
def audit_signed_in(
    sender: type, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any
) -> None:
    with transaction.atomic():
        record(actor=user, action=AuditAction.USER_SIGNED_IN, subject=user)


@receiver(user_logged_out, dispatch_uid="accounts.audit_signed_out")
def audit_signed_out(
    sender: type, request: HttpRequest, user: AbstractBaseUser | None, **kwargs: Any
) -> None:
    if user is None:
        return
    with transaction.atomic():
        record(actor=user, action=AuditAction.USER_SIGNED_OUT, subject=user)


@receiver(user_login_failed, dispatch_uid="accounts.audit_sign_in_failed")
def audit_sign_in_failed(sender: type, credentials: dict[str, Any], **kwargs: Any) -> None:
    # Django has already masked the password in `credentials`; only the name is kept.
    username = str(credentials.get("username", ""))[:150]
    with transaction.atomic():
        record(
            actor=None,
            action=AuditAction.USER_SIGN_IN_FAILED,
            object_type="auth.user",
            object_id=username,
            after={"username": username},
        )
