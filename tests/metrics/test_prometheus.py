"""/metrics: the Prometheus exposition, its figures on hand-built data, who may read
it, and the sample alert rules and Grafana dashboard in docs/."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from metrics.prometheus import DatabaseCollector
from orchestration.models import Case, DeadLetter, OutboxEvent, StepRun, Workflow
from routing.models import ItemState, Queue, WorkItem
from routing.services import work_item_claim_next
from tests.routing.helpers import enqueue, grant, load_flow, reviewer

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
TOKEN = "s3cret-scrape-token"


class Scrape:
    """One /metrics body, parsed: families by name and sample values by labels."""

    def __init__(self, body: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(body)}

    def value(self, sample: str, **labels: str) -> float | None:
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return s.value
        return None

    def labelled(self, sample: str) -> list[dict[str, str]]:
        return [s.labels for f in self.families.values() for s in f.samples if s.name == sample]


def scrape(client: Client) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.content.decode())


# Figures from the database --------------------------------------------------------------


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def case(db):
    workflow = Workflow.objects.create(slug="metrics", version=1, title="Metrics", definition={})
    return Case.objects.create(workflow=workflow)


@pytest.fixture
def step_runs(case, now):
    """Step runs of three handlers and a review: retries are attempts beyond the first."""

    def run(handler, status, outcome="", attempt=1, kind="task"):
        return StepRun.objects.create(
            case=case,
            step_id=handler or kind,
            kind=kind,
            handler=handler,
            status=status,
            outcome=outcome,
            attempt=attempt,
        )

    run("test.collect", "succeeded", "ok")
    run("test.collect", "succeeded", "ok", attempt=2)
    run("test.flaky", "succeeded", "ok", attempt=3)
    dead = run("test.flaky", "dead_lettered", attempt=3)
    run("test.route", "succeeded", "large")
    run("test.route", "succeeded", "small")
    run("test.route", "succeeded", "small")
    run("", "waiting", kind="review", attempt=0)
    replayed = run("test.doomed", "pending", attempt=0)
    DeadLetter.objects.create(
        step_run=dead, error_type="ConnectionError", message="refused", attempts=3
    )
    DeadLetter.objects.create(
        step_run=replayed,
        error_type="PermanentError",
        message="no such account",
        attempts=1,
        replayed_at=now,
    )


@pytest.fixture
def outbox(now):
    """Two events waiting (the oldest for two minutes) and one published long ago."""
    waiting = [OutboxEvent.objects.create(topic="case.submitted") for _ in range(2)]
    published = OutboxEvent.objects.create(topic="case.submitted", published_at=now - H)
    OutboxEvent.objects.filter(pk=waiting[0].pk).update(created_at=now - 2 * M)
    OutboxEvent.objects.filter(pk=waiting[1].pk).update(created_at=now - M / 2)
    OutboxEvent.objects.filter(pk=published.pk).update(created_at=now - 2 * H)


@pytest.fixture
def queues(case, now, django_user_model):
    """Invoices: four open items (the oldest three hours old, one breached, one at risk)
    and two closed ones; KYC: empty."""
    run = StepRun.objects.create(case=case, step_id="review", kind="review", status="waiting")
    holder = django_user_model.objects.create(username="holder")
    invoices = Queue.objects.create(name="invoices", title="Invoices")
    Queue.objects.create(name="kyc", title="KYC checks")

    def item(age, **fields):
        enqueued = now - age
        return WorkItem(
            case=case,
            step_run=run,
            kind="review",
            queue=invoices,
            enqueued_at=enqueued,
            rank_at=enqueued,
            **fields,
        )

    WorkItem.objects.bulk_create(
        [
            item(3 * H),
            item(30 * M, breached_at=now - 5 * M, warned_at=now - 10 * M),
            item(H, state=ItemState.CLAIMED, assignee=holder, warned_at=now - M),
            item(10 * M, state=ItemState.AWAITING_CHECKER),
            item(5 * H, state=ItemState.DONE, decided_at=now - H, breached_at=now - 2 * H),
            item(10 * H, state=ItemState.CANCELLED, decided_at=now - 9 * H),
        ]
    )


def test_step_runs_are_counted_by_kind_handler_status_and_outcome(client, step_runs):
    figures = scrape(client)

    def runs(kind, handler, status, outcome):
        labels = {"kind": kind, "handler": handler, "status": status, "outcome": outcome}
        return figures.value("arbiter_step_runs", **labels)

    assert runs("task", "test.collect", "succeeded", "ok") == 2
    assert runs("task", "test.route", "succeeded", "small") == 2
    assert runs("task", "test.route", "succeeded", "large") == 1
    assert runs("task", "test.flaky", "dead_lettered", "") == 1
    assert runs("review", "", "waiting", "") == 1


def test_retries_are_attempts_beyond_the_first_per_handler(client, step_runs):
    figures = scrape(client)
    assert figures.value("arbiter_step_run_retries", kind="task", handler="test.collect") == 1
    assert figures.value("arbiter_step_run_retries", kind="task", handler="test.flaky") == 4
    assert figures.value("arbiter_step_run_retries", kind="task", handler="test.route") == 0
    assert figures.value("arbiter_step_run_retries", kind="review", handler="") == 0


def test_dead_letters_count_only_those_not_replayed(client, step_runs):
    figures = scrape(client)
    assert figures.value("arbiter_dead_letters", handler="test.flaky") == 1
    assert figures.labelled("arbiter_dead_letters") == [{"handler": "test.flaky"}]


def test_outbox_lag_is_the_age_of_the_oldest_unpublished_event(client, outbox):
    figures = scrape(client)
    assert figures.value("arbiter_outbox_unpublished") == 2
    lag = figures.value("arbiter_outbox_lag_seconds")
    assert lag is not None and 120 <= lag < 180


def test_an_empty_outbox_has_no_lag(client):
    figures = scrape(client)
    assert figures.value("arbiter_outbox_unpublished") == 0
    assert figures.value("arbiter_outbox_lag_seconds") == 0


def test_queue_depth_is_open_items_per_queue_and_state(client, queues):
    figures = scrape(client)
    assert figures.value("arbiter_queue_depth", queue="invoices", state="queued") == 2
    assert figures.value("arbiter_queue_depth", queue="invoices", state="claimed") == 1
    assert figures.value("arbiter_queue_depth", queue="invoices", state="awaiting_checker") == 1
    for state in ("queued", "claimed", "awaiting_checker"):
        assert figures.value("arbiter_queue_depth", queue="kyc", state=state) == 0


def test_the_oldest_open_item_age_ignores_closed_items(client, queues):
    figures = scrape(client)
    age = figures.value("arbiter_queue_oldest_item_age_seconds", queue="invoices")
    assert age is not None and 3 * 3600 <= age < 3 * 3600 + 60
    assert figures.value("arbiter_queue_oldest_item_age_seconds", queue="kyc") == 0


def test_breaches_count_open_items_per_queue_and_every_breach_in_total(client, queues):
    figures = scrape(client)
    assert figures.value("arbiter_queue_breached", queue="invoices") == 1
    assert figures.value("arbiter_queue_at_risk", queue="invoices") == 1
    assert figures.value("arbiter_queue_breached", queue="kyc") == 0
    assert figures.families["arbiter_sla_breaches"].type == "counter"
    assert figures.value("arbiter_sla_breaches_total") == 2  # the decided one counts too


def test_a_scrape_costs_one_query_per_family_group(
    client, step_runs, outbox, queues, django_assert_num_queries
):
    # step runs, dead letters, outbox, queues, breach total: whatever the row counts.
    with django_assert_num_queries(5):
        client.get("/metrics")


def test_request_figures_survive_a_database_that_cannot_be_read(client, monkeypatch):
    def broken(self):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(DatabaseCollector, "_step_runs", broken)
    client.get("/healthz")
    figures = scrape(client)
    assert figures.value("arbiter_metrics_database_up") == 0
    assert "arbiter_queue_depth" not in figures.families
    assert "arbiter_http_requests" in figures.families


# In-process instruments -------------------------------------------------------------------


def test_each_request_is_timed_and_counted_by_route_name_and_status(client):
    before = scrape(client)
    client.get("/healthz")
    client.get("/no/such/page")
    after = scrape(client)

    def grew(sample, **labels):
        return (after.value(sample, **labels) or 0) - (before.value(sample, **labels) or 0)

    route = {"method": "GET", "view": "healthz"}
    assert grew("arbiter_http_request_duration_seconds_count", **route) == 1
    assert grew("arbiter_http_request_duration_seconds_sum", **route) > 0
    assert grew("arbiter_http_requests_total", **route, status="200") == 1
    # The raw path never becomes a label: unmatched URLs share one value.
    assert grew("arbiter_http_requests_total", method="GET", view="unmatched", status="404") == 1
    views = {labels["view"] for labels in after.labelled("arbiter_http_requests_total")}
    assert not any("no/such" in view for view in views)


def test_claims_are_timed_by_result(client, alice):
    load_flow()
    invoices = Queue.objects.create(name="invoices", title="Invoices")
    reviewer(alice, skills={"invoices": 3})
    grant(invoices, alice)
    enqueue(invoices, skills=["invoices"])
    before = scrape(client)
    assert work_item_claim_next(reviewer=alice) is not None
    assert work_item_claim_next(reviewer=alice) is None
    after = scrape(client)

    def grew(result):
        sample, labels = "arbiter_claim_duration_seconds_count", {"result": result}
        return (after.value(sample, **labels) or 0) - (before.value(sample, **labels) or 0)

    assert (grew("claimed"), grew("empty")) == (1, 1)


def test_multiprocess_mode_sums_the_counts_of_every_worker_process(client, tmp_path, monkeypatch):
    """Under gunicorn each worker writes its counts to PROMETHEUS_MULTIPROC_DIR; a
    scrape answered by any one of them sums them all."""
    observe = (
        "import django; django.setup()\n"
        "from django.test import RequestFactory\n"
        "from metrics.prometheus import observe_request\n"
        "observe_request(RequestFactory().get('/x'), 200, 0.2)\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    for _worker in range(2):
        subprocess.run([sys.executable, "-c", observe], cwd=ROOT, env=env, check=True, timeout=120)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    figures = scrape(client)
    unmatched = {"method": "GET", "view": "unmatched"}
    assert figures.value("arbiter_http_requests_total", **unmatched, status="200") == 2
    assert figures.value("arbiter_http_request_duration_seconds_count", **unmatched) == 2
    assert figures.value("arbiter_metrics_database_up") == 1  # database figures still there


# Who may scrape ----------------------------------------------------------------------------

OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}


def test_loopback_may_scrape_when_nothing_is_configured(client):
    assert client.get("/metrics").status_code == 200


def test_other_addresses_are_refused_when_nothing_is_configured(client):
    response = client.get("/metrics", **OUTSIDE)
    assert response.status_code == 403
    assert not response.has_header("Location")  # never a trip to the sign-in page


def test_anyone_may_scrape_a_development_server(client, settings):
    settings.DEBUG = True
    assert client.get("/metrics", **OUTSIDE).status_code == 200


def test_a_token_lets_a_scraper_in_from_anywhere(client, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **OUTSIDE)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Token {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_a_missing_or_wrong_token_is_unauthorized(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)  # even from loopback
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_allowed_networks_admit_their_addresses_and_refuse_the_rest(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="fd00::7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
    assert client.get("/metrics").status_code == 403  # loopback is not in the list


def test_behind_a_trusted_proxy_the_forwarded_address_decides(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_HOPS = 1
    via_proxy = {"REMOTE_ADDR": "192.0.2.50", "HTTP_X_FORWARDED_FOR": "10.1.2.3"}
    assert client.get("/metrics", **via_proxy).status_code == 200
    settings.TRUSTED_PROXY_HOPS = 0  # no proxy of ours: the header is the client's word
    assert client.get("/metrics", **via_proxy).status_code == 403


def test_with_both_set_a_scraper_needs_the_network_and_the_token(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = TOKEN
    good = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", **good).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401
    assert client.get("/metrics", **good, **OUTSIDE).status_code == 403


def test_metrics_answer_only_get(client):
    assert client.post("/metrics").status_code == 405


def test_settings_refuse_a_network_that_is_not_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DEBUG="1", ARBITER_DATA_DIR=str(tmp_path), METRICS_ALLOWED_NETWORKS="10.0.0.0/8,intranet"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: 'intranet' is not a network" in result.stderr


# The sample alert rules and dashboard ------------------------------------------------------

METRIC_NAME = re.compile(r"\barbiter_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count", "_total")


@pytest.fixture
def exposed(client) -> set[str]:
    """The names of the families /metrics exposes (counters without `_total`)."""
    return {name for name in scrape(client).families if name.startswith("arbiter_")}


def unknown_metrics(expr: str, exposed: set[str]) -> set[str]:
    referenced = set(METRIC_NAME.findall(expr))
    assert referenced, f"no arbiter metric in {expr!r}"

    def known(name: str) -> bool:
        return name in exposed or any(
            name.endswith(suffix) and name.removesuffix(suffix) in exposed for suffix in SUFFIXES
        )

    return {name for name in referenced if not known(name)}


def test_the_alert_rules_load_and_use_only_exposed_metrics(exposed):
    document = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        assert rule["alert"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
        assert unknown_metrics(rule["expr"], exposed) == set(), rule["alert"]


def test_the_grafana_dashboard_loads_and_uses_only_exposed_metrics(exposed):
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 10
    exprs = []
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert unknown_metrics(target["expr"], exposed) == set(), panel["title"]
            exprs.append(target["expr"])
    for variable in dashboard["templating"]["list"]:
        assert unknown_metrics(variable["query"]["query"], exposed) == set(), variable["name"]
    # Every family has a panel, so nothing /metrics offers goes unseen.
    shown = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    for family in exposed:
        assert any(name == family or name.startswith(family + "_") for name in shown), family
