"""Model permissions of each role, kept in sync after every migrate.

Reviewers and checkers work through object permissions on queues (routing); the
rest is here. Auditors may view every model and change none; managers read the
audit trail; admins hold every permission of every app.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.models import Group, Permission

from accounts.roles import Role

MANAGER_PERMISSIONS = {"audit.view_auditevent", "audit.view_auditcheckpoint"}


def sync_role_permissions(sender: AppConfig, **kwargs: Any) -> None:
    """post_migrate, once per app: give each role its share of that app's permissions."""
    using = kwargs.get("using", "default")
    perms = Permission.objects.using(using).filter(content_type__app_label=sender.label)
    if not perms.exists():
        return
    # The groups come from a data migration; make sure of them here too, since a test
    # database flush empties them while post_migrate still runs.
    groups = {name: Group.objects.using(using).get_or_create(name=name)[0] for name in Role.values}
    if Role.AUDITOR in groups:
        groups[Role.AUDITOR].permissions.add(*perms.filter(codename__startswith="view_"))
    if Role.ADMIN in groups:
        groups[Role.ADMIN].permissions.add(*perms)
    if Role.MANAGER in groups:
        wanted = [p for p in perms if f"{sender.label}.{p.codename}" in MANAGER_PERMISSIONS]
        if wanted:
            groups[Role.MANAGER].permissions.add(*wanted)
