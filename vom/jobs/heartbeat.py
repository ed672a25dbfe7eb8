"""The worker's heartbeat: one thread per process writes a sign of life for every job it holds.

A job is judged dead by the age of its heartbeat (``VOM_JOB_STALE_AFTER``), never by its own age,
so a step that legitimately takes hours (a full copy of a large image) lives as long as its worker
does. The thread starts with the first job held; ``VOM_JOB_HEARTBEAT_SECONDS = 0`` turns it off
(unit tests, where every write happens inside the test's own transaction).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

_held: set[str] = set()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_wake = threading.Event()


@contextmanager
def holding(claim: str) -> Iterator[None]:
    """Beat for the job held under ``claim`` while the block runs."""
    with _lock:
        _held.add(claim)
    _ensure_thread()
    try:
        yield
    finally:
        with _lock:
            _held.discard(claim)


def _ensure_thread() -> None:
    global _thread
    interval = float(settings.VOM_JOB_HEARTBEAT_SECONDS)
    if interval <= 0:
        return
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_beat_forever, args=(interval,), name="vom-job-heartbeat", daemon=True)
        _thread.start()


def _beat_forever(interval: float) -> None:
    from vom.jobs.lifecycle import beat

    while not _wake.wait(interval):
        with _lock:
            claims = list(_held)
        if not claims:
            continue
        try:
            beat(claims)
        except DatabaseError as exc:  # the database is away for a moment: the next beat tries again
            logger.warning("job heartbeat not written: %s", exc)
        finally:
            connection.close()  # this thread's own connection; never left open between beats
