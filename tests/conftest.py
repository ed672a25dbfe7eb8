"""Fixtures shared by all tests: users of each role and clients signed in as them."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import make_user

# Session fixtures starting real services (redis-server, Celery worker, libvirtd), shared by all tests.
pytest_plugins = ["tests.realparts"]


@pytest.fixture
def admin_user(db):
    return make_user("admin", username="alice")


@pytest.fixture
def operator_user(db):
    return make_user("operator", username="oscar")


@pytest.fixture
def viewer_user(db):
    return make_user("viewer", username="victor")


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(admin_user) -> Client:  # overrides pytest-django's superuser client: a role-based admin
    return _client_for(admin_user)


@pytest.fixture
def operator_client(operator_user) -> Client:
    return _client_for(operator_user)


@pytest.fixture
def viewer_client(viewer_user) -> Client:
    return _client_for(viewer_user)


def _api_client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    return _api_client_for(admin_user)


@pytest.fixture
def operator_api(operator_user) -> APIClient:
    return _api_client_for(operator_user)


@pytest.fixture
def viewer_api(viewer_user) -> APIClient:
    return _api_client_for(viewer_user)


@pytest.fixture(scope="session", autouse=True)
def _simulator_state_of_this_run():
    """The simulated hosts' state of this test run (vom.test_settings) goes with the run."""
    import shutil

    from django.conf import settings

    yield
    shutil.rmtree(settings.VOM_SIMULATOR_STATE_DIR, ignore_errors=True)
