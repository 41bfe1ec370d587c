"""The URLconf of bench/settings_floor.py: Arbiter's own, with POST /api/v1/cases/
answered by IntakeFloorView, which goes through the same request path as case intake
(middleware, DRF, token authentication, the cases:write scope, the client throttle)
and then writes what baseline (a) writes: the JSON body as one jsonb row of
bench_intake, in its own transaction. No validation, idempotency, case, step, audit
event or outbox row: the part of intake's cost that is the framework's."""

from __future__ import annotations

import json

from django.db import connection
from django.urls import path
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.urls import urlpatterns as arbiter_urlpatterns
from orchestration.api import BaseApiView
from orchestration.models import Scope

# bench/floor.py's INSERT, the body sent as JSON text for the server to cast (as a
# JSONField writes it).
INSERT = "INSERT INTO bench_intake (body) VALUES (%s::jsonb) RETURNING id"


class IntakeFloorView(BaseApiView):
    scopes = {"POST": Scope.CASES_WRITE}

    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            return Response({"detail": "Must be a JSON object."}, status=400)
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [json.dumps(body)])
            (pk,) = cursor.fetchone()
        return Response({"id": pk}, status=status.HTTP_201_CREATED)


urlpatterns = [path("api/v1/cases/", IntakeFloorView.as_view()), *arbiter_urlpatterns]
