"""The sync engine: first discovery adds, an unchanged rediscovery writes nothing, changes are minimal."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.drivers.base import VMStateReading
from inventory.models import Host, NetworkInterface, StorageVolume, VirtualDisk, VirtualMachine, VMSnapshot
from inventory.services.sync import apply_snapshot, record_vm_state
from tests.factories import make_provider, make_snapshot

pytestmark = pytest.mark.django_db


def _writes(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


def test_first_discovery_adds_everything_and_correlates_disks_with_volumes():
    provider = make_provider()
    result = apply_snapshot(provider, make_snapshot(vms=4))
    assert result.kinds["vm"].added == 4
    assert result.kinds["disk"].added == 8
    assert result.kinds["nic"].added == 4
    assert result.kinds["volume"].added == 5
    assert Host.objects.get(provider=provider).cpu_count == 64
    vm = VirtualMachine.objects.get(name="kvm01-vm00")
    assert vm.state == "running" and vm.raw_state == "running"
    assert VirtualMachine.objects.get(name="kvm01-vm01").state == "stopped"
    assert VirtualMachine.objects.get(name="kvm01-vm02").state == "paused"
    vda = VirtualDisk.objects.get(vm=vm, target="vda")
    assert vda.volume is not None and vda.volume.name == "kvm01-vm00.qcow2"
    assert VirtualDisk.objects.get(vm=vm, target="sda").volume is None  # a LUN, not a pool volume
    assert vm.host is not None and vm.host.hostname == "kvm01"
    assert VMSnapshot.objects.get(vm=vm).current


def test_unchanged_rediscovery_writes_no_row():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=5))
    with CaptureQueriesContext(connection) as ctx:
        result = apply_snapshot(provider, make_snapshot(vms=5))
    assert result.rows_written == 0
    assert _writes(ctx) == []


def test_changes_are_counted_and_only_changed_rows_written():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=3))
    snap = make_snapshot(vms=3)
    snap.vms[1].state = "running"
    snap.vms[1].state_reason = "booted"
    snap.vms[2].nics.clear()
    with CaptureQueriesContext(connection) as ctx:
        result = apply_snapshot(provider, snap)
    assert result.kinds["vm"].changed == 1
    assert result.kinds["nic"].removed == 1
    assert VirtualMachine.objects.get(name="kvm01-vm01").state == "running"
    assert NetworkInterface.objects.filter(vm__name="kvm01-vm02").count() == 0
    assert len(_writes(ctx)) == 2  # one bulk UPDATE of VMs, one DELETE of NICs


def test_vanished_vm_is_marked_removed_and_comes_back():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=3))
    snap = make_snapshot(vms=3)
    gone = snap.vms.pop(2)
    result = apply_snapshot(provider, snap)
    assert result.kinds["vm"].removed == 1
    vm = VirtualMachine.objects.get(uuid=gone.uuid)
    assert vm.removed_at is not None
    assert vm.disks.count() == 2  # history kept with the removed VM
    result = apply_snapshot(provider, make_snapshot(vms=3))
    vm.refresh_from_db()
    assert vm.removed_at is None and result.kinds["vm"].changed == 1


def test_inactive_pool_keeps_its_known_volumes():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=2))
    snap = make_snapshot(vms=2)
    snap.pools[0].active = False
    snap.pools[0].state = "inactive"
    snap.pools[0].volumes = []
    apply_snapshot(provider, snap)
    assert StorageVolume.objects.filter(pool__provider=provider).count() == 3


def test_vm_that_could_not_be_read_is_left_alone_not_removed():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=3))
    snap = make_snapshot(vms=3)
    unreadable = snap.vms.pop(1)
    snap.skipped_vm_uuids.append(unreadable.uuid)
    result = apply_snapshot(provider, snap)
    assert result.rows_written == 0
    vm = VirtualMachine.objects.get(uuid=unreadable.uuid)
    assert vm.removed_at is None and vm.disks.count() == 2


def test_a_deleted_volume_still_named_by_a_disk_does_not_break_the_sync():
    provider = make_provider()
    apply_snapshot(provider, make_snapshot(vms=2))
    snap = make_snapshot(vms=2)
    pool = snap.pools[0]
    deleted = next(v for v in pool.volumes if v.name == "kvm01-vm01.qcow2")
    pool.volumes.remove(deleted)  # `virsh vol-delete` of a shut-off VM's image
    result = apply_snapshot(provider, snap)
    assert result.kinds["volume"].removed == 1
    disk = VirtualDisk.objects.get(vm__name="kvm01-vm01", target="vda")
    assert disk.volume is None and disk.source == deleted.path
    assert apply_snapshot(provider, snap).rows_written == 0  # and the next discovery is quiet


def test_a_repeated_mac_does_not_make_every_rediscovery_write():
    provider = make_provider()
    snap = make_snapshot(vms=1)
    nic = snap.vms[0].nics[0]
    snap.vms[0].nics.append(type(nic)(mac=nic.mac.upper(), type="bridge", source="br0", model="e1000"))
    apply_snapshot(provider, snap)
    assert NetworkInterface.objects.filter(vm__name="kvm01-vm00").count() == 1
    assert apply_snapshot(provider, snap).rows_written == 0


def test_a_stale_reading_never_overwrites_a_newer_state():
    """States are written compare-and-set on the time they were read: a discovery that read the platform
    before an operation read the VM again does not put the older state back."""
    provider = make_provider()
    started = make_snapshot(vms=2)  # read now: vm01 is "shutoff"
    apply_snapshot(provider, started)
    vm = VirtualMachine.objects.get(name="kvm01-vm01")
    assert vm.state == "stopped" and vm.state_read_at == started.read_at
    later = started.read_at + dt.timedelta(seconds=5)
    # An operation started it and read it afterwards.
    assert record_vm_state(vm, VMStateReading(uuid=vm.uuid, state="running", read_at=later)) == "running"
    # A discovery that had read the platform in between (before the start) comes back late.
    late = make_snapshot(vms=2)
    late.read_at = started.read_at + dt.timedelta(seconds=2)
    late.vms[0].state = "paused"  # vm00 was paused meanwhile: that part of the reading is the newest
    result = apply_snapshot(provider, late)
    vm.refresh_from_db()
    assert (vm.state, vm.raw_state, vm.state_read_at) == ("running", "running", later)
    vm00 = VirtualMachine.objects.get(name="kvm01-vm00")
    assert vm00.state == "paused" and vm00.state_read_at == late.read_at
    assert result.kinds["vm"].changed == 1
    # An older single reading loses too, and the VM object says what the database holds.
    stale = VMStateReading(uuid=vm.uuid, state="shutoff", read_at=started.read_at)
    assert record_vm_state(vm, stale) == "running" and vm.state == "running"
    # A newer discovery wins.
    newest = make_snapshot(vms=2)
    newest.read_at = later + dt.timedelta(seconds=1)
    apply_snapshot(provider, newest)
    vm.refresh_from_db()
    assert vm.state == "stopped"


MAC_SCRIPT = """
import django
django.setup()
from tests.factories import make_snapshot
print(" ".join(nic.mac for host in ("kvm01", "kvm-a", "rhev-b") for vm in make_snapshot(host=host, vms=40).vms
               for nic in vm.nics))
"""


def test_factory_macs_do_not_change_with_the_hash_seed():
    """The MACs of the test inventory come from the host and VM names alone (``hash()`` of a string
    changes with PYTHONHASHSEED, so a test filtering by MAC could match another VM in another run)."""
    repo = Path(__file__).resolve().parents[2]

    def macs(seed: str) -> list[str]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "DJANGO_SETTINGS_MODULE": "vom.test_settings"}
        done = subprocess.run([sys.executable, "-c", MAC_SCRIPT], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    first, second = macs("1"), macs("2")
    assert first == second and len(first) == 120
    assert len(set(first)) == 120  # one per VM, across hosts
    assert first == [
        nic.mac
        for host in ("kvm01", "kvm-a", "rhev-b")
        for vm in make_snapshot(host=host, vms=40).vms
        for nic in vm.nics
    ]
