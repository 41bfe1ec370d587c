import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from audit.context import Actor
from orchestration import services
from orchestration.backoff import backoff_ceiling, retry_delay
from orchestration.definition import RetryPolicy
from orchestration.models import Case, Timer, TimerKind
from tests.orchestration.conftest import three_tasks

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 50),
    base_delay=st.floats(0.001, 60),
    max_delay=st.floats(60, 86400),
)


@given(policy=policies, attempt=st.integers(1, 60))
def test_every_retry_delay_stays_inside_its_backoff_bounds(policy, attempt):
    ceiling = backoff_ceiling(policy, attempt)
    assert ceiling <= policy.max_delay
    assert ceiling == min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    assert 0 <= retry_delay(policy, attempt) <= ceiling


def test_the_ceiling_doubles_until_the_cap():
    policy = RetryPolicy(max_attempts=10, base_delay=2, max_delay=60)
    assert [backoff_ceiling(policy, n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_delays_are_jittered():
    policy = RetryPolicy(max_attempts=10, base_delay=10, max_delay=60)
    delays = {round(retry_delay(policy, 3), 6) for _ in range(50)}
    assert len(delays) > 40  # full jitter: spread over [0, 40], not one fixed value
    assert max(delays) <= 40


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_fire_each_timer_exactly_once():
    services.workflow_load(document=three_tasks(), actor=Actor.system("test"))
    case = services.case_submit(workflow="three-tasks", payload={}, actor=Actor.system("test"))
    Timer.objects.all().delete()
    due = timezone.now() - dt.timedelta(seconds=1)
    Timer.objects.bulk_create(
        Timer(kind=TimerKind.SLA, case=case, due_at=due, data={"n": n}) for n in range(300)
    )
    fired: list[int] = []
    lock = threading.Lock()

    def hook(timer: Timer) -> None:
        with lock:
            fired.append(timer.data["n"])

    services.register_sla_hook(hook)
    try:
        counts: list[int] = []

        def sweep() -> None:
            try:
                counts.append(services.timers_fire_due())
            finally:
                connection.close()

        threads = [threading.Thread(target=sweep) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        services._sla_hooks.remove(hook)
    assert sorted(fired) == list(range(300))
    assert sum(counts) == 300
    assert Case.objects.count() == 1
