"""Writing to the audit trail. Every other app calls `record` inside its own transaction."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from audit import context
from audit.context import Actor, ActorLike
from audit.hashing import GENESIS_HASH, HeadsDigest, checkpoint_hash, event_hash, to_json_value
from audit.models import GLOBAL_CHAIN, AuditAction, AuditCheckpoint, AuditEvent


class AuditError(Exception):
    pass


# Django rebuilds a choices enum's `values` list on every read (about 19 µs for these
# 39 actions), and every audit event checks its action.
KNOWN_ACTIONS = frozenset(AuditAction.values)


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


def _lock_key(chain: str) -> int:
    return int.from_bytes(hashlib.sha256(chain.encode()).digest()[:8], "big", signed=True)


# The last head this process wrote or read per chain: a hint, never trusted. The
# INSERT that uses it checks in the same statement that it is still the chain's head,
# so a hint left by a rolled-back transaction or savepoint, or overtaken by another
# process, only costs the slow path. Bounded: the oldest hints go first.
_HEAD_HINTS: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
_HEAD_HINTS_MAX = 4096


def _hint_get(chain: str) -> tuple[int, str] | None:
    return _HEAD_HINTS.get((connection.alias, chain))


_HINTS_LOCK = threading.Lock()


def _hint_set(chain: str, seq: int, head_hash: str) -> None:
    key = (connection.alias, chain)
    with _HINTS_LOCK:
        _HEAD_HINTS[key] = (seq, head_hash)
        _HEAD_HINTS.move_to_end(key)
        while len(_HEAD_HINTS) > _HEAD_HINTS_MAX:
            _HEAD_HINTS.popitem(last=False)


def chain_started(case_id: object) -> None:
    """Tell the audit trail that a case was created in this transaction, so its chain
    is empty: the case's first event is then written in one round trip. (Only a hint;
    see `_HEAD_HINTS`.)"""
    _hint_set(chain_for(str(case_id)), 0, GENESIS_HASH)


def chain_head_seen(case_id: object, seq: int | None, head_hash: str | None) -> None:
    """Tell the audit trail the head of a case's chain that a statement of this
    transaction just read (`case_chain_head_sql`; None for an empty chain), so the next
    event on it is written in one round trip. Only a hint (see `_HEAD_HINTS`): if
    another writer got there first, the event takes the slow path."""
    if seq is None or head_hash is None:
        chain_started(case_id)
    else:
        _hint_set(chain_for(str(case_id)), int(seq), head_hash)


def case_chain_head_sql(case_column: str) -> str:
    """Two SQL select expressions, `audit_head_seq` and `audit_head_hash`: the head of
    the chain of the case whose id is in `case_column` (quoted SQL naming a uuid
    column), for a statement that reads or changes a case's row anyway to hand to
    `chain_head_seen`. PostgreSQL; each is one probe of the (chain, chain_seq) index."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    # The chain's name as `chain_for` spells it: a uuid's text is its str() on PostgreSQL.
    head = (
        f"FROM {table} AS audit_head WHERE audit_head.chain = 'case:' || {case_column}::text "
        "ORDER BY audit_head.chain_seq DESC LIMIT 1"
    )
    return (
        f"(SELECT audit_head.chain_seq {head}) AS audit_head_seq, "
        f"(SELECT audit_head.hash {head}) AS audit_head_hash"
    )


@functools.cache
def _insert_sql(rows: int) -> tuple[str, tuple[models.Field[Any, Any], ...]]:
    fields = tuple(f for f in AuditEvent._meta.concrete_fields if not f.primary_key)
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    # Typed placeholders: a VALUES list takes its column types from its own rows, and
    # a NULL before/after would be text there, which jsonb refuses.
    row = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in fields) + ")"
    table = qn(AuditEvent._meta.db_table)
    # Names come from the model's metadata; every value is a parameter.
    sql = (
        "SELECT pg_advisory_xact_lock(%s); "  # noqa: S608
        f"INSERT INTO {table} ({columns}) SELECT * FROM (VALUES {', '.join([row] * rows)}) AS v "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE chain = %s AND chain_seq >= %s) "
        f"AND (%s = 1 OR EXISTS (SELECT 1 FROM {table} "
        "WHERE chain = %s AND chain_seq = %s AND hash = %s)) RETURNING id, chain_seq"
    )
    return sql, fields


def _insert_if_head(events: Sequence[AuditEvent], key: int) -> bool:
    """PostgreSQL, one round trip: take the chain's lock, then insert the events (placed
    in one chain, in order, after its head as this process knows it) only if the first
    one's (chain_seq - 1, prev_hash) is still the chain's head. The two statements run
    in one simple-query message, each with its own snapshot, so the head is read after
    the lock is held. True when the rows went in (each event's pk is set)."""
    sql, fields = _insert_sql(len(events))
    values = [
        f.get_db_prep_save(getattr(event, f.attname), connection)
        for event in events
        for f in fields
    ]
    first = events[0]
    seq = first.chain_seq
    params = [key, *values, first.chain, seq, seq, first.chain, seq - 1, first.prev_hash]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.nextset()
        ids = {chain_seq: pk for pk, chain_seq in cursor.fetchall()}
    if not ids:
        return False
    for event in events:
        event.pk = ids[event.chain_seq]
        event._state.adding = False
        event._state.db = connection.alias
    return True


def _read_head(chain: str) -> tuple[int, str]:
    head = (
        AuditEvent.objects.filter(chain=chain)
        .order_by("-chain_seq")
        .values_list("chain_seq", "hash")
        .first()
    )
    return (head[0], head[1]) if head else (0, GENESIS_HASH)


def _new_event(
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
    occurred_at: Any,
) -> AuditEvent:
    """An unsaved event with everything but its place in the chain (seq, hashes)."""
    if action not in KNOWN_ACTIONS:
        raise AuditError(f"unknown audit action {action!r}; add it to AuditAction first")
    if subject is not None:
        object_type = object_type or subject._meta.label_lower
        object_id = object_id or subject.pk
    ctx = context.current()
    who = _actor(actor)
    case = str(case_id or "")
    return AuditEvent(
        occurred_at=occurred_at,
        chain=chain_for(case),
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
    )


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
    commit or roll back together; outside one it raises AuditError. On PostgreSQL it
    costs one round trip when this process knows the chain's head (it wrote the last
    event, or `chain_started` said the chain is new): the chain's advisory lock and an
    INSERT that checks the head. Otherwise two: the lock with an indexed read of the
    head, then the INSERT. Inside `batch()` the event is written when the batch ends.
    """
    if not connection.in_atomic_block:
        raise AuditError("audit.record must run inside the transaction of the change it records")
    event = _new_event(
        actor=actor,
        action=action,
        subject=subject,
        object_type=object_type,
        object_id=object_id,
        case_id=case_id,
        correlation_id=correlation_id,
        before=before,
        after=after,
        reason=reason,
        occurred_at=timezone.now(),
    )
    pending = _batch_pending()
    if pending is not None:
        pending.append(event)
    else:
        _append([event])
    return event


def record_many(entries: Sequence[Mapping[str, Any]]) -> list[AuditEvent]:
    """Append many events at once, each given as `record`'s keyword arguments, in
    order (events of one chain are chained in the order given).

    For a sweep over many cases: on PostgreSQL every chain's lock is taken and every
    head read in one round trip (locks in key order, so two batches never deadlock
    on each other), and the events go in with one INSERT. Elsewhere it is `record`
    per entry. Same rules as `record`: inside the caller's transaction.
    """
    if not entries:
        return []
    if not connection.in_atomic_block:
        raise AuditError("audit.record must run inside the transaction of the change it records")
    for entry in entries:
        if entry["action"] not in KNOWN_ACTIONS:
            raise AuditError(
                f"unknown audit action {entry['action']!r}; add it to AuditAction first"
            )
    if connection.vendor != "postgresql":
        return [record(**entry) for entry in entries]
    now = timezone.now()
    events = [_new_event(**entry, occurred_at=now) for entry in entries]
    pending = _batch_pending()
    if pending is not None:
        pending.extend(events)
    else:
        _lock_and_append(events)
    return events


def _place(events: Sequence[AuditEvent], heads: dict[str, tuple[int, str]]) -> None:
    """Give each event its chain place after `heads` (chain -> (seq, hash); a chain
    not in it is empty), in order, and its hash; `heads` ends at the new heads."""
    for event in events:
        seq, prev_hash = heads.get(event.chain, (0, GENESIS_HASH))
        event.chain_seq, event.prev_hash = seq + 1, prev_hash
        event.hash = event_hash(event.hashed_fields())
        heads[event.chain] = (event.chain_seq, event.hash)


def _lock_and_append(events: Sequence[AuditEvent]) -> None:
    """PostgreSQL, two round trips: every chain's lock taken and every head read in
    one (locks in key order, so two writers never deadlock on each other), then the
    events placed after those heads and written with one INSERT."""
    chains = sorted({event.chain for event in events})
    keys = sorted({_lock_key(chain) for chain in chains})
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM "  # noqa: S608 (the model's own table name)
            "(SELECT k FROM unnest(%s::bigint[]) AS k ORDER BY k) AS keys; "
            f"SELECT DISTINCT ON (chain) chain, chain_seq, hash FROM {table} "
            "WHERE chain = ANY(%s) ORDER BY chain, chain_seq DESC",
            [keys, chains],
        )
        cursor.nextset()
        heads = {chain: (int(seq), head) for chain, seq, head in cursor.fetchall()}
    _place(events, heads)
    AuditEvent.objects.bulk_create(events)
    for chain, (seq, head) in heads.items():
        _hint_set(chain, seq, head)


# Events recorded together ---------------------------------------------------------------


@dataclass
class _Batch:
    alias: str
    savepoints: tuple[str, ...]
    events: list[AuditEvent] = dataclasses.field(default_factory=list)


_BATCHES = threading.local()


def _batch_pending() -> list[AuditEvent] | None:
    """The open batch's list to add an event to, when the event is recorded at the
    batch's own transaction level; None otherwise (no batch, another database, or a
    nested atomic block, whose rollback must take its events with it)."""
    batch: _Batch | None = getattr(_BATCHES, "current", None)
    if (
        batch is None
        or batch.alias != connection.alias
        or tuple(connection.savepoint_ids) != batch.savepoints
    ):
        return None
    return batch.events


@contextmanager
def batch() -> Iterator[None]:
    """Events `record`ed in the block are written together when it ends, in the order
    they were recorded: on PostgreSQL in one round trip when they share a chain whose
    head this process knows (a new case's, after `chain_started`), instead of one
    each. Use it right inside the atomic block of the changes the events record: the
    events go in with them, in the same transaction, and if the block raises nothing
    is written (the transaction is rolling back).

    Inside the block `record` returns the event unsaved (no id, no chain place yet).
    An event recorded in an atomic block nested inside this one is written at once,
    not deferred, so that a rollback of the nested block takes it along; it then
    comes before the deferred ones in its chain. Batches do not nest: an inner one
    leaves the events to the outer.
    """
    if not connection.in_atomic_block:
        raise AuditError("audit.batch must run inside the transaction of the changes it records")
    if getattr(_BATCHES, "current", None) is not None:
        yield
        return
    current = _Batch(alias=connection.alias, savepoints=tuple(connection.savepoint_ids))
    _BATCHES.current = current
    try:
        yield
    finally:
        _BATCHES.current = None
    _append(current.events)


def _append(events: Sequence[AuditEvent]) -> None:
    """Chain and write events built earlier, in order. On PostgreSQL, events of one
    chain whose head this process knows go in with one round trip (the lock and an
    INSERT that checks the head); otherwise, or when the hint is stale, every chain's
    lock and head are read in one round trip and the events written in a second."""
    if not events:
        return
    if connection.vendor != "postgresql":
        for event in events:
            _place([event], {event.chain: _read_head(event.chain)})
            event.save()
        return
    chain = events[0].chain
    hint = _hint_get(chain)
    if hint is not None and all(event.chain == chain for event in events):
        heads = {chain: hint}
        _place(events, heads)
        if _insert_if_head(events, _lock_key(chain)):
            _hint_set(chain, *heads[chain])
            return
    _lock_and_append(events)


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
