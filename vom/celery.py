"""The Celery application: Redis broker, three queues; job steps are sent to their kind's queue."""

import os

import redis.exceptions
from celery import Celery
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vom.settings")

app = Celery("vom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# kombu 5.7's Redis transport, when Redis goes away while the worker holds unacknowledged messages
# (a running task with acks_late, a countdown held for later), closes the channel twice: the first
# close clears the transport's client, the second then fails with AttributeError ("'NoneType' object
# has no attribute 'hostname'", kombu issue #582), which the consumer does not take for a connection
# error, and the worker stops taking work for good ("Unrecoverable error"). Reported as a connection
# error instead, it reconnects and goes on; tests/integration restarts a real Redis mid-task. Written
# here because no setting of Celery or kombu avoids it (all were tried; see docs/ARCHITECTURE.md).
_connparams = kombu_redis.Channel._connparams  # type: ignore[attr-defined]


def _connparams_after_loss(self, asynchronous=False):  # type: ignore[no-untyped-def]
    transport = self.connection
    if transport is None or getattr(transport, "client", None) is None:
        raise redis.exceptions.ConnectionError("the broker connection was closed after it was lost")
    return _connparams(self, asynchronous=asynchronous)


kombu_redis.Channel._connparams = _connparams_after_loss  # type: ignore[attr-defined]
