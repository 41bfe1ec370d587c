"""The email settings read from the environment (config/settings.py), failing loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "from config import settings as s; "
    "print(s.EMAIL_BACKEND, s.DEFAULT_FROM_EMAIL, s.ARBITER_SITE_URL or '-', sep='|')"
)


def settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DEBUG", "EMAIL_", "DEFAULT_FROM", "ARBITER_"))
    }
    clean.update({"SECRET_KEY": "x" * 50, "ARBITER_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_email_goes_to_the_console_in_development_and_smtp_otherwise(tmp_path):
    dev = settings_with(tmp_path, DEBUG="1")
    assert dev.stdout.strip() == (
        "django.core.mail.backends.console.EmailBackend|Arbiter <arbiter@localhost>|"
        "http://127.0.0.1:8000"
    )
    prod = settings_with(tmp_path, DEBUG="0", DEFAULT_FROM_EMAIL="ops@example.test")
    assert prod.stdout.strip() == "django.core.mail.backends.smtp.EmailBackend|ops@example.test|-"


def test_the_site_url_loses_its_trailing_slash(tmp_path):
    result = settings_with(tmp_path, DEBUG="0", ARBITER_SITE_URL="https://arbiter.example.test/")
    assert result.stdout.strip().endswith("|https://arbiter.example.test")


def test_an_unknown_email_backend_is_refused(tmp_path):
    result = settings_with(tmp_path, DEBUG="1", EMAIL_BACKEND="carrier-pigeon")
    assert result.returncode != 0
    assert "EMAIL_BACKEND='carrier-pigeon': use one of console, dummy, file, locmem, smtp" in (
        result.stderr
    )


def test_tls_and_ssl_together_are_refused(tmp_path):
    result = settings_with(tmp_path, DEBUG="1", EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert result.returncode != 0
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL are both on" in result.stderr


def test_a_site_url_that_is_not_http_is_refused(tmp_path):
    result = settings_with(tmp_path, DEBUG="1", ARBITER_SITE_URL="ftp://arbiter.example.test")
    assert result.returncode != 0
    assert "ARBITER_SITE_URL has scheme 'ftp'" in result.stderr


def test_djangos_dotted_backend_paths_are_understood_too(tmp_path):
    result = settings_with(
        tmp_path, DEBUG="0", EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend"
    )
    assert result.stdout.startswith("django.core.mail.backends.filebased.EmailBackend|")
