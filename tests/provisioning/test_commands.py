"""The provisioning management commands: ``vom_golden_image`` and ``vom_provision``.

Refusals are one line per field on stderr and a CommandError (exit status 1, no traceback).
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from inventory.drivers.libvirt.storage import create_volume
from inventory.models import VirtualMachine
from provisioning.models import GoldenImage, ProvisionedVM, ProvisioningRequest
from provisioning.services.common import libvirt_driver
from provisioning.services.requests.platform import Platform
from tests.provisioning.conftest import GOLDEN_PATH, IMAGES
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> tuple[str, str]:
    """Run a command that must fail: (its CommandError message, its stderr)."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=out, stderr=err)
    return str(info.value), err.getvalue()


# --- vom_golden_image ---------------------------------------------------------------------------


def test_list_shows_each_image_with_its_children_and_savings(golden):
    out, _ = run("vom_golden_image", "list")
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAME", "OS", "PROVIDER"]
    assert row.startswith("debian-12") and "kvm-prov" in row and GOLDEN_PATH in row
    assert "10.0 GiB" in row and "2.0 GiB" in row and "golden-vm" in row and "0 + 0 full" in row


def test_list_without_images_says_how_to_register_one(kvm):
    out, _ = run("vom_golden_image", "list")
    assert out.strip() == "No golden images: register one with `manage.py vom_golden_image register`."


def test_register_from_a_shut_off_vm(kvm):
    out, _ = run("vom_golden_image", "register", "--name", "base", "--vm", "golden-vm", "--os", "Debian 12")
    image = GoldenImage.objects.get(name="base")
    assert (image.volume_path, image.template_vm_name, image.os, image.created_by) == (
        GOLDEN_PATH,
        "golden-vm",
        "Debian 12",
        None,
    )
    assert out.strip() == (
        f"Registered golden image base (#{image.pk}): {GOLDEN_PATH} (qcow2, 10.0 GiB, 2.0 GiB on disk) on kvm-prov; "
        "template VM golden-vm"
    )


def test_register_from_a_volume_path_on_a_named_provider(kvm):
    run("vom_golden_image", "register", "--name", "base", "--volume", GOLDEN_PATH, "--provider", "kvm-prov")
    assert GoldenImage.objects.get(name="base").template_vm_name == "golden-vm"


def test_register_refuses_a_running_vm_with_one_line_per_field(kvm):
    message, err = refused("vom_golden_image", "register", "--name", "app", "--volume", f"{IMAGES}/app-01.qcow2")
    assert message == "the golden image was not registered"
    (line,) = err.splitlines()
    assert line.startswith("vm: VM 'app-01' is running: shut it down first")
    assert not GoldenImage.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vm", "nope"), "vm: no VM named 'nope'"),
        (
            ("--volume", "/nowhere.qcow2"),
            "volume: no volume '/nowhere.qcow2' is known: give the path of a discovered volume",
        ),
        (("--vm", "golden-vm", "--provider", "nope"), "provider: no provider named 'nope'"),
    ],
)
def test_register_names_what_it_cannot_find(kvm, args, message):
    assert refused("vom_golden_image", "register", "--name", "x", *args)[0] == message


def test_register_refuses_a_taken_name(golden):
    message, err = refused("vom_golden_image", "register", "--name", "Debian-12", "--vm", "golden-vm")
    assert message == "the golden image was not registered"
    assert err.strip() == "name: A golden image named 'Debian-12' already exists."


def test_register_needs_exactly_one_source(kvm):
    with pytest.raises(CommandError, match="one of the arguments --volume --vm is required"):
        call_command("vom_golden_image", "register", "--name", "x")


def test_unregister_forgets_the_image_and_keeps_the_volume(golden):
    out, _ = run("vom_golden_image", "unregister", "debian-12")
    assert out.strip() == f"Unregistered golden image debian-12; its volume {GOLDEN_PATH} stays."
    assert not GoldenImage.objects.exists()
    assert refused("vom_golden_image", "unregister", "debian-12")[0] == (
        "golden-image: no golden image named 'debian-12' (known: none yet)"
    )


# --- vom_provision ------------------------------------------------------------------------------


PROVISION = ("vom_provision", "--golden-image", "debian-12", "--pool", "images")


def test_provision_queues_the_request_and_prints_its_id_and_url(golden):
    out, _ = run(*PROVISION, "--count", "2", "--pattern", "web-{n:02d}", "--vcpus", "1", "--memory-mib", "512")
    request = ProvisioningRequest.objects.get()
    assert out.splitlines() == [
        f"Provisioning request #{request.pk} queued (operation #{request.job_id}): 2 × debian-12, "
        "space-optimized (copy-on-write child), into pool images",
        f"  {reverse('api:provisioningrequest-detail', args=[request.pk])}",
    ]
    assert (request.count, request.vcpus, request.memory_bytes, request.job.status, request.job.trigger) == (
        2,
        1,
        512 * 1024**2,
        "pending",
        "cli",
    )
    assert list(request.vms.values_list("name", flat=True)) == ["web-01", "web-02"]


def test_provision_now_runs_the_request_here_and_prints_each_vm(golden):
    out, _ = run(*PROVISION, "--count", "3", "--pattern", "web-{n}", "--first-number", "7", "--start", "--now")
    request = ProvisioningRequest.objects.get()
    assert request.job.status == "succeeded"
    lines = out.splitlines()
    assert "running in this process" in lines[0]
    assert [line.split(":")[0] for line in lines[2:5]] == ["web-7", "web-8", "web-9"]
    assert all(": done, boot volume web-" in line for line in lines[2:5])
    assert lines[5].startswith("3 of 3 VMs provisioned, 0 failed, in ")
    vms = VirtualMachine.objects.filter(provider=golden.provider, name__in=["web-7", "web-8", "web-9"])
    assert sorted(vm.state for vm in vms) == ["running"] * 3


def test_provision_now_exits_non_zero_when_a_vm_fails(golden):
    # A volume made behind the console's back (not yet discovered): the second VM's name is taken on the host.
    with libvirt_driver(golden.provider) as driver:
        create_volume(driver, "images", "web-2.qcow2", 1024**3, "qcow2")
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 of 3 VMs failed$"):
        call_command(*PROVISION, "--count", "3", "--pattern", "web-{n}", "--now", stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    assert any(line.startswith("web-2: failed: volume web-2.qcow2 already exists in pool images") for line in lines)
    assert sum(": done," in line for line in lines) == 2
    assert lines[-1].startswith("2 of 3 VMs provisioned, 1 failed")
    assert ProvisionedVM.objects.get(name="web-2").status == "failed"


def test_provision_refusal_prints_one_line_per_field(golden):
    message, err = refused(*PROVISION[:-1], "lvm", "--count", "2", "--pattern", "app-{n:02d}", "--memory-mib", "8")
    assert message == "nothing was provisioned"
    assert sorted(err.splitlines()) == [
        "memory-mib: At least 64 MiB.",
        "pattern: Already in use on this host: app-01.",
        "pool: Storage pool lvm is a logical pool: use a directory or file-system pool.",
    ]
    assert not ProvisioningRequest.objects.exists() and not Job.objects.exclude(kind="discovery").exists()


def test_provision_refuses_too_little_space_for_full_copies(golden):
    _, err = refused(*PROVISION, "--count", "60", "--pattern", "db-{n}", "--mode", "full")
    (line,) = err.splitlines()
    assert line.startswith("pool: Pool images has ") and line.endswith("need 120 GiB.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--golden-image", "nope", "--pool", "images"),
            "golden-image: no golden image named 'nope' (known: debian-12)",
        ),
        (("--golden-image", "debian-12", "--pool", "nope"), "pool: no storage pool named 'nope' on kvm-prov"),
        (
            ("--golden-image", "debian-12", "--pool", "images", "--host", "nope"),
            "host: no host named 'nope' on kvm-prov",
        ),
    ],
)
def test_provision_names_what_it_cannot_find(golden, args, message):
    assert refused("vom_provision", *args, "--count", "1", "--pattern", "x-{n}")[0] == message


def test_provision_refuses_a_negative_first_number(golden):
    message, err = refused(*PROVISION, "--count", "1", "--pattern", "x-{n}", "--first-number", "-1")
    assert message == "nothing was provisioned"
    assert "first-number: Zero or more." in err
    assert not ProvisioningRequest.objects.exists()


def test_provision_takes_a_network_or_a_bridge_not_both(golden):
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command(*PROVISION, "--count", "1", "--pattern", "x", "--network", "default", "--bridge", "br0")


@pytest.mark.django_db(transaction=True)
def test_provision_wait_follows_the_request_until_done(golden):
    """Outside a test transaction the request commits at once and (eager Celery) runs; --wait reports it."""
    out, _ = run(*PROVISION, "--count", "2", "--pattern", "wait-{n}", "--network", "default", "--wait")
    lines = out.splitlines()
    assert "queued" in lines[0]
    assert [line.split(":")[0] for line in lines[2:4]] == ["wait-1", "wait-2"]
    assert lines[4].startswith("2 of 2 VMs provisioned, 0 failed")
    assert ProvisioningRequest.objects.get().job.status == "succeeded"


@pytest.fixture
def no_broker():
    """Celery as in production, with a broker nobody listens on: a task sent to it is not run."""
    from tests.jobtools import open_broker_connections
    from vom.celery import app

    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")
    open_broker_connections()  # connections pooled for another broker must not be reused
    yield app
    app.conf.update(task_always_eager=old[0], broker_url=old[1])
    open_broker_connections()


@pytest.mark.django_db(transaction=True)
def test_provision_now_needs_no_worker_and_no_broker(golden, no_broker):
    out, _ = run(*PROVISION, "--count", "2", "--pattern", "now-{n}", "--now")
    request = ProvisioningRequest.objects.get()
    assert request.job.status == "succeeded", request.job.error
    assert out.splitlines()[-1].startswith("2 of 2 VMs provisioned, 0 failed")
    assert "running in this process" in out.splitlines()[0]  # not queued: nothing went to the dead broker
    assert {row.status for row in request.vms.select_related("job")} == {ProvisionedVM.Status.DONE}
    assert request.job.log.filter(message__startswith="inventory refreshed (discovery #").exists()


@pytest.mark.django_db(transaction=True)
def test_provision_wait_says_at_once_that_the_broker_could_not_take_the_request(golden, no_broker):
    """Changed: the request used to be recorded, then reported failed ("could not queue the operation");
    now nothing is recorded and the command exits with status 3 at once, naming --now."""
    before = set(Job.objects.values_list("pk", flat=True))
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(*PROVISION, "--count", "1", "--pattern", "q-{n}", "--wait", "--interval", "0.01", stdout=out)
    assert failed.value.returncode == 3
    assert str(failed.value).startswith("the task queue is unreachable, nothing was queued (")
    assert str(failed.value).endswith("(or run it here without a worker: --now)")
    assert out.getvalue() == ""  # nothing announced, nothing followed
    assert not ProvisioningRequest.objects.exists() and not ProvisionedVM.objects.exists()
    assert set(Job.objects.values_list("pk", flat=True)) == before


# --- vom_provision_cancel ------------------------------------------------------------------------


def test_cancel_a_queued_request_from_the_command_line(golden, django_capture_on_commit_callbacks):
    from provisioning.services.requests import request_provisioning

    with django_capture_on_commit_callbacks(execute=False):
        request = request_provisioning(
            golden_image=golden, user=None, count=2, name_pattern="app-{n}", mode="space_optimized", pool=golden.pool
        )
    out, _ = run("vom_provision_cancel", str(request.pk))
    assert out == f"Request #{request.pk} cancelled before it started: no VM was made.\n"
    assert {row.status for row in request.vms.select_related("job")} == {"cancelled"}
    request.job.refresh_from_db()
    assert request.job.status == "cancelled" and request.job.cancelled_by is None
    assert request.job.error == "cancelled by the command line before it started"
    message, _ = refused("vom_provision_cancel", str(request.pk))
    assert message == f"request #{request.pk} has already ended (cancelled)"
    message, _ = refused("vom_provision_cancel", "999")
    assert message == "no provisioning request #999"


def test_cancel_a_running_request_and_follow_it_to_its_end(golden, platform_faults):
    said: list[str] = []

    class CancelledOnceWeb1IsDefined(Platform):
        def define_vm(self, template_xml, **kwargs):
            vm_uuid = super().define_vm(template_xml, **kwargs)
            if kwargs["name"] == "web-1":  # someone runs vom_provision_cancel meanwhile
                said.append(run("vom_provision_cancel", str(ProvisioningRequest.objects.get().pk))[0])
            return vm_uuid

    platform_faults(CancelledOnceWeb1IsDefined)
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "vom_provision", "--golden-image", golden.name, "--count", "3", "--pattern", "web-{n}",
            "--pool", "images", "--now", stdout=out, stderr=StringIO(),
        )  # fmt: skip
    request = ProvisioningRequest.objects.get()
    assert said == [
        f"Request #{request.pk}: cancellation asked for; it stops before its next VM "
        "(the VM being made finishes first).\n"
    ]
    assert str(info.value) == "the request was cancelled: cancelled by the command line: 2 of 3 VMs not made"
    printed = out.getvalue()
    assert "web-2: cancelled by the command line before it was made\n" in printed
    assert "1 of 3 VMs provisioned, 0 failed, 2 cancelled, in " in printed
    outcome = {row.name: row.status for row in request.vms.select_related("job")}
    assert outcome == {"web-1": "done", "web-2": "cancelled", "web-3": "cancelled"}
    assert request.job.status == "failed" and request.job.result == {"done": 1, "failed": 0, "cancelled": 2}
