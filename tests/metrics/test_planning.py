"""Workforce planning: measured arrivals and handle times, Erlang C needs per shift,
reviewers on shift, Little's law, the what-if form and the page's guard."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from metrics import erlang, planning
from orchestration.models import Case, StepRun, Workflow
from routing.models import ItemState, Queue, ReviewerProfile, SLAPolicy, WorkItem

pytestmark = pytest.mark.django_db
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
UTC = dt.UTC
# A Wednesday in February 2026: no daylight saving change in Europe or the US nearby.
NOW = dt.datetime(2026, 2, 11, 10, 30, tzinfo=UTC)
WEDNESDAY_10 = 2 * 24 + 10  # hour of week of NOW on a UTC clock


@pytest.fixture
def add(db, django_user_model):
    """Create items from dicts of fields in one bulk insert; `enqueued_at` is required,
    rank_at follows it, and a claimed item gets a stand-in holder."""
    workflow = Workflow.objects.create(slug="plan", version=1, title="Planning", definition={})
    case = Case.objects.create(workflow=workflow)
    run = StepRun.objects.create(case=case, step_id="review", kind="review")
    holder = django_user_model.objects.create(username="holder")

    def make(queue, *specs):
        items = []
        for fields in specs:
            if fields.get("state") == ItemState.CLAIMED:
                fields = {"assignee": holder, **fields}
            items.append(
                WorkItem(
                    case=case,
                    step_run=run,
                    kind="review",
                    queue=queue,
                    rank_at=fields["enqueued_at"],
                    **fields,
                )
            )
        return WorkItem.objects.bulk_create(items)

    return make


@pytest.fixture
def four_hours(db):
    return SLAPolicy.objects.create(name="four-hours", target=4 * H)


@pytest.fixture
def invoices(db, four_hours):
    return Queue.objects.create(name="invoices", title="Invoices", sla_policy=four_hours)


@pytest.fixture
def kyc(db):
    return Queue.objects.create(name="kyc", title="KYC checks")


def done(enqueued_at, *, wait=10 * M, handle=20 * M):
    return {
        "enqueued_at": enqueued_at,
        "state": ItemState.DONE,
        "claimed_at": enqueued_at + wait,
        "decided_at": enqueued_at + wait + handle,
    }


def weekly(at, weeks=4):
    """The same moment in each of the last `weeks` weeks before NOW (at < NOW)."""
    return [at - dt.timedelta(weeks=k) for k in range(weeks)]


def plans_of(now=NOW, **options):
    return {p.queue.name: p for p in planning.queue_plans(now=now, **options)}


def on_shift(user, queue, **profile):
    ReviewerProfile.objects.update_or_create(user=user, defaults=profile)
    assign_perm("routing.work_on_queue", user, queue)
    return user


# Arrivals, handle time, target ----------------------------------------------------------


def test_arrivals_per_hour_of_week_are_the_mean_over_four_weeks(add, invoices):
    # Six items each Wednesday 10:00-11:00 for four weeks, and one item five weeks ago
    # (outside the span): 6 an hour at Wednesday 10, nothing elsewhere.
    start = dt.datetime(2026, 2, 11, 10, 0, tzinfo=UTC)
    add(
        invoices,
        *[done(at + k * 5 * M) for at in weekly(start) for k in range(6)],
        {"enqueued_at": start - dt.timedelta(weeks=5)},
    )
    plan = plans_of()["invoices"]
    assert plan.arrivals[WEDNESDAY_10] == 6
    assert sum(plan.arrivals) == 6
    assert plan.rate_now == 6


def test_hours_of_week_are_read_on_the_site_clock(settings, add, invoices):
    # 09:15 UTC is 10:15 in Berlin (CET, UTC+1, in February).
    settings.TIME_ZONE = "Europe/Berlin"
    add(invoices, *[{"enqueued_at": at} for at in weekly(NOW - 75 * M)])
    plan = plans_of()["invoices"]
    assert plan.arrivals[WEDNESDAY_10] == 1
    assert plan.now_hour == WEDNESDAY_10 + 1  # 11:30 in Berlin


def test_handle_time_is_the_mean_from_claim_to_decision(add, invoices):
    add(
        invoices,
        done(NOW - 3 * H, handle=10 * M),
        done(NOW - 5 * H, handle=30 * M),
        # Decided more than four weeks ago: outside the span.
        done(NOW - dt.timedelta(weeks=5), handle=5 * H),
        # Open, and cancelled: not decisions.
        {"enqueued_at": NOW - H, "state": ItemState.CLAIMED, "claimed_at": NOW - 30 * M},
        {"enqueued_at": NOW - H, "state": ItemState.CANCELLED, "decided_at": NOW - 30 * M},
    )
    plan = plans_of()["invoices"]
    assert plan.handle_time == 20 * M
    assert plan.handled == 2
    assert not plan.handle_is_default


def test_without_decisions_the_default_handle_time_is_used(kyc):
    plan = plans_of()["kyc"]
    assert plan.handle_time == planning.DEFAULT_HANDLE_TIME
    assert plan.handle_is_default


def test_the_target_is_the_sla_policy_or_the_default(invoices, kyc):
    plans = plans_of()
    assert plans["invoices"].target == 4 * H
    assert not plans["invoices"].target_is_default
    assert plans["kyc"].target == planning.DEFAULT_TARGET
    assert plans["kyc"].target_is_default


def test_the_allowed_wait_is_the_target_less_the_handle_time_and_never_negative():
    assert planning.answer_time(4 * H, 20 * M) == 3 * H + 40 * M
    assert planning.answer_time(10 * M, 20 * M) == dt.timedelta(0)


# Needs ----------------------------------------------------------------------------------


def test_the_need_of_an_hour_is_erlang_c_on_its_rate_and_handle_time(add, invoices):
    # 6 an hour at 20 min: A = 2 Erlangs; T = 4 h - 20 min. Three reviewers reach
    # 80 % (P_w(3, 2) = 4/9, SL = 1 - 4/9 e^-11 ~ 1) and stay under 85 % busy.
    start = dt.datetime(2026, 2, 11, 10, 0, tzinfo=UTC)
    add(invoices, *[done(at + k * 10 * M, wait=0 * M) for at in weekly(start) for k in range(6)])
    plan = plans_of()["invoices"]
    assert plan.handle_time == 20 * M
    expected = erlang.required_agents(2.0, 1 / 3, 4 - 1 / 3, 0.80, max_occupancy=0.85)
    assert expected == 3
    assert plan.needs[WEDNESDAY_10] == 3
    assert plan.need_now == 3
    assert plan.needs[WEDNESDAY_10 + 1] == 0


def test_a_higher_service_level_or_a_tighter_cap_never_needs_fewer(add, invoices):
    start = dt.datetime(2026, 2, 11, 10, 0, tzinfo=UTC)
    add(invoices, *[done(at + k * M, wait=0 * M) for at in weekly(start) for k in range(30)])
    low = plans_of(service_level=0.5)["invoices"].need_now
    high = plans_of(service_level=0.99)["invoices"].need_now
    tight = plans_of(service_level=0.5, max_occupancy=0.5)["invoices"].need_now
    assert low <= high
    assert tight >= low
    assert tight >= 20  # A = 30 * 20 min / 60 = 10 Erlangs at 50 % busy


def test_a_shift_needs_what_its_busiest_hour_needs(add, invoices):
    # Wednesday 09:00 gets 3 an hour, 11:00 gets 12 an hour: the 08-16 shift is sized
    # for 11:00; the 00-08 shift of Wednesday needs no one.
    nine = dt.datetime(2026, 2, 11, 9, 0, tzinfo=UTC)
    eleven = dt.datetime(2026, 2, 4, 11, 0, tzinfo=UTC)  # last week's: still < NOW
    add(
        invoices,
        *[done(at + k * M, wait=0 * M) for at in weekly(nine) for k in range(3)],
        *[done(at + k * M, wait=0 * M) for at in weekly(eleven) for k in range(12)],
    )
    plan = plans_of()["invoices"]
    day_shift = plan.days[2][1][1]
    assert day_shift.shift.label == "08\N{EN DASH}16"
    assert day_shift.peak_rate == 12
    assert day_shift.need == plan.needs[2 * 24 + 11]
    assert day_shift.need > plan.needs[2 * 24 + 9] > 0
    assert day_shift.current
    assert plan.current_shift is day_shift
    assert plan.days[2][1][0].need == 0


def test_shifts_cover_every_hour_of_the_day_once():
    covered = [h for s in planning.SHIFTS for h in range(s.start, s.end)]
    assert covered == list(range(24))
    assert [planning.shift_of(h) for h in (0, 7, 8, 15, 16, 23)] == [0, 0, 1, 1, 2, 2]


# Reviewers ------------------------------------------------------------------------------


def test_on_shift_now_counts_available_people_who_may_work_the_queue(
    invoices, kyc, alice, bob, carol, maria, django_user_model
):
    on_shift(alice, invoices)
    on_shift(bob, invoices, on_shift=False)  # signed out
    on_shift(carol, invoices, absent_from=NOW - H)  # away
    ReviewerProfile.objects.create(user=maria)  # has a profile, may not work invoices
    dave = django_user_model.objects.create(username="dave", is_active=False)
    on_shift(dave, invoices)  # deactivated
    plan = plans_of()["invoices"]
    assert plan.eligible == 3
    assert plan.on_shift_now == 1
    assert plans_of()["kyc"].eligible == 0


def test_people_allowed_through_a_group_count_too(invoices, alice, bob):
    team = Group.objects.create(name="invoice-team")
    team.user_set.add(alice, bob)
    ReviewerProfile.objects.create(user=alice)
    assign_perm("routing.work_on_queue", team, invoices)
    on_shift(bob, invoices)  # directly and through the group: counted once
    plan = plans_of()["invoices"]
    assert plan.eligible == 2
    assert plan.on_shift_now == 2


def test_weekly_schedules_in_the_person_s_time_zone_fill_the_site_s_hours(invoices, alice, bob):
    # Alice works Wednesdays 09:00-17:00 in New York (UTC-5 in February): 14:00-22:00
    # UTC. Bob has no schedule: on shift now, but in no shift count.
    on_shift(
        alice,
        invoices,
        time_zone="America/New_York",
        shift_schedule={"wed": [["09:00", "17:00"]]},
    )
    on_shift(bob, invoices)
    plan = plans_of()["invoices"]
    start = planning.week_start(NOW)
    assert planning.scheduled_hours(alice.reviewer_profile, start) == frozenset(
        range(2 * 24 + 14, 2 * 24 + 22)
    )
    assert plan.unscheduled == 1
    assert plan.on_shift_now == 1  # Bob; Alice's day starts at 14:00 UTC
    wednesday = plan.days[2][1]
    assert [s.scheduled for s in wednesday] == [0, 1, 1]  # most at once in each shift
    assert plan.eligible == 2


def test_a_shift_is_short_in_the_hours_its_schedule_leaves_uncovered(add, invoices, alice):
    # Need at Wednesday 15:00 and 17:00 (one reviewer each); Alice is scheduled
    # 15:00-16:00 only: the 08-16 shift is covered, the 16-24 shift is short one hour.
    on_shift(alice, invoices, shift_schedule={"wed": [["15:00", "16:00"]]})
    three = dt.datetime(2026, 2, 4, 15, 0, tzinfo=UTC)
    five = dt.datetime(2026, 2, 4, 17, 0, tzinfo=UTC)
    add(invoices, *[done(at, wait=0 * M) for at in weekly(three) + weekly(five)])
    plan = plans_of()["invoices"]
    day, evening = plan.days[2][1][1], plan.days[2][1][2]
    assert (day.need, day.scheduled, day.short) == (1, 1, False)
    assert (evening.need, evening.scheduled, evening.short_hours) == (1, 0, 1)


# Little's law ---------------------------------------------------------------------------


def test_littles_law_compares_open_items_with_throughput_times_lead_time(add, invoices, kyc):
    # 84 decisions in the last 7 days (0.5 an hour), each 4 h from enqueue to decision:
    # λW = 2. Invoices has 2 open items (consistent), KYC the same flow and 3 (flagged).
    finished = [
        done(NOW - dt.timedelta(hours=2 * k + 5), wait=1 * H, handle=3 * H) for k in range(84)
    ]
    add(invoices, *finished, *[{"enqueued_at": NOW - H}] * 2)
    add(kyc, *finished, *[{"enqueued_at": NOW - H}] * 3)
    plan = planning.workforce_plan(now=NOW)
    checks = {c.queue.name: c for c in plan.little}
    assert checks["invoices"].throughput == pytest.approx(0.5)
    assert checks["invoices"].lead_time == 4 * H
    assert checks["invoices"].predicted == pytest.approx(2)
    assert checks["invoices"].ratio == pytest.approx(1)
    assert not checks["invoices"].flagged
    assert checks["kyc"].ratio == pytest.approx(1.5)
    assert checks["kyc"].flagged


@pytest.mark.parametrize(
    ("wip", "flagged"), [(4, False), (3, False), (5, False), (2, True), (6, True)]
)
def test_a_difference_of_more_than_a_quarter_is_flagged(wip, flagged, invoices):
    # 336 decisions a week is 2 an hour; at 2 h each, λW = 4: L of 3 to 5 passes.
    check = planning.LittleCheck(queue=invoices, wip=wip, done=336, lead_time=2 * H)
    assert check.predicted == pytest.approx(4)
    assert check.flagged is flagged


def test_a_gap_of_less_than_one_item_is_not_flagged(invoices):
    # 84 decisions a week at 1 h: λW = 0.5. An empty queue is 100 % off, but by half
    # an item: rounding, not a signal.
    check = planning.LittleCheck(queue=invoices, wip=0, done=84, lead_time=H)
    assert check.predicted == pytest.approx(0.5)
    assert check.ratio == 0
    assert not check.flagged


def test_work_waiting_while_nothing_finishes_is_flagged(invoices):
    assert planning.LittleCheck(queue=invoices, wip=3, done=0, lead_time=None).flagged
    assert not planning.LittleCheck(queue=invoices, wip=0, done=0, lead_time=None).flagged


# What if --------------------------------------------------------------------------------


def test_what_if_sizes_the_ten_erlang_example():
    # 240 an hour at 2.5 min is 10 Erlangs; a target of 2.5 min + 20 s allows a 20 s
    # wait: 13 reviewers reach 80 % (80.9 %), 12 do not (65.6 %).
    answer = planning.what_if(
        arrival_rate=240,
        handle_time=150 * dt.timedelta(seconds=1),
        target=170 * dt.timedelta(seconds=1),
        service_level=0.80,
        max_occupancy=None,
        shrinkage=0.25,
    )
    assert answer.load == pytest.approx(10)
    assert answer.answer_time == dt.timedelta(seconds=20)
    assert answer.agents == 13
    assert [r.agents for r in answer.table] == [12, 13, 14]
    assert [r.service_level for r in answer.table] == ["65.6 %", "80.9 %", "89.8 %"]
    assert [r.meets for r in answer.table] == [False, True, True]
    assert answer.table[1].heads == 18
    assert answer.table[1].occupancy == "76.9 %"
    assert answer.table[1].speed_of_answer == "14 s"


def test_durations_read_the_way_people_say_them():
    assert planning.duration_text(None) == "—"
    assert planning.duration_text(float("inf")) == "never"
    assert planning.duration_text(0.1 / 3600) == "< 1 s"
    assert planning.duration_text(42 / 3600) == "42 s"
    assert planning.duration_text(3 * H + 5 * M) == "3 h 5 min"
    assert planning.duration_text(52 * H) == "2 d 4 h"


# The page -------------------------------------------------------------------------------


URL = "/dashboard/planning/"
WHATIF = "/dashboard/planning/what-if/"
# The uplift example of test_erlang: 250 an hour at 5.5 min; a 6 min target leaves a
# 30 s wait; 28 reviewers reach 80 % (85.7 %), 27 do not (78.2 %).
GOOD = {
    "whatif-arrival_rate": "250",
    "whatif-handle_time": "5.5",
    "whatif-target": "6",
    "whatif-target_unit": "minutes",
    "whatif-service_level": "80",
    "whatif-max_occupancy": "",
    "whatif-shrinkage": "",
}


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for response in (client.get(URL), client.post(WHATIF, GOOD)):
        assert response.status_code == 302
        assert response.url.startswith("/accounts/login/")


@pytest.mark.parametrize("person", ["alice", "audrey", "mallory"])
def test_only_managers_and_admins_may_plan(client, person, request):
    client.force_login(request.getfixturevalue(person))
    assert client.get(URL).status_code == 403
    assert client.post(WHATIF, GOOD).status_code == 403


@pytest.mark.parametrize("person", ["maria", "adam"])
def test_managers_and_admins_see_each_queue_s_plan(client, person, request, add, invoices, alice):
    now = timezone.now()
    on_shift(alice, invoices)
    add(invoices, *[done(now - dt.timedelta(weeks=k) - H) for k in range(4)])
    client.force_login(request.getfixturevalue(person))
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Workforce planning" in html
    assert 'aria-current="page"' in html  # the tab
    assert "Invoices: reviewers needed" in html
    assert "1 on shift now" in html
    assert "Little's law per queue" in html
    assert 'id="whatif"' in html


def test_htmx_asks_only_for_the_plan(client, maria, invoices):
    client.force_login(maria)
    response = client.get(URL, {"service_level": "90"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="plan"')
    assert "Service level 90.0 %" in html
    assert "<html" not in html


@pytest.mark.parametrize("value", ["100", "0", "-5", "lots"])
def test_a_service_level_out_of_range_is_a_400_that_says_why(client, maria, value):
    client.force_login(maria)
    response = client.get(URL, {"service_level": value})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()
    assert "Service level" in response.content.decode()


def test_the_what_if_answers_with_a_partial_for_htmx(client, maria):
    client.force_login(maria)
    response = client.post(WHATIF, GOOD, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="whatif"')
    assert "<strong>28 reviewers</strong>" in html
    assert "85.7 %" in html  # service level achieved
    assert "78.2 %" in html  # by one fewer
    assert "81.8 %" in html  # occupancy
    assert "15 s" in html  # average speed of answer


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("arrival_rate", "-1", "Arrivals per hour must not be negative."),
        ("handle_time", "0", "Handle time must be above 0 minutes."),
        ("service_level", "101", "Service level must be above 0 and below 100 %"),
        ("target", "0", "The SLA target must be above 0."),
        ("shrinkage", "100", "Shrinkage must be at least 0 and below 100 %."),
        ("arrival_rate", "1e9", "beyond what this planner sizes"),
        ("handle_time", "nan", "Enter a number."),
        ("max_occupancy", "0.001", "raise the cap"),
    ],
)
def test_invalid_what_if_input_is_a_400_naming_the_field(client, maria, field, value, message):
    client.force_login(maria)
    response = client.post(
        WHATIF, {**GOOD, f"whatif-{field}": value}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    assert f'id="id_whatif-{field}-error"' in html
    assert f'href="#id_whatif-{field}"' in html
    assert "reviewers</strong>" not in html


def test_without_javascript_the_what_if_renders_the_whole_page(client, maria, invoices):
    client.force_login(maria)
    response = client.post(WHATIF, GOOD)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    assert "Invoices: reviewers needed" in html
    assert "<strong>28 reviewers</strong>" in html
    bad = client.post(WHATIF, {**GOOD, "whatif-handle_time": "0"})
    assert bad.status_code == 400
    assert "<html" in bad.content.decode()


def test_the_what_if_takes_posts_only(client, maria):
    client.force_login(maria)
    assert client.get(WHATIF).status_code == 405


# session, user, roles; queues, arrivals, flow figures, permissions, profiles
PAGE_QUERIES = 8
WHATIF_QUERIES = 3  # session, user, roles


@pytest.mark.parametrize("queues", [1, 4])
def test_the_page_costs_the_same_queries_for_any_number_of_queues(
    client, maria, add, alice, bob, queues, django_assert_num_queries
):
    now = timezone.now()
    team = Group.objects.create(name="team")
    team.user_set.add(bob)
    ReviewerProfile.objects.create(user=bob, shift_schedule={"mon": [["09:00", "17:00"]]})
    for n in range(queues):
        queue = Queue.objects.create(name=f"q{n}", title=f"Queue {n}")
        on_shift(alice, queue)
        assign_perm("routing.work_on_queue", team, queue)
        add(queue, done(now - 2 * H), {"enqueued_at": now - H})
    client.force_login(maria)
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get(URL)
    assert response.content.decode().count("reviewers needed at the busiest hour") == queues
    with django_assert_num_queries(PAGE_QUERIES):
        client.get(URL, headers={"HX-Request": "true"})
    with django_assert_num_queries(WHATIF_QUERIES):
        client.post(WHATIF, GOOD, headers={"HX-Request": "true"})
