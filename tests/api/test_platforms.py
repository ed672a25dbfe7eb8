"""The API across platforms: provider settings per kind, manager facts and the environment check,
``details`` on every inventory object, and live migration."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory.models import Host, Provider, VirtualMachine
from tests.factories import make_inventory, make_provider
from tests.inventory.platform_data import make_hyperv, make_rhev, self_signed_pem
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

SECRET = "Rhev-S3cret-pw"


def _create(api, **fields):
    return api.post(reverse("api:provider-list"), fields, format="json")


def test_create_rhev_provider_with_its_settings(admin_api):
    pem = self_signed_pem()
    response = _create(
        admin_api,
        name="rhevm",
        kind="rhev",
        uri="https://rhevm.example/ovirt-engine/api",
        username="admin@internal",
        password=SECRET,
        ca_certificate=pem,
        cluster_filter="prod-cl",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["ca_certificate"].strip() == pem.strip()  # a CA certificate is public
    assert data["cluster_filter"] == "prod-cl" and data["insecure"] is False and data["port"] is None
    assert data["facts"] == {} and data["check_ok"] is None and data["checked_at"] is None
    assert "password" not in data and SECRET not in response.content.decode()


def test_another_platforms_setting_is_refused_not_dropped(admin_api):
    response = _create(
        admin_api,
        name="rhevm",
        kind="rhev",
        uri="https://rhevm.example/ovirt-engine/api",
        username="admin@internal",
        password=SECRET,
        port=5985,
    )
    assert response.status_code == 400 and "Not a setting of rhev providers" in response.json()["port"][0]
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "admin", "password": SECRET}, "username"),
        ({"username": "admin@internal", "password": SECRET, "ca_certificate": "garbage"}, "ca_certificate"),
        ({"username": "admin@internal"}, "password"),
    ],
)
def test_bad_rhev_input_is_400_with_field_errors(admin_api, fields, field):
    response = _create(admin_api, name="rhevm", kind="rhev", uri="https://rhevm.example/ovirt-engine/api", **fields)
    assert response.status_code == 400
    assert field in response.json()
    assert not Provider.objects.exists()


def test_create_hyperv_provider_with_its_settings(admin_api):
    response = _create(
        admin_api,
        name="hv01",
        kind="hyperv",
        uri="hv01.corp.local",
        username="CORP\\svc",
        password=SECRET,
        winrm_auth="credssp",
        use_https=True,
        port=15986,
        cert_validation=False,
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["winrm_auth"], data["use_https"], data["port"], data["cert_validation"]) == (
        "credssp",
        True,
        15986,
        False,
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"winrm_auth": "basic", "use_https": False}, "winrm_auth"),
        ({"winrm_auth": "digest"}, "winrm_auth"),
        ({"port": 70000}, "port"),
    ],
)
def test_bad_hyperv_input_is_400_with_field_errors(admin_api, fields, field):
    body = {"name": "hv01", "kind": "hyperv", "uri": "hv01.corp.local", "username": "CORP\\vom", "password": SECRET}
    response = _create(admin_api, **{**body, **fields})
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Provider.objects.exists()


def test_update_platform_settings_and_kind_stays(admin_api):
    provider = make_rhev()
    url = reverse("api:provider-detail", args=[provider.pk])
    response = admin_api.patch(url, {"insecure": False, "cluster_filter": "", "password": SECRET}, format="json")
    assert response.status_code == 200, response.json()
    provider.refresh_from_db()
    assert provider.insecure is False and provider.cluster_filter == ""
    response = admin_api.patch(url, {"username": "admin"}, format="json")
    assert response.status_code == 400 and "username" in response.json()
    assert admin_api.patch(url, {"kind": "hyperv"}, format="json").status_code == 400


def test_provider_exposes_manager_facts_and_check(viewer_api):
    provider = make_rhev()
    Provider.objects.filter(pk=provider.pk).update(check_ok=False, check_message="db01: HA enabled")
    data = viewer_api.get(reverse("api:provider-detail", args=[provider.pk])).json()
    assert data["facts"]["product"]["version"] == "4.5.6-1.el9"
    assert [c["name"] for c in data["facts"]["clusters"]] == ["prod-cl"]
    assert data["facts"]["templates"][0]["name"] == "rhel9-golden"
    assert data["check_ok"] is False and data["check_message"] == "db01: HA enabled"


def test_check_queues_an_environment_check(operator_api, operator_user, django_capture_on_commit_callbacks):
    provider = make_rhev()
    url = reverse("api:provider-check", args=[provider.pk])
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.post(url)
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == "environment_check" and job.target == provider and job.requested_by == operator_user
    assert job.status == "pending" and job.lock == f"check:provider:{provider.pk}" and job.trigger == "api"
    assert response["Location"].endswith(reverse("api:job-detail", args=[job.pk]))
    with django_capture_on_commit_callbacks(execute=False):
        again = operator_api.post(url)
    assert again.status_code == 409
    assert again.json() == {"detail": f"an environment check of {provider.name} is already in progress"}
    assert Job.objects.count() == 1


def test_viewer_cannot_check_or_migrate(viewer_api):
    provider = make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    assert viewer_api.post(reverse("api:provider-check", args=[provider.pk])).status_code == 403
    assert viewer_api.post(reverse("api:vm-migrate", args=[vm.pk]), {}, format="json").status_code == 403
    assert not Job.objects.exists()


def test_details_on_every_inventory_object(viewer_api):
    make_rhev()
    make_hyperv()
    vm = VirtualMachine.objects.get(name="web01")
    data = viewer_api.get(reverse("api:vm-detail", args=[vm.pk])).json()
    assert data["details"]["cluster"] == "prod-cl" and data["details"]["ha_enabled"] is False
    assert data["check_ok"] is True and data["check_message"] == ""
    assert "vm_migrate" in data["allowed_operations"]
    disk = next(d for d in data["disks"] if d["target"] == "vda")
    assert disk["details"]["storage_domain"] == "data-nfs"
    assert data["nics"][0]["details"]["vnic_profile"] == "ovirtmgmt"
    db01 = viewer_api.get(reverse("api:vm-detail", args=[VirtualMachine.objects.get(name="db01").pk])).json()
    assert db01["check_ok"] is False and "high availability" in db01["check_message"]

    hosts = viewer_api.get(reverse("api:host-list"), {"provider": vm.provider_id}).json()["results"]
    assert {h["details"]["cluster"] for h in hosts} == {"prod-cl"}
    pools = viewer_api.get(reverse("api:pool-list")).json()["results"]
    assert {p["details"].get("domain_type") for p in pools} >= {"data", "iso"}
    networks = viewer_api.get(reverse("api:network-list")).json()["results"]
    assert networks[0]["details"]["datacenter"] == "Default-DC"
    disks = viewer_api.get(reverse("api:disk-list")).json()["results"]
    assert any(d["details"].get("vhd_type") == "Differencing" for d in disks)
    nics = viewer_api.get(reverse("api:nic-list")).json()["results"]
    assert any(n["details"].get("ip_addresses") == ["10.1.2.3", "fe80::1"] for n in nics)
    snapshots = viewer_api.get(reverse("api:snapshot-list")).json()["results"]
    assert snapshots[0]["details"]["type"] == "Standard"
    hv = viewer_api.get(reverse("api:vm-detail", args=[VirtualMachine.objects.get(name="app01").pk])).json()
    assert hv["details"]["generation"] == 2 and "vm_migrate" not in hv["allowed_operations"]


def test_migrate_to_a_host(operator_api, django_capture_on_commit_callbacks):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    target = Host.objects.get(hostname="rhvh02.example")
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.post(reverse("api:vm-migrate", args=[vm.pk]), {"host": target.pk}, format="json")
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == "vm_migrate" and job.target == vm and job.params == {"host": target.pk}


def test_migrate_without_a_host_lets_the_manager_choose(operator_api, django_capture_on_commit_callbacks):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.post(reverse("api:vm-migrate", args=[vm.pk]))
    assert response.status_code == 202
    job = Job.objects.get()
    assert (job.kind, job.target, job.params) == ("vm_migrate", vm, {})


def test_migrate_refusals_are_409(operator_api):
    make_rhev()
    make_inventory(make_provider("kvm-x"))
    vm = VirtualMachine.objects.get(name="web01")
    url = reverse("api:vm-migrate", args=[vm.pk])
    assert operator_api.post(url, {"host": vm.host_id}, format="json").status_code == 409  # already there
    other = Host.objects.get(provider__name="kvm-x")
    refused = operator_api.post(url, {"host": other.pk}, format="json")
    assert refused.status_code == 409 and "no host" in refused.json()["detail"]
    assert operator_api.post(url, {"host": "x"}, format="json").status_code == 400
    kvm_vm = VirtualMachine.objects.filter(provider__name="kvm-x", state="running").first()
    assert operator_api.post(reverse("api:vm-migrate", args=[kvm_vm.pk])).status_code == 409
    assert not Job.objects.exists()
