"""The intake line's Python floor: the benchmark's HTTP load through gunicorn and
Python with nothing of Arbiter's, Django's or DRF's in the path. For the benchmark ONLY.

A WSGI application that answers the POSTs of bench/intake.lua the way baseline (a)
writes its row: the JSON body parsed, one INSERT of it as jsonb into bench_intake (one
transaction, as pgbench runs it), 201 with the new id. It checks nothing and keeps no
case, step, audit event or outbox row, so no Python service deployed the same way
(gunicorn, as many sync workers, this machine and server) can beat its figure. Every
gunicorn worker holds one psycopg connection to DATABASE_URL (the suite's database).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

INSERT = "INSERT INTO bench_intake (body) VALUES (%s) RETURNING id"

_connection: psycopg.Connection[Any] | None = None


def _db() -> psycopg.Connection[Any]:
    global _connection
    if _connection is None or _connection.closed:
        _connection = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return _connection


def _answer(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
    if method == "GET" and path == "/healthz":
        return _answer(start_response, "200 OK", {"status": "ok"})
    if method != "POST":
        return _answer(start_response, "405 Method Not Allowed", {"detail": "POST only"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        body = json.loads(environ["wsgi.input"].read(length))
    except ValueError:
        return _answer(start_response, "400 Bad Request", {"detail": "not JSON"})
    if not isinstance(body, dict):
        return _answer(start_response, "400 Bad Request", {"detail": "not a JSON object"})
    row = _db().execute(INSERT, [Jsonb(body)]).fetchone()
    return _answer(start_response, "201 Created", {"id": row[0] if row else None})
