"""The problem these simulators solve, with the console's real processes: one Celery worker per queue
(``vom.processes``). A VM started by the orchestration worker is running in the next discovery the
discovery worker makes, although that worker loaded the host while the VM was still shut off."""

from __future__ import annotations

import pytest

from inventory.models import Provider, VirtualMachine
from inventory.services.discovery import request_discovery
from inventory.services.operations import request_vm_operation
from tests.realparts import wait_until
from vom.jobs.models import Job
from vom.simulators.libvirt_node import DomainSpec, NodeSpec, RunState, stable_uuid, write_node

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _ended(job: Job, timeout: float = 60) -> Job:
    def done() -> Job | None:
        job.refresh_from_db()
        return None if job.is_active else job

    return wait_until(done, timeout, interval=0.3, what=f"job #{job.pk} to end")


def test_an_operation_of_one_worker_is_seen_by_the_discovery_worker(processes, state_dir, tmp_path):
    spec = NodeSpec(
        hostname="kvm-workers",
        host_uuid=stable_uuid("workers", "host"),
        domains=[
            DomainSpec(
                name="app", uuid=stable_uuid("workers", "app"), memory_kib=1024 * 1024, vcpus=1, state=RunState.SHUTOFF
            )
        ],
    )
    provider = Provider.objects.create(
        name="kvm-workers", uri=f"test://{write_node(spec, tmp_path / 'kvm-workers.xml')}"
    )
    # One process each (VOM_SIMULATOR_STATE_DIR, set by state_dir, is inherited): the discovery
    # worker's one child keeps its connection to the host between its two discoveries.
    processes.worker("discovery", concurrency=1)
    processes.worker("orchestration", concurrency=1)
    first = _ended(request_discovery(provider=provider, user=None))
    assert first.status == Job.Status.SUCCEEDED, first.error
    vm = VirtualMachine.objects.get(provider=provider, name="app")
    assert vm.state == "stopped"

    started = _ended(request_vm_operation(vm=vm, kind="vm_start", user=None))
    assert started.status == Job.Status.SUCCEEDED, started.error
    again = _ended(request_discovery(provider=provider, user=None))
    assert again.status == Job.Status.SUCCEEDED, again.error
    vm.refresh_from_db()
    assert vm.state == "running"
