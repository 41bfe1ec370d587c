"""A real Celery worker process, RabbitMQ and PostgreSQL run a demo workflow through."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from audit.context import Actor
from config.celery import app as celery_app
from orchestration import services
from orchestration.models import Case, CaseStatus, StepStatus

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(case: Case, status: str, seconds: float = 60) -> Case:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        case.refresh_from_db()
        if case.status == status:
            return case
        time.sleep(0.2)
    raise AssertionError(f"case stayed {case.status!r}; expected {status!r} within {seconds}s")


@pytest.fixture
def worker_process(tmp_path):
    """`celery -A config worker` in its own process, against the test database.

    It reads the default queue, where this process sends its tasks: Celery caches its
    queue table on first use, so a private queue name could not be undone afterwards.
    Tasks are idempotent, so a message some earlier run left in the queue is harmless.
    """
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "ARBITER_DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    celery_app.conf.task_always_eager = False
    try:
        yield log
    finally:
        celery_app.conf.task_always_eager = True
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_worker_process_runs_content_moderation_to_completion(worker_process, bob):
    document = json.loads((ROOT / "orchestration/workflows/content-moderation.json").read_text())
    services.workflow_load(document=document, actor=Actor.system("test"))
    case = services.case_submit(
        workflow="content-moderation",
        payload={"text": "BUY NOW!!! cheap pills at http://spam.example http://spam2.example"},
        actor=Actor.api_client(1, "forum"),
    )
    # The worker ran `classify` (sent through RabbitMQ after the commit).
    _wait_for(case, CaseStatus.IN_REVIEW)
    classify = case.step_runs.get(step_id="classify")
    assert classify.status == StepStatus.SUCCEEDED
    assert classify.output is not None
    assert classify.output["proposed"]["label"] == "spam"
    # A moderator approves; the worker applies the decision.
    review = case.step_runs.get(step_id="review")
    services.review_step_complete(step_run=review, outcome="approve", actor=bob)
    _wait_for(case, CaseStatus.APPROVED)
    apply = case.step_runs.get(step_id="apply")
    assert apply.status == StepStatus.SUCCEEDED
    assert apply.output is not None
    assert apply.output["ref"].startswith("MOD-")
    # The worker's log lines are JSON and carry the case's correlation id.
    lines = [
        json.loads(line) for line in worker_process.read_text().splitlines() if line.startswith("{")
    ]
    assert any(line.get("correlation_id") == str(case.correlation_id) for line in lines)
