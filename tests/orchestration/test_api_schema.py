"""The OpenAPI document of /api/v1/ (DESIGN.md): what it names, its self-hosted docs page,
and a schemathesis run that holds the API to it."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import schemathesis
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from audit.context import Actor
from config.wsgi import application
from orchestration import api, intake, services
from tests.orchestration.conftest import three_tasks, with_wait_and_review

ALL_SCOPES = ["cases:write", "cases:read", "cases:cancel", "signals:write"]


@pytest.fixture
def document(client, db):
    response = client.get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def test_the_schema_is_an_openapi_3_document_of_the_case_api(document):
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Arbiter API"
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/cases/"])
    assert "get" in paths["/api/v1/cases/{case_id}/"]
    assert "post" in paths["/api/v1/cases/{case_id}/cancel/"]
    assert "post" in paths["/api/v1/cases/{case_id}/signals/"]


def test_the_schema_names_the_token_scheme_and_the_problem_shape(document):
    token = document["components"]["securitySchemes"]["apiToken"]
    assert token == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": token["description"],
    }
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    submit = document["paths"]["/api/v1/cases/"]["post"]
    assert {"apiToken": []} in submit["security"]
    assert submit["responses"]["400"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


def test_submitting_documents_the_idempotency_key_header(document):
    parameters = document["paths"]["/api/v1/cases/"]["post"]["parameters"]
    key = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    assert not key.get("required", False)
    assert {"201", "409", "422"} <= set(document["paths"]["/api/v1/cases/"]["post"]["responses"])


def test_the_schema_is_served_as_json_for_an_accept_header(client, db):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["paths"]


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_the_docs_page_loads_its_assets_from_our_static_files_not_a_cdn(client, db):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, html
    assert all(url.startswith("/static/drf_spectacular_sidecar/") for url in parser.urls)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert '"/api/v1/schema/"' in html
    for url in parser.urls:
        assert client.get(url).status_code == 200, url


# Schemathesis ---------------------------------------------------------------------------


# The schema is loaded when the module is collected: generating it needs no database.
# (schemathesis.pytest.from_fixture, which would load it in a fixture, fails on pytest
# 9.2: it reads Node._nodeid, which pytest 9.2 no longer has.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
# Case ids the path parameters may name besides random ones; api_world fills it.
REAL_CASE_IDS: list[str] = []
# Each operation runs at most 25 generated examples plus the coverage phase's cases
# (about 2 s on SQLite); this caps a slow machine's run at 5 operations x 8 s.
OPERATION_BUDGET_SECONDS = 8.0


@pytest.fixture
def api_world(transactional_db, monkeypatch, adam):
    """Published workflows, a client holding every scope, and cases to act on. The
    database is transactional, as in production: each request commits on its own."""
    # Generous, so the run exercises the views rather than the throttle (a 429 would
    # still be a documented answer).
    monkeypatch.setattr(api.ClientRateThrottle, "THROTTLE_RATES", {"client": "100000/min"})
    services.workflow_load(document=three_tasks(), actor=Actor.system("test"))
    services.workflow_load(document=with_wait_and_review(), actor=Actor.system("test"))
    client, token = intake.api_client_create(name="fuzzer", scopes=ALL_SCOPES, actor=adam)
    actor = Actor.api_client(client.pk, client.name)
    approved = services.case_submit(workflow="three-tasks", payload={}, actor=actor, client=client)
    waiting = services.case_submit(
        workflow="wait-review", payload={"amount": "500"}, actor=actor, client=client
    )
    REAL_CASE_IDS[:] = [str(approved.pk), str(waiting.pk)]
    yield SimpleNamespace(token=token, deadline=time.monotonic() + OPERATION_BUDGET_SECONDS)
    REAL_CASE_IDS.clear()


@schema.hook("map_case")
def make_positive_submissions_submittable(context, case):
    """Positive bodies fit the schema but rarely pass the serializer's own rules (a
    published workflow, a known region and skills, sources whose fields fit their kind),
    so without help every POST meets a 400. Repair those, so the service and the 201
    answer are exercised too; negative bodies are left as generated."""
    if (
        case.operation.label == "POST /api/v1/cases/"
        and case.meta is not None
        and case.meta.generation.mode == GenerationMode.POSITIVE
        and isinstance(case.body, dict)
    ):
        case.body = submittable(case.body)
    return case


def submittable(body: dict) -> dict:
    known = set(api.CaseSubmitSerializer().fields)
    body = {key: value for key, value in body.items() if key in known}
    body["workflow"] = "three-tasks"
    if not isinstance(body.get("payload"), dict):
        body["payload"] = {"value": body.get("payload")}
    if not isinstance(body.get("proposed", {}), dict):
        del body["proposed"]
    if body.get("region", "") not in ("", *settings.ARBITER_REGIONS):
        del body["region"]
    if isinstance(body.get("skills"), list):
        body["skills"] = [s for s in body["skills"] if s in settings.ARBITER_SKILLS]
    if isinstance(body.get("sources"), list):
        body["sources"] = [s for s in body["sources"] if api.SourceSerializer(data=s).is_valid()]
    return body


@schema.hook("map_path_parameters")
def sometimes_name_a_real_case(context, path_parameters):
    # Random UUIDs only ever meet a 404; half the time, act on a case that exists
    # (chosen by the generated id, so Hypothesis still shrinks and replays it).
    case_id = (path_parameters or {}).get("case_id")
    if REAL_CASE_IDS and isinstance(case_id, str) and case_id[:1] in set("01234567"):
        real = REAL_CASE_IDS[int(case_id[:1], 16) % len(REAL_CASE_IDS)]
        return {**path_parameters, "case_id": real}
    return path_parameters


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.django_db(transaction=True)
def test_the_api_keeps_to_its_schema(case, api_world):
    if time.monotonic() > api_world.deadline:
        return  # this operation's time is spent; the examples left are not sent
    case.call_and_validate(
        headers={"Authorization": f"Token {api_world.token}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )
