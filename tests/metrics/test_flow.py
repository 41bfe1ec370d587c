"""Flow metrics on hand-built data with known answers, and the flow tab's page and CSV.

Times are fixed: NOW is a Tuesday noon (UTC); with period "day" the current period is
the 24 hours before NOW and the previous one the 24 hours before that.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from metrics import flow, svg
from orchestration.models import Case, CaseStatus, QaFinding, StepRun, Workflow
from review.models import Decision, DecisionRole, Verdict
from routing.models import ItemState, Queue, WorkItem

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
D = dt.timedelta(days=1)
FLOW_URL = reverse("metrics:flow")
CSV_URL = reverse("metrics:flow_csv")


class World:
    """Cases, items, decisions and QA findings with exactly the times a test names."""

    def __init__(self, maker: Any, checker: Any) -> None:
        self.maker, self.checker = maker, checker
        self.workflows: dict[str, Workflow] = {}
        self.queues: dict[str, Queue] = {}

    def workflow(self, slug: str) -> Workflow:
        if slug not in self.workflows:
            self.workflows[slug] = Workflow.objects.create(
                slug=slug, version=1, title=slug, definition={}
            )
        return self.workflows[slug]

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue.objects.create(name=name, title=name.title())
        return self.queues[name]

    def case(
        self,
        *,
        created: dt.datetime,
        finished: dt.datetime | None = None,
        workflow: str = "invoices",
        region: str = "eu",
        status: str = CaseStatus.APPROVED,
    ) -> Case:
        case = Case.objects.create(
            workflow=self.workflow(workflow),
            region=region,
            status=status if finished else CaseStatus.IN_REVIEW,
            finished_at=finished,
        )
        Case.objects.filter(pk=case.pk).update(created_at=created)
        case.refresh_from_db()
        return case

    def item(
        self,
        case: Case,
        *,
        queue: str = "invoices",
        enqueued: dt.datetime,
        claimed: dt.datetime | None = None,
        decided: dt.datetime | None = None,
        state: str | None = None,
        region: str | None = None,
        **fields: Any,
    ) -> WorkItem:
        run = StepRun.objects.create(case=case, step_id="review", kind="review")
        if state is None:
            state = ItemState.DONE if decided else ItemState.QUEUED
        if state == ItemState.CLAIMED:
            fields.setdefault("assignee", self.maker)
        return WorkItem.objects.create(
            case=case,
            step_run=run,
            kind="review",
            queue=self.queue(queue),
            region=case.region if region is None else region,
            enqueued_at=enqueued,
            rank_at=enqueued,
            claimed_at=claimed,
            decided_at=decided,
            state=state,
            **fields,
        )

    def decision(
        self,
        item: WorkItem,
        *,
        at: dt.datetime,
        role: str = DecisionRole.SINGLE,
        verdict: str = Verdict.APPROVE,
        agrees: bool | None = None,
        round_: int = 0,
    ) -> Decision:
        checker = role == DecisionRole.CHECKER
        decision = Decision.objects.create(
            work_item=item,
            case=item.case,
            reviewer=self.checker if checker else self.maker,
            maker=self.maker if checker else None,
            role=role,
            verdict=verdict,
            rationale="because",
            agrees_with_maker=agrees,
            round=round_,
        )
        Decision.objects.filter(pk=decision.pk).update(created_at=at)
        return decision

    def qa(self, *, cell: str, agrees: bool, at: dt.datetime, workflow: str = "invoices") -> None:
        case = self.case(created=at - H, finished=at - H, workflow=workflow)
        run = StepRun.objects.create(case=case, step_id="review", kind="review")
        finding = QaFinding.objects.create(
            step_run=run, reviewer=self.maker, agrees=agrees, policy_version=1, cell=cell
        )
        QaFinding.objects.filter(pk=finding.pk).update(created_at=at)


@pytest.fixture
def world(alice, bob) -> World:
    return World(maker=alice, checker=bob)


def report(group: str = "queue", period: str = "day", now: dt.datetime = NOW) -> flow.FlowReport:
    return flow.flow_report(flow.params_from({"group": group, "period": period}, now=now))


def ratio(value: Any) -> float | None:
    assert isinstance(value, flow.Ratio)
    return value.value


# Periods --------------------------------------------------------------------------------


def test_the_current_period_is_the_last_day_and_the_previous_the_day_before():
    params = flow.params_from({"period": "day"}, now=NOW)
    assert params.buckets[0] == (NOW - D, NOW)
    assert params.buckets[1] == (NOW - 2 * D, NOW - D)
    assert len(params.buckets) == 14
    assert params.start == NOW - 14 * D


def test_a_week_compares_seven_days_with_the_seven_before_over_twelve_weeks():
    params = flow.params_from({"period": "week", "group": "region"}, now=NOW)
    assert params.buckets[1] == (NOW - 14 * D, NOW - 7 * D)
    assert len(params.buckets) == 12
    assert params.group == "region"


def test_weekly_figures_count_seven_days_against_the_seven_before(world):
    world.case(created=NOW - 3 * D - H, finished=NOW - 3 * D)
    world.case(created=NOW - 6 * D - 2 * H, finished=NOW - 6 * D)
    world.case(created=NOW - 10 * D - 4 * H, finished=NOW - 10 * D)
    figures = report(period="week").totals
    assert figures["cases_finished"][:3] == [2, 1, 0]
    assert figures["lead_time_p50"][:2] == [dt.timedelta(hours=1.5), 4 * H]


def test_an_unknown_grouping_or_period_is_refused():
    with pytest.raises(flow.ApplicationError, match="group must be one of queue, workflow"):
        flow.params_from({"group": "colour"}, now=NOW)
    with pytest.raises(flow.ApplicationError, match="period must be one of day, week"):
        flow.params_from({"period": "fortnight"}, now=NOW)


# Percentiles ----------------------------------------------------------------------------


def test_percentiles_interpolate_between_neighbours_like_percentile_cont():
    values = {i: i * H for i in range(1, 11)}  # 1 h .. 10 h
    assert flow.interpolate(values, 10, 0.5) == dt.timedelta(hours=5.5)
    assert flow.interpolate(values, 10, 0.9) == dt.timedelta(hours=9.1)
    assert flow.interpolate({1: 3 * H}, 1, 0.9) == 3 * H


# Lead time, throughput and first-pass yield ---------------------------------------------


def test_lead_time_median_and_p90_of_cases_finished_in_each_period(world):
    for hours in range(1, 11):  # finished in the current period after 1 h .. 10 h
        world.case(created=NOW - 2 * H - hours * H, finished=NOW - 2 * H)
    for hours in (2, 4, 6, 8):  # finished in the previous period
        world.case(created=NOW - 30 * H - hours * H, finished=NOW - 30 * H)
    world.case(created=NOW - 5 * H)  # unfinished: no lead time yet
    figures = report(group="workflow").totals
    assert figures["lead_time_p50"][:2] == [dt.timedelta(hours=5.5), 5 * H]
    assert figures["lead_time_p90"][:2] == [dt.timedelta(hours=9.1), dt.timedelta(hours=7.4)]
    assert figures["cases_finished"][:2] == [10, 4]
    assert figures["lead_time_p50"][2] is None  # nothing finished two days ago


def test_first_pass_yield_excludes_returned_reassigned_and_disputed_cases(world):
    cases = [world.case(created=NOW - 5 * H, finished=NOW - 2 * H) for _ in range(10)]
    returned = world.item(cases[0], enqueued=NOW - 4 * H, decided=NOW - 3 * H)
    world.decision(returned, at=NOW - 3 * H, verdict=Verdict.RETURN)
    world.item(cases[1], enqueued=NOW - 4 * H, decided=NOW - 3 * H, reassignment_count=1)
    disputed = world.item(cases[2], enqueued=NOW - 4 * H, decided=NOW - 3 * H)
    world.decision(disputed, at=NOW - 4 * H, role=DecisionRole.MAKER)
    world.decision(disputed, at=NOW - 3 * H, role=DecisionRole.CHECKER, agrees=False)
    clean = world.item(cases[3], enqueued=NOW - 4 * H, decided=NOW - 3 * H)
    world.decision(clean, at=NOW - 3 * H)
    for _ in range(4):  # the previous day: all through on the first pass
        world.case(created=NOW - 30 * H, finished=NOW - 26 * H)
    figures = report().totals
    assert ratio(figures["first_pass_yield"][0]) == pytest.approx(0.7)
    assert ratio(figures["first_pass_yield"][1]) == 1.0
    metric = flow.metric_by_key("first_pass_yield", [])
    now, before = figures["first_pass_yield"][:2]
    assert told(metric, now, before) == ("-30.0 pp", "down", "worse")


def test_cases_count_in_the_queue_of_their_last_item_or_in_no_queue(world):
    moved = world.case(created=NOW - 6 * H, finished=NOW - 1 * H)
    world.item(moved, queue="triage", enqueued=NOW - 5 * H, decided=NOW - 4 * H)
    world.item(moved, queue="kyc", enqueued=NOW - 3 * H, decided=NOW - 2 * H)
    world.case(created=NOW - 2 * H, finished=NOW - 1 * H)  # approved by the gate alone
    groups = report(group="queue").groups
    assert groups["kyc"]["cases_finished"][0] == 1
    assert groups["kyc"]["lead_time_p50"][0] == 5 * H
    assert groups["triage"]["cases_finished"][0] == 0
    assert groups["(no queue)"]["cases_finished"][0] == 1
    assert groups["(no queue)"]["lead_time_p50"][0] == 1 * H


def test_regions_group_cases_and_items_by_their_own_region(world):
    for region, hours in (("eu", 2), ("eu", 4), ("us", 9)):
        case = world.case(created=NOW - hours * H - H, finished=NOW - H, region=region)
        world.item(case, enqueued=NOW - 3 * H, claimed=NOW - 2 * H, decided=NOW - 90 * M)
    result = report(group="region")
    assert result.group_names == ["eu", "us"]
    assert result.groups["eu"]["lead_time_p50"][0] == 3 * H
    assert result.groups["us"]["lead_time_p90"][0] == 9 * H
    assert result.groups["eu"]["items_decided"][0] == 2
    assert result.totals["items_decided"][0] == 3


# Queue time, handle time, throughput, reassignments, breaches ---------------------------


def test_queue_and_handle_times_of_items_claimed_and_decided_in_the_period(world):
    case = world.case(created=NOW - 10 * H)
    for wait, handle in ((10, 5), (20, 15), (30, 25)):
        world.item(
            case,
            enqueued=NOW - 5 * H,
            claimed=NOW - 5 * H + wait * M,
            decided=NOW - 5 * H + (wait + handle) * M,
        )
    world.item(case, enqueued=NOW - 30 * H, claimed=NOW - 29 * H, decided=NOW - 28 * H)
    figures = report().totals
    assert figures["queue_time_p50"][:2] == [20 * M, 1 * H]
    assert figures["queue_time_p90"][0] == 28 * M
    assert figures["handle_time_p50"][:2] == [15 * M, 1 * H]
    assert figures["handle_time_p90"][0] == 23 * M
    assert figures["items_decided"][:2] == [3, 1]


def test_reassignments_of_closed_items_and_breaches_by_when_they_happened(world):
    case = world.case(created=NOW - 40 * H)
    world.item(case, enqueued=NOW - 6 * H, decided=NOW - 1 * H, reassignment_count=2)
    world.item(
        case,
        enqueued=NOW - 6 * H,
        decided=NOW - 2 * H,
        state=ItemState.CANCELLED,
        reassignment_count=1,
    )
    world.item(case, enqueued=NOW - 3 * H, reassignment_count=5)  # still open: not yet
    world.item(case, enqueued=NOW - 30 * H, breached_at=NOW - 3 * H)
    world.item(case, enqueued=NOW - 30 * H, breached_at=NOW - 4 * H, decided=NOW - 2 * H)
    world.item(case, enqueued=NOW - 40 * H, breached_at=NOW - 28 * H, decided=NOW - 27 * H)
    figures = report().totals
    assert figures["reassignments"][:2] == [3, 0]
    assert figures["breaches"][:2] == [2, 1]
    assert figures["items_decided"][0] == 2  # done ones only; the cancelled one is not


def test_backlog_aging_now_and_at_the_end_of_the_previous_period(world):
    case = world.case(created=NOW - 50 * H)
    for age in (30 * M, 2 * H, 5 * H, 30 * H):
        world.item(case, enqueued=NOW - age)
    world.item(case, enqueued=NOW - 26 * H, decided=NOW - 3 * H)  # open at NOW - 24 h
    world.item(case, enqueued=NOW - 40 * H, decided=NOW - 25 * H)  # gone by then
    result = report()
    keys = [f"backlog_age_{b.key}" for b in result.ages]
    assert keys == ["backlog_age_lt1", "backlog_age_1-4", "backlog_age_4-24", "backlog_age_gt24"]
    assert [result.totals[k][0] for k in keys] == [1, 1, 1, 1]
    # At NOW - 24 h: the 30-hour item was 6 hours old, the 26-hour one 2 hours.
    assert [result.totals[k][1] for k in keys] == [0, 1, 1, 0]
    assert result.totals["backlog"][:2] == [4, 2]


# Agreement and QA -----------------------------------------------------------------------


def test_four_eyes_agreement_is_agreeing_checkers_over_all_checkers(world):
    case = world.case(created=NOW - 10 * H)
    for index, agrees in enumerate((True, True, True, False)):
        item = world.item(case, enqueued=NOW - 5 * H, decided=NOW - 2 * H)
        world.decision(item, at=NOW - 3 * H, role=DecisionRole.MAKER)
        world.decision(item, at=NOW - 2 * H - index * M, role=DecisionRole.CHECKER, agrees=agrees)
    previous = world.item(case, enqueued=NOW - 30 * H, decided=NOW - 28 * H)
    world.decision(previous, at=NOW - 29 * H, role=DecisionRole.MAKER)
    world.decision(previous, at=NOW - 28 * H, role=DecisionRole.CHECKER, agrees=True)
    figures = report().totals
    assert figures["checker_agreement"][0] == flow.Ratio(3, 4)
    assert ratio(figures["checker_agreement"][1]) == 1.0


def test_qa_disagreement_per_threshold_cell(world):
    for agrees in (True, True, True, False):
        world.qa(cell="high x [0.9, 1]", agrees=agrees, at=NOW - 2 * H)
    for _ in range(2):
        world.qa(cell="low x [0.95, 1]", agrees=False, at=NOW - 3 * H)
    world.qa(cell="low x [0.95, 1]", agrees=True, at=NOW - 30 * H)
    rows = {row.cell: row.values for row in report().qa}
    assert rows["high x [0.9, 1]"][0] == flow.Ratio(1, 4)
    assert rows["low x [0.95, 1]"][:2] == [flow.Ratio(2, 2), flow.Ratio(0, 1)]


# Presentation ---------------------------------------------------------------------------


def plain(text: str) -> str:
    """A change as typed: hyphen-minus and plain spaces for the page's minus sign and
    no-break spaces."""
    return text.replace(flow.MINUS, "-").replace(flow.NBSP, " ")


def told(metric: flow.Metric, current: Any, previous: Any) -> tuple[str, str, str]:
    change = flow.change(metric, current, previous)
    return plain(change.text), change.direction, change.verdict


def test_changes_are_told_in_words_and_numbers_not_colour_alone():
    count = flow.metric_by_key("items_decided", [])
    breaches = flow.metric_by_key("breaches", [])
    lead = flow.metric_by_key("lead_time_p50", [])
    assert told(count, 15, 12) == ("+3 (+25 %)", "up", "better")
    assert told(breaches, 15, 12) == ("+3 (+25 %)", "up", "worse")
    assert told(count, 4, 0) == ("+4", "up", "better")
    assert told(count, 5, 5) == ("±0 (±0 %)", "same", "")
    assert told(lead, 2 * H, 3 * H + 5 * M) == ("-1 h 5 min", "down", "better")
    assert told(lead, 2 * H, 2 * H + 30 * dt.timedelta(seconds=1)) == ("±0 min", "same", "")
    assert told(lead, None, 3 * H) == ("", "", "")
    assert flow.format_value(lead, None) == "—"
    assert flow.format_value(flow.metric_by_key("first_pass_yield", []), flow.Ratio(7, 8)) == (
        "87.5 %"
    )


def test_line_charts_escape_their_labels_and_leave_gaps_where_nothing_was_measured():
    chart = svg.multi_line(
        chart_id="c",
        title="Lead <time>",
        labels=["1 Mar", "2 Mar", "3 Mar", "4 Mar"],
        series=[svg.Series("<b>p50</b>", [1.0, None, 2.0, 3.0])],
        fmt=lambda hours: f"{hours:g} hours",
    )
    assert "<b>" not in chart
    assert "Lead &lt;time&gt;" in chart
    assert "<title>&lt;b&gt;p50&lt;/b&gt;, 4 Mar: 3 hours</title>" in chart
    assert chart.count("<polyline") == 1  # 1 Mar stands alone; 3 and 4 Mar are joined
    assert "3 hours in the latest period (4 Mar), highest 3 hours (4 Mar)" in chart
    empty = svg.multi_line(chart_id="e", title="t", labels=["1 Mar"], series=[])
    assert "No data yet." in empty


# The page -------------------------------------------------------------------------------


def test_the_flow_tab_is_for_managers_and_admins_only(client, alice, mallory, maria, adam):
    response = client.get(FLOW_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    for person, status in ((mallory, 403), (alice, 403), (maria, 200), (adam, 200)):
        client.force_login(person)
        assert client.get(FLOW_URL).status_code == status
        assert client.get(CSV_URL).status_code == status


def test_the_page_shows_each_figure_beside_its_change_and_draws_the_charts(client, maria, world):
    now = timezone.now()
    for hours in (1, 2, 3):
        world.case(created=now - 3 * H - hours * H, finished=now - 3 * H)
    world.case(created=now - 30 * H, finished=now - 28 * H)
    client.force_login(maria)
    html = client.get(FLOW_URL, {"group": "workflow"}).content.decode()
    assert '<nav aria-label="Dashboard sections" class="tabs">' in html
    assert 'href="/dashboard/flow/" aria-current="page"' in html
    assert "+2\N{NO-BREAK SPACE}(+200\N{NO-BREAK SPACE}%)" in html  # cases finished: 3 against 1
    assert 'id="throughput-chart-title"' in html
    assert 'id="lead-time-chart-title"' in html
    assert 'id="aging-chart-title"' in html
    assert f'href="{CSV_URL}?group=workflow&amp;period=day"' in html


def test_htmx_gets_only_the_results(client, maria):
    client.force_login(maria)
    response = client.get(FLOW_URL, {"period": "week"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="results"')
    assert "<html" not in html
    assert response["Vary"] == "HX-Request, Cookie"


def test_a_bad_choice_is_a_400_that_says_what_is_wrong(client, maria):
    client.force_login(maria)
    response = client.get(FLOW_URL, {"group": "<b>x</b>"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "group must be one of queue, workflow, region" in html
    assert "<b>x</b>" not in html
    assert client.get(CSV_URL, {"period": "year"}).status_code == 400


def test_group_names_are_escaped_in_the_table_and_the_charts(client, maria, world):
    case = world.case(created=timezone.now() - 3 * H, region="<script>x</script>")
    world.item(case, enqueued=timezone.now() - 2 * H)
    client.force_login(maria)
    html = client.get(FLOW_URL, {"group": "region"}).content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


# session, user, roles; items, checkers, cases; three durations x (per group, overall); QA
PAGE_QUERIES = 13


@pytest.mark.parametrize("queues", [2, 6])
def test_the_page_costs_the_same_queries_for_any_number_of_groups(
    client, maria, world, queues, django_assert_num_queries
):
    now = timezone.now()
    for index in range(queues):
        case = world.case(created=now - 5 * H, finished=now - H)
        world.item(case, queue=f"q{index}", enqueued=now - 4 * H, claimed=now - 3 * H)
        world.item(
            case, queue=f"q{index}", enqueued=now - 4 * H, claimed=now - 3 * H, decided=now - 2 * H
        )
    client.force_login(maria)
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get(FLOW_URL)
    assert response.content.decode().count('<th scope="row">q') == queues
    with django_assert_num_queries(PAGE_QUERIES):
        client.get(FLOW_URL, headers={"HX-Request": "true"})
    with django_assert_num_queries(PAGE_QUERIES):
        client.get(CSV_URL)


# CSV ------------------------------------------------------------------------------------


def test_the_csv_holds_every_period_group_and_metric_in_long_form(client, maria, world):
    now = timezone.now()
    for hours in range(1, 11):
        world.case(created=now - 2 * H - hours * H, finished=now - 2 * H, region="eu")
    hostile = world.case(created=now - 3 * H, region="=HYPERLINK(1)")
    world.item(hostile, enqueued=now - 2 * H)
    client.force_login(maria)
    response = client.get(CSV_URL, {"group": "region", "period": "day"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="flow-region-day-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == list(flow.CSV_HEADER)
    latest = rows[-1][1]
    by_key = {(r[3], r[4]): r[5] for r in rows[1:] if r[1] == latest}
    assert by_key[("all", "lead_time_p50_seconds")] == str(int(5.5 * 3600))
    assert by_key[("eu", "lead_time_p90_seconds")] == str(int(9.1 * 3600))
    assert by_key[("eu", "cases_finished")] == "10"
    assert by_key[("eu", "first_pass_yield")] == "1.0000"
    assert by_key[("eu", "first_pass_yield_of")] == "10"
    assert by_key[("all", "checker_agreement")] == ""  # no checker decisions
    # A region that looks like a formula is defused for spreadsheets.
    assert by_key[("'=HYPERLINK(1)", "backlog")] == "1"
    periods = sorted({(r[0], r[1]) for r in rows[1:]})
    assert len(periods) == 14
