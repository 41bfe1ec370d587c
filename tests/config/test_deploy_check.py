import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_check_has_no_warnings_with_production_values(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "k7#Qz!v2Lw9@pR4mX8sT1yB6nC3dF0gH5jK2lM7oP9qS4uV6wY8zA1bE3cG5iJ7",
        "ALLOWED_HOSTS": "arbiter.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://arbiter.example.com",
        "ARBITER_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
