"""Arbiter's one settings module. Everything a deployment varies comes from the environment.

With nothing set, Arbiter runs on the embedded default: SQLite in var/, a Celery
broker kept in files under var/ (no server), and a local-memory cache.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import database_settings, env_bool, env_int, env_list, env_str, env_url
from config.tracing import exporters_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("ARBITER_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string, or set DEBUG=1 "
            "for a local development run."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "simple_history",
    "django_htmx",
    "template_partials",
    # Ours, lowest layer first: review -> routing -> orchestration -> accounts -> audit.
    "audit",
    "accounts",
    "orchestration",
    "routing",
    "notifications",
    "review",
    "metrics",
]

MIDDLEWARE = [
    # Outermost, so the request figures of /metrics time the whole stack.
    "metrics.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "audit.context.AuditContextMiddleware",
    "config.logging.LogContextMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    }
]

DATABASES = {
    "default": database_settings(
        "DATABASE_URL",
        default_sqlite_path=DATA_DIR / "arbiter.sqlite3",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL").strip()
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes={"redis", "rediss", "unix"})
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "arbiter",
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic fills it; WhiteNoise wants it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Without collectstatic (tests, a quick DEBUG run) WhiteNoise serves from the finders.
WHITENOISE_USE_FINDERS = DEBUG

# Security: strict whenever DEBUG is off; `manage.py check --deploy` stays silent.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
CSRF_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /healthz, /readyz and /metrics are probed and scraped over plain HTTP from inside
    # the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.problems.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"client": env_str("API_THROTTLE_RATE", "1200/min")},
    "NUM_PROXIES": env_int("TRUSTED_PROXY_HOPS", 0, minimum=0),
}
# Regions and skills a case may name (routing's queues use the same vocabulary).
ARBITER_REGIONS = env_list("ARBITER_REGIONS", ["eu", "us", "apac"])
ARBITER_SKILLS = env_list("ARBITER_SKILLS", ["invoices", "kyc", "moderation"])
SPECTACULAR_SETTINGS = {
    "TITLE": "Arbiter API",
    "DESCRIPTION": (
        "Submit cases to Arbiter's workflows, follow them, cancel them and signal them. "
        "Authenticate with `Authorization: Token <key>`. Every error is an RFC 9457 "
        "problem details object (`application/problem+json`)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestration.api.strict_request_bodies",
    ],
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": "orchestration.models.engine.CaseStatus",
        "StepStatusEnum": "orchestration.models.engine.StepStatus",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

GUARDIAN_RAISE_403 = False
SIMPLE_HISTORY_REVERT_DISABLED = True

# Celery. With no CELERY_BROKER_URL the broker is a folder of files under var/:
# the web server, worker and beat of `make run` share it with no server running.
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL",
    "filesystem://",
    schemes={"amqp", "amqps", "pyamqp", "redis", "rediss", "filesystem", "memory"},
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The folder is polled; the default second per message makes a demo crawl.
        "polling_interval": 0.05,
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND").strip() or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
# The queue tasks go to and workers read (one Arbiter per queue name on a shared broker).
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often beat stores a digest over all audit chain heads (see audit_verify).
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("AUDIT_CHECKPOINT_INTERVAL_SECONDS", 300, minimum=10)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "heartbeat": {"task": "config.tasks.heartbeat", "schedule": 60.0},
    "orchestration-timers": {"task": "orchestration.fire_timers", "schedule": 5.0},
    "orchestration-outbox": {"task": "orchestration.relay_outbox", "schedule": 10.0},
    "webhook-deliveries": {"task": "orchestration.deliver_due_webhooks", "schedule": 15.0},
    "routing-sla-sweep": {"task": "routing.sla_sweep", "schedule": 30.0},
    "metrics-slo-evaluation": {"task": "metrics.evaluate_slos", "schedule": 60.0},
    "idempotency-purge": {"task": "orchestration.purge_idempotency_keys", "schedule": 3600.0},
    "notification-emails": {"task": "notifications.send_due_emails", "schedule": 60.0},
    "audit-checkpoint": {
        "task": "audit.tasks.checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL_SECONDS),
    },
}

# Email (notifications). Console output with DEBUG, SMTP otherwise; tests use locmem.
_EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}
_email_backend = env_str("EMAIL_BACKEND", "console" if DEBUG else "smtp").strip()
if _email_backend in _EMAIL_BACKENDS.values():  # Django's own dotted path is fine too
    _email_backend = _email_backend.split(".")[-2]
    _email_backend = {"filebased": "file"}.get(_email_backend, _email_backend)
if _email_backend not in _EMAIL_BACKENDS:
    raise ImproperlyConfigured(
        f"EMAIL_BACKEND={_email_backend!r}: use one of {', '.join(sorted(_EMAIL_BACKENDS))}."
    )
EMAIL_BACKEND = _EMAIL_BACKENDS[_email_backend]
EMAIL_FILE_PATH = str(DATA_DIR / "mail")  # the `file` backend's folder
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both on; choose one.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Arbiter <arbiter@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where people reach this Arbiter; emails link to it. Empty: emails carry bare paths.
ARBITER_SITE_URL = env_str("ARBITER_SITE_URL", "http://127.0.0.1:8000" if DEBUG else "")
if ARBITER_SITE_URL:
    ARBITER_SITE_URL = env_url(
        "ARBITER_SITE_URL", ARBITER_SITE_URL, schemes={"http", "https"}
    ).rstrip("/")

# Circuit breaker per worker handler: consecutive failures that open it, and for how long.
ARBITER_BREAKER_THRESHOLD = env_int("ARBITER_BREAKER_THRESHOLD", 5, minimum=1)
ARBITER_BREAKER_COOLDOWN_SECONDS = env_int("ARBITER_BREAKER_COOLDOWN_SECONDS", 60, minimum=1)

DEMO_PASSWORD = env_str("DEMO_PASSWORD", "arbiter-demo")
# How many proxies of ours sit in front of the app and append to X-Forwarded-For;
# 0 trusts no header and records REMOTE_ADDR as the client address.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, minimum=0)
READYZ_TIMEOUT_SECONDS = env_int("READYZ_TIMEOUT_SECONDS", 3, minimum=1)

# /metrics (Prometheus): who may scrape. A bearer token, the networks scrapers come
# from, or both; with neither, loopback only (anyone while DEBUG is on).
METRICS_TOKEN = env_str("METRICS_TOKEN").strip()
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", [])
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS: {_network!r} is not a network such as 10.0.0.0/8 "
            "(no host bits set) or a single address."
        ) from None

# Tracing and logs (config/tracing.py, config/logging.py) -----------------------------
# OpenTelemetry reads its own OTEL_* variables (exporter, endpoint, service name,
# sampler). The choice of exporter is checked here, so a typo stops start-up instead of
# tracing nothing; empty means tracing is off and costs nothing.
TRACING_EXPORTERS = exporters_from_env()
# Log every SQL statement with its parameters (which carry case payloads) at DEBUG.
LOG_SQL = env_bool("LOG_SQL", False)
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level.")
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "DEBUG" if LOG_SQL else "INFO"}},
}
# Celery keeps Django's logging configuration (JSON lines with correlation ids).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
