"""Demo queues, routing rules and reviewer profiles for `manage.py seed_demo`.

Routing seeds after orchestration (INSTALLED_APPS order), but the demo cases reach
their review gates only once the worker runs them, by which time these queues and
rules exist.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm

from routing.models import Queue, ReviewerProfile, RoutingRule

QUEUES: tuple[tuple[str, str, list[str]], ...] = (
    ("invoices", "Invoices", ["invoices"]),
    ("kyc", "KYC screening", ["kyc"]),
    ("moderation", "Content moderation", ["moderation"]),
    ("qa", "QA of automatic approvals", []),
    ("triage", "Triage: work no routing rule matched", []),
)
RULES = (
    (10, "qa", {"kind": "qa"}),
    (20, "invoices", {"skill": "invoices"}),
    (30, "kyc", {"skill": "kyc"}),
    (40, "moderation", {"skill": "moderation"}),
)
PEOPLE: dict[str, tuple[dict[str, int], list[str], list[str]]] = {
    "alice": ({"invoices": 4, "moderation": 2}, ["eu"], ["invoices", "moderation"]),
    "bob": ({"invoices": 3, "kyc": 5}, ["eu", "us"], ["invoices", "kyc", "qa"]),
    "carol": ({"kyc": 3, "moderation": 5}, ["us", "apac"], ["kyc", "moderation", "qa"]),
}


def seed_demo(log: Callable[[str], None]) -> None:
    queues = {}
    for name, title, required in QUEUES:
        queues[name], created = Queue.objects.get_or_create(
            name=name, defaults={"title": title, "required_skills": required}
        )
        if created:
            log(f"queue {name}: created")
    for order, queue, conditions in RULES:
        RoutingRule.objects.get_or_create(order=order, queue=queues[queue], defaults=conditions)
    users = get_user_model().objects
    for username, (skills, regions, queue_names) in PEOPLE.items():
        user = users.filter(username=username).first()
        if user is None:
            continue
        ReviewerProfile.objects.get_or_create(
            user=user, defaults={"skills": skills, "regions": regions, "capacity": 5}
        )
        for name in queue_names:
            assign_perm("routing.work_on_queue", user, queues[name])
    log("queues, routing rules and reviewer profiles in place")
