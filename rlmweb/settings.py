"""rlmweb settings, read from the environment.

Two profiles and nothing else to configure:
- embedded default (no DATABASE_URL / REDIS_URL): SQLite and files under RLMWEB_DATA_DIR, a Celery
  broker on the filesystem, an in-process channel layer and a Celery worker inside the web process;
- production (DATABASE_URL and REDIS_URL): PostgreSQL, Redis as Celery broker and channel layer,
  separate `celery worker` processes.
"""

import os
from pathlib import Path

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
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
PROFILE = "production" if (DATABASE_URL or REDIS_URL) else "embedded"

DEBUG = env_bool("RLMWEB_DEBUG", PROFILE == "embedded")
SECRET_KEY = os.environ.get("RLMWEB_SECRET_KEY", "")
if not SECRET_KEY:
    if PROFILE == "production" and not DEBUG:
        raise RuntimeError("Set RLMWEB_SECRET_KEY in the production profile.")
    SECRET_KEY = "embedded-default-insecure-key-do-not-use-in-production"
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
    "apps.helpers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.teams.middleware.CurrentTeamMiddleware",
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
]
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

EMBEDDED_WORKER = env_bool("RLMWEB_EMBEDDED_WORKER", PROFILE == "embedded")
EMBEDDED_WORKER_CONCURRENCY = env_int("RLMWEB_WORKER_CONCURRENCY", 4)

# --- Channels -----------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "rlmweb.channel_layers.EmbeddedChannelLayer", "CONFIG": {"capacity": 5000}}}

# --- rlmweb -------------------------------------------------------------------------------------
SIGNUP_ENABLED = env_bool("RLMWEB_SIGNUP_ENABLED", True)
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
RLMWEB_MODELS = [
    {"model": OFFLINE_MODEL, "label": "Offline heuristic (stand-in, no network)", "offline": True},
    {"model": "openai/gpt-5", "label": "OpenAI GPT-5", "api_key_env": "OPENAI_API_KEY"},
    {"model": "openai/gpt-5-mini", "label": "OpenAI GPT-5 mini", "api_key_env": "OPENAI_API_KEY"},
    {"model": "anthropic/claude-sonnet-4-5", "label": "Anthropic Claude Sonnet 4.5", "api_key_env": "ANTHROPIC_API_KEY"},
    {"model": "gemini/gemini-2.5-flash", "label": "Google Gemini 2.5 Flash", "api_key_env": "GEMINI_API_KEY"},
]
if os.environ.get("RLMWEB_MODELS_JSON"):
    import json

    RLMWEB_MODELS = [RLMWEB_MODELS[0], *json.loads(os.environ["RLMWEB_MODELS_JSON"])]
DEFAULT_ROOT_MODEL = os.environ.get("RLMWEB_DEFAULT_MODEL", OFFLINE_MODEL)
DEFAULT_SUB_MODEL = os.environ.get("RLMWEB_DEFAULT_SUB_MODEL", DEFAULT_ROOT_MODEL)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
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

# --- Security headers and cookies ---------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the upload and explorer scripts read it for their POSTs
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PROFILE == "production" and not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("RLMWEB_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("RLMWEB_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
