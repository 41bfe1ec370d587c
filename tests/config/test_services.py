"""The real services, used for real: PostgreSQL, RabbitMQ and Redis when configured."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from config.celery import app as celery_app
from config.tasks import HEARTBEAT_CACHE_KEY, heartbeat


@pytest.fixture(scope="module")
def live_worker():
    """A real Celery worker in a thread of this process, on the configured broker.

    Shared by the module: on AMQP the worker's event loop polls for up to ~10 s
    before it sees the stop flag, so each start/stop pair costs that much.
    """
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ):
            yield celery_app
    finally:
        celery_app.conf.task_always_eager = True


def _wait_for_heartbeat(previous: object, seconds: float = 20.0) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = cache.get(HEARTBEAT_CACHE_KEY)
        if value is not None and value != previous:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no worker ran the heartbeat within {seconds}s")


def test_a_task_sent_through_the_broker_is_run_by_a_worker(live_worker):
    cache.delete(HEARTBEAT_CACHE_KEY)
    heartbeat.delay()
    assert _wait_for_heartbeat(None) is not None


@pytest.mark.rabbitmq
def test_rabbitmq_carries_tasks_to_the_worker(live_worker):
    with live_worker.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.transport.driver_type == "amqp"
    cache.delete(HEARTBEAT_CACHE_KEY)
    heartbeat.delay()
    assert _wait_for_heartbeat(None) is not None


@pytest.mark.redis
def test_the_cache_is_redis_and_keeps_values():
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    cache.set("arbiter:test:probe", {"n": 1}, timeout=30)
    assert cache.get("arbiter:test:probe") == {"n": 1}
    client = cache._cache.get_client()  # type: ignore[attr-defined]  # redis-py, behind Django
    assert client.ping() is True


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_database_is_postgresql_through_psycopg_3():
    import psycopg

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        (version,) = cursor.fetchone()
    assert int(version) >= 150000
    assert isinstance(connection.connection, psycopg.Connection)
