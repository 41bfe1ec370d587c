"""Demo queues, routing rules and reviewer profiles for `manage.py seed_demo`.

Routing seeds after orchestration (INSTALLED_APPS order), but the demo cases reach
their review gates only once the worker runs them, by which time these queues and
rules exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.contrib.auth import get_user_model
from guardian.shortcuts import assign_perm

from routing.models import BusinessCalendar, Queue, ReviewerProfile, RoutingRule, Skill, SLAPolicy

SKILLS = (
    ("invoices", "Invoice checking"),
    ("kyc", "Know-your-customer screening"),
    ("moderation", "Content moderation"),
)
# name -> (title, required skills, strategy, SLA policy, WIP limit)
QUEUES: tuple[tuple[str, str, list[str], str, str, int], ...] = (
    ("escalations", "Escalations", [], "pull", "", 0),
    ("invoices", "Invoices", ["invoices"], "pull", "office-4h", 0),
    ("kyc", "KYC screening", ["kyc"], "skill_match", "office-8h", 0),
    ("moderation", "Content moderation", ["moderation"], "least_loaded", "around-the-clock-1h", 6),
    ("qa", "QA of automatic approvals", [], "round_robin", "office-8h", 0),
    ("triage", "Triage: work no routing rule matched", [], "pull", "around-the-clock-1h", 0),
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
    "manager": ({"invoices": 3, "kyc": 3, "moderation": 3}, ["eu", "us", "apac"], ["escalations"]),
}


def _slas() -> dict[str, SLAPolicy]:
    office, _ = BusinessCalendar.objects.get_or_create(
        name="eu-office",
        defaults={
            "region": "eu",
            "time_zone": "Europe/Berlin",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "opens_at": dt.time(9),
            "closes_at": dt.time(17),
            "holidays": ["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"],
        },
    )
    policies = {}
    for name, target, calendar in (
        ("office-4h", dt.timedelta(hours=4), office),
        ("office-8h", dt.timedelta(hours=8), office),
        ("around-the-clock-1h", dt.timedelta(hours=1), None),
    ):
        policies[name], _ = SLAPolicy.objects.get_or_create(
            name=name,
            defaults={"target": target, "calendar": calendar, "idle_limit": dt.timedelta(hours=2)},
        )
    return policies


def seed_demo(log: Callable[[str], None]) -> None:
    for name, title in SKILLS:
        Skill.objects.get_or_create(name=name, defaults={"title": title})
    slas = _slas()
    owner = get_user_model().objects.filter(username="manager").first()
    queues = {}
    for name, title, required, strategy, sla, wip in QUEUES:
        queues[name], created = Queue.objects.get_or_create(
            name=name,
            defaults={
                "title": title,
                "required_skills": required,
                "strategy": strategy,
                "sla_policy": slas.get(sla),
                "wip_limit": wip,
                "owner": owner,
            },
        )
        if created:
            log(f"queue {name}: created ({strategy})")
    Queue.objects.exclude(name="escalations").filter(escalation_queue__isnull=True).update(
        escalation_queue=queues["escalations"]
    )
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
