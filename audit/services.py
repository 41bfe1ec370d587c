"""Writing to the audit trail. Every other app calls `record` inside its own transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from audit import context
from audit.context import Actor, ActorLike
from audit.hashing import GENESIS_HASH, HeadsDigest, checkpoint_hash, event_hash, to_json_value
from audit.models import GLOBAL_CHAIN, AuditAction, AuditCheckpoint, AuditEvent


class AuditError(Exception):
    pass


def _actor(value: ActorLike) -> Actor:
    if isinstance(value, Actor):
        return value
    if value is None:
        return context.current().actor or Actor.system("system")
    if not value.is_authenticated:
        return Actor.system("anonymous")
    return Actor.user(value)


def chain_for(case_id: str) -> str:
    return f"case:{case_id}" if case_id else GLOBAL_CHAIN


def _lock_chain(chain: str) -> None:
    """Serialize appends to one chain until the caller's transaction ends.

    On PostgreSQL a transaction-scoped advisory lock keyed by the chain; SQLite runs
    one writer at a time already (IMMEDIATE transactions), so it needs nothing.
    """
    if connection.vendor == "postgresql":
        key = int.from_bytes(hashlib.sha256(chain.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def record(
    *,
    actor: ActorLike,
    action: str,
    subject: models.Model | None = None,
    object_type: str = "",
    object_id: object = "",
    case_id: object = "",
    correlation_id: object = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditEvent:
    """Append one event to its chain (the case's, or the global one) and return it.

    Must run inside the caller's transaction, so the event and the change it records
    commit or roll back together; outside one it raises AuditError. Costs one advisory
    lock, one indexed read of the chain head and one INSERT.
    """
    if not connection.in_atomic_block:
        raise AuditError("audit.record must run inside the transaction of the change it records")
    if action not in AuditAction.values:
        raise AuditError(f"unknown audit action {action!r}; add it to AuditAction first")
    if subject is not None:
        object_type = object_type or subject._meta.label_lower
        object_id = object_id or subject.pk
    ctx = context.current()
    who = _actor(actor)
    case = str(case_id or "")
    chain = chain_for(case)
    _lock_chain(chain)
    head = (
        AuditEvent.objects.filter(chain=chain)
        .order_by("-chain_seq")
        .values_list("chain_seq", "hash")
        .first()
    )
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    event = AuditEvent(
        occurred_at=timezone.now(),
        chain=chain,
        chain_seq=seq,
        actor_kind=who.kind,
        actor_id=who.id,
        actor_name=who.name,
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        case_id=case,
        correlation_id=str(correlation_id or ctx.correlation_id or ""),
        trace_id=ctx.trace_id,
        request_id=ctx.request_id,
        client_ip=ctx.client_ip,
        reason=reason,
        before=to_json_value(before),
        after=to_json_value(after),
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event.hashed_fields())
    event.save()
    return event


# Audited configuration changes ---------------------------------------------------------


def reason_required(reason: str) -> str:
    """The reason a person gave for a change, stripped; refused when empty."""
    from config.errors import ApplicationError

    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("say why: a reason is required", field="reason")
    return reason


def model_snapshot(obj: models.Model) -> dict[str, Any]:
    """A model's field values as JSON values for before/after; decimals at their stored
    precision, so a form's "95" and the database's 95.000 read alike."""
    import json
    from decimal import Decimal

    from django.core.serializers.json import DjangoJSONEncoder
    from django.forms.models import model_to_dict

    values = model_to_dict(obj)
    for field in obj._meta.concrete_fields:
        value = values.get(field.name)
        if isinstance(field, models.DecimalField) and isinstance(value, Decimal):
            values[field.name] = value.quantize(Decimal(1).scaleb(-field.decimal_places))
    snapshot: dict[str, Any] = json.loads(json.dumps(values, cls=DjangoJSONEncoder))
    return snapshot


@transaction.atomic
def audited_save(*, obj: Any, actor: ActorLike, reason: str, action: str) -> Any:
    """Validate and save a configuration object, with its before/after and the reason
    in the audit trail (and, for models with history, as the history's reason)."""
    reason = reason_required(reason)
    obj.full_clean()
    before = None
    if obj.pk is not None:
        previous = type(obj)._default_manager.filter(pk=obj.pk).first()
        before = model_snapshot(previous) if previous is not None else None
    obj._change_reason = reason
    obj.save()
    record(
        actor=actor,
        action=action,
        subject=obj,
        before=before,
        after=model_snapshot(obj),
        reason=reason,
    )
    return obj


@transaction.atomic
def audited_delete(*, obj: Any, actor: ActorLike, reason: str, action: str) -> None:
    """Delete a configuration object, keeping what it was in the audit trail."""
    reason = reason_required(reason)
    record(
        actor=actor,
        action=action,
        subject=obj,
        before=model_snapshot(obj),
        after=None,
        reason=reason,
    )
    obj._change_reason = reason
    obj.delete()


_HEADS_SQL = """
    SELECT e.chain, e.chain_seq, e.hash
    FROM audit_auditevent e
    JOIN (
        SELECT chain, MAX(chain_seq) AS seq FROM audit_auditevent WHERE id <= %s GROUP BY chain
    ) h ON e.chain = h.chain AND e.chain_seq = h.seq
"""


def iter_heads(*, max_event_id: int) -> Iterator[tuple[str, int, str]]:
    """(chain, last seq, last hash) of every chain as of event `max_event_id`, streamed."""
    with connection.cursor() as cursor:
        cursor.execute(_HEADS_SQL, [max_event_id])
        while rows := cursor.fetchmany(5000):
            yield from ((chain, int(seq), head) for chain, seq, head in rows)


@transaction.atomic
def checkpoint_create() -> AuditCheckpoint:
    """Store a digest over all chain heads, chained to the previous checkpoint."""
    # Hold every appender off while the heads are read, so the digest is of one moment.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE audit_auditevent IN SHARE MODE")
    max_event_id = AuditEvent.objects.aggregate(m=models.Max("id"))["m"] or 0
    digest = HeadsDigest()
    for head in iter_heads(max_event_id=max_event_id):
        digest.add(*head)
    previous = AuditCheckpoint.objects.order_by("-id").values_list("hash", flat=True).first()
    checkpoint = AuditCheckpoint(
        created_at=timezone.now(),
        max_event_id=max_event_id,
        chain_count=digest.count,
        event_count=AuditEvent.objects.filter(id__lte=max_event_id).count(),
        heads_digest=digest.hexdigest(),
        prev_hash=previous or GENESIS_HASH,
    )
    checkpoint.hash = checkpoint_hash(checkpoint.hashed_fields())
    checkpoint.save()
    return checkpoint
