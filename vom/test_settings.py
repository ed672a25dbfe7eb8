"""Settings for the test suite: the embedded defaults, tasks run in-process unless a test asks for a worker."""

import os

os.environ.setdefault("VOM_VAR_DIR", "/tmp/vom-test-var")  # noqa: S108 - a scratch dir for tests

from vom.settings import *  # noqa: F403
from vom.settings import DATABASES, VAR_DIR

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
VOM_SHUTDOWN_TIMEOUT = 5
# No heartbeat thread in the test process: its writes would wait on the test's own open transaction
# (the workers the integration tests start beat as in production).
VOM_JOB_HEARTBEAT_SECONDS = 0
VOM_TEST_NODE_DIRS = [*VOM_TEST_NODE_DIRS, "/tmp"]  # noqa: F405, S108 - tests write node files to tmp_path

# A file, not memory: integration tests share the test database with a real Celery worker process.
# One per test run (pid), so that runs on the same machine do not trample each other.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _test_db = os.environ.get("VOM_TEST_SQLITE_PATH", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3"))
    DATABASES["default"]["TEST"] = {"NAME": _test_db}
# Simulated hosts of this test run keep their state here, shared with the workers the tests start.
VOM_SIMULATOR_STATE_DIR = os.environ.setdefault("VOM_SIMULATOR_STATE_DIR", str(VAR_DIR / f"simulators-{os.getpid()}"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns about a missing root
