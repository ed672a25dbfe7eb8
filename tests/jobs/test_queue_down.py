"""The task queue is down: every way of asking for work says so at once, and nothing is recorded.

The broker is a real Redis URL on a closed port of 127.0.0.1 (nothing listens there), and the web
requests run in autocommit, as in production, so the job is sent as its transaction commits.
"""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import CommandError, call_command

from inventory.models import VirtualMachine
from inventory.services import sync
from provisioning.models import ProvisionedVM, ProvisioningRequest
from tests.factories import make_inventory, make_provider, make_snapshot
from tests.realparts import _reset_broker_connections
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down():
    """The Celery app pointed at a port of 127.0.0.1 where nothing listens, tasks not run eagerly."""
    from vom.celery import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, and nothing will listen on it
    before = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.update(broker_url=f"redis://127.0.0.1:{port}/0", task_always_eager=False)
    _reset_broker_connections(app)
    yield
    app.conf.update(broker_url=before[0], task_always_eager=before[1])
    _reset_broker_connections(app)


@pytest.fixture
def vm(db) -> VirtualMachine:
    kvm = make_inventory(make_provider("kvm-q"), vms=2)
    sync.apply_snapshot(kvm, make_snapshot(host="kvm-q", vms=2))
    return VirtualMachine.objects.filter(provider=kvm, state=VirtualMachine.State.RUNNING).first()


def test_the_api_answers_503_and_records_nothing(broker_down, vm, operator_api):
    answer = operator_api.post(f"/api/vms/{vm.pk}/reboot/")
    assert answer.status_code == 503
    assert "the task queue is unreachable, nothing was queued" in answer.json()["detail"]
    assert not Job.objects.exists()
    # The VM is not left locked by a job that will never run: the next request is refused for the
    # same reason, not because "an operation is already in progress".
    again = operator_api.post(f"/api/vms/{vm.pk}/reboot/")
    assert again.status_code == 503


def test_a_discovery_asked_for_in_the_api_answers_503(broker_down, vm, operator_api):
    answer = operator_api.post(f"/api/providers/{vm.provider_id}/discover/")
    assert answer.status_code == 503
    assert not Job.objects.exists()


def test_the_gui_says_the_work_could_not_be_queued(broker_down, vm, operator_client):
    page = operator_client.post(
        f"/vms/{vm.pk}/action/", {"kind": "vm_reboot"}, follow=True, HTTP_REFERER=f"/vms/{vm.pk}/"
    )
    assert page.status_code == 200
    assert page.redirect_chain[-1][0] == f"/vms/{vm.pk}/"
    text = page.content.decode()
    assert "Could not queue the work: the task queue is unreachable, nothing was queued" in text
    assert "queued (operation #" not in text
    assert not Job.objects.exists()


def test_a_provisioning_request_leaves_no_job_no_request_and_no_vm_rows(golden, broker_down, operator_api):
    image, pool = golden, golden.pool
    before = set(Job.objects.values_list("pk", flat=True))  # the discovery that loaded the host
    body = {"count": 2, "name_pattern": "q-{n}", "mode": "space_optimized", "pool": pool.pk}
    answer = operator_api.post(f"/api/golden-images/{image.pk}/provision/", body, format="json")
    assert answer.status_code == 503, answer.content
    assert set(Job.objects.values_list("pk", flat=True)) == before
    assert not ProvisioningRequest.objects.exists() and not ProvisionedVM.objects.exists()


def test_the_command_line_exits_non_zero_with_one_line(golden, broker_down):
    image, pool = golden, golden.pool
    before = set(Job.objects.values_list("pk", flat=True))
    err = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(
            "vom_provision",
            "--golden-image", image.name, "--count", "1", "--pattern", "c-{n}", "--pool", pool.name,
            stderr=err,
        )  # fmt: skip
    assert failed.value.returncode == 3
    assert "the task queue is unreachable, nothing was queued" in str(failed.value)
    assert "\n" not in str(failed.value)
    assert set(Job.objects.values_list("pk", flat=True)) == before
    assert not ProvisioningRequest.objects.exists() and not ProvisionedVM.objects.exists()
