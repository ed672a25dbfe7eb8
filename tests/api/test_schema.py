"""OpenAPI schema and its documentation pages: valid, signed-in only, and with no asset from outside the server."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_schema_is_valid_openapi_with_the_endpoints(viewer_api):
    response = viewer_api.get(reverse("api:schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on an invalid document
    paths = schema["paths"]
    for path in [
        "/api/vms/",
        "/api/vms/{id}/",
        "/api/vms/{id}/start/",
        "/api/vms/{id}/power-off/",
        "/api/vms/bulk-action/",
        "/api/vms/{id}/snapshots/",
        "/api/vms/{id}/snapshots/{snapshot_name}/revert/",
        "/api/providers/",
        "/api/providers/{id}/discover/",
        "/api/operations/",
        "/api/operations/{id}/",
        "/api/operations/{id}/cancel/",
        "/api/discoveries/{id}/",
        "/api/auth/token/",
    ]:
        assert path in paths, path
    assert {"202", "409"} <= set(paths["/api/vms/{id}/start/"]["post"]["responses"])
    assert set(paths["/api/providers/{id}/discover/"]["post"]["responses"]) == {"202", "503"}
    assert set(paths["/api/operations/{id}/cancel/"]["post"]["responses"]) == {"202", "409"}
    job = schema["components"]["schemas"]["JobDetail"]["properties"]
    assert {"kind", "status", "target", "log", "children", "cancel_requested", "result"} <= set(job)
    create = paths["/api/vms/{id}/snapshots/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SnapshotCreate")
    provider = schema["components"]["schemas"]["Provider"]["properties"]
    assert provider["password"]["writeOnly"] is True and provider["has_password"]["readOnly"] is True
    assert paths["/api/auth/token/"]["post"].get("security") in (None, [{}])  # open: it is how callers sign in
    security = paths["/api/vms/"]["get"]["security"]
    assert sorted(security, key=str) == [{"cookieAuth": []}, {"tokenAuth": []}]


def test_schema_and_docs_need_a_signed_in_user(anon_api):
    for name in ("api:schema", "api:docs", "api:redoc"):
        assert anon_api.get(reverse(name)).status_code in (401, 403), name


@pytest.mark.parametrize("name", ["api:docs", "api:redoc"])
def test_docs_pages_load_assets_from_this_server_only(viewer_user, name):
    client = Client()
    client.force_login(viewer_user)  # the browser's way in: a session
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)
    assets = [url for url in ASSET_URL.findall(html)]
    assert assets, "the page should load its scripts and styles"
    for url in assets:
        assert url.startswith("/static/"), url
        assert client.get(url).status_code == 200, url  # served by this server (whitenoise)
    assert reverse("api:schema") in html


QUEUEING = [
    ("/api/vms/{id}/start/", "post"),
    ("/api/vms/{id}/shutdown/", "post"),
    ("/api/vms/{id}/power-off/", "post"),
    ("/api/vms/{id}/reboot/", "post"),
    ("/api/vms/{id}/suspend/", "post"),
    ("/api/vms/{id}/resume/", "post"),
    ("/api/vms/{id}/migrate/", "post"),
    ("/api/vms/{id}/snapshots/", "post"),
    ("/api/vms/{id}/snapshots/{snapshot_name}/revert/", "post"),
    ("/api/vms/{id}/snapshots/{snapshot_name}/", "delete"),
    ("/api/vms/bulk-action/", "post"),
    ("/api/providers/{id}/check/", "post"),
    ("/api/golden-images/{id}/provision/", "post"),
    ("/api/vms-from-volume/", "post"),
    ("/api/data-disks/", "post"),
    ("/api/disk-resizes/", "post"),
    ("/api/volume-clones/", "post"),
]


def test_every_endpoint_that_queues_work_documents_the_503_of_a_queue_down(viewer_api):
    paths = viewer_api.get(reverse("api:schema"), {"format": "json"}).json()["paths"]
    undocumented = [(path, method) for path, method in QUEUEING if "503" not in paths[path][method]["responses"]]
    assert undocumented == []
