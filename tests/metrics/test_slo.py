"""SLOs: the error-budget and burn-rate arithmetic, what each SLI counts, the alerts the
evaluator raises and clears, the admin that edits SLOs, and the SLO tab.

NOW is Monday 9 March 2026, 15:00 UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from config.errors import ApplicationError
from metrics import slo as selectors
from metrics import slo_services
from metrics.models import SLO, AlertSeverity, SLIKind, SLOAlert
from metrics.slo import Tally
from metrics.tasks import evaluate_slos
from notifications.models import Notification
from notifications.services import notifications_create_from_event
from orchestration.models import (
    Case,
    CaseStatus,
    DeadLetter,
    OutboxEvent,
    StepRun,
    StepStatus,
    Workflow,
)
from routing.models import BusinessCalendar, ItemState, Queue, SLAPolicy, WorkItem

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 9, 15, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
SLOS_URL = reverse("metrics:slos")


# Arithmetic -----------------------------------------------------------------------------


def test_budget_of_a_thousand_events_at_99_percent_is_ten_and_thirty_bad_spend_300_percent():
    tally = Tally(total=1000, bad=30)
    budget = selectors.error_budget(tally, Decimal("99"))
    assert selectors.attainment(tally) == 97.0
    assert budget.events == 10.0
    assert budget.used == 30
    assert budget.used_percent == 300.0
    assert budget.left == -20.0
    assert budget.left_percent == -200.0
    # burn rate = error rate / (1 - objective) = 0.03 / 0.01
    assert selectors.burn_rate(tally, Decimal("99")) == 3.0


def test_the_arithmetic_is_exact_for_objectives_with_decimals():
    assert selectors.allowed_error(Decimal("99.9")) == selectors.Fraction(1, 1000)
    tally = Tally(total=2000, bad=1)
    budget = selectors.error_budget(tally, Decimal("99.9"))
    assert (budget.events, budget.used_percent, budget.left_percent) == (2.0, 50.0, 50.0)
    assert selectors.burn_rate(tally, Decimal("99.9")) == 0.5
    assert selectors.burn_rate(Tally(total=20, bad=1), Decimal("95")) == 1.0


def test_no_events_means_no_attainment_no_burn_and_an_untouched_budget():
    budget = selectors.error_budget(Tally(), Decimal("95"))
    assert selectors.attainment(Tally()) is None
    assert selectors.burn_rate(Tally(), Decimal("95")) is None
    assert (budget.events, budget.used_percent, budget.left_percent) == (0.0, 0.0, 100.0)


def make_pair(long: Tally, short: Tally, threshold: float = 14.4) -> selectors.BurnWindow:
    return selectors.BurnWindow(
        severity="fast",
        threshold=threshold,
        long_window=H,
        short_window=5 * M,
        long=long,
        short=short,
        long_rate=selectors.burn_rate(long, Decimal("99")),
        short_rate=selectors.burn_rate(short, Decimal("99")),
    )


def test_a_pair_fires_only_when_both_windows_burn_faster_than_the_threshold():
    assert make_pair(Tally(100, 15), Tally(10, 2)).firing  # 15x and 20x
    assert not make_pair(Tally(100, 15), Tally(10, 1)).firing  # the short one is at 10x
    assert not make_pair(Tally(100, 10), Tally(10, 5)).firing  # the long one is at 10x
    assert not make_pair(Tally(100, 15), Tally(0, 0)).firing  # nothing lately: no burn
    assert not make_pair(Tally(1000, 144), Tally(1000, 144)).firing  # exactly 14.4x


def test_defaults_follow_the_sre_workbook(adam):
    slo = SLO(name="x", sli=SLIKind.STEP_SUCCESS, objective=Decimal("99"))
    assert (slo.fast_window, slo.fast_burn_rate) == (H, 14.4)
    assert (slo.slow_window, slo.slow_burn_rate) == (6 * H, 6.0)
    assert (slo.fast_short_window, slo.slow_short_window) == (5 * M, 30 * M)
    assert slo.window == dt.timedelta(days=28)


# SLIs -----------------------------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.workflow = Workflow.objects.create(
            slug="invoices", version=1, title="I", definition={}
        )

    def case(
        self, *, created: dt.datetime, finished: dt.datetime | None = None, **fields: Any
    ) -> Case:
        status = CaseStatus.APPROVED if finished else CaseStatus.IN_REVIEW
        case = Case.objects.create(
            workflow=self.workflow,
            finished_at=finished,
            status=fields.pop("status", status),
            **fields,
        )
        Case.objects.filter(pk=case.pk).update(created_at=created)
        return case

    def item(
        self,
        queue: Queue,
        *,
        enqueued: dt.datetime,
        decided: dt.datetime | None = None,
        kind: str = "review",
        impact: str = "medium",
    ) -> WorkItem:
        case = self.case(created=enqueued - H, impact=impact)
        run = StepRun.objects.create(case=case, step_id="review", kind="review")
        return WorkItem.objects.create(
            case=case,
            step_run=run,
            kind=kind,
            queue=queue,
            enqueued_at=enqueued,
            rank_at=enqueued,
            decided_at=decided,
            state=ItemState.DONE if decided else ItemState.QUEUED,
        )

    def runs(
        self,
        count: int,
        *,
        at: dt.datetime,
        status: str = StepStatus.SUCCEEDED,
        handler: str = "invoice.extract",
        kind: str = "task",
        compensation: bool = False,
        lettered: bool = False,
    ) -> None:
        case = self.case(created=at - H)
        made = StepRun.objects.bulk_create(
            StepRun(
                case=case,
                step_id="extract",
                kind=kind,
                handler=handler,
                status=status,
                is_compensation=compensation,
                finished_at=at,
            )
            for _ in range(count)
        )
        if lettered:
            DeadLetter.objects.bulk_create(
                DeadLetter(step_run=run, error_type="E", message="m", attempts=3) for run in made
            )


@pytest.fixture
def world(db) -> World:
    return World()


@pytest.fixture
def office_queue(db) -> Queue:
    """Open Monday to Friday, 09:00-17:00 UTC."""
    calendar = BusinessCalendar.objects.create(
        name="office", weekdays=["mon", "tue", "wed", "thu", "fri"]
    )
    policy = SLAPolicy.objects.create(name="four-hours", target=4 * H, calendar=calendar)
    return Queue.objects.create(name="kyc", title="KYC", sla_policy=policy)


def window_tally(slo: SLO, now: dt.datetime = NOW) -> Tally:
    return selectors.tallies(slo, now=now, ranges={"w": (now - slo.window, now)})["w"]


def review_slo(**fields: Any) -> SLO:
    return SLO.objects.create(
        name="reviews",
        sli=SLIKind.REVIEW_WITHIN,
        within_hours=Decimal(4),
        objective=Decimal("95"),
        **fields,
    )


def test_review_within_counts_business_hours_of_the_queue_calendar(world, office_queue):
    friday_4pm = NOW - 3 * 24 * H + H
    # Friday 16:00 to Monday 10:00: one business hour on Friday, one on Monday.
    world.item(office_queue, enqueued=friday_4pm, decided=NOW - 5 * H)
    # Monday 09:00 to 14:00: five business hours, over the four allowed.
    world.item(office_queue, enqueued=NOW - 6 * H, decided=NOW - 1 * H)
    # Four hours exactly is within.
    world.item(office_queue, enqueued=NOW - 6 * H, decided=NOW - 2 * H)
    assert window_tally(review_slo()) == Tally(total=3, bad=1)


def test_a_review_still_open_past_its_hours_is_already_a_bad_event(world, office_queue):
    world.item(office_queue, enqueued=NOW - 6 * H)  # 09:00: late since 13:00
    world.item(office_queue, enqueued=NOW - 3 * H)  # 12:00: late only at 16:00
    friday_4pm = NOW - 3 * 24 * H + H
    world.item(office_queue, enqueued=friday_4pm)  # late since Monday 12:00
    slo = review_slo()
    assert window_tally(slo) == Tally(total=2, bad=2)
    spans = {"before_1pm": (NOW - 4 * H, NOW - 2 * H), "since_1pm": (NOW - 2 * H, NOW)}
    counted = selectors.tallies(slo, now=NOW, ranges=spans)
    assert counted == {"before_1pm": Tally(1, 1), "since_1pm": Tally(1, 1)}


def test_a_queue_without_a_calendar_counts_wall_time(world):
    plain = Queue.objects.create(name="plain", title="Plain")
    world.item(plain, enqueued=NOW - 70 * H, decided=NOW - 65 * H)  # 5 h: bad
    world.item(plain, enqueued=NOW - 70 * H, decided=NOW - 67 * H)  # 3 h: good
    assert window_tally(review_slo()) == Tally(total=2, bad=1)


def test_review_within_keeps_to_its_queue_impact_and_item_kinds(world, office_queue):
    other = Queue.objects.create(name="other", title="Other")
    world.item(office_queue, enqueued=NOW - 3 * H, decided=NOW - 2 * H, impact="high")
    world.item(
        office_queue, enqueued=NOW - 3 * H, decided=NOW - 2 * H, kind="four_eyes", impact="high"
    )
    world.item(office_queue, enqueued=NOW - 3 * H, decided=NOW - 2 * H, kind="qa", impact="high")
    world.item(office_queue, enqueued=NOW - 3 * H, decided=NOW - 2 * H, impact="low")
    world.item(other, enqueued=NOW - 3 * H, decided=NOW - 2 * H, impact="high")
    assert window_tally(review_slo(impact="high", queue=office_queue)).total == 2


def test_step_success_counts_finished_task_runs_and_any_dead_letter_is_bad(world):
    at = NOW - 2 * H
    world.runs(6, at=at)
    world.runs(1, at=at, lettered=True)  # replayed after a dead letter: still bad
    world.runs(1, at=at, status=StepStatus.FAILED)
    world.runs(1, at=at, status=StepStatus.DEAD_LETTERED, lettered=True)
    world.runs(1, at=at, handler="other.handler", status=StepStatus.FAILED)
    world.runs(3, at=at, compensation=True, status=StepStatus.FAILED)  # not counted
    world.runs(3, at=at, kind="review")  # not a task
    world.runs(3, at=NOW - 40 * 24 * H, status=StepStatus.FAILED)  # outside the window
    everything = SLO.objects.create(name="steps", sli=SLIKind.STEP_SUCCESS, objective=99)
    assert window_tally(everything) == Tally(total=10, bad=4)
    one = SLO.objects.create(
        name="extract", sli=SLIKind.STEP_SUCCESS, objective=99, handler="invoice.extract"
    )
    assert window_tally(one) == Tally(total=9, bad=3)


def test_case_lead_time_counts_late_finishes_and_cases_unfinished_past_the_limit(world):
    world.case(created=NOW - 10 * H, finished=NOW - 9 * H)  # 1 h: good
    world.case(created=NOW - 10 * H, finished=NOW - 90 * M)  # 8.5 h: bad
    world.case(created=NOW - 10 * H, finished=NOW - 2 * H, status=CaseStatus.CANCELLED)  # 8 h
    world.case(created=NOW - 9 * H)  # unfinished, over 8 h since NOW - 1 h: bad
    world.case(created=NOW - 7 * H)  # unfinished, 7 h so far: not yet an event
    slo = SLO.objects.create(
        name="lead", sli=SLIKind.CASE_LEAD_TIME, within_hours=8, objective=Decimal("90")
    )
    assert window_tally(slo) == Tally(total=4, bad=2)
    last_hour = selectors.tallies(slo, now=NOW, ranges={"h": (NOW - H, NOW)})["h"]
    assert last_hour == Tally(total=1, bad=1)  # only the unfinished one went over in it


# Evaluation and alerts ------------------------------------------------------------------


@pytest.fixture
def owned_slo(maria) -> SLO:
    return SLO.objects.create(
        name="extraction succeeds",
        sli=SLIKind.STEP_SUCCESS,
        objective=Decimal("99"),
        owner=maria,
    )


def burn_fast(world: World, at: dt.datetime, history: bool = True) -> None:
    """Within the hour before `at`: 100 runs, 34 failed, 4 of them in the last 5 minutes
    out of 10 there: 34x the allowed 1 % over the hour and 40x over the 5 minutes. With
    `history`, 5000 good runs three hours earlier keep the slow pair calm (0.67x)."""
    world.runs(60, at=at - 40 * M)
    world.runs(30, at=at - 40 * M, status=StepStatus.FAILED)
    world.runs(6, at=at - 2 * M)
    world.runs(4, at=at - 2 * M, status=StepStatus.FAILED)
    if history:
        world.runs(5000, at=at - 3 * H)


def test_the_status_of_a_burning_slo(world, owned_slo):
    burn_fast(world, NOW)
    status = selectors.slo_status(owned_slo, now=NOW)
    assert status.window == Tally(total=5100, bad=34)
    assert status.fast.long == Tally(total=100, bad=34)
    assert status.fast.short == Tally(total=10, bad=4)
    assert status.fast.long_rate == pytest.approx(34.0)
    assert status.fast.short_rate == pytest.approx(40.0)
    assert status.fast.firing
    # Six hours: 34 bad of 5100 is 0.67 % against the allowed 1 %: 0.67x, below 6x.
    assert status.slow.long_rate == pytest.approx(34 / 5100 * 100)
    assert status.slow.short_rate == pytest.approx(40.0)
    assert not status.slow.firing
    assert status.budget.events == pytest.approx(51.0)
    assert status.budget.used_percent == pytest.approx(34 / 51 * 100)
    assert status.attainment == pytest.approx(5066 / 5100 * 100)
    assert status.meeting is True


def test_a_burn_raises_one_alert_and_one_event_for_the_owner(world, owned_slo, maria):
    burn_fast(world, NOW)
    result = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW)
    assert [a.severity for a in result.raised] == [AlertSeverity.FAST]
    alert = SLOAlert.objects.get()
    assert (alert.opened_at, alert.cleared_at, alert.threshold) == (NOW, None, 14.4)
    assert alert.long_burn_rate == pytest.approx(34.0)
    event = OutboxEvent.objects.get(topic="slo.burn_rate")
    assert event.case is None
    assert alert.event_id == event.id
    assert event.payload["notify_user_ids"] == [maria.pk]
    assert event.payload["severity"] == "fast"
    assert event.payload["burn_rate_long"] == pytest.approx(34.0)
    assert "extraction succeeds" in event.payload["title"]
    # The notifications consumer turns it into the owner's notification.
    notifications_create_from_event(event)
    assert Notification.objects.get().user == maria


def test_an_open_alert_is_not_raised_again_and_clears_when_the_burn_stops(world, owned_slo):
    burn_fast(world, NOW)
    slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW)
    again = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW + M)
    assert (again.raised, again.cleared) == ([], [])
    assert SLOAlert.objects.count() == 1
    assert OutboxEvent.objects.filter(topic="slo.burn_rate").count() == 1
    # Ten minutes on, the last five minutes saw nothing: the short window stops it.
    calm = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW + 10 * M)
    assert [a.severity for a in calm.cleared] == [AlertSeverity.FAST]
    assert SLOAlert.objects.get().cleared_at == NOW + 10 * M
    # A new burn opens a new alert.
    burn_fast(world, NOW + 30 * M)
    burning = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW + 30 * M)
    assert len(burning.raised) == 1
    assert SLOAlert.objects.filter(cleared_at__isnull=True).count() == 1
    assert OutboxEvent.objects.filter(topic="slo.burn_rate").count() == 2


def test_both_pairs_alert_separately(world, owned_slo):
    # Six hours of 10 % failures, at a steady pace: 10x, over 6x but under 14.4x.
    for minutes in range(0, 360, 5):
        world.runs(9, at=NOW - (minutes + 1) * M)
        world.runs(1, at=NOW - (minutes + 1) * M, status=StepStatus.FAILED)
    result = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW)
    assert [a.severity for a in result.raised] == [AlertSeverity.SLOW]
    # Then a fast burn on top: the hour holds 12 + 34 bad of 220 (20.9x), the last five
    # minutes 1 + 4 of 20 (25x).
    burn_fast(world, NOW + M, history=False)
    result = slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW + M)
    assert [a.severity for a in result.raised] == [AlertSeverity.FAST]
    assert SLOAlert.objects.filter(cleared_at__isnull=True).count() == 2


def test_an_slo_without_an_owner_tells_the_managers(world):
    slo = SLO.objects.create(name="nobody's", sli=SLIKind.STEP_SUCCESS, objective=99)
    burn_fast(world, NOW)
    slo_services.slo_evaluate(slo_id=slo.pk, now=NOW)
    payload = OutboxEvent.objects.get(topic="slo.burn_rate").payload
    assert payload["notify_roles"] == ["manager"]
    assert "notify_user_ids" not in payload


def test_deactivating_an_slo_clears_its_open_alerts(world, owned_slo):
    burn_fast(world, NOW)
    slo_services.slo_evaluate(slo_id=owned_slo.pk, now=NOW)
    SLO.objects.filter(pk=owned_slo.pk).update(active=False)
    summary = slo_services.slo_evaluate_all(now=NOW + M)
    assert summary == {"evaluated": 1, "raised": 0, "cleared": 1, "failed": 0}
    assert not SLOAlert.objects.filter(cleared_at__isnull=True).exists()
    assert slo_services.slo_evaluate_all(now=NOW + 2 * M)["evaluated"] == 0


def test_one_slo_has_at_most_one_open_alert_per_severity(owned_slo):
    fields = {
        "slo": owned_slo,
        "severity": AlertSeverity.FAST,
        "threshold": 14.4,
        "long_window": H,
        "short_window": 5 * M,
        "long_burn_rate": 20.0,
        "short_burn_rate": 20.0,
    }
    SLOAlert.objects.create(opened_at=NOW - H, cleared_at=NOW - 30 * M, **fields)
    SLOAlert.objects.create(opened_at=NOW, **fields)
    SLOAlert.objects.create(opened_at=NOW, **{**fields, "severity": AlertSeverity.SLOW})
    with pytest.raises(IntegrityError), transaction.atomic():
        SLOAlert.objects.create(opened_at=NOW, **fields)


def test_beat_evaluates_the_slos_every_minute():
    assert settings.CELERY_BEAT_SCHEDULE["metrics-slo-evaluation"] == {
        "task": "metrics.evaluate_slos",
        "schedule": 60.0,
    }


def test_the_beat_task_evaluates_every_active_slo(world, owned_slo):
    SLO.objects.create(name="lead", sli=SLIKind.CASE_LEAD_TIME, within_hours=8, objective=90)
    world.runs(10, at=timezone.now() - M, status=StepStatus.FAILED)
    summary = evaluate_slos.delay().get()
    assert summary == {"evaluated": 2, "raised": 2, "cleared": 0, "failed": 0}
    assert evaluate_slos.delay().get()["raised"] == 0


# Admin ----------------------------------------------------------------------------------


def slo_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "High-impact reviews in 4 business hours",
        "description": "",
        "owner": "",
        "active": "on",
        "sli": "review_within",
        "within_hours": "4",
        "impact": "high",
        "queue": "",
        "workflow_slug": "",
        "handler": "",
        "objective": "95",
        "window_days": "28",
        "fast_window": "01:00:00",
        "fast_burn_rate": "14.4",
        "slow_window": "06:00:00",
        "slow_burn_rate": "6",
        "change_reason": "the KYC team's promise to compliance",
    }
    data.update(overrides)
    return data


def test_an_admin_defines_an_slo_with_a_reason_that_lands_in_the_audit_trail(admin_client):
    response = admin_client.post("/admin/metrics/slo/add/", slo_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    slo = SLO.objects.get()
    assert (slo.objective, slo.within_hours, slo.impact) == (Decimal(95), Decimal(4), "high")
    event = AuditEvent.objects.get(action=AuditAction.POLICY_CHANGED, object_id=str(slo.pk))
    assert event.reason == "the KYC team's promise to compliance"
    assert event.object_type == "metrics.slo"
    assert event.after is not None
    assert event.after["objective"] == "95.000"
    assert slo.history.first().history_change_reason == "the KYC team's promise to compliance"


def test_an_slo_change_without_a_reason_is_refused(admin_client):
    response = admin_client.post("/admin/metrics/slo/add/", slo_form(change_reason=""))
    assert response.status_code == 200
    assert "change_reason" in response.context["adminform"].form.errors
    assert not SLO.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"within_hours": ""}, "within_hours"),
        ({"handler": "invoice.extract"}, "handler"),
        ({"sli": "step_success"}, "within_hours"),
        ({"objective": "100"}, "objective"),
        ({"slow_window": "00:30:00"}, "slow_window"),
        ({"fast_window": "00:05:00"}, "fast_window"),
    ],
)
def test_an_slo_that_does_not_fit_its_sli_is_refused(admin_client, overrides, field):
    response = admin_client.post("/admin/metrics/slo/add/", slo_form(**overrides))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not SLO.objects.exists()


def test_changes_and_deletes_are_audited_with_before_and_after(adam):
    slo = slo_services.slo_save(
        slo=SLO(name="steps", sli=SLIKind.STEP_SUCCESS, objective=Decimal("99")),
        actor=adam,
        reason="first cut",
    )
    slo.objective = Decimal("99.5")
    slo_services.slo_save(slo=slo, actor=adam, reason="tighter")
    slo_services.slo_delete(slo=slo, actor=adam, reason="replaced")
    events = list(AuditEvent.objects.filter(action=AuditAction.POLICY_CHANGED).order_by("id"))
    assert [e.reason for e in events] == ["first cut", "tighter", "replaced"]
    assert events[1].before is not None
    assert events[1].after is not None
    assert (events[1].before["objective"], events[1].after["objective"]) == ("99.000", "99.500")
    assert events[2].after is None
    with pytest.raises(ApplicationError, match="reason"):
        slo_services.slo_save(
            slo=SLO(name="x", sli="step_success", objective=99), actor=adam, reason=" "
        )


# The page -------------------------------------------------------------------------------


def test_the_slo_tab_is_for_managers_and_admins_only(client, alice, mallory, maria, adam):
    response = client.get(SLOS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    for person, status in ((mallory, 403), (alice, 403), (maria, 200), (adam, 200)):
        client.force_login(person)
        assert client.get(SLOS_URL).status_code == status


def test_the_page_shows_attainment_budget_and_burn_rates(client, maria, world, owned_slo):
    now = timezone.now()
    world.runs(970, at=now - 2 * 24 * H)
    world.runs(30, at=now - 2 * 24 * H, status=StepStatus.FAILED)
    client.force_login(maria)
    html = client.get(SLOS_URL).content.decode()
    assert '<nav aria-label="Dashboard sections" class="tabs">' in html
    assert "extraction succeeds" in html
    assert "Task step runs that succeed without a dead letter" in html
    assert "99 % over 28 days" in html
    assert "<strong>97.00 %</strong> (970 of 1000 good)" in html
    assert "below the objective" in html
    assert "10.0 bad events allowed; 30 used (300.0 %), -20.0 left (-200.0 %)" in html
    assert "overspent" in html
    assert "3.00x" in html  # over the 28 days


def test_htmx_gets_only_the_statuses(client, maria, owned_slo):
    client.force_login(maria)
    response = client.get(SLOS_URL, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="slo-statuses"')
    assert "<html" not in html


# session, user, roles; SLOs with owner and queue; their open alerts; recent alerts
BASE_QUERIES = 6
# per SLO: one aggregate (step_success, case_lead_time); review_within reads its decided
# items' totals, the late ones and the waiting ones (and their calendars, if any)
SLI_QUERIES = {SLIKind.STEP_SUCCESS: 1, SLIKind.CASE_LEAD_TIME: 1, SLIKind.REVIEW_WITHIN: 3}


@pytest.mark.parametrize("count", [1, 3])
def test_the_page_costs_the_queries_of_each_slo_sli(
    client, maria, count, django_assert_num_queries
):
    for index in range(count):
        SLO.objects.create(name=f"steps {index}", sli=SLIKind.STEP_SUCCESS, objective=99)
        SLO.objects.create(
            name=f"reviews {index}", sli=SLIKind.REVIEW_WITHIN, within_hours=4, objective=95
        )
    client.force_login(maria)
    per_slo = SLI_QUERIES[SLIKind.STEP_SUCCESS] + SLI_QUERIES[SLIKind.REVIEW_WITHIN]
    with django_assert_num_queries(BASE_QUERIES + count * per_slo):
        client.get(SLOS_URL)
