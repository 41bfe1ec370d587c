"""Suite-wide fixtures and the rules for tests that need a real service.

Markers say what a test needs: `postgres`, `rabbitmq`, `redis`, `browser`. When the
service is not configured the test is skipped with a reason that says how to
configure it. With ARBITER_FORBID_SKIPS=1 (CI's pass against the real services) any
skip fails the run. Tests marked `sqlite` exercise SQLite-only behaviour: on
PostgreSQL they are deselected (they ran in the embedded pass), not skipped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractUser

from accounts.roles import Role
from accounts.services import user_ensure

PASSWORD = "correct horse battery staple"


def chromium_path() -> str | None:
    candidate = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if os.path.exists(candidate) else None


def _database_vendor() -> str:
    engine = settings.DATABASES["default"]["ENGINE"]
    return "postgresql" if "postgresql" in engine else "sqlite"


def _missing_service(marker: str) -> str | None:
    """Why a test with this marker cannot run here, or None when it can."""
    if marker == "postgres" and _database_vendor() != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL=postgres://USER@HOST:5432/DBNAME"
    if marker == "rabbitmq" and not settings.CELERY_BROKER_URL.startswith(("amqp", "pyamqp")):
        return "needs RabbitMQ: set CELERY_BROKER_URL=amqp://USER:PASSWORD@HOST:5672//"
    if marker == "redis" and not settings.REDIS_URL:
        return "needs Redis: set REDIS_URL=redis://HOST:6379/0"
    if marker == "browser":
        if chromium_path() is None:
            return "needs Chromium: apt-get install chromium (or set CHROMIUM_PATH)"
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return "needs Playwright for Python: pip install -e '.[dev]'"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = []
    kept = []
    for item in items:
        if item.get_closest_marker("sqlite") and _database_vendor() != "sqlite":
            deselected.append(item)
            continue
        kept.append(item)
        for marker in ("postgres", "rabbitmq", "redis", "browser"):
            if item.get_closest_marker(marker):
                reason = _missing_service(marker)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
        config.stash[_DESELECTED_SQLITE] = len(deselected)


_DESELECTED_SQLITE = pytest.StashKey[int]()
# One pytest session per process, so a module-level list is the session's list.
_SKIPPED_NODEIDS: list[str] = []


def _forbid_skips() -> bool:
    return os.environ.get("ARBITER_FORBID_SKIPS", "") in {"1", "true", "yes"}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED_NODEIDS.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    deselected = config.stash.get(_DESELECTED_SQLITE, 0)
    if deselected:
        terminalreporter.write_line(
            f"{deselected} SQLite-only test(s) deselected: running on PostgreSQL "
            "(they run in the embedded pass)."
        )
    if _forbid_skips() and _SKIPPED_NODEIDS:
        terminalreporter.write_line(
            f"ARBITER_FORBID_SKIPS is set and {len(_SKIPPED_NODEIDS)} test(s) were skipped:",
            red=True,
        )
        for nodeid in _SKIPPED_NODEIDS:
            terminalreporter.write_line(f"  {nodeid}", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _forbid_skips() and _SKIPPED_NODEIDS and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _empty_audit_tables_after_transactional_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Transactional tests end with a flush, which the append-only triggers refuse on a
    non-empty audit table. Empty the audit tables first, with the triggers switched
    off the way only a table owner can."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and marker.kwargs.get("transaction")) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if not transactional:
        yield
        return
    # Set up the database fixture inside this one, so it is torn down (flushed) after us.
    request.getfixturevalue("transactional_db")
    yield
    from django.db import connection

    from audit.triggers import TABLES, triggers_disabled

    with triggers_disabled(connection), connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608  (constant table names)


@pytest.fixture
def make_person(db: None) -> Callable[..., AbstractUser]:
    def make(username: str, *roles: str) -> AbstractUser:
        user, _ = user_ensure(
            username=username,
            password=PASSWORD,
            roles=roles,
            first_name=username.capitalize(),
            email=f"{username}@example.test",
        )
        return user

    return make


@pytest.fixture
def alice(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """A reviewer."""
    return make_person("alice", Role.REVIEWER)


@pytest.fixture
def bob(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """A reviewer who is also a checker."""
    return make_person("bob", Role.REVIEWER, Role.CHECKER)


@pytest.fixture
def carol(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """A checker who also reviews."""
    return make_person("carol", Role.REVIEWER, Role.CHECKER)


@pytest.fixture
def mallory(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """The outsider: signed in, but holds no role."""
    return make_person("mallory")


@pytest.fixture
def maria(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """A manager."""
    return make_person("maria", Role.MANAGER)


@pytest.fixture
def adam(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """An admin (staff, not superuser)."""
    return make_person("adam", Role.ADMIN)


@pytest.fixture
def audrey(make_person: Callable[..., AbstractUser]) -> AbstractUser:
    """An auditor: reads everything, changes nothing."""
    return make_person("audrey", Role.AUDITOR)
