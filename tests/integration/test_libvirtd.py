"""End to end on real parts: a real libvirtd with QEMU (software emulation), a real redis-server and a
real Celery worker. A tiny VM is defined, discovered, started, asked to shut down (it has no OS, so
the graceful shutdown times out — the case power-off exists for) and forced off, all through the
console's own task path: jobs sent to the broker as ``vom.jobs.run_job`` messages and run by the
worker step by step (a shutdown waiting for the guest goes back to the queue between its steps).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from inventory.models import VirtualDisk, VirtualMachine
from inventory.services.discovery import request_discovery
from inventory.services.operations import Kind, request_vm_operation
from inventory.services.providers import create_provider
from tests.factories import make_user
from tests.integration.conftest import ran_on_the_worker, received
from tests.realparts import wait_until
from vom.jobs.models import Job
from vom.jobs.tasks import run_job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _tiny_domain_xml(name: str, disk: str) -> str:
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "uuid").text = str(uuid.uuid4())
    ET.SubElement(dom, "memory", unit="MiB").text = "32"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")  # PCI hotplug on i440fx needs ACPI
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "emulator").text = "/usr/bin/qemu-system-x86_64"
    d = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(d, "driver", name="qemu", type="qcow2", cache="none")
    ET.SubElement(d, "source", file=disk)
    ET.SubElement(d, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="user")
    ET.SubElement(nic, "mac", address="52:54:00:7e:57:01")
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(devices, "console", type="pty")
    return ET.tostring(dom, encoding="unicode")


@pytest.fixture
def image_dir():
    """A directory QEMU (running as libvirt-qemu) can read, unlike pytest's private tmp dirs."""
    path = Path("/var/lib/libvirt/images") / f"vom-tests-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tiny_vm(libvirtd_uri, image_dir):
    conn = libvirt.open(libvirtd_uri)
    name = f"vom-it-{uuid.uuid4().hex[:8]}"
    disk = image_dir / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    dom = conn.defineXML(_tiny_domain_xml(name, str(disk)))
    yield dom
    try:
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    finally:
        conn.close()


def _wait_op(op: Job, timeout: float = 60) -> Job:
    def done():
        op.refresh_from_db()
        return not op.is_active

    wait_until(done, timeout, what=f"operation {op.kind}")
    return op


def _discover(provider) -> Job:
    run = request_discovery(provider=provider)

    def done():
        run.refresh_from_db()
        return not run.is_active

    wait_until(done, 60, what="discovery")
    return run


def test_discover_start_shutdown_timeout_and_power_off(worker, libvirtd_uri, tiny_vm, image_dir):
    user = make_user("operator")
    provider = create_provider(name="real-kvm", uri=libvirtd_uri)

    before = received(worker)
    run = _discover(provider)
    assert run.status == Job.Status.SUCCEEDED, run.error
    assert run.trigger == Job.Trigger.GUI and run.kind == "discovery"
    ran_on_the_worker(worker, before)
    vm = VirtualMachine.objects.get(provider=provider, uuid=tiny_vm.UUIDString())
    assert vm.state == VirtualMachine.State.STOPPED and vm.raw_state == "shutoff"
    assert vm.domain_type == "qemu"
    vda = vm.disks.get(target="vda")
    assert vda.driver_format == "qcow2" and vda.cache == "none" and vda.source.endswith(".qcow2")
    assert vm.nics.get().mac == "52:54:00:7e:57:01"
    assert vm.host is not None and vm.host.hypervisor_type == "QEMU"

    before = received(worker)
    op = _wait_op(request_vm_operation(vm=vm, kind=Kind.VM_START, user=user))
    assert op.status == Job.Status.SUCCEEDED, op.error
    assert op.progress == 100 and op.log.exists() and op.requested_by == user
    ran_on_the_worker(worker, before)
    assert tiny_vm.isActive()
    vm.refresh_from_db()
    assert vm.state == VirtualMachine.State.RUNNING

    # A disk attached to the live VM only (virsh attach-disk without --config) is flagged non-persistent.
    extra = image_dir / "extra.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(extra), "16M"], check=True)
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", file=str(extra))
    ET.SubElement(disk, "target", dev="vdb", bus="virtio")
    tiny_vm.attachDeviceFlags(ET.tostring(disk, encoding="unicode"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    run = _discover(provider)
    assert run.status == Job.Status.SUCCEEDED, run.error
    assert VirtualDisk.objects.get(vm=vm, target="vdb").persistent is False
    assert VirtualDisk.objects.get(vm=vm, target="vda").persistent is True

    # No OS in the guest: the graceful shutdown is ignored and ends as a clear failure offering power-off.
    op = _wait_op(request_vm_operation(vm=vm, kind=Kind.VM_SHUTDOWN, user=user, params={"timeout": 3}), timeout=60)
    assert op.status == Job.Status.FAILED
    assert "did not shut down within 3 s" in op.error and op.result["can_force"] is True
    # The wait for the guest went back to the queue between readings: several steps, no worker asleep.
    assert op.step >= 2
    assert tiny_vm.isActive()

    op = _wait_op(request_vm_operation(vm=vm, kind=Kind.VM_POWER_OFF, user=user))
    assert op.status == Job.Status.SUCCEEDED, op.error
    assert not tiny_vm.isActive()
    vm.refresh_from_db()
    assert vm.state == VirtualMachine.State.STOPPED

    # A redelivered message finds the job ended and does not repeat the work.
    log_lines = op.log.count()
    finished = op.finished
    tiny_vm.create()  # were the power-off repeated, this VM would be forced off again
    try:
        for step in range(op.step + 1):  # every step's message, delivered again
            run_job.apply_async((op.pk, step), queue="orchestration")
        worker_log = worker.log_path
        wait_until(
            lambda: (
                worker_log.read_text().count(f"job #{op.pk} step ") >= op.step + 1
                and all(
                    f"job #{op.pk} step {step}: already taken or no longer due; nothing to do" in worker_log.read_text()
                    for step in range(op.step + 1)
                )
            ),
            30,
            what="the worker to receive the redelivered messages",
        )
        assert tiny_vm.isActive()
        op.refresh_from_db()
        assert op.log.count() == log_lines and op.finished == finished
    finally:
        tiny_vm.destroy()
