"""The Celery application. Configuration comes from Django settings (CELERY_*)."""

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["config"])


@signals.worker_process_init.connect(weak=False)
@signals.beat_init.connect(weak=False)
def start_tracing(**kwargs: Any) -> None:
    """Trace this worker process (each prefork child, or the solo pool's one) and beat,
    when the OTEL_* variables ask for it. Prefork children start it after the fork, as
    the span exporter keeps a background thread."""
    from config import tracing

    tracing.setup()
