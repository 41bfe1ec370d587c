"""The pure part of the audit chain: canonical encoding and hashes. No database here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

GENESIS_HASH = "0" * 64
# Bump when the set or meaning of hashed fields changes; old events keep their version.
HASH_VERSION = 1

# The fields of an event that its hash covers, in the order they are hashed. The
# database id is not among them: it is assigned by the INSERT that stores the hash.
HASHED_FIELDS = (
    "chain",
    "chain_seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "case_id",
    "correlation_id",
    "trace_id",
    "request_id",
    "client_ip",
    "reason",
    "before",
    "after",
    "prev_hash",
)


def to_json_value(value: Any) -> Any:
    """The value as it reads back from a JSON column: dates, decimals, UUIDs become strings.

    Hashing the stored form, not the Python object the caller passed, is what makes a
    recomputation from the database give the same hash.
    """
    if value is None:
        return None
    return _as_stored(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def _as_stored(value: Any) -> Any:
    """Numbers as a PostgreSQL jsonb column gives them back: a whole float written
    with an exponent (1e16, -2.5e20) comes back as an integer ("10000000000000000"),
    so it is hashed as one; every other value as it is (1.0 and 2.5e-07 keep their
    float form). Without this, such an event failed verification on PostgreSQL."""
    if isinstance(value, float):
        text = repr(value)  # what json.dumps wrote and the database parsed, exactly
        return int(Decimal(text)) if value.is_integer() and "e" in text else value
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_stored(item) for item in value]
    return value


def canonical_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """Canonical JSON of the hashed fields: sorted keys, no spaces, UTF-8."""
    doc: dict[str, Any] = {"v": HASH_VERSION}
    for name in HASHED_FIELDS:
        value = fields[name]
        if isinstance(value, dt.datetime):
            value = canonical_time(value)
        elif value is not None and not isinstance(value, str | int | float | bool | dict | list):
            value = str(value)
        doc[name] = value
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical encoding, which includes the previous hash."""
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


class HeadsDigest:
    """A digest over chain heads (chain, last chain_seq, last hash), in any order.

    The sum modulo 2**256 of each head's SHA-256: independent of the order the
    database returns chains in (collations differ), so heads can be added one at a
    time as a stream passes them, in constant memory. A missing, shortened or altered
    chain changes it.
    """

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, chain: str, seq: int, head_hash: str) -> None:
        item = hashlib.sha256(f"{chain}\t{seq}\t{head_hash}".encode()).digest()
        self.total = (self.total + int.from_bytes(item, "big")) % _MODULUS
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self.total:064x}"


_MODULUS = 2**256


def checkpoint_hash(fields: Mapping[str, Any]) -> str:
    doc = {k: (canonical_time(v) if isinstance(v, dt.datetime) else v) for k, v in fields.items()}
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(payload).hexdigest()
