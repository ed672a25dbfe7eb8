"""The GUI across platforms: provider form per kind, manager facts and environment check on the provider
page, RHEV and Hyper-V facts on VM/host pages, migrate, and the lists."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from inventory.models import Host, Provider, VirtualMachine
from tests.factories import make_inventory, make_provider
from tests.inventory.platform_data import make_hyperv, make_rhev, self_signed_pem
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

SECRET = "Rhev-S3cret-pw"


def _post(**fields):
    return {"name": "rhevm", "kind": "rhev", "discovery_interval": 300, "enabled": "on", **fields}


def _errors(response) -> dict[str, list[str]]:
    form = response.context["form"]
    return {field: list(errors) for field, errors in form.errors.items()}


# --- provider form --------------------------------------------------------------------------------


def test_add_form_has_a_fieldset_per_kind_and_wording_per_kind(admin_client):
    html = admin_client.get(reverse("provider-add")).content.decode()
    assert 'data-kind-fields="rhev"' in html and 'data-kind-fields="hyperv"' in html
    # libvirt is the initial kind: the other kinds' fieldsets start hidden.
    assert re.search(r'data-kind-fields="rhev"\s+hidden', html)
    assert "libvirt URI" in html
    assert "Manager URL" in html and "Hyper-V host name" in html  # in the JSON the JS applies
    for name in ("ca_certificate", "insecure", "cluster_filter", "winrm_auth", "use_https", "port", "cert_validation"):
        assert f'name="{name}"' in html


def test_add_rhev_provider_through_the_form(admin_client):
    pem = self_signed_pem()
    response = admin_client.post(
        reverse("provider-add"),
        _post(
            uri="https://rhevm.example/ovirt-engine/api",
            username="admin@internal",
            password=SECRET,
            ca_certificate=pem,
            cluster_filter="prod-cl",
            # Another kind's fields posted along are ignored.
            winrm_auth="basic",
            port="99999",
        ),
    )
    provider = Provider.objects.get(name="rhevm")
    assert response.status_code == 302 and response["Location"] == provider.get_absolute_url()
    assert provider.kind == "rhev" and provider.ca_certificate.strip() == pem.strip()
    assert provider.cluster_filter == "prod-cl" and provider.insecure is False
    assert provider.winrm_auth == Provider.WinRMAuth.NEGOTIATE and provider.port is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "admin", "password": SECRET}, "username"),  # no @domain
        ({"username": "admin@internal", "password": SECRET, "ca_certificate": "not a PEM"}, "ca_certificate"),
        ({"username": "admin@internal"}, "password"),  # the manager needs one
        ({"username": "admin@internal", "password": SECRET, "uri": "ftp://rhevm"}, "uri"),
    ],
)
def test_bad_rhev_input_gives_field_errors_and_creates_nothing(admin_client, fields, field):
    body = _post(**{"uri": "https://rhevm.example/ovirt-engine/api", **fields})
    response = admin_client.post(reverse("provider-add"), body)
    assert response.status_code == 200
    assert field in _errors(response), _errors(response)
    assert not Provider.objects.exists()
    assert SECRET not in response.content.decode()  # the password is never rendered back
    # The page comes back on the posted kind: its fieldset visible, the URI named the manager's way.
    html = response.content.decode()
    assert not re.search(r'data-kind-fields="rhev"\s+hidden', html)
    assert "Manager URL" in html.split('name="uri"')[0]


def test_add_hyperv_provider_through_the_form(admin_client):
    response = admin_client.post(
        reverse("provider-add"),
        _post(
            name="hv01",
            kind="hyperv",
            uri="hv01.corp.local",
            username="CORP\\svc-vom",
            password=SECRET,
            winrm_auth="kerberos",
            use_https="on",
            port="15986",
            ca_certificate="ignored for Hyper-V",
        ),
    )
    assert response.status_code == 302
    provider = Provider.objects.get(name="hv01")
    assert provider.winrm_auth == "kerberos" and provider.use_https is True and provider.port == 15986
    assert provider.cert_validation is False  # an unticked box
    assert provider.ca_certificate == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"winrm_auth": "basic"}, "winrm_auth"),  # Basic over HTTP (use_https unticked)
        ({"winrm_auth": "ntlm", "use_https": "on", "port": "70000"}, "port"),
        ({"winrm_auth": "digest", "use_https": "on"}, "winrm_auth"),
        ({"winrm_auth": "ntlm", "use_https": "on", "uri": "https://hv01/wsman"}, "uri"),
    ],
)
def test_bad_hyperv_input_gives_field_errors_and_creates_nothing(admin_client, fields, field):
    base = {"name": "hv01", "kind": "hyperv", "uri": "hv01.corp.local", "username": "CORP\\vom", "password": SECRET}
    body = _post(**{**base, **fields})
    response = admin_client.post(reverse("provider-add"), body)
    assert response.status_code == 200
    assert field in _errors(response), _errors(response)
    assert not Provider.objects.exists()


def test_hyperv_needs_a_user_and_password(admin_client):
    body = _post(name="hv01", kind="hyperv", uri="hv01.corp.local", winrm_auth="ntlm", use_https="on")
    response = admin_client.post(reverse("provider-add"), body)
    assert "username" in _errors(response)
    assert not Provider.objects.exists()


def test_edit_shows_only_the_providers_own_settings_and_keeps_the_kind(admin_client):
    provider = make_rhev()
    html = admin_client.get(reverse("provider-edit", args=[provider.pk])).content.decode()
    assert 'name="kind"' not in html and "cannot be changed" in html
    assert 'name="cluster_filter"' in html and 'value="prod-cl"' in html
    assert 'name="winrm_auth"' not in html
    response = admin_client.post(
        reverse("provider-edit", args=[provider.pk]),
        {
            "name": provider.name,
            "uri": provider.uri,
            "username": "admin@internal",
            "password": SECRET,
            "discovery_interval": 600,
            "cluster_filter": "",
            "kind": "hyperv",  # not a field of the edit form: ignored
        },
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.kind == "rhev" and provider.cluster_filter == "" and provider.insecure is False


def test_edit_maps_service_errors_onto_the_kinds_fields(admin_client):
    provider = make_rhev()
    response = admin_client.post(
        reverse("provider-edit", args=[provider.pk]),
        {
            "name": provider.name,
            "uri": provider.uri,
            "username": "admin",
            "password": SECRET,
            "discovery_interval": 300,
            "ca_certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
        },
    )
    errors = _errors(response)
    assert "username" in errors and "ca_certificate" in errors
    provider.refresh_from_db()
    assert provider.username == "admin@internal" and provider.ca_certificate == ""


# --- provider page --------------------------------------------------------------------------------


def test_rhev_provider_page_shows_settings_manager_facts_and_check(viewer_client):
    provider = make_rhev()
    Provider.objects.filter(pk=provider.pk).update(ca_certificate=self_signed_pem())
    html = viewer_client.get(provider.get_absolute_url()).content.decode()
    assert "CA certificate</dt><dd>set" in html and "BEGIN CERTIFICATE" not in html
    assert "insecure" in html and "prod-cl" in html
    assert "oVirt Engine" in html and "4.5.6-1.el9" in html
    assert "Default-DC" in html and "Intel Cascadelake" in html and "rhel9-golden" in html and "RHEL 9 base" in html
    assert "Environment check" in html and "not checked" in html
    # db01 has the manager's HA on: the sync marked it, and the provider page names it.
    assert "1 VM fails the check" in html and ">db01<" in html
    assert "Check environment" not in html  # a viewer gets no button


def test_provider_page_shows_a_failed_check_and_the_running_check(operator_client, operator_user):
    provider = make_rhev()
    Provider.objects.filter(pk=provider.pk).update(
        check_ok=False, check_message="SSO error: wrong user or password", checked_at="2026-11-01T00:00:00Z"
    )
    check = lifecycle.create("environment_check", target=provider, lock=f"check:provider:{provider.pk}")
    Job.objects.filter(pk=check.pk).update(status=Job.Status.RUNNING, progress=40, message="checking VMs")
    html = operator_client.get(provider.get_absolute_url()).content.decode()
    assert "SSO error: wrong user or password" in html and "failed" in html
    assert "checking VMs" in html and "data-active" in html
    assert "Check environment" in html
    fragment = operator_client.get(provider.get_absolute_url() + "?fragment=overview").content.decode()
    assert "checking VMs" in fragment


def test_check_environment_queues_one_operation(operator_client, operator_user, django_capture_on_commit_callbacks):
    provider = make_rhev()
    url = reverse("provider-check", args=[provider.pk])
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_client.post(url)
    assert response.status_code == 302
    job = Job.objects.get(kind="environment_check")
    assert job.target == provider and job.requested_by == operator_user and job.status == "pending"
    assert job.trigger == "gui"
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_client.post(url, follow=True)
    assert f"an environment check of {provider.name} is already in progress" in response.content.decode().lower()
    assert Job.objects.filter(kind="environment_check").count() == 1


def test_viewer_cannot_check_or_migrate(viewer_client):
    provider = make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    assert viewer_client.post(reverse("provider-check", args=[provider.pk])).status_code == 403
    assert viewer_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "vm_migrate"}).status_code == 403
    assert viewer_client.get(reverse("provider-check", args=[provider.pk])).status_code in (403, 405)
    assert not Job.objects.exists()


def test_hyperv_provider_page_shows_winrm_settings(viewer_client):
    provider = make_hyperv()
    html = viewer_client.get(provider.get_absolute_url()).content.decode()
    assert "HTTPS, port 5986" in html and "NTLM" in html and "validated" in html


# --- VM pages -------------------------------------------------------------------------------------


def test_rhev_vm_page_shows_platform_facts_and_disks(viewer_client):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    html = viewer_client.get(vm.get_absolute_url()).content.decode()
    for text in ("Default-DC", "prod-cl", "rhel9-golden", "rhel_9x64", "High availability", "disabled"):
        assert text in html, text
    assert "Environment check" in html and "passed" in html and "check-warning" not in html
    # Disks: storage domain, format and allocation, sizes, LUN ids.
    assert "data-nfs" in html and "cow, thin (sparse)" in html and "7.0 GiB actual of 50.0 GiB" in html
    assert "36001405aaaabbbbcccc" in html and "raw, preallocated" in html
    assert "ovirtmgmt on ovirtmgmt" in html and "plugged, up" in html
    # A key without a label is still shown, in the generic table.
    assert "placement_affinity" in html and "migratable" in html
    # RHEV snapshots are not managed from here.
    assert "Create snapshot" not in html


def test_rhev_vm_with_manager_ha_shows_a_clear_warning(viewer_client):
    make_rhev()
    vm = VirtualMachine.objects.get(name="db01")
    assert vm.check_ok is False
    html = viewer_client.get(vm.get_absolute_url()).content.decode()
    assert 'id="check-warning"' in html and "Environment check failed" in html
    assert "high availability is enabled" in html
    assert "enabled (priority 50)" in html


def test_hyperv_vm_page_shows_generation_memory_and_disk_kinds(viewer_client):
    make_hyperv()
    vm = VirtualMachine.objects.get(name="app01")
    html = viewer_client.get(vm.get_absolute_url()).content.decode()
    for text in (
        "Generation",
        "OkApplicationsHealthy",
        "3 d 4 h 05 min",
        "Clustered",
        "Line-of-business app",
        "startup 4.0 GiB, assigned 6.0 GiB; dynamic 2.0 GiB – 16.0 GiB",
        "vhdx differencing",
        "2.0 GiB on disk of 127 GiB",
        "app01.vhdx",  # parent
        "C:\\ClusterStorage\\Volume1\\",  # host volume
        "host disk 3",  # pass-through
        "10.1.2.3",
        "replication_mode",
    ):
        assert text in html, text
    assert "check-warning" not in html
    assert "before-patch" in html


def test_migrate_form_lists_the_other_hosts_of_the_provider(operator_client):
    make_rhev()
    make_inventory(make_provider("kvm-other"))
    vm = VirtualMachine.objects.get(name="web01")
    html = operator_client.get(vm.get_absolute_url()).content.decode()
    select = html.split('name="host"')[1].split("</select>")[0]
    assert "Let the manager choose" in select
    assert "rhvh02.example" in select and "rhvh01.example" not in select  # the VM runs on rhvh01
    assert "kvm-other" not in select
    # A KVM VM has no migrate form.
    kvm_vm = VirtualMachine.objects.filter(provider__name="kvm-other", state="running").first()
    assert 'value="vm_migrate"' not in operator_client.get(kvm_vm.get_absolute_url()).content.decode()


def test_migrate_queues_the_operation_with_the_chosen_host(operator_client, django_capture_on_commit_callbacks):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    target = Host.objects.get(hostname="rhvh02.example")
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_client.post(
            reverse("vm-action", args=[vm.pk]), {"kind": "vm_migrate", "host": target.pk}, follow=True
        )
    job = Job.objects.get(kind="vm_migrate")
    assert f"Migrate of web01 queued (operation #{job.pk})" in response.content.decode()
    assert job.target == vm and job.params == {"host": target.pk}


def test_migrate_without_host_lets_the_manager_choose(operator_client, django_capture_on_commit_callbacks):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    with django_capture_on_commit_callbacks(execute=False):
        operator_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "vm_migrate", "host": ""})
    assert Job.objects.get(kind="vm_migrate").params == {}


def test_migrate_to_the_current_host_is_refused(operator_client):
    make_rhev()
    vm = VirtualMachine.objects.get(name="web01")
    response = operator_client.post(
        reverse("vm-action", args=[vm.pk]), {"kind": "vm_migrate", "host": vm.host_id}, follow=True
    )
    assert "already runs on rhvh01.example" in response.content.decode()
    assert not Job.objects.exists()


# --- lists and host page --------------------------------------------------------------------------


def test_lists_show_platform_facts(viewer_client):
    make_rhev()
    make_hyperv()
    hosts = viewer_client.get(reverse("host-list")).content.decode()
    assert "cluster prod-cl · Default-DC" in hosts
    pools = viewer_client.get(reverse("pool-list")).content.decode()
    assert "data-nfs" in pools and "iso-nfs" in pools and "nfs · master" in pools
    assert "CSVFS · “CSV-Prod”" in pools
    vms = viewer_client.get(reverse("vm-list") + "?platform=hyperv").content.decode()
    assert "app01" in vms and "web01" not in vms


def test_pages_name_each_providers_platform(viewer_client, admin_client):
    rhev, hyperv = make_rhev(), make_hyperv()
    web01, app01 = VirtualMachine.objects.get(name="web01"), VirtualMachine.objects.get(name="app01")
    badge = '<span class="badge badge-outline">{}</span>'
    pages = {
        reverse("host-list"): [badge.format("RHEV / oVirt"), badge.format("Hyper-V")],
        reverse("pool-list"): [badge.format("RHEV / oVirt"), badge.format("Hyper-V")],
        reverse("vm-list"): ["<td>RHEV / oVirt</td>", "<td>Hyper-V</td>"],
        reverse("provider-list"): ['<td class="nowrap">RHEV / oVirt</td>', '<td class="nowrap">Hyper-V</td>'],
        rhev.get_absolute_url(): ["<dt>Platform</dt><dd>RHEV / oVirt</dd>"],
        web01.get_absolute_url(): ["(RHEV / oVirt)</dd>"],
        app01.get_absolute_url(): ["(Hyper-V)</dd>"],
        Host.objects.get(hostname="rhvh01.example").get_absolute_url(): ["(RHEV / oVirt)</dd>"],
        reverse("provider-edit", args=[hyperv.pk]): ['<div>Hyper-V <span class="small muted">(cannot be changed)'],
    }
    missing = {
        url: [text for text in texts if text not in admin_client.get(url).content.decode()]
        for url, texts in pages.items()
    }
    assert {url: names for url, names in missing.items() if names} == {}


def test_host_page_shows_platform_facts(viewer_client):
    make_rhev()
    make_hyperv()
    html = viewer_client.get(Host.objects.get(hostname="rhvh01.example").get_absolute_url()).content.decode()
    assert "Cluster" in html and "prod-cl" in html and "Default-DC" in html
    html = viewer_client.get(Host.objects.get(hostname="hv01.corp.local").get_absolute_url()).content.decode()
    assert "Windows Server 2022" in html and "computer_name" in html
