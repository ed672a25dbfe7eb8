"""The provisioning REST API on a ``test:///`` KVM host: golden images, requests, savings, disks and clones.

``transaction.on_commit`` callbacks only run inside ``django_capture_on_commit_callbacks(execute=True)``:
with it, a queued request or operation really executes (Celery is eager in tests) and the resulting
VMs, volumes and disks are read back from the inventory.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import (
    Host,
    StoragePool,
    StorageVolume,
    VirtualDisk,
    VirtualMachine,
)
from inventory.services.discovery import discover_now
from provisioning.models import GoldenImage, ProvisionedVM, ProvisioningRequest
from provisioning.services.savings import image_savings, pool_savings
from tests.factories import make_provider
from tests.provisioning.conftest import GOLDEN_PATH, IMAGES
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

GiB = 1024**3


def _pool(provider, name: str) -> StoragePool:
    return StoragePool.objects.get(provider=provider, name=name)


def _vm(provider, name: str) -> VirtualMachine:
    return VirtualMachine.objects.get(provider=provider, name=name)


def _volume(provider, name: str) -> StorageVolume:
    return StorageVolume.objects.get(pool__provider=provider, name=name)


def _provision_url(image: GoldenImage) -> str:
    return reverse("api:goldenimage-provision", args=[image.pk])


def _no_work() -> bool:
    """No request and no job was recorded (but the discoveries that loaded the host)."""
    return not ProvisioningRequest.objects.exists() and not Job.objects.exclude(kind="discovery").exists()


def _provision(api, image, capture=None, **body):
    body = {"count": 3, "name_pattern": "web-{n:02d}", "pool": _pool(image.provider, "images").pk, **body}
    return api.post(_provision_url(image), body, format="json")


# --- golden images -------------------------------------------------------------------------------


def test_viewer_lists_and_reads_golden_images(viewer_api, golden):
    listed = viewer_api.get(reverse("api:goldenimage-list")).json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert (row["id"], row["name"], row["os"], row["volume_path"], row["format"]) == (
        golden.pk,
        "debian-12",
        "Debian 12",
        GOLDEN_PATH,
        "qcow2",
    )
    assert row["provider_name"] == "kvm-prov" and row["pool_name"] == "images"
    assert row["template_vm_name"] == "golden-vm" and row["template_vcpus"] == 2
    assert row["template_memory_bytes"] == 2 * GiB and row["capacity_bytes"] == 10 * GiB
    assert row["children_count"] == 0 and row["savings"]["children"] == 0
    assert row["url"].endswith(reverse("api:goldenimage-detail", args=[golden.pk]))
    detail = viewer_api.get(row["url"]).json()
    assert detail == row


def test_admin_registers_a_golden_image_from_a_shut_off_vm(admin_api, admin_user, kvm):
    template = _vm(kvm, "golden-vm")
    response = admin_api.post(
        reverse("api:goldenimage-list"),
        {"name": "debian-base", "os": "Debian 12", "template_vm": template.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    image = GoldenImage.objects.get(name="debian-base")
    assert (image.volume_path, image.template_vm, image.created_by) == (GOLDEN_PATH, template, admin_user)
    assert "<domain" in image.template_xml
    data = response.json()
    assert data["id"] == image.pk and data["created_by"] == "alice" and data["volume"] == image.volume_id
    assert response["Location"].endswith(reverse("api:goldenimage-detail", args=[image.pk]))


def test_registering_by_volume_finds_the_template_vm(admin_api, kvm):
    volume = _volume(kvm, "golden.qcow2")
    response = admin_api.post(reverse("api:goldenimage-list"), {"name": "g2", "volume": volume.pk}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["template_vm"] == _vm(kvm, "golden-vm").pk


def test_a_running_template_vm_is_refused_at_registration(admin_api, kvm):
    volume = _volume(kvm, "app-01.qcow2")  # the boot disk of app-01, which runs
    response = admin_api.post(reverse("api:goldenimage-list"), {"name": "app", "volume": volume.pk}, format="json")
    assert response.status_code == 400
    (reason,) = response.json()["template_vm"]
    assert "'app-01' is running" in reason and "shut it down first" in reason
    assert not GoldenImage.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"volume": 987654}, "volume", "No volume with id 987654."),
        ({"template_vm": 987654}, "template_vm", "No VM with id 987654."),
        ({"volume": "golden"}, "volume", "A volume id (a number), not str."),
        ({}, "volume", "Choose a volume or a shut-off VM"),
    ],
)
def test_registration_field_errors(admin_api, kvm, body, field, reason):
    response = admin_api.post(reverse("api:goldenimage-list"), {"name": "x", **body}, format="json")
    assert response.status_code == 400
    assert response.json()[field][0].startswith(reason)


def test_a_taken_golden_image_name_is_refused(admin_api, golden):
    template = _vm(golden.provider, "golden-vm")
    response = admin_api.post(
        reverse("api:goldenimage-list"), {"name": "DEBIAN-12", "template_vm": template.pk}, format="json"
    )
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]


def test_only_admins_register_and_unregister(operator_api, viewer_api, golden):
    template = _vm(golden.provider, "golden-vm")
    for api in (operator_api, viewer_api):
        created = api.post(reverse("api:goldenimage-list"), {"name": "x", "template_vm": template.pk}, format="json")
        deleted = api.delete(reverse("api:goldenimage-detail", args=[golden.pk]))
        assert (created.status_code, deleted.status_code) == (403, 403)
        assert "admin" in created.json()["detail"]
    assert list(GoldenImage.objects.values_list("name", flat=True)) == ["debian-12"]


def test_admin_unregisters_a_golden_image_and_its_volume_stays(admin_api, golden):
    response = admin_api.delete(reverse("api:goldenimage-detail", args=[golden.pk]))
    assert response.status_code == 204
    assert not GoldenImage.objects.exists()
    assert StorageVolume.objects.filter(path=GOLDEN_PATH).exists()
    assert admin_api.get(reverse("api:goldenimage-detail", args=[golden.pk])).status_code == 404


# --- provisioning -----------------------------------------------------------------------------------


def test_provisioning_three_space_optimized_vms_end_to_end(
    operator_api, operator_user, golden, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _provision(operator_api, golden, start=True)
    assert response.status_code == 202, response.json()
    queued = response.json()
    assert queued["status"] == "pending" and queued["requested_by"] == "oscar"
    assert [vm["name"] for vm in queued["vms"]] == ["web-01", "web-02", "web-03"]
    assert response["Location"].endswith(reverse("api:provisioningrequest-detail", args=[queued["id"]]))

    detail = operator_api.get(response["Location"]).json()
    assert (detail["status"], detail["progress"], detail["error"]) == ("succeeded", 100, "")
    job = ProvisioningRequest.objects.get(pk=queued["id"]).job
    assert (job.kind, job.trigger, job.target, job.requested_by) == ("provision_vms", "api", golden, operator_user)
    assert (detail["done"], detail["failed"], detail["mode"], detail["pool_name"]) == (
        3,
        0,
        "space_optimized",
        "images",
    )
    vms = {vm.name: vm for vm in VirtualMachine.objects.filter(provider=golden.provider, name__startswith="web-")}
    assert sorted(vms) == ["web-01", "web-02", "web-03"]
    for row in detail["vms"]:
        assert row["status"] == "done", row
        assert row["vm"] == vms[row["name"]].pk and row["vm_uuid"] == vms[row["name"]].uuid
        assert row["volume_path"] == f"{IMAGES}/{row['name']}.qcow2" and row["volume_name"] == f"{row['name']}.qcow2"
        assert row["error"] == "" and row["started"] and row["finished"]
    assert all(vm.state == "running" for vm in vms.values())

    savings = operator_api.get(reverse("api:goldenimage-savings", args=[golden.pk])).json()
    parent = _volume(golden.provider, "golden.qcow2")
    assert savings["parent"]["id"] == parent.pk
    assert savings["savings"]["children"] == 3
    assert savings["savings"]["full_equivalent_bytes"] == 3 * parent.allocation_bytes == 3 * 2 * GiB
    children = {child["volume_name"]: child for child in savings["children"]}
    assert sorted(children) == ["web-01.qcow2", "web-02.qcow2", "web-03.qcow2"]
    for name, child in children.items():
        vm = vms[name.removesuffix(".qcow2")]
        assert (child["mode"], child["vm"], child["vm_name"], child["request"]) == (
            "space_optimized",
            vm.pk,
            vm.name,
            detail["id"],
        )
        assert child["volume_path"] == f"{IMAGES}/{name}" and child["capacity_bytes"] == 10 * GiB
    # The list counts what the detail reads with the savings service.
    listed = operator_api.get(reverse("api:goldenimage-list")).json()["results"][0]
    assert listed["savings"] == savings["savings"] == image_savings(golden).savings.as_dict()
    assert listed["children_count"] == 3

    requests = operator_api.get(reverse("api:provisioningrequest-list"), {"status": "succeeded"}).json()
    assert [r["id"] for r in requests["results"]] == [detail["id"]]
    assert "vms" not in requests["results"][0] and requests["results"][0]["done"] == 3


def test_full_copies_are_counted_apart_from_the_children(operator_api, golden, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert _provision(operator_api, golden, count=1, name_pattern="db-1", mode="full").status_code == 202
        assert _provision(operator_api, golden, count=2, name_pattern="so-{n}").status_code == 202
    listed = operator_api.get(reverse("api:goldenimage-list")).json()["results"][0]
    expected = image_savings(golden).savings.as_dict()
    assert (expected["children"], expected["full_copies"]) == (2, 1)
    assert listed["savings"] == expected and listed["children_count"] == 3
    modes = {
        c["volume_name"]: c["mode"]
        for c in operator_api.get(reverse("api:goldenimage-savings", args=[golden.pk])).json()["children"]
    }
    assert modes == {"db-1.qcow2": "full", "so-1.qcow2": "space_optimized", "so-2.qcow2": "space_optimized"}


def _other_provider_pool() -> StoragePool:
    other = make_provider(name="elsewhere", uri="test:///default")
    assert discover_now(provider=other).status == "succeeded"
    return StoragePool.objects.filter(provider=other).first()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"name_pattern": "web-{x}"}, "name_pattern", "Invalid name pattern: only {n} may appear in braces"),
        ({"name_pattern": "web"}, "name_pattern", "The pattern must contain {n}"),
        ({"name_pattern": "web {n}"}, "name_pattern", "'web 1' is not a valid VM name"),
        ({"name_pattern": "app-{n:02d}", "count": 1}, "name_pattern", "Already in use on this host: app-01."),
        ({"count": 0}, "count", "Between 1 and 500 VMs per request."),
        ({"mode": "thin"}, "mode", '"thin" is not a valid choice.'),
        ({"pool": "lvm"}, "pool", "Storage pool lvm is a logical pool: use a directory or file-system pool."),
        ({"pool": 987654}, "pool", "No storage pool with id 987654."),
        ({"host": 987654}, "host", "No host with id 987654."),
        ({"network": "nowhere"}, "network", "No network 'nowhere' is known on this host."),
        ({"network": "default", "bridge": "br0"}, "bridge", "Give a network or a bridge, not both."),
        ({"memory_mib": 16}, "memory_mib", "At least 64 MiB."),
        ({"vcpus": 0}, "vcpus", "Between 1 and 512."),
        ({"mode": "full", "count": 60}, "pool", "Pool images has "),
    ],
)
def test_a_request_that_cannot_be_met_is_refused_before_anything_is_made(operator_api, golden, body, field, reason):
    if body.get("pool") == "lvm":
        body["pool"] = _pool(golden.provider, "lvm").pk
    response = _provision(operator_api, golden, **body)
    assert response.status_code == 400, response.json()
    errors = response.json()
    assert field in errors, errors
    if reason:
        assert errors[field][0].startswith(reason), errors
    assert _no_work()


def test_golden_vm_name_is_taken_too(operator_api, golden):
    response = _provision(operator_api, golden, count=1, name_pattern="golden-vm")
    assert response.status_code == 400
    assert response.json()["name_pattern"] == ["Already in use on this host: golden-vm."]
    assert _no_work()


def test_too_little_space_for_full_copies_says_how_much(operator_api, golden):
    pool = _pool(golden.provider, "images")
    response = _provision(operator_api, golden, mode="full", count=60)
    (reason,) = response.json()["pool"]
    assert reason.startswith(f"Pool images has {pool.available_bytes / GiB:.1f} GiB free; 60 full copies of debian-12")
    assert reason.endswith("need 120 GiB.")
    assert _no_work()


def test_a_pool_on_another_provider_is_refused(operator_api, golden):
    pool = _other_provider_pool()
    response = _provision(operator_api, golden, pool=pool.pk)
    assert response.status_code == 400
    assert response.json()["pool"] == [f"Pool {pool.name} is on another provider than debian-12: it cannot reach it."]
    assert _no_work()


def test_a_host_of_another_provider_is_refused(operator_api, golden):
    other = _other_provider_pool().provider
    host = Host.objects.get(provider=other)
    response = _provision(operator_api, golden, host=host.pk)
    assert response.status_code == 400
    assert "is not a present host of debian-12's provider" in response.json()["host"][0]
    assert _no_work()


def test_a_started_template_vm_refuses_provisioning(operator_api, golden):
    VirtualMachine.objects.filter(pk=golden.template_vm_id).update(state="running")
    response = _provision(operator_api, golden)
    assert response.status_code == 400
    assert "'golden-vm' is running: shut it down first" in response.json()["golden_image"][0]
    assert _no_work()


def test_names_being_provisioned_by_another_request_are_refused(operator_api, golden):
    assert _provision(operator_api, golden).status_code == 202  # not executed: stays pending
    response = _provision(operator_api, golden, count=1, first_number=2)
    assert response.status_code == 400
    assert "Being provisioned by another request: web-02" in response.json()["name_pattern"][0]


def test_viewer_cannot_provision_and_unknown_images_are_404(viewer_api, operator_api, golden):
    response = _provision(viewer_api, golden)
    assert response.status_code == 403 and "operator" in response.json()["detail"]
    assert operator_api.post(reverse("api:goldenimage-provision", args=[987654]), {}, format="json").status_code == 404
    assert not ProvisioningRequest.objects.exists()


def test_request_list_filters_by_status_and_golden_image(operator_api, admin_api, golden, kvm):
    first = _provision(operator_api, golden, count=1, name_pattern="a-{n}").json()["id"]
    second = _provision(operator_api, golden, count=1, name_pattern="b-{n}").json()["id"]
    Job.objects.filter(provisioning_request__pk=first).update(status="failed")
    url = reverse("api:provisioningrequest-list")
    assert [r["id"] for r in operator_api.get(url).json()["results"]] == [second, first]
    assert [r["id"] for r in operator_api.get(url, {"status": "failed"}).json()["results"]] == [first]
    assert [r["id"] for r in operator_api.get(url, {"golden_image": golden.pk}).json()["results"]] == [second, first]
    response = operator_api.get(url, {"golden_image": 987654})
    assert response.status_code == 400 and "golden_image" in response.json()
    assert operator_api.get(url, {"status": "bogus"}).status_code == 400
    assert admin_api.post(url, {}, format="json").status_code == 405  # read-only: requests come from provision/


# --- storage savings per pool --------------------------------------------------------------------


def test_pool_savings_list_and_detail(viewer_api, operator_api, golden, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert _provision(operator_api, golden).status_code == 202
    pool = _pool(golden.provider, "images")
    listed = viewer_api.get(reverse("api:poolsavings-list")).json()
    assert [row["pool"] for row in listed["results"]] == [pool.pk]
    summary = pool_savings(pool)
    total, groups = summary.savings, summary.groups
    row = listed["results"][0]
    assert row["savings"] == total.as_dict()
    assert (row["savings"]["children"], row["savings"]["full_equivalent_bytes"]) == (3, 3 * 2 * GiB)
    assert (row["parents"], row["unknown_parent_children"], row["pool_name"]) == (1, 0, "images")
    detail = viewer_api.get(reverse("api:poolsavings-detail", args=[pool.pk])).json()
    assert detail["savings"] == total.as_dict()
    (group,) = detail["groups"]
    assert (group["parent_path"], group["golden_image"], group["golden_image_name"]) == (
        GOLDEN_PATH,
        golden.pk,
        "debian-12",
    )
    assert group["savings"] == groups[0].savings.as_dict()
    empty = viewer_api.get(reverse("api:poolsavings-detail", args=[_pool(golden.provider, "lvm").pk])).json()
    assert empty["groups"] == [] and empty["savings"]["children"] == 0
    assert viewer_api.get(reverse("api:poolsavings-detail", args=[987654])).status_code == 404


def test_lists_read_a_fixed_number_of_queries(
    viewer_api, admin_user, golden, operator_api, django_capture_on_commit_callbacks
):
    viewer_api.get(reverse("api:goldenimage-list"))  # the role lookup is cached after the first request
    with django_capture_on_commit_callbacks(execute=True):
        assert _provision(operator_api, golden, count=2).status_code == 202  # children in pool images
    app = _vm(golden.provider, "app-01")
    lifecycle.create("disk_add", target=app, user=admin_user)
    urls = [reverse(f"api:{name}-list") for name in ("goldenimage", "provisioningrequest", "poolsavings")]

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = viewer_api.get(url)
        assert response.status_code == 200 and response.json()["count"] >= 1, url
        return len(queries)

    before = {url: count(url) for url in urls}
    volume = _volume(golden.provider, "app-01.qcow2")
    for n in range(3):  # more images (rows as the service would write them), requests and disk operations
        GoldenImage.objects.create(
            name=f"img-{n}",
            provider=golden.provider,
            pool=golden.pool,
            volume_name=f"v{n}",
            volume_path=f"{volume.path}-{n}",
            format="qcow2",
            template_vm_name="golden-vm",
            template_vm_uuid=golden.template_vm_uuid,
            template_xml=golden.template_xml,
            created_by=admin_user,
        )
        _provision(operator_api, golden, count=1, name_pattern=f"more{n}-{{n}}")
        failed = lifecycle.create("disk_add", target=_vm(golden.provider, "app-01"), user=admin_user)
        Job.objects.filter(pk=failed.pk).update(status="failed")
    assert Job.objects.filter(kind="disk_add").count() == 4
    assert {url: count(url) for url in urls} == before
    assert max(before.values()) <= 3


def test_the_data_disk_list_reads_a_fixed_number_of_queries(viewer_api, admin_user, kvm):
    url = reverse("api:datadisk-list")
    viewer_api.get(url)
    lifecycle.create("disk_add", target=_vm(kvm, "app-01"), user=admin_user)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = viewer_api.get(url)
        assert response.status_code == 200 and response.json()["count"] >= 1
        return len(queries)

    before = count()
    for vm in VirtualMachine.objects.filter(provider=kvm):
        job = lifecycle.create("disk_add", target=vm, user=admin_user)
        Job.objects.filter(pk=job.pk).update(status="failed")
    assert Job.objects.filter(kind="disk_add").count() == 3
    assert count() == before
    assert before <= 4  # count + the page's ids + its rows + the VMs they target


# --- data disks, resizes, clones -------------------------------------------------------------------


def test_a_data_disk_is_provisioned_and_persists(operator_api, kvm, django_capture_on_commit_callbacks):
    vm = _vm(kvm, "golden-vm")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(
            reverse("api:datadisk-list"),
            {"vm": vm.pk, "pool": _pool(kvm, "images").pk, "size_gib": 2, "bus": "scsi"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    assert response["Location"].endswith(reverse("api:job-detail", args=[response.json()["id"]]))
    assert response.json()["kind"] == "disk_add" and response.json()["target"]["id"] == vm.pk
    assert response.json()["target"]["type"] == "inventory.virtualmachine"
    op = operator_api.get(response["Location"]).json()
    assert op["status"] == "succeeded", op
    assert op["trigger"] == "api" and op["requested_by"] == "oscar"
    disk = VirtualDisk.objects.get(vm=vm, source=f"{IMAGES}/golden-vm-data1.qcow2")
    assert (disk.target, disk.bus, disk.persistent) == ("sda", "scsi", True)
    volume = _volume(kvm, "golden-vm-data1.qcow2")
    assert volume.capacity_bytes == 2 * GiB and disk.volume == volume
    listed = operator_api.get(reverse("api:datadisk-list")).json()["results"]
    assert [row["id"] for row in listed] == [op["id"]]


def test_a_data_disk_for_a_running_vm_goes_into_its_definition(operator_api, kvm, django_capture_on_commit_callbacks):
    vm = _vm(kvm, "app-01")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(
            reverse("api:datadisk-list"),
            {"vm": vm.pk, "pool": _pool(kvm, "images").pk, "size_bytes": GiB},
            format="json",
        )
    assert response.status_code == 202, response.json()
    op = operator_api.get(response["Location"]).json()
    assert op["status"] == "succeeded", op
    # test:/// cannot hot-plug: the disk is in the persistent definition, and the log says when it appears.
    assert (op["result"]["target"], op["result"]["live"], op["result"]["persistent"]) == ("vdb", False, True)
    assert any("appears at its next start" in entry["message"] for entry in op["log"])
    disk = VirtualDisk.objects.get(vm=vm, target="vdb")
    assert (disk.source, disk.bus, disk.persistent) == (f"{IMAGES}/app-01-data1.qcow2", "virtio", True)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"size_gib": 1, "size_bytes": GiB}, "size_gib", "Give size_bytes or size_gib, not both."),
        ({"size_bytes": 1}, "size_bytes", "Between 1.0 MiB and 64.0 TiB."),
        ({"size_gib": 0}, "size_gib", "Between 1.0 MiB and 64.0 TiB."),
        ({"vm": 987654, "size_gib": 1}, "vm", "No VM with id 987654."),
        ({"pool": 987654, "size_gib": 1}, "pool", "No storage pool with id 987654."),
        ({"pool": "lvm", "size_gib": 1}, "pool", "Storage pool lvm is a logical pool"),
        ({"pool": None, "size_gib": 1}, "pool", "Choose the pool for the new volume."),
        ({"bus": "ide", "size_gib": 1}, "bus", '"ide" is not a valid choice.'),
        ({"name": "bad name", "size_gib": 1}, "name", "Not a valid volume name"),
        ({"name": "app-01.qcow2", "size_gib": 1}, "name", "Pool images already has a volume named 'app-01.qcow2'."),
        ({"volume": "app-01.qcow2"}, "volume", "/var/lib/vom-images/app-01.qcow2 is already attached to VM 'app-01'"),
        ({"volume": "shared.img", "size_gib": 1}, "volume", "Give an existing volume or a new one's pool, size_bytes"),
    ],
)
def test_data_disk_field_errors(operator_api, kvm, body, field, reason):
    data = {"vm": _vm(kvm, "golden-vm").pk, "pool": _pool(kvm, "images").pk, **body}
    if data["pool"] == "lvm":
        data["pool"] = _pool(kvm, "lvm").pk
    if isinstance(data.get("volume"), str):
        data["volume"] = _volume(kvm, data["volume"]).pk
        if "size_gib" not in body:
            data.pop("pool")
    response = operator_api.post(reverse("api:datadisk-list"), data, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()[field][0].startswith(reason), response.json()
    assert _no_work()


def test_a_data_disk_pool_on_another_host_is_refused(operator_api, kvm):
    pool = _other_provider_pool()
    body = {"vm": _vm(kvm, "golden-vm").pk, "pool": pool.pk, "size_gib": 1}
    response = operator_api.post(reverse("api:datadisk-list"), body, format="json")
    assert response.status_code == 400
    assert response.json()["pool"] == [f"Pool {pool.name} is on another host than VM 'golden-vm'."]


def test_a_vm_with_an_operation_in_progress_is_refused_with_409(operator_api, kvm):
    vm = _vm(kvm, "golden-vm")
    holder = lifecycle.create("vm_start", target=vm, lock=f"vm:{vm.pk}")
    body = {"vm": vm.pk, "pool": _pool(kvm, "images").pk, "size_gib": 1}
    added = operator_api.post(reverse("api:datadisk-list"), body, format="json")
    disk = VirtualDisk.objects.get(vm=vm, target="vda")
    resized = operator_api.post(reverse("api:diskresize-list"), {"disk": disk.pk, "size_gib": 20}, format="json")
    for response in (added, resized):
        assert response.status_code == 409
        assert response.json() == {
            "detail": f"VM 'golden-vm' already has an operation in progress: Start (#{holder.pk})"
        }
    assert list(Job.objects.exclude(kind="discovery")) == [holder]


def test_a_removed_vm_is_refused_with_409(operator_api, kvm):
    vm = _vm(kvm, "golden-vm")
    VirtualMachine.objects.filter(pk=vm.pk).update(removed_at="2026-01-01T00:00:00Z")
    body = {"vm": vm.pk, "pool": _pool(kvm, "images").pk, "size_gib": 1}
    response = operator_api.post(reverse("api:datadisk-list"), body, format="json")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("VM 'golden-vm' was removed on 2026-01-01")


def test_resizing_a_virtio_disk_of_a_running_vm_is_refused_with_the_reason(operator_api, kvm):
    disk = VirtualDisk.objects.get(vm=_vm(kvm, "app-01"), target="vda")
    assert disk.bus == "virtio"
    response = operator_api.post(reverse("api:diskresize-list"), {"disk": disk.pk, "size_gib": 20}, format="json")
    assert response.status_code == 400
    (reason,) = response.json()["disk"]
    assert "vda is a virtio disk and VM 'app-01' is running" in reason and "no online resize" in reason
    assert _no_work()


def test_growing_a_shut_off_vm_s_disk_is_queued_and_its_outcome_recorded(
    operator_api, kvm, django_capture_on_commit_callbacks
):
    vm = _vm(kvm, "golden-vm")
    disk = VirtualDisk.objects.get(vm=vm, target="vda")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(
            reverse("api:diskresize-list"), {"vm": vm.pk, "disk": disk.pk, "size_bytes": 12 * GiB}, format="json"
        )
    assert response.status_code == 202, response.json()
    assert response["Location"].endswith(reverse("api:job-detail", args=[response.json()["id"]]))
    op = operator_api.get(response["Location"]).json()
    assert (op["kind"], op["target"]["id"], op["params"]["target"], op["params"]["size_bytes"]) == (
        "disk_resize",
        vm.pk,
        "vda",
        12 * GiB,
    )
    # libvirt's test:/// driver has no virStorageVolResize: the operation fails and says why.
    assert op["status"] == "failed"
    assert "not supported by the connection driver: virStorageVolResize" in op["error"]
    assert _volume(kvm, "golden.qcow2").capacity_bytes == 10 * GiB


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"size_bytes": 5 * GiB}, "size_bytes", "vda is 10.0 GiB: give a larger size"),
        ({"size_gib": 5}, "size_gib", "vda is 10.0 GiB: give a larger size"),
        ({}, "size_gib", "Give the size: size_bytes or size_gib."),
        ({"disk": 987654, "size_gib": 20}, "disk", "No disk with id 987654."),
        ({"vm": "app-01", "size_gib": 20}, "disk", "vda is not a disk of VM 'app-01'."),
    ],
)
def test_disk_resize_field_errors(operator_api, kvm, body, field, reason):
    data = {"disk": VirtualDisk.objects.get(vm=_vm(kvm, "golden-vm"), target="vda").pk, **body}
    if data.get("vm") == "app-01":
        data["vm"] = _vm(kvm, "app-01").pk
    response = operator_api.post(reverse("api:diskresize-list"), data, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()[field][0].startswith(reason), response.json()


def test_a_volume_is_cloned_space_optimized(operator_api, kvm, django_capture_on_commit_callbacks):
    source = _volume(kvm, "golden.qcow2")
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(
            reverse("api:volumeclone-list"),
            {"volume": source.pk, "name": "child.qcow2", "mode": "space_optimized"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    assert response["Location"].endswith(reverse("api:job-detail", args=[response.json()["id"]]))
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.kind, job.status, job.target, job.trigger) == ("volume_clone", "succeeded", source, "api")
    clone = _volume(kvm, "child.qcow2")
    assert (clone.pool, clone.backing_store, clone.format) == (source.pool, GOLDEN_PATH, "qcow2")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"name": "app-01.qcow2"}, "name", "Pool images already has a volume named 'app-01.qcow2'."),
        ({"name": "../escape"}, "name", "Not a valid volume name"),
        ({"pool": "lvm", "mode": "space_optimized"}, "pool", "Storage pool lvm is a logical pool"),
        ({"volume": 987654}, "volume", "No volume with id 987654."),
        ({"mode": "thin"}, "mode", '"thin" is not a valid choice.'),
    ],
)
def test_volume_clone_field_errors(operator_api, kvm, body, field, reason):
    data = {"volume": _volume(kvm, "golden.qcow2").pk, "name": "copy.qcow2", **body}
    if data.get("pool") == "lvm":
        data["pool"] = _pool(kvm, "lvm").pk
    response = operator_api.post(reverse("api:volumeclone-list"), data, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()[field][0].startswith(reason), response.json()
    assert _no_work()


def test_viewer_cannot_add_resize_or_clone(viewer_api, kvm):
    vm = _vm(kvm, "golden-vm")
    disk = VirtualDisk.objects.get(vm=vm, target="vda")
    responses = [
        viewer_api.post(reverse("api:datadisk-list"), {"vm": vm.pk, "pool": _pool(kvm, "images").pk, "size_gib": 1}),
        viewer_api.post(reverse("api:diskresize-list"), {"disk": disk.pk, "size_gib": 20}),
        viewer_api.post(reverse("api:volumeclone-list"), {"volume": _volume(kvm, "golden.qcow2").pk, "name": "c"}),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert all("operator" in r.json()["detail"] for r in responses)
    assert _no_work()
    for name in ("datadisk", "diskresize", "volumeclone"):
        assert viewer_api.get(reverse(f"api:{name}-list")).json()["count"] == 0


# --- a new VM from a pool volume ---------------------------------------------------------------------


def _vm_from_volume(api, kvm, **body):
    data = {
        "volume": _volume(kvm, "old-web.qcow2").pk,
        "template_vm": _vm(kvm, "app-01").pk,
        "name": "web-new",
        **body,
    }
    return api.post(reverse("api:vmfromvolume-list"), data, format="json")


def test_a_vm_is_provisioned_from_a_pool_volume(operator_api, golden, kvm, django_capture_on_commit_callbacks):
    assert _provision(operator_api, golden, count=1).status_code == 202  # from the image: not listed below
    source = _volume(kvm, "old-web.qcow2")
    with django_capture_on_commit_callbacks(execute=True):
        response = _vm_from_volume(operator_api, kvm, mode="space_optimized", vcpus=2, network="default", start=True)
    assert response.status_code == 202, response.json()
    queued = response.json()
    assert (queued["status"], queued["requested_by"], queued["from_golden_image"]) == ("pending", "oscar", False)
    assert (queued["golden_image"], queued["golden_image_name"], queued["source_path"]) == (
        None,
        "old-web.qcow2",
        source.path,
    )
    assert [vm["name"] for vm in queued["vms"]] == ["web-new"] and queued["pool_name"] == "images"
    assert response["Location"].endswith(reverse("api:provisioningrequest-detail", args=[queued["id"]]))

    detail = operator_api.get(response["Location"]).json()
    assert (detail["status"], detail["done"], detail["failed"]) == ("succeeded", 1, 0), detail["error"]
    assert (detail["vcpus"], detail["memory_bytes"]) == (2, 1024**3)  # memory: app-01's
    vm = _vm(kvm, "web-new")
    (row,) = detail["vms"]
    assert (row["vm"], row["volume_path"]) == (vm.pk, f"{IMAGES}/web-new.qcow2")
    assert vm.state == "running" and vm.uuid != _vm(kvm, "app-01").uuid
    boot = _volume(kvm, "web-new.qcow2")
    assert (boot.path, boot.backing_store, boot.format) == (f"{IMAGES}/web-new.qcow2", source.path, "qcow2")
    assert VirtualDisk.objects.filter(vm=vm, source=boot.path).exists()

    listed = operator_api.get(reverse("api:vmfromvolume-list")).json()
    assert [r["id"] for r in listed["results"]] == [queued["id"]]
    assert operator_api.get(reverse("api:vmfromvolume-list"), {"status": "pending"}).json()["count"] == 0


def test_a_volume_in_use_by_a_running_vm_is_refused_on_the_volume(operator_api, kvm):
    response = _vm_from_volume(operator_api, kvm, volume=_volume(kvm, "app-01.qcow2").pk)
    assert response.status_code == 400
    assert response.json() == {"volume": ["app-01.qcow2 is in use by VM 'app-01', which is running."]}
    assert _no_work()


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"volume": 987654}, "volume", "No volume with id 987654."),
        ({"template_vm": 987654}, "template_vm", "No VM with id 987654."),
        ({"template_vm": None}, "template_vm", "This field may not be null."),
        ({"name": "a b"}, "name", "'a b' is not a valid VM name"),
        ({"name": "web-{n}"}, "name", "'web-{n}' is not a valid VM name"),
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "app-01"}, "name", "Already in use on this host: app-01."),
        ({"name": "golden"}, "name", "Volumes already in pool images: golden.qcow2."),
        ({"mode": "thin"}, "mode", '"thin" is not a valid choice.'),
        ({"pool": "lvm"}, "pool", "Storage pool lvm is a logical pool: use a directory or file-system pool."),
        ({"pool": 987654}, "pool", "No storage pool with id 987654."),
        ({"host": 987654}, "host", "No host with id 987654."),
        ({"network": "nowhere"}, "network", "No network 'nowhere' is known on this host."),
        ({"network": "default", "bridge": "br0"}, "bridge", "Give a network or a bridge, not both."),
        ({"memory_mib": 16}, "memory_mib", "At least 64 MiB."),
        ({"vcpus": 0}, "vcpus", "Between 1 and 512."),
    ],
)
def test_vm_from_volume_field_errors(operator_api, kvm, body, field, reason):
    if body.get("pool") == "lvm":
        body["pool"] = _pool(kvm, "lvm").pk
    response = _vm_from_volume(operator_api, kvm, **body)
    assert response.status_code == 400, response.json()
    assert response.json()[field][0].startswith(reason), response.json()
    assert _no_work()


def test_a_template_vm_of_another_provider_is_refused(operator_api, kvm):
    other = _other_provider_pool().provider
    vm = VirtualMachine.objects.filter(provider=other).first()
    response = _vm_from_volume(operator_api, kvm, template_vm=vm.pk)
    assert response.status_code == 400
    assert response.json()["template_vm"] == [f"VM {vm.name!r} is not a present VM on kvm-prov."]


def test_a_volume_of_another_platform_is_refused_with_409(operator_api, db):
    rhev = make_provider("rhev-m", uri="https://rhevm.example.com/ovirt-engine/api", kind="rhev")
    pool = StoragePool.objects.create(provider=rhev, uuid="sd-1", name="data1", type="data", active=True)
    volume = StorageVolume.objects.create(pool=pool, name="disk-1", key="disk-1", path="/rhev/disk-1")
    vm = VirtualMachine.objects.create(provider=rhev, uuid="rhev-vm-1", name="rhev-vm", state="down")
    response = operator_api.post(
        reverse("api:vmfromvolume-list"), {"volume": volume.pk, "template_vm": vm.pk, "name": "x"}, format="json"
    )
    assert response.status_code == 409
    assert "provisioning from this console works on KVM (libvirt) providers" in response.json()["detail"]
    assert not ProvisioningRequest.objects.exists()


def test_viewer_cannot_provision_from_a_volume(viewer_api, kvm):
    response = _vm_from_volume(viewer_api, kvm)
    assert response.status_code == 403 and "operator" in response.json()["detail"]
    assert viewer_api.get(reverse("api:vmfromvolume-list")).json()["count"] == 0
    assert not ProvisioningRequest.objects.exists()


def test_the_schema_documents_the_provisioning_endpoints(viewer_api):
    schema = viewer_api.get(reverse("api:schema"), {"format": "json"}).json()
    paths = schema["paths"]
    # 503 (the task queue is down) is the one answer these may add: tests/api/test_schema.py wants it.
    queueing = {"202", "400", "409"}
    assert queueing <= set(paths["/api/golden-images/{id}/provision/"]["post"]["responses"]) <= queueing | {"503"}
    assert set(paths["/api/golden-images/"]["post"]["responses"]) == {"201", "400", "409"}
    for path in ("/api/data-disks/", "/api/disk-resizes/", "/api/volume-clones/", "/api/vms-from-volume/"):
        assert queueing <= set(paths[path]["post"]["responses"]) <= queueing | {"503"}, path
    assert "get" in paths["/api/vms-from-volume/"]
    for path in (
        "/api/golden-images/{id}/savings/",
        "/api/provisioning-requests/{id}/",
        "/api/storage-savings/",
        "/api/storage-savings/{id}/",
    ):
        assert "get" in paths[path], path
    body = schema["components"]["schemas"]["Provision"]["properties"]
    assert {"count", "name_pattern", "first_number", "mode", "pool", "host", "network", "bridge", "start"} <= set(body)
    body = schema["components"]["schemas"]["VMFromVolume"]["properties"]
    assert set(body) == {
        "volume",
        "template_vm",
        "name",
        "mode",
        "pool",
        "host",
        "vcpus",
        "memory_mib",
        "network",
        "bridge",
        "start",
    }


def test_provisioned_vm_rows_are_stored_per_vm(operator_api, golden):
    """A queued request writes one row per VM before anything is made (the rows the worker resumes from)."""
    response = _provision(operator_api, golden, count=2, name_pattern="row-{n}", first_number=7)
    rows = ProvisionedVM.objects.filter(request_id=response.json()["id"]).select_related("job").order_by("index")
    assert [(r.index, r.name, r.status, r.phase, r.volume_name) for r in rows] == [
        (0, "row-7", "pending", "waiting", "row-7.qcow2"),
        (1, "row-8", "pending", "waiting", "row-8.qcow2"),
    ]
    # Each with its own job, a child of the request's, run by the request's worker (never queued alone).
    request = ProvisioningRequest.objects.get(pk=response.json()["id"])
    assert [(r.job.kind, r.job.parent_id, r.job.position, r.job.inline, r.job.status) for r in rows] == [
        ("provision_vm", request.job_id, 0, True, "pending"),
        ("provision_vm", request.job_id, 1, True, "pending"),
    ]
    assert [vm["job"] for vm in response.json()["vms"]] == [r.job_id for r in rows]


def test_cancelling_a_request_through_the_api(operator_api, viewer_api, golden, django_capture_on_commit_callbacks):
    from provisioning.services.requests import request_provisioning

    with django_capture_on_commit_callbacks(execute=False):  # queued: its task not sent
        request = request_provisioning(
            golden_image=golden, user=None, count=2, name_pattern="app-{n}", mode="space_optimized",
            pool=_pool(golden.provider, "images"),
        )  # fmt: skip
    url = reverse("api:provisioningrequest-cancel", args=[request.pk])
    assert viewer_api.post(url).status_code == 403
    assert Job.objects.get(pk=request.job_id).status == Job.Status.PENDING

    response = operator_api.post(url)
    assert response.status_code == 202, response.content
    assert response["Location"].endswith(reverse("api:provisioningrequest-detail", args=[request.pk]))
    body = response.json()
    # Changed: a queued request cancelled ends "cancelled" (the job core's word), no longer "failed".
    assert (body["status"], body["done"], body["failed"], body["cancelled"]) == ("cancelled", 0, 0, 2)
    assert body["error"] == "cancelled by oscar before it started"
    assert body["cancelled_by"] == "oscar"
    assert body["cancel_requested"] is not None
    assert [vm["status"] for vm in body["vms"]] == ["cancelled", "cancelled"]

    again = operator_api.post(url)
    assert again.status_code == 409
    assert again.json() == {"detail": f"request #{request.pk} has already ended (cancelled)"}


def test_cancelling_a_running_request_through_the_api_and_filtering(
    operator_api, golden, django_capture_on_commit_callbacks
):
    from provisioning.services.requests import request_provisioning

    with django_capture_on_commit_callbacks(execute=False):
        request = request_provisioning(
            golden_image=golden, user=None, count=2, name_pattern="app-{n}", mode="space_optimized",
            pool=_pool(golden.provider, "images"),
        )  # fmt: skip
    assert lifecycle.claim(request.job_id, 0) is not None  # a worker has it
    url = reverse("api:provisioningrequest-cancel", args=[request.pk])
    response = operator_api.post(url)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["cancelled"], body["cancelled_by"]) == ("running", 0, "oscar")
    assert body["cancel_requested"] is not None  # the worker cancels the waiting VMs before its next one
    again = operator_api.post(url)
    assert again.status_code == 409 and "was already asked for at" in again.json()["detail"]
    listing = reverse("api:provisioningrequest-list")
    assert [r["id"] for r in operator_api.get(listing, {"cancelled": "true"}).json()["results"]] == [request.pk]
    assert operator_api.get(listing, {"cancelled": "false"}).json()["results"] == []
