"""The suite's Django side: the environment the app runs with in the benchmark, the
people, queues, workflows and API client every phase uses, and the resets between
phases. Everything here writes through Arbiter's own services and commands, except
the bulk resets (TRUNCATE, UPDATE of seeded rows), which only the benchmark does."""

from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

from bench.common import CELERY_QUEUE, ROOT, UsageError, progress

REVIEWER_PREFIX = "bench-reviewer-"
MANAGER = "bench-manager"
CLIENT = "bench-intake"
# A one-task workflow for the Celery figures: an automated step (kyc.normalize, pure
# Python, no network), then the review gate, which files a work item.
ENGINE_WORKFLOW = {
    "slug": "bench-engine",
    "title": "Benchmark engine",
    "start": "normalize",
    "steps": [
        {
            "id": "normalize",
            "kind": "task",
            "title": "Normalise",
            "handler": "kyc.normalize",
            "retry": {"max_attempts": 3, "base_delay": 1, "max_delay": 5},
            "timeout": 15,
            "next": {"ok": "check"},
        },
        {
            "id": "check",
            "kind": "review",
            "title": "Review",
            "next": {"approve": "end:approved", "reject": "end:rejected"},
        },
    ],
}
ENGINE_PAYLOAD = {"name": "Ada Lovelace", "country": "GB", "date_of_birth": "1815-12-10"}


def app_env(
    *,
    bench_url: str,
    data_dir: Path,
    broker_url: str,
    secret_key: str,
    redis_url: str = "",
    settings_module: str = "config.settings",
) -> dict[str, str]:
    """The environment of every Arbiter process of the benchmark: production settings
    (DEBUG off) on the suite's database and Celery queue, over plain HTTP on loopback."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Tracing or a metrics directory left in the caller's shell would change the figures.
        if not key.startswith(("OTEL_", "PROMETHEUS_MULTIPROC"))
        and key not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": bench_url,
            "DEBUG": "0",
            "SECRET_KEY": secret_key,
            # testserver: the dashboard is measured in-process with Django's test client.
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            # Plain HTTP on loopback: no redirect to HTTPS, no HSTS header.
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_HSTS_SECONDS": "0",
            "ARBITER_DATA_DIR": str(data_dir),
            "STATIC_ROOT": str(data_dir / "static"),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_QUEUE": CELERY_QUEUE,
            "LOG_LEVEL": "WARNING",
            "EMAIL_BACKEND": "dummy",
            "OTEL_SDK_DISABLED": "true",
            # The load is one client at thousands of requests a minute: the per-client
            # throttle stays on (its cache round trips are part of the path) but high.
            "API_THROTTLE_RATE": "1000000/s",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def new_secret_key() -> str:
    return secrets.token_urlsafe(50)


def check_broker(broker_url: str) -> None:
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        raise UsageError(
            f"the broker at {broker_url} does not answer ({exc}). The intake path publishes "
            "to it; start RabbitMQ (rabbitmq-server -detached) or set CELERY_BROKER_URL."
        ) from None


def broker_queue_drop(broker_url: str, queue: str = CELERY_QUEUE) -> None:
    """Delete the suite's Celery queue (the relay nudges intake left there, unconsumed)
    and the direct exchange of the same name that Celery declared with it (its default
    exchange is named after its default queue), so a run leaves nothing on the broker."""
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            channel: Any = conn.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
    except Exception as exc:  # gone already, or the broker went away: nothing to keep
        progress(f"could not delete broker queue and exchange {queue}: {exc}")


def broker_queue_purge(broker_url: str) -> int:
    from kombu import Connection

    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            channel: Any = conn.default_channel
            return int(channel.queue_purge(CELERY_QUEUE) or 0)
    except Exception:  # no such queue yet
        return 0


def setup_django(env: dict[str, str]) -> None:
    """Load Arbiter in this process with the benchmark's environment."""
    import sys

    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@dataclass
class World:
    token: str
    reviewer_ids: list[int]
    manager_id: int
    queue_ids: list[int]


def build_world(*, reviewers: int, queues: int) -> World:
    """Migrate, collect static files, and create the people, queues, workflows and API
    client the phases use."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from accounts.roles import Role
    from audit.context import Actor
    from orchestration.services import workflow_load
    from routing.management.commands.bench_seed import BENCH_WORKFLOW
    from routing.models import Queue, ReviewerProfile, RoutingRule
    from routing.services import queue_grant

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    system = Actor.system("bench")
    workflow_load(document=BENCH_WORKFLOW, actor=system)
    workflow_load(document=ENGINE_WORKFLOW, actor=system)
    # The same queue names bench_seed fills, created first so the grants exist.
    queue_rows = [
        Queue.objects.get_or_create(name=f"bench-{n}", defaults={"title": f"Benchmark queue {n}"})[
            0
        ]
        for n in range(queues)
    ]
    # Submitted cases are routed (not left in triage, which announces each one).
    RoutingRule.objects.create(order=1, queue=queue_rows[0])
    user_model = get_user_model()
    groups = {group.name: group for group in Group.objects.all()}

    def person(username: str, role: str) -> Any:
        # Not user_ensure: its password hashing costs a second a head, and nobody signs in.
        user = user_model(username=username)
        user.set_unusable_password()
        user.save()
        user.groups.add(groups[role])
        return user

    manager = person(MANAGER, Role.MANAGER)
    people = []
    for n in range(1, reviewers + 1):
        user = person(f"{REVIEWER_PREFIX}{n:02d}", Role.REVIEWER)
        # Capacity far above any run's claims: the claim phase keeps what it takes.
        ReviewerProfile.objects.create(
            user=user, skills={}, regions=["eu", "us", "apac"], capacity=10_000_000
        )
        for queue in queue_rows:
            queue_grant(queue=queue, user=user, actor=system)
        people.append(user.pk)
    out = io.StringIO()
    call_command(
        "create_api_client",
        CLIENT,
        "--scopes",
        "cases:write,cases:read",
        "--workflows",
        "bench-review",
        stdout=out,
    )
    token = out.getvalue().strip().splitlines()[-1]
    return World(
        token=token,
        reviewer_ids=people,
        manager_id=manager.pk,
        queue_ids=[q.pk for q in queue_rows],
    )


@dataclass
class Sizes:
    """How much each phase does; --quick shrinks them, the defaults are the issue's."""

    quick: bool
    intake_seconds: int
    intake_connections: int
    web_workers: int
    claims: int
    reviewers: int
    churn_seconds: int
    sla_items: int
    dashboard_items: int
    audit_events: int
    engine_cases: int
    queues: int
    scale_5m: bool


@dataclass
class Context:
    """What a phase needs: the server, the suite's database and the app's environment."""

    parts: SplitResult
    bench_url: str
    env: dict[str, str]
    broker_url: str
    workdir: Path
    world: World
    sizes: Sizes


WORK_TABLES = (
    "orchestration_case",
    "orchestration_steprun",
    "routing_workitem",
    "orchestration_historicalcase",
    "routing_historicalworkitem",
    "orchestration_outboxevent",
    "orchestration_timer",
    "orchestration_idempotencyrecord",
)


def reset_work() -> None:
    """Empty the case and work item tables (and what hangs off them) between phases.
    The audit trail stays: its tables refuse TRUNCATE, and no phase reads it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(WORK_TABLES)} CASCADE")


def seed(items: int, *, open_share: float, queues: int) -> None:
    """manage.py bench_seed: cases, step runs and work items, generated in PostgreSQL."""
    from django.core.management import call_command

    call_command(
        "bench_seed",
        items=items,
        open=open_share,
        queues=queues,
        batch=100_000,
        stdout=io.StringIO(),
    )


def vacuum(*tables: str) -> None:
    """VACUUM (ANALYZE): the state autovacuum would leave a table in between runs."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def execute(statement: str, params: Any = None) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return int(cursor.rowcount)


def scalar(statement: str, params: Any = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    return row[0] if row else None
