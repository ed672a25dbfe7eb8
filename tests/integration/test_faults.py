"""Faults the job core must survive, made with real processes: a worker killed mid-job (SIGKILL), Redis
restarted while a task runs, and hosts that accept connections and never answer.

Workers and beat are started with the command lines ``make run`` uses (``vom.processes``): one pool
per queue. The "host that never answers" is a real TCP listener on 127.0.0.1 that accepts and stays
silent; libvirt, ovirtsdk4 and pypsrp are the real libraries, speaking to it through the drivers.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from inventory.models import Provider, VirtualMachine
from inventory.services import sync
from inventory.services.discovery import discover_now, request_discovery
from inventory.services.operations import request_vm_operation
from inventory.services.providers import create_provider
from tests.factories import make_snapshot
from tests.realparts import wait_until
from vom.jobs.models import Job
from vom.simulators.libvirt_node import DomainSpec, NodeSpec, RunState, stable_uuid, write_node

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
S = Job.Status

# Quick sweeps and a short stale limit, so a dead worker is found in seconds rather than minutes.
FAST_SWEEP = {"VOM_JOB_HEARTBEAT_SECONDS": "1", "VOM_JOB_STALE_AFTER": "5", "VOM_JOB_SWEEP_SECONDS": "1"}


def _silent_kvm(port: int, name: str = "silent") -> VirtualMachine:
    """A KVM provider whose host accepts connections and never answers, with a running VM on record."""
    provider = Provider.objects.create(name=name, uri=f"qemu+tcp://127.0.0.1:{port}/system")
    sync.apply_snapshot(provider, make_snapshot(host=name, vms=1, states=("running",)))
    return VirtualMachine.objects.get(provider=provider)


def _simulated_kvm(tmp_path) -> VirtualMachine:
    """A KVM host the libvirt test driver simulates, discovered, with one running VM."""
    spec = NodeSpec(
        hostname="kvm-live",
        host_uuid=stable_uuid("faults", "host"),
        domains=[
            DomainSpec(
                name="app", uuid=stable_uuid("faults", "app"), memory_kib=1024 * 1024, vcpus=1, state=RunState.RUNNING
            )
        ],
    )
    provider = Provider.objects.create(name="kvm-live", uri=f"test://{write_node(spec, tmp_path / 'kvm-live.xml')}")
    assert discover_now(provider=provider).status == S.SUCCEEDED
    return VirtualMachine.objects.get(provider=provider, name="app")


def _job(job: Job) -> Job:
    job.refresh_from_db()
    return job


def _ended(job: Job, timeout: float) -> Job:
    return wait_until(lambda: not _job(job).is_active and job, timeout, interval=0.3, what=f"job #{job.pk} to end")


def _claimed(job: Job, timeout: float = 30) -> Job:
    return wait_until(lambda: _job(job).claim and job, timeout, interval=0.2, what=f"a worker to take job #{job.pk}")


def test_a_job_whose_worker_is_killed_is_ended_by_the_sweep_and_its_vm_unlocked(processes, black_hole):
    vm = _silent_kvm(black_hole.port)
    doomed = processes.worker("orchestration", VOM_PLATFORM_CONNECT_TIMEOUT="300", **FAST_SWEEP)
    job = request_vm_operation(vm=vm, kind="vm_reboot", user=None)  # not resumable: a reboot asked twice
    _claimed(job)
    time.sleep(2)  # it beats while it waits for the silent host
    assert _job(job).heartbeat is not None and job.status == S.RUNNING
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(10)
    # Another worker and the periodic sweep: nobody asks for the VM, the job is found by its heartbeat.
    processes.worker("orchestration", VOM_PLATFORM_CONNECT_TIMEOUT="2", **FAST_SWEEP)
    processes.beat(**FAST_SWEEP)
    job = _ended(job, 60)
    assert job.status == S.ABANDONED
    assert job.error.startswith("abandoned: the worker running it stopped (last sign of life ")
    assert job.log.filter(level="error", message__startswith="abandoned: the worker running it stopped").exists()
    # The VM's lock went with it: a new operation is taken (and fails fast on the silent host).
    again = request_vm_operation(vm=vm, kind="vm_power_off", user=None)
    again = _ended(again, 60)
    assert again.status == S.FAILED and "did not answer within 2" in again.error, again.error


def test_a_resumable_job_whose_worker_is_killed_is_resumed_by_another_worker(processes, black_hole):
    silent = create_provider(name="silent-kvm", uri=f"qemu+tcp://127.0.0.1:{black_hole.port}/system")
    doomed = processes.worker("discovery", VOM_PLATFORM_CONNECT_TIMEOUT="300", **FAST_SWEEP)
    processes.worker("orchestration", **FAST_SWEEP)  # where the sweep runs
    job = request_discovery(provider=silent, user=None)
    _claimed(job)
    time.sleep(2)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(10)
    processes.beat(**FAST_SWEEP)
    processes.worker("discovery", VOM_PLATFORM_CONNECT_TIMEOUT="2", **FAST_SWEEP)
    job = _ended(job, 60)
    assert job.resumes == 1
    assert job.log.filter(level="warning", message__startswith="resuming: the worker running it stopped").exists()
    # Resumed, it ran to its end on the new worker: the host still does not answer, and says so.
    assert job.status == S.FAILED and job.retryable and "did not answer within 2" in job.error, job.error
    silent.refresh_from_db()
    assert silent.status == Provider.Status.STALE


def test_redis_restarted_while_a_task_runs_the_worker_reconnects_and_goes_on(
    processes, own_redis, black_hole, tmp_path
):
    app_vm = _simulated_kvm(tmp_path)
    vm = _silent_kvm(black_hole.port)
    worker = processes.worker("orchestration", VOM_PLATFORM_CONNECT_TIMEOUT="8")
    job = request_vm_operation(vm=vm, kind="vm_reboot", user=None)
    _claimed(job)
    own_redis.stop()  # while the step waits for the silent host
    time.sleep(1)
    own_redis.start()  # the same port, empty (no persistence, as make run starts it)
    job = _ended(job, 60)
    assert job.status == S.FAILED and "did not answer within 8" in job.error  # recorded, not lost
    # The worker is still there and takes new work once it has reconnected.
    done = request_vm_operation(vm=app_vm, kind="vm_suspend", user=None)
    done = _ended(done, 90)
    assert done.status == S.SUCCEEDED, done.error
    assert worker.poll() is None
    log = worker.log_path.read_text()
    assert "Unrecoverable error" not in log and "Connection to broker lost" in log


def test_hosts_that_never_answer_time_out_and_never_starve_operations(processes, black_hole, tmp_path):
    timeouts = {"VOM_PLATFORM_CONNECT_TIMEOUT": "6", "VOM_PLATFORM_READ_TIMEOUT": "6"}
    app_vm = _simulated_kvm(tmp_path)
    silent = [
        create_provider(name="silent-kvm-1", uri=f"qemu+tcp://127.0.0.1:{black_hole.port}/system"),
        create_provider(name="silent-kvm-2", uri=f"qemu+tcp://127.0.0.1:{black_hole.port}/system"),
        create_provider(
            name="silent-rhevm",
            kind=Provider.Kind.RHEV,
            uri=f"http://127.0.0.1:{black_hole.port}/ovirt-engine/api",
            username="admin@internal",
            password="secret",
            insecure=True,
        ),
        create_provider(
            name="silent-hyperv",
            kind=Provider.Kind.HYPERV,
            uri="127.0.0.1",
            port=black_hole.port,
            use_https=False,
            winrm_auth=Provider.WinRMAuth.NTLM,
            username="administrator",
            password="secret",
        ),
    ]
    # The pools make run starts: discoveries in one process, operations in another.
    processes.worker("discovery", concurrency=2, **timeouts)
    processes.worker("orchestration", concurrency=2, **timeouts)
    began = time.monotonic()
    discoveries = [request_discovery(provider=provider, user=None) for provider in silent]
    wait_until(lambda: all(_job(j).claim for j in discoveries[:2]), 30, what="two discoveries to fill their pool")
    operation = request_vm_operation(vm=app_vm, kind="vm_suspend", user=None)
    operation = _ended(operation, 30)
    took = time.monotonic() - began
    assert operation.status == S.SUCCEEDED, operation.error
    assert any(_job(j).is_active for j in discoveries), "the operation should have run while hosts were silent"
    for job in discoveries:
        job = _ended(job, 90)
        assert job.status == S.FAILED and job.retryable, (job.target_name, job.error)
        assert any(word in job.error for word in ("did not answer", "timed out", "time")), job.error
    print(f"operation done {took:.1f} s after four silent discoveries were queued")
