"""The REST API: authentication, roles, reads, filters shared with the GUI, ordering, pagination, query counts."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory import selectors
from inventory.filters import VMFilterSet
from inventory.models import (
    NetworkInterface,
    Provider,
    StorageVolume,
    VirtualDisk,
    VirtualMachine,
    VMSnapshot,
)
from inventory.services.discovery import discoveries
from tests.factories import make_inventory, make_provider, make_user
from vom.api_urls import router
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db


def _list_urls() -> list[str]:
    return [reverse(f"api:{basename}-list") for _prefix, _viewset, basename in router.registry]


def _ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# --- authentication ----------------------------------------------------------------------------


def test_router_registers_every_resource():
    prefixes = {prefix for prefix, _viewset, _basename in router.registry}
    assert prefixes == {
        "providers",
        "hosts",
        "vms",
        "disks",
        "nics",
        "snapshots",
        "pools",
        "volumes",
        "networks",
        "discoveries",
        "golden-images",
        "provisioning-requests",
        "vms-from-volume",
        "storage-savings",
        "data-disks",
        "disk-resizes",
        "volume-clones",
        "operations",
    }


def test_every_endpoint_refuses_anonymous_callers_with_one_status(anon_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    urls = [
        *_list_urls(),
        reverse("api:api-root"),
        reverse("api:vm-detail", args=[vm.pk]),
        reverse("api:provider-detail", args=[inventory.kvm.pk]),
        reverse("api:provider-discoveries", args=[inventory.kvm.pk]),
        reverse("api:vm-snapshots", args=[vm.pk]),
        reverse("api:schema"),
        reverse("api:docs"),
        reverse("api:redoc"),
    ]
    statuses = {url: anon_api.get(url).status_code for url in urls}
    writes = {
        reverse("api:vm-start", args=[vm.pk]): anon_api.post(reverse("api:vm-start", args=[vm.pk])).status_code,
        reverse("api:vm-bulk-action"): anon_api.post(
            reverse("api:vm-bulk-action"), {"ids": [vm.pk], "action": "start"}, format="json"
        ).status_code,
        reverse("api:provider-list"): anon_api.post(
            reverse("api:provider-list"), {"name": "x", "uri": "test:///default"}, format="json"
        ).status_code,
        reverse("api:provider-discover", args=[inventory.kvm.pk]): anon_api.post(
            reverse("api:provider-discover", args=[inventory.kvm.pk])
        ).status_code,
    }
    codes = set(statuses.values()) | set(writes.values())
    assert len(codes) == 1, {**statuses, **writes}
    assert codes <= {401, 403}
    assert Job.objects.count() == 0
    assert not Provider.objects.filter(name="x").exists()
    body = anon_api.get(reverse("api:vm-list")).json()
    assert "credentials were not provided" in body["detail"]
    assert "kvm-a-vm01" not in anon_api.get(reverse("api:vm-list")).content.decode()


def test_inactive_user_is_refused(inventory):
    from rest_framework.test import APIClient

    user = make_user("admin", username="gone")
    user.is_active = False
    user.save()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(reverse("api:vm-list")).status_code in (401, 403)


def test_token_auth(anon_api, inventory):
    make_user("viewer", username="tina", password="tina-pass-123")
    bad = anon_api.post(reverse("api:token"), {"username": "tina", "password": "wrong"}, format="json")
    assert bad.status_code == 400
    assert "token" not in bad.json() and "non_field_errors" in bad.json()

    response = anon_api.post(reverse("api:token"), {"username": "tina", "password": "tina-pass-123"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert len(token) == 40

    anon_api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    vms = anon_api.get(reverse("api:vm-list"))
    assert vms.status_code == 200
    assert vms.json()["count"] == 7
    # the token carries the user's role: a viewer still cannot run operations
    vm = inventory.vm("kvm-a-vm01")
    assert anon_api.post(reverse("api:vm-start", args=[vm.pk])).status_code == 403

    anon_api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anon_api.get(reverse("api:vm-list")).status_code in (401, 403)


def test_token_endpoint_does_not_echo_or_log_the_password(anon_api, db, caplog):
    make_user("viewer", username="tom", password="Tom-s3cret-pw")
    with caplog.at_level("DEBUG"):
        ok = anon_api.post(reverse("api:token"), {"username": "tom", "password": "Tom-s3cret-pw"}, format="json")
        bad = anon_api.post(reverse("api:token"), {"username": "tom", "password": "Tom-wr0ng-pw"}, format="json")
    assert ok.status_code == 200 and bad.status_code == 400
    for text in (ok.content.decode(), bad.content.decode(), caplog.text):
        assert "Tom-s3cret-pw" not in text and "Tom-wr0ng-pw" not in text


# --- roles -------------------------------------------------------------------------------------


def test_viewer_reads_everything_but_writes_nothing(viewer_api, inventory):
    for url in _list_urls():
        response = viewer_api.get(url)
        assert response.status_code == 200, url
        assert "results" in response.json() and "count" in response.json(), url
    vm = inventory.vm("kvm-a-vm01")  # stopped: start would be allowed for an operator
    denied = [
        viewer_api.post(reverse("api:vm-start", args=[vm.pk])),
        viewer_api.post(reverse("api:vm-snapshots", args=[vm.pk]), {"name": "s1"}, format="json"),
        viewer_api.delete(reverse("api:vm-delete-snapshot", args=[vm.pk, "before-upgrade"])),
        viewer_api.post(reverse("api:vm-bulk-action"), {"ids": [vm.pk], "action": "start"}, format="json"),
        viewer_api.post(reverse("api:provider-discover", args=[inventory.kvm.pk])),
        viewer_api.post(reverse("api:provider-list"), {"name": "new", "uri": "test:///default"}, format="json"),
        viewer_api.patch(reverse("api:provider-detail", args=[inventory.kvm.pk]), {"enabled": False}, format="json"),
        viewer_api.delete(reverse("api:provider-detail", args=[inventory.kvm.pk])),
    ]
    assert [r.status_code for r in denied] == [403] * len(denied)
    assert "operator" in denied[0].json()["detail"]
    assert "admin" in denied[5].json()["detail"]
    assert Job.objects.count() == 0
    assert discoveries(inventory.kvm).count() == 0
    assert Provider.objects.filter(pk=inventory.kvm.pk, enabled=True).exists()
    assert not Provider.objects.filter(name="new").exists()


def test_operator_runs_operations_and_discovery_but_does_not_configure(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    assert operator_api.post(reverse("api:vm-start", args=[vm.pk])).status_code == 202
    assert operator_api.post(reverse("api:provider-discover", args=[inventory.kvm.pk])).status_code == 202
    assert operator_api.get(reverse("api:provider-discoveries", args=[inventory.kvm.pk])).status_code == 200
    denied = [
        operator_api.post(reverse("api:provider-list"), {"name": "new", "uri": "test:///default"}, format="json"),
        operator_api.put(
            reverse("api:provider-detail", args=[inventory.kvm.pk]),
            {"name": "renamed", "uri": "test:///default"},
            format="json",
        ),
        operator_api.delete(reverse("api:provider-detail", args=[inventory.kvm.pk])),
    ]
    assert [r.status_code for r in denied] == [403, 403, 403]
    assert Provider.objects.get(pk=inventory.kvm.pk).name == "kvm-a"
    assert not Provider.objects.filter(name="new").exists()


def test_admin_configures_and_operates(admin_api, inventory):
    created = admin_api.post(reverse("api:provider-list"), {"name": "kvm-new", "uri": "test:///default"}, format="json")
    assert created.status_code == 201
    assert admin_api.post(reverse("api:provider-discover", args=[created.json()["id"]])).status_code == 202
    vm = inventory.vm("kvm-a-vm01")
    assert admin_api.post(reverse("api:vm-start", args=[vm.pk])).status_code == 202


def test_read_only_resources_refuse_writes(admin_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    assert admin_api.post(reverse("api:vm-list"), {"name": "x"}, format="json").status_code == 405
    assert admin_api.delete(reverse("api:vm-detail", args=[vm.pk])).status_code == 405
    assert admin_api.patch(reverse("api:host-detail", args=[vm.host_id]), {}, format="json").status_code == 405
    assert VirtualMachine.objects.filter(pk=vm.pk).exists()


# --- reads -------------------------------------------------------------------------------------


def test_vm_list_is_flat_and_names_related_objects(viewer_api, inventory):
    response = viewer_api.get(reverse("api:vm-list"), {"q": "kvm-a-vm00"})
    (row,) = response.json()["results"]
    vm = inventory.vm("kvm-a-vm00")
    assert row["provider"] == inventory.kvm.pk and row["provider_name"] == "kvm-a"
    assert row["host"] == vm.host_id and row["host_name"] == "kvm-a"
    assert row["platform"] == "libvirt"
    assert row["state"] == "running" and row["raw_state"] == "running" and row["state_reason"] == "booted"
    assert row["removed_at"] is None
    assert "disks" not in row and "nics" not in row


def test_vm_detail_nests_disks_nics_snapshots_and_allowed_operations(viewer_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    data = viewer_api.get(reverse("api:vm-detail", args=[vm.pk])).json()
    disks = {d["target"]: d for d in data["disks"]}
    assert disks["vda"]["source"] == "/var/lib/libvirt/images/kvm-a-vm00.qcow2"
    assert disks["vda"]["volume"]["name"] == "kvm-a-vm00.qcow2"
    assert disks["vda"]["volume"]["pool_name"] == "default"
    assert disks["sda"]["source"].startswith("/dev/disk/by-id/wwn-") and disks["sda"]["volume"] is None
    assert [n["mac"] for n in data["nics"]] == list(vm.nics.values_list("mac", flat=True))
    assert [s["name"] for s in data["snapshots"]] == ["before-upgrade"]
    assert data["allowed_operations"] == ["vm_shutdown", "vm_power_off", "vm_reboot", "vm_suspend"]


def test_removed_vm_detail_is_still_readable_and_offers_no_operation(viewer_api, inventory):
    vm = inventory.vm("kvm-a-vm04")
    assert vm.removed_at is not None
    data = viewer_api.get(reverse("api:vm-detail", args=[vm.pk])).json()
    assert data["removed_at"] is not None
    assert data["allowed_operations"] == []


def test_other_resources_name_their_relations(viewer_api, inventory):
    disk = viewer_api.get(reverse("api:disk-list"), {"q": "kvm-a-vm01.qcow2"}).json()["results"][0]
    assert disk["vm_name"] == "kvm-a-vm01" and disk["provider_name"] == "kvm-a"
    assert disk["volume_name"] == "kvm-a-vm01.qcow2" and disk["pool_name"] == "default"
    pool = viewer_api.get(reverse("api:pool-list"), {"provider": inventory.kvm.pk}).json()["results"][0]
    assert pool["volume_count"] == 5  # golden + the 4 present VMs' volumes (gone volumes are deleted)
    assert pool["host_name"] == "kvm-a" and pool["used_percent"] == 50
    volume = viewer_api.get(reverse("api:volume-list"), {"q": "golden"}).json()["results"]
    assert {v["provider_name"] for v in volume} == {"kvm-a", "rhev-b"}
    host = viewer_api.get(reverse("api:host-list"), {"provider": inventory.kvm.pk}).json()["results"][0]
    assert host["hostname"] == "kvm-a" and host["vm_count"] == 4
    network = viewer_api.get(reverse("api:network-list"), {"provider": inventory.other.pk}).json()["results"][0]
    assert network["bridge"] == "virbr0" and network["provider_name"] == "rhev-b"
    vm = inventory.vm("kvm-a-vm02")
    nics = viewer_api.get(reverse("api:nic-list"), {"vm": vm.pk}).json()["results"]
    assert [n["vm_name"] for n in nics] == ["kvm-a-vm02"]
    snapshot = viewer_api.get(reverse("api:snapshot-list"), {"vm": inventory.vm("kvm-a-vm00").pk}).json()["results"]
    assert [(s["name"], s["vm_name"], s["current"]) for s in snapshot] == [("before-upgrade", "kvm-a-vm00", True)]


def test_provider_list_counts_present_hosts_and_vms(viewer_api, inventory):
    rows = {p["name"]: p for p in viewer_api.get(reverse("api:provider-list")).json()["results"]}
    assert rows["kvm-a"]["vm_count"] == 4 and rows["kvm-a"]["host_count"] == 1
    assert rows["rhev-b"]["vm_count"] == 3


# --- filters: the GUI's FilterSet, through the API ---------------------------------------------


def _filter_cases(inventory) -> list[dict]:
    vm = inventory.vm("kvm-a-vm02")
    return [
        {},
        {"state": "running"},
        {"state": ["running", "paused"]},
        {"provider": str(inventory.kvm.pk)},
        {"platform": "rhev"},
        {"platform": "libvirt", "state": "stopped"},
        {"q": "vm01"},
        {"q": vm.uuid.upper()},
        {"q": NetworkInterface.objects.get(vm=vm).mac},
        {"removed": "yes"},
        {"removed": "all"},
        {"removed": "all", "provider": str(inventory.kvm.pk), "state": "running"},
        {"persistent": "true"},
    ]


def test_vm_filters_match_the_gui_filterset(viewer_api, inventory):
    seen_sizes = set()
    for params in _filter_cases(inventory):
        gui = VMFilterSet(data=QueryDict(urlencode(params, doseq=True)), queryset=selectors.vm_list())  # as a GET
        assert gui.is_valid(), params
        expected = sorted(gui.qs.values_list("pk", flat=True))
        response = viewer_api.get(reverse("api:vm-list"), {**params, "page_size": 500})
        assert response.status_code == 200, params
        assert sorted(_ids(response)) == expected, params
        seen_sizes.add(len(expected))
    assert len(seen_sizes) > 4  # the cases really select different sets


def test_vm_filters_select_what_they_say(viewer_api, inventory):
    def names(**params):
        return sorted(r["name"] for r in viewer_api.get(reverse("api:vm-list"), params).json()["results"])

    assert names(state="running", provider=inventory.kvm.pk) == ["kvm-a-vm00", "kvm-a-vm03"]
    assert names(removed="yes") == ["kvm-a-vm04", "kvm-a-vm05"]
    assert names(q=inventory.vm("kvm-a-vm02").uuid) == ["kvm-a-vm02"]
    mac = NetworkInterface.objects.get(vm__name="rhev-b-vm01").mac
    assert names(q=mac.upper()) == ["rhev-b-vm01"]
    assert names(platform="rhev") == ["rhev-b-vm00", "rhev-b-vm01", "rhev-b-vm02"]


@pytest.mark.parametrize(
    "params",
    [{"state": "exploded"}, {"provider": "999999"}, {"provider": "abc"}, {"platform": "vmware"}, {"removed": "maybe"}],
)
def test_bad_filter_values_are_400_with_field_errors(viewer_api, inventory, params):
    response = viewer_api.get(reverse("api:vm-list"), params)
    assert response.status_code == 400
    assert set(response.json()) == set(params)


def test_other_filtersets_are_the_gui_ones(viewer_api, inventory):
    from inventory.api import views

    assert views.VMViewSet.filterset_class is VMFilterSet
    assert viewer_api.get(reverse("api:host-list"), {"removed": "all"}).json()["count"] == 2
    assert viewer_api.get(reverse("api:disk-list"), {"provider": inventory.other.pk}).json()["count"] == 6
    assert viewer_api.get(reverse("api:job-list"), {"status": "bogus"}).status_code == 400


# --- ordering and pagination -------------------------------------------------------------------


def test_ordering_by_whitelisted_fields(viewer_api, inventory):
    def names(ordering):
        return [r["name"] for r in viewer_api.get(reverse("api:vm-list"), {"ordering": ordering}).json()["results"]]

    default = names("")
    assert default == sorted(default)
    assert names("-name") == sorted(default, reverse=True)
    by_state = names("state,name")
    states = [VirtualMachine.objects.get(name=n).state for n in by_state]
    assert states == sorted(states)
    assert names("-provider__name,name")[:3] == ["rhev-b-vm00", "rhev-b-vm01", "rhev-b-vm02"]
    # a field outside the whitelist is ignored rather than leaking or sorting by it
    assert names("uuid") == default
    assert names("provider__password_encrypted") == default


def test_page_number_pagination(viewer_api, db):
    provider = make_inventory(make_provider("big"), vms=60)
    first = viewer_api.get(reverse("api:vm-list")).json()
    assert first["count"] == 60 and len(first["results"]) == 50 and first["next"] and first["previous"] is None
    second = viewer_api.get(reverse("api:vm-list"), {"page": 2}).json()
    assert len(second["results"]) == 10 and second["next"] is None
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    small = viewer_api.get(reverse("api:vm-list"), {"page_size": 7, "page": 3}).json()
    assert [r["name"] for r in small["results"]] == [f"big-vm{i:02d}" for i in range(14, 21)]
    assert viewer_api.get(reverse("api:vm-list"), {"page": 99}).status_code == 404
    assert provider.vms.count() == 60


def test_page_size_is_capped_at_500(viewer_api, db):
    provider = make_provider()
    VirtualMachine.objects.bulk_create(
        VirtualMachine(provider=provider, uuid=f"u-{i}", name=f"vm{i:04d}", state="stopped") for i in range(510)
    )
    data = viewer_api.get(reverse("api:vm-list"), {"page_size": 5000}).json()
    assert data["count"] == 510 and len(data["results"]) == 500


# --- query counts ------------------------------------------------------------------------------


def _count_queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_vm_list_query_count_does_not_grow_with_rows(viewer_api, db):
    url = reverse("api:vm-list")
    provider = make_inventory(make_provider("q1"), vms=5)
    viewer_api.get(url)  # the role lookup is cached on the user after the first request
    with_5 = _count_queries(viewer_api, url, {"page_size": 500})
    make_inventory(make_provider("q2"), vms=45)
    with_50 = _count_queries(viewer_api, url, {"page_size": 500})
    assert with_5 == with_50 <= 3
    assert VirtualMachine.objects.count() == 50 and provider.vms.count() == 5


def _inventory_with_history(name: str, vms: int, user) -> None:
    provider = make_inventory(make_provider(name), vms=vms)
    discovery = lifecycle.create("discovery", target=provider, user=user)
    Job.objects.filter(pk=discovery.pk).update(status=Job.Status.SUCCEEDED, result={"added": vms, "changed": 0})
    for vm in provider.vms.all():
        lifecycle.create("vm_start", target=vm, target_name=vm.name, user=user)


JOB_LIST = "/api/operations/"


def test_no_list_endpoint_has_n_plus_one_queries(viewer_api, viewer_user):
    _inventory_with_history("n1", 2, viewer_user)
    viewer_api.get(reverse("api:vm-list"))
    vm = VirtualMachine.objects.first()
    urls = [url for url in _list_urls() if url != JOB_LIST]  # the jobs' list: its own test below
    assert len(urls) == len(_list_urls()) - 1
    small = {url: _count_queries(viewer_api, url) for url in urls}
    small_detail = _count_queries(viewer_api, reverse("api:vm-detail", args=[vm.pk]))
    _inventory_with_history("n2", 12, viewer_user)
    _inventory_with_history("n3", 12, viewer_user)
    big = {url: _count_queries(viewer_api, url) for url in urls}
    assert big == small
    assert max(big.values()) <= 3  # count + page (+ none for nested rows)
    assert _count_queries(viewer_api, reverse("api:vm-detail", args=[vm.pk])) == small_detail
    # The same VM with ten more disks on pool volumes, NICs and snapshots: still the same queries.
    volume = StorageVolume.objects.filter(pool__provider=vm.provider).first()
    assert volume is not None
    for i in range(10):
        VirtualDisk.objects.create(vm=vm, target=f"vdx{i}", source=volume.path, volume=volume)
        NetworkInterface.objects.create(vm=vm, mac=f"52:54:00:99:00:{i:02x}")
        VMSnapshot.objects.create(vm=vm, name=f"extra-{i}")
    assert _count_queries(viewer_api, reverse("api:vm-detail", args=[vm.pk])) == small_detail
    assert Job.objects.filter(kind="vm_start").count() == 26 and discoveries().count() == 3


def test_the_job_list_has_no_n_plus_one_queries(viewer_api, viewer_user):
    _inventory_with_history("n1", 2, viewer_user)
    viewer_api.get(reverse("api:vm-list"))
    small = _count_queries(viewer_api, JOB_LIST)
    _inventory_with_history("n2", 12, viewer_user)
    _inventory_with_history("n3", 12, viewer_user)
    assert Job.objects.count() == 29
    big = _count_queries(viewer_api, JOB_LIST, {"page_size": 500})
    assert big == small
    assert big <= 5  # count + the page's ids + its rows + one per kind of target (providers, VMs)
