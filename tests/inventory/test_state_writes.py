"""A VM's state is written by discoveries and by operations (and soon by monitoring): every write
carries the time the platform was read, and an older reading never overwrites a newer one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.drivers.base import VMStateReading
from inventory.drivers.libvirt import LibvirtDriver, forget_test_connections
from inventory.models import Provider, VirtualMachine
from inventory.services import sync
from inventory.services.discovery import discover_now
from inventory.services.operations import request_vm_operation
from vom.jobs.models import Job
from vom.jobs.runner import run_now
from vom.simulators.libvirt_node import DomainSpec, NodeSpec, RunState, stable_uuid, write_node

pytestmark = pytest.mark.django_db


@pytest.fixture
def kvm(tmp_path):
    spec = NodeSpec(
        hostname="kvm-cas",
        host_uuid=stable_uuid("cas", "host"),
        domains=[
            DomainSpec(name="db", uuid=stable_uuid("cas", "db"), memory_kib=1 << 20, vcpus=1, state=RunState.RUNNING)
        ],
    )
    uri = f"test://{write_node(spec, tmp_path / 'kvm-cas.xml')}"
    provider = Provider.objects.create(name="kvm-cas", uri=uri)
    assert discover_now(provider=provider).status == Job.Status.SUCCEEDED
    yield provider
    forget_test_connections(uri)


def test_a_slow_discovery_that_read_running_does_not_undo_a_stop_that_came_after(kvm):
    vm = VirtualMachine.objects.get(provider=kvm, name="db")
    with LibvirtDriver(kvm.uri) as driver:
        slow = driver.discover()  # reads "running" now, and is applied only after the stop below
    assert [v.state for v in slow.vms] == ["running"]
    stop = run_now(request_vm_operation(vm=vm, kind="vm_power_off", user=None).pk)
    assert stop.status == Job.Status.SUCCEEDED, stop.error
    vm.refresh_from_db()
    assert vm.state == VirtualMachine.State.STOPPED and vm.state_read_at > slow.read_at
    stopped_at = vm.state_read_at

    result = sync.apply_snapshot(kvm, slow)
    vm.refresh_from_db()
    assert vm.state == VirtualMachine.State.STOPPED and vm.raw_state == "shutoff"
    assert vm.state_read_at == stopped_at
    assert result.kinds["vm"].changed == 0  # the stale reading wrote nothing

    # Started again behind the console's back: a discovery that read the host after that writes it.
    with LibvirtDriver(kvm.uri) as driver:
        driver.start(vm.uuid)
    assert discover_now(provider=kvm).status == Job.Status.SUCCEEDED
    vm.refresh_from_db()
    assert vm.state == VirtualMachine.State.RUNNING and vm.state_read_at > stopped_at


def test_a_newer_reading_wins_and_an_older_one_is_dropped(kvm):
    vm = VirtualMachine.objects.get(provider=kvm, name="db")
    now = timezone.now()
    newer = VMStateReading(uuid=vm.uuid, state="paused", state_reason="user", read_at=now + timedelta(seconds=5))
    older = VMStateReading(uuid=vm.uuid, state="shutoff", state_reason="destroyed", read_at=now + timedelta(seconds=2))
    assert sync.record_vm_state(vm, newer) == VirtualMachine.State.PAUSED
    assert sync.record_vm_state(vm, older) == VirtualMachine.State.PAUSED  # dropped; the newer one is kept
    stored = VirtualMachine.objects.get(pk=vm.pk)
    assert (stored.state, stored.raw_state, stored.state_reason) == ("paused", "paused", "user")
    assert stored.state_read_at == newer.read_at
    assert (vm.state, vm.raw_state) == ("paused", "paused")  # the caller's object says what is stored
