import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_settings, env_bool, env_int, env_list, env_url, parse_database_url

ROOT = Path(__file__).resolve().parents[2]


def test_booleans_accept_the_usual_spellings(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("On", True), ("0", False), ("off", False)]:
        monkeypatch.setenv("FLAG", raw)
        assert env_bool("FLAG", not expected) is expected


def test_a_bad_boolean_names_the_variable_and_the_value(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False)


def test_a_bad_integer_fails_loudly(monkeypatch):
    monkeypatch.setenv("DB_CONN_MAX_AGE", "ten")
    with pytest.raises(ImproperlyConfigured, match="DB_CONN_MAX_AGE='ten' is not a whole number"):
        env_int("DB_CONN_MAX_AGE", 60)
    monkeypatch.setenv("DB_CONN_MAX_AGE", "-1")
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 0"):
        env_int("DB_CONN_MAX_AGE", 60, minimum=0)


def test_lists_are_comma_separated_and_trimmed(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " a.example, b.example ,,")
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]


def test_a_url_with_the_wrong_scheme_is_refused(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "http://broker.example")
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL has scheme 'http'"):
        env_url("CELERY_BROKER_URL", "filesystem://", schemes={"amqp", "filesystem"})


def test_postgres_urls_are_taken_apart():
    url = parse_database_url(
        "DATABASE_URL", "postgres://arb%40iter:s3cr%2Ft@db.internal:6543/arbiter"
    )
    assert url.engine == "django.db.backends.postgresql"
    assert (url.user, url.password, url.host, url.port, url.name) == (
        "arb@iter",
        "s3cr/t",
        "db.internal",
        "6543",
        "arbiter",
    )


def test_sqlite_urls_name_a_file():
    assert parse_database_url("DATABASE_URL", "sqlite:////srv/x.sqlite3").name == "/srv/x.sqlite3"
    with pytest.raises(ImproperlyConfigured, match="names no SQLite file"):
        parse_database_url("DATABASE_URL", "sqlite://")


def test_unknown_database_schemes_and_missing_names_are_refused():
    with pytest.raises(ImproperlyConfigured, match="expected postgres:// or sqlite:///"):
        parse_database_url("DATABASE_URL", "mysql://root@localhost/arbiter")
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        parse_database_url("DATABASE_URL", "postgres://root@localhost")


def test_no_database_url_means_sqlite_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = database_settings("DATABASE_URL", tmp_path / "a.sqlite3", conn_max_age=0)
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["NAME"] == str(tmp_path / "a.sqlite3")


def _import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DEBUG"))}
    clean.pop("SECRET_KEY", None)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = _import_settings(DEBUG="0", ARBITER_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_settings_refuse_to_start_with_a_bad_debug_value(tmp_path):
    result = _import_settings(DEBUG="sometimes", ARBITER_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG='sometimes' is not a boolean" in result.stderr


def test_settings_start_on_the_embedded_default_with_nothing_set(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; "
            "django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, "
            "s.CACHES['default']['BACKEND'])",
        ],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DEBUG": "1",
            "ARBITER_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "django.core.cache.backends.locmem.LocMemCache",
    ]
