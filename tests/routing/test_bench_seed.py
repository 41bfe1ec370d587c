import pytest
from django.core.management import CommandError, call_command

from orchestration.models import Case, StepRun
from routing.models import OPEN_STATES, WorkItem

pytestmark = pytest.mark.django_db


def test_bench_seed_fills_cases_runs_and_items_with_a_share_still_open(alice):
    call_command("bench_seed", items=400, open=0.25, queues=3, batch=150, stdout=None)
    assert WorkItem.objects.count() == Case.objects.count() == StepRun.objects.count() == 400
    open_items = WorkItem.objects.filter(state__in=OPEN_STATES).count()
    assert 60 <= open_items <= 140  # 25 % of 400, give or take chance
    assert WorkItem.objects.values("queue").distinct().count() == 3
    done = WorkItem.objects.exclude(state__in=OPEN_STATES)
    assert not done.filter(decided_at__isnull=True).exists()  # the dashboard relies on it
    assert not WorkItem.objects.filter(state="claimed", assignee__isnull=True).exists()


def test_bench_seed_refuses_nonsense(db):
    with pytest.raises(CommandError, match="--open is a share"):
        call_command("bench_seed", items=10, open=5)
    with pytest.raises(CommandError, match="--items must be at least 1"):
        call_command("bench_seed", items=0)


def test_bench_seed_writes_rows_in_the_order_they_entered(alice):
    import datetime as dt

    from django.utils import timezone

    call_command("bench_seed", items=300, open=0.1, queues=2, batch=70, stdout=None)
    entered = list(WorkItem.objects.order_by("id").values_list("enqueued_at", flat=True))
    assert entered == sorted(entered)
    now = timezone.now()
    still_open = WorkItem.objects.filter(state__in=OPEN_STATES)
    assert not still_open.filter(enqueued_at__lt=now - dt.timedelta(hours=48)).exists()
    done = WorkItem.objects.exclude(state__in=OPEN_STATES)
    assert not done.filter(enqueued_at__gt=now - dt.timedelta(hours=1)).exists()
    assert not done.filter(decided_at__gt=now).exists()
