"""Provisioning services against libvirt's test:/// driver: golden images, requests, faults, savings."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory.models import Operation, StorageVolume, VirtualMachine
from provisioning.models import Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.requests import execute_provisioning, expand_pattern, request_provisioning
from tests.provisioning.conftest import GOLDEN_PATH, IMAGES


def provision(golden, django_capture_on_commit_callbacks, **kwargs):
    args = {"user": None, "count": 3, "name_pattern": "web-{n:02d}", "mode": Mode.SPACE_OPTIMIZED}
    args.update(kwargs)
    args.setdefault("pool", golden.pool)
    with django_capture_on_commit_callbacks(execute=True):
        request = request_provisioning(golden_image=golden, **args)
    request.refresh_from_db()
    request.operation.refresh_from_db()
    return request


def test_space_optimized_request_makes_children_and_vms(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, start=True)
    op = request.operation
    assert op.status == Operation.Status.SUCCEEDED, op.error
    rows = list(request.vms.all())
    assert [r.name for r in rows] == ["web-01", "web-02", "web-03"]
    assert all(r.status == ProvisionedVM.Status.DONE for r in rows)
    vms = VirtualMachine.objects.filter(provider=kvm, name__startswith="web-")
    assert {vm.name: vm.state for vm in vms} == {"web-01": "running", "web-02": "running", "web-03": "running"}
    vols = StorageVolume.objects.filter(pool__provider=kvm, name__startswith="web-")
    assert {v.name: v.backing_store for v in vols} == {f"web-0{i}.qcow2": GOLDEN_PATH for i in (1, 2, 3)}
    assert {r.vm_uuid for r in rows} == {vm.uuid for vm in vms}


# --- helpers ----------------------------------------------------------------------------------


def conn(provider):
    from inventory.drivers.libvirt import LibvirtDriver

    return LibvirtDriver(provider.uri)._connection()


def platform_volumes(provider, pool="images"):
    p = conn(provider).storagePoolLookupByName(pool)
    p.refresh(0)
    return set(p.listVolumes())


def platform_domains(provider):
    return {d.name() for d in conn(provider).listAllDomains()}


def raw_volume_xml(name, size):
    import xml.etree.ElementTree as ET

    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(size)
    ET.SubElement(ET.SubElement(root, "target"), "format", type="raw")
    return ET.tostring(root, encoding="unicode")


def define_plain_domain(provider, name):
    import xml.etree.ElementTree as ET

    root = ET.Element("domain", type="test")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "memory").text = "65536"
    os_el = ET.SubElement(root, "os")
    ET.SubElement(os_el, "type").text = "hvm"
    conn(provider).defineXML(ET.tostring(root, encoding="unicode"))


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "count", "first", "names"),
    [
        ("web-{n:02d}", 3, 1, ["web-01", "web-02", "web-03"]),
        ("db{n}", 2, 9, ["db9", "db10"]),
        ("solo", 1, 1, ["solo"]),
        ("x-{n:03d}-y", 1, 42, ["x-042-y"]),
    ],
)
def test_expand_pattern(pattern, count, first, names):
    assert expand_pattern(pattern, count, first) == names


@pytest.mark.parametrize(
    ("pattern", "count", "complaint"),
    [
        ("", 1, "a name pattern is required"),
        ("web", 2, "must contain {n}"),
        ("web-{i}", 1, "only {n} may appear"),
        ("web-{n.real}", 1, "only {n} may appear"),
        ("web-{n!r}", 1, "only {n} may appear"),
        ("web-{n:{w}}", 1, "nested field"),
        ("web-{n", 1, "invalid name pattern"),
        ("web-{n:q}", 1, "invalid name pattern"),
        ("web-{0}", 1, "only {n} may appear"),
    ],
)
def test_expand_pattern_refusals(pattern, count, complaint):
    with pytest.raises(ValueError) as exc:
        expand_pattern(pattern, count)
    assert complaint in str(exc.value)


# --- validation before anything is made ---------------------------------------------------------


def refused(golden, **kwargs):
    args = {"user": None, "count": 3, "name_pattern": "web-{n:02d}", "mode": Mode.SPACE_OPTIMIZED, "pool": golden.pool}
    args.update(kwargs)
    with pytest.raises(ValidationError) as exc:
        request_provisioning(golden_image=golden, **args)
    assert not Operation.objects.filter(kind=Operation.Kind.PROVISION_VMS).exists()
    return exc.value.message_dict


def test_names_already_used_are_refused(golden):
    errors = refused(golden, name_pattern="app-{n:02d}", count=2)
    assert errors == {"name_pattern": ["Already in use on this host: app-01."]}


def test_invalid_names_are_refused(golden):
    assert "is not a valid VM name" in refused(golden, name_pattern="web {n}")["name_pattern"][0]


def test_volume_names_taken_in_the_pool_are_refused(golden):
    errors = refused(golden, name_pattern="old-web", count=1, mode=Mode.FULL)
    assert errors == {"name_pattern": ["Volumes already in pool images: old-web.qcow2."]}


def test_full_copies_need_the_space(golden):
    # 60 full copies of a 2 GiB image do not fit the pool's ~96 GiB free; 60 children do.
    errors = refused(golden, count=60, mode=Mode.FULL)
    assert errors["pool"][0].startswith("Pool images has 96.0 GiB free; 60 full copies of debian-12 (2.0 GiB each)")


def test_logical_pool_and_unknown_network_and_both_network_and_bridge(golden, kvm):
    from inventory.models import StoragePool

    lvm = StoragePool.objects.get(provider=kvm, name="lvm")
    errors = refused(golden, pool=lvm, network="nope", bridge="br0")
    assert "use a directory or file-system pool" in errors["pool"][0]
    assert errors["network"] == ["No network 'nope' is known on this host."]
    assert errors["bridge"] == ["Give a network or a bridge, not both."]


def test_pool_of_another_provider_is_refused(golden, tmp_path):
    from tests.factories import make_inventory

    other = make_inventory()
    pool = other.pools.first()
    assert pool is not None
    assert "another provider" in refused(golden, pool=pool)["pool"][0]


def test_count_vcpus_and_memory_limits(golden):
    errors = refused(golden, count=0, vcpus=0, memory_bytes=1024)
    assert errors["count"] == ["Between 1 and 500 VMs per request."]
    assert errors["vcpus"] == ["Between 1 and 512."]
    assert errors["memory_mib"] == ["At least 64 MiB."]
    assert set(errors) <= {"count", "vcpus", "memory_mib", "name_pattern"}


def test_running_template_vm_is_refused(golden):
    VirtualMachine.objects.filter(pk=golden.template_vm_id).update(state=VirtualMachine.State.RUNNING)
    assert "shut it down first" in refused(golden)["golden_image"][0]


# --- execution and faults ----------------------------------------------------------------------


def queued(golden, django_capture_on_commit_callbacks, **kwargs):
    """A request recorded but not yet executed (its task is not sent)."""
    args = {"user": None, "count": 3, "name_pattern": "web-{n:02d}", "mode": Mode.SPACE_OPTIMIZED, "pool": golden.pool}
    args.update(kwargs)
    with django_capture_on_commit_callbacks(execute=False):
        return request_provisioning(golden_image=golden, **args)


def test_full_copies(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, count=2, mode=Mode.FULL)
    assert request.operation.status == Operation.Status.SUCCEEDED, request.operation.error
    vols = {v.name: v for v in StorageVolume.objects.filter(pool__provider=kvm, name__startswith="web-")}
    assert set(vols) == {"web-01.qcow2", "web-02.qcow2"}
    assert all(v.backing_store == "" and v.capacity_bytes == golden.capacity_bytes for v in vols.values())
    vms = VirtualMachine.objects.filter(provider=kvm, name__startswith="web-")
    assert {vm.state for vm in vms} == {"stopped"}  # not asked to start


def test_name_taken_between_validation_and_creation(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks)
    define_plain_domain(kvm, "web-02")  # someone defines web-02 behind the console's back
    op = execute_provisioning(request.operation_id)
    assert op.status == Operation.Status.FAILED
    assert op.error == "1 of 3 VMs failed: web-02"
    row = request.vms.get(name="web-02")
    assert row.status == ProvisionedVM.Status.FAILED
    assert "already defined" in row.error and "volume web-02.qcow2 removed" in row.error
    assert "web-02.qcow2" not in platform_volumes(kvm)  # no orphan
    assert {"web-01.qcow2", "web-03.qcow2"} <= platform_volumes(kvm)
    assert list(request.vms.filter(status=ProvisionedVM.Status.DONE).values_list("name", flat=True)) == [
        "web-01",
        "web-03",
    ]


def test_volume_made_behind_the_consoles_back_is_not_deleted(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    conn(kvm).storagePoolLookupByName("images").createXML(raw_volume_xml("web-01.qcow2", 1024**2), 0)
    op = execute_provisioning(request.operation_id)
    assert op.error == "1 of 2 VMs failed: web-01"
    assert "made by someone else" in request.vms.get(name="web-01").error
    assert "web-01.qcow2" in platform_volumes(kvm)  # not ours: left alone
    assert "web-01" not in platform_domains(kvm)


def test_out_of_space_mid_request(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks, count=4, mode=Mode.FULL)
    pool = conn(kvm).storagePoolLookupByName("images")
    free = pool.info()[3]
    # Leave room for two full copies (10 GiB each on the test driver's books), not four.
    pool.createXML(raw_volume_xml("filler.img", free - 25 * 1024**3), 0)
    op = execute_provisioning(request.operation_id)
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "done", "web-03": "failed", "web-04": "failed"}
    assert "Not enough free space" in request.vms.get(name="web-03").error
    assert op.error == "2 of 4 VMs failed: web-03, web-04"
    assert not {"web-03.qcow2", "web-04.qcow2"} & platform_volumes(kvm)
    assert not {"web-03", "web-04"} & platform_domains(kvm)


def test_golden_image_unregistered_before_the_request_runs(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks)
    golden.delete()
    op = execute_provisioning(request.operation_id)
    assert op.status == Operation.Status.FAILED
    errors = set(request.vms.values_list("error", flat=True))
    assert errors == {"golden image 'debian-12' was unregistered during the request"}
    assert not any(n.startswith("web-") for n in platform_volumes(kvm))


def test_template_vm_started_mid_request(golden, kvm, django_capture_on_commit_callbacks, monkeypatch):
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks)
    beats = []
    real_beat = service._beat

    def beat_and_start_template(req):  # after the first VM, someone starts the golden image's VM
        real_beat(req)
        beats.append(1)
        if len(beats) == 2:
            conn(kvm).lookupByName("golden-vm").create()

    monkeypatch.setattr(service, "_beat", beat_and_start_template)
    op = execute_provisioning(request.operation_id)
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    assert "was started during the request" in request.vms.get(name="web-02").error
    assert op.status == Operation.Status.FAILED


def test_a_template_vm_started_while_a_volume_is_made_fails_that_vm(
    golden, kvm, django_capture_on_commit_callbacks, monkeypatch
):
    """The image must stay quiescent while it is read: it is checked again once each volume is made."""
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)
    real_make = service._make_boot_volume

    def make_and_start(driver, req, row):
        info = real_make(driver, req, row)
        if row.name == "web-02":
            conn(kvm).lookupByName("golden-vm").create()  # someone starts the image's VM during the copy
        return info

    monkeypatch.setattr(service, "_make_boot_volume", make_and_start)
    op = execute_provisioning(request.operation_id)
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    error = request.vms.get(name="web-02").error
    assert error.startswith("the golden image's VM 'golden-vm' was started during the request")
    assert error.endswith("; volume web-02.qcow2 removed")
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2"}
    assert {d for d in platform_domains(kvm) if d.startswith("web-")} == {"web-01"}
    assert op.status == Operation.Status.FAILED


def test_an_unexpected_error_leaves_no_volume_behind(golden, kvm, django_capture_on_commit_callbacks, monkeypatch):
    """A fault in the console itself (not the platform's) still removes the volume made for the VM."""
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)

    def define(driver, template_xml, *, name, **kwargs):
        raise RuntimeError("a bug in the console")

    monkeypatch.setattr(service, "define_vm_from_template", define)
    op = execute_provisioning(request.operation_id)
    assert set(request.vms.values_list("status", flat=True)) == {ProvisionedVM.Status.FAILED}
    assert request.vms.get(name="web-01").error == "internal error: RuntimeError; volume web-01.qcow2 removed"
    assert request.vms.get(name="web-02").error == "internal error: RuntimeError"  # not begun: nothing to remove
    assert not {v for v in platform_volumes(kvm) if v.startswith("web-")}
    assert not {d for d in platform_domains(kvm) if d.startswith("web-")}
    assert op.status == Operation.Status.FAILED and op.error == "3 of 3 VMs failed: web-01, web-02, web-03"


def test_redelivered_task_does_nothing(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, count=2)
    before = platform_domains(kvm)
    first = Operation.objects.get(pk=request.operation_id)
    log_lines = first.log.count()
    runs = kvm.discoveries.count()
    op = execute_provisioning(request.operation_id)  # the same task delivered again
    assert (op.status, op.finished, op.result, op.progress) == (first.status, first.finished, first.result, 100)
    assert op.log.count() == log_lines  # nothing executed, nothing logged
    assert kvm.discoveries.count() == runs  # no inventory refresh either
    assert platform_domains(kvm) == before


def test_abandoned_request_is_resumed_without_duplicates(golden, kvm, django_capture_on_commit_callbacks, settings):
    """A worker died after making web-01's volume and defining web-02: the next delivery finishes the job."""
    from datetime import timedelta

    from django.utils import timezone

    from inventory.drivers.libvirt import LibvirtDriver
    from inventory.drivers.libvirt_storage import create_overlay_volume, define_vm_from_template

    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    driver = LibvirtDriver(kvm.uri)
    create_overlay_volume(driver, "images", "web-01.qcow2", GOLDEN_PATH)
    create_overlay_volume(driver, "images", "web-02.qcow2", GOLDEN_PATH)
    uuid2 = define_vm_from_template(
        driver, request.template_xml, name="web-02", boot_volume_path=f"{IMAGES}/web-02.qcow2"
    )
    long_ago = timezone.now() - timedelta(seconds=settings.VOM_OPERATION_STALE_AFTER + 60)
    Operation.objects.filter(pk=request.operation_id).update(status=Operation.Status.RUNNING, started=long_ago)
    request.vms.filter(name="web-01").update(status=ProvisionedVM.Status.CREATING_VOLUME, started=long_ago)
    request.vms.filter(name="web-02").update(
        status=ProvisionedVM.Status.DEFINING, volume_created=True, started=long_ago
    )
    type(request).objects.filter(pk=request.pk).update(heartbeat=long_ago)

    op = execute_provisioning(request.operation_id)
    assert op.status == Operation.Status.SUCCEEDED, op.error
    assert op.log.filter(message__startswith="resuming").exists()
    names = [n for n in platform_domains(kvm) if n.startswith("web-")]
    assert sorted(names) == ["web-01", "web-02", "web-03"]  # web-02 not defined twice
    assert request.vms.get(name="web-02").vm_uuid == uuid2


def test_running_request_with_a_live_worker_is_not_taken_over(golden, kvm, django_capture_on_commit_callbacks):
    from django.utils import timezone

    request = queued(golden, django_capture_on_commit_callbacks)
    Operation.objects.filter(pk=request.operation_id).update(status=Operation.Status.RUNNING, started=timezone.now())
    type(request).objects.filter(pk=request.pk).update(heartbeat=timezone.now())
    op = execute_provisioning(request.operation_id)
    assert op.status == Operation.Status.RUNNING
    assert not any(n.startswith("web-") for n in platform_domains(kvm))


def test_new_vm_with_a_boot_disk_from_a_pool_volume(kvm, django_capture_on_commit_callbacks):
    from provisioning.services.requests import request_vm_from_volume

    source = StorageVolume.objects.get(pool__provider=kvm, name="old-web.qcow2")
    template = VirtualMachine.objects.get(provider=kvm, name="app-01")  # running: only its definition is used
    with django_capture_on_commit_callbacks(execute=True):
        request = request_vm_from_volume(
            volume=source, template_vm=template, name="legacy-web", user=None, mode=Mode.FULL, pool=source.pool
        )
    request.operation.refresh_from_db()
    assert request.operation.status == Operation.Status.SUCCEEDED, request.operation.error
    assert not request.from_golden_image
    vm = VirtualMachine.objects.get(provider=kvm, name="legacy-web")
    assert [d.source for d in vm.disks.all()] == [f"{IMAGES}/legacy-web.qcow2"]
    assert vm.vcpus == 1 and vm.memory_bytes == 1024**3  # the template's


def test_boot_disk_from_a_volume_in_use_by_a_running_vm_is_refused(kvm):
    from provisioning.services.requests import request_vm_from_volume

    busy = StorageVolume.objects.get(pool__provider=kvm, name="app-01.qcow2")
    template = VirtualMachine.objects.get(provider=kvm, name="golden-vm")
    with pytest.raises(ValidationError) as exc:
        request_vm_from_volume(volume=busy, template_vm=template, name="x", user=None, mode=Mode.FULL, pool=busy.pool)
    assert exc.value.message_dict == {"volume": ["app-01.qcow2 is in use by VM 'app-01', which is running."]}


def test_an_abandoned_request_frees_its_names(golden, kvm, django_capture_on_commit_callbacks, settings):
    from datetime import timedelta

    from django.utils import timezone

    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    with pytest.raises(ValidationError) as exc:
        queued(golden, django_capture_on_commit_callbacks, count=2)
    assert "Being provisioned by another request: web-01" in exc.value.message_dict["name_pattern"][0]
    long_ago = timezone.now() - timedelta(seconds=settings.VOM_OPERATION_STALE_AFTER + 1)
    Operation.objects.filter(pk=request.operation_id).update(status=Operation.Status.RUNNING, started=long_ago)
    request.vms.filter(name="web-01").update(status=ProvisionedVM.Status.CREATING_VOLUME, volume_created=True)
    again = queued(golden, django_capture_on_commit_callbacks, count=2)
    assert again.pk != request.pk
    request.operation.refresh_from_db()
    assert request.operation.status == Operation.Status.FAILED and request.operation.message == "abandoned"
    assert request.vms.get(name="web-01").error.endswith("volume web-01.qcow2 may be left in pool images")


def test_golden_image_volume_and_vm_must_belong_together(kvm):
    from provisioning.services.golden_images import register_golden_image

    volume = StorageVolume.objects.get(pool__provider=kvm, path=GOLDEN_PATH)
    other = VirtualMachine.objects.get(provider=kvm, name="app-01")
    with pytest.raises(ValidationError) as exc:
        register_golden_image(name="x", volume=volume, template_vm=other, user=None)
    assert "does not use golden.qcow2" in exc.value.message_dict["template_vm"][0]


def test_golden_image_from_a_running_vm_is_refused(kvm):
    from provisioning.services.golden_images import register_golden_image

    running = VirtualMachine.objects.get(provider=kvm, name="app-01")
    with pytest.raises(ValidationError) as exc:
        register_golden_image(name="x", template_vm=running, user=None)
    assert exc.value.message_dict["template_vm"] == [
        "VM 'app-01' is running: shut it down first, a golden image must be quiescent."
    ]


def test_disk_resize_needs_a_sensible_size(kvm):
    from provisioning.services.disks import request_disk_resize

    vm = VirtualMachine.objects.get(provider=kvm, name="golden-vm")
    disk = vm.disks.get(target="vda")
    disk.volume = None
    disk.save()
    with pytest.raises(ValidationError) as exc:
        request_disk_resize(vm=vm, disk=disk, size_bytes=-5, user=None)
    assert "Between" in exc.value.message_dict["size_gib"][0]


def test_a_huge_width_in_the_pattern_is_refused_before_formatting():
    with pytest.raises(ValueError) as exc:
        expand_pattern("x{n:2000000000}", 3)
    assert "too large" in str(exc.value)


def test_a_golden_image_must_be_its_template_vms_boot_disk(kvm):
    from provisioning.services.golden_images import register_golden_image

    data = StorageVolume.objects.get(pool__provider=kvm, name="shared.img")
    VirtualDisk = VirtualMachine.disks.rel.related_model
    golden_vm = VirtualMachine.objects.get(provider=kvm, name="golden-vm")
    VirtualDisk.objects.create(vm=golden_vm, target="vdb", source=data.path, bus="virtio")
    with pytest.raises(ValidationError) as exc:
        register_golden_image(name="data", volume=data, template_vm=golden_vm, user=None)
    assert "shared.img is its vdb, not the disk it boots from (vda)" in exc.value.message_dict["template_vm"][0]


def test_golden_image_volume_deleted_before_the_request_runs(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    conn(kvm).storageVolLookupByPath(GOLDEN_PATH).delete(0)  # someone deletes the image on the host
    op = execute_provisioning(request.operation_id)
    assert op.status == Operation.Status.FAILED
    assert set(request.vms.values_list("error", flat=True)) == {f"the image {GOLDEN_PATH} no longer exists"}
    assert not any(n.startswith("web-") for n in platform_volumes(kvm) | platform_domains(kvm))


# --- cancelling -----------------------------------------------------------------------------------


def test_a_queued_request_cancelled_ends_at_once_and_a_late_delivery_does_nothing(
    golden, kvm, admin_user, django_capture_on_commit_callbacks
):
    from provisioning.services.requests import cancel_provisioning

    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    before = (platform_domains(kvm), platform_volumes(kvm))
    cancel_provisioning(request=request, user=admin_user)
    op = Operation.objects.get(pk=request.operation_id)
    assert op.status == Operation.Status.FAILED and op.finished is not None
    assert op.error == f"cancelled by {admin_user.username}: 3 of 3 VMs not made"
    assert op.result == {"done": 0, "failed": 0, "cancelled": 3}
    assert set(request.vms.values_list("status", flat=True)) == {ProvisionedVM.Status.CANCELLED}
    assert "cancellation asked for by" in " ".join(op.log.values_list("message", flat=True))
    assert execute_provisioning(request.operation_id).status == Operation.Status.FAILED  # the task arrives late
    assert (platform_domains(kvm), platform_volumes(kvm)) == before  # nothing was made
    # The names are free again.
    again = provision(golden, django_capture_on_commit_callbacks, count=3)
    assert again.operation.status == Operation.Status.SUCCEEDED, again.operation.error


def test_a_running_request_cancelled_finishes_the_vm_being_made_and_stops(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=4)
    real_make = service._make_boot_volume
    real_refresh = service.refresh_inventory
    during_refresh = {}

    def make_and_cancel(driver, req, row):  # a user cancels while web-02's boot volume is being made
        if row.name == "web-02":
            service.cancel_provisioning(request=req, user=admin_user)
        return real_make(driver, req, row)

    def refresh_and_reuse_the_names(provider, run):  # the request still runs: its cancelled names are free
        again = request_provisioning(
            golden_image=golden, user=None, count=2, name_pattern="web-{n:02d}", first_number=3,
            mode=Mode.SPACE_OPTIMIZED, pool=golden.pool, enqueue=False,
        )  # fmt: skip
        during_refresh["status"] = Operation.objects.get(pk=request.operation_id).status
        during_refresh["names"] = list(again.vms.values_list("name", flat=True))
        return real_refresh(provider, run)

    monkeypatch.setattr(service, "_make_boot_volume", make_and_cancel)
    monkeypatch.setattr(service, "refresh_inventory", refresh_and_reuse_the_names)
    op = execute_provisioning(request.operation_id)
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "done", "web-03": "cancelled", "web-04": "cancelled"}
    assert request.vms.get(name="web-03").error == f"cancelled by {admin_user.username} before it was made"
    assert during_refresh == {"status": Operation.Status.RUNNING, "names": ["web-03", "web-04"]}
    assert op.status == Operation.Status.FAILED
    assert op.error == f"cancelled by {admin_user.username}: 2 of 4 VMs not made"
    assert op.result == {"done": 2, "failed": 0, "cancelled": 2}
    assert {"web-01", "web-02"} <= platform_domains(kvm) and "web-03" not in platform_domains(kvm)
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2", "web-02.qcow2"}
    assert VirtualMachine.objects.filter(provider=kvm, name="web-02", removed_at__isnull=True).exists()


def test_a_request_cancelled_as_its_worker_claims_it_makes_nothing(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    real_beat = service._beat
    beats = []

    def beat_and_cancel(req):  # the first beat comes right after the claim, before any VM
        real_beat(req)
        beats.append(1)
        if len(beats) == 1:
            service.cancel_provisioning(request=req, user=admin_user)

    monkeypatch.setattr(service, "_beat", beat_and_cancel)
    before = (platform_domains(kvm), platform_volumes(kvm))
    op = execute_provisioning(request.operation_id)
    assert set(request.vms.values_list("status", flat=True)) == {ProvisionedVM.Status.CANCELLED}
    assert op.result == {"done": 0, "failed": 0, "cancelled": 2}
    assert (platform_domains(kvm), platform_volumes(kvm)) == before


def test_a_cancel_once_every_vm_has_begun_is_refused(
    golden, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    real_make = service._make_boot_volume
    refusals = []

    def make_and_try_to_cancel(driver, req, row):
        if row.name == "web-02":  # the last VM: nothing is left that a cancel could stop
            with pytest.raises(ValidationError) as exc:
                service.cancel_provisioning(request=req, user=admin_user)
            refusals.append(exc.value.messages[0])
        return real_make(driver, req, row)

    monkeypatch.setattr(service, "_make_boot_volume", make_and_try_to_cancel)
    op = execute_provisioning(request.operation_id)
    assert refusals == [
        f"request #{request.pk} has no VM left to cancel: every VM has begun, and the request is finishing"
    ]
    assert op.status == Operation.Status.SUCCEEDED, op.error
    request.refresh_from_db()
    assert request.cancel_requested is None


def _stale(request, settings, **row_states):
    """The request as a worker that died left it: running, silent for longer than the stale limit."""
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(seconds=settings.VOM_OPERATION_STALE_AFTER + 60)
    Operation.objects.filter(pk=request.operation_id).update(status=Operation.Status.RUNNING, started=long_ago)
    for name, fields in row_states.items():
        request.vms.filter(name=name).update(**fields)


def test_cancelling_a_request_whose_worker_died_ends_it_at_once(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, settings
):
    from provisioning.services.requests import cancel_provisioning

    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    half_made = {"status": "creating_volume", "volume_path": f"{IMAGES}/web-02.qcow2"}
    _stale(request, settings, **{"web-01": {"status": "done"}, "web-02": half_made})
    cancel_provisioning(request=request, user=admin_user)
    op = Operation.objects.get(pk=request.operation_id)
    assert op.status == Operation.Status.FAILED and op.finished is not None
    outcome = {row.name: (row.status, row.error) for row in request.vms.all()}
    assert outcome["web-01"] == ("done", "")
    assert outcome["web-02"][0] == "failed" and "may be left in pool images" in outcome["web-02"][1]
    assert outcome["web-03"] == ("cancelled", f"cancelled by {admin_user.username} before it was made")
    assert op.result == {"done": 1, "failed": 1, "cancelled": 1}
    assert op.error.startswith(f"cancelled by {admin_user.username}: 1 of 3 VMs not made; 1 of 3 VMs failed: web-02")
    assert "ended here" in " ".join(op.log.values_list("message", flat=True))
    assert execute_provisioning(request.operation_id).status == Operation.Status.FAILED  # a redelivery: nothing


def test_an_expired_request_that_was_being_cancelled_cancels_its_waiting_vms(
    golden, django_capture_on_commit_callbacks, settings
):
    from django.utils import timezone

    from provisioning.services.requests import expire_abandoned_requests

    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    _stale(request, settings, **{"web-01": {"status": "defining", "volume_created": True}})
    ProvisioningRequest.objects.filter(pk=request.pk).update(cancel_requested=timezone.now())
    assert expire_abandoned_requests() == 1
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "failed", "web-02": "cancelled"}
    assert request.vms.get(name="web-02").error == "cancelled by the command line before it was made"


def test_cancelling_an_ended_request_or_twice_is_refused(golden, admin_user, django_capture_on_commit_callbacks):
    from provisioning.services.requests import cancel_provisioning

    done = provision(golden, django_capture_on_commit_callbacks, count=1)
    with pytest.raises(ValidationError) as exc:
        cancel_provisioning(request=done, user=admin_user)
    assert exc.value.messages == [f"request #{done.pk} has already ended (succeeded)"]
    assert done.vms.get().status == ProvisionedVM.Status.DONE

    waiting = queued(golden, django_capture_on_commit_callbacks, count=1, name_pattern="db-{n}")
    Operation.objects.filter(pk=waiting.operation_id).update(status=Operation.Status.RUNNING)  # a worker has it
    cancel_provisioning(request=waiting, user=admin_user)
    with pytest.raises(ValidationError) as exc:
        cancel_provisioning(request=waiting, user=admin_user)
    assert "was already asked for at" in exc.value.messages[0]
    assert Operation.objects.get(pk=waiting.operation_id).status == Operation.Status.RUNNING  # the worker ends it


def test_a_resumed_request_finishes_the_vm_its_dead_worker_began_then_honours_the_cancel(
    golden, kvm, django_capture_on_commit_callbacks, settings
):
    from django.utils import timezone

    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    _stale(request, settings, **{"web-01": {"status": "creating_volume", "volume_path": f"{IMAGES}/web-01.qcow2"}})
    ProvisioningRequest.objects.filter(pk=request.pk).update(cancel_requested=timezone.now())
    op = execute_provisioning(request.operation_id)  # the task redelivered: it takes the request over
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "cancelled", "web-03": "cancelled"}
    assert op.result == {"done": 1, "failed": 0, "cancelled": 2}
    assert "web-01" in platform_domains(kvm) and "web-02" not in platform_domains(kvm)


def test_an_unexpected_error_while_a_volume_is_made_removes_what_was_made(
    golden, kvm, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=2, mode=Mode.FULL)
    real_make = service._make_boot_volume

    def make_then_fail(driver, req, row):  # the copy is made, then the console trips before recording it
        real_make(driver, req, row)
        raise RuntimeError("a bug in the console")

    monkeypatch.setattr(service, "_make_boot_volume", make_then_fail)
    op = execute_provisioning(request.operation_id)
    assert request.vms.get(name="web-01").error == "internal error: RuntimeError; volume web-01.qcow2 removed"
    assert not {v for v in platform_volumes(kvm) if v.startswith("web-")}
    assert op.error == "2 of 2 VMs failed: web-01, web-02"


def test_a_platform_error_while_connected_removes_what_was_made(
    golden, kvm, django_capture_on_commit_callbacks, monkeypatch
):
    """A libvirt call that fails outside a VM's own steps fails the rest, and the host, still there, is
    cleaned up: not "may be left: the host could not be reached"."""
    from inventory.drivers.base import DriverError
    from provisioning.services import requests as service

    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)
    real_check = service._check_quiescent
    calls = []

    def check(driver, image):  # before web-01, after its volume, before web-02, after its volume: fails
        calls.append(1)
        if len(calls) == 4:
            raise DriverError("cannot look up domain: connection reset")
        return real_check(driver, image)

    monkeypatch.setattr(service, "_check_quiescent", check)
    op = execute_provisioning(request.operation_id)
    outcome = dict(request.vms.values_list("name", "status"))
    assert outcome == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    error = request.vms.get(name="web-02").error
    assert error == "cannot look up domain: connection reset; volume web-02.qcow2 removed"
    assert request.vms.get(name="web-03").error == "cannot look up domain: connection reset"
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2"}
    assert op.log.filter(level="error", message="cannot look up domain: connection reset").exists()


def test_a_vm_its_dead_worker_defined_is_kept_when_the_resumed_request_cannot_go_on(
    golden, kvm, django_capture_on_commit_callbacks, settings
):
    """The worker died between defining web-01 and recording it; the image's VM has been started since."""
    from inventory.drivers.libvirt import LibvirtDriver
    from inventory.drivers.libvirt_storage import create_overlay_volume, define_vm_from_template

    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    driver = LibvirtDriver(kvm.uri)
    create_overlay_volume(driver, "images", "web-01.qcow2", GOLDEN_PATH)
    uuid1 = define_vm_from_template(
        driver, request.template_xml, name="web-01", boot_volume_path=f"{IMAGES}/web-01.qcow2"
    )
    _stale(request, settings, **{"web-01": {"status": "defining", "volume_created": True}})
    conn(kvm).lookupByName("golden-vm").create()
    op = execute_provisioning(request.operation_id)
    row = request.vms.get(name="web-01")
    assert row.status == ProvisionedVM.Status.FAILED and row.vm_uuid == uuid1
    assert row.error.endswith("; VM web-01 had been defined on volume web-01.qcow2: both are kept")
    assert "web-01.qcow2" in platform_volumes(kvm) and "web-01" in platform_domains(kvm)
    assert op.status == Operation.Status.FAILED
