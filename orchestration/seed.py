"""Demo workflows for `manage.py seed_demo`: the three definitions shipped in workflows/."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from audit.context import Actor
from orchestration.services import workflow_load

WORKFLOWS_DIR = Path(__file__).resolve().parent / "workflows"


def seed_demo(log: Callable[[str], None]) -> None:
    for path in sorted(WORKFLOWS_DIR.glob("*.json")):
        workflow, created = workflow_load(
            document=json.loads(path.read_text()), actor=Actor.system("seed_demo")
        )
        log(f"workflow {workflow.slug} v{workflow.version}: {'loaded' if created else 'exists'}")
