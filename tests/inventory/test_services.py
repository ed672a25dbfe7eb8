"""Discovery and operation services against the real libvirt test driver (node files written here)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from inventory.models import DiscoveryRun, Operation, Provider, VirtualDisk, VirtualMachine, VMSnapshot
from inventory.services import discovery, operations
from inventory.services.providers import create_provider, provider_credentials, update_provider
from tests.factories import make_user
from vom.simulators.libvirt_node import (
    DiskSpec,
    DomainSpec,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    SnapshotSpec,
    VolumeSpec,
    stable_uuid,
    write_node,
)

pytestmark = pytest.mark.django_db
WEIRD = "a<b&\"c'"


def _node(path: Path, *, extra_vm: bool = False, web_state: RunState = RunState.RUNNING) -> Path:
    pool_path = "/var/lib/libvirt/images"
    domains = [
        DomainSpec(
            name="web-01",
            uuid=stable_uuid("web-01"),
            memory_kib=2 * 1024 * 1024,
            vcpus=2,
            state=web_state,
            disks=[
                DiskSpec(target="vda", source=f"{pool_path}/web-01.qcow2", format="qcow2", cache="none"),
                DiskSpec(
                    target="sda",
                    kind="block",
                    device="lun",
                    bus="scsi",
                    format="raw",
                    source="/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2001-05.com.example:lun-lun-1",
                ),
            ],
            nics=[NicSpec(mac="52:54:00:00:00:01", source="default")],
            snapshots=[SnapshotSpec(name="clean", creation_time=1_700_000_000, current=True)],
        ),
        DomainSpec(name=WEIRD, uuid=stable_uuid("weird"), memory_kib=1024 * 1024, vcpus=1, state=RunState.SHUTOFF),
    ]
    if extra_vm:
        domains.append(DomainSpec(name="db-01", uuid=stable_uuid("db-01"), memory_kib=4 * 1024 * 1024, vcpus=4))
    spec = NodeSpec(
        hostname=path.stem,
        host_uuid=stable_uuid(path.stem),
        domains=domains,
        pools=[
            PoolSpec(
                name="default",
                uuid=stable_uuid("pool"),
                target_path=pool_path,
                volumes=[
                    VolumeSpec(name="web-01.qcow2", capacity_bytes=10 << 30, allocation_bytes=1 << 30, format="qcow2")
                ],
            )
        ],
        networks=[
            NetworkSpec(
                name="default", uuid=stable_uuid("net"), bridge="virbr0", ip="192.168.122.1", netmask="255.255.255.0"
            )
        ],
    )
    write_node(spec, path)
    return path


@pytest.fixture
def node(tmp_path) -> Path:
    return _node(tmp_path / "kvm07.xml")


@pytest.fixture
def provider(node) -> Provider:
    return create_provider(name="kvm07", uri=f"test://{node}")


def test_discovery_records_the_run_and_the_inventory(provider):
    run = discovery.discover_now(provider=provider)
    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert run.started and run.finished and run.duration_ms is not None
    assert run.counts["vm"]["added"] == 2 and run.added > 0
    provider.refresh_from_db()
    assert provider.status == Provider.Status.OK and provider.last_success_at is not None
    web = VirtualMachine.objects.get(provider=provider, name="web-01")
    assert web.host.hostname == "kvm07"
    assert web.state == "running"
    vda = web.disks.get(target="vda")
    assert vda.volume is not None and vda.volume.pool.name == "default"
    assert web.disks.get(target="sda").device == "lun"
    assert VMSnapshot.objects.get(vm=web).name == "clean"
    assert VirtualMachine.objects.get(provider=provider, name=WEIRD).state == "stopped"

    again = discovery.discover_now(provider=provider)
    assert (again.added, again.changed, again.removed) == (0, 0, 0)


def test_unreachable_provider_keeps_inventory_marked_stale(provider, node):
    discovery.discover_now(provider=provider)
    node.unlink()
    run = discovery.discover_now(provider=provider)
    assert run.status == DiscoveryRun.Status.FAILED
    assert "does not exist" in run.error
    provider.refresh_from_db()
    assert provider.status == Provider.Status.STALE and "does not exist" in provider.stale_reason
    assert VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True).count() == 2


def test_vm_gone_is_marked_removed_with_timestamp(tmp_path):
    path = _node(tmp_path / "kvm08.xml", extra_vm=True)
    provider = create_provider(name="kvm08", uri=f"test://{path}")
    discovery.discover_now(provider=provider)
    _node(path)  # db-01 deleted on the host
    run = discovery.discover_now(provider=provider)
    assert run.counts["vm"]["removed"] == 1
    db = VirtualMachine.objects.get(provider=provider, name="db-01")
    assert db.removed_at is not None and db.removed_at <= timezone.now()


def test_two_discoveries_of_one_provider_never_overlap(provider, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = discovery.request_discovery(provider=provider)
        second = discovery.request_discovery(provider=provider)
    assert first.pk == second.pk
    assert len(callbacks) == 1  # one task enqueued
    with pytest.raises(discovery.DiscoveryBusy):
        discovery.discover_now(provider=provider)
    discovery.execute_discovery(first.pk)
    first.refresh_from_db()
    assert first.status == DiscoveryRun.Status.SUCCEEDED
    # A redelivered task for the same run does nothing.
    finished = first.finished
    discovery.execute_discovery(first.pk)
    first.refresh_from_db()
    assert first.finished == finished


def test_abandoned_run_does_not_block_forever(provider, settings):
    stuck = DiscoveryRun.objects.create(provider=provider, status=DiscoveryRun.Status.RUNNING)
    two_hours_ago = timezone.now() - dt.timedelta(hours=2)
    DiscoveryRun.objects.filter(pk=stuck.pk).update(created=two_hours_ago, started=two_hours_ago)
    settings.VOM_DISCOVERY_STALE_AFTER = 3600
    run = discovery.discover_now(provider=provider)
    assert run.status == DiscoveryRun.Status.SUCCEEDED
    stuck.refresh_from_db()
    assert stuck.status == DiscoveryRun.Status.FAILED and "abandoned" in stuck.error


def test_dispatch_queues_only_due_enabled_providers(provider, tmp_path, django_capture_on_commit_callbacks):
    other = create_provider(name="later", uri=f"test://{_node(tmp_path / 'kvm09.xml')}", enabled=True)
    Provider.objects.filter(pk=other.pk).update(last_discovery_at=timezone.now())
    create_provider(name="off", uri=f"test://{_node(tmp_path / 'kvm10.xml')}", enabled=False)
    with django_capture_on_commit_callbacks(execute=False):
        assert discovery.dispatch_due_discoveries() == 1
        assert discovery.dispatch_due_discoveries() == 0  # already queued
    assert list(DiscoveryRun.objects.values_list("provider__name", "trigger")) == [("kvm07", "schedule")]


def test_password_is_encrypted_at_rest_and_kept_on_edit(node):
    p = create_provider(name="secret", uri=f"test://{node}", username="root", password="s3cr3t!")
    raw = Provider.objects.values_list("password_encrypted", flat=True).get(pk=p.pk)
    assert raw and "s3cr3t!" not in raw
    update_provider(provider=p, description="changed")
    assert provider_credentials(p).password == "s3cr3t!"
    update_provider(provider=p, clear_password=True)
    assert provider_credentials(p).password is None


@pytest.mark.parametrize(
    ("uri", "field"),
    [("qemu:///nope", "uri"), ("not a uri", "uri"), ("qemu+ssh:///system", "uri"), ("", "uri")],
)
def test_bad_provider_input_is_refused_with_field_errors(uri, field):
    with pytest.raises(ValidationError) as exc:
        create_provider(name="x", uri=uri)
    assert field in exc.value.message_dict
    assert not Provider.objects.exists()


def test_duplicate_provider_name_refused(node):
    create_provider(name="dup", uri=f"test://{node}")
    with pytest.raises(ValidationError) as exc:
        create_provider(name="dup", uri="test:///default")
    assert "already exists" in exc.value.message_dict["name"][0]
    assert Provider.objects.count() == 1


def _discovered(provider) -> dict[str, VirtualMachine]:
    discovery.discover_now(provider=provider)
    return {vm.name: vm for vm in VirtualMachine.objects.filter(provider=provider)}


def _run(vm, kind, **params) -> Operation:
    vm.refresh_from_db()
    op = operations.request_vm_operation(vm=vm, kind=kind, user=None, params=params)
    return operations.execute_operation(op.pk)


def test_operations_change_state_and_are_logged(provider):
    vms = _discovered(provider)
    web = vms["web-01"]
    op = _run(web, Operation.Kind.VM_SUSPEND)
    assert op.status == Operation.Status.SUCCEEDED and op.progress == 100
    web.refresh_from_db()
    assert web.state == "paused"
    assert [e.message for e in op.log.all()][-1] == "done"
    assert _run(web, Operation.Kind.VM_RESUME).status == Operation.Status.SUCCEEDED
    assert _run(web, Operation.Kind.VM_SHUTDOWN).status == Operation.Status.SUCCEEDED
    web.refresh_from_db()
    assert web.state == "stopped"
    assert _run(web, Operation.Kind.VM_START).status == Operation.Status.SUCCEEDED
    assert _run(web, Operation.Kind.VM_POWER_OFF).status == Operation.Status.SUCCEEDED
    web.refresh_from_db()
    assert web.state == "stopped" and web.raw_state == "shutoff"


def test_snapshot_with_xml_special_characters(provider):
    vms = _discovered(provider)
    weird = vms[WEIRD]
    name = "before <upgrade> & \"'"
    op = _run(weird, Operation.Kind.SNAPSHOT_CREATE, snapshot=name, description="x & y")
    assert op.status == Operation.Status.SUCCEEDED, op.error
    assert VMSnapshot.objects.get(vm=weird, name=name).current
    # The platform agrees: a rediscovery finds the snapshot with its exact name.
    discovery.discover_now(provider=provider)
    assert VMSnapshot.objects.filter(vm=weird, name=name).exists()
    assert _run(weird, Operation.Kind.SNAPSHOT_REVERT, snapshot=name).status == Operation.Status.SUCCEEDED
    assert _run(weird, Operation.Kind.SNAPSHOT_DELETE, snapshot=name).status == Operation.Status.SUCCEEDED
    assert not VMSnapshot.objects.filter(vm=weird, name=name).exists()


def test_refusals_are_clear_and_create_nothing(provider):
    vms = _discovered(provider)
    with pytest.raises(ValidationError, match="it is running"):
        operations.request_vm_operation(vm=vms["web-01"], kind=Operation.Kind.VM_START, user=None)
    with pytest.raises(ValidationError, match="no snapshot named"):
        operations.request_vm_operation(
            vm=vms["web-01"], kind=Operation.Kind.SNAPSHOT_REVERT, user=None, params={"snapshot": "nope"}
        )
    with pytest.raises(ValidationError, match="no '/'"):
        operations.request_vm_operation(
            vm=vms["web-01"], kind=Operation.Kind.SNAPSHOT_CREATE, user=None, params={"snapshot": "a/b"}
        )
    assert not Operation.objects.exists()
    operations.request_vm_operation(vm=vms["web-01"], kind=Operation.Kind.VM_SUSPEND, user=None)
    with pytest.raises(ValidationError, match="already has an operation in progress"):
        operations.request_vm_operation(vm=vms["web-01"], kind=Operation.Kind.VM_POWER_OFF, user=None)


def test_redelivered_operation_is_not_repeated(provider):
    web = _discovered(provider)["web-01"]
    op = operations.request_vm_operation(vm=web, kind=Operation.Kind.VM_SUSPEND, user=make_user("operator"))
    operations.execute_operation(op.pk)
    lines = op.log.count()
    again = operations.execute_operation(op.pk)
    assert again.status == Operation.Status.SUCCEEDED and op.log.count() == lines


def test_operation_on_a_state_changed_behind_our_back_fails_clearly(provider):
    web = _discovered(provider)["web-01"]
    # The inventory thinks web-01 is stopped, but on the host it runs: the driver refuses the start.
    VirtualMachine.objects.filter(pk=web.pk).update(state="stopped")
    web.refresh_from_db()
    op = _run(web, Operation.Kind.VM_START)
    assert op.status == Operation.Status.FAILED
    assert "already running" in op.error
    assert "Traceback" not in op.error


def test_bulk_request_reports_refusals(provider):
    vms = _discovered(provider)
    queued, refused = operations.request_bulk_vm_operation(
        vms=[vms["web-01"], vms[WEIRD]], kind=Operation.Kind.VM_START, user=None
    )
    assert [op.vm for op in queued] == [vms[WEIRD]]
    assert refused[0][0] == vms["web-01"] and "running" in refused[0][1]


def test_non_persistent_disk_flag_reaches_the_database():
    """On test:///default (shared in-process) a redefined running domain has live-only disks."""
    import libvirt

    from vom.simulators.libvirt_node import build_domain_element

    conn = libvirt.open("test:///default")
    uuid = stable_uuid("np-vm")
    spec = DomainSpec(
        name="np-vm",
        uuid=uuid,
        memory_kib=1024 * 1024,
        vcpus=1,
        disks=[DiskSpec(target="vda", source="/img/np-a.qcow2"), DiskSpec(target="vdb", source="/img/np-b.qcow2")],
    )
    import xml.etree.ElementTree as ET

    dom = conn.defineXML(ET.tostring(build_domain_element(spec), encoding="unicode"))
    try:
        dom.create()
        spec.disks.pop()
        conn.defineXML(ET.tostring(build_domain_element(spec), encoding="unicode"))
        provider = create_provider(name="default", uri="test:///default")
        discovery.discover_now(provider=provider)
        disks = {d.target: d.persistent for d in VirtualDisk.objects.filter(vm__uuid=uuid)}
        assert disks == {"vda": True, "vdb": False}
    finally:
        dom.destroy()
        dom.undefine()
        conn.close()


def test_unreachable_broker_fails_the_operation_instead_of_leaving_it_pending(
    provider, settings, django_capture_on_commit_callbacks
):
    from vom.celery import app

    web = _discovered(provider)["web-01"]
    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")
    app._pool = None
    try:
        with django_capture_on_commit_callbacks(execute=True):
            op = operations.request_vm_operation(vm=web, kind=Operation.Kind.VM_SUSPEND, user=None)
            run = discovery.request_discovery(provider=provider)
    finally:
        app.conf.update(task_always_eager=old[0], broker_url=old[1])
        app._pool = None
    op.refresh_from_db()
    run.refresh_from_db()
    assert op.status == Operation.Status.FAILED and "broker is unreachable" in op.error
    assert run.status == DiscoveryRun.Status.FAILED and "broker is unreachable" in run.error


def test_wrong_password_ends_the_discovery_with_a_clear_reason_and_keeps_inventory(tmp_path, caplog):
    path = tmp_path / "secured.xml"
    path.write_text(
        "<node><auth><user password='right-one'>admin</user></auth>"
        "<domain type='test'><name>only</name><memory>1024</memory><os><type>hvm</type></os></domain></node>"
    )
    provider = create_provider(name="secured", uri=f"test://{path}", username="admin", password="right-one")
    assert discovery.discover_now(provider=provider).status == DiscoveryRun.Status.SUCCEEDED
    update_provider(provider=provider, password="wrong-one")
    run = discovery.discover_now(provider=provider)
    assert run.status == DiscoveryRun.Status.FAILED and not run.retryable
    assert run.error.startswith("authentication failed for test://")
    provider.refresh_from_db()
    assert provider.status == Provider.Status.STALE
    assert VirtualMachine.objects.filter(provider=provider, name="only", removed_at__isnull=True).exists()
    assert "wrong-one" not in run.error and "wrong-one" not in caplog.text and "right-one" not in caplog.text


def test_test_node_files_only_from_allowed_directories(settings, tmp_path):
    settings.VOM_TEST_NODE_DIRS = [str(tmp_path / "nodes")]
    (tmp_path / "nodes").mkdir()
    outside = _node(tmp_path / "kvm30.xml")
    with pytest.raises(ValidationError) as exc:
        create_provider(name="outside", uri=f"test://{outside}")
    assert "only read from" in exc.value.message_dict["uri"][0]
    inside = _node(tmp_path / "nodes" / "kvm31.xml")
    assert create_provider(name="inside", uri=f"test://{inside}").pk
    (tmp_path / "nodes" / "link.xml").symlink_to(outside)  # a symlink does not lead out
    with pytest.raises(ValidationError):
        create_provider(name="link", uri=f"test://{tmp_path / 'nodes' / 'link.xml'}")


def test_scheduled_dispatch_clears_a_run_abandoned_by_a_dead_worker(
    provider, settings, django_capture_on_commit_callbacks
):
    settings.VOM_DISCOVERY_STALE_AFTER = 3600
    stuck = DiscoveryRun.objects.create(provider=provider, status=DiscoveryRun.Status.RUNNING)
    DiscoveryRun.objects.filter(pk=stuck.pk).update(started=timezone.now() - dt.timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False):
        assert discovery.dispatch_due_discoveries() == 1
    stuck.refresh_from_db()
    assert stuck.status == DiscoveryRun.Status.FAILED and "abandoned" in stuck.error


def test_a_run_queued_long_ago_but_started_recently_is_not_abandoned(provider, settings):
    settings.VOM_DISCOVERY_STALE_AFTER = 3600
    run = DiscoveryRun.objects.create(provider=provider, status=DiscoveryRun.Status.QUEUED)
    DiscoveryRun.objects.filter(pk=run.pk).update(created=timezone.now() - dt.timedelta(hours=2))
    DiscoveryRun.objects.filter(pk=run.pk).update(status=DiscoveryRun.Status.RUNNING, started=timezone.now())
    with pytest.raises(discovery.DiscoveryBusy):
        discovery.discover_now(provider=provider)
    run.refresh_from_db()
    assert run.status == DiscoveryRun.Status.RUNNING


def test_an_operation_abandoned_by_a_dead_worker_does_not_lock_the_vm(provider, settings):
    web = _discovered(provider)["web-01"]
    settings.VOM_OPERATION_STALE_AFTER = 600
    stuck = operations.request_vm_operation(vm=web, kind=Operation.Kind.VM_SUSPEND, user=None)
    Operation.objects.filter(pk=stuck.pk).update(
        status=Operation.Status.RUNNING, started=timezone.now() - dt.timedelta(hours=1)
    )
    op = operations.request_vm_operation(vm=web, kind=Operation.Kind.VM_SUSPEND, user=None)
    assert op.pk != stuck.pk
    stuck.refresh_from_db()
    assert stuck.status == Operation.Status.FAILED and "abandoned" in stuck.error
    # A redelivered task for the abandoned operation does not run it.
    assert operations.execute_operation(stuck.pk).status == Operation.Status.FAILED


def test_paused_vm_is_not_offered_a_graceful_shutdown_but_power_off(provider):
    web = _discovered(provider)["web-01"]
    web.state = VirtualMachine.State.PAUSED
    assert Operation.Kind.VM_SHUTDOWN not in operations.allowed_operations(web)
    assert Operation.Kind.VM_POWER_OFF in operations.allowed_operations(web)
    web.state = VirtualMachine.State.SUSPENDED
    assert operations.allowed_operations(web) == [Operation.Kind.VM_POWER_OFF]


def test_an_operation_queued_behind_long_provisioning_work_is_not_taken_as_lost(provider, settings):
    """The provisioning queue can be busy for hours: its operations get a day in the queue, others not."""
    web = _discovered(provider)["web-01"]
    settings.VOM_OPERATION_STALE_AFTER = 600

    def queued(kind, hours):
        op = Operation.objects.create(kind=kind, vm=web, provider=provider, status=Operation.Status.PENDING)
        Operation.objects.filter(pk=op.pk).update(created=timezone.now() - dt.timedelta(hours=hours))  # auto_now_add
        return op

    waiting = queued(Operation.Kind.DISK_ADD, hours=3)
    operations.expire_abandoned_operations(web)
    waiting.refresh_from_db()
    assert waiting.status == Operation.Status.PENDING
    Operation.objects.filter(pk=waiting.pk).update(created=timezone.now() - dt.timedelta(hours=25))
    operations.expire_abandoned_operations(web)
    waiting.refresh_from_db()
    assert waiting.status == Operation.Status.FAILED and "abandoned" in waiting.error

    power = queued(Operation.Kind.VM_SUSPEND, hours=3)  # the operations queue: the stale limit applies
    operations.expire_abandoned_operations(web)
    power.refresh_from_db()
    assert power.status == Operation.Status.FAILED
