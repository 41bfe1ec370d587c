import pytest

from audit.context import Actor
from audit.models import AuditAction, AuditEvent
from audit.services import record

pytestmark = pytest.mark.django_db

worker = Actor.system("worker:invoice.extract")


@pytest.fixture
def case_trail(db):
    for action in (
        AuditAction.CASE_SUBMITTED,
        AuditAction.STEP_STARTED,
        AuditAction.STEP_SUCCEEDED,
    ):
        record(actor=worker, action=action, case_id="INV-42", after={"step": action})


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/audit/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("person", ["alice", "bob", "mallory"])
def test_reviewers_and_outsiders_may_not_read_the_trail(client, person, request, case_trail):
    client.force_login(request.getfixturevalue(person))
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/cases/INV-42/").status_code == 403
    assert client.get("/audit/cases/INV-42/evidence.json").status_code == 403


@pytest.mark.parametrize("person", ["maria", "audrey", "adam"])
def test_managers_auditors_and_admins_read_the_trail(client, person, request, case_trail):
    client.force_login(request.getfixturevalue(person))
    response = client.get("/audit/")
    assert response.status_code == 200
    assert "INV-42" in response.content.decode()


def test_search_filters_by_case_actor_action_and_time(client, maria, case_trail, alice):
    record(actor=alice, action=AuditAction.POLICY_CHANGED, reason="tighter")
    client.force_login(maria)

    def ids(**params):
        response = client.get("/audit/", params)
        assert response.status_code == 200
        return [e.pk for e in response.context["events"]]

    case_ids = list(
        AuditEvent.objects.filter(case_id="INV-42").order_by("-id").values_list("id", flat=True)
    )
    assert ids(case_id="INV-42") == case_ids
    assert ids(actor="alice", action="policy.changed") == list(
        AuditEvent.objects.filter(action="policy.changed").values_list("id", flat=True)
    )
    assert ids(action="step.started", case_id="INV-42") == [
        AuditEvent.objects.get(action="step.started").pk
    ]
    assert ids(since="2000-01-01T00:00", until="2000-01-02T00:00") == []


def test_a_bad_search_answers_400_naming_the_field(client, maria):
    client.force_login(maria)
    response = client.get("/audit/", {"since": "yesterday-ish", "action": "case.exploded"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"since", "action"}
    assert "Enter a valid date/time" in response.content.decode()


def test_until_must_be_after_since(client, maria):
    client.force_login(maria)
    response = client.get("/audit/", {"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"})
    assert response.status_code == 400
    assert "must be later" in response.content.decode()


def test_htmx_searches_get_only_the_results(client, maria, case_trail):
    client.force_login(maria)
    response = client.get("/audit/", {"case_id": "INV-42"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html
    full = client.get("/audit/", {"case_id": "INV-42"}).content.decode()
    assert "<html" in full and 'id="results"' in full


def test_results_are_paged_by_key_without_counting(client, maria, django_assert_num_queries):
    for n in range(60):
        record(actor=worker, action=AuditAction.STEP_STARTED, case_id="BULK", after={"n": n})
    client.force_login(maria)
    first = client.get("/audit/", {"case_id": "BULK"})
    assert len(first.context["events"]) == 50
    next_before = first.context["next_before"]
    assert f"before={next_before}" in first.content.decode()
    second = client.get("/audit/", {"case_id": "BULK", "before": next_before})
    assert len(second.context["events"]) == 10
    assert second.context["next_before"] is None
    # session, user, user and group permissions, one page of events, roles for the navigation
    with django_assert_num_queries(6):
        client.get("/audit/", {"case_id": "BULK"})


def test_the_case_timeline_lists_the_case_events_in_order(client, audrey, case_trail):
    client.force_login(audrey)
    response = client.get("/audit/cases/INV-42/")
    assert response.status_code == 200
    titles = [entry.title for entry in response.context["entries"]]
    assert titles == ["case.submitted", "step.started", "step.succeeded"]


def test_an_unknown_case_is_404(client, audrey):
    client.force_login(audrey)
    assert client.get("/audit/cases/NOPE/").status_code == 404
    assert client.get("/audit/cases/NOPE/evidence.json").status_code == 404


def test_the_evidence_pack_carries_the_chain_and_its_verification(client, audrey, case_trail):
    client.force_login(audrey)
    response = client.get("/audit/cases/INV-42/evidence.json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="evidence-INV-42.json"'
    pack = response.json()
    assert pack["case_id"] == "INV-42"
    assert pack["generated_by"] == "audrey"
    chain = pack["audit_chain"]
    assert [e["position"] for e in chain] == [1, 2, 3]
    assert chain[1]["prev_hash"] == chain[0]["hash"]
    assert pack["verification"]["ok"] is True
    assert pack["verification"]["events_checked"] == 3


def test_exporting_evidence_is_recorded_outside_the_case_chain(client, audrey, case_trail):
    client.force_login(audrey)
    client.get("/audit/cases/INV-42/evidence.json")
    client.get("/audit/cases/INV-42/evidence/")
    exports = AuditEvent.objects.filter(action=AuditAction.EVIDENCE_EXPORTED).order_by("id")
    assert [(e.chain, e.object_id, e.actor_name, e.after) for e in exports] == [
        ("global", "INV-42", "audrey", {"format": "json"}),
        ("global", "INV-42", "audrey", {"format": "html"}),
    ]
    assert AuditEvent.objects.filter(chain="case:INV-42").count() == 3


def test_the_printable_evidence_pack_shows_the_verdict_and_hashes(client, audrey, case_trail):
    client.force_login(audrey)
    response = client.get("/audit/cases/INV-42/evidence/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Verified: 3 events" in html
    for event in AuditEvent.objects.filter(case_id="INV-42"):
        assert event.hash in html
    from django.contrib.staticfiles import finders

    stylesheet = finders.find("css/arbiter.css")
    assert isinstance(stylesheet, str)
    with open(stylesheet) as css:  # the page prints without navigation
        assert "@media print" in css.read()


def test_case_content_is_escaped_in_every_view(client, audrey):
    record(
        actor=worker,
        action=AuditAction.CASE_SUBMITTED,
        case_id="XSS",
        reason="<script>alert(1)</script>",
        after={"note": "<img src=x onerror=alert(1)>"},
    )
    client.force_login(audrey)
    for url in ("/audit/cases/XSS/", "/audit/cases/XSS/evidence/", "/audit/?case_id=XSS"):
        html = client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "<img src=x" not in html


def test_requests_carry_their_id_ip_and_trace_into_the_events(client, alice):
    from tests.conftest import PASSWORD

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        headers={"X-Request-ID": "req-abc", "traceparent": traceparent},
    )
    assert response["X-Request-ID"] == "req-abc"
    event = AuditEvent.objects.get(action=AuditAction.USER_SIGNED_IN)
    assert (event.actor_name, event.request_id, event.client_ip, event.trace_id) == (
        "alice",
        "req-abc",
        "127.0.0.1",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )


def test_a_malformed_request_id_is_replaced(client):
    response = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert response["X-Request-ID"] != "bad id with spaces\n"
    assert len(response["X-Request-ID"]) == 32
