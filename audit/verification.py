"""Recomputing the audit chains. Streams the table, so memory stays flat at any size."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction

from audit.hashing import (
    GENESIS_HASH,
    HASH_VERSION,
    HASHED_FIELDS,
    HeadsDigest,
    canonical_time,
    checkpoint_hash,
    event_hash,
)
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import chain_for


@dataclass(frozen=True)
class BrokenLink:
    event_id: int
    chain: str
    chain_seq: int
    problem: str

    def describe(self) -> str:
        where = f"chain {self.chain}, position {self.chain_seq}"
        return f"event #{self.event_id} ({where}): {self.problem}"


@dataclass(frozen=True)
class CheckpointProblem:
    checkpoint_id: int
    problem: str

    def describe(self) -> str:
        return f"checkpoint #{self.checkpoint_id}: {self.problem}"


@dataclass
class VerificationResult:
    events_checked: int = 0
    chains_checked: int = 0
    first_break: BrokenLink | None = None
    checkpoint_id: int | None = None
    checkpoint_problem: CheckpointProblem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_break is None and self.checkpoint_problem is None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


_FIELDS = ("id", *HASHED_FIELDS, "hash")
_CHAIN_IDX = _FIELDS.index("chain")
_SEQ_IDX = _FIELDS.index("chain_seq")
_PREV_IDX = _FIELDS.index("prev_hash")
_AT_IDX = HASHED_FIELDS.index("occurred_at")
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _content_matches(values: Sequence[Any], stored_hash: str) -> bool:
    """Whether event_hash over these hashed field values (as read back) is `stored_hash`.

    The fast path builds the very document hashing.canonical_bytes builds, without its
    per-field type dispatch: of the values a row reads back as (str, int, None, a
    datetime, decoded JSON) only the datetime needs converting. Anything else the
    dispatch would turn into a string cannot be JSON-encoded and raises TypeError, so
    it takes the reference path. So does every mismatch: a row is reported as altered
    only when event_hash itself says so.
    """
    doc = dict(zip(HASHED_FIELDS, values, strict=True))
    occurred_at = values[_AT_IDX]
    if type(occurred_at) is dt.datetime:
        doc["occurred_at"] = canonical_time(occurred_at)
    doc["v"] = HASH_VERSION
    try:
        if hashlib.sha256(_encode(doc).encode()).hexdigest() == stored_hash:
            return True
    except TypeError:
        pass
    return event_hash(dict(zip(HASHED_FIELDS, values, strict=True))) == stored_hash


# The canonical document's keys in sorted order are fixed, so on PostgreSQL the
# document is assembled from a template: the string values JSON-encoded by json's C
# encoder in one pass, the nested before/after re-encoded with sorted keys.
_STR_SLOTS = tuple(
    i for i, name in enumerate(HASHED_FIELDS) if name not in {"chain_seq", "before", "after"}
)
_SEQ_SLOT = HASHED_FIELDS.index("chain_seq")
_BEFORE_SLOT = HASHED_FIELDS.index("before")
_AFTER_SLOT = HASHED_FIELDS.index("after")
_strings = operator.itemgetter(*_STR_SLOTS)
_encode_str: Any = json.encoder.encode_basestring


def _template() -> str:
    """'{"action":{n},...}' with each key's place in the argument list of _raw_matches
    (the string fields in _STR_SLOTS order, then chain_seq, before, after)."""
    where = {HASHED_FIELDS[slot]: n for n, slot in enumerate(_STR_SLOTS)}
    where.update(chain_seq=len(_STR_SLOTS), before=len(_STR_SLOTS) + 1)
    where["after"] = len(_STR_SLOTS) + 2
    items = []
    for key in sorted([*HASHED_FIELDS, "v"]):
        value = json.dumps(HASH_VERSION) if key == "v" else f"{{{where[key]}}}"
        items.append(f'"{key}":{value}')
    return "{{" + ",".join(items) + "}}"


_TEMPLATE = _template()


_row_strings = operator.itemgetter(*(slot + 1 for slot in _STR_SLOTS))

# before/after are parsed and re-encoded (sorted keys) for every event: json's C scanner
# and C encoder called directly, without the per-call Python layers of json.loads and
# JSONEncoder.encode (which builds a new C encoder on every call). Where the C parts
# are missing, the public functions; either way a mismatch goes to event_hash.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_decoder: Any = json.JSONDecoder()
_scan_json = _decoder.scan_once


def _loads_compact(text: str) -> Any:
    value, end = _scan_json(text, 0)
    if end != len(text):
        raise ValueError("trailing text after the JSON value")
    return value


if _c_encoder is not None:
    _encode_chunks = _c_encoder(
        None, json.JSONEncoder().default, _encode_str, None, ":", ",", True, False, True
    )

    def _sorted_json(text: str) -> str:
        return "".join(_encode_chunks(_loads_compact(text), 0))

else:  # pragma: no cover (CPython always has the C encoder)

    def _sorted_json(text: str) -> str:
        return _encode(json.loads(text))


def _raw_matches(row: Sequence[Any], stored_hash: str) -> bool:
    """`_content_matches` for a whole row of the PostgreSQL stream (id first, hash
    last), where occurred_at comes as its canonical text (formatted by the server) and
    before/after as their JSON text. Any value of an unexpected type, and every
    mismatch, is settled by event_hash over the values as the ORM would read them back."""
    seq, before, after = row[_SEQ_SLOT + 1], row[_BEFORE_SLOT + 1], row[_AFTER_SLOT + 1]
    try:
        if type(seq) is not int:
            raise TypeError("chain_seq")
        document = _TEMPLATE.format(
            *map(_encode_str, _row_strings(row)),
            seq,
            "null" if before is None else _sorted_json(before),
            "null" if after is None else _sorted_json(after),
        )
        if hashlib.sha256(document.encode()).hexdigest() == stored_hash:
            return True
    except (TypeError, ValueError, StopIteration):
        pass
    read_back = list(row[1:-1])
    read_back[_AT_IDX] = dt.datetime.fromisoformat(read_back[_AT_IDX])
    for slot in (_BEFORE_SLOT, _AFTER_SLOT):
        if read_back[slot] is not None:
            read_back[slot] = json.loads(read_back[slot])
    return event_hash(dict(zip(HASHED_FIELDS, read_back, strict=True))) == stored_hash


def _raw_columns() -> str:
    from django.db import connection

    qn = connection.ops.quote_name
    columns = []
    for name in _FIELDS:
        if name == "occurred_at":
            # hashing.canonical_time, computed by the server: UTC, microseconds.
            columns.append(
                """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')"""
                " || '+00:00'"
            )
        else:
            columns.append(qn(name))
    return ", ".join(columns)


def _raw_rows(
    *, chain: str | None, low: str | None, high: str | None, chunk_size: int
) -> Iterator[tuple[Any, ...]]:
    """PostgreSQL: the events in (chain, chain_seq) order through a server-side cursor
    on psycopg directly, without the ORM's per-value conversions."""
    from django.db import connection

    where, params = [], []
    if chain is not None:
        where.append("chain = %s")
        params.append(chain)
    if low is not None:
        where.append("chain >= %s")
        params.append(low)
    if high is not None:
        where.append("chain < %s")
        params.append(high)
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    query = (
        f"SELECT {_raw_columns()} FROM {table}"  # noqa: S608 (names from the model)
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY chain, chain_seq"
    )
    connection.ensure_connection()
    raw = connection.connection
    if raw is None:  # ensure_connection() opened it; never None here
        raise RuntimeError("no database connection")
    with raw.cursor(name=f"audit_verify_{id(query)}") as cursor:
        cursor.itersize = chunk_size
        cursor.execute(query, params)
        yield from cursor


@dataclass
class _Scan:
    """What one pass over a run of chains found."""

    events_checked: int = 0
    chains_checked: int = 0
    first_break: BrokenLink | None = None
    heads_then: HeadsDigest = field(default_factory=HeadsDigest)
    events_then: int = 0


def _scan(rows: Iterable[Sequence[Any]], limit: int, *, raw: bool = False) -> _Scan:
    """Walk events ordered by (chain, chain_seq); stop at the first broken link.

    Heads as they stood at the checkpoint (events up to `limit`) are digested as the
    stream passes them, so memory stays flat however many events and chains there are.
    """
    scan = _Scan()
    chain: str | None = None
    expected_seq = 1
    prev_hash = GENESIS_HASH
    head_then: tuple[str, int, str] | None = None
    if raw:
        matches = _raw_matches
    else:

        def matches(row: Sequence[Any], stored_hash: str) -> bool:
            return _content_matches(row[1:-1], stored_hash)

    for row in rows:
        if row[_CHAIN_IDX] != chain:
            if head_then is not None:
                scan.heads_then.add(*head_then)
            chain, expected_seq, prev_hash, head_then = row[_CHAIN_IDX], 1, GENESIS_HASH, None
            scan.chains_checked += 1
        event_id, seq, stored_hash = row[0], row[_SEQ_IDX], row[-1]
        problem = None
        if seq != expected_seq:
            problem = f"expected position {expected_seq}: events before it are missing"
        elif row[_PREV_IDX] != prev_hash:
            problem = "its prev_hash does not match the hash of the event before it"
        elif not matches(row, stored_hash):
            problem = "its content does not match its hash (the row was altered)"
        if problem is not None:
            scan.first_break = BrokenLink(event_id, row[_CHAIN_IDX], seq, problem)
            return scan
        scan.events_checked += 1
        if event_id <= limit:
            head_then = (row[_CHAIN_IDX], seq, stored_hash)
            scan.events_then += 1
        expected_seq, prev_hash = seq + 1, stored_hash
    if head_then is not None:
        scan.heads_then.add(*head_then)
    return scan


def _scan_range(low: str | None, high: str | None, limit: int, chunk_size: int) -> _Scan:
    """One worker process's share: the chains from `low` (inclusive) to `high`."""
    from django.db import connections

    connections.close_all()  # never share the parent's connection across a fork
    try:
        with transaction.atomic():  # a server-side cursor lives in a transaction
            rows = _raw_rows(chain=None, low=low, high=high, chunk_size=chunk_size)
            return _scan(rows, limit, raw=True)
    finally:
        connections.close_all()


def _chain_boundaries(jobs: int) -> list[str]:
    """Chain names splitting all chains into `jobs` runs of about equal count."""
    firsts = AuditEvent.objects.filter(chain_seq=1).order_by("chain")
    total = firsts.count()
    return [
        name
        for k in range(1, jobs)
        if (
            name := firsts.values_list("chain", flat=True)[
                k * total // jobs : k * total // jobs + 1
            ].first()
        )
    ]


def _parallel_scan(jobs: int, limit: int, chunk_size: int) -> _Scan:
    """Scan runs of chains in `jobs` processes and add the findings up. Chains are
    independent and the heads digest is a sum, so the parts combine exactly; the first
    break is the first one in chain order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from django.db import connections

    bounds = _chain_boundaries(jobs)
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    connections.close_all()
    with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(
            pool.map(
                _scan_range,
                *zip(*ranges, strict=True),
                [limit] * len(ranges),
                [chunk_size] * len(ranges),
            )
        )
    total = _Scan()
    for part in parts:
        total.events_checked += part.events_checked
        total.chains_checked += part.chains_checked
        total.events_then += part.events_then
        total.heads_then.total = (total.heads_then.total + part.heads_then.total) % 2**256
        total.heads_then.count += part.heads_then.count
        if part.first_break is not None and total.first_break is None:
            total.first_break = part.first_break
    return total


def verify(
    *, case_id: str | None = None, chunk_size: int = 5000, jobs: int = 1
) -> VerificationResult:
    """Recompute every chain (or one case's) and report the first broken link.

    Checks each event's position in its chain, its link to the previous event, and
    its own hash. Over the whole table it also checks the checkpoints: they must chain
    to one another, and the newest must match the chain heads as they stood when it
    was taken, which finds a chain (or a chain's newest events) removed outright.
    With `jobs` > 1 on PostgreSQL (outside a transaction), runs of chains are checked
    in that many processes.
    """
    from django.db import connection

    result = VerificationResult()
    checkpoint = None
    if case_id is None:
        checkpoint = _check_checkpoint_chain(result)
    else:
        result.notes.append("checkpoints are not checked when verifying a single case")
    limit = checkpoint.max_event_id if checkpoint else 0
    # Worker processes need their own connections and committed data: never from
    # inside a transaction (the tests' own, say), where the sequential scan runs.
    parallel = jobs > 1 and connection.vendor == "postgresql" and not connection.in_atomic_block
    if case_id is None and parallel:
        scan = _parallel_scan(jobs, limit, chunk_size)
    elif connection.vendor == "postgresql":
        chain = chain_for(case_id) if case_id is not None else None
        with transaction.atomic():  # a server-side cursor lives in a transaction
            rows = _raw_rows(chain=chain, low=None, high=None, chunk_size=chunk_size)
            scan = _scan(rows, limit, raw=True)
    else:
        events = AuditEvent.objects.order_by("chain", "chain_seq")
        if case_id is not None:
            events = events.filter(chain=chain_for(case_id))
        scan = _scan(events.values_list(*_FIELDS).iterator(chunk_size=chunk_size), limit)
    result.events_checked, result.chains_checked = scan.events_checked, scan.chains_checked
    if scan.first_break is not None:
        result.first_break = scan.first_break
        return result
    if checkpoint is not None and result.checkpoint_problem is None:
        result.checkpoint_id = checkpoint.pk
        heads = scan.heads_then
        if (
            heads.hexdigest() != checkpoint.heads_digest
            or heads.count != checkpoint.chain_count
            or scan.events_then != checkpoint.event_count
        ):
            result.checkpoint_problem = CheckpointProblem(
                checkpoint.pk,
                f"when it was taken (up to event #{checkpoint.max_event_id}) there were "
                f"{checkpoint.chain_count} chains and {checkpoint.event_count} events; "
                f"now there are {heads.count} chains and {scan.events_then} events up to "
                "that point with different heads: a chain or the newest events of a "
                "chain were removed or rewritten",
            )
    return result


def _check_checkpoint_chain(result: VerificationResult) -> AuditCheckpoint | None:
    """Check the checkpoints link up and hash right; return the newest (None if none)."""
    prev = GENESIS_HASH
    newest = None
    for checkpoint in AuditCheckpoint.objects.order_by("id").iterator(chunk_size=1000):
        if checkpoint.prev_hash != prev:
            problem = "does not link to the checkpoint before it (one was removed)"
        elif checkpoint_hash(checkpoint.hashed_fields()) != checkpoint.hash:
            problem = "its content does not match its hash (the row was altered)"
        else:
            problem = None
        if problem is not None and result.checkpoint_problem is None:
            result.checkpoint_problem = CheckpointProblem(checkpoint.pk, problem)
        prev = checkpoint.hash
        newest = checkpoint
    if newest is None:
        result.notes.append("no checkpoint yet: removal of a whole chain cannot be detected")
    return newest
