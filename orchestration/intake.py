"""Intake services: API clients, idempotency keys and webhook deliveries."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.context import ActorLike
from audit.models import AuditAction
from audit.services import record
from config.errors import ApplicationError, Conflict
from config.sqlcache import first_row
from orchestration.backoff import retry_delay
from orchestration.definition import RetryPolicy
from orchestration.models import (
    ApiClient,
    DeliveryStatus,
    IdempotencyRecord,
    OutboxEvent,
    Scope,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    hash_token,
    new_token,
)

logger = logging.getLogger("arbiter.intake")

IDEMPOTENCY_TTL = dt.timedelta(hours=24)
WEBHOOK_RETRY = RetryPolicy(max_attempts=10_000, base_delay=5.0, max_delay=3600.0)
WEBHOOK_GIVE_UP_AFTER = dt.timedelta(hours=24)
WEBHOOK_TIMEOUT_SECONDS = 10.0


# Clients ------------------------------------------------------------------------------


@transaction.atomic
def api_client_create(
    *,
    name: str,
    scopes: Iterable[str],
    allowed_workflows: Iterable[str] = ("*",),
    owner: Any = None,
    actor: ActorLike,
) -> tuple[ApiClient, str]:
    """Create a client; returns it with its token, which is not stored and never shown again."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ApplicationError(
            f"unknown scope(s): {', '.join(sorted(unknown))}; known: {', '.join(Scope.values)}",
            field="scopes",
        )
    if ApiClient.objects.filter(name=name).exists():
        raise Conflict(f"an API client named {name!r} exists already", field="name")
    token = new_token()
    client = ApiClient.objects.create(
        name=name,
        token_hash=hash_token(token),
        token_hint=token[:8],
        scopes=scopes,
        allowed_workflows=sorted(set(allowed_workflows)),
        owner=owner,
    )
    record(
        actor=actor,
        action=AuditAction.CLIENT_CREATED,
        subject=client,
        after={"name": name, "scopes": scopes, "allowed_workflows": client.allowed_workflows},
    )
    return client, token


@transaction.atomic
def api_client_revoke(*, client: ApiClient, actor: ActorLike, reason: str = "") -> ApiClient:
    """Revoke at once: the next request with its token is refused."""
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    if not client.active:
        return client
    client.active = False
    client.revoked_at = timezone.now()
    client.save(update_fields=["active", "revoked_at"])
    record(actor=actor, action=AuditAction.CLIENT_REVOKED, subject=client, reason=reason)
    return client


def api_client_for_token(token: str) -> ApiClient | None:
    """The active client holding this token, or None. Compares hashes, never tokens."""
    if not token:
        return None
    token_hash = hash_token(token)
    # Read on every API request: its SQL is built once per token (hash).
    return first_row(
        ApiClient,
        ("api client", token_hash),
        lambda: ApiClient.objects.filter(token_hash=token_hash, active=True).order_by("pk"),
    )


# Idempotency ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IdempotencyClaim:
    record: IdempotencyRecord
    # "new": go ahead; "replay": answer with the stored response; "in_flight": 409;
    # "mismatch": the key was used with another body: 422.
    state: str


def request_fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_CLAIM_SQL = """
    INSERT INTO orchestration_idempotencyrecord
        (client_id, key, request_hash, completed, response_status, response_body,
         created_at, expires_at)
    VALUES (%s, %s, %s, false, NULL, NULL, %s, %s)
    ON CONFLICT (client_id, key) DO UPDATE SET
        request_hash = EXCLUDED.request_hash, completed = false, response_status = NULL,
        response_body = NULL, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
    WHERE orchestration_idempotencyrecord.expires_at <= EXCLUDED.created_at
    RETURNING id
"""


def idempotency_claim(*, client: ApiClient, key: str, fingerprint: str) -> IdempotencyClaim:
    """Claim `key` for this request, or say why it cannot be. Commits on its own, so a
    concurrent request with the same key sees the claim at once (the unique index
    lets exactly one INSERT win)."""
    now = timezone.now()
    expires = now + IDEMPOTENCY_TTL
    if connection.vendor == "postgresql":
        # One statement, one round trip: insert the key, or take over the row of an
        # expired one; a live key (or a concurrent claim, which waits on the unique
        # index and then loses) returns no row.
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, [client.pk, key, fingerprint, now, expires])
            row = cursor.fetchone()
        if row is not None:
            claimed = IdempotencyRecord(
                id=row[0],
                client=client,
                key=key,
                request_hash=fingerprint,
                created_at=now,
                expires_at=expires,
            )
            claimed._state.adding = False
            claimed._state.db = connection.alias
            return IdempotencyClaim(claimed, "new")
        existing = IdempotencyRecord.objects.get(client=client, key=key)
    else:
        # One short transaction (one commit): forget the key if it is past its time,
        # then claim it; a concurrent claim of the same key waits and loses.
        with transaction.atomic():
            IdempotencyRecord.objects.filter(client=client, key=key, expires_at__lte=now).delete()
            try:
                with transaction.atomic():
                    claimed = IdempotencyRecord.objects.create(
                        client=client,
                        key=key,
                        request_hash=fingerprint,
                        created_at=now,
                        expires_at=expires,
                    )
                return IdempotencyClaim(claimed, "new")
            except IntegrityError:
                existing = IdempotencyRecord.objects.get(client=client, key=key)
    if existing.request_hash != fingerprint:
        return IdempotencyClaim(existing, "mismatch")
    if not existing.completed:
        return IdempotencyClaim(existing, "in_flight")
    return IdempotencyClaim(existing, "replay")


def idempotency_complete(*, claim: IdempotencyRecord, status: int, body: Any) -> None:
    IdempotencyRecord.objects.filter(pk=claim.pk).update(
        completed=True, response_status=status, response_body=body
    )


def idempotency_release(*, claim: IdempotencyRecord) -> None:
    """Forget a claim whose request was refused (4xx) or failed, so the client may retry
    with the same key after fixing the request."""
    IdempotencyRecord.objects.filter(pk=claim.pk, completed=False).delete()


def idempotency_purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


# Webhooks -------------------------------------------------------------------------------


def webhook_fan_out(events: Iterable[OutboxEvent]) -> list[int]:
    """Create one delivery per (event, endpoint of the case's client that wants it).
    Runs in the relay's transaction; the unique (endpoint, event) pair makes a second
    fan-out of the same event a no-op. Returns the new deliveries' ids."""
    created = []
    by_client: dict[int, list[WebhookEndpoint]] = {}
    for event in events:
        if event.case_id is None:
            continue
        client_id = event.case.client_id if event.case else None
        if client_id is None:
            continue
        if client_id not in by_client:
            by_client[client_id] = list(
                WebhookEndpoint.objects.filter(client_id=client_id, active=True)
            )
        for endpoint in by_client[client_id]:
            if not endpoint.wants(event.topic):
                continue
            delivery, made = WebhookDelivery.objects.get_or_create(
                endpoint=endpoint,
                event_id=event.id,
                defaults={
                    "topic": event.topic,
                    "body": _webhook_body(event),
                    "next_attempt_at": timezone.now(),
                    "give_up_at": timezone.now() + WEBHOOK_GIVE_UP_AFTER,
                },
            )
            if made:
                created.append(delivery.pk)
    return created


def _webhook_body(event: OutboxEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "type": event.topic,
        "created_at": event.created_at.isoformat(),
        "correlation_id": event.correlation_id,
        "data": event.payload,
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Arbiter-Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: check the HMAC and refuse timestamps older than `tolerance` s."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def webhook_deliver(delivery_id: int) -> str:
    """Make one attempt at a due delivery; returns its status afterwards.

    The row is claimed by pushing its next attempt into the future first
    (compare-and-swap), so two workers never POST the same attempt at once.
    """
    now = timezone.now()
    lease = now + dt.timedelta(seconds=WEBHOOK_TIMEOUT_SECONDS * 3)
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(next_attempt_at=lease)
    )
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if not claimed:
        return delivery.status
    endpoint = delivery.endpoint
    body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310  (http(s) URLs only: URLField)
        endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Arbiter-Webhooks/1",
            "Arbiter-Event-Id": str(delivery.event_id),
            "Arbiter-Event-Type": delivery.topic,
            "Arbiter-Signature": sign(endpoint.secret, timestamp, body),
        },
    )
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    try:
        with _NO_REDIRECTS.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code, error = exc.code, f"HTTP {exc.code}"
        exc.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - started) * 1000)
    ok = status_code is not None and 200 <= status_code < 300
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        WebhookAttempt.objects.create(
            delivery=delivery, status_code=status_code, error=error[:2000], duration_ms=duration_ms
        )
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error[:2000]
        if ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = timezone.now()
            delivery.next_attempt_at = None
        else:
            delay = retry_delay(WEBHOOK_RETRY, min(delivery.attempts, 30))
            next_at = timezone.now() + dt.timedelta(seconds=delay)
            if delivery.give_up_at is not None and next_at > delivery.give_up_at:
                delivery.status = DeliveryStatus.DEAD
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = next_at
        delivery.save()
    return delivery.status


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed attempt: following it would turn the signed POST into a
    bodiless GET to wherever the receiver points (and count that as delivered)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def webhook_deliveries_due(limit: int = 200) -> list[int]:
    now = timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


@transaction.atomic
def webhook_replay(*, delivery: WebhookDelivery, actor: ActorLike) -> WebhookDelivery:
    """Send a dead delivery again, with a fresh 24 h of retries."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status != DeliveryStatus.DEAD:
        raise Conflict(f"delivery {delivery.pk} is {delivery.status}, not dead")
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.give_up_at = delivery.next_attempt_at + WEBHOOK_GIVE_UP_AFTER
    delivery.save(update_fields=["status", "next_attempt_at", "give_up_at"])
    record(
        actor=actor,
        action=AuditAction.WEBHOOK_REPLAYED,
        subject=delivery,
        after={"event_id": str(delivery.event_id), "endpoint": delivery.endpoint_id},
    )
    transaction.on_commit(lambda: _send_delivery(delivery.pk))
    return delivery


def _send_delivery(delivery_id: int) -> None:
    from orchestration.tasks import deliver_webhook

    try:
        deliver_webhook.delay(delivery_id)
    except Exception:
        logger.warning("could not enqueue webhook delivery %s; the sweep will", delivery_id)


def enqueue_deliveries(ids: Iterable[int]) -> None:
    for delivery_id in ids:
        _send_delivery(delivery_id)


@transaction.atomic
def webhook_endpoint_disable(*, endpoint: WebhookEndpoint, actor: ActorLike) -> WebhookEndpoint:
    """Stop deliveries to an endpoint at once; its delivery log is kept."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.active:
        endpoint.active = False
        endpoint.save(update_fields=["active"])
        WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.DEAD, next_attempt_at=None, last_error="endpoint removed"
        )
        record(actor=actor, action=AuditAction.WEBHOOK_REMOVED, subject=endpoint)
    return endpoint


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


@transaction.atomic
def webhook_endpoint_create(
    *, client: ApiClient, url: str, event_types: Iterable[str], actor: ActorLike
) -> WebhookEndpoint:
    """Register an endpoint with a fresh signing secret (shown to the client once)."""
    if not url.startswith(("https://", "http://")):
        raise ApplicationError("the URL must start with https:// or http://", field="url")
    endpoint = WebhookEndpoint.objects.create(
        client=client, url=url, event_types=sorted(set(event_types)), secret=new_webhook_secret()
    )
    record(
        actor=actor,
        action=AuditAction.WEBHOOK_REGISTERED,
        subject=endpoint,
        after={"client": client.name, "url": url, "event_types": endpoint.event_types},
    )
    return endpoint
