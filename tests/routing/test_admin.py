import pytest

from audit.models import AuditAction, AuditEvent
from routing.models import Queue, RoutingRule, SLAPolicy

pytestmark = pytest.mark.django_db


def queue_form(**overrides):
    data = {
        "name": "invoices",
        "title": "Invoices",
        "regions": "[]",
        "required_skills": "[]",
        "priority_classes": "[]",
        "wip_limit": "4",
        "strategy": "least_loaded",
        "aging_step_0": "0",
        "aging_step_1": "04:00:00",
        "aging_step": "04:00:00",
        "sla_policy": "",
        "escalation_queue": "",
        "owner": "",
        "change_reason": "new queue for the invoice team",
    }
    data.update(overrides)
    return data


def test_an_admin_adds_a_queue_with_a_reason_that_lands_in_the_audit_trail(admin_client):
    response = admin_client.post("/admin/routing/queue/add/", queue_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    queue = Queue.objects.get(name="invoices")
    assert (queue.strategy, queue.wip_limit) == ("least_loaded", 4)
    event = AuditEvent.objects.get(action=AuditAction.QUEUE_CHANGED, object_id=str(queue.pk))
    assert event.reason == "new queue for the invoice team"
    assert event.actor_name == "admin"
    assert queue.history.first().history_change_reason == "new queue for the invoice team"


def test_a_queue_change_without_a_reason_is_refused_and_nothing_is_saved(admin_client):
    response = admin_client.post("/admin/routing/queue/add/", queue_form(change_reason=""))
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    assert not Queue.objects.exists()


def test_an_sla_policy_whose_ladder_does_not_climb_is_refused(admin_client):
    response = admin_client.post(
        "/admin/routing/slapolicy/add/",
        {
            "name": "bad",
            "target": "04:00:00",
            "warn_at_percent": "75",
            "idle_limit": "",
            "reassign_after_percent": "200",
            "move_after_percent": "150",
            "calendar": "",
            "change_reason": "try",
        },
    )
    assert response.status_code == 200
    assert "move_after_percent" in response.context["adminform"].form.errors
    assert not SLAPolicy.objects.exists()


def test_routing_rules_are_edited_in_order_and_audited(admin_client):
    queue = Queue.objects.create(name="kyc", title="KYC")
    response = admin_client.post(
        "/admin/routing/routingrule/add/",
        {
            "order": "5",
            "queue": str(queue.pk),
            "kind": "",
            "region": "us",
            "skill": "kyc",
            "workflow_slug": "",
            "active": "on",
            "change_reason": "US KYC goes to the KYC team",
        },
    )
    assert response.status_code == 302
    rule = RoutingRule.objects.get()
    assert str(rule) == "#5 region=us skill=kyc -> kyc"
    assert AuditEvent.objects.filter(
        action=AuditAction.QUEUE_CHANGED, reason="US KYC goes to the KYC team"
    ).exists()


def test_work_items_are_read_only_in_the_admin(admin_client):
    assert admin_client.get("/admin/routing/workitem/add/").status_code == 403
