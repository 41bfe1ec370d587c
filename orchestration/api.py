"""The case intake API (/api/v1/): DRF serializers, authentication, and views.

Views only parse, check permissions and call services; every error leaves as RFC
9457 problem details (config.problems).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import authentication, exceptions, permissions, serializers, status, throttling
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.context import Actor, ActorLike
from config.problems import problem
from orchestration import intake, services
from orchestration.models import (
    ApiClient,
    Case,
    CaseStatus,
    Impact,
    Scope,
    StepRun,
    WebhookEndpoint,
    Workflow,
)

MAX_PAYLOAD_BYTES = 256 * 1024
SOURCE_KINDS = ("text", "json", "table", "url")


# Authentication --------------------------------------------------------------------


class ClientPrincipal:
    """request.user for a request made with an API client's token."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def get_username(self) -> str:
        return f"client:{self.client.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`. A revoked or unknown token is refused at once."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[ClientPrincipal, ApiClient] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as: Authorization: Token <key>.")
        client = intake.api_client_for_token(header[1])
        if client is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked token.")
        return ClientPrincipal(client), client

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="arbiter"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "orchestration.api.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`; keys come from `manage.py create_api_client`.",
        }


def client_of(request: Request) -> ApiClient | None:
    return request.auth if isinstance(request.auth, ApiClient) else None


def actor_of(request: Request) -> ActorLike:
    client = client_of(request)
    if client is not None:
        return Actor.api_client(client.pk, client.name)
    return request.user


class ScopedAccess(permissions.BasePermission):
    """Clients need the view's scope for the method; signed-in staff may read what their
    model permissions allow and change nothing."""

    message = "This client's token does not carry the scope this request needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method is None or not hasattr(view, request.method.lower()):
            return True  # no such handler: let DRF answer 405 with an Allow header
        client = client_of(request)
        scope = view.scopes.get("GET" if request.method == "HEAD" else request.method)
        if client is not None:
            return scope is not None and client.has_scope(scope)
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and request.method in permissions.SAFE_METHODS
            and user.has_perm("orchestration.view_case")
        )


class ClientRateThrottle(throttling.SimpleRateThrottle):
    """Per client (or per signed-in user), counted in the shared cache."""

    scope = "client"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        client = client_of(request)
        ident = (
            f"c{client.pk}"
            if client
            else f"u{getattr(request.user, 'pk', None) or self.get_ident(request)}"
        )
        return self.cache_format % {"scope": self.scope, "ident": ident}


# Serializers -----------------------------------------------------------------------


# For the schema only. Built with inline_serializer because a declared field named
# "errors" would shadow Serializer.errors.
ProblemSerializer = inline_serializer(
    name="Problem",
    fields={
        "type": serializers.URLField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "instance": serializers.CharField(required=False),
        "errors": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Field name -> messages, for 400s.",
        ),
    },
)


def reject_nul(value: Any, where: str = "") -> None:
    """PostgreSQL's jsonb cannot hold U+0000; refuse it (in keys too) with a 400, not a 500."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(f"{where or 'A value'} contains a NUL character.")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, "A key")
            reject_nul(item, f"The value of {key!r}")
    elif isinstance(value, list):
        for item in value:
            reject_nul(item, where)


@extend_schema_field(OpenApiTypes.OBJECT)
class ObjectField(serializers.JSONField):
    """A JSON object (not a list, string or number) with no NUL characters."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        reject_nul(value)
        return value


class AnyJsonField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        reject_nul(value)
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, naming them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class SourceSerializer(StrictSerializer):
    title = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=SOURCE_KINDS)
    content = AnyJsonField(required=False, help_text="For text, json and table sources.")
    url = serializers.URLField(required=False, max_length=2000, help_text="For url sources.")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        kind = data["kind"]
        if kind == "url":
            if "url" not in data:
                raise serializers.ValidationError({"url": ["A url source needs a url."]})
            if not data["url"].lower().startswith(("https://", "http://")):
                raise serializers.ValidationError(
                    {"url": ["Only http and https links are allowed."]}
                )
            if "content" in data:
                raise serializers.ValidationError({"content": ["A url source has no content."]})
            return data
        if "content" not in data:
            raise serializers.ValidationError({"content": [f"A {kind} source needs content."]})
        if "url" in data:
            raise serializers.ValidationError({"url": [f"A {kind} source has no url."]})
        content = data["content"]
        if kind == "text" and not isinstance(content, str):
            raise serializers.ValidationError({"content": ["A text source's content is a string."]})
        if kind == "table" and not (
            isinstance(content, list) and all(isinstance(row, list | dict) for row in content)
        ):
            raise serializers.ValidationError(
                {"content": ["A table source's content is a list of rows (lists or objects)."]}
            )
        return data


class CaseSubmitSerializer(StrictSerializer):
    workflow = serializers.SlugField(max_length=64)
    payload = ObjectField(help_text="A JSON object of at most 256 KiB.")
    external_ref = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    proposed = ObjectField(required=False, default=dict)
    sources = SourceSerializer(many=True, required=False, default=list, max_length=50)  # type: ignore[call-arg]
    confidence = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True, default=None
    )
    impact = serializers.ChoiceField(choices=Impact.choices, default=Impact.MEDIUM)
    region = serializers.ChoiceField(
        choices=settings.ARBITER_REGIONS, required=False, allow_blank=True, default=""
    )
    skills = serializers.ListField(
        child=serializers.ChoiceField(choices=settings.ARBITER_SKILLS),
        required=False,
        default=list,
        max_length=20,
    )
    priority = serializers.IntegerField(min_value=1, max_value=5, default=3)

    def validate_payload(self, value: Any) -> Any:
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError(f"Is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}.")
        return value

    # The newest published version, found while validating, so intake reads it once.
    workflow_version: Workflow | None = None

    def validate_workflow(self, value: str) -> str:
        self.workflow_version = services.newest_published(value)
        if self.workflow_version is None:
            raise serializers.ValidationError(f"No published workflow {value!r}.")
        client = self.context.get("client")
        if client is not None and not client.may_use(value):
            raise serializers.ValidationError(f"This client may not submit to workflow {value!r}.")
        return value


class StepRunSerializer(serializers.ModelSerializer):
    step = serializers.CharField(source="step_id")
    attempts = serializers.IntegerField(source="attempt")
    compensation_of = serializers.IntegerField(source="compensates_id", allow_null=True)

    class Meta:
        model = StepRun
        fields = [
            "id",
            "step",
            "kind",
            "handler",
            "is_compensation",
            "compensation_of",
            "status",
            "attempts",
            "outcome",
            "output",
            "gate",
            "last_error",
            "started_at",
            "finished_at",
        ]


class CaseSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="workflow.slug")
    workflow_version = serializers.IntegerField(source="workflow.version")

    class Meta:
        model = Case
        fields = [
            "id",
            "correlation_id",
            "status",
            "outcome",
            "workflow",
            "workflow_version",
            "current_step",
            "external_ref",
            "payload",
            "proposed",
            "sources",
            "confidence",
            "impact",
            "region",
            "skills",
            "priority",
            "created_at",
            "updated_at",
            "finished_at",
        ]


class CaseDetailSerializer(CaseSerializer):
    steps = StepRunSerializer(source="step_runs", many=True)

    class Meta(CaseSerializer.Meta):
        fields = [*CaseSerializer.Meta.fields, "steps"]


class SignalSerializer(StrictSerializer):
    name = serializers.RegexField(r"^[a-z][a-z0-9_.-]{0,63}$", help_text="The signal's name.")
    payload = ObjectField(required=False, default=dict)


class CancelSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "event_types", "active", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret. Shown only in this response.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


TOPICS = (
    "*",
    "case.submitted",
    "case.approved",
    "case.rejected",
    "case.blocked",
    "case.cancelled",
    "case.compensated",
    "case.compensation_failed",
    "case.stalled",
    "review.requested",
    "qa.requested",
    "step.dead_lettered",
)


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.URLField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=TOPICS), min_length=1, max_length=len(TOPICS)
    )

    def validate_url(self, value: str) -> str:
        if not value.lower().startswith(("https://", "http://")):
            raise serializers.ValidationError("Use an http or https URL.")
        return value


class CaseFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
    workflow = serializers.SlugField(required=False)
    external_ref = serializers.CharField(max_length=200, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class CasePagination(CursorPagination):
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request: Request) -> Any:
        # DRF answers a bad cursor with 404; it is a bad parameter, so 400 naming it.
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError(
                {"cursor": ["Invalid cursor: use the `next` or `previous` link as given."]}
            ) from None


# Views --------------------------------------------------------------------------------


def visible_cases(request: Request) -> QuerySet[Case]:
    cases = Case.objects.select_related("workflow")
    client = client_of(request)
    return cases.filter(client=client) if client is not None else cases


def problem_response(status_code: int, detail: str, request: Request, **extra: Any) -> Response:
    return Response(
        problem(status_code, detail, instance=request.path, **extra),
        status=status_code,
        content_type="application/problem+json",
    )


ERRORS = {
    400: OpenApiResponse(
        ProblemSerializer, description="Invalid request; `errors` names each field."
    ),
    401: OpenApiResponse(ProblemSerializer, description="No or unknown token."),
    403: OpenApiResponse(ProblemSerializer, description="The token lacks the scope."),
    404: OpenApiResponse(ProblemSerializer, description="No such case for this client."),
    409: OpenApiResponse(ProblemSerializer, description="The case's state does not allow it."),
    422: OpenApiResponse(
        ProblemSerializer, description="Idempotency-Key reused with another body."
    ),
    429: OpenApiResponse(ProblemSerializer, description="Rate limit; see Retry-After."),
}
PROBLEM = "application/problem+json"


def errors(*codes: int) -> dict[Any, OpenApiResponse]:
    """The documented error responses, served as problem details."""
    return {(code, PROBLEM): ERRORS[code] for code in codes}


def strict_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular hook: request bodies refuse unknown fields, so say so."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False
    return result


CasePage = inline_serializer(
    name="PaginatedCaseList",
    fields={
        "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
        "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
        "results": CaseSerializer(many=True),
    },
)
PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor", OpenApiTypes.STR, OpenApiParameter.QUERY, description="From `next`."
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": 200},
        OpenApiParameter.QUERY,
        description="Cases per page (default 50).",
    ),
]
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    required=False,
    description="At most 255 characters. Repeating a request with the same key and body "
    "returns the first response (with `Idempotent-Replayed: true`); keys are kept 24 h.",
)


class BaseApiView(APIView):
    authentication_classes = [ApiTokenAuthentication, authentication.SessionAuthentication]
    permission_classes = [ScopedAccess]
    throttle_classes = [ClientRateThrottle]
    scopes: dict[str, str] = {}


class CaseListView(BaseApiView):
    scopes = {"GET": Scope.CASES_READ, "POST": Scope.CASES_WRITE}

    @extend_schema(
        operation_id="cases_list",
        parameters=[CaseFilterSerializer, *PAGE_PARAMETERS],
        responses={200: CasePage, **errors(400, 401, 403, 429)},
        description="The client's cases, newest first, with cursor pagination.",
    )
    def get(self, request: Request) -> Response:
        filters = CaseFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        cases = visible_cases(request)
        if "status" in f:
            cases = cases.filter(status=f["status"])
        if "workflow" in f:
            cases = cases.filter(workflow__slug=f["workflow"])
        if "external_ref" in f:
            cases = cases.filter(external_ref=f["external_ref"])
        if "created_after" in f:
            cases = cases.filter(created_at__gte=f["created_after"])
        if "created_before" in f:
            cases = cases.filter(created_at__lt=f["created_before"])
        paginator = CasePagination()
        page = paginator.paginate_queryset(cases, request, view=self)
        return paginator.get_paginated_response(CaseSerializer(page, many=True).data)

    @extend_schema(
        operation_id="cases_create",
        request=CaseSubmitSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: CaseSerializer, **errors(400, 401, 403, 409, 422, 429)},
        description="Submit a case. It starts on the newest published version of the workflow.",
    )
    def post(self, request: Request) -> Response:
        client = client_of(request)
        if client is None:  # ScopedAccess admits only clients to POST; belt and braces
            raise exceptions.PermissionDenied("Only API clients submit cases.")
        key = request.headers.get("Idempotency-Key")
        claim = None
        if key is not None:
            if not 1 <= len(key) <= 255:
                return problem_response(
                    400,
                    "Idempotency-Key must be 1 to 255 characters.",
                    request,
                    errors={"Idempotency-Key": ["Must be 1 to 255 characters."]},
                )
            found = intake.idempotency_claim(
                client=client, key=key, fingerprint=intake.request_fingerprint(request.data)
            )
            if found.state == "mismatch":
                return problem_response(
                    422, "This Idempotency-Key was used with a different request body.", request
                )
            if found.state == "in_flight":
                return problem_response(
                    409, "A request with this Idempotency-Key is still being processed.", request
                )
            if found.state == "replay":
                replay = Response(found.record.response_body, status=found.record.response_status)
                replay["Idempotent-Replayed"] = "true"
                return replay
            claim = found.record
        try:
            # The case and the key's stored answer commit together (one commit).
            with transaction.atomic():
                response = self._submit(request, client)
                if claim is not None:
                    intake.idempotency_complete(
                        claim=claim, status=response.status_code, body=response.data
                    )
        except BaseException:
            if claim is not None:
                intake.idempotency_release(claim=claim)
            raise
        return response

    def _submit(self, request: Request, client: ApiClient) -> Response:
        submission = CaseSubmitSerializer(data=request.data, context={"client": client})
        submission.is_valid(raise_exception=True)
        data = submission.validated_data
        case = services.case_submit(
            workflow=submission.workflow_version or data["workflow"],
            payload=data["payload"],
            actor=actor_of(request),
            client=client,
            external_ref=data["external_ref"],
            proposed=data["proposed"],
            sources=data["sources"],
            confidence=data["confidence"],
            impact=data["impact"],
            region=data["region"],
            skills=data["skills"],
            priority=data["priority"],
        )
        body = CaseSerializer(case).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/cases/{case.pk}/"
        return response


class CaseDetailView(BaseApiView):
    scopes = {"GET": Scope.CASES_READ}

    @extend_schema(
        operation_id="cases_retrieve",
        responses={200: CaseDetailSerializer, **errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, case_id: str) -> Response:
        case = get_visible_case(request, case_id, prefetch=True)
        return Response(CaseDetailSerializer(case).data)


def get_visible_case(request: Request, case_id: str, *, prefetch: bool = False) -> Case:
    cases = visible_cases(request)
    if prefetch:
        cases = cases.prefetch_related("step_runs")
    case = cases.filter(pk=case_id).first()
    if case is None:
        raise exceptions.NotFound(f"No case {case_id}.")
    return case


class CaseCancelView(BaseApiView):
    scopes = {"POST": Scope.CASES_CANCEL}

    @extend_schema(
        operation_id="cases_cancel",
        request=CancelSerializer,
        responses={202: CaseSerializer, **errors(400, 401, 403, 404, 409, 429)},
        description="Cancel the case: open steps stop and completed steps are compensated.",
    )
    def post(self, request: Request, case_id: str) -> Response:
        case = get_visible_case(request, case_id)
        body = CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = services.case_cancel(
            case=case, actor=actor_of(request), reason=body.validated_data["reason"]
        )
        return Response(CaseSerializer(case).data, status=status.HTTP_202_ACCEPTED)


class CaseSignalView(BaseApiView):
    scopes = {"POST": Scope.SIGNALS_WRITE}

    @extend_schema(
        operation_id="cases_signal",
        request=SignalSerializer,
        responses={202: CaseSerializer, **errors(400, 401, 403, 404, 409, 429)},
        description="Deliver a named signal to the step the case waits in.",
    )
    def post(self, request: Request, case_id: str) -> Response:
        case = get_visible_case(request, case_id)
        body = SignalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = services.case_signal(
            case=case,
            name=body.validated_data["name"],
            data=body.validated_data["payload"],
            actor=actor_of(request),
        )
        return Response(CaseSerializer(case).data, status=status.HTTP_202_ACCEPTED)


class WebhookListView(BaseApiView):
    scopes = {"GET": Scope.WEBHOOKS_MANAGE, "POST": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="webhooks_list",
        responses={200: WebhookSerializer(many=True), **errors(401, 403, 429)},
        description="This client's webhook endpoints (secrets are never shown again).",
    )
    def get(self, request: Request) -> Response:
        endpoints = WebhookEndpoint.objects.filter(client=client_of(request)).order_by("id")
        return Response(WebhookSerializer(endpoints, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer, **errors(400, 401, 403, 429)},
        description="Register an endpoint for event types (`*` for all). The response "
        "carries the signing secret, once.",
    )
    def post(self, request: Request) -> Response:
        client = client_of(request)
        if client is None:
            raise exceptions.PermissionDenied("Only API clients register webhooks.")
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = intake.webhook_endpoint_create(
            client=client,
            url=body.validated_data["url"],
            event_types=body.validated_data["event_types"],
            actor=actor_of(request),
        )
        return Response(WebhookCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(BaseApiView):
    scopes = {"DELETE": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="webhooks_destroy",
        responses={204: None, **errors(401, 403, 404, 429)},
        description="Stop deliveries to this endpoint (its delivery log is kept).",
    )
    def delete(self, request: Request, webhook_id: int) -> Response:
        endpoint = WebhookEndpoint.objects.filter(client=client_of(request), pk=webhook_id).first()
        if endpoint is None:
            raise exceptions.NotFound(f"No webhook {webhook_id}.")
        intake.webhook_endpoint_disable(endpoint=endpoint, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
