import datetime as dt
import random
from collections import defaultdict
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from audit.context import Actor
from orchestration.models import Case, StepRun, Workflow
from routing import dashboard, svg
from routing.models import OPEN_STATES, ItemState, Queue, ReviewerProfile, WorkItem
from routing.services import queue_grant

pytestmark = pytest.mark.django_db
system = Actor.system("test")
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
US = dt.timedelta(microseconds=1)
DASH = dashboard.EN_DASH


@pytest.fixture
def case_run(db):
    workflow = Workflow.objects.create(slug="dash", version=1, title="Dashboard", definition={})
    case = Case.objects.create(workflow=workflow)
    return case, StepRun.objects.create(case=case, step_id="review", kind="review")


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def add(case_run, now, django_user_model):
    """Create items from (queue, age, fields) in one bulk insert, the way the claiming
    tests do; times are relative to `now`. A claimed item without an assignee is
    held by a stand-in reviewer (the database insists a claimed item has a holder)."""
    case, run = case_run
    holder = django_user_model.objects.create(username="holder")

    def make(queue, *specs):
        items = []
        for age, fields in specs:
            if fields.get("state") == ItemState.CLAIMED:
                fields = {"assignee": holder, **fields}
            enqueued = now - age
            items.append(
                WorkItem(
                    case=case,
                    step_run=run,
                    kind="review",
                    queue=queue,
                    enqueued_at=enqueued,
                    rank_at=enqueued,
                    **fields,
                )
            )
        return WorkItem.objects.bulk_create(items)

    return make


@pytest.fixture
def invoices(db):
    return Queue.objects.create(name="invoices", title="Invoices", wip_limit=2)


@pytest.fixture
def kyc(db):
    return Queue.objects.create(name="kyc", title="KYC checks")


@pytest.fixture
def known(add, invoices, now):
    """Invoices: seven open items (one per age bucket and more), one decided today,
    one decided long ago, one cancelled today."""
    return dict(
        zip(
            [
                "fresh",
                "two_hours",
                "at_risk",
                "breached",
                "oldest",
                "claimed",
                "awaiting",
                "done_today",
                "done_long_ago",
                "cancelled",
            ],
            add(
                invoices,
                (30 * M, {}),
                (2 * H, {}),
                (2 * H, {"warned_at": now - 10 * M}),
                (10 * H, {"warned_at": now - 3 * H, "breached_at": now - 1 * H}),
                (30 * H, {"reassignment_count": 2}),
                (
                    3 * H,
                    {
                        "state": ItemState.CLAIMED,
                        "claimed_at": now - 2 * H,
                        "reassignment_count": 1,
                    },
                ),
                (5 * H, {"state": ItemState.AWAITING_CHECKER, "claimed_at": now - 4 * H - 40 * M}),
                (
                    6 * H,
                    {
                        "state": ItemState.DONE,
                        "claimed_at": now - 5 * H - 30 * M,
                        "decided_at": now - 1 * H,
                        "reassignment_count": 1,
                    },
                ),
                (
                    72 * H,
                    {
                        "state": ItemState.DONE,
                        "claimed_at": now - 60 * H,
                        "decided_at": now - 48 * H,
                        "reassignment_count": 5,
                    },
                ),
                (12 * H, {"state": ItemState.CANCELLED, "decided_at": now - 1 * H}),
            ),
            strict=True,
        )
    )


def figures_of(now, filters=None):
    buckets = dashboard.age_buckets()
    rows = dashboard.dashboard_figures(
        filters=filters or dashboard.Filters(), now=now, buckets=buckets
    )
    return {row.queue.name: row for row in rows}


# The figures -----------------------------------------------------------------------------


def test_open_items_fall_into_the_four_age_buckets(known, now):
    row = figures_of(now)["invoices"]
    assert row.backlog == 7
    assert [(b.label, n) for b, n in row.buckets] == [
        ("< 1 h", 1),
        (f"1{DASH}4 h", 3),
        (f"4{DASH}24 h", 2),
        ("> 24 h", 1),
    ]


def test_at_risk_and_breached_items_are_counted_apart(known, now):
    row = figures_of(now)["invoices"]
    assert (row.at_risk, row.breached) == (1, 1)


def test_the_oldest_open_item_and_its_age(known, now):
    row = figures_of(now)["invoices"]
    assert row.oldest_id == known["oldest"].pk
    assert row.oldest_age == 30 * H
    assert row.oldest_age_text == "1 d 6 h"


def test_wip_counts_claimed_items_against_the_limit(known, add, invoices, now):
    row = figures_of(now)["invoices"]
    assert (row.wip, row.wip_full) == (1, False)
    add(invoices, (1 * H, {"state": ItemState.CLAIMED, "claimed_at": now - 10 * M}))
    assert figures_of(now)["invoices"].wip_full


def test_throughput_counts_only_items_done_in_the_last_day(known, now):
    assert figures_of(now)["invoices"].throughput == 1


def test_reassignments_of_open_and_recent_items_are_summed(known, now):
    assert figures_of(now)["invoices"].reassignments == 2 + 1 + 1


def test_median_queue_time_of_items_claimed_today(known, now):
    # Waits of the claimed (1 h), awaiting (20 min) and done (30 min) items.
    assert figures_of(now)["invoices"].median_wait == 30 * M


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(add, kyc, now):
    add(
        kyc,
        *[
            (wait + 1 * H, {"state": ItemState.CLAIMED, "claimed_at": now - 1 * H})
            for wait in (10 * M, 20 * M, 50 * M, 3 * H)
        ],
    )
    row = figures_of(now)["kyc"]
    assert row.median_wait == 35 * M
    assert row.median_wait_text == "35 min"


def test_medians_are_exact_to_the_microsecond_for_odd_and_even_counts(add, now):
    """Waits a random number of microseconds long, in queues of 1 to 9 claims: the
    median is the middle wait, or the mean of the middle two rounded half to even
    (the halves come up: many pairs differ by an odd number of microseconds), on
    every database alike. (PostgreSQL's percentile_cont rounds half the difference
    instead, and the page's figure on PostgreSQL once came out a microsecond away
    from SQLite's.)"""
    rng = random.Random(20261127)  # noqa: S311 - test data, not secrets
    expected = {}
    for size in range(1, 10):
        queue = Queue.objects.create(name=f"q{size}", title=f"Queue {size}")
        claimed_at = now - 2 * H
        waits = [US * rng.randint(1, 3 * 10**9) for _ in range(size)]
        add(
            queue,
            *[
                (wait + 2 * H, {"state": ItemState.CLAIMED, "claimed_at": claimed_at})
                for wait in waits
            ],
        )
        expected[queue.pk] = _median(waits)
    got = dashboard.median_queue_times(filters=dashboard.Filters(), now=now)
    assert got == expected


def test_a_queue_without_items_shows_zeros(kyc, now):
    row = figures_of(now)["kyc"]
    assert (row.backlog, row.bucket_counts, row.oldest_id, row.median_wait) == (
        0,
        [0, 0, 0, 0],
        None,
        None,
    )


def test_bucket_edges_come_from_settings(settings, known, now):
    settings.ARBITER_DASHBOARD_AGE_BUCKETS = (3, 12)
    row = figures_of(now)["invoices"]
    assert [(b.label, n) for b, n in row.buckets] == [
        ("< 3 h", 3),
        (f"3{DASH}12 h", 3),
        ("> 12 h", 1),
    ]


def test_many_age_buckets_fit_in_the_open_counts(settings, known, now):
    """Each bucket is one more count in the queue's counts column: a hundred edges (107
    counts, more than the 100 arguments a PostgreSQL function takes) still count every
    open item once."""
    settings.ARBITER_DASHBOARD_AGE_BUCKETS = tuple(range(1, 101))
    row = figures_of(now)["invoices"]
    assert len(row.buckets) == 101
    assert sum(row.bucket_counts) == row.backlog == 7
    # Ages 30 min, 2 h twice, 3 h, 5 h, 10 h and 30 h.
    assert {b.label: n for b, n in row.buckets if n} == {
        "< 1 h": 1,
        f"2{DASH}3 h": 2,
        f"3{DASH}4 h": 1,
        f"5{DASH}6 h": 1,
        f"10{DASH}11 h": 1,
        f"30{DASH}31 h": 1,
    }


def test_the_backlog_line_has_an_hourly_point_for_the_last_day(add, invoices, now):
    add(
        invoices,
        (10 * H, {}),
        (20 * H, {"state": ItemState.DONE, "decided_at": now - 5 * H}),
        (12 * H, {"state": ItemState.CANCELLED, "decided_at": now - 3 * H}),
        (50 * H, {"state": ItemState.DONE, "decided_at": now - 30 * H}),
    )
    series = dashboard.backlog_series(filters=dashboard.Filters(), now=now)
    assert len(series) == 25
    assert series[-1] == (now, 1)
    counts = [count for _, count in series]
    assert counts[0] == 0  # 24 h ago: only the item decided 30 h ago had come, and gone
    assert counts[24 - 15] == 1  # 15 h ago: the item enqueued 20 h ago
    assert counts[24 - 10] == 3  # 10 h ago: that one, the cancelled one and the new one
    assert counts[24 - 4] == 2  # 4 h ago: the first one was decided


def _median(waits):
    """The median by definition: the middle wait, or the mean of the middle two."""
    ordered = sorted(waits)
    middle = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return sum(middle, dt.timedelta()) / len(middle)


def _by_definition(items, now, buckets):
    """The page's figures computed row by row from their definitions, in Python."""
    since = now - dashboard.WINDOW
    points = dashboard.backlog_points(now)
    figures: dict[int, dict[str, Any]] = {}
    waits: dict[int, list[dt.timedelta]] = defaultdict(list)
    for item in items:
        is_open = item.state in OPEN_STATES
        in_window = is_open or (item.decided_at is not None and item.decided_at >= since)
        if not in_window:
            continue
        row = figures.setdefault(
            item.queue_id,
            dict.fromkeys(
                ["backlog", "at_risk", "breached", "wip", "throughput", "reassignments"], 0
            )
            | {"buckets": [0] * len(buckets), "median_wait": None},
        )
        if item.claimed_at is not None and since <= item.claimed_at <= now:
            waits[item.queue_id].append(item.claimed_at - item.enqueued_at)
            row["median_wait"] = _median(waits[item.queue_id])
        row["reassignments"] += item.reassignment_count
        if item.state == ItemState.DONE and item.decided_at >= since:
            row["throughput"] += 1
        if not is_open:
            continue
        row["backlog"] += 1
        row["at_risk"] += item.warned_at is not None and item.breached_at is None
        row["breached"] += item.breached_at is not None
        row["wip"] += item.state == ItemState.CLAIMED
        for i, bucket in enumerate(buckets):
            low_ok = bucket.low is None or item.enqueued_at <= now - bucket.low
            high_ok = bucket.high is None or item.enqueued_at > now - bucket.high
            row["buckets"][i] += low_ok and high_ok
    backlog = []
    for t in points:
        count = 0
        for item in items:
            in_window = item.state in OPEN_STATES or (
                item.decided_at is not None and item.decided_at >= since
            )
            still_there = item.decided_at is None and item.state != ItemState.CANCELLED
            if (
                in_window
                and item.enqueued_at <= now
                and item.enqueued_at <= t
                and (still_there or item.decided_at > t)
            ):
                count += 1
        backlog.append((t, count))
    return figures, backlog


def test_the_figures_and_the_backlog_line_match_their_definitions(add, invoices, kyc, now):
    """Many items at awkward times, on backlog points to the microsecond and between
    them, enqueued in the future, decided long ago: the grouped SQL counts what the
    definitions say."""
    rng = random.Random(20261126)  # noqa: S311 - test data, not secrets
    open_states = [ItemState.QUEUED, ItemState.CLAIMED, ItemState.AWAITING_CHECKER]
    for queue in (invoices, kyc):
        specs = []
        for n in range(120):
            if n % 4 == 0:  # on an hour point, or a microsecond either side of it
                age = H * rng.randint(-2, 40) + US * rng.choice([0, 0, 1, -1])
            else:
                age = M * rng.randint(-90, 2400)
            state = rng.choice([*open_states, ItemState.DONE, ItemState.CANCELLED])
            fields = {"state": state, "reassignment_count": rng.randint(0, 3)}
            if state in open_states:
                if rng.random() < 0.3:
                    fields["warned_at"] = now - M
                    if rng.random() < 0.5:
                        fields["breached_at"] = now - M
            else:
                decided_age = min(age, H * rng.randint(0, 40))
                if n % 3 == 0:
                    decided_age = H * rng.randint(0, 24)  # on a point
                fields["decided_at"] = now - decided_age
            if state == ItemState.CLAIMED:
                fields["claimed_at"] = now - M
            elif state == ItemState.DONE:  # claimed some minutes before the decision
                fields["claimed_at"] = now - decided_age - M * (n % 7) - US * (n % 2)
            specs.append((age, fields))
        # The first point is an edge of its own (counted apart from the later ones):
        # open items on it and a microsecond either side of it, each state.
        specs += [(24 * H + US * d, {"state": s}) for d in (-1, 0, 1) for s in open_states]
        add(queue, *specs)
    buckets = dashboard.age_buckets()
    items = list(WorkItem.objects.all())
    expected, expected_backlog = _by_definition(items, now, buckets)
    got = {
        row.queue.pk: {
            "backlog": row.backlog,
            "at_risk": row.at_risk,
            "breached": row.breached,
            "wip": row.wip,
            "throughput": row.throughput,
            "reassignments": row.reassignments,
            "buckets": row.bucket_counts,
            "median_wait": row.median_wait,
        }
        for row in dashboard.dashboard_figures(
            filters=dashboard.Filters(), now=now, buckets=buckets
        )
    }
    assert got == expected
    assert dashboard.backlog_series(filters=dashboard.Filters(), now=now) == expected_backlog
    assert any(count for _, count in expected_backlog[:-1])  # the line is not flat zeros
    # Later, off the hour and the minute: on PostgreSQL the SQL built for the first
    # call is reused with its times shifted, and must still count what the rules say.
    later = now + 37 * M + 5 * US
    _, expected_later = _by_definition(items, later, buckets)
    assert dashboard.backlog_series(filters=dashboard.Filters(), now=later) == expected_later
    assert expected_later != expected_backlog


def test_the_window_scan_sql_is_built_once_per_shape_on_postgresql(add, invoices, now):
    """PostgreSQL reuses the scan's SQL (built at a fixed origin) for every request of
    the same filters and buckets; other databases build it each time."""
    add(invoices, (2 * H, {}), (30 * H, {"state": ItemState.DONE, "decided_at": now - 2 * H}))
    dashboard._scan_sql.cache_clear()
    buckets = dashboard.age_buckets()
    with mock.patch.object(dashboard, "_scan_querysets", wraps=dashboard._scan_querysets) as built:
        for minutes in (0, 1, 90):
            scan = dashboard.window_scan(
                filters=dashboard.Filters(), now=now + minutes * M, buckets=buckets
            )
            assert scan.per_queue()[invoices.pk]["backlog"] == 1
        dashboard.window_scan(filters=dashboard.Filters(region="eu"), now=now, buckets=buckets)
    assert built.call_count == (2 if connection.vendor == "postgresql" else 4)


# Filters ----------------------------------------------------------------------------------


@pytest.fixture
def spread(add, invoices, kyc):
    add(invoices, (1 * H, {"region": "eu", "skills": ["invoices"]}))
    add(invoices, (1 * H, {"region": "us", "skills": ["invoices"]}))
    add(kyc, (2 * H, {"region": "eu", "skills": ["kyc", "aml"]}))
    add(kyc, (2 * H, {"region": "eu", "skills": ["kyc-lite"]}))


def test_filters_restrict_items_by_region_and_skill(spread, now):
    by_region = figures_of(now, dashboard.Filters(region="eu"))
    assert {name: row.backlog for name, row in by_region.items()} == {"invoices": 1, "kyc": 2}
    by_skill = figures_of(now, dashboard.Filters(skill="kyc"))
    assert {name: row.backlog for name, row in by_skill.items()} == {"kyc": 1}
    both = figures_of(now, dashboard.Filters(region="us", skill="kyc"))
    assert both == {}


def test_an_unknown_filter_value_gives_empty_results(spread, client, maria):
    client.force_login(maria)
    response = client.get("/dashboard/?region=mars")
    assert response.status_code == 200
    assert "No queue has items matching these filters." in response.content.decode()


def test_a_malformed_filter_is_refused_with_a_clear_message(client, maria):
    client.force_login(maria)
    response = client.get("/dashboard/", {"skill": "<b>kyc</b>"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "skill must be a code of up to 64 letters, digits, hyphens or underscores" in html
    assert "&lt;b&gt;kyc&lt;/b&gt;" in html and "<b>kyc</b>" not in html


# The page -----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(client, invoices):
    for url in ("/dashboard/", "/dashboard/queues/invoices/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith("/accounts/login/")


@pytest.mark.parametrize("person", ["mallory", "alice", "audrey"])
def test_only_managers_and_admins_may_look(client, person, request, known, invoices):
    client.force_login(request.getfixturevalue(person))
    assert client.get("/dashboard/").status_code == 403
    assert client.get("/dashboard/queues/invoices/").status_code == 403
    ids = [known["fresh"].pk]
    data = {"item": ids, "reason": "because", "to_user": "", "queue": "invoices"}
    assert client.post("/dashboard/queues/invoices/reassign/", data).status_code == 403
    assert client.post("/dashboard/queues/invoices/move/", data).status_code == 403
    assert WorkItem.objects.get(pk=ids[0]).reassignment_count == 0


@pytest.mark.parametrize("person", ["maria", "adam"])
def test_managers_and_admins_see_the_figures(client, person, request, known):
    client.force_login(request.getfixturevalue(person))
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Invoices" in html
    assert "1 at risk" in html and "1 breached" in html
    assert f'href="/dashboard/queues/invoices/#item-{known["oldest"].pk}">1 d 6 h</a>' in html
    assert "1 / 2" in html  # WIP against the limit
    assert "30 min" in html  # median queue time
    assert 'hx-trigger="every 30s"' in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 2


def test_managers_land_on_the_dashboard(client, maria):
    client.force_login(maria)
    assert client.get("/", follow=True).redirect_chain[-1][0] == "/dashboard/"


def test_htmx_refresh_returns_only_the_summary(client, maria, known):
    client.force_login(maria)
    response = client.get("/dashboard/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="summary"')
    assert "<html" not in html and "<form" not in html
    assert "HX-Request" in response["Vary"]


def _queues_with_items(add, count):
    for n in range(count):
        queue = Queue.objects.create(name=f"q{n}", title=f"Queue {n}", wip_limit=3)
        add(
            queue,
            (30 * M, {}),
            (5 * H, {"warned_at": timezone.now()}),
            (2 * H, {"state": ItemState.CLAIMED, "claimed_at": timezone.now() - 1 * H}),
            (
                3 * H,
                {
                    "state": ItemState.DONE,
                    "claimed_at": timezone.now() - 2 * H,
                    "decided_at": timezone.now() - 1 * H,
                },
            ),
        )


# session, user, roles, window scan, queues, medians, region and skill hints
PAGE_QUERIES = 8
# session, user, roles, window scan, queues, medians
SUMMARY_QUERIES = 6


@pytest.mark.parametrize("queues", [2, 5])
def test_the_page_costs_the_same_queries_for_any_number_of_queues(
    client, maria, add, queues, django_assert_num_queries
):
    _queues_with_items(add, queues)
    client.force_login(maria)
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get("/dashboard/?region=&skill=")
    assert response.content.decode().count('href="/dashboard/queues/q') >= queues
    with django_assert_num_queries(SUMMARY_QUERIES):
        client.get("/dashboard/", headers={"HX-Request": "true"})


def test_queue_titles_are_escaped_in_the_charts_and_the_table(client, maria, add):
    hostile = Queue.objects.create(name="hostile", title="<script>x</script>")
    add(hostile, (2 * H, {}))
    client.force_login(maria)
    html = client.get("/dashboard/").content.decode()
    assert "<script>x</script>" not in html
    assert "<title>&lt;script&gt;x&lt;/script&gt;</title>" in html  # the bar's label
    assert f"&lt;script&gt;x&lt;/script&gt;: 1 item 1{DASH}4 h" in html  # the segment's title


def test_charts_are_named_and_described_for_screen_readers():
    bars = svg.stacked_bars(
        chart_id="c",
        title="Open items per queue by age",
        categories=["A & B"],
        series=["< 1 h", "> 1 h"],
        values=[[2, 3]],
    )
    assert 'role="img"' in bars and 'aria-labelledby="c-title c-desc"' in bars
    assert '<desc id="c-desc">A &amp; B: 5 (2 &lt; 1 h, 3 &gt; 1 h)</desc>' in bars
    now = timezone.now()
    line = svg.line_chart(chart_id="l", title="Backlog", points=[(now - H, 4), (now, 2)])
    assert '<title id="l-title">Backlog</title>' in line
    assert "highest 4" in line and line.count("<circle") == 2


# Drill-down -----------------------------------------------------------------------------------


def test_the_drill_down_lists_the_open_items_of_the_queue(client, maria, known, add, kyc):
    (elsewhere,) = add(kyc, (1 * H, {}))
    client.force_login(maria)
    response = client.get("/dashboard/queues/invoices/")
    html = response.content.decode()
    shown = {item.pk for item in response.context["page"].object_list}
    open_names = ["fresh", "two_hours", "at_risk", "breached", "oldest", "claimed", "awaiting"]
    assert shown == {known[name].pk for name in open_names}
    assert elsewhere.pk not in shown
    # oldest first, with the SLA state in words
    assert response.context["rows"][0].item.pk == known["oldest"].pk
    assert ">breached</span>" in html and ">at risk</span>" in html and ">on time</span>" in html
    assert str(known["oldest"].case_id) in html


def test_the_drill_down_filters_by_age_bucket_and_sla_state(client, maria, known):
    client.force_login(maria)

    def shown(query):
        response = client.get(f"/dashboard/queues/invoices/?{query}")
        assert response.status_code == 200
        return {item.pk for item in response.context["page"].object_list}

    assert shown("bucket=1-4") == {known[n].pk for n in ("two_hours", "at_risk", "claimed")}
    assert shown("bucket=gt24") == {known["oldest"].pk}
    assert shown("sla=breached") == {known["breached"].pk}
    assert shown("sla=at_risk") == {known["at_risk"].pk}
    assert shown("sla=at_risk&bucket=4-24") == set()


# session, user, roles, the queue, the item count, a page of items with assignees,
# reviewers and queues for the bulk form
QUEUE_PAGE_QUERIES = 8


def test_the_drill_down_costs_the_same_queries_for_any_number_of_items(
    client, maria, add, invoices, alice, django_assert_num_queries
):
    client.force_login(maria)
    for count in (3, 60):
        add(
            invoices,
            *[(n * M, {"state": ItemState.CLAIMED, "assignee": alice}) for n in range(count)],
        )
        with django_assert_num_queries(QUEUE_PAGE_QUERIES):
            response = client.get("/dashboard/queues/invoices/")
        assert "alice" in response.content.decode()


def test_a_malformed_drill_down_filter_is_a_400(client, maria, invoices):
    client.force_login(maria)
    response = client.get("/dashboard/queues/invoices/?bucket=ancient")
    assert response.status_code == 400
    assert "bucket must be one of lt1, 1-4, 4-24, gt24" in response.content.decode()
    assert client.get("/dashboard/queues/invoices/?sla=late").status_code == 400
    assert client.get("/dashboard/queues/nope/").status_code == 404


def test_the_drill_down_pages_by_fifty(client, maria, add, invoices):
    add(invoices, *[(n * M, {}) for n in range(1, 61)])
    client.force_login(maria)
    first = client.get("/dashboard/queues/invoices/")
    assert len(first.context["rows"]) == 50
    assert "page=2" in first.content.decode()
    second = client.get("/dashboard/queues/invoices/?page=2")
    assert len(second.context["rows"]) == 10


# Bulk actions ---------------------------------------------------------------------------------


@pytest.fixture
def alice_works_invoices(alice, invoices):
    ReviewerProfile.objects.create(user=alice, skills={}, regions=["eu"], capacity=10)
    queue_grant(queue=invoices, user=alice, actor=system)
    return alice


def test_a_manager_reassigns_selected_items_to_a_reviewer(
    client, maria, known, alice_works_invoices
):
    picked = [known["fresh"].pk, known["two_hours"].pk]
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/reassign/?sla=",
        {"item": picked, "to_user": alice_works_invoices.pk, "reason": "alice knows the vendor"},
    )
    assert response.status_code == 302
    assert response.url == "/dashboard/queues/invoices/?sla="
    for item in WorkItem.objects.filter(pk__in=picked):
        assert (item.state, item.assignee, item.reassignment_count) == (
            ItemState.CLAIMED,
            alice_works_invoices,
            1,
        )
    page = client.get(response.url).content.decode()
    assert "Reassigned 2 items to alice." in page


def test_a_manager_sends_items_back_to_the_queue(client, maria, known):
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/reassign/",
        {"item": [known["claimed"].pk], "to_user": "", "reason": "holder is ill"},
    )
    assert response.status_code == 302
    item = WorkItem.objects.get(pk=known["claimed"].pk)
    assert (item.state, item.assignee) == (ItemState.QUEUED, None)


def test_a_manager_moves_selected_items_to_another_queue(client, maria, known, kyc):
    picked = [known["fresh"].pk, known["breached"].pk]
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/move/",
        {"item": picked, "queue": "kyc", "reason": "these are KYC cases"},
    )
    assert response.status_code == 302
    assert set(WorkItem.objects.filter(pk__in=picked).values_list("queue", flat=True)) == {kyc.pk}


def test_a_bulk_action_without_a_reason_changes_nothing_and_says_why(client, maria, known, kyc):
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/move/",
        {"item": [known["fresh"].pk], "queue": "kyc", "reason": "  "},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was changed: say why: a reason is required" in html
    assert (
        'id="bulk-reason" name="reason" value="  " required aria-required="true" aria-invalid="true"'
        in html
    )
    assert f'value="{known["fresh"].pk}" id="pick-{known["fresh"].pk}" checked' in html
    assert WorkItem.objects.get(pk=known["fresh"].pk).queue.name == "invoices"


def test_a_reviewer_who_may_not_work_the_items_is_refused(client, maria, known, bob):
    ReviewerProfile.objects.create(user=bob, skills={}, regions=["eu"])
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/reassign/",
        {"item": [known["fresh"].pk], "to_user": bob.pk, "reason": "try bob"},
    )
    assert response.status_code == 400
    assert "bob may not work items" in response.content.decode()
    assert WorkItem.objects.get(pk=known["fresh"].pk).assignee is None


def test_moving_needs_a_target_queue(client, maria, known):
    client.force_login(maria)
    response = client.post(
        "/dashboard/queues/invoices/move/",
        {"item": [known["fresh"].pk], "queue": "", "reason": "tidy up"},
    )
    assert response.status_code == 400
    assert "choose the queue to move the items to" in response.content.decode()
