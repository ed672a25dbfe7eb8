"""Fixtures for the API tests: a discovered inventory (two providers, one of them partly removed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from inventory.models import Provider, VirtualMachine
from inventory.services import sync
from tests.factories import make_inventory, make_provider, make_snapshot


@dataclass
class Inventory:
    kvm: Provider  # kvm-a: 6 VMs discovered, then vm04 and vm05 gone (marked removed)
    other: Provider  # rhev-b: 3 VMs of another platform

    def vm(self, name: str) -> VirtualMachine:
        return VirtualMachine.objects.get(name=name)


@pytest.fixture
def inventory(db) -> Inventory:
    kvm = make_inventory(make_provider("kvm-a"), vms=6)
    sync.apply_snapshot(kvm, make_snapshot(host="kvm-a", vms=4))  # vm04, vm05 disappeared
    other = make_inventory(
        make_provider("rhev-b", kind=Provider.Kind.RHEV, uri="https://rhevm.example/ovirt-engine/api"), vms=3
    )
    return Inventory(kvm=kvm, other=other)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
