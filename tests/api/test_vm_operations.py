"""VM operations through the API: queued as jobs (202), refused with the reason (409).

pytest-django's ``db`` fixture never runs ``transaction.on_commit``, so queued jobs stay pending.
Each platform's VMs are in that platform's own states (the RHEV ones: up, down, suspended), so what
is allowed and refused is decided by the operations' rules, not by an "unknown" state.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.urls import reverse

from inventory.models import VMSnapshot
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

VM_TARGET = "inventory.virtualmachine"


def _vm_jobs(vm):
    return Job.objects.filter(target_type__app_label="inventory", target_type__model="virtualmachine", target_id=vm.pk)


@pytest.mark.parametrize(
    ("vm_name", "url_name", "kind"),
    [
        ("kvm-a-vm01", "api:vm-start", "vm_start"),  # stopped
        ("kvm-a-vm00", "api:vm-shutdown", "vm_shutdown"),  # running
        ("kvm-a-vm00", "api:vm-power-off", "vm_power_off"),
        ("kvm-a-vm00", "api:vm-reboot", "vm_reboot"),
        ("kvm-a-vm00", "api:vm-suspend", "vm_suspend"),
        ("kvm-a-vm02", "api:vm-resume", "vm_resume"),  # paused
        ("rhev-b-vm01", "api:vm-start", "vm_start"),  # down
        ("rhev-b-vm00", "api:vm-shutdown", "vm_shutdown"),  # up
        ("rhev-b-vm00", "api:vm-power-off", "vm_power_off"),
        ("rhev-b-vm00", "api:vm-reboot", "vm_reboot"),
        ("rhev-b-vm00", "api:vm-suspend", "vm_suspend"),
        ("rhev-b-vm02", "api:vm-resume", "vm_resume"),  # suspended: RHEV resumes it by starting it
        ("rhev-b-vm02", "api:vm-power-off", "vm_power_off"),
    ],
)
def test_power_action_queues_a_job(operator_api, operator_user, inventory, vm_name, url_name, kind):
    vm = inventory.vm(vm_name)
    response = operator_api.post(reverse(url_name, args=[vm.pk]))
    assert response.status_code == 202, response.json()
    job = Job.objects.get()
    assert (job.kind, job.target, job.params, job.requested_by, job.status, job.trigger) == (
        kind,
        vm,
        {},
        operator_user,
        "pending",
        "api",  # asked for through the API
    )
    assert job.lock == f"vm:{vm.pk}" and job.target_name == vm_name
    data = response.json()
    assert data["id"] == job.pk and data["kind"] == kind and data["target_name"] == vm_name
    assert data["target"] == {"type": VM_TARGET, "id": vm.pk, "name": vm_name, "url": f"/vms/{vm.pk}/"}
    assert data["requested_by"] == "oscar" and data["status"] == "pending"
    assert response["Location"].endswith(reverse("api:job-detail", args=[job.pk]))
    assert response["Location"].endswith(f"/api/operations/{job.pk}/")


@pytest.mark.parametrize(
    ("vm_name", "url_name", "reason"),
    [
        ("kvm-a-vm00", "api:vm-start", "cannot start VM 'kvm-a-vm00': it is running"),
        ("kvm-a-vm01", "api:vm-shutdown", "cannot shut down VM 'kvm-a-vm01': it is stopped"),
        # A paused guest cannot act on a shutdown request.
        ("kvm-a-vm02", "api:vm-shutdown", "cannot shut down VM 'kvm-a-vm02': it is paused"),
        ("kvm-a-vm01", "api:vm-resume", "cannot resume VM 'kvm-a-vm01': it is stopped"),
        ("rhev-b-vm00", "api:vm-start", "cannot start VM 'rhev-b-vm00': it is running"),
        ("rhev-b-vm01", "api:vm-shutdown", "cannot shut down VM 'rhev-b-vm01': it is stopped"),
        ("rhev-b-vm01", "api:vm-power-off", "cannot power off VM 'rhev-b-vm01': it is stopped"),
        ("rhev-b-vm01", "api:vm-reboot", "cannot reboot VM 'rhev-b-vm01': it is stopped"),
        ("rhev-b-vm02", "api:vm-suspend", "cannot suspend VM 'rhev-b-vm02': it is suspended"),
        ("rhev-b-vm02", "api:vm-shutdown", "cannot shut down VM 'rhev-b-vm02': it is suspended"),
        ("rhev-b-vm00", "api:vm-resume", "cannot resume VM 'rhev-b-vm00': it is running"),
    ],
)
def test_power_action_refused_in_the_vms_state_is_409_with_the_reason(
    operator_api, inventory, vm_name, url_name, reason
):
    vm = inventory.vm(vm_name)
    response = operator_api.post(reverse(url_name, args=[vm.pk]))
    assert response.status_code == 409
    assert response.json() == {"detail": reason}
    assert Job.objects.count() == 0


def test_allowed_operations_follow_each_platforms_own_states(viewer_api, inventory):
    def allowed(name):
        return viewer_api.get(reverse("api:vm-detail", args=[inventory.vm(name).pk])).json()["allowed_operations"]

    assert allowed("rhev-b-vm00") == ["vm_shutdown", "vm_power_off", "vm_reboot", "vm_suspend", "vm_migrate"]
    assert allowed("rhev-b-vm01") == ["vm_start"]
    assert allowed("rhev-b-vm02") == ["vm_power_off", "vm_resume"]
    assert allowed("kvm-a-vm02") == ["vm_power_off", "vm_resume"]  # paused
    assert allowed("kvm-a-vm01") == ["vm_start"]


def test_migrate_is_for_running_rhev_vms(operator_api, operator_user, inventory):
    up = inventory.vm("rhev-b-vm00")
    response = operator_api.post(reverse("api:vm-migrate", args=[up.pk]), {}, format="json")
    assert response.status_code == 202, response.json()
    job = Job.objects.get()
    assert (job.kind, job.target, job.params, job.requested_by) == ("vm_migrate", up, {}, operator_user)
    # Its only host is where it runs already.
    again = operator_api.post(reverse("api:vm-migrate", args=[inventory.vm("rhev-b-vm01").pk]), {}, format="json")
    assert again.status_code == 409 and again.json() == {"detail": "cannot migrate VM 'rhev-b-vm01': it is stopped"}
    kvm = operator_api.post(reverse("api:vm-migrate", args=[inventory.vm("kvm-a-vm00").pk]), {}, format="json")
    assert kvm.status_code == 409
    assert kvm.json() == {"detail": "KVM (libvirt) VMs cannot be asked to migrate from this console"}
    assert Job.objects.count() == 1


def test_migrate_to_the_host_it_runs_on_is_409(operator_api, inventory):
    up = inventory.vm("rhev-b-vm00")
    response = operator_api.post(reverse("api:vm-migrate", args=[up.pk]), {"host": up.host_id}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "VM 'rhev-b-vm00' already runs on rhev-b"}
    assert Job.objects.count() == 0


def test_rhev_vms_take_no_snapshots_from_this_console(operator_api, inventory):
    vm = inventory.vm("rhev-b-vm01")
    response = operator_api.post(reverse("api:vm-snapshots", args=[vm.pk]), {"name": "s1"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "RHEV / oVirt VMs cannot be asked to create snapshot from this console"}
    assert Job.objects.count() == 0


def test_power_off_url_uses_a_hyphen(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    assert reverse("api:vm-power-off", args=[vm.pk]) == f"/api/vms/{vm.pk}/power-off/"


def test_operation_detail_carries_its_log(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    other = inventory.vm("kvm-a-vm00")
    location = operator_api.post(reverse("api:vm-start", args=[vm.pk]))["Location"]
    assert operator_api.post(reverse("api:vm-reboot", args=[other.pk])).status_code == 202
    job = Job.objects.get(target_id=vm.pk)
    job.log.create(message="start of VM kvm-a-vm01")
    job.log.create(message="libvirt: domain not found", level="error")
    detail = operator_api.get(location).json()
    assert [(e["level"], e["message"]) for e in detail["log"]] == [
        ("info", "start of VM kvm-a-vm01"),
        ("error", "libvirt: domain not found"),
    ]
    assert detail["children"] == []
    listed = operator_api.get(reverse("api:job-list"), {"target_type": VM_TARGET, "target_id": vm.pk}).json()
    assert [row["id"] for row in listed["results"]] == [job.pk] and "log" not in listed["results"][0]
    assert operator_api.get(reverse("api:job-list")).json()["count"] == 2


def test_refused_operation_is_409_with_the_reason_and_queues_nothing(operator_api, inventory):
    running = inventory.vm("kvm-a-vm00")
    response = operator_api.post(reverse("api:vm-start", args=[running.pk]))
    assert response.status_code == 409
    assert response.json() == {"detail": "cannot start VM 'kvm-a-vm00': it is running"}
    assert Job.objects.count() == 0


def test_second_operation_while_one_is_in_progress_is_409(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    assert operator_api.post(reverse("api:vm-reboot", args=[vm.pk])).status_code == 202
    first = Job.objects.get()
    response = operator_api.post(reverse("api:vm-power-off", args=[vm.pk]))
    assert response.status_code == 409
    assert response.json() == {"detail": f"VM 'kvm-a-vm00' already has an operation in progress: Reboot (#{first.pk})"}
    assert Job.objects.count() == 1
    # Another VM is not held by that lock.
    assert operator_api.post(reverse("api:vm-reboot", args=[inventory.vm("kvm-a-vm03").pk])).status_code == 202


def test_operation_on_a_removed_vm_is_409_not_404(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm05")  # was stopped, then disappeared
    response = operator_api.post(reverse("api:vm-start", args=[vm.pk]))
    assert response.status_code == 409 and "was removed" in response.json()["detail"]
    assert Job.objects.count() == 0


def test_operation_on_a_missing_vm_is_404(operator_api, inventory):
    assert operator_api.post(reverse("api:vm-start", args=[999999])).status_code == 404
    assert Job.objects.count() == 0


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_create_stores_the_name_verbatim(operator_api, operator_user, inventory):
    vm = inventory.vm("kvm-a-vm01")
    name = "pre <&>\"' patch ü"
    response = operator_api.post(
        reverse("api:vm-snapshots", args=[vm.pk]), {"name": name, "description": "before <b>patch</b>"}, format="json"
    )
    assert response.status_code == 202, response.json()
    job = Job.objects.get()
    assert job.kind == "snapshot_create" and job.requested_by == operator_user and job.target == vm
    assert job.params == {"snapshot": name, "description": "before <b>patch</b>"}
    assert response.json()["params"]["snapshot"] == name


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "a/b"}, {"name": "tab\there"}, {"name": "x" * 101}, {"name": None}],
)
def test_snapshot_create_with_a_bad_name_is_400(operator_api, inventory, body):
    vm = inventory.vm("kvm-a-vm01")
    response = operator_api.post(reverse("api:vm-snapshots", args=[vm.pk]), body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert Job.objects.count() == 0


def test_snapshot_create_with_a_name_in_use_is_409(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    response = operator_api.post(reverse("api:vm-snapshots", args=[vm.pk]), {"name": "before-upgrade"}, format="json")
    assert response.status_code == 409 and "already has a snapshot named" in response.json()["detail"]
    assert Job.objects.count() == 0


def test_snapshot_list_of_a_vm(viewer_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    data = viewer_api.get(reverse("api:vm-snapshots", args=[vm.pk])).json()
    assert [(s["name"], s["current"]) for s in data] == [("before-upgrade", True)]


def test_snapshot_revert_and_delete_by_percent_encoded_name(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    name = "weekly <&>\"' #1 ?.x"
    VMSnapshot.objects.create(vm=vm, name=name)
    url = reverse("api:vm-snapshots", args=[vm.pk]) + quote(name, safe="") + "/"

    reverted = operator_api.post(url + "revert/")
    assert reverted.status_code == 202, reverted.json()
    job = Job.objects.get()
    assert (job.kind, job.params, job.target) == ("snapshot_revert", {"snapshot": name}, vm)

    Job.objects.filter(pk=job.pk).update(status="succeeded")  # the lock of the VM is free again
    deleted = operator_api.delete(url)
    assert deleted.status_code == 202, deleted.json()
    job = Job.objects.get(kind="snapshot_delete")
    assert job.params == {"snapshot": name}
    assert VMSnapshot.objects.filter(vm=vm, name=name).exists()  # gone only when the operation has run


def test_snapshot_revert_of_an_unknown_name_is_409(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    response = operator_api.post(reverse("api:vm-revert-snapshot", args=[vm.pk, "nope"]))
    assert response.status_code == 409 and "has no snapshot named 'nope'" in response.json()["detail"]
    assert operator_api.delete(reverse("api:vm-delete-snapshot", args=[vm.pk, "nope"])).status_code == 409
    assert Job.objects.count() == 0


def test_snapshot_name_with_a_slash_cannot_reach_revert(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm01")
    url = reverse("api:vm-snapshots", args=[vm.pk]) + quote("a/b", safe="") + "/revert/"
    assert operator_api.post(url).status_code == 404
    assert Job.objects.count() == 0


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_action_queues_what_it_can_and_says_why_not_for_the_rest(operator_api, operator_user, inventory):
    stopped, running, paused = inventory.vm("kvm-a-vm01"), inventory.vm("kvm-a-vm00"), inventory.vm("kvm-a-vm02")
    rhev_down, rhev_up, rhev_suspended = (inventory.vm(f"rhev-b-vm0{i}") for i in (1, 0, 2))
    ids = [stopped.pk, running.pk, paused.pk, rhev_down.pk, rhev_up.pk, rhev_suspended.pk, stopped.pk]
    response = operator_api.post(reverse("api:vm-bulk-action"), {"ids": ids, "action": "start"}, format="json")
    assert response.status_code == 202
    data = response.json()
    assert sorted(job["target"]["id"] for job in data["queued"]) == sorted([stopped.pk, rhev_down.pk])
    assert {job["kind"] for job in data["queued"]} == {"vm_start"}
    refused = {r["id"]: (r["name"], r["reason"]) for r in data["refused"]}
    assert refused == {
        running.pk: ("kvm-a-vm00", "cannot start VM 'kvm-a-vm00': it is running"),
        paused.pk: ("kvm-a-vm02", "cannot start VM 'kvm-a-vm02': it is paused"),
        rhev_up.pk: ("rhev-b-vm00", "cannot start VM 'rhev-b-vm00': it is running"),
        rhev_suspended.pk: ("rhev-b-vm02", "cannot start VM 'rhev-b-vm02': it is suspended"),
    }
    jobs = {(job.target, job.kind, job.requested_by, job.trigger) for job in Job.objects.all()}
    assert jobs == {(stopped, "vm_start", operator_user, "api"), (rhev_down, "vm_start", operator_user, "api")}


def test_bulk_resume_follows_each_platform(operator_api, inventory):
    # libvirt resumes a paused VM; RHEV resumes a suspended one too (by starting it).
    ids = [inventory.vm(n).pk for n in ("kvm-a-vm02", "rhev-b-vm02", "rhev-b-vm00")]
    data = operator_api.post(reverse("api:vm-bulk-action"), {"ids": ids, "action": "resume"}, format="json").json()
    assert sorted(job["target_name"] for job in data["queued"]) == ["kvm-a-vm02", "rhev-b-vm02"]
    assert [(r["name"], r["reason"]) for r in data["refused"]] == [
        ("rhev-b-vm00", "cannot resume VM 'rhev-b-vm00': it is running")
    ]


def test_bulk_power_off(operator_api, inventory):
    ids = [inventory.vm(n).pk for n in ("kvm-a-vm00", "kvm-a-vm02", "kvm-a-vm03", "rhev-b-vm00", "rhev-b-vm02")]
    data = operator_api.post(reverse("api:vm-bulk-action"), {"ids": ids, "action": "power-off"}, format="json").json()
    assert len(data["queued"]) == 5 and data["refused"] == []
    assert set(Job.objects.values_list("kind", flat=True)) == {"vm_power_off"}
    assert sorted(Job.objects.values_list("target_id", flat=True)) == sorted(ids)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": [999999], "action": "start"}, "ids"),
        ({"ids": [], "action": "start"}, "ids"),
        ({"ids": ["one"], "action": "start"}, "ids"),
        ({"ids": "1,2", "action": "start"}, "ids"),
        ({"action": "start"}, "ids"),
        ({"ids": [1], "action": "explode"}, "action"),
        ({"ids": [1], "action": "snapshot_create"}, "action"),
        ({"ids": [1]}, "action"),
    ],
)
def test_bulk_bad_input_is_400_and_queues_nothing(operator_api, inventory, body, field):
    if body.get("ids") == [1]:
        body = {**body, "ids": [inventory.vm("kvm-a-vm01").pk]}
    response = operator_api.post(reverse("api:vm-bulk-action"), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Job.objects.count() == 0


def test_bulk_with_some_unknown_ids_queues_nothing(operator_api, inventory):
    stopped = inventory.vm("kvm-a-vm01")
    response = operator_api.post(
        reverse("api:vm-bulk-action"), {"ids": [stopped.pk, 999998, 999999], "action": "start"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"ids": ["No VM with id 999998, 999999."]}
    assert Job.objects.count() == 0


# --- cancel ------------------------------------------------------------------------------------


def test_a_job_is_cancelled_through_the_api(operator_api, viewer_api, operator_user, inventory):
    vm = inventory.vm("kvm-a-vm01")
    job_id = operator_api.post(reverse("api:vm-start", args=[vm.pk])).json()["id"]
    url = reverse("api:job-cancel", args=[job_id])
    assert url == f"/api/operations/{job_id}/cancel/"
    assert viewer_api.post(url).status_code == 403
    assert Job.objects.get(pk=job_id).status == "pending"

    response = operator_api.post(url)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["id"], body["status"], body["cancelled_by"]) == (job_id, "cancelled", "oscar")
    assert body["error"] == "cancelled by oscar before it started" and body["cancel_requested"] is not None
    # Ended: the VM takes the next operation, and a second cancel is refused with the reason.
    again = operator_api.post(url)
    assert again.status_code == 409 and again.json() == {"detail": f"job #{job_id} has already ended (cancelled)"}
    assert operator_api.post(reverse("api:vm-start", args=[vm.pk])).status_code == 202


def test_a_running_job_is_asked_to_stop_before_its_next_step(operator_api, inventory):
    vm = inventory.vm("kvm-a-vm00")
    job_id = operator_api.post(reverse("api:vm-shutdown", args=[vm.pk])).json()["id"]
    Job.objects.filter(pk=job_id).update(status="running")  # a worker has it, between two readings
    response = operator_api.post(reverse("api:job-cancel", args=[job_id]))
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancelled_by"]) == ("running", "oscar")
    again = operator_api.post(reverse("api:job-cancel", args=[job_id]))
    assert again.status_code == 409 and "was already asked for at" in again.json()["detail"]
    assert Job.objects.get(pk=job_id).status == "running"  # its worker ends it before the next step
