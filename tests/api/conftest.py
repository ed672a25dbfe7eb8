"""Fixtures for the API tests: a discovered inventory (two providers, one of them partly removed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from inventory.models import Provider, VirtualMachine
from inventory.services import sync
from tests.factories import make_inventory, make_provider, make_snapshot
from tests.jobtools import open_broker_connections

RHEV_STATES = ("up", "down", "suspended")  # rhev-b-vm00, -vm01, -vm02


@dataclass
class Inventory:
    kvm: Provider  # kvm-a: 6 VMs discovered, then vm04 and vm05 gone (marked removed)
    other: Provider  # rhev-b: 3 VMs of another platform, in RHEV's own words: up, down, suspended

    def vm(self, name: str) -> VirtualMachine:
        return VirtualMachine.objects.get(name=name)


@pytest.fixture
def inventory(db) -> Inventory:
    kvm = make_inventory(make_provider("kvm-a"), vms=6)
    sync.apply_snapshot(kvm, make_snapshot(host="kvm-a", vms=4))  # vm04, vm05 disappeared
    # A RHEV manager reports its own states (inventory/states.py): given libvirt's words, every VM
    # would be "unknown" and every operation refused, whatever the operation's rules.
    other = make_inventory(
        make_provider("rhev-b", kind=Provider.Kind.RHEV, uri="https://rhevm.example/ovirt-engine/api"),
        vms=3,
        states=RHEV_STATES,
    )
    assert [vm.state for vm in other.vms.order_by("name")] == ["running", "stopped", "suspended"]
    return Inventory(kvm=kvm, other=other)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _open_broker_connections():
    """Every test starts with open broker connections: a fixture that pointed the Celery app at another
    broker may have left closed ones behind (see ``tests.jobtools.open_broker_connections``), which even
    an eager ``apply_async`` takes a producer from."""
    open_broker_connections()
