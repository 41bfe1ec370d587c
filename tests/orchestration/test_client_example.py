"""docs/api_client_example.py: the standard-library client we hand to integrators
agrees with the server on signatures and works against a running Arbiter."""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from audit.context import Actor
from orchestration import intake
from orchestration.models import Case
from tests.orchestration.conftest import three_tasks, with_wait_and_review


def _load_example():
    path = Path(settings.BASE_DIR) / "docs" / "api_client_example.py"
    spec = importlib.util.spec_from_file_location("api_client_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


def test_the_example_accepts_what_the_server_signs():
    secret = intake.new_webhook_secret()
    body = b'{"id":"e1","type":"case.approved","data":{"case_id":"c1"}}'
    header = intake.sign(secret, int(time.time()), body)
    assert example.verify_webhook(secret, header, body)


def test_the_example_refuses_a_tampered_body_a_wrong_secret_and_a_bad_header():
    secret = intake.new_webhook_secret()
    body = b'{"id":"e1","type":"case.approved"}'
    header = intake.sign(secret, int(time.time()), body)
    assert not example.verify_webhook(secret, header, body.replace(b"approved", b"rejected"))
    assert not example.verify_webhook(intake.new_webhook_secret(), header, body)
    assert not example.verify_webhook(secret, header.split(",")[0], body)
    assert not example.verify_webhook(secret, "nonsense", body)


def test_the_example_and_the_server_agree_on_the_tolerance():
    secret = intake.new_webhook_secret()
    body = b"{}"
    signed_at = 1_700_000_000
    header = intake.sign(secret, signed_at, body)
    for delay in (0, 299, 300, 301, 3600, -301):
        now = signed_at + delay
        assert example.verify_webhook(secret, header, body, now=now) == intake.verify_signature(
            secret, header, body, now=now
        ), delay
    assert not example.verify_webhook(secret, header, body, 60, now=signed_at + 61)


# Against a running server ------------------------------------------------------------------


@pytest.fixture
def erp_token(transactional_db, adam):
    """A published workflow and the token of a client that may submit and read."""
    from orchestration import services

    services.workflow_load(document=three_tasks(), actor=Actor.system("test"))
    services.workflow_load(document=with_wait_and_review(), actor=Actor.system("test"))
    _, token = intake.api_client_create(
        name="erp", scopes=["cases:write", "cases:read"], actor=adam
    )
    return token


SUBMISSION = {
    "workflow": "three-tasks",
    "external_ref": "INV-2026-0042",
    "payload": {"vendor": "ACME GmbH", "amount": "1200.00", "currency": "EUR"},
}


def test_the_example_submits_a_case_and_follows_it_to_its_end(live_server, erp_token):
    case = example.submit_case(live_server.url, erp_token, SUBMISSION)
    assert case["workflow"] == "three-tasks"
    assert case["external_ref"] == "INV-2026-0042"
    done = example.wait_for_case(live_server.url, erp_token, case["id"], timeout=30, interval=0.1)
    assert done["id"] == case["id"]
    assert done["status"] == "approved"
    assert [step["step"] for step in done["steps"]] == ["collect", "reserve", "finish"]


def test_submitting_again_with_the_same_key_returns_the_same_case(live_server, erp_token):
    key = str(uuid.uuid4())
    first = example.submit_case(live_server.url, erp_token, SUBMISSION, idempotency_key=key)
    again = example.submit_case(live_server.url, erp_token, SUBMISSION, idempotency_key=key)
    assert again["id"] == first["id"]
    assert Case.objects.count() == 1


def test_a_lost_answer_is_retried_with_the_same_key_and_creates_one_case(
    live_server, erp_token, monkeypatch
):
    """The server made the case, but the answer never arrived: the retry gets that case."""
    real_send = example._send
    sent_keys = []

    def lose_the_first_answer(request, timeout):
        sent_keys.append(request.get_header("Idempotency-key"))
        answer = real_send(request, timeout)
        if len(sent_keys) == 1:
            raise ConnectionResetError("connection reset by peer")
        return answer

    monkeypatch.setattr(example, "_send", lose_the_first_answer)
    case = example.submit_case(live_server.url, erp_token, SUBMISSION, backoff=0.01)
    assert len(sent_keys) == 2
    assert sent_keys[0] == sent_keys[1]
    assert Case.objects.get().pk == uuid.UUID(case["id"])


def test_a_refused_submission_raises_with_the_problem_details(live_server, erp_token):
    with pytest.raises(example.ApiError) as refused:
        example.submit_case(live_server.url, erp_token, {**SUBMISSION, "workflow": "nope"})
    assert refused.value.status == 400
    assert "workflow" in refused.value.problem["errors"]
    assert not Case.objects.exists()


def test_waiting_for_a_case_that_stays_open_times_out(live_server, erp_token):
    case = example.submit_case(
        live_server.url, erp_token, {"workflow": "wait-review", "payload": {"amount": "500"}}
    )
    with pytest.raises(TimeoutError, match="waiting"):
        example.wait_for_case(live_server.url, erp_token, case["id"], timeout=0.3, interval=0.1)


def test_an_unknown_token_is_refused(live_server, erp_token):
    with pytest.raises(example.ApiError) as refused:
        example.submit_case(live_server.url, "arb_not-a-token", SUBMISSION)
    assert refused.value.status == 401
