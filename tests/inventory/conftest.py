"""Fixtures of the inventory tests."""

import pytest

from tests.jobtools import open_broker_connections, sent  # noqa: F401 - sent: a fixture (what is queued)


@pytest.fixture(autouse=True)
def _open_broker_connections():
    """Every test starts with open broker connections: a fixture that pointed the Celery app at another
    broker may have left closed ones behind (see ``tests.jobtools.open_broker_connections``), which even
    an eager ``apply_async`` takes a producer from."""
    open_broker_connections()
