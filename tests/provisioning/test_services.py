"""Provisioning services against libvirt's test:/// driver: golden images, requests, faults, savings.

A request is a job (``provision_vms``) with a child job per VM; it runs to its end here with
``run_now``. Faults are injected at the executor's one seam, ``platform.Platform`` (the
``platform_faults`` fixture), over the real test:/// driver: never by patching the executor itself.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt import LibvirtDriver
from inventory.models import StorageVolume, VirtualMachine
from inventory.services.discovery import discoveries
from provisioning.models import Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.requests import cancel_provisioning, expand_pattern, request_provisioning
from provisioning.services.requests.platform import Platform
from tests.jobtools import as_if_its_worker_died
from tests.provisioning.conftest import GOLDEN_PATH, IMAGES
from vom.jobs import lifecycle
from vom.jobs.models import Job
from vom.jobs.runner import run_now, run_step

J = Job.Status


def provision(golden, django_capture_on_commit_callbacks, **kwargs):
    """A request recorded and run to its end (sent on commit; the test settings run tasks here)."""
    args = {"user": None, "count": 3, "name_pattern": "web-{n:02d}", "mode": Mode.SPACE_OPTIMIZED}
    args.update(kwargs)
    args.setdefault("pool", golden.pool)
    with django_capture_on_commit_callbacks(execute=True):
        request = request_provisioning(golden_image=golden, **args)
    request.refresh_from_db()
    request.job.refresh_from_db()
    return request


def test_space_optimized_request_makes_children_and_vms(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, start=True)
    job = request.job
    assert (job.kind, job.status, job.target) == ("provision_vms", J.SUCCEEDED, golden), job.error
    assert job.result == {"done": 3, "failed": 0, "cancelled": 0} and job.progress == 100
    rows = list(request.vms.select_related("job").all())
    assert [r.name for r in rows] == ["web-01", "web-02", "web-03"]
    assert all(r.status == ProvisionedVM.Status.DONE and r.phase == ProvisionedVM.Phase.FINISHED for r in rows)
    # Each VM is a child job of the request, run inline by its worker, in order.
    children = list(job.children.order_by("position"))
    assert [(c.kind, c.target_name, c.status, c.inline) for c in children] == [
        ("provision_vm", name, J.SUCCEEDED, True) for name in ("web-01", "web-02", "web-03")
    ]
    assert [r.job_id for r in rows] == [c.pk for c in children]
    vms = VirtualMachine.objects.filter(provider=kvm, name__startswith="web-")
    assert {vm.name: vm.state for vm in vms} == {"web-01": "running", "web-02": "running", "web-03": "running"}
    vols = StorageVolume.objects.filter(pool__provider=kvm, name__startswith="web-")
    assert {v.name: v.backing_store for v in vols} == {f"web-0{i}.qcow2": GOLDEN_PATH for i in (1, 2, 3)}
    assert {r.vm_uuid for r in rows} == {vm.uuid for vm in vms}


# --- helpers ----------------------------------------------------------------------------------


def conn(provider):
    return LibvirtDriver(provider.uri).connection()


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
    assert not Job.objects.filter(kind__in=["provision_vms", "provision_vm"]).exists()
    assert not ProvisioningRequest.objects.exists()
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
    """A request recorded but not yet executed (its job is not sent)."""
    args = {"user": None, "count": 3, "name_pattern": "web-{n:02d}", "mode": Mode.SPACE_OPTIMIZED, "pool": golden.pool}
    args.update(kwargs)
    with django_capture_on_commit_callbacks(execute=False):
        request = request_provisioning(golden_image=golden, **args)
    assert request.job.status == J.PENDING
    return request


def run(request) -> Job:
    """Run the request's job to its end here, as a worker would."""
    return run_now(request.job_id)


def outcome(request) -> dict[str, str]:
    return {row.name: row.status for row in request.vms.select_related("job").order_by("index")}


def errors(request) -> dict[str, str]:
    return {row.name: row.error for row in request.vms.select_related("job").order_by("index")}


def test_full_copies(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, count=2, mode=Mode.FULL)
    assert request.job.status == J.SUCCEEDED, request.job.error
    vols = {v.name: v for v in StorageVolume.objects.filter(pool__provider=kvm, name__startswith="web-")}
    assert set(vols) == {"web-01.qcow2", "web-02.qcow2"}
    assert all(v.backing_store == "" and v.capacity_bytes == golden.capacity_bytes for v in vols.values())
    vms = VirtualMachine.objects.filter(provider=kvm, name__startswith="web-")
    assert {vm.state for vm in vms} == {"stopped"}  # not asked to start


def test_name_taken_between_validation_and_creation(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks)
    define_plain_domain(kvm, "web-02")  # someone defines web-02 behind the console's back
    job = run(request)
    assert job.status == J.FAILED
    assert job.error == "1 of 3 VMs failed: web-02"
    assert job.result == {"done": 2, "failed": 1, "cancelled": 0}
    row = request.vms.get(name="web-02")
    assert row.status == ProvisionedVM.Status.FAILED
    assert "already defined" in row.error and "volume web-02.qcow2 removed" in row.error
    assert "web-02.qcow2" not in platform_volumes(kvm)  # no orphan
    assert {"web-01.qcow2", "web-03.qcow2"} <= platform_volumes(kvm)
    assert list(request.vms.filter(job__status=J.SUCCEEDED).values_list("name", flat=True)) == ["web-01", "web-03"]


def test_volume_made_behind_the_consoles_back_is_not_deleted(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    conn(kvm).storagePoolLookupByName("images").createXML(raw_volume_xml("web-01.qcow2", 1024**2), 0)
    job = run(request)
    assert job.error == "1 of 2 VMs failed: web-01"
    assert "made by someone else" in request.vms.get(name="web-01").error
    assert "web-01.qcow2" in platform_volumes(kvm)  # not ours: left alone
    assert "web-01" not in platform_domains(kvm)


def test_out_of_space_mid_request(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks, count=4, mode=Mode.FULL)
    pool = conn(kvm).storagePoolLookupByName("images")
    free = pool.info()[3]
    # Leave room for two full copies (10 GiB each on the test driver's books), not four.
    pool.createXML(raw_volume_xml("filler.img", free - 25 * 1024**3), 0)
    job = run(request)
    assert outcome(request) == {"web-01": "done", "web-02": "done", "web-03": "failed", "web-04": "failed"}
    assert "Not enough free space" in request.vms.get(name="web-03").error
    assert job.error == "2 of 4 VMs failed: web-03, web-04"
    assert not {"web-03.qcow2", "web-04.qcow2"} & platform_volumes(kvm)
    assert not {"web-03", "web-04"} & platform_domains(kvm)


def test_golden_image_unregistered_before_the_request_runs(golden, kvm, django_capture_on_commit_callbacks):
    request = queued(golden, django_capture_on_commit_callbacks)
    golden.delete()
    job = run(request)
    assert job.status == J.FAILED
    assert set(errors(request).values()) == {"golden image 'debian-12' was unregistered during the request"}
    assert not any(n.startswith("web-") for n in platform_volumes(kvm))


def test_template_vm_started_mid_request(golden, kvm, django_capture_on_commit_callbacks, platform_faults):
    class StartsTheImageAfterTheFirstVM(Platform):
        def define_vm(self, template_xml, **kwargs):
            vm_uuid = super().define_vm(template_xml, **kwargs)
            if kwargs["name"] == "web-01":  # web-01 is made; then someone starts the golden image's VM
                conn(kvm).lookupByName("golden-vm").create()
            return vm_uuid

    platform_faults(StartsTheImageAfterTheFirstVM)
    request = queued(golden, django_capture_on_commit_callbacks)
    job = run(request)
    assert outcome(request) == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    assert "was started during the request" in request.vms.get(name="web-02").error
    assert job.status == J.FAILED and job.error == "2 of 3 VMs failed: web-02, web-03"
    assert {d for d in platform_domains(kvm) if d.startswith("web-")} == {"web-01"}


def test_a_template_vm_started_while_a_volume_is_made_fails_that_vm(
    golden, kvm, django_capture_on_commit_callbacks, platform_faults
):
    """The image must stay quiescent while it is read: it is checked again once each volume is made."""

    class StartsTheImageDuringTheCopy(Platform):
        def make_copy(self, pool, source_path, name, source_format):
            info = super().make_copy(pool, source_path, name, source_format)
            if name == "web-02.qcow2":
                conn(kvm).lookupByName("golden-vm").create()  # someone starts the image's VM during the copy
            return info

    platform_faults(StartsTheImageDuringTheCopy)
    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)
    job = run(request)
    assert outcome(request) == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    error = request.vms.get(name="web-02").error
    assert error.startswith("the golden image's VM 'golden-vm' was started during the request")
    assert error.endswith("; volume web-02.qcow2 removed")
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2"}
    assert {d for d in platform_domains(kvm) if d.startswith("web-")} == {"web-01"}
    assert job.status == J.FAILED


def test_an_unexpected_error_leaves_no_volume_behind(golden, kvm, django_capture_on_commit_callbacks, platform_faults):
    """A fault in the console itself (not the platform's) still removes the volume made for the VM."""

    class DefineTrips(Platform):
        def define_vm(self, template_xml, **kwargs):
            raise RuntimeError("a bug in the console")

    platform_faults(DefineTrips)
    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)
    job = run(request)
    assert set(outcome(request).values()) == {ProvisionedVM.Status.FAILED}
    assert not {v for v in platform_volumes(kvm) if v.startswith("web-")}
    assert not {d for d in platform_domains(kvm) if d.startswith("web-")}
    assert request.vms.get(name="web-01").error == "internal error: RuntimeError; volume web-01.qcow2 removed"
    assert request.vms.get(name="web-02").error == "internal error: RuntimeError"  # not begun: nothing to remove
    assert job.status == J.FAILED and job.error == "3 of 3 VMs failed: web-01, web-02, web-03"


def test_redelivered_task_does_nothing(golden, kvm, django_capture_on_commit_callbacks):
    request = provision(golden, django_capture_on_commit_callbacks, count=2)
    before = platform_domains(kvm)
    first = Job.objects.get(pk=request.job_id)
    assert first.status == J.SUCCEEDED
    log_lines = first.log.count()
    runs = discoveries(kvm).count()
    assert run_step(request.job_id, first.step) is None  # the same message delivered again
    job = Job.objects.get(pk=request.job_id)
    assert (job.status, job.finished, job.result, job.progress) == (first.status, first.finished, first.result, 100)
    assert job.log.count() == log_lines  # nothing executed, nothing logged
    assert discoveries(kvm).count() == runs  # no inventory refresh either
    assert platform_domains(kvm) == before


def _died_while(request, **rows):
    """The request as a worker that died left it: claimed, its VMs in the phases given, silent since.

    ``rows``: name → the row's fields, with ``status`` the VM's job status (default running).
    """
    from django.utils import timezone

    held = as_if_its_worker_died(request.job)
    now = timezone.now()
    for name, fields in rows.items():
        fields = dict(fields)
        status = fields.pop("status", J.RUNNING)
        row = request.vms.get(name=name)
        ProvisionedVM.objects.filter(pk=row.pk).update(**fields)
        ended = status not in (J.PENDING, J.RUNNING)
        Job.objects.filter(pk=row.job_id).update(
            status=status,
            claim="" if ended else held.claim,
            started=now,
            finished=now if ended else None,
            progress=100 if status == J.SUCCEEDED else 0,
        )
    return held


def _resumed(request, sent) -> Job:
    """The sweep finds the dead worker's request and hands it to another worker, which runs it here."""
    sent.clear()
    assert lifecycle.expire_stale() == 1
    job = Job.objects.get(pk=request.job_id)
    assert (job.status, job.resumes, job.claim) == (J.RUNNING, 1, "")
    assert sent == [(job.pk, job.step, "provisioning")]
    return run_now(job.pk)


def _platform(kvm) -> Platform:
    return Platform(LibvirtDriver(kvm.uri))


def _define(kvm, request, name) -> str:
    return _platform(kvm).define_vm(
        request.template_xml,
        name=name,
        boot_volume_path=f"{IMAGES}/{name}.qcow2",
        boot_format="qcow2",
        vcpus=request.vcpus,
        memory_bytes=request.memory_bytes,
        network=None,
        bridge=None,
    )


def test_abandoned_request_is_resumed_without_duplicates(golden, kvm, django_capture_on_commit_callbacks, sent):
    """A worker died after making web-01's volume and defining web-02: the sweep resumes the request on
    another worker, which finishes the job."""
    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    platform = _platform(kvm)
    platform.make_child("images", "web-01.qcow2", GOLDEN_PATH, "qcow2")
    platform.make_child("images", "web-02.qcow2", GOLDEN_PATH, "qcow2")
    uuid2 = _define(kvm, request, "web-02")
    _died_while(
        request,
        **{
            "web-01": {"phase": ProvisionedVM.Phase.CREATING_VOLUME},
            "web-02": {"phase": ProvisionedVM.Phase.DEFINING, "volume_created": True},
        },
    )
    job = _resumed(request, sent)
    assert job.status == J.SUCCEEDED, job.error
    assert job.log.filter(message__startswith="resuming: the worker running this request stopped").exists()
    names = [n for n in platform_domains(kvm) if n.startswith("web-")]
    assert sorted(names) == ["web-01", "web-02", "web-03"]  # web-02 not defined twice
    assert request.vms.get(name="web-02").vm_uuid == uuid2
    assert set(outcome(request).values()) == {"done"}


def test_running_request_with_a_live_worker_is_not_taken_over(golden, kvm, django_capture_on_commit_callbacks, sent):
    request = queued(golden, django_capture_on_commit_callbacks)
    held = lifecycle.claim(request.job_id, 0)  # a worker has it, and beats
    assert held is not None
    assert lifecycle.expire_stale() == 0 and sent == []
    assert run_step(request.job_id, 0) is None  # a second delivery of its message
    job = run(request)  # nor does running it here take it over
    assert job.status == J.RUNNING and job.claim == held.claim
    assert not any(n.startswith("web-") for n in platform_domains(kvm))


def test_new_vm_with_a_boot_disk_from_a_pool_volume(kvm, django_capture_on_commit_callbacks):
    from provisioning.services.requests import request_vm_from_volume

    source = StorageVolume.objects.get(pool__provider=kvm, name="old-web.qcow2")
    template = VirtualMachine.objects.get(provider=kvm, name="app-01")  # running: only its definition is used
    with django_capture_on_commit_callbacks(execute=True):
        request = request_vm_from_volume(
            volume=source, template_vm=template, name="legacy-web", user=None, mode=Mode.FULL, pool=source.pool
        )
    request.job.refresh_from_db()
    assert request.job.status == J.SUCCEEDED, request.job.error
    assert request.job.target == kvm  # no golden image: the job is the host's
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


def test_an_abandoned_request_frees_its_names(golden, kvm, django_capture_on_commit_callbacks, settings, sent):
    """Changed: a request whose worker died is resumed by the sweep (its names stay taken meanwhile);
    only one resumed too often is ended as abandoned, which frees its names."""
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    with pytest.raises(ValidationError) as exc:
        queued(golden, django_capture_on_commit_callbacks, count=2)
    assert "Being provisioned by another request: web-01" in exc.value.message_dict["name_pattern"][0]
    Job.objects.filter(pk=request.job_id).update(resumes=settings.VOM_JOB_MAX_RESUMES)
    _died_while(request, **{"web-01": {"phase": ProvisionedVM.Phase.CREATING_VOLUME, "volume_created": True}})
    with pytest.raises(ValidationError):  # not yet: nothing is expired by asking
        queued(golden, django_capture_on_commit_callbacks, count=2)
    assert lifecycle.expire_stale() == 1 and sent == []
    again = queued(golden, django_capture_on_commit_callbacks, count=2)
    assert again.pk != request.pk
    job = Job.objects.get(pk=request.job_id)
    assert job.status == J.ABANDONED and job.message == "abandoned"
    assert f"it was resumed {settings.VOM_JOB_MAX_RESUMES} times already" in job.error
    assert request.vms.get(name="web-01").error.endswith("; volume web-01.qcow2 may be left in pool images")
    assert request.vms.get(name="web-01").status == ProvisionedVM.Status.FAILED
    assert request.vms.get(name="web-02").status == ProvisionedVM.Status.FAILED


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
    assert not Job.objects.filter(kind="disk_resize").exists()


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
    job = run(request)
    assert job.status == J.FAILED
    assert set(errors(request).values()) == {f"the image {GOLDEN_PATH} no longer exists"}
    assert not any(n.startswith("web-") for n in platform_volumes(kvm) | platform_domains(kvm))


# --- cancelling -----------------------------------------------------------------------------------


def test_a_queued_request_cancelled_ends_at_once_and_a_late_delivery_does_nothing(
    golden, kvm, admin_user, django_capture_on_commit_callbacks
):
    """Changed: a request cancelled before it started ends as the job core ends any queued job: status
    "cancelled", "cancelled by alice before it started" (it was a failure "… 3 of 3 VMs not made")."""
    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    before = (platform_domains(kvm), platform_volumes(kvm))
    cancel_provisioning(request=request, user=admin_user)
    job = Job.objects.get(pk=request.job_id)
    assert job.status == J.CANCELLED and job.finished is not None and job.cancelled_by == admin_user
    assert job.error == f"cancelled by {admin_user.username} before it started"
    assert job.result == {"done": 0, "failed": 0, "cancelled": 3}
    assert set(outcome(request).values()) == {ProvisionedVM.Status.CANCELLED}
    assert set(errors(request).values()) == {f"cancelled by {admin_user.username} before it was made"}
    assert "cancellation asked for by" in " ".join(job.log.values_list("message", flat=True))
    assert run_step(request.job_id, 0) is None  # the task arrives late: nothing
    assert Job.objects.get(pk=request.job_id).status == J.CANCELLED
    assert (platform_domains(kvm), platform_volumes(kvm)) == before  # nothing was made
    # The names are free again.
    again = provision(golden, django_capture_on_commit_callbacks, count=3)
    assert again.job.status == J.SUCCEEDED, again.job.error


def test_a_running_request_cancelled_finishes_the_vm_being_made_and_stops(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, platform_faults
):
    seen = {}

    class CancelledDuringWeb02(Platform):
        def make_child(self, pool, name, backing_path, backing_format):
            if name == "web-02.qcow2":  # a user cancels while web-02's boot volume is being made
                cancel_provisioning(request=ProvisioningRequest.objects.get(pk=request.pk), user=admin_user)
            return super().make_child(pool, name, backing_path, backing_format)

        def refresh_pool(self, pool):  # after the VMs, the request still runs: its cancelled names are free
            again = request_provisioning(
                golden_image=golden, user=None, count=2, name_pattern="web-{n:02d}", first_number=3,
                mode=Mode.SPACE_OPTIMIZED, pool=golden.pool, enqueue=False,
            )  # fmt: skip
            seen["status"] = Job.objects.get(pk=request.job_id).status
            seen["names"] = list(again.vms.values_list("name", flat=True))
            return super().refresh_pool(pool)

    platform_faults(CancelledDuringWeb02)
    request = queued(golden, django_capture_on_commit_callbacks, count=4)
    job = run(request)
    assert outcome(request) == {"web-01": "done", "web-02": "done", "web-03": "cancelled", "web-04": "cancelled"}
    assert request.vms.get(name="web-03").error == f"cancelled by {admin_user.username} before it was made"
    assert seen == {"status": J.RUNNING, "names": ["web-03", "web-04"]}
    assert job.status == J.FAILED
    assert job.error == f"cancelled by {admin_user.username}: 2 of 4 VMs not made"
    assert job.result == {"done": 2, "failed": 0, "cancelled": 2}
    assert {"web-01", "web-02"} <= platform_domains(kvm) and "web-03" not in platform_domains(kvm)
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2", "web-02.qcow2"}
    assert VirtualMachine.objects.filter(provider=kvm, name="web-02", removed_at__isnull=True).exists()


def test_a_request_cancelled_as_its_worker_claims_it_makes_nothing(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, platform_faults
):
    calls = []

    class CancelledAtTheFirstCall(Platform):
        def is_running(self, vm_uuid):  # the first platform call, right after the claim, before any VM
            calls.append(vm_uuid)
            if len(calls) == 1:
                cancel_provisioning(request=ProvisioningRequest.objects.get(pk=request.pk), user=admin_user)
            return super().is_running(vm_uuid)

    platform_faults(CancelledAtTheFirstCall)
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    before = (platform_domains(kvm), platform_volumes(kvm))
    job = run(request)
    assert calls and Job.objects.get(pk=request.job_id).cancel_requested is not None
    assert set(outcome(request).values()) == {ProvisionedVM.Status.CANCELLED}
    assert job.result == {"done": 0, "failed": 0, "cancelled": 2}
    assert (platform_domains(kvm), platform_volumes(kvm)) == before


def test_a_cancel_once_every_vm_has_begun_is_refused(
    golden, admin_user, django_capture_on_commit_callbacks, platform_faults
):
    refusals = []

    class TriesToCancelDuringTheLastVM(Platform):
        def make_child(self, pool, name, backing_path, backing_format):
            if name == "web-02.qcow2":  # the last VM: nothing is left that a cancel could stop
                with pytest.raises(ValidationError) as exc:
                    cancel_provisioning(request=ProvisioningRequest.objects.get(pk=request.pk), user=admin_user)
                refusals.append(exc.value.messages[0])
            return super().make_child(pool, name, backing_path, backing_format)

    platform_faults(TriesToCancelDuringTheLastVM)
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    job = run(request)
    assert refusals == [
        f"request #{request.pk} has no VM left to cancel: every VM has begun, and the request is finishing"
    ]
    assert job.status == J.SUCCEEDED, job.error
    assert job.cancel_requested is None and job.cancelled_by is None


def test_cancelling_a_request_whose_worker_died_is_honoured_when_it_is_resumed(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, sent
):
    """Changed: cancelling no longer ends such a request at once (only the sweep judges a worker dead): the
    cancel is recorded, the sweep resumes the request, and the new worker finishes the VM its dead
    worker had begun and makes none of those not begun."""
    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    half_made = {"phase": ProvisionedVM.Phase.CREATING_VOLUME}
    done = {"status": J.SUCCEEDED, "phase": ProvisionedVM.Phase.FINISHED}
    _platform(kvm).make_child("images", "web-01.qcow2", GOLDEN_PATH, "qcow2")
    _define(kvm, request, "web-01")
    _died_while(request, **{"web-01": {**done, "volume_created": True}, "web-02": half_made})
    cancel_provisioning(request=request, user=admin_user)
    job = Job.objects.get(pk=request.job_id)
    assert job.status == J.RUNNING and job.cancel_requested is not None  # not ended by asking
    job = _resumed(request, sent)
    assert outcome(request) == {"web-01": "done", "web-02": "done", "web-03": "cancelled"}
    assert request.vms.get(name="web-03").error == f"cancelled by {admin_user.username} before it was made"
    assert job.status == J.FAILED and job.result == {"done": 2, "failed": 0, "cancelled": 1}
    assert job.error == f"cancelled by {admin_user.username}: 1 of 3 VMs not made"
    assert {d for d in platform_domains(kvm) if d.startswith("web-")} == {"web-01", "web-02"}
    assert run_step(job.pk, job.step) is None  # a redelivery: nothing


def test_an_abandoned_request_that_was_being_cancelled_cancels_its_waiting_vms(
    golden, admin_user, django_capture_on_commit_callbacks, settings, sent
):
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    Job.objects.filter(pk=request.job_id).update(resumes=settings.VOM_JOB_MAX_RESUMES)
    _died_while(request, **{"web-01": {"phase": ProvisionedVM.Phase.DEFINING, "volume_created": True}})
    cancel_provisioning(request=request, user=admin_user)
    assert lifecycle.expire_stale() == 1
    assert Job.objects.get(pk=request.job_id).status == J.ABANDONED
    assert outcome(request) == {"web-01": "failed", "web-02": "cancelled"}
    assert "volume web-01.qcow2 may be left in pool images" in request.vms.get(name="web-01").error
    assert request.vms.get(name="web-02").error == f"cancelled by {admin_user.username} before it was made"


def test_cancelling_an_ended_request_or_twice_is_refused(golden, admin_user, django_capture_on_commit_callbacks):
    done = provision(golden, django_capture_on_commit_callbacks, count=1)
    with pytest.raises(ValidationError) as exc:
        cancel_provisioning(request=done, user=admin_user)
    assert exc.value.messages == [f"request #{done.pk} has already ended (succeeded)"]
    assert done.vms.get().status == ProvisionedVM.Status.DONE

    waiting = queued(golden, django_capture_on_commit_callbacks, count=1, name_pattern="db-{n}")
    assert lifecycle.claim(waiting.job_id, 0) is not None  # a worker has it
    cancel_provisioning(request=waiting, user=admin_user)
    with pytest.raises(ValidationError) as exc:
        cancel_provisioning(request=waiting, user=admin_user)
    assert "was already asked for at" in exc.value.messages[0]
    assert Job.objects.get(pk=waiting.job_id).status == J.RUNNING  # the worker ends it


def test_a_resumed_request_finishes_the_vm_its_dead_worker_began_then_honours_the_cancel(
    golden, kvm, admin_user, django_capture_on_commit_callbacks, sent
):
    request = queued(golden, django_capture_on_commit_callbacks, count=3)
    _died_while(request, **{"web-01": {"phase": ProvisionedVM.Phase.CREATING_VOLUME}})
    cancel_provisioning(request=request, user=admin_user)
    job = _resumed(request, sent)  # the sweep hands it to another worker, which takes the request over
    assert outcome(request) == {"web-01": "done", "web-02": "cancelled", "web-03": "cancelled"}
    assert job.result == {"done": 1, "failed": 0, "cancelled": 2}
    assert "web-01" in platform_domains(kvm) and "web-02" not in platform_domains(kvm)


def test_an_unexpected_error_while_a_volume_is_made_removes_what_was_made(
    golden, kvm, django_capture_on_commit_callbacks, platform_faults
):
    class TripsAfterTheCopy(Platform):
        def make_copy(self, pool, source_path, name, source_format):
            super().make_copy(pool, source_path, name, source_format)  # the copy is made,
            raise RuntimeError("a bug in the console")  # then the console trips before recording it

    platform_faults(TripsAfterTheCopy)
    request = queued(golden, django_capture_on_commit_callbacks, count=2, mode=Mode.FULL)
    job = run(request)
    assert not {v for v in platform_volumes(kvm) if v.startswith("web-")}
    assert request.vms.get(name="web-01").error == "internal error: RuntimeError; volume web-01.qcow2 removed"
    assert job.error == "2 of 2 VMs failed: web-01, web-02"


def test_a_platform_error_while_connected_removes_what_was_made(
    golden, kvm, django_capture_on_commit_callbacks, platform_faults
):
    """A libvirt call that fails outside a VM's own steps fails the rest, and the host, still there, is
    cleaned up: not "may be left: the host could not be reached"."""
    calls = []

    class LosesTheHostAtTheFourthCheck(Platform):
        def is_running(self, vm_uuid):  # before web-01, after its volume, before web-02, after its volume: fails
            calls.append(vm_uuid)
            if len(calls) == 4:
                raise DriverError("cannot look up domain: connection reset", retryable=True)
            return super().is_running(vm_uuid)

    platform_faults(LosesTheHostAtTheFourthCheck)
    request = queued(golden, django_capture_on_commit_callbacks, count=3, mode=Mode.FULL)
    job = run(request)
    assert outcome(request) == {"web-01": "done", "web-02": "failed", "web-03": "failed"}
    assert {v for v in platform_volumes(kvm) if v.startswith("web-")} == {"web-01.qcow2"}
    error = request.vms.get(name="web-02").error
    assert error == "cannot look up domain: connection reset; volume web-02.qcow2 removed"
    assert request.vms.get(name="web-03").error == "cannot look up domain: connection reset"
    assert job.log.filter(level="error", message="cannot look up domain: connection reset").exists()


def test_a_vm_its_dead_worker_defined_is_kept_when_the_resumed_request_cannot_go_on(
    golden, kvm, django_capture_on_commit_callbacks, sent
):
    """The worker died between defining web-01 and recording it; the image's VM has been started since."""
    request = queued(golden, django_capture_on_commit_callbacks, count=2)
    _platform(kvm).make_child("images", "web-01.qcow2", GOLDEN_PATH, "qcow2")
    uuid1 = _define(kvm, request, "web-01")
    _died_while(request, **{"web-01": {"phase": ProvisionedVM.Phase.DEFINING, "volume_created": True}})
    conn(kvm).lookupByName("golden-vm").create()
    job = _resumed(request, sent)
    row = request.vms.get(name="web-01")
    assert row.status == ProvisionedVM.Status.FAILED and row.vm_uuid == uuid1
    assert row.error.endswith("; VM web-01 had been defined on volume web-01.qcow2: both are kept")
    assert "web-01.qcow2" in platform_volumes(kvm) and "web-01" in platform_domains(kvm)
    assert job.status == J.FAILED
