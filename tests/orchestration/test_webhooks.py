"""Webhooks (orchestration/intake.py): fan-out from the outbox relay, signed POSTs to a
real local HTTP server, retries with backoff, dead deliveries and their replay."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from config.errors import Conflict
from orchestration import intake, services
from orchestration.backoff import backoff_ceiling
from orchestration.models import (
    OutboxEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from orchestration.outbox import relay_outbox
from tests.orchestration.conftest import three_tasks

pytestmark = pytest.mark.django_db


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers 500 to the first `failures` requests, then `then`."""

    url: str = ""
    failures: int = 0
    then: int = 204
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            if self.failures > 0:
                self.failures -= 1
                return 500
            return self.then


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.reply(state.answer(Received("POST", self.path, dict(self.headers), body)))

        def do_GET(self) -> None:  # only a followed redirect would GET: a page that says 200
            state.requests.append(Received("GET", self.path, dict(self.headers), b""))
            self.reply(200)

        def reply(self, status: int) -> None:
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def erp(adam):
    client, _ = intake.api_client_create(
        name="erp", scopes=["cases:write", "cases:read"], actor=adam
    )
    return client


@pytest.fixture
def crm(adam):
    client, _ = intake.api_client_create(
        name="crm", scopes=["cases:write", "cases:read"], actor=adam
    )
    return client


@pytest.fixture
def workflow(flow):
    return flow(three_tasks())


def submit_for(client):
    return services.case_submit(
        workflow="three-tasks",
        payload={"amount": "120.00"},
        actor=Actor.api_client(client.pk, client.name),
        client=client,
    )


def make_due(delivery: WebhookDelivery) -> None:
    """Skip the jittered backoff: the delivery is due now."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def deliver_until_done(delivery: WebhookDelivery, limit: int = 10) -> str:
    status = "pending"
    for _ in range(limit):
        make_due(delivery)
        status = intake.webhook_deliver(delivery.pk)
        if status != "pending":
            break
    return status


def log_of(delivery: WebhookDelivery) -> list[tuple[int | None, str]]:
    return [(a.status_code, a.error) for a in WebhookAttempt.objects.filter(delivery=delivery)]


def test_a_webhook_is_retried_until_the_receiver_takes_it_and_every_post_is_signed(
    receiver, erp, adam, workflow
):
    receiver.failures = 2
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    case = submit_for(erp)
    event = OutboxEvent.objects.get(case=case, topic="case.submitted")
    published, failed = relay_outbox()
    assert published >= 1 and failed == 0
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_id == event.id
    assert delivery.status == "pending"

    for attempt in (1, 2):
        make_due(delivery)
        before = timezone.now()
        assert intake.webhook_deliver(delivery.pk) == "pending"
        after = timezone.now()
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
        assert delivery.last_status_code == 500
        ceiling = dt.timedelta(seconds=backoff_ceiling(intake.WEBHOOK_RETRY, attempt))
        next_at = delivery.next_attempt_at
        assert next_at is not None and before < next_at <= after + ceiling

    make_due(delivery)
    assert intake.webhook_deliver(delivery.pk) == "delivered"
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None

    assert len(receiver.requests) == 3
    for received in receiver.requests:
        assert (received.method, received.path) == ("POST", "/hook")
        assert received.headers["Arbiter-Event-Id"] == str(event.id)
        assert received.headers["Arbiter-Event-Type"] == "case.submitted"
        assert received.headers["Content-Type"] == "application/json"
        assert intake.verify_signature(
            endpoint.secret, received.headers["Arbiter-Signature"], received.body
        )
        body = json.loads(received.body)
        assert body["id"] == str(event.id)
        assert body["type"] == "case.submitted"
        assert body["data"]["case_id"] == str(case.pk)
        assert body["correlation_id"] == str(case.correlation_id)

    assert log_of(delivery) == [(500, "HTTP 500"), (500, "HTTP 500"), (204, "")]


def test_a_delivered_webhook_is_not_posted_again(receiver, erp, adam, workflow):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["*"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint, topic="case.submitted")
    assert deliver_until_done(delivery) == "delivered"
    make_due(delivery)
    assert intake.webhook_deliver(delivery.pk) == "delivered"
    assert len(receiver.requests) == 1


def test_a_redirect_is_a_failed_attempt_not_a_delivery(receiver, erp, adam, workflow):
    """Following it would turn the POST into a bodiless GET elsewhere, and count that."""
    receiver.then = 302
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert intake.webhook_deliver(delivery.pk) == "pending"
    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/hook")]
    assert log_of(delivery)[0][0] == 302


def test_a_delivery_not_yet_due_is_not_attempted(receiver, erp, adam, workflow):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )
    assert intake.webhook_deliver(delivery.pk) == "pending"
    assert receiver.requests == []
    assert not WebhookAttempt.objects.exists()


def test_the_receiver_accepts_the_signature_and_refuses_tampering():
    secret = intake.new_webhook_secret()
    body = b'{"id":"e1","type":"case.submitted"}'
    now = int(time.time())
    header = intake.sign(secret, now, body)
    assert header.startswith(f"t={now},v1=")
    assert intake.verify_signature(secret, header, body)
    assert not intake.verify_signature(secret, header, body.replace(b"e1", b"e2"))
    assert not intake.verify_signature(intake.new_webhook_secret(), header, body)
    assert not intake.verify_signature(secret, "v1=" + header.split("v1=")[1], body)
    assert not intake.verify_signature(secret, "garbage", body)


def test_the_receiver_refuses_a_signature_older_than_the_tolerance():
    secret = intake.new_webhook_secret()
    body = b"{}"
    signed_at = 1_700_000_000
    header = intake.sign(secret, signed_at, body)
    assert intake.verify_signature(secret, header, body, now=signed_at + 300)
    assert not intake.verify_signature(secret, header, body, now=signed_at + 301)
    assert not intake.verify_signature(secret, header, body, tolerance=60, now=signed_at + 61)


def test_a_delivery_past_its_give_up_time_goes_dead_and_a_replay_delivers_it(
    receiver, erp, adam, maria, workflow
):
    receiver.failures = 1
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(give_up_at=timezone.now())

    assert intake.webhook_deliver(delivery.pk) == "dead"
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is None
    assert log_of(delivery) == [(500, "HTTP 500")]
    make_due(delivery)
    assert intake.webhook_deliver(delivery.pk) == "dead"  # dead stays dead
    assert len(receiver.requests) == 1

    replayed = intake.webhook_replay(delivery=delivery, actor=maria)
    assert replayed.status == "pending"
    assert replayed.give_up_at is not None
    assert replayed.give_up_at > timezone.now() + dt.timedelta(hours=23)
    audit = AuditEvent.objects.get(action="webhook.replayed")
    assert audit.actor_name == "maria"
    assert audit.object_id == str(delivery.pk)

    assert intake.webhook_deliver(delivery.pk) == "delivered"
    assert log_of(delivery) == [(500, "HTTP 500"), (204, "")]
    assert len(receiver.requests) == 2


def test_only_a_dead_delivery_can_be_replayed(receiver, erp, adam, maria, workflow):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    with pytest.raises(Conflict):
        intake.webhook_replay(delivery=delivery, actor=maria)  # pending
    assert deliver_until_done(delivery) == "delivered"
    with pytest.raises(Conflict):
        intake.webhook_replay(delivery=delivery, actor=maria)
    assert not AuditEvent.objects.filter(action="webhook.replayed").exists()


def test_fanning_out_the_same_event_twice_creates_one_delivery(receiver, erp, adam, workflow):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    case = submit_for(erp)
    relay_outbox()
    assert relay_outbox() == (0, 0)
    event = OutboxEvent.objects.get(case=case, topic="case.submitted")
    assert intake.webhook_fan_out([event]) == []
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1


def test_an_endpoint_gets_only_the_topics_it_asked_for(receiver, erp, adam, workflow):
    approvals = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.approved"], actor=adam
    )
    everything = intake.webhook_endpoint_create(
        client=erp, url=receiver.url + "/all", event_types=["*"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    assert not WebhookDelivery.objects.filter(endpoint=approvals).exists()
    assert WebhookDelivery.objects.filter(endpoint=everything, topic="case.submitted").exists()


def test_an_endpoint_gets_only_its_own_clients_cases(receiver, erp, crm, adam, workflow):
    erp_hook = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["*"], actor=adam
    )
    crm_hook = intake.webhook_endpoint_create(
        client=crm, url=receiver.url, event_types=["*"], actor=adam
    )
    crm_case = submit_for(crm)
    services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("test"))
    relay_outbox()
    assert not WebhookDelivery.objects.filter(endpoint=erp_hook).exists()
    deliveries = WebhookDelivery.objects.filter(endpoint=crm_hook)
    assert {d.body["data"]["case_id"] for d in deliveries} == {str(crm_case.pk)}


def test_an_inactive_endpoint_gets_no_deliveries(receiver, erp, adam, workflow):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["*"], actor=adam
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
    submit_for(erp)
    relay_outbox()
    assert not WebhookDelivery.objects.exists()


def test_a_refused_connection_is_logged_without_a_status_and_retried(
    closed_port, erp, adam, workflow
):
    endpoint = intake.webhook_endpoint_create(
        client=erp,
        url=f"http://127.0.0.1:{closed_port}/hook",
        event_types=["case.submitted"],
        actor=adam,
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)

    before = timezone.now()
    assert intake.webhook_deliver(delivery.pk) == "pending"
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.last_status_code is None
    assert "refused" in delivery.last_error.lower()
    ceiling = dt.timedelta(seconds=backoff_ceiling(intake.WEBHOOK_RETRY, 1))
    next_at = delivery.next_attempt_at
    assert next_at is not None and before < next_at <= timezone.now() + ceiling

    make_due(delivery)
    assert intake.webhook_deliver(delivery.pk) == "pending"
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery))
    assert len(attempts) == 2
    assert all(a.status_code is None and "refused" in a.error.lower() for a in attempts)


# The admin ---------------------------------------------------------------------------


@pytest.fixture
def dead_delivery(receiver, erp, adam, workflow):
    receiver.failures = 1
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["case.submitted"], actor=adam
    )
    submit_for(erp)
    relay_outbox()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(give_up_at=timezone.now())
    assert intake.webhook_deliver(delivery.pk) == "dead"
    delivery.refresh_from_db()
    return delivery


def test_the_admin_lists_deliveries_and_shows_the_attempt_log(admin_client, dead_delivery):
    listing = admin_client.get("/admin/orchestration/webhookdelivery/")
    assert listing.status_code == 200
    assert str(dead_delivery.event_id).encode() in listing.content
    filtered = admin_client.get("/admin/orchestration/webhookdelivery/?status__exact=delivered")
    assert str(dead_delivery.event_id).encode() not in filtered.content

    page = admin_client.get(f"/admin/orchestration/webhookdelivery/{dead_delivery.pk}/change/")
    assert page.status_code == 200
    assert b"HTTP 500" in page.content  # the attempt log
    assert admin_client.get("/admin/orchestration/webhookdelivery/add/").status_code == 403


def test_the_admin_replays_a_dead_delivery_and_warns_about_one_that_is_not(
    admin_client, dead_delivery, receiver, erp, adam
):
    response = admin_client.post(
        "/admin/orchestration/webhookdelivery/",
        {"action": "replay", "_selected_action": [dead_delivery.pk]},
        follow=True,
    )
    assert response.status_code == 200
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == "pending"
    assert AuditEvent.objects.filter(
        action="webhook.replayed", object_id=str(dead_delivery.pk)
    ).exists()

    response = admin_client.post(
        "/admin/orchestration/webhookdelivery/",
        {"action": "replay", "_selected_action": [dead_delivery.pk]},
        follow=True,
    )
    warnings = [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]
    assert any("not dead" in message for message in warnings)
    assert AuditEvent.objects.filter(action="webhook.replayed").count() == 1


def test_an_auditor_sees_deliveries_but_cannot_replay_them(client, audrey, dead_delivery):
    client.force_login(audrey)
    listing = client.get("/admin/orchestration/webhookdelivery/")
    assert listing.status_code == 200
    assert str(dead_delivery.event_id).encode() in listing.content
    assert b'value="replay"' not in listing.content
    client.post(
        "/admin/orchestration/webhookdelivery/",
        {"action": "replay", "_selected_action": [dead_delivery.pk]},
    )
    dead_delivery.refresh_from_db()
    assert dead_delivery.status == "dead"
    assert not AuditEvent.objects.filter(action="webhook.replayed").exists()


def test_an_auditor_cannot_revoke_a_client(client, audrey, erp):
    client.force_login(audrey)
    assert client.get("/admin/orchestration/apiclient/").status_code == 200
    client.post(
        "/admin/orchestration/apiclient/", {"action": "revoke", "_selected_action": [erp.pk]}
    )
    erp.refresh_from_db()
    assert erp.active


def test_mallory_does_not_get_into_the_admin(client, mallory, dead_delivery):
    client.force_login(mallory)
    response = client.get("/admin/orchestration/webhookdelivery/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_revokes_a_client_but_cannot_add_one(admin_client, erp):
    listing = admin_client.get("/admin/orchestration/apiclient/")
    assert listing.status_code == 200
    assert erp.token_hint.encode() in listing.content
    page = admin_client.get(f"/admin/orchestration/apiclient/{erp.pk}/change/")
    assert page.status_code == 200
    assert erp.token_hash.encode() not in page.content
    assert admin_client.get("/admin/orchestration/apiclient/add/").status_code == 403
    admin_client.post(
        "/admin/orchestration/apiclient/",
        {"action": "revoke", "_selected_action": [erp.pk]},
    )
    erp.refresh_from_db()
    assert not erp.active
    assert AuditEvent.objects.filter(action="client.revoked", object_id=str(erp.pk)).exists()


def test_the_admin_lists_endpoints_without_their_secrets(admin_client, erp, adam, receiver):
    endpoint = intake.webhook_endpoint_create(
        client=erp, url=receiver.url, event_types=["*"], actor=adam
    )
    listing = admin_client.get("/admin/orchestration/webhookendpoint/")
    assert listing.status_code == 200
    assert receiver.url.encode() in listing.content
    page = admin_client.get(f"/admin/orchestration/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret.encode() not in page.content
