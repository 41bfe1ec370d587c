from typing import Any

from django.core.management.base import BaseCommand

from audit.services import checkpoint_create


class Command(BaseCommand):
    help = "Store a checkpoint: a digest over every audit chain head (beat does this periodically)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = checkpoint_create()
        self.stdout.write(
            f"checkpoint #{checkpoint.pk}: {checkpoint.chain_count} chains, "
            f"{checkpoint.event_count} events, up to event #{checkpoint.max_event_id}"
        )
