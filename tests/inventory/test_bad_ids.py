"""Ids past the database's integer range (or not numbers at all) in a filter: one answer per kind of page.

- A GUI list page answers 200 with the filter ignored (every row listed) and a notice naming the
  filters that were not understood (``templates/includes/filter_errors.html``).
- An API list answers 400 with a field error for each malformed filter, and nothing else.

Never a 500, and never a silent empty list that looks like "nothing found".
"""

import pytest
from django.urls import reverse

from tests.factories import make_inventory, make_provider
from vom.jobs import lifecycle

pytestmark = pytest.mark.django_db
BIG = "9" * 25
IDS = f"provider={BIG}&host={BIG}&pool={BIG}&vm={BIG}&target_id={BIG}&parent={BIG}"
NOTICE = "Some filters were not understood and were ignored:"


@pytest.fixture
def listed(db):
    """A host with VMs, a pool, volumes and a network; a job on one of its VMs. Returns what each page lists."""
    provider = make_inventory(make_provider("kvm-big"), vms=2)
    vm = provider.vms.get(name="kvm-big-vm00")
    lifecycle.create("vm_start", target=vm, target_name="kvm-big-vm00")
    return {
        "/vms/": ["kvm-big-vm00", "kvm-big-vm01"],
        "/hosts/": ["kvm-big"],
        "/storage/pools/": ["/var/lib/libvirt/images"],
        "/storage/volumes/": ["golden.qcow2", "kvm-big-vm01.qcow2"],
        "/networks/": ["virbr0"],
        "/operations/": ["kvm-big-vm00"],
    }


# The filters of each page that take an id: the others in the query are not the page's and are ignored.
GUI_ID_FILTERS = {
    "/vms/": ["provider", "host"],
    "/hosts/": ["provider"],
    "/storage/pools/": ["provider", "host"],
    "/storage/volumes/": ["pool", "provider"],
    "/networks/": ["provider", "host"],
    "/operations/": ["target_id", "parent"],
}
API_ID_FILTERS = {
    "/api/vms/": ["provider", "host"],
    "/api/hosts/": ["provider"],
    "/api/pools/": ["provider", "host"],
    "/api/volumes/": ["pool", "provider"],
    "/api/networks/": ["provider", "host"],
    "/api/disks/": ["vm", "provider"],
    "/api/nics/": ["vm"],
    "/api/snapshots/": ["vm"],
    "/api/operations/": ["target_id", "parent"],
    "/api/discoveries/": ["provider"],
}


@pytest.mark.parametrize(("url", "fields"), list(GUI_ID_FILTERS.items()))
@pytest.mark.parametrize("value", [BIG, "abc"])
def test_a_gui_list_ignores_a_bad_id_filter_and_says_so(operator_client, listed, url, fields, value):
    query = "&".join(f"{name}={value}" for name in ["provider", "host", "pool", "vm", "target_id", "parent"])
    response = operator_client.get(f"{url}?{query}")
    assert response.status_code == 200
    text = response.content.decode()
    assert NOTICE in text
    notice = text[text.index(NOTICE) : text.index("</div>", text.index(NOTICE))]
    named = [name for name in ["provider", "host", "pool", "vm", "target_id", "parent"] if f"{name}:" in notice]
    assert named == sorted(fields, key=["provider", "host", "pool", "vm", "target_id", "parent"].index)
    for row in listed[url]:
        assert row in text, (url, row)  # the filter was ignored: every row is listed
    clean = operator_client.get(url)
    assert NOTICE not in clean.content.decode()


@pytest.mark.parametrize(("url", "fields"), list(API_ID_FILTERS.items()))
@pytest.mark.parametrize("value", [BIG, "abc", "0"])
def test_an_api_list_refuses_a_bad_id_filter_with_field_errors(operator_api, listed, url, fields, value):
    query = "&".join(f"{name}={value}" for name in ["provider", "host", "pool", "vm", "target_id", "parent"])
    response = operator_api.get(f"{url}?{query}")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert sorted(errors) == sorted(fields)
    assert all(isinstance(messages, list) and messages for messages in errors.values())
    assert operator_api.get(url).status_code == 200


def test_huge_ids_in_bulk_actions(operator_client, operator_api, listed):
    r = operator_client.post(reverse("vm-bulk-action"), {"kind": "vm_start", "vm": [BIG]}, follow=True)
    assert r.status_code == 200 and b"Not a VM id" in r.content
    r = operator_api.post("/api/vms/bulk-action/", {"ids": [10**20], "action": "start"}, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()) == ["ids"]
