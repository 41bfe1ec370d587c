from __future__ import annotations

import os
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import verify


class Command(BaseCommand):
    help = (
        "Recompute the audit hash chains (all, or one case's) and the checkpoints. "
        "Exits 0 when everything verifies; otherwise exits 1 naming the first broken event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--case", dest="case_id", help="verify only this case's chain")
        parser.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="processes checking runs of chains in parallel on PostgreSQL "
            "(default: one per CPU)",
        )

    def handle(self, *args: Any, case_id: str | None = None, **options: Any) -> None:
        if options["jobs"] < 1:
            raise CommandError("--jobs must be at least 1")
        started = time.monotonic()
        result = verify(case_id=case_id, jobs=options["jobs"])
        elapsed = time.monotonic() - started
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        if result.first_break is not None:
            raise CommandError(f"BROKEN: {result.first_break.describe()}", returncode=1)
        if result.checkpoint_problem is not None:
            raise CommandError(f"BROKEN: {result.checkpoint_problem.describe()}", returncode=1)
        rate = result.events_checked / elapsed if elapsed > 0 else 0.0
        checkpoint = f", checkpoint #{result.checkpoint_id} matches" if result.checkpoint_id else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {result.events_checked} events in {result.chains_checked} chains "
                f"verified{checkpoint} ({elapsed:.2f}s, {rate:,.0f} events/s)"
            )
        )
