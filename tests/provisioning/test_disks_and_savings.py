"""Data disks, disk resizes and volume clones on libvirt's test:/// driver, and the storage savings."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from inventory.models import StoragePool, StorageVolume, VirtualDisk, VirtualMachine
from provisioning.models import Mode
from provisioning.services.disks import request_disk_add, request_disk_resize, request_volume_clone
from provisioning.services.requests import request_provisioning
from provisioning.services.savings import image_savings, pool_savings
from tests.provisioning.conftest import GOLDEN_PATH, IMAGES, MiB
from vom.jobs.models import Job

S = Job.Status

GiB = 1024**3


def run(django_capture_on_commit_callbacks, request, **kwargs) -> Job:
    """Request the work and run it to its end (sent on commit; the test settings run tasks here)."""
    with django_capture_on_commit_callbacks(execute=True):
        op = request(**kwargs)
    op.refresh_from_db()
    return op


def vm_named(kvm, name):
    return VirtualMachine.objects.get(provider=kvm, name=name)


def test_data_disk_for_a_running_vm_is_made_persistent(kvm, django_capture_on_commit_callbacks):
    app = vm_named(kvm, "app-01")
    pool = StoragePool.objects.get(provider=kvm, name="images")
    op = run(
        django_capture_on_commit_callbacks,
        request_disk_add,
        vm=app,
        user=None,
        pool=pool,
        size_bytes=5 * GiB,
        bus="virtio",
    )
    assert op.status == S.SUCCEEDED, op.error
    assert (op.kind, op.target, op.lock) == ("disk_add", app, f"vm:{app.pk}")
    # test:/// cannot hot-plug: the disk goes into the definition and appears at the next start.
    assert op.result["target"] == "vdb" and op.result["persistent"] is True and op.result["live"] is False
    assert op.log.filter(level="warning").exists()
    disk = VirtualDisk.objects.get(vm=app, target="vdb")
    assert disk.source == f"{IMAGES}/app-01-data1.qcow2" and disk.persistent
    assert disk.details["pending"] == "in the definition only: attached at the next start"
    volume = StorageVolume.objects.get(pool=pool, name="app-01-data1.qcow2")
    assert volume.capacity_bytes == 5 * GiB


def test_scsi_data_disk_gets_an_sd_target(kvm, django_capture_on_commit_callbacks):
    vm = vm_named(kvm, "golden-vm")
    pool = StoragePool.objects.get(provider=kvm, name="images")
    op = run(
        django_capture_on_commit_callbacks,
        request_disk_add,
        vm=vm,
        user=None,
        pool=pool,
        size_bytes=GiB,
        bus="scsi",
        format="raw",
        name="golden-scratch.img",
    )
    assert op.status == S.SUCCEEDED, op.error
    assert op.result["target"] == "sda"
    assert VirtualDisk.objects.get(vm=vm, target="sda").bus == "scsi"


def test_data_disk_refusals(kvm):
    app = vm_named(kvm, "app-01")
    images = StoragePool.objects.get(provider=kvm, name="images")
    lvm = StoragePool.objects.get(provider=kvm, name="lvm")
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=app, user=None, pool=lvm, size_bytes=0, bus="ide", format="vmdk", name="bad/name")
    assert set(exc.value.message_dict) == {"bus", "format", "name", "size_gib", "pool"}
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=app, user=None, pool=images, size_bytes=GiB, name="old-web.qcow2")
    assert exc.value.message_dict == {"name": ["Pool images already has a volume named 'old-web.qcow2'."]}
    assert not Job.objects.exclude(kind="discovery").exists()


def test_virtio_limit_points_to_scsi(kvm):
    app = vm_named(kvm, "app-01")
    VirtualDisk.objects.bulk_create(
        VirtualDisk(vm=app, target=f"vd{chr(ord('b') + i)}", bus="virtio", source=f"/x/{i}") for i in range(27)
    )
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=app, user=None, pool=StoragePool.objects.get(provider=kvm, name="images"), size_bytes=GiB)
    assert (
        "already has 28 virtio disks" in exc.value.message_dict["bus"][0] and "scsi" in exc.value.message_dict["bus"][0]
    )


def test_a_disk_attached_elsewhere_needs_shareable_on_both(kvm, django_capture_on_commit_callbacks):
    shared = StorageVolume.objects.get(pool__provider=kvm, name="shared.img")
    app, golden_vm = vm_named(kvm, "app-01"), vm_named(kvm, "golden-vm")
    op = run(django_capture_on_commit_callbacks, request_disk_add, vm=app, user=None, volume=shared)
    assert op.status == S.SUCCEEDED, op.error
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=golden_vm, user=None, volume=shared, shareable=True)
    assert "already attached to VM 'app-01' as vdb without 'shareable'" in exc.value.message_dict["volume"][0]
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=app, user=None, volume=shared)
    assert "already attached to VM 'app-01'" in exc.value.message_dict["volume"][0]


def test_shareable_disk_attached_to_two_vms(kvm, django_capture_on_commit_callbacks):
    shared = StorageVolume.objects.get(pool__provider=kvm, name="shared.img")
    app, golden_vm = vm_named(kvm, "app-01"), vm_named(kvm, "golden-vm")
    for vm in (app, golden_vm):
        op = run(django_capture_on_commit_callbacks, request_disk_add, vm=vm, user=None, volume=shared, shareable=True)
        assert op.status == S.SUCCEEDED, op.error
    disks = VirtualDisk.objects.filter(source=shared.path)
    assert {(d.vm.name, d.shareable, d.cache) for d in disks} == {("app-01", True, "none"), ("golden-vm", True, "none")}


def test_resize_refusals_and_a_clear_platform_error(kvm, django_capture_on_commit_callbacks):
    app = vm_named(kvm, "app-01")
    vda = app.disks.get(target="vda")
    with pytest.raises(ValidationError) as exc:
        request_disk_resize(vm=app, disk=vda, size_bytes=20 * GiB, user=None)
    assert "virtio-blk has no online resize. Shut the VM down first." in exc.value.message_dict["disk"][0]
    with pytest.raises(ValidationError) as exc:
        request_disk_resize(vm=app, disk=vda, size_bytes=5 * GiB, user=None)
    assert "shrinking" in str(exc.value)

    # test:/// cannot resize volumes (virStorageVolResize): the offline resize is tested on a real libvirtd.
    stopped = vm_named(kvm, "golden-vm")
    op = run(
        django_capture_on_commit_callbacks,
        request_disk_resize,
        vm=stopped,
        disk=stopped.disks.get(target="vda"),
        size_bytes=12 * GiB,
        user=None,
    )
    assert op.status == S.FAILED
    assert op.error == (
        "cannot resize disk vda of VM 'golden-vm' to 12 GiB: "
        "this function is not supported by the connection driver: virStorageVolResize"
    )


@pytest.mark.parametrize("mode", [Mode.FULL, Mode.SPACE_OPTIMIZED])
def test_volume_clone(kvm, django_capture_on_commit_callbacks, mode):
    source = StorageVolume.objects.get(pool__provider=kvm, name="app-01.qcow2")
    op = run(
        django_capture_on_commit_callbacks,
        request_volume_clone,
        volume=source,
        name="app-01-copy.qcow2",
        user=None,
        mode=mode,
    )
    assert op.status == S.SUCCEEDED, op.error
    assert (op.kind, op.target, op.lock) == ("volume_clone", source, "")
    clone = StorageVolume.objects.get(pool=source.pool, name="app-01-copy.qcow2")
    assert clone.capacity_bytes == source.capacity_bytes
    assert clone.backing_store == (source.path if mode == Mode.SPACE_OPTIMIZED else "")
    with pytest.raises(ValidationError) as exc:
        request_volume_clone(volume=source, name="app-01-copy.qcow2", user=None)
    assert exc.value.message_dict == {"name": ["Pool images already has a volume named 'app-01-copy.qcow2'."]}


def test_savings_of_an_image_and_its_pool(golden, kvm, django_capture_on_commit_callbacks):
    for mode, pattern, count in ((Mode.SPACE_OPTIMIZED, "web-{n:02d}", 4), (Mode.FULL, "db-{n}", 1)):
        with django_capture_on_commit_callbacks(execute=True):
            request_provisioning(
                golden_image=golden, user=None, count=count, name_pattern=pattern, mode=mode, pool=golden.pool
            )
    # test:/// reports no allocation for a new child: give each its own, as a discovery would record.
    for i, mib in zip((1, 2, 3, 4), (3, 5, 7, 11), strict=True):
        StorageVolume.objects.filter(path=f"{IMAGES}/web-0{i}.qcow2").update(allocation_bytes=mib * MiB)
    full_copy = StorageVolume.objects.get(path=f"{IMAGES}/db-1.qcow2")
    result = image_savings(golden)
    parent = StorageVolume.objects.get(path=GOLDEN_PATH)
    assert result.savings.children == 4
    assert result.savings.children_bytes == 26 * MiB
    assert result.savings.full_equivalent_bytes == 4 * parent.allocation_bytes == 8 * GiB
    assert result.savings.saved_bytes == 8 * GiB - 26 * MiB
    assert result.savings.full_copies == 1
    assert result.savings.full_copies_bytes == full_copy.allocation_bytes > 0
    assert sorted((c.volume.name, c.mode, c.vm.name if c.vm else None) for c in result.children) == [
        ("db-1.qcow2", "full", "db-1"),
        *[(f"web-0{i}.qcow2", "space_optimized", f"web-0{i}") for i in (1, 2, 3, 4)],
    ]
    summary = pool_savings(golden.pool)
    total, groups = summary.savings, summary.groups
    assert [(g.parent_path, g.golden_image, g.savings.children) for g in groups] == [(GOLDEN_PATH, golden, 4)]
    assert (total.children_bytes, total.full_equivalent_bytes) == (26 * MiB, 8 * GiB)


def test_a_full_clone_may_go_to_a_logical_pool_a_child_may_not(kvm):
    source = StorageVolume.objects.get(pool__provider=kvm, name="app-01.qcow2")
    lvm = StoragePool.objects.get(provider=kvm, name="lvm")
    op = request_volume_clone(volume=source, name="app-01-lv", pool=lvm, user=None, mode=Mode.FULL)
    assert op.params["pool"] == "lvm" and op.params["provider"] == kvm.pk and op.status == S.PENDING
    with pytest.raises(ValidationError) as exc:
        request_volume_clone(volume=source, name="app-01-lv2", pool=lvm, user=None, mode=Mode.SPACE_OPTIMIZED)
    assert "use a directory or file-system pool" in exc.value.message_dict["pool"][0]


def test_the_backing_image_of_children_is_protected(golden, kvm, django_capture_on_commit_callbacks):
    from inventory.services.operations import request_vm_operation

    with django_capture_on_commit_callbacks(execute=True):
        request_provisioning(
            golden_image=golden, user=None, count=1, name_pattern="web-{n}", mode=Mode.SPACE_OPTIMIZED, pool=golden.pool
        )
    template = vm_named(kvm, "golden-vm")
    with pytest.raises(ValidationError) as exc:
        request_vm_operation(vm=template, kind="vm_start", user=None)
    assert "is the backing image of 1 space-optimized volume(s) such as web-1.qcow2" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        request_disk_resize(vm=template, disk=template.disks.get(target="vda"), size_bytes=20 * GiB, user=None)
    assert "backing image" in exc.value.message_dict["disk"][0]
    golden_volume = StorageVolume.objects.get(path=GOLDEN_PATH)
    with pytest.raises(ValidationError) as exc:
        request_disk_add(vm=vm_named(kvm, "app-01"), user=None, volume=golden_volume)
    assert "backing image" in exc.value.message_dict["volume"][0]


def test_pool_savings_and_the_overview_share_one_rule(kvm, golden):
    """Children of a known parent are compared; of an unknown one counted apart; a removed pool's not at all."""
    from django.utils import timezone

    from provisioning.selectors import savings_by_pool

    images = StoragePool.objects.get(provider=kvm, name="images")
    parent = StorageVolume.objects.get(path=GOLDEN_PATH)
    other = StoragePool.objects.create(provider=kvm, name="other", uuid="0ther", type="dir")
    gone = StoragePool.objects.create(provider=kvm, name="gone", uuid="g0ne", type="dir", removed_at=timezone.now())

    def child(pool, name, backing, allocation):
        StorageVolume.objects.create(
            pool=pool, name=name, key=f"{pool.name}/{name}", path=f"/{pool.name}/{name}",
            format="qcow2", capacity_bytes=2 * GiB, allocation_bytes=allocation, backing_store=backing,
        )  # fmt: skip

    child(images, "a.qcow2", GOLDEN_PATH, 3 * MiB)
    child(images, "b.qcow2", GOLDEN_PATH, 5 * MiB)
    child(images, "orphan.qcow2", "/nowhere/base.qcow2", 7 * MiB)
    child(other, "c.qcow2", GOLDEN_PATH, 11 * MiB)
    child(gone, "d.qcow2", GOLDEN_PATH, 13 * MiB)

    summary = pool_savings(images)
    total, groups = summary.savings, summary.groups
    assert (summary.parents, summary.unknown_parent_children) == (2, 1)
    seen = [(g.parent_path, g.parent, g.golden_image, g.savings.children, g.savings.children_bytes) for g in groups]
    assert seen == [
        ("/nowhere/base.qcow2", None, None, 1, 7 * MiB),
        (GOLDEN_PATH, parent, golden, 2, 8 * MiB),
    ]
    assert groups[0].savings.full_equivalent_bytes == 0  # an unknown parent's size is not guessed
    assert (total.children, total.children_bytes, total.full_equivalent_bytes) == (
        2, 8 * MiB, 2 * parent.allocation_bytes,
    )  # fmt: skip

    overall, rows = savings_by_pool()
    by_name = {row.pool.name: row for row in rows}
    assert set(by_name) == {"images", "other"}  # the removed pool's children are not counted
    assert (by_name["images"].parents, by_name["images"].unknown_parent_children) == (2, 1)
    assert by_name["images"].savings.as_dict() == total.as_dict()
    assert by_name["other"].savings.as_dict() == pool_savings(other).savings.as_dict()
    assert overall.children == 3 and overall.children_bytes == 19 * MiB
    assert overall.full_equivalent_bytes == 3 * parent.allocation_bytes
