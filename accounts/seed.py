"""Demo people for `manage.py seed_demo`."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from accounts.roles import Role
from accounts.services import user_ensure

# username, first name, last name, roles. Skills and regions of the reviewers come
# with their reviewer profiles (routing).
DEMO_PEOPLE: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("admin", "Ada", "Admin", (Role.ADMIN,)),
    ("manager", "Morgan", "Manager", (Role.MANAGER,)),
    ("alice", "Alice", "Anders", (Role.REVIEWER,)),
    ("bob", "Bob", "Brandt", (Role.REVIEWER, Role.CHECKER)),
    ("carol", "Carol", "Castro", (Role.REVIEWER, Role.CHECKER)),
    ("auditor", "Audrey", "Auditor", (Role.AUDITOR,)),
)


def seed_demo(log: Callable[[str], None]) -> None:
    for username, first, last, roles in DEMO_PEOPLE:
        _, created = user_ensure(
            username=username,
            password=settings.DEMO_PASSWORD,
            roles=roles,
            first_name=first,
            last_name=last,
            email=f"{username}@arbiter.example",
            superuser=username == "admin",
        )
        log(f"user {username} ({', '.join(roles)}): {'created' if created else 'exists'}")
