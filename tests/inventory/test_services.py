"""Discovery and operation services against the real libvirt test driver (node files written here).

Both are jobs (``vom.jobs``): requested (the job row first, sent once the transaction commits — never,
under pytest-django's ``db``), then run to their end here with ``run_now``.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from inventory.models import Provider, VirtualDisk, VirtualMachine, VMSnapshot
from inventory.services import discovery, operations
from inventory.services.operations import Kind
from inventory.services.providers import create_provider, provider_credentials, update_provider
from tests.factories import make_user
from tests.jobtools import as_if_its_worker_died
from vom.jobs import lifecycle
from vom.jobs.broker import QueueUnavailable
from vom.jobs.models import Job
from vom.jobs.runner import run_now, run_step
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


S = Job.Status


def test_discovery_records_the_run_and_the_inventory(provider):
    run = discovery.discover_now(provider=provider)
    assert (run.kind, run.status, run.trigger, run.target) == ("discovery", S.SUCCEEDED, "cli", provider)
    assert run.started and run.finished and run.result["duration_ms"] is not None and run.progress == 100
    assert run.result["counts"]["vm"]["added"] == 2 and run.result["added"] > 0
    assert run.message == f"+{run.result['added']} ~0 -0"
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
    assert (again.result["added"], again.result["changed"], again.result["removed"]) == (0, 0, 0)
    assert list(discovery.discoveries(provider)) == [again, run]


def test_unreachable_provider_keeps_inventory_marked_stale(provider, node):
    discovery.discover_now(provider=provider)
    node.unlink()
    run = discovery.discover_now(provider=provider)
    assert run.status == S.FAILED
    assert "does not exist" in run.error
    assert run.result["duration_ms"] is not None and "added" not in run.result
    provider.refresh_from_db()
    assert provider.status == Provider.Status.STALE and "does not exist" in provider.stale_reason
    assert VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True).count() == 2


def test_a_password_that_cannot_be_decrypted_fails_the_discovery_for_good(provider):
    discovery.discover_now(provider=provider)
    # Stored under another secrets key: the console cannot read it any more.
    Provider.objects.filter(pk=provider.pk).update(username="root", password_encrypted="gAAAAABnot-a-token")
    provider.refresh_from_db()
    run = discovery.discover_now(provider=provider)
    assert run.status == S.FAILED and not run.retryable
    assert "cannot be decrypted" in run.error and "retrying cannot help" in run.error
    assert "internal error" not in run.error
    provider.refresh_from_db()
    assert provider.status == Provider.Status.STALE and "cannot be decrypted" in provider.stale_reason
    assert VirtualMachine.objects.filter(provider=provider, removed_at__isnull=True).count() == 2


def test_vm_gone_is_marked_removed_with_timestamp(tmp_path):
    path = _node(tmp_path / "kvm08.xml", extra_vm=True)
    provider = create_provider(name="kvm08", uri=f"test://{path}")
    discovery.discover_now(provider=provider)
    _node(path)  # db-01 deleted on the host
    run = discovery.discover_now(provider=provider)
    assert run.result["counts"]["vm"]["removed"] == 1 and run.result["removed"] >= 1
    db = VirtualMachine.objects.get(provider=provider, name="db-01")
    assert db.removed_at is not None and db.removed_at <= timezone.now()


def test_two_discoveries_of_one_provider_never_overlap(provider, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = discovery.request_discovery(provider=provider)
        second = discovery.request_discovery(provider=provider)
    assert first.pk == second.pk and first.status == S.PENDING
    assert len(callbacks) == 1  # one task enqueued
    with pytest.raises(discovery.DiscoveryBusy) as busy:
        discovery.discover_now(provider=provider)
    assert busy.value.job == first and str(busy.value) == f"a discovery of kvm07 is already queued (#{first.pk})"
    assert run_now(first.pk).status == S.SUCCEEDED
    first.refresh_from_db()
    assert first.status == S.SUCCEEDED
    # A redelivered task for the same run does nothing.
    finished, lines = first.finished, first.log.count()
    assert run_step(first.pk, 0) is None
    first.refresh_from_db()
    assert first.finished == finished and first.log.count() == lines
    assert discovery.discoveries(provider).count() == 1


def test_a_discovery_whose_worker_died_is_resumed_by_another(provider, sent):
    stuck = discovery.request_discovery(provider=provider)
    sent.clear()
    as_if_its_worker_died(stuck)
    # The one expiry (the sweep) hands it to another worker: a discovery can run again from the start.
    assert lifecycle.expire_stale() == 1
    stuck.refresh_from_db()
    assert (stuck.status, stuck.resumes, stuck.claim) == (S.RUNNING, 1, "")
    assert sent == [(stuck.pk, stuck.step, "discovery")]
    assert stuck.log.filter(level="warning", message__startswith="resuming: the worker running it stopped").exists()
    # Meanwhile the provider has its discovery: asking again gives that one, not a second.
    assert discovery.request_discovery(provider=provider) == stuck
    run_step(stuck.pk, stuck.step)
    stuck.refresh_from_db()
    assert stuck.status == S.SUCCEEDED and stuck.result["counts"]["vm"]["added"] == 2
    assert discovery.discover_now(provider=provider).status == S.SUCCEEDED


def test_a_discovery_resumed_too_often_is_abandoned_and_no_longer_blocks(provider, settings, sent):
    stuck = discovery.request_discovery(provider=provider)
    Job.objects.filter(pk=stuck.pk).update(resumes=settings.VOM_JOB_MAX_RESUMES)
    as_if_its_worker_died(stuck, seconds_ago=2 * 3600)
    run = discovery.discover_now(provider=provider)  # the stuck one is expired on the way
    assert run.status == S.SUCCEEDED
    stuck.refresh_from_db()
    assert stuck.status == S.ABANDONED and stuck.error.startswith("abandoned: the worker running it stopped")


def test_dispatch_queues_only_due_enabled_providers(provider, tmp_path, django_capture_on_commit_callbacks):
    other = create_provider(name="later", uri=f"test://{_node(tmp_path / 'kvm09.xml')}", enabled=True)
    Provider.objects.filter(pk=other.pk).update(last_discovery_at=timezone.now())
    create_provider(name="off", uri=f"test://{_node(tmp_path / 'kvm10.xml')}", enabled=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert discovery.dispatch_due_discoveries() == 1
        assert discovery.dispatch_due_discoveries() == 0  # already queued
    assert len(callbacks) == 1
    assert list(discovery.discoveries().values_list("target_name", "trigger", "status")) == [
        ("kvm07", "schedule", "pending")
    ]


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


def _run(vm, kind, **params) -> Job:
    vm.refresh_from_db()
    job = operations.request_vm_operation(vm=vm, kind=kind, user=None, params=params)
    assert job.status == S.PENDING  # sent on commit: never under the test's transaction
    return run_now(job.pk)


def test_operations_change_state_and_are_logged(provider):
    vms = _discovered(provider)
    web = vms["web-01"]
    job = _run(web, Kind.VM_SUSPEND)
    assert job.status == S.SUCCEEDED and job.progress == 100 and job.lock == f"vm:{web.pk}"
    web.refresh_from_db()
    assert web.state == "paused" and web.state_read_at is not None
    assert [e.message for e in job.log.all()] == [
        f"Suspend of VM web-01 ({web.uuid}) on kvm07",
        "suspending: request accepted by the hypervisor",
        "VM is paused",
    ]
    assert _run(web, Kind.VM_RESUME).status == S.SUCCEEDED
    assert _run(web, Kind.VM_SHUTDOWN).status == S.SUCCEEDED
    web.refresh_from_db()
    assert web.state == "stopped"
    assert _run(web, Kind.VM_START).status == S.SUCCEEDED
    assert _run(web, Kind.VM_POWER_OFF).status == S.SUCCEEDED
    web.refresh_from_db()
    assert web.state == "stopped" and web.raw_state == "shutoff"
    assert list(operations.jobs_on(web).order_by("pk").values_list("kind", flat=True)) == [
        Kind.VM_SUSPEND,
        Kind.VM_RESUME,
        Kind.VM_SHUTDOWN,
        Kind.VM_START,
        Kind.VM_POWER_OFF,
    ]


def test_snapshot_with_xml_special_characters(provider):
    vms = _discovered(provider)
    weird = vms[WEIRD]
    name = "before <upgrade> & \"'"
    job = _run(weird, Kind.SNAPSHOT_CREATE, snapshot=name, description="x & y")
    assert job.status == S.SUCCEEDED, job.error
    assert VMSnapshot.objects.get(vm=weird, name=name).current
    # The platform agrees: a rediscovery finds the snapshot with its exact name.
    discovery.discover_now(provider=provider)
    assert VMSnapshot.objects.filter(vm=weird, name=name).exists()
    assert _run(weird, Kind.SNAPSHOT_REVERT, snapshot=name).status == S.SUCCEEDED
    assert _run(weird, Kind.SNAPSHOT_DELETE, snapshot=name).status == S.SUCCEEDED
    assert not VMSnapshot.objects.filter(vm=weird, name=name).exists()


def test_refusals_are_clear_and_create_nothing(provider):
    vms = _discovered(provider)
    before = Job.objects.count()  # the discovery
    with pytest.raises(ValidationError, match="it is running"):
        operations.request_vm_operation(vm=vms["web-01"], kind=Kind.VM_START, user=None)
    with pytest.raises(ValidationError, match="no snapshot named"):
        operations.request_vm_operation(
            vm=vms["web-01"], kind=Kind.SNAPSHOT_REVERT, user=None, params={"snapshot": "nope"}
        )
    with pytest.raises(ValidationError, match="no '/'"):
        operations.request_vm_operation(
            vm=vms["web-01"], kind=Kind.SNAPSHOT_CREATE, user=None, params={"snapshot": "a/b"}
        )
    assert Job.objects.count() == before
    held = operations.request_vm_operation(vm=vms["web-01"], kind=Kind.VM_SUSPEND, user=None)
    with pytest.raises(ValidationError, match=rf"already has an operation in progress: Suspend \(#{held.pk}\)"):
        operations.request_vm_operation(vm=vms["web-01"], kind=Kind.VM_POWER_OFF, user=None)
    assert Job.objects.count() == before + 1


def test_redelivered_operation_is_not_repeated(provider):
    web = _discovered(provider)["web-01"]
    job = operations.request_vm_operation(vm=web, kind=Kind.VM_SUSPEND, user=make_user("operator"))
    run_now(job.pk)
    lines = job.log.count()
    assert run_step(job.pk, 0) is None
    again = Job.objects.get(pk=job.pk)
    assert again.status == S.SUCCEEDED and job.log.count() == lines


def test_operation_on_a_state_changed_behind_our_back_fails_clearly(provider):
    web = _discovered(provider)["web-01"]
    # The inventory thinks web-01 is stopped, but on the host it runs: the driver refuses the start.
    VirtualMachine.objects.filter(pk=web.pk).update(state="stopped")
    web.refresh_from_db()
    job = _run(web, Kind.VM_START)
    assert job.status == S.FAILED
    assert "already running" in job.error
    assert "Traceback" not in job.error and "internal error" not in job.error
    assert job.log.filter(level="error").exists()
    # The VM is free for the next operation.
    assert operations.busy(web) is None


def test_bulk_request_reports_refusals(provider):
    vms = _discovered(provider)
    queued, refused = operations.request_bulk_vm_operation(
        vms=[vms["web-01"], vms[WEIRD]], kind=Kind.VM_START, user=None
    )
    assert [job.target for job in queued] == [vms[WEIRD]]
    assert [job.kind for job in queued] == [Kind.VM_START]
    assert len(refused) == 1
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


@pytest.fixture
def broker_down():
    """The Celery app pointed at a port of 127.0.0.1 where nothing listens, tasks not run eagerly."""
    from tests.jobtools import open_broker_connections
    from vom.celery import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.update(broker_url=f"redis://127.0.0.1:{port}/0", task_always_eager=False)
    open_broker_connections()
    yield
    app.conf.update(broker_url=before[0], task_always_eager=before[1])
    open_broker_connections()


def test_an_unreachable_broker_refuses_the_work_and_records_nothing(
    provider, broker_down, django_capture_on_commit_callbacks
):
    """Changed: the work used to be recorded as failed ("broker is unreachable"); now the caller is told at
    once (QueueUnavailable: 503 in the API) and no job is left behind, holding no lock."""
    web = _discovered(provider)["web-01"]
    before = set(Job.objects.values_list("pk", flat=True))
    with pytest.raises(QueueUnavailable, match="the task queue is unreachable, nothing was queued"):
        with django_capture_on_commit_callbacks(execute=True):
            operations.request_vm_operation(vm=web, kind=Kind.VM_SUSPEND, user=None)
    with pytest.raises(QueueUnavailable):
        with django_capture_on_commit_callbacks(execute=True):
            discovery.request_discovery(provider=provider)
    assert set(Job.objects.values_list("pk", flat=True)) == before
    assert operations.busy(web) is None and discovery.active_discovery(provider) is None


def test_wrong_password_ends_the_discovery_with_a_clear_reason_and_keeps_inventory(tmp_path, caplog):
    path = tmp_path / "secured.xml"
    path.write_text(
        "<node><auth><user password='right-one'>admin</user></auth>"
        "<domain type='test'><name>only</name><memory>1024</memory><os><type>hvm</type></os></domain></node>"
    )
    provider = create_provider(name="secured", uri=f"test://{path}", username="admin", password="right-one")
    assert discovery.discover_now(provider=provider).status == S.SUCCEEDED
    update_provider(provider=provider, password="wrong-one")
    run = discovery.discover_now(provider=provider)
    assert run.status == S.FAILED and not run.retryable
    assert run.error.startswith("authentication failed for test://")
    provider.refresh_from_db()
    assert provider.status == Provider.Status.STALE
    assert VirtualMachine.objects.filter(provider=provider, name="only", removed_at__isnull=True).exists()
    assert "wrong-one" not in run.error and "wrong-one" not in caplog.text and "right-one" not in caplog.text
    assert not run.log.filter(message__contains="wrong-one").exists()


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


def test_scheduled_dispatch_leaves_a_dead_workers_discovery_to_the_sweep(provider, sent):
    """Changed: the dispatch used to expire such a run itself; now only the sweep (expire_stale) does,
    and a discovery is resumed, not failed."""
    stuck = discovery.request_discovery(provider=provider)
    as_if_its_worker_died(stuck, seconds_ago=3 * 24 * 3600)
    sent.clear()
    assert discovery.dispatch_due_discoveries() == 0  # the provider has a discovery (running, to be resumed)
    assert sent == [] and discovery.discoveries(provider).count() == 1
    assert lifecycle.expire_stale() == 1
    stuck.refresh_from_db()
    assert stuck.status == S.RUNNING and stuck.resumes == 1 and sent == [(stuck.pk, stuck.step, "discovery")]
    run_step(stuck.pk, stuck.step)
    Provider.objects.filter(pk=provider.pk).update(last_discovery_at=timezone.now() - dt.timedelta(days=1))
    assert discovery.dispatch_due_discoveries() == 1  # ended: the provider is due again


def test_a_discovery_queued_long_ago_but_beating_now_is_not_abandoned(provider, sent):
    run = discovery.request_discovery(provider=provider)
    Job.objects.filter(pk=run.pk).update(created=timezone.now() - dt.timedelta(hours=2))
    held = lifecycle.claim(run.pk, 0)  # a worker took it just now and beats
    assert held is not None
    assert lifecycle.expire_stale() == 0
    with pytest.raises(discovery.DiscoveryBusy):
        discovery.discover_now(provider=provider)
    run.refresh_from_db()
    assert run.status == S.RUNNING and run.claim == held.claim and run.resumes == 0


def test_an_operation_abandoned_by_a_dead_worker_does_not_lock_the_vm(provider, sent):
    web = _discovered(provider)["web-01"]
    # A reboot asked twice is not a reboot asked once: it is not resumed, but ended as abandoned.
    stuck = operations.request_vm_operation(vm=web, kind=Kind.VM_REBOOT, user=None)
    as_if_its_worker_died(stuck, seconds_ago=3600)
    job = operations.request_vm_operation(vm=web, kind=Kind.VM_SUSPEND, user=None)
    assert job.pk != stuck.pk and job.status == S.PENDING
    stuck.refresh_from_db()
    assert stuck.status == S.ABANDONED and stuck.error.startswith("abandoned: the worker running it stopped")
    # A redelivered task for the abandoned operation does not run it.
    assert run_step(stuck.pk, stuck.step) is None
    assert Job.objects.get(pk=stuck.pk).status == S.ABANDONED


def test_a_power_action_whose_worker_died_is_resumed_and_keeps_the_vm(provider, sent):
    web = _discovered(provider)["web-01"]
    stuck = operations.request_vm_operation(vm=web, kind=Kind.VM_SUSPEND, user=None)
    as_if_its_worker_died(stuck, seconds_ago=3600)
    # Asked for the VM meanwhile: the stuck one is resumed (a power action reads the state before it
    # asks again), and holds the VM until it ends.
    with pytest.raises(ValidationError, match=rf"already has an operation in progress: Suspend \(#{stuck.pk}\)"):
        operations.request_vm_operation(vm=web, kind=Kind.VM_POWER_OFF, user=None)
    stuck.refresh_from_db()
    assert (stuck.status, stuck.resumes) == (S.RUNNING, 1)
    assert sent[-1] == (stuck.pk, stuck.step, "orchestration")
    run_step(stuck.pk, stuck.step)
    stuck.refresh_from_db()
    assert stuck.status == S.SUCCEEDED
    web.refresh_from_db()
    assert web.state == "paused"
    assert operations.request_vm_operation(vm=web, kind=Kind.VM_POWER_OFF, user=None).status == S.PENDING


def test_paused_vm_is_not_offered_a_graceful_shutdown_but_power_off(provider):
    web = _discovered(provider)["web-01"]
    web.state = VirtualMachine.State.PAUSED
    assert Kind.VM_SHUTDOWN not in operations.allowed_operations(web)
    assert Kind.VM_POWER_OFF in operations.allowed_operations(web)
    web.state = VirtualMachine.State.SUSPENDED
    assert operations.allowed_operations(web) == [Kind.VM_POWER_OFF]


def test_an_operation_queued_behind_long_work_is_never_taken_as_lost(provider, settings, sent):
    """A queue can be busy for hours (the provisioning queue behind full copies): a queued job is never
    ended for its age, whatever its queue; a message that may have been lost is sent again.

    Changed: a queued operation used to be failed as abandoned after VOM_OPERATION_STALE_AFTER (a
    day on the provisioning queue)."""
    from provisioning.services.disks import Kind as DiskKind

    web = _discovered(provider)["web-01"]
    other = _discovered(provider)["a<b&\"c'"]
    sent.clear()

    def queued(vm, kind, hours):
        job = operations.create_vm_job(vm=vm, kind=kind, params={}, user=None)
        long_ago = timezone.now() - dt.timedelta(hours=hours)
        Job.objects.filter(pk=job.pk).update(created=long_ago, sent_at=long_ago, sends=1)
        return job

    waiting = queued(web, DiskKind.DISK_ADD, hours=25)
    power = queued(other, Kind.VM_START, hours=3)
    assert lifecycle.expire_stale() == 0
    assert set(Job.objects.filter(pk__in=[waiting.pk, power.pk]).values_list("status", flat=True)) == {S.PENDING}
    assert sorted(sent) == sorted([(waiting.pk, 0, "provisioning"), (power.pk, 0, "orchestration")])
    # And the VM stays with its queued operation.
    with pytest.raises(ValidationError, match="already has an operation in progress"):
        operations.request_vm_operation(vm=web, kind=Kind.VM_SUSPEND, user=None)
