"""Settings for vom, all in one file, read from the environment.

Embedded default (``make run``, tests): SQLite under ``var/``, a local Redis. At scale: ``DATABASE_URL``
(PostgreSQL), ``REDIS_URL``, ``SECRET_KEY``, ``ALLOWED_HOSTS``. ``DEBUG`` is off unless asked for.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VOM_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "vom",
    "vom.jobs",
    "inventory",
    "availability",
    "provisioning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "vom.web.middleware.VomLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "vom.web.middleware.QueueUnavailableMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "vom.urls"
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
                "vom.web.roles.role_context",
            ],
        },
    },
]
WSGI_APPLICATION = "vom.wsgi.application"

_sqlite_path = Path(os.environ.get("VOM_SQLITE_PATH", VAR_DIR / "vom.sqlite3"))
DATABASES = {
    "default": dj_database_url.config(env="DATABASE_URL", default=f"sqlite:///{_sqlite_path}", conn_max_age=60)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server, worker and beat share one file: wait for locks instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if os.environ.get("VOM_TEST_SQLITE_PATH"):
        DATABASES["default"]["TEST"] = {"NAME": os.environ["VOM_TEST_SQLITE_PATH"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the page's own script reads it to post operations
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call gets 401 with WWW-Authenticate rather than 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["vom.web.roles.RolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "vom.web.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vom API",
    "DESCRIPTION": "Operations console for virtualized datacenters: inventory, operations, discovery.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ProviderKindEnum": "inventory.models.Provider.Kind",
        "ProviderStatusEnum": "inventory.models.Provider.Status",
        "VMStateEnum": "inventory.models.VirtualMachine.State",
        "JobStatusEnum": "vom.jobs.models.Job.Status",
        "JobTriggerEnum": "vom.jobs.models.Job.Trigger",
    },
}

# Jobs (vom.jobs): a worker beats for the jobs it holds every VOM_JOB_HEARTBEAT_SECONDS; a running job
# with no heartbeat for VOM_JOB_STALE_AFTER seconds has lost its worker and is resumed (at most
# VOM_JOB_MAX_RESUMES times, for kinds that can) or ended as abandoned by the sweep (every
# VOM_JOB_SWEEP_SECONDS). A queued job not taken within VOM_JOB_RESEND_AFTER seconds is sent again,
# with a back-off, at most VOM_JOB_MAX_SENDS times (a broker restarted without saving loses messages).
VOM_JOB_HEARTBEAT_SECONDS = float(os.environ.get("VOM_JOB_HEARTBEAT_SECONDS", "15"))
VOM_JOB_STALE_AFTER = int(os.environ.get("VOM_JOB_STALE_AFTER", "90"))
VOM_JOB_SWEEP_SECONDS = float(os.environ.get("VOM_JOB_SWEEP_SECONDS", "30"))
VOM_JOB_RESEND_AFTER = int(os.environ.get("VOM_JOB_RESEND_AFTER", "600"))
VOM_JOB_MAX_RESUMES = int(os.environ.get("VOM_JOB_MAX_RESUMES", "3"))
VOM_JOB_MAX_SENDS = int(os.environ.get("VOM_JOB_MAX_SENDS", "5"))

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task gets it redelivered; the claim stops repeats
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "orchestration"
CELERY_TASK_DEFAULT_EXCHANGE = "orchestration"
CELERY_TASK_DEFAULT_ROUTING_KEY = "orchestration"
# Each queue with its own exchange and routing key: without them kombu binds all three to the default
# routing key, and a task sent to one queue would be delivered to every queue.
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name), routing_key=name) for name in ("discovery", "orchestration", "provisioning")
)
# Job steps (vom.jobs.run_job) go to the queue of their kind, named when each is sent.
CELERY_TASK_ROUTES = {
    "inventory.tasks.dispatch_due_discoveries": {"queue": "discovery"},
    "vom.jobs.sweep": {"queue": "orchestration"},
}
CELERY_BEAT_SCHEDULE = {
    "sweep-jobs": {
        "task": "vom.jobs.sweep",
        "schedule": timedelta(seconds=VOM_JOB_SWEEP_SECONDS),
        "options": {"queue": "orchestration"},
    },
    "dispatch-due-discoveries": {
        "task": "inventory.tasks.dispatch_due_discoveries",
        "schedule": timedelta(seconds=int(os.environ.get("VOM_DISCOVERY_TICK", "15"))),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env_bool("VOM_CELERY_EAGER")
CELERY_TASK_EAGER_PROPAGATES = True
# A worker whose broker goes away (Redis restarted) reconnects and goes on, however long it takes.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sending a task retries once, at once (vom.jobs.broker): a broker that is down fails the request
# quickly (503, nothing recorded). The socket timeouts bound a broker that accepts connections and
# never answers; the health check finds a dead connection between tasks.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
    "health_check_interval": 10,
    "retry_on_timeout": True,
    # Longer than any countdown of a job step, or a waiting step would be delivered twice.
    "visibility_timeout": 3600,
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}

# Every call to a platform is bounded: connecting (TCP and TLS, or the first answer of a libvirt
# daemon) and waiting for an answer that has stopped coming (RHEV: no byte for that long; WinRM: one
# read; libvirt: keepalive, after which the connection is dropped).
VOM_PLATFORM_CONNECT_TIMEOUT = float(os.environ.get("VOM_PLATFORM_CONNECT_TIMEOUT", "10"))
VOM_PLATFORM_READ_TIMEOUT = float(os.environ.get("VOM_PLATFORM_READ_TIMEOUT", "120"))
# How long a graceful shutdown may take before the operation fails with the option to force off.
VOM_SHUTDOWN_TIMEOUT = int(os.environ.get("VOM_SHUTDOWN_TIMEOUT", "120"))
# How long a live migration may take (the KVMGuest agent's MigrateTimeout).
VOM_MIGRATE_TIMEOUT = int(os.environ.get("VOM_MIGRATE_TIMEOUT", "300"))
# libvirt test:/// node files (simulated hosts) may only be read from these directories: a console
# admin must not be able to point the console at arbitrary files of this machine.
VOM_TEST_NODE_DIRS = env_list(
    "VOM_TEST_NODE_DIRS", ",".join(str(p) for p in (BASE_DIR / "demo", VAR_DIR / "nodes", VAR_DIR / "bench"))
)
# Where simulated hosts (test:/// node files, captured Hyper-V servers) keep their state, shared by
# every process of the machine (vom.simulators.libvirt_node); their source files are never written.
VOM_SIMULATOR_STATE_DIR = Path(os.environ.get("VOM_SIMULATOR_STATE_DIR", VAR_DIR / "simulators"))
# Key for secrets at rest (provider passwords). Defaults to one derived from SECRET_KEY.
VOM_SECRETS_KEY = os.environ.get("VOM_SECRETS_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
