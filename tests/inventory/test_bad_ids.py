"""Ids past the database's integer range give a clear answer (200 with nothing found, or 400), never a 500."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db
BIG = "9" * 25


def test_huge_ids(operator_client, operator_api):
    assert operator_client.get(f"/vms/?provider={BIG}&host={BIG}").status_code == 200
    r = operator_client.post(reverse("vm-bulk-action"), {"kind": "vm_start", "vm": [BIG]}, follow=True)
    assert r.status_code == 200 and b"Not a VM id" in r.content
    r = operator_api.post("/api/vms/bulk-action/", {"ids": [10**20], "action": "start"}, format="json")
    assert r.status_code == 400, r.content
    for url in [
        "/hosts/",
        "/storage/pools/",
        "/storage/volumes/",
        "/networks/",
        "/operations/",
        "/api/vms/",
        "/api/hosts/",
    ]:
        assert operator_client.get(f"{url}?provider={BIG}&host={BIG}&pool={BIG}&vm={BIG}").status_code in (200, 400), (
            url
        )
