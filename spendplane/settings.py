"""Spendplane settings, all read from the environment (see .env.example).

Nothing set means the embedded default: SQLite, Django's in-process cache, Celery eager.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(env_file)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and env.bool("SPENDPLANE_REQUIRE_SECRETS", default=False):
        raise ImproperlyConfigured("SECRET_KEY must be set in production")
    SECRET_KEY = "spendplane-insecure-development-key-change-me"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "spendplane.apps.SpendplaneConfig",
    "tenants",
    "metering",
    "guard",
]

# Admin and dashboard messages live in the session. The default (cookie, then session) built a
# cookie signer on every request, the proxy's included: 4% of a worker's CPU under load.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# The Browser* classes are Django's own, skipped on the proxy's /v1/ paths (spendplane/middleware.py).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "spendplane.middleware.BrowserWhiteNoiseMiddleware",
    "spendplane.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "spendplane.middleware.BrowserAuthenticationMiddleware",
    "tenants.audit.AuditRequestMiddleware",
    "spendplane.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "spendplane.security.SecurityHeadersMiddleware",
    "spendplane.middleware.BrowserHtmxMiddleware",
]

# Served over HTTPS (behind a TLS-terminating proxy that sets X-Forwarded-Proto): secure cookies,
# HSTS and the redirect. `manage.py check --deploy` is clean with it on.
SPENDPLANE_HTTPS = env.bool("SPENDPLANE_HTTPS", default=False)
if SPENDPLANE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Joining the browsers' preload list is a commitment for the whole domain: the operator's call.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# Proxies of your own in front of the gateway (X-Forwarded-For hops trusted for the client address).
SPENDPLANE_TRUSTED_PROXIES = env.int("SPENDPLANE_TRUSTED_PROXIES", default=0)
# Unknown or revoked API keys one address may send per minute before it gets 429s (0: no limit).
SPENDPLANE_BAD_KEYS_PER_MINUTE = env.int("SPENDPLANE_BAD_KEYS_PER_MINUTE", default=30)

ROOT_URLCONF = "spendplane.urls"
WSGI_APPLICATION = "spendplane.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads write the ledger at once; wait for the lock rather than fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not shared-cache memory: the live-server threads of the tests would lock each other out.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".cache" / "test-db.sqlite3")}
elif env.int("DB_POOL_MAX_SIZE", default=20):
    # psycopg's pool: every thread of a process shares a few connections, so a worker holding
    # hundreds of streams (a thread each) does not need hundreds of PostgreSQL connections.
    # The pool replaces a connection a restart broke; spendplane.postgresql checks a connection
    # at most once a second instead of on every checkout (a round trip per request).
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "spendplane.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] in ("spendplane.postgresql", "django.db.backends.postgresql"):
    # The hot statements (budget reservation, ledger batch) run on server-binding cursors, which
    # psycopg prepares after this many runs on a connection; PostgreSQL then skips parsing and
    # planning them. Django's ORM cursors bind client-side and are never prepared. Set it empty
    # behind a transaction-pooling PgBouncer older than 1.21.
    _prepare_threshold = env.str("DB_PREPARE_THRESHOLD", default="5").strip()
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        int(_prepare_threshold) if _prepare_threshold else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
# Redis connections per process (each of the cache and the rate-limit counters), shared by threads.
SPENDPLANE_REDIS_MAX_CONNECTIONS = env.int("SPENDPLANE_REDIS_MAX_CONNECTIONS", default=64)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "sp",
            # Shared by all of a process's threads, which wait for a free connection.
            "OPTIONS": {
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": SPENDPLANE_REDIS_MAX_CONNECTIONS,
                "timeout": 5,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

RATELIMIT_USE_CACHE = "default"
# django-ratelimit warns about an in-process cache; the embedded default runs one process.
SILENCED_SYSTEM_CHECKS = ["security.W021"]  # HSTS preload: see SECURE_HSTS_PRELOAD
if not REDIS_URL:
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request without it
# Serve app static files straight from their packages: no collectstatic step for the demo.
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/admin/login/"

# A proxied request body above this size gets a 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SPENDPLANE_MAX_BODY_BYTES", default=8 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.auth.MasterKeyAuthentication",
        "tenants.auth.CountedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.auth.IsStaffOrMasterKey"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "spendplane.pagination.StandardPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Spendplane management API",
    "DESCRIPTION": "Provision tenants, keys, prices and caps; read the usage ledger.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The operator's key for the management API (Authorization: Bearer <key>).
SPENDPLANE_MASTER_KEY = env("SPENDPLANE_MASTER_KEY", default="")
# Pepper for API-key HMACs; defaults to SECRET_KEY. Changing it invalidates every key.
SPENDPLANE_KEY_PEPPER = env("SPENDPLANE_KEY_PEPPER", default=SECRET_KEY)
# Fernet keys for provider secrets at rest, newest first (rotation: prepend, run rotate_secrets).
SPENDPLANE_ENCRYPTION_KEYS = env.list("SPENDPLANE_ENCRYPTION_KEYS", default=[])

# Default upstreams used when no provider route matches.
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
ANTHROPIC_BASE_URL = env("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY", default="")
# Admin keys that read the default upstreams' own usage and cost reports (reconciliation).
OPENAI_ADMIN_KEY = env("OPENAI_ADMIN_KEY", default="")
ANTHROPIC_ADMIN_KEY = env("ANTHROPIC_ADMIN_KEY", default="")
# How far the ledger and a provider's report may differ and still match (percent), and how many
# days back the daily job reconciles again (providers publish usage late).
SPENDPLANE_RECONCILE_TOLERANCE_PCT = env.float("SPENDPLANE_RECONCILE_TOLERANCE_PCT", default=0.5)
SPENDPLANE_RECONCILE_DAYS = env.int("SPENDPLANE_RECONCILE_DAYS", default=3)

SPENDPLANE_MAX_MESSAGES = env.int("SPENDPLANE_MAX_MESSAGES", default=2048)
# A reservation stops counting after this long, so a process that dies mid-request frees its budget.
SPENDPLANE_RESERVATION_SECONDS = env.int("SPENDPLANE_RESERVATION_SECONDS", default=900)
# Completion cap sent upstream when a client sets none and a hard budget applies, so the
# reservation is a true worst case.
SPENDPLANE_DEFAULT_MAX_OUTPUT_TOKENS = env.int("SPENDPLANE_DEFAULT_MAX_OUTPUT_TOKENS", default=4096)
# Invoiced revenue from Stripe (tenants.stripe_revenue): paid invoices and credit notes, hourly
# when a key is set. STRIPE_API_BASE points the client elsewhere (a test server, a Stripe mock).
STRIPE_API_KEY = env("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_MAX_RETRIES = env.int("STRIPE_MAX_RETRIES", default=2)
# Bearer token for /metrics; empty: open (keep it on an internal network).
SPENDPLANE_METRICS_TOKEN = env("SPENDPLANE_METRICS_TOKEN", default="")
# Alerts: spend below this many dollars never pages anyone (spikes, one user dominating).
SPENDPLANE_SPIKE_MIN_USD = env.float("SPENDPLANE_SPIKE_MIN_USD", default=5.0)
SPENDPLANE_ALERT_EMAILS = env.list("SPENDPLANE_ALERT_EMAILS", default=[])
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="spendplane@localhost")
# When Redis (rate-limit counters) is unreachable: "closed" answers 503, "open" skips rate limits.
# Budgets are unaffected either way: they live in the database.
SPENDPLANE_REDIS_FAILURE = env("SPENDPLANE_REDIS_FAILURE", default="closed")
if SPENDPLANE_REDIS_FAILURE not in ("closed", "open"):
    raise ImproperlyConfigured("SPENDPLANE_REDIS_FAILURE must be 'closed' or 'open'")
SPENDPLANE_UPSTREAM_CONNECT_TIMEOUT = env.float("SPENDPLANE_UPSTREAM_CONNECT_TIMEOUT", default=5.0)
SPENDPLANE_UPSTREAM_READ_TIMEOUT = env.float("SPENDPLANE_UPSTREAM_READ_TIMEOUT", default=120.0)
# Idle keep-alive connections a process keeps per provider: as many as a worker holds requests
# (gunicorn.conf.py's worker_connections), so a burst of streams does not end in reconnecting (a
# TLS handshake each) and in urllib3 discarding what did not fit.
SPENDPLANE_UPSTREAM_POOL_SIZE = env.int(
    "SPENDPLANE_UPSTREAM_POOL_SIZE", default=env.int("SPENDPLANE_WORKER_CONNECTIONS", default=1000)
)
# Retries of a 429, 5xx or failed connection on one provider before its fallback route (if any).
SPENDPLANE_UPSTREAM_RETRIES = env.int("SPENDPLANE_UPSTREAM_RETRIES", default=1)
# A retry waits base·2^n (jittered), or the provider's Retry-After when it is at most the cap.
SPENDPLANE_UPSTREAM_RETRY_BASE_SECONDS = env.float("SPENDPLANE_UPSTREAM_RETRY_BASE_SECONDS", default=0.2)
SPENDPLANE_UPSTREAM_RETRY_MAX_WAIT_SECONDS = env.float("SPENDPLANE_UPSTREAM_RETRY_MAX_WAIT_SECONDS", default=2.0)
# Seconds a resolved API key, plan or price table is trusted before it is read again.
SPENDPLANE_CACHE_SECONDS = env.int("SPENDPLANE_CACHE_SECONDS", default=30)
# Seconds a dashboard figure (live to the last ledger row when computed) is served from the cache.
SPENDPLANE_DASHBOARD_CACHE_SECONDS = env.int("SPENDPLANE_DASHBOARD_CACHE_SECONDS", default=5)

# Write a non-streamed request's ledger row after its response is sent (kept in the outbox under
# SPENDPLANE_LEDGER_SPOOL_DIR until it commits), taking the database write off the client's wait.
SPENDPLANE_LEDGER_AFTER_RESPONSE = env.bool("SPENDPLANE_LEDGER_AFTER_RESPONSE", default=True)
# ...by one background thread per process, many rows per statement (metering.ledger_writer);
# off: by the request's own thread once the response is closed.
SPENDPLANE_LEDGER_BATCHED = env.bool("SPENDPLANE_LEDGER_BATCHED", default=True)
# How long a batch waits for more rows after its first (the statement, not the row, is the cost).
SPENDPLANE_LEDGER_BATCH_LINGER_MS = env.float("SPENDPLANE_LEDGER_BATCH_LINGER_MS", default=20.0)
# Ledger rows the database could not take wait here (fsynced) until they are replayed.
SPENDPLANE_LEDGER_SPOOL_DIR = env("SPENDPLANE_LEDGER_SPOOL_DIR", default="") or str(
    BASE_DIR / ".cache" / "ledger-spool"
)
# PostgreSQL keeps the ledger in month partitions. With a retention set, each month older than
# this month and the N before it is exported to Parquet in SPENDPLANE_LEDGER_ARCHIVE_DIR and dropped
# whole, once its rollups, margins and reconciliations are final (metering.partitions). 0 keeps all.
# The optional analytics sink (metering.analytics): every ledger row also goes to ClickHouse, e.g.
# clickhouse://default:@127.0.0.1:9000/spendplane, shipped from an outbox by a beat job. With
# SPENDPLANE_ANALYTICS_READS the margins and dashboards sum usage there instead of in PostgreSQL.
CLICKHOUSE_URL = env("CLICKHOUSE_URL", default="")
SPENDPLANE_ANALYTICS_READS = env.bool("SPENDPLANE_ANALYTICS_READS", default=False)
SPENDPLANE_LEDGER_RETENTION_MONTHS = env.int("SPENDPLANE_LEDGER_RETENTION_MONTHS", default=0)
SPENDPLANE_LEDGER_ARCHIVE_DIR = env("SPENDPLANE_LEDGER_ARCHIVE_DIR", default="") or str(BASE_DIR / "ledger-archive")

TIKTOKEN_CACHE_DIR = env("TIKTOKEN_CACHE_DIR", default=str(BASE_DIR / ".cache" / "tiktoken"))

LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "spendplane.log_format.PlainFormatter"},
        "json": {"()": "spendplane.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # stripe logs every request at INFO; its errors reach the sync's caller as exceptions.
    "loggers": {"django.server": {"level": "WARNING"}, "stripe": {"level": "WARNING"}},
}
