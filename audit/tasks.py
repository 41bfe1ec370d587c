from celery import shared_task


@shared_task(name="audit.tasks.checkpoint")
def checkpoint() -> int:
    """Periodic (beat): digest every chain head so a removed chain is detectable."""
    from audit.services import checkpoint_create

    return checkpoint_create().pk
