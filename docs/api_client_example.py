"""A small client for Arbiter's case API, using only the standard library.

Submit a case, follow it until people and workers are done with it, and check the
signature of the webhooks Arbiter sends you.

From the shell (the token comes from `manage.py create_api_client`):

    export ARBITER_URL=http://localhost:8000 ARBITER_TOKEN=arb_...
    python docs/api_client_example.py invoice-approval \\
        '{"vendor": "ACME GmbH", "amount": "1200.00", "currency": "EUR"}' INV-2026-0042

From Python:

    import api_client_example as arbiter

    case = arbiter.submit_case(
        "http://localhost:8000", token,
        {"workflow": "invoice-approval", "payload": {"vendor": "ACME GmbH"}},
    )
    done = arbiter.wait_for_case("http://localhost:8000", token, case["id"], timeout=600)
    print(done["status"], done["outcome"])

In a webhook receiver, before trusting the body:

    ok = arbiter.verify_webhook(secret, headers["Arbiter-Signature"], raw_body)

Submitting is safe to retry: every submission carries an Idempotency-Key, and a retry
after a network error sends the same key with the same body, so Arbiter answers with
the case the first attempt created instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

# Statuses in which a case is still moving; any other status is where it ended.
OPEN_STATUSES = frozenset({"running", "in_review", "waiting", "compensating"})


class ApiError(Exception):
    """Arbiter refused the request; `problem` is its RFC 9457 problem details."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail') or problem.get('title')}")
        self.status = status
        self.problem = problem


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange; HTTP errors come back as answers, network errors are raised."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def _request(
    method: str,
    url: str,
    token: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], Any]:
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url}")
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
    status, response_headers, raw = _send(request, timeout)
    try:
        return status, response_headers, json.loads(raw) if raw else None
    except ValueError:  # not JSON, e.g. a proxy's error page
        return status, response_headers, {"status": status, "detail": raw[:200].decode("latin-1")}


def submit_case(
    base_url: str,
    token: str,
    submission: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Submit a case and return it (`id`, `status`, ...).

    Network errors, 5xx answers, 429 and "still being processed" (409) are retried up
    to `attempts` times with the same Idempotency-Key; any other refusal raises ApiError.
    """
    key = idempotency_key or str(uuid.uuid4())
    url = base_url.rstrip("/") + "/api/v1/cases/"
    last_error: Exception = RuntimeError("no attempt was made (attempts < 1)")
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            status, headers, body = _request(
                "POST",
                url,
                token,
                body=submission,
                headers={"Idempotency-Key": key},
                timeout=timeout,
            )
        except OSError as exc:  # URLError, refused, reset, timed out: the same key is safe
            last_error = exc
            continue
        if status in (200, 201):
            return dict(body)
        last_error = ApiError(status, body if isinstance(body, dict) else {})
        if status in (409, 429) or status >= 500:
            retry_after = headers.get("Retry-After", "")
            if retry_after.isdigit():
                time.sleep(min(int(retry_after), 60))
            continue
        raise last_error
    raise last_error


def get_case(base_url: str, token: str, case_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The case with its steps; raises ApiError (404 when it is not this client's)."""
    url = f"{base_url.rstrip('/')}/api/v1/cases/{case_id}/"
    status, _, body = _request("GET", url, token, timeout=timeout)
    if status != 200:
        raise ApiError(status, body if isinstance(body, dict) else {})
    return dict(body)


def wait_for_case(
    base_url: str, token: str, case_id: str, *, timeout: float = 300.0, interval: float = 2.0
) -> dict[str, Any]:
    """Poll the case until it leaves the open statuses; TimeoutError after `timeout` s."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            case = get_case(base_url, token, case_id)
        except OSError:
            case = None  # a network blip while polling: try again on the next round
        if case is not None and case["status"] not in OPEN_STATUSES:
            return case
        if time.monotonic() >= give_up:
            status = case["status"] if case else "unknown"
            raise TimeoutError(f"case {case_id} is still {status} after {timeout} s")
        time.sleep(interval)


def verify_webhook(
    secret: str, header: str, body: bytes, tolerance: int = 300, *, now: float | None = None
) -> bool:
    """Whether `body` came from Arbiter: the Arbiter-Signature header is
    `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`, and `t` must lie
    within `tolerance` seconds of now (so a captured request cannot be replayed later).
    Pass the raw request body, before any JSON parsing."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
        signature = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), signature)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 2
    base_url = os.environ.get("ARBITER_URL", "http://localhost:8000")
    token = os.environ["ARBITER_TOKEN"]
    submission: dict[str, Any] = {"workflow": argv[1], "payload": json.loads(argv[2])}
    if len(argv) > 3:
        submission["external_ref"] = argv[3]
    case = submit_case(base_url, token, submission)
    print(f"submitted case {case['id']}: {case['status']}")
    done = wait_for_case(base_url, token, case["id"])
    print(f"case {done['id']} ended {done['status']} {done.get('outcome') or ''}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
