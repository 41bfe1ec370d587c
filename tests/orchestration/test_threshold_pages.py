import pytest

from audit.context import Actor
from orchestration import selectors, services
from orchestration.models import QaFinding, StepRun, ThresholdPolicy
from tests.orchestration.conftest import with_wait_and_review
from tests.orchestration.test_thresholds import CELLS, EDGES, RATES

pytestmark = pytest.mark.django_db


def form(edges="0.5, 0.8, 0.95", cells=CELLS, rates=RATES, reason="launch", **extra):
    data = {"workflow": "wait-review", "step": "", "edges": edges, "reason": reason, **extra}
    for impact, row in cells.items():
        for band, action in enumerate(row):
            data[f"cell_{impact}_{band}"] = action
            data[f"rate_{impact}_{band}"] = str(rates[impact][band]) if action == "auto" else "0"
    return data


@pytest.fixture
def page(flow, client, adam):
    flow(with_wait_and_review())
    client.force_login(adam)
    return client


@pytest.mark.parametrize("person", ["alice", "maria", "audrey", "mallory"])
def test_only_admins_may_open_the_editor(client, person, request, flow):
    flow(with_wait_and_review())
    client.force_login(request.getfixturevalue(person))
    assert client.get("/settings/thresholds/").status_code == 403
    assert client.post("/settings/thresholds/", form()).status_code == 403
    assert client.get("/settings/").status_code == 403
    assert not ThresholdPolicy.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    assert client.get("/settings/thresholds/").status_code == 302


def test_admins_land_on_settings_which_links_the_editor(page):
    home = page.get("/", follow=True)
    assert home.redirect_chain[-1][0] == "/settings/"
    assert "/settings/thresholds/" in home.content.decode()


def test_the_editor_shows_the_grid_with_one_control_per_cell(page):
    html = page.get("/settings/thresholds/?workflow=wait-review").content.decode()
    for impact in ("low", "medium", "high", "critical"):
        for band in range(4):
            assert f'name="cell_{impact}_{band}"' in html
            assert f'name="rate_{impact}_{band}"' in html
    assert "built-in default grid" in html


def test_saving_makes_a_version_with_the_reason(page, adam):
    response = page.post("/settings/thresholds/", form(reason="launch the grid"))
    assert response.status_code == 302
    policy = ThresholdPolicy.objects.get()
    assert (policy.version, policy.reason, policy.created_by) == (1, "launch the grid", adam)
    assert policy.cells == CELLS
    html = page.get("/settings/thresholds/?workflow=wait-review").content.decode()
    assert "launch the grid" in html and "v1" in html


def test_an_invalid_grid_or_a_missing_reason_is_refused_with_the_problem_named(page):
    response = page.post("/settings/thresholds/", form(edges="0.8, 0.5, 0.95"))
    assert response.status_code == 400
    assert "edges must increase strictly: 0.5 follows 0.8" in response.content.decode()
    critical_auto = {**CELLS, "critical": ["auto", "review", "review", "review"]}
    response = page.post("/settings/thresholds/", form(cells=critical_auto))
    assert response.status_code == 400
    assert "a critical cell is set to auto" in response.content.decode()
    response = page.post("/settings/thresholds/", form(reason=""))
    assert response.status_code == 400
    assert "say why the grid changes" in response.content.decode()
    assert not ThresholdPolicy.objects.exists()


def test_critical_auto_saves_with_the_override_and_its_reason(page):
    critical_auto = {**CELLS, "critical": ["auto", "review", "review", "review"]}
    response = page.post(
        "/settings/thresholds/",
        form(cells=critical_auto, critical_auto_override="on", override_reason="pilot with QA"),
    )
    assert response.status_code == 302
    assert ThresholdPolicy.objects.get().critical_auto_override


def test_the_live_preview_counts_how_recent_decisions_would_split(page, run_all):
    for confidence in (0.3, 0.6, 0.85, 0.97):
        case = run_all(
            services.case_submit,
            workflow="wait-review",
            payload={"amount": "500"},
            actor=Actor.system("t"),
            confidence=confidence,
            impact="low",
        )
        run_all(
            services.case_signal,
            case=case,
            name="documents_received",
            data={},
            actor=Actor.system("t"),
        )
    assert StepRun.objects.filter(kind="review").count() == 4
    everything_reviewed = {impact: ["review"] * 4 for impact in CELLS}
    response = page.post(
        "/settings/thresholds/preview/",
        form(cells=everything_reviewed),
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="grid-editor"' in html
    # The default grid approved the two surest low-impact cases; all-review moves them.
    assert "<strong>2</strong> of 4 gate decisions would change" in html
    assert '<tr><th scope="row">auto</th><td>2</td><td>0</td></tr>' in html
    assert '<tr><th scope="row">review</th><td>2</td><td>4</td></tr>' in html
    assert not ThresholdPolicy.objects.exists()  # a preview saves nothing


def test_two_versions_can_be_compared(page):
    page.post("/settings/thresholds/", form(reason="first"))
    stricter = {**CELLS, "low": ["review", "review", "review", "auto"]}
    page.post("/settings/thresholds/", form(cells=stricter, reason="stricter"))
    response = page.get("/settings/thresholds/diff/?workflow=wait-review&a=1&b=2")
    assert response.status_code == 200
    assert response.context["diff"]["cells"] == [
        {
            "impact": "low",
            "band": "[0.8, 0.95) -> [0.8, 0.95)",
            "from": "auto (10 %)",
            "to": "review",
        }
    ]


def test_the_grid_exports_to_dmn_and_imports_back(page):
    page.post("/settings/thresholds/", form(reason="first"))
    exported = page.get("/settings/thresholds/export.dmn?workflow=wait-review")
    assert exported["Content-Type"] == "application/xml"
    xml = exported.content
    assert b"decisionTable" in xml
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = page.post(
        "/settings/thresholds/import/?workflow=wait-review",
        {"workflow": "wait-review", "dmn": SimpleUploadedFile("gate.dmn", xml, "application/xml")},
    )
    assert response.status_code == 200
    assert response.context["values"]["cells"] == CELLS
    assert response.context["values"]["edges"] == EDGES
    broken = page.post(
        "/settings/thresholds/import/",
        {
            "workflow": "wait-review",
            "dmn": SimpleUploadedFile("x.dmn", b"<nope/>", "application/xml"),
        },
    )
    assert broken.status_code == 400
    assert ThresholdPolicy.objects.count() == 1  # importing saves nothing


def test_calibration_reports_qa_disagreement_per_cell_with_a_wilson_interval(
    page, run_all, bob, adam
):
    services.threshold_policy_save(
        workflow_slug="wait-review",
        edges=EDGES,
        cells=CELLS,
        sample_rates=RATES,
        reason="x",
        actor=adam,
    )
    reviews = []
    for _ in range(3):
        case = run_all(
            services.case_submit,
            workflow="wait-review",
            payload={"amount": "500"},
            actor=Actor.system("t"),
            confidence=0.99,
            impact="low",
        )
        run_all(
            services.case_signal,
            case=case,
            name="documents_received",
            data={},
            actor=Actor.system("t"),
        )
        reviews.append(case.step_runs.get(step_id="check"))
    services.qa_finding_record(step_run=reviews[0], reviewer=bob, agrees=True)
    services.qa_finding_record(step_run=reviews[1], reviewer=bob, agrees=False, note="wrong amount")
    with pytest.raises(services.ApplicationError):
        services.qa_finding_record(step_run=reviews[2], reviewer=bob, agrees=False)
    with pytest.raises(services.Conflict):
        services.qa_finding_record(step_run=reviews[0], reviewer=bob, agrees=True)
    rows = selectors.calibration_report("wait-review")
    assert len(rows) == 1
    row = rows[0]
    assert (row.cell, row.checked, row.disagreed) == ("low x [0.95, 1]", 2, 1)
    assert row.low < 0.5 < row.high
    assert "too few" in row.hint
    html = page.get("/settings/thresholds/?workflow=wait-review").content.decode()
    assert "low x [0.95, 1]" in html
    assert QaFinding.objects.count() == 2


def test_wilson_interval_behaves_at_the_edges():
    assert selectors.wilson_interval(0, 0) == (0.0, 1.0)
    low, high = selectors.wilson_interval(0, 100)
    assert low == 0.0 and 0.03 < high < 0.04
    low, high = selectors.wilson_interval(50, 100)
    assert 0.40 < low < 0.41 and 0.59 < high < 0.60


def test_reviewed_cases_export_as_jsonl(page, run_all, bob):
    import json

    case = run_all(
        services.case_submit,
        workflow="wait-review",
        payload={"amount": "500"},
        actor=Actor.system("t"),
        confidence=0.3,
        impact="high",
    )
    run_all(
        services.case_signal, case=case, name="documents_received", data={}, actor=Actor.system("t")
    )
    review = case.step_runs.get(step_id="check")
    run_all(services.review_step_complete, step_run=review, outcome="reject", actor=bob)
    response = page.get("/settings/thresholds/reviewed-cases.jsonl?workflow=wait-review")
    lines = [
        json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()
    ]
    assert len(lines) == 1
    assert lines[0]["verdict"] == "reject"
    assert lines[0]["cell"] == "high x [0, 0.5)"
    assert lines[0]["policy_version"] == 0
