"""/metrics: Arbiter's figures in the Prometheus exposition format.

Two kinds of figures, both named `arbiter_*`:

- In-process instruments, counted where things happen: request latency and status
  (RequestMetricsMiddleware) and claim latency (routing/instrumentation.py's
  `timed_claim` on `work_item_claim_next`). Labels are bounded on purpose: the route's name, never
  the raw path.
- Figures read from the database when Prometheus scrapes (DatabaseCollector): step
  runs and retries by handler, dead letters, outbox lag, queue depth, oldest item
  age, SLA breaches. One aggregate query per family, so a scrape costs the same few
  queries however much work is waiting.

Under gunicorn with several workers each process counts its own requests. Set
PROMETHEUS_MULTIPROC_DIR (an empty directory, wiped before gunicorn starts) and the
counters live in files there, summed by MultiProcessCollector at scrape time;
without it the process's default registry is exposed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, Count, F, FilteredRelation, Min, Q, Sum, Value, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from audit.context import client_ip_of
from orchestration.models import DeadLetter, OutboxEvent, StepRun
from routing.instrumentation import CLAIM_DURATION  # noqa: F401 (registered with the rest)
from routing.models import OPEN_STATES, Queue, WorkItem

logger = logging.getLogger("arbiter.metrics")

# A `_created` series beside every counter doubles what Prometheus stores for nothing
# the dashboards use.
disable_created_metrics()


# In-process instruments --------------------------------------------------------------

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "arbiter_http_requests",
    "HTTP requests answered, by method, route name and status code.",
    ["method", "view", "status"],
)
REQUEST_DURATION = Histogram(
    "arbiter_http_request_duration_seconds",
    "Time from a request entering the middleware stack to its response, by route name.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def route_of(request: HttpRequest) -> str:
    """The route's name (`routing:dashboard`), or "unmatched" when no URL matched."""
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    # Methods are free text on the wire; anything unusual shares one label value.
    method = request.method if request.method in HTTP_METHODS else "other"
    view = route_of(request)
    REQUESTS.labels(method=method, view=view, status=str(status)).inc()
    REQUEST_DURATION.labels(method=method, view=view).observe(seconds)


# Figures read from the database at scrape time ------------------------------------------


def _seconds_since(moment: dt.datetime | None, now: dt.datetime) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment is not None else 0.0


class DatabaseCollector:
    """The flow's state, read with one aggregate query per family at each scrape."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "arbiter_metrics_database_up",
            "1 when the figures below could be read from the database at this scrape.",
        )
        try:
            families = [*self._step_runs(), self._dead_letters(), *self._outbox()]
            families += [*self._queues(), self._breaches()]
        except DatabaseError:
            # Request figures are still worth having when the database is away.
            logger.warning("metrics: the database figures could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _step_runs(self) -> list[Metric]:
        rows = (
            StepRun.objects.order_by()
            .values("kind", "handler", "status", "outcome")
            .annotate(
                runs=Count("id"),
                retries=Sum(Case(When(attempt__gt=1, then=F("attempt") - 1), default=Value(0))),
            )
        )
        runs = GaugeMetricFamily(
            "arbiter_step_runs",
            "Step runs by step kind, handler, status and outcome (outcome is set once finished).",
            labels=["kind", "handler", "status", "outcome"],
        )
        retries: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            labels = [row["kind"], row["handler"], row["status"], row["outcome"]]
            runs.add_metric(labels, row["runs"])
            retries[(row["kind"], row["handler"])] += row["retries"] or 0
        retry_family = GaugeMetricFamily(
            "arbiter_step_run_retries",
            "Attempts beyond the first, summed over the step runs of each handler "
            "(a dead-letter replay starts a run's count again).",
            labels=["kind", "handler"],
        )
        for (kind, handler), count in sorted(retries.items()):
            retry_family.add_metric([kind, handler], count)
        return [runs, retry_family]

    def _dead_letters(self) -> Metric:
        rows = (
            DeadLetter.objects.filter(replayed_at__isnull=True)
            .order_by()
            .values("step_run__handler")
            .annotate(letters=Count("id"))
        )
        family = GaugeMetricFamily(
            "arbiter_dead_letters",
            "Dead letters not yet replayed, by the handler of the failed step.",
            labels=["handler"],
        )
        for row in rows:
            family.add_metric([row["step_run__handler"]], row["letters"])
        return family

    def _outbox(self) -> list[Metric]:
        now = timezone.now()
        pending = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
            events=Count("id"), oldest=Min("created_at")
        )
        return [
            GaugeMetricFamily(
                "arbiter_outbox_unpublished",
                "Outbox events written but not yet published to the broker.",
                value=pending["events"],
            ),
            GaugeMetricFamily(
                "arbiter_outbox_lag_seconds",
                "Age of the oldest unpublished outbox event; 0 when all are published.",
                value=_seconds_since(pending["oldest"], now),
            ),
        ]

    def _queues(self) -> list[Metric]:
        now = timezone.now()
        # Only open items join (the partial index workitem_open_by_queue), and every
        # queue shows, with zeros when nothing waits in it.
        rows = (
            Queue.objects.order_by("name")
            .annotate(
                open=FilteredRelation("items", condition=Q(items__state__in=OPEN_STATES)),
            )
            .values("name")
            .annotate(
                **{
                    f"state_{state.value}": Count("open", filter=Q(open__state=state))
                    for state in OPEN_STATES
                },
                oldest=Min("open__enqueued_at"),
                breached=Count("open", filter=Q(open__breached_at__isnull=False)),
                at_risk=Count(
                    "open", filter=Q(open__warned_at__isnull=False, open__breached_at__isnull=True)
                ),
            )
        )
        depth = GaugeMetricFamily(
            "arbiter_queue_depth",
            "Open work items per queue and state (queued, claimed, awaiting_checker).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "arbiter_queue_oldest_item_age_seconds",
            "Time since the oldest open item entered the queue; 0 when the queue is empty.",
            labels=["queue"],
        )
        breached = GaugeMetricFamily(
            "arbiter_queue_breached",
            "Open items past their SLA due time, per queue.",
            labels=["queue"],
        )
        at_risk = GaugeMetricFamily(
            "arbiter_queue_at_risk",
            "Open items past their SLA warning time but not yet breached, per queue.",
            labels=["queue"],
        )
        for row in rows:
            queue = row["name"]
            for state in OPEN_STATES:
                depth.add_metric([queue, state.value], row[f"state_{state.value}"])
            oldest.add_metric([queue], _seconds_since(row["oldest"], now))
            breached.add_metric([queue], row["breached"])
            at_risk.add_metric([queue], row["at_risk"])
        return [depth, oldest, breached, at_risk]

    def _breaches(self) -> Metric:
        # breached_at is set once and never cleared, so the count only grows.
        total = WorkItem.objects.filter(breached_at__isnull=False).count()
        return CounterMetricFamily(
            "arbiter_sla_breaches",
            "Work items that ever breached their SLA, open or closed.",
            value=total,
        )


def scrape_registry() -> CollectorRegistry:
    """What one scrape exposes: the in-process instruments (summed over all gunicorn
    workers in multiprocess mode) and the database figures."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)  # a registry is a collector of its collectors
    registry.register(DatabaseCollector())
    return registry


# Access ------------------------------------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks() -> list[Network]:
    # Settings validated these at start-up.
    return [ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS]


def _in_networks(ip: str, networks: Iterable[Network]) -> bool:
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


def _refused() -> HttpResponse:
    return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8")


def access_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the caller may read /metrics, else the response that refuses it.

    METRICS_ALLOWED_NETWORKS: the client address (as the audit trail sees it, behind
    TRUSTED_PROXY_HOPS proxies) must be in one of them, else 403. METRICS_TOKEN: the
    request must carry `Authorization: Bearer <token>`, else 401. Both set: both
    apply. Neither set: loopback only, or anyone while DEBUG is on.
    """
    token: str = settings.METRICS_TOKEN
    networks = _networks()
    ip = client_ip_of(request)
    if networks and not _in_networks(ip, networks):
        return _refused()
    if token:
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode(), token.encode()
        ):
            response = HttpResponse(
                "Unauthorized\n", status=401, content_type="text/plain; charset=utf-8"
            )
            response["WWW-Authenticate"] = 'Bearer realm="arbiter-metrics"'
            return response
    if token or networks or settings.DEBUG:
        return None
    return None if ip and ipaddress.ip_address(ip).is_loopback else _refused()


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape endpoint (text format, or OpenMetrics when asked for)."""
    refusal = access_refusal(request)
    if refusal is not None:
        return refusal
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(scrape_registry()), content_type=content_type)
