"""rlmweb settings, read from the environment.

Two profiles and nothing else to configure:
- embedded default (no DATABASE_URL / REDIS_URL): SQLite and files under RLMWEB_DATA_DIR, a Celery
  broker on the filesystem, an in-process channel layer and a Celery worker in a child process of
  the web process (`manage.py serve` spawns it; its events come back over a socketpair);
- production (DATABASE_URL and REDIS_URL): PostgreSQL, Redis as Celery broker and channel layer,
  separate `celery worker` processes.
"""

import contextlib
import os
from pathlib import Path
from typing import Any

import dj_database_url

# litellm fetches its price table from the internet at import unless told otherwise; the copy it
# ships is the one we want (reproducible costs, no network at start-up).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def embedded_broker(data_dir: Path) -> tuple[dict, str]:
    """Filesystem broker options and result backend under data_dir (created if missing)."""
    queue, results, control = (data_dir / "broker" / name for name in ("queue", "results", "control"))
    for folder in (queue, results, control):
        folder.mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(control),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    return options, "file://" + str(results)


DATA_DIR = Path(os.environ.get("RLMWEB_DATA_DIR", BASE_DIR / "data")).resolve()
# Documents, their text, the database and the broker's messages are private to the server's user:
# every file it creates is 0600 and every folder 0700, and the data folder itself is closed.
os.umask(0o077)
DATA_DIR.mkdir(parents=True, exist_ok=True)
with contextlib.suppress(PermissionError):  # a folder someone else owns stays as they made it
    DATA_DIR.chmod(0o700)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
PROFILE = "production" if (DATABASE_URL or REDIS_URL) else "embedded"

# Debug pages list URL patterns and settings and show tracebacks: never by default, in either profile.
DEBUG = env_bool("RLMWEB_DEBUG", False)
# The "django-insecure-" prefix makes `check --deploy` flag this key (security.W009) wherever it is used.
DEVELOPMENT_SECRET_KEY = "django-insecure-embedded-default-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("RLMWEB_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
if PROFILE == "production" and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise RuntimeError("Set RLMWEB_SECRET_KEY in the production profile (the development key is refused).")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("RLMWEB_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("RLMWEB_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "apps.accounts",
    "apps.teams",
    "apps.documents",
    "apps.runs",
    "apps.review",
    "apps.sharing",
    "apps.comments",
    "apps.evals",
    "apps.helpers",
]

MIDDLEWARE = [
    "rlmweb.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.teams.middleware.CurrentTeamMiddleware",
    "rlmweb.web.errors.ServiceErrorMiddleware",
]

ROOT_URLCONF = "rlmweb.urls"
ASGI_APPLICATION = "rlmweb.asgi.application"

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
                "apps.teams.context_processors.current_team",
                "apps.accounts.context_processors.site",
            ],
        },
    },
]

DATABASES: dict[str, Any]
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "rlmweb.sqlite3",
            # WAL lets page views read while the worker thread writes events; IMMEDIATE avoids
            # "database is locked" upgrades between concurrent writers.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every authenticate() goes through the sign-in throttle (apps.accounts.throttle).
AUTHENTICATION_BACKENDS = ["apps.accounts.throttle.ThrottledModelBackend"]
LOGIN_FREE_FAILURES = env_int("RLMWEB_LOGIN_FREE_FAILURES", 5)
LOGIN_FREE_FAILURES_PER_ADDRESS = env_int("RLMWEB_LOGIN_FREE_FAILURES_PER_ADDRESS", 20)
LOGIN_LOCKOUT_BASE_S = env_int("RLMWEB_LOGIN_LOCKOUT_BASE_S", 30)
LOGIN_LOCKOUT_MAX_S = env_int("RLMWEB_LOGIN_LOCKOUT_MAX_S", 3600)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"  # filled by collectstatic in production
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The embedded profile serves static files straight from the source folders (no collectstatic),
# through WhiteNoise like production, with DEBUG off.
WHITENOISE_USE_FINDERS = PROFILE == "embedded" or DEBUG
MEDIA_ROOT = DATA_DIR / "media"

# --- Celery -------------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT = "rlmweb.broker:RedisTransport"  # kombu's, surviving a Redis restart
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 6 * 3600}
else:
    # A durable broker on the local filesystem: tasks are serialised and consumed by a real worker
    # (the one `manage.py serve` starts in-process), no service needed.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "rlmweb.broker:Transport"  # kombu's, with atomic message writes
    CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_RESULT_BACKEND = embedded_broker(DATA_DIR)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("RLMWEB_TASK_TIME_LIMIT", 4 * 3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Extraction has its own queue and its own workers (`celery worker -Q extraction`, or the embedded
# extraction pool): hostile documents can keep those busy, never the slots that run asks.
RUNS_QUEUE = "celery"
EXTRACTION_QUEUE = "extraction"
CELERY_TASK_DEFAULT_QUEUE = RUNS_QUEUE
CELERY_TASK_ROUTES = {"documents.extract": {"queue": EXTRACTION_QUEUE}}

EMBEDDED_WORKER = env_bool("RLMWEB_EMBEDDED_WORKER", PROFILE == "embedded")
EMBEDDED_WORKER_CONCURRENCY = env_int("RLMWEB_WORKER_CONCURRENCY", 4)
EMBEDDED_EXTRACTION_CONCURRENCY = env_int("RLMWEB_EXTRACTION_CONCURRENCY", 2)

# --- Channels -----------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 60},
        }
    }
elif os.environ.get("RLMWEB_EVENT_RELAY_FD"):
    # The embedded worker process that `manage.py serve` spawned: publishes to serve's layer.
    CHANNEL_LAYERS = {"default": {"BACKEND": "rlmweb.event_relay.RelayChannelLayer"}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "rlmweb.channel_layers.EmbeddedChannelLayer", "CONFIG": {"capacity": 5000}}}

# --- rlmweb -------------------------------------------------------------------------------------
# Anyone reaching a production server could otherwise make accounts, each a new personal team with
# its own limits: sign-up is opt-in there.
SIGNUP_ENABLED = env_bool("RLMWEB_SIGNUP_ENABLED", PROFILE == "embedded")
# Documents plus unfinished uploads of one team, checked before an upload is accepted and on each chunk.
TEAM_STORAGE_BYTES = int(float(os.environ.get("RLMWEB_TEAM_STORAGE_GB") or 50) * 1024**3)
# The monthly cap a new personal team starts with when a hosted (paid) model is usable; empty: none.
DEFAULT_MONTHLY_CAP_USD = os.environ.get("RLMWEB_DEFAULT_MONTHLY_CAP_USD", "20")
MAX_UPLOAD_BYTES = env_int("RLMWEB_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
MAX_FILES_PER_UPLOAD = env_int("RLMWEB_MAX_FILES_PER_UPLOAD", 20)
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
# Uploads are streamed by the browser in chunks; Django must not buffer a chunk to disk itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_CHUNK_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_CHUNK_BYTES + 1024 * 1024

# Models offered in the ask form. Each entry: litellm model string, label, and how it is reached.
# `api_key_env` names the environment variable holding the key; it is read by the worker only.
# Optional per entry: `api_base` (an OpenAI-compatible server), `context_window`, and for each call
# `timeout_s` (default 300) and `max_retries` (default 4) of transient provider errors.
# Extra models: RLMWEB_MODELS_JSON='[{"model": "anthropic/claude-sonnet-4-5", "label": "...", "api_key_env": "ANTHROPIC_API_KEY"}]'
OFFLINE_MODEL = "offline/heuristic"
RLMWEB_MODELS: list[dict[str, Any]] = [
    {"model": OFFLINE_MODEL, "label": "Offline heuristic (stand-in, no network)", "offline": True},
    {"model": "openai/gpt-5", "label": "OpenAI GPT-5", "api_key_env": "OPENAI_API_KEY"},
    {"model": "openai/gpt-5-mini", "label": "OpenAI GPT-5 mini", "api_key_env": "OPENAI_API_KEY"},
    {"model": "anthropic/claude-sonnet-4-5", "label": "Anthropic Claude Sonnet 4.5", "api_key_env": "ANTHROPIC_API_KEY"},
    {"model": "gemini/gemini-2.5-flash", "label": "Google Gemini 2.5 Flash", "api_key_env": "GEMINI_API_KEY"},
]
if os.environ.get("RLMWEB_MODELS_JSON"):
    import json

    RLMWEB_MODELS = [RLMWEB_MODELS[0], *json.loads(os.environ["RLMWEB_MODELS_JSON"])]
# Per entry, optionally: `max_output_tokens` (sent as max_tokens on every call; default 8192, or the
# model's own limit) and `input_cost_per_token` / `output_cost_per_token` (USD) for a model litellm
# has no price for. Under a cost cap (the run's, or what is left of the team's monthly cap) a model
# of unknown price is refused unless RLMWEB_ALLOW_UNPRICED is set.
RLMWEB_ALLOW_UNPRICED = env_bool("RLMWEB_ALLOW_UNPRICED", False)
# A prompt to a model whose context window is unknown is refused above this many characters.
RLMWEB_MAX_PROMPT_CHARS = env_int("RLMWEB_MAX_PROMPT_CHARS", 2_000_000)
DEFAULT_ROOT_MODEL = os.environ.get("RLMWEB_DEFAULT_MODEL", OFFLINE_MODEL)
DEFAULT_SUB_MODEL = os.environ.get("RLMWEB_DEFAULT_SUB_MODEL", DEFAULT_ROOT_MODEL)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Share and invite tokens in paths are replaced by [redacted] (rlmweb.log_redaction).
    "filters": {"redact_tokens": {"()": "rlmweb.log_redaction.RedactTokens"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_tokens"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("RLMWEB_LOG_LEVEL", "INFO")},
    "loggers": {"LiteLLM": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}

# --- Cache (rate limits) --------------------------------------------------------------------------
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Per-user rate limits: (requests, seconds). One process serves everything on the embedded
# default, so its in-memory cache is shared; production shares Redis.
RATE_LIMITS = {
    "ask": (env_int("RLMWEB_RATE_ASK_PER_MINUTE", 20), 60),
    "upload": (env_int("RLMWEB_RATE_UPLOAD_PER_MINUTE", 60), 60),
}
MAX_CONCURRENT_RUNS_PER_TEAM = env_int("RLMWEB_MAX_CONCURRENT_RUNS_PER_TEAM", 10)
# How every run's REPL behaves (the engine's Limits): characters of a cell's output shown to the
# root model, sub-calls of one llm_query_batched in flight at once, seconds a cell may compute.
RUN_OUTPUT_LIMIT_CHARS = env_int("RLMWEB_OUTPUT_LIMIT_CHARS", 20_000)
RUN_SUBCALL_CONCURRENCY = env_int("RLMWEB_SUBCALL_CONCURRENCY", 16)
RUN_CELL_TIMEOUT_S = env_int("RLMWEB_CELL_TIMEOUT_S", 120)
# A running run whose worker has not beaten its heartbeat (every 5 s) for this long is failed as
# "worker lost" by any worker's sweep.
RUN_LOST_AFTER_S = env_int("RLMWEB_WORKER_LOST_AFTER_S", 60)
# Seconds between two passes of the periodic sweep (`rlmweb.sweeps`), which ends the runs above and
# below: run by every Celery worker process, and on the embedded default by `manage.py serve`.
# At most half of RLMWEB_WORKER_LOST_AFTER_S is used, so a lost run is failed within 1.5 times it.
# Pages and the API never end a run; they show a silent one as "worker lost" until the sweep does.
SWEEP_INTERVAL_S = env_int("RLMWEB_SWEEP_INTERVAL_S", 30)
# A run still queued this long after it was asked, which no worker claimed, is failed by the sweep
# as "never picked up by a worker" (its queue message was lost: the embedded queue folder wiped,
# Redis lost it, a worker died holding it). Only when the workers could have taken it: a run asked
# later was already claimed, or no run or extraction has kept a worker busy for the last 2 minutes;
# a run merely waiting behind a backlog is left alone. Never touches a run a worker claimed.
RUN_QUEUED_STALE_AFTER_S = env_int("RLMWEB_QUEUED_STALE_AFTER_S", 15 * 60)
# A document still "extracting" whose extraction wrote no text for this long (the worker died
# mid-extraction), or never started this long after upload while the workers were free (the task
# was lost), is marked failed with the reason by the sweep, and its files, partial text included,
# are removed; uploading the file again retries. Also the age after which the sweep deletes stray
# partial text files (`<document>.txt.<random>.part`) of documents no longer extracting.
EXTRACTION_STALE_AFTER_S = env_int("RLMWEB_EXTRACTION_STALE_AFTER_S", 30 * 60)
# Each extraction runs in a child process killed past this many seconds (wall clock and CPU) or
# this much address space, and the document fails with the reason (apps.documents.bounded).
EXTRACTION_TIMEOUT_S = env_int("RLMWEB_EXTRACTION_TIMEOUT_S", 300)
EXTRACTION_MEMORY_MB = env_int("RLMWEB_EXTRACTION_MEMORY_MB", 2048)
# Plain-text uploads are decoded while they arrive and are ready when the upload completes
# (apps.documents.streaming); off: every upload is extracted by the bounded child after it completes.
STREAM_TEXT_EXTRACTION = env_bool("RLMWEB_STREAM_TEXT_EXTRACTION", True)

# --- Security headers and cookies ---------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the upload and explorer scripts read it for their POSTs
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
])
if PROFILE == "production" and not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("RLMWEB_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("RLMWEB_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
