import pytest
from django.core.management import call_command

from routing.models import Queue, ReviewerProfile, Skill

pytestmark = pytest.mark.django_db


def test_the_demo_has_queues_with_strategies_slas_and_an_escalation_path():
    call_command("seed_demo")
    queues = {queue.name: queue for queue in Queue.objects.select_related("sla_policy")}
    assert queues["kyc"].strategy == "skill_match"
    assert queues["moderation"].strategy == "least_loaded"
    policy = queues["invoices"].sla_policy
    assert policy is not None and policy.calendar is not None
    assert policy.calendar.time_zone == "Europe/Berlin"
    assert all(
        queue.escalation_queue == queues["escalations"]
        for name, queue in queues.items()
        if name != "escalations"
    )
    assert set(Skill.objects.values_list("name", flat=True)) == {"invoices", "kyc", "moderation"}
    for profile in ReviewerProfile.objects.all():
        profile.full_clean()  # the demo people are valid as an admin would enter them
    call_command("seed_demo")
    assert Queue.objects.count() == len(queues)
