"""The HTTP contract of /api/v1/cases/ (DESIGN.md): clients outside the project rely on it."""

import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.context import Actor
from orchestration import intake
from orchestration.models import ApiClient, Case, CaseStatus, IdempotencyRecord
from tests.orchestration.conftest import three_tasks, with_wait_and_review

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["cases:write", "cases:read", "cases:cancel", "signals:write"]
SUBMISSION = {
    "workflow": "three-tasks",
    "external_ref": "INV-2026-0042",
    "payload": {"vendor": "ACME GmbH", "amount": "1200.00", "currency": "EUR"},
    "proposed": {"gl_account": "6100"},
    "sources": [
        {"title": "Invoice PDF text", "kind": "text", "content": "ACME GmbH ... 1200.00 EUR"},
        {"title": "Vendor record", "kind": "url", "url": "https://erp.example/v/17"},
    ],
    "confidence": 0.72,
    "impact": "high",
    "region": "eu",
    "skills": ["invoices"],
    "priority": 2,
}


@pytest.fixture
def workflows(flow):
    flow(three_tasks())
    flow(with_wait_and_review())


def make_client(name="erp", scopes=ALL_SCOPES, workflows=("*",)):
    client, token = intake.api_client_create(
        name=name, scopes=scopes, allowed_workflows=workflows, actor=Actor.system("test")
    )
    return client, token


class Api:
    def __init__(self, token):
        self.http = Client(HTTP_AUTHORIZATION=f"Token {token}")

    def post(self, path, body, **headers):
        return self.http.post(
            path, json.dumps(body), content_type="application/json", headers=headers
        )

    def get(self, path, **params):
        return self.http.get(path, params)


@pytest.fixture
def erp(workflows):
    _, token = make_client()
    return Api(token)


def is_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    return body


def test_submitting_a_case_answers_201_with_the_contracts_fields(erp):
    response = erp.post("/api/v1/cases/", SUBMISSION)
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "correlation_id", "status", "workflow", "workflow_version", "created_at"} <= set(
        body
    )
    assert (body["workflow"], body["workflow_version"], body["status"]) == (
        "three-tasks",
        1,
        "running",
    )
    assert response["Location"] == f"/api/v1/cases/{body['id']}/"
    case = Case.objects.get(pk=body["id"])
    assert case.client is not None
    assert case.client.name == "erp"
    assert case.sources[1]["url"] == "https://erp.example/v/17"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"workflow": "nope"}, "workflow"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"payload": {"blob": "x" * (256 * 1024)}}, "payload"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"impact": "apocalyptic"}, "impact"),
        ({"region": "mars"}, "region"),
        ({"skills": ["juggling"]}, "skills.0"),
        ({"priority": 9}, "priority"),
        ({"sources": [{"title": "x", "kind": "url"}]}, "sources.0.url"),
        (
            {"sources": [{"title": "x", "kind": "url", "url": "javascript:alert(1)"}]},
            "sources.0.url",
        ),
        ({"sources": [{"title": "x", "kind": "text", "content": {"a": 1}}]}, "sources.0.content"),
        ({"sources": [{"title": "x", "kind": "movie", "content": "x"}]}, "sources.0.kind"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_submissions_get_400_naming_the_field_and_nothing_is_written(erp, change, field):
    response = erp.post("/api/v1/cases/", SUBMISSION | change)
    body = is_problem(response, 400)
    assert field in body["errors"], body
    assert not Case.objects.exists()


def test_a_missing_workflow_and_payload_are_both_named(erp):
    body = is_problem(erp.post("/api/v1/cases/", {}), 400)
    assert set(body["errors"]) == {"workflow", "payload"}


def test_malformed_json_is_a_400_problem(erp):
    response = erp.http.post("/api/v1/cases/", "{not json", content_type="application/json")
    is_problem(response, 400)


def test_a_client_may_only_use_its_allowed_workflows(workflows):
    _, token = make_client(workflows=["wait-review"])
    body = is_problem(Api(token).post("/api/v1/cases/", SUBMISSION), 400)
    assert "may not submit to workflow 'three-tasks'" in body["errors"]["workflow"][0]


def test_no_token_is_401_and_a_revoked_token_stops_working_at_once(workflows):
    anonymous = Client().post("/api/v1/cases/", SUBMISSION, content_type="application/json")
    body = is_problem(anonymous, 401)
    assert anonymous["WWW-Authenticate"].startswith("Token")
    client, token = make_client()
    api = Api(token)
    assert api.get("/api/v1/cases/").status_code == 200
    intake.api_client_revoke(client=client, actor=Actor.system("test"), reason="leaked")
    body = is_problem(api.get("/api/v1/cases/"), 401)
    assert "revoked" in body["detail"]
    is_problem(Api("arb_made_up").get("/api/v1/cases/"), 401)


def test_scopes_are_enforced_per_method(workflows):
    _, token = make_client(scopes=["cases:read"])
    reader = Api(token)
    assert reader.get("/api/v1/cases/").status_code == 200
    is_problem(reader.post("/api/v1/cases/", SUBMISSION), 403)


def test_a_client_sees_only_its_own_cases(workflows):
    _, mine = make_client("mine")
    _, theirs = make_client("theirs")
    case_id = Api(theirs).post("/api/v1/cases/", SUBMISSION).json()["id"]
    is_problem(Api(mine).get(f"/api/v1/cases/{case_id}/"), 404)
    assert Api(mine).get("/api/v1/cases/").json()["results"] == []
    is_problem(Api(mine).post(f"/api/v1/cases/{case_id}/cancel/", {}), 404)


def test_staff_read_cases_by_their_permissions_and_cannot_write(erp, client, audrey, alice):
    erp.post("/api/v1/cases/", SUBMISSION)
    client.force_login(audrey)  # auditors may view every model
    assert len(client.get("/api/v1/cases/").json()["results"]) == 1
    is_problem(client.post("/api/v1/cases/", SUBMISSION, content_type="application/json"), 403)
    client.force_login(alice)
    is_problem(client.get("/api/v1/cases/"), 403)


def test_the_same_idempotency_key_and_body_replays_the_first_answer(erp):
    first = erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"})
    again = erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Case.objects.count() == 1


def test_the_same_key_with_another_body_is_422(erp):
    erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"})
    other = erp.post(
        "/api/v1/cases/", SUBMISSION | {"priority": 5}, **{"Idempotency-Key": "order-42"}
    )
    is_problem(other, 422)
    assert Case.objects.count() == 1


def test_a_key_still_in_flight_is_409(erp):
    client = ApiClient.objects.get()
    intake.idempotency_claim(
        client=client, key="order-42", fingerprint=intake.request_fingerprint(SUBMISSION)
    )
    is_problem(erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"}), 409)


def test_a_refused_request_does_not_burn_its_key(erp):
    bad = erp.post("/api/v1/cases/", SUBMISSION | {"impact": "huge"}, **{"Idempotency-Key": "k1"})
    assert bad.status_code == 400
    good = erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "k1"})
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good


def test_an_overlong_idempotency_key_is_refused(erp):
    body = is_problem(erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "k" * 256}), 400)
    assert "Idempotency-Key" in body["errors"]


def test_keys_are_kept_a_day_and_then_forgotten(erp):
    erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"})
    record = IdempotencyRecord.objects.get()
    assert (record.expires_at - record.created_at).total_seconds() >= 24 * 3600
    IdempotencyRecord.objects.update(expires_at=record.created_at)
    assert intake.idempotency_purge_expired() == 1
    again = erp.post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "order-42"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Case.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_with_one_key_create_exactly_one_case(workflows):
    _, token = make_client()
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def send() -> None:
        try:
            barrier.wait()
            response = Api(token).post("/api/v1/cases/", SUBMISSION, **{"Idempotency-Key": "race"})
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Case.objects.count() == 1
    assert len(statuses) == 20
    assert set(statuses) <= {201, 409}
    assert 201 in statuses


def test_list_filters_and_cursor_pages(erp):
    for n in range(5):
        erp.post("/api/v1/cases/", SUBMISSION | {"external_ref": f"REF-{n}"})
    erp.post("/api/v1/cases/", SUBMISSION | {"workflow": "wait-review", "external_ref": "W"})
    page = erp.get("/api/v1/cases/", page_size=2).json()
    assert len(page["results"]) == 2 and page["next"]
    seen = [c["external_ref"] for c in page["results"]]
    while page["next"]:
        page = erp.http.get(page["next"]).json()
        seen += [c["external_ref"] for c in page["results"]]
    assert sorted(seen) == sorted([f"REF-{n}" for n in range(5)] + ["W"])
    assert [
        c["external_ref"] for c in erp.get("/api/v1/cases/", external_ref="REF-3").json()["results"]
    ] == ["REF-3"]
    assert [
        c["external_ref"]
        for c in erp.get("/api/v1/cases/", workflow="wait-review").json()["results"]
    ] == ["W"]
    assert len(erp.get("/api/v1/cases/", status="running").json()["results"]) == 6
    assert erp.get("/api/v1/cases/", created_before="2000-01-01T00:00:00Z").json()["results"] == []
    assert (
        len(erp.get("/api/v1/cases/", created_after="2000-01-01T00:00:00Z").json()["results"]) == 6
    )
    body = is_problem(erp.get("/api/v1/cases/", status="sleeping", created_after="soon"), 400)
    assert set(body["errors"]) == {"status", "created_after"}


def test_detail_shows_the_steps(erp, run_all):
    case_id = run_all(erp.post, "/api/v1/cases/", SUBMISSION).json()["id"]
    detail = erp.get(f"/api/v1/cases/{case_id}/").json()
    assert detail["status"] == "approved"
    assert [s["step"] for s in detail["steps"]] == ["collect", "reserve", "finish"]
    assert detail["steps"][0]["output"]["proposed"] == {"amount": "1200.00"}
    is_problem(erp.get("/api/v1/cases/00000000-0000-0000-0000-000000000000/"), 404)
    is_problem(erp.get("/api/v1/cases/not-a-uuid/"), 404)


def test_cancel_is_202_and_a_finished_case_is_409(erp, run_all):
    waiting = run_all(erp.post, "/api/v1/cases/", SUBMISSION | {"workflow": "wait-review"}).json()
    assert Case.objects.get(pk=waiting["id"]).status == CaseStatus.WAITING
    response = run_all(erp.post, f"/api/v1/cases/{waiting['id']}/cancel/", {"reason": "withdrawn"})
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    is_problem(erp.post(f"/api/v1/cases/{waiting['id']}/cancel/", {}), 409)


def test_signals_resume_a_waiting_case_and_an_unexpected_one_is_409(erp, run_all):
    case_id = run_all(erp.post, "/api/v1/cases/", SUBMISSION | {"workflow": "wait-review"}).json()[
        "id"
    ]
    is_problem(erp.post(f"/api/v1/cases/{case_id}/signals/", {"name": "payment_received"}), 409)
    body = is_problem(erp.post(f"/api/v1/cases/{case_id}/signals/", {"name": "Bad Name!"}), 400)
    assert "name" in body["errors"]
    response = run_all(
        erp.post,
        f"/api/v1/cases/{case_id}/signals/",
        {"name": "documents_received", "payload": {"pages": 2}},
    )
    assert response.status_code == 202
    assert response.json()["status"] == "in_review"


def test_throttling_answers_429_with_retry_after(erp, settings):
    from django.core.cache import cache
    from rest_framework.settings import api_settings

    from orchestration.api import ClientRateThrottle

    cache.clear()  # earlier tests' requests count against the same client ids
    old = ClientRateThrottle.THROTTLE_RATES
    rates: dict = {**api_settings.DEFAULT_THROTTLE_RATES, "client": "3/min"}
    ClientRateThrottle.THROTTLE_RATES = rates
    try:
        statuses = [erp.get("/api/v1/cases/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = erp.get("/api/v1/cases/")
        is_problem(limited, 429)
        assert int(limited["Retry-After"]) > 0
    finally:
        ClientRateThrottle.THROTTLE_RATES = old


def test_unknown_api_paths_answer_problem_json(erp):
    is_problem(erp.get("/api/v1/nothing-here/"), 404)


def test_create_api_client_prints_the_token_alone_on_the_last_line(capsys):
    call_command("create_api_client", "billing", "--scopes", "cases:write,cases:read")
    out = capsys.readouterr().out.strip().splitlines()
    token = out[-1]
    assert token.startswith("arb_") and " " not in token
    client = intake.api_client_for_token(token)
    assert client is not None and client.name == "billing"
    assert client.scopes == ["cases:read", "cases:write"]
    assert client.token_hash != token and token not in client.token_hash


def test_create_api_client_refuses_unknown_scopes_and_duplicate_names():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_client", "x", "--scopes", "cases:everything")
    call_command("create_api_client", "dup")
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_api_client", "dup")
    assert ApiClient.objects.count() == 1


def test_submission_is_audited_with_the_client_as_actor(erp):
    from audit.models import AuditEvent

    case_id = erp.post("/api/v1/cases/", SUBMISSION).json()["id"]
    event = AuditEvent.objects.get(case_id=case_id, action="case.submitted")
    assert (event.actor_kind, event.actor_name) == ("api_client", "erp")
    assert event.request_id and event.client_ip == "127.0.0.1"


def test_a_submission_s_audit_events_go_in_together_in_the_order_recorded(erp):
    from audit.models import AuditEvent
    from audit.verification import verify

    with CaptureQueriesContext(connection) as captured:
        case_id = erp.post("/api/v1/cases/", SUBMISSION).json()["id"]
    events = list(AuditEvent.objects.filter(case_id=case_id).order_by("chain_seq"))
    assert len(events) >= 2
    assert events[0].action == "case.submitted"
    assert [e.chain_seq for e in events] == list(range(1, len(events) + 1))
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert verify(case_id=case_id).ok
    inserts = [q for q in captured.captured_queries if 'INTO "audit_auditevent"' in q["sql"]]
    # PostgreSQL: one statement for all of them (the new chain's lock and a multi-row
    # INSERT); elsewhere one INSERT each.
    assert len(inserts) == (1 if connection.vendor == "postgresql" else len(events))


def test_nul_characters_are_a_400_not_a_server_error(erp):
    body = is_problem(erp.post("/api/v1/cases/", SUBMISSION | {"payload": {"a": "x\u0000y"}}), 400)
    assert "payload" in body["errors"]
    body = is_problem(erp.post("/api/v1/cases/", SUBMISSION | {"proposed": {"k\u0000": 1}}), 400)
    assert "proposed" in body["errors"]
    assert not Case.objects.exists()


def test_an_unsupported_method_is_405_with_allow(erp):
    response = erp.http.delete("/api/v1/cases/")
    is_problem(response, 405)
    assert "POST" in response["Allow"]


def test_the_list_is_documented_as_a_page_and_errors_as_problem_json(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    listing = schema["paths"]["/api/v1/cases/"]["get"]
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page.endswith("/PaginatedCaseList")
    assert {p["name"] for p in listing["parameters"]} >= {"cursor", "page_size", "status"}
    assert "application/problem+json" in listing["responses"]["400"]["content"]
    submit = schema["components"]["schemas"]["CaseSubmitRequest"]
    assert submit["additionalProperties"] is False
    assert submit["properties"]["payload"]["type"] == "object"
    header = next(
        p
        for p in schema["paths"]["/api/v1/cases/"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    )
    assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)


def test_a_client_registers_lists_and_removes_its_webhooks(workflows):
    from orchestration.models import WebhookEndpoint

    _, token = make_client(scopes=["cases:write", "webhooks:manage"])
    api = Api(token)
    created = api.post(
        "/api/v1/webhooks/",
        {"url": "https://hooks.example/arbiter", "event_types": ["case.approved"]},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    listed = api.get("/api/v1/webhooks/").json()
    assert [w["url"] for w in listed] == ["https://hooks.example/arbiter"]
    assert "secret" not in listed[0]  # shown once, at creation
    body_errors = is_problem(
        api.post("/api/v1/webhooks/", {"url": "ftp://x.example", "event_types": ["case.exploded"]}),
        400,
    )
    assert {"url", "event_types.0"} <= set(body_errors["errors"])
    _, other = make_client("other", scopes=["webhooks:manage"])
    is_problem(Api(other).http.delete(f"/api/v1/webhooks/{body['id']}/"), 404)
    assert api.http.delete(f"/api/v1/webhooks/{body['id']}/").status_code == 204
    assert not WebhookEndpoint.objects.get(pk=body["id"]).active


def test_webhooks_need_their_scope(erp):
    is_problem(erp.get("/api/v1/webhooks/"), 403)
