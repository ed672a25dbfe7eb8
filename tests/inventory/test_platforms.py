"""RHEV and Hyper-V in the one inventory: provider settings, discovery through the services, state
tables, per-platform operations, live migration and the environment check.

RHEV runs against the shipped simulator of the REST API v4 with the real ovirtsdk4 client.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory import states
from inventory.models import Host, Provider, VirtualDisk, VirtualMachine
from inventory.services import discovery, operations
from inventory.services.operations import Kind
from inventory.services.providers import create_provider, provider_options, update_provider
from vom.jobs.models import Job
from vom.jobs.runner import run_now
from vom.simulators.rhev import VM_STATUSES, demo_inventory, start_simulator

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager():
    url, stop = start_simulator(demo_inventory(seed=7))
    yield url
    stop()


@pytest.fixture
def rhev(manager) -> Provider:
    return create_provider(
        name="rhevm", kind="rhev", uri=manager, username="admin@internal", password="secret", insecure=True
    )


# --- provider settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"uri": "ftp://rhevm/x"}, "uri", "https://"),
        ({"uri": "https://rhevm.example.com/wrong"}, "uri", "/ovirt-engine/api"),
        ({"username": "admin"}, "username", "user@domain"),
        ({"password": ""}, "password", "needs a password"),
        ({"ca_certificate": "not a certificate"}, "ca_certificate", "PEM"),
        ({"cluster_filter": "a\x00b"}, "cluster_filter", "control"),
    ],
)
def test_rhev_provider_bad_input(fields, field, message):
    values = {
        "name": "m",
        "kind": "rhev",
        "uri": "https://rhevm.example.com",
        "username": "admin@internal",
        "password": "pw",
        **fields,
    }
    with pytest.raises(ValidationError) as exc:
        create_provider(**values)
    assert message in " ".join(exc.value.message_dict[field])
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"uri": "https://hv01/wsman"}, "uri", "host name"),
        ({"winrm_auth": "basic", "use_https": False}, "winrm_auth", "only over HTTPS"),
        ({"port": 70000}, "port", "1 to 65535"),
        ({"password": ""}, "username", "a user"),
        ({"uri": "captured:///etc/shadow.json"}, "uri", "only read from"),
    ],
)
def test_hyperv_provider_bad_input(fields, field, message):
    values = {
        "name": "hv",
        "kind": "hyperv",
        "uri": "hv01.corp.local",
        "username": "CORP\\svc",
        "password": "pw",
        **fields,
    }
    with pytest.raises(ValidationError) as exc:
        create_provider(**values)
    assert message in " ".join(exc.value.message_dict[field])
    assert not Provider.objects.exists()


def test_hyperv_provider_options_reach_the_driver(settings):
    settings.VOM_PLATFORM_CONNECT_TIMEOUT, settings.VOM_PLATFORM_READ_TIMEOUT = 7.0, 70.0
    p = create_provider(
        name="hv",
        kind="hyperv",
        uri="10.0.0.5",
        username="svc@corp",
        password="pw",
        winrm_auth="ntlm",
        use_https=False,
        port=5985,
        cert_validation=False,
    )
    # Every platform call is bounded in time: the timeouts of the settings go with the kind's own options.
    assert provider_options(p) == {
        "auth": "ntlm",
        "ssl": False,
        "port": 5985,
        "cert_validation": False,
        "connect_timeout": 7.0,
        "read_timeout": 70.0,
    }
    libvirt = create_provider(name="kvm", uri="test:///default")
    assert provider_options(libvirt) == {"connect_timeout": 7.0, "read_timeout": 70.0}


def test_kind_cannot_change_and_a_refused_edit_changes_nothing(rhev):
    with pytest.raises(ValidationError):
        update_provider(provider=rhev, kind="libvirt")
    with pytest.raises(ValidationError):
        update_provider(provider=rhev, username="nodomain")
    assert rhev.username == "admin@internal"
    rhev.refresh_from_db()
    assert rhev.username == "admin@internal"


# --- discovery -----------------------------------------------------------------------------


def test_rhev_discovery_fills_the_one_inventory(rhev):
    run = discovery.discover_now(provider=rhev)
    assert run.status == Job.Status.SUCCEEDED, run.error
    rhev.refresh_from_db()
    assert {"datacenters", "clusters", "templates", "product"} <= set(rhev.facts)
    assert len(rhev.facts["datacenters"]) == 2 and len(rhev.facts["clusters"]) == 3
    assert Host.objects.filter(provider=rhev).count() == 6
    vms = VirtualMachine.objects.filter(provider=rhev)
    assert vms.count() == 40
    up = vms.filter(raw_state="up").first()
    assert up is not None and up.state == "running" and up.host is not None
    assert {"cluster", "datacenter"} <= set(up.details)
    # The manager's own HA: such VMs fail the check with a clear reason, the others pass.
    ha = vms.filter(details__ha_enabled=True)
    assert ha.exists() and all(vm.check_ok is False and "high availability" in vm.check_message for vm in ha)
    assert vms.filter(details__ha_enabled=False, check_ok=True).exists()
    assert VirtualDisk.objects.filter(vm__provider=rhev, device="lun", source_type="block").exists()


def test_rhev_unchanged_rediscovery_writes_nothing(rhev):
    discovery.discover_now(provider=rhev)
    with CaptureQueriesContext(connection) as ctx:
        run = discovery.discover_now(provider=rhev)
    assert (run.result["added"], run.result["changed"], run.result["removed"]) == (0, 0, 0)
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    # The discovery's own job rows and the provider's "last discovered" are written; nothing else.
    inventory_writes = [
        sql
        for sql in writes
        if not any(table in sql for table in ('"jobs_job"', '"jobs_joblogentry"', '"inventory_provider"'))
    ]
    assert inventory_writes == []
    assert any('"jobs_job"' in sql for sql in writes)  # the filter above excludes what it says


def test_rhev_wrong_password_keeps_the_inventory_stale(rhev):
    discovery.discover_now(provider=rhev)
    update_provider(provider=rhev, password="wrong")
    run = discovery.discover_now(provider=rhev)
    assert run.status == Job.Status.FAILED and not run.retryable
    assert "wrong" not in run.error and run.error
    rhev.refresh_from_db()
    assert rhev.status == Provider.Status.STALE
    assert VirtualMachine.objects.filter(provider=rhev, removed_at__isnull=True).count() == 40


def test_unreachable_manager_is_retryable():
    p = create_provider(
        name="gone", kind="rhev", uri="http://127.0.0.1:9/ovirt-engine/api", username="admin@internal", password="x"
    )
    run = discovery.discover_now(provider=p)
    assert run.status == Job.Status.FAILED and run.retryable


# --- states --------------------------------------------------------------------------------


def test_every_rhev_state_has_a_normalized_state_and_the_documented_resource_state():
    assert set(VM_STATUSES) <= set(states.RHEV_STATES)
    assert len(states.RHEV_STATES) == 15
    assert states.resource_state("rhev", "up") == ("ONLINE", 100)
    assert states.resource_state("rhev", "wait_for_launch") == ("ONLINE", 10)
    assert states.resource_state("rhev", "powering_down") == ("ONLINE", 40)
    assert states.resource_state("rhev", "down") == ("OFFLINE", 0)
    assert states.resource_state("rhev", "migrating") == ("INTENTIONAL OFFLINE", 0)
    assert states.resource_state("rhev", "image_locked") == ("UNKNOWN", 0)


def test_hyperv_and_libvirt_state_tables():
    assert states.normalize("hyperv", "Running") == "running"
    assert states.normalize("hyperv", "RunningCritical") == "running"
    assert states.normalize("hyperv", "Saved") == "suspended"
    assert states.normalize("hyperv", "Off") == "stopped"
    assert states.normalize("hyperv", "SomethingNew") == "unknown"
    assert states.resource_state("hyperv", "RunningCritical") == ("UNKNOWN", 0)
    assert states.resource_state("hyperv", "Saved") == ("INTENTIONAL OFFLINE", 0)
    assert states.resource_state("libvirt", "shutoff", "migrated") == ("INTENTIONAL OFFLINE", 0)
    assert states.resource_state("libvirt", "shutoff", "destroyed") == ("OFFLINE", 0)
    assert states.resource_state("libvirt", "running", "booted") == ("ONLINE", 100)


# --- operations ----------------------------------------------------------------------------


def _run(vm, kind, **params) -> Job:
    vm.refresh_from_db()
    job = operations.request_vm_operation(vm=vm, kind=kind, user=None, params=params)
    return run_now(job.pk)


def _check(provider) -> Job:
    return run_now(operations.request_environment_check(provider=provider, user=None).pk)


def test_rhev_start_stop_and_no_snapshots(rhev):
    discovery.discover_now(provider=rhev)
    down = VirtualMachine.objects.filter(provider=rhev, raw_state="down").first()
    assert Kind.VM_START in operations.allowed_operations(down)
    op = _run(down, Kind.VM_START)
    assert op.status == Job.Status.SUCCEEDED, op.error
    down.refresh_from_db()
    assert down.state == "running" and down.raw_state == "up"
    with pytest.raises(ValidationError, match="cannot be asked to create snapshot"):
        operations.request_vm_operation(vm=down, kind=Kind.SNAPSHOT_CREATE, user=None, params={"snapshot": "x"})
    assert _run(down, Kind.VM_POWER_OFF).status == Job.Status.SUCCEEDED


def test_rhev_live_migration_to_a_chosen_host_and_refusals(rhev):
    discovery.discover_now(provider=rhev)
    vm = VirtualMachine.objects.filter(provider=rhev, raw_state="up").select_related("host").first()
    assert Kind.VM_MIGRATE in operations.allowed_operations(vm)
    cluster = vm.host.details.get("cluster")
    target = (
        Host.objects.filter(provider=rhev, details__cluster=cluster, details__status="up")
        .exclude(pk=vm.host_id)
        .first()
    )
    assert target is not None
    with pytest.raises(ValidationError, match="already runs on"):
        operations.request_vm_operation(vm=vm, kind=Kind.VM_MIGRATE, user=None, params={"host": vm.host_id})
    op = _run(vm, Kind.VM_MIGRATE, host=target.pk)
    assert op.status == Job.Status.SUCCEEDED, op.error
    vm.refresh_from_db()
    assert vm.host_id == target.pk
    discovery.discover_now(provider=rhev)  # the manager agrees
    vm.refresh_from_db()
    assert vm.host_id == target.pk


def test_migrate_is_refused_for_kvm_vms():
    from tests.factories import make_inventory

    provider = make_inventory()
    vm = VirtualMachine.objects.filter(provider=provider, state="running").first()
    assert Kind.VM_MIGRATE not in operations.allowed_operations(vm)
    with pytest.raises(ValidationError, match="cannot be asked to migrate"):
        operations.request_vm_operation(vm=vm, kind=Kind.VM_MIGRATE, user=None)


def test_environment_check_records_the_result_on_provider_and_vms(rhev):
    discovery.discover_now(provider=rhev)
    op = _check(rhev)
    assert (op.kind, op.target, op.lock) == ("environment_check", rhev, f"check:provider:{rhev.pk}")
    rhev.refresh_from_db()
    # Some demo VMs have the manager's own HA on: the check fails and says why.
    assert op.status == Job.Status.FAILED and "high availability" in op.error
    assert rhev.check_ok is False and rhev.checked_at is not None
    assert (
        VirtualMachine.objects.filter(provider=rhev, check_ok=False).count()
        == VirtualMachine.objects.filter(provider=rhev, details__ha_enabled=True, removed_at__isnull=True).count()
    )
    update_provider(provider=rhev, password="wrong")
    op = _check(rhev)
    rhev.refresh_from_db()
    assert op.status == Job.Status.FAILED and rhev.check_ok is False and "wrong" not in rhev.check_message


def test_export_covers_the_manager_facts_and_platform_details(rhev):
    from inventory.services.export import export_inventory

    discovery.discover_now(provider=rhev)
    data = export_inventory()
    (item,) = [p for p in data["providers"] if p["name"] == "rhevm"]
    assert item["kind"] == "rhev" and len(item["facts"]["clusters"]) == 3
    assert all("cluster" in vm["details"] for vm in item["vms"])
    assert "secret" not in str(data)


def test_hyperv_discovery_operations_and_a_broken_output(tmp_path):
    from bench.platforms import hyperv_document
    from vom.simulators.hyperv_replay import forget_replay_hosts

    path = tmp_path / "hv07.json"
    path.write_text(json.dumps(hyperv_document(7, 12)))
    forget_replay_hosts()
    hv = create_provider(name="hv07", kind="hyperv", uri=f"captured://{path}")
    run = discovery.discover_now(provider=hv)
    assert run.status == Job.Status.SUCCEEDED, run.error
    vms = VirtualMachine.objects.filter(provider=hv)
    assert vms.count() == 12
    running = vms.filter(state="running").first()
    assert running.details["generation"] == 2 and running.host.hostname.upper().startswith("HVB07")
    vhd = running.disks.get()
    assert vhd.driver_format == "vhdx" and vhd.backing_chain and vhd.details
    # Hyper-V's "save" is the console's suspend; checkpoints are snapshots.
    assert _run(running, Kind.VM_SUSPEND).status == Job.Status.SUCCEEDED
    running.refresh_from_db()
    assert running.state == "suspended" and running.raw_state == "Saved"
    assert _run(running, Kind.SNAPSHOT_CREATE, snapshot="before patch").status == Job.Status.SUCCEEDED
    discovery.discover_now(provider=hv)
    assert running.snapshots.filter(name="before patch").exists()
    # Malformed output: the discovery fails with the reason, the inventory stays, marked stale.
    path.write_text('{"Host": {"ComputerName": "HVB07"}, "VMs": [')
    run = discovery.discover_now(provider=hv)
    assert run.status == Job.Status.FAILED and "JSON" in run.error
    hv.refresh_from_db()
    assert hv.status == Provider.Status.STALE
    assert VirtualMachine.objects.filter(provider=hv, removed_at__isnull=True).count() == 12
    forget_replay_hosts()


def test_another_kinds_settings_are_refused(rhev):
    with pytest.raises(ValidationError) as exc:
        create_provider(name="k", uri="test:///default", winrm_auth="ntlm")
    assert "Not a setting of libvirt providers" in exc.value.message_dict["winrm_auth"][0]
    with pytest.raises(ValidationError):
        update_provider(provider=rhev, use_https=False)


def test_a_rhev_discovery_sums_up_the_check_on_the_provider(rhev):
    discovery.discover_now(provider=rhev)
    rhev.refresh_from_db()
    failing = VirtualMachine.objects.filter(provider=rhev, check_ok=False).count()
    assert failing and rhev.check_ok is False and f"{failing} VM(s)" in rhev.check_message
    assert rhev.checked_at is not None


def test_a_check_that_cannot_reach_its_host_fails_and_does_not_block_the_next(tmp_path):
    from bench.platforms import hyperv_document
    from vom.simulators.hyperv_replay import forget_replay_hosts

    path = tmp_path / "hv08.json"
    path.write_text(json.dumps(hyperv_document(8, 3)))
    hv = create_provider(name="hv08", kind="hyperv", uri=f"captured://{path}")
    discovery.discover_now(provider=hv)
    path.unlink()
    forget_replay_hosts()
    op = _check(hv)
    assert op.status == Job.Status.FAILED and op.error
    hv.refresh_from_db()
    assert hv.check_ok is False
    second = operations.request_environment_check(provider=hv, user=None)  # not "already in progress"
    assert second.pk != op.pk and second.status == Job.Status.PENDING


def test_a_migration_the_manager_accepted_but_did_not_carry_out_fails(rhev, monkeypatch, settings):
    from inventory.drivers.rhev import RhevDriver

    discovery.discover_now(provider=rhev)
    vm = VirtualMachine.objects.filter(provider=rhev, raw_state="up").first()
    monkeypatch.setattr(RhevDriver, "migrate", lambda self, vm_id, host_id=None: None)  # accepted, nothing moves
    settings.VOM_MIGRATE_TIMEOUT = 2
    host_before = vm.host_id
    op = _run(vm, Kind.VM_MIGRATE)
    assert op.status == Job.Status.FAILED and "did not move" in op.error
    vm.refresh_from_db()
    assert vm.host_id == host_before


@pytest.mark.parametrize("path", ["/ovirt-engine", "/ovirt-engine/", "/ovirt-engine/api", ""])
def test_every_manager_url_the_form_accepts_discovers(manager, path):
    base = manager.removesuffix("/ovirt-engine/api")
    p = create_provider(name="m", kind="rhev", uri=base + path, username="admin@internal", password="secret")
    assert discovery.discover_now(provider=p).status == Job.Status.SUCCEEDED


def test_a_private_key_is_not_a_ca_certificate():
    from tests.inventory.platform_data import self_signed_pem

    key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValidationError) as exc:
        create_provider(
            name="m",
            kind="rhev",
            uri="https://rhevm.example.com",
            username="admin@internal",
            password="pw",
            ca_certificate=self_signed_pem() + key,
        )
    assert "PEM" in exc.value.message_dict["ca_certificate"][0]
    with pytest.raises(ValidationError) as exc:
        create_provider(
            name="m",
            kind="rhev",
            uri="https://rhevm.example.com",
            username="admin@internal",
            password="pw",
            cluster_filter='a" or name=*',
        )
    assert "quotes" in exc.value.message_dict["cluster_filter"][0]


def test_a_check_then_a_discovery_writes_nothing(rhev):
    discovery.discover_now(provider=rhev)
    _check(rhev)
    run = discovery.discover_now(provider=rhev)
    assert run.status == Job.Status.SUCCEEDED
    assert (run.result["added"], run.result["changed"], run.result["removed"]) == (0, 0, 0)


def test_a_file_moved_out_of_the_allowed_dirs_is_not_read_later(tmp_path, settings):
    from bench.platforms import hyperv_document

    allowed = tmp_path / "ok"
    allowed.mkdir()
    path = allowed / "hv09.json"
    path.write_text(json.dumps(hyperv_document(9, 2)))
    settings.VOM_TEST_NODE_DIRS = [str(allowed)]
    hv = create_provider(name="hv09", kind="hyperv", uri=f"captured://{path}")
    settings.VOM_TEST_NODE_DIRS = [str(tmp_path / "elsewhere")]
    run = discovery.discover_now(provider=hv)
    assert run.status == Job.Status.FAILED and "only read from" in run.error
