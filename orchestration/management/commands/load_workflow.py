from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import Actor
from orchestration.definition import InvalidDefinition
from orchestration.services import workflow_load


class Command(BaseCommand):
    help = (
        "Load a workflow definition (JSON file) as the next version of its workflow and "
        "publish it. An invalid definition is refused with every problem named, and "
        "nothing is saved; a definition identical to the newest version creates nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--draft", action="store_true", help="store without publishing")

    def handle(self, *args: Any, files: list[Path], draft: bool, **options: Any) -> None:
        for path in files:
            try:
                document = json.loads(path.read_text())
            except OSError as exc:
                raise CommandError(f"{path}: cannot read: {exc.strerror}") from None
            except json.JSONDecodeError as exc:
                raise CommandError(f"{path}: not JSON: {exc}") from None
            try:
                workflow, created = workflow_load(
                    document=document, actor=Actor.system("load_workflow"), publish=not draft
                )
            except InvalidDefinition as exc:
                problems = "\n  ".join(exc.problems)
                raise CommandError(f"{path}: invalid workflow definition:\n  {problems}") from None
            state = "published" if workflow.published else "draft"
            verb = "loaded" if created else "unchanged"
            self.stdout.write(f"{path}: {verb} {workflow.slug} v{workflow.version} ({state})")
