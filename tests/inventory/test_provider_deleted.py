"""A provider deleted while work on it is queued or running: nothing is left waiting for it."""

from __future__ import annotations

import pytest

from inventory.models import VirtualMachine
from inventory.services.operations import create_vm_job
from inventory.services.providers import delete_provider
from tests.factories import make_inventory, make_provider
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db


def test_its_queued_jobs_are_cancelled_and_its_running_ones_asked_to_stop(operator_user):
    provider = make_inventory(make_provider("doomed"), vms=2)
    kept = make_inventory(make_provider("kept"), vms=1)
    first, second = VirtualMachine.objects.filter(provider=provider).order_by("name")
    queued = create_vm_job(vm=first, kind="vm_reboot", params={}, user=operator_user)
    running = create_vm_job(vm=second, kind="vm_reboot", params={}, user=operator_user)
    assert lifecycle.claim(running.pk, 0) is not None
    elsewhere = create_vm_job(vm=kept.vms.get(), kind="vm_reboot", params={}, user=operator_user)
    delete_provider(provider=provider)
    queued.refresh_from_db()
    running.refresh_from_db()
    elsewhere.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED and queued.error == "cancelled: provider doomed was deleted"
    assert running.status == Job.Status.RUNNING and running.cancel_requested is not None
    assert elsewhere.status == Job.Status.PENDING and elsewhere.cancel_requested is None
