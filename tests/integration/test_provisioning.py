"""Provisioning on real parts: a real libvirtd with a directory pool of real qcow2 files, a real
redis-server and a real Celery worker consuming the provisioning queue.

A golden image (a qcow2 file with 8 MiB of data) and a shut-off template VM are made; the console
registers the image, provisions space-optimized children (started) and a full copy through its own
task path (a job per request, sent to the worker as ``vom.jobs.run_job``; a child job per VM), and
``qemu-img`` checks the backing chains. Then a data disk is added to a running child.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from inventory.models import StoragePool, StorageVolume, VirtualMachine
from inventory.services.discovery import request_discovery
from inventory.services.providers import create_provider
from provisioning.models import Mode, ProvisionedVM
from provisioning.services.disks import request_disk_add, request_disk_resize
from provisioning.services.golden_images import register_golden_image
from provisioning.services.requests import request_provisioning
from provisioning.services.savings import image_savings
from tests.factories import make_user
from tests.integration.conftest import ran_on_the_worker, received
from tests.integration.test_libvirtd import _tiny_domain_xml
from tests.realparts import wait_until
from vom.jobs.models import Job

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pool_dir(libvirtd_uri: str) -> Iterator[tuple[str, Path]]:
    """A libvirt directory pool in a fresh directory QEMU can read; everything in it goes at the end."""
    tag = uuid.uuid4().hex[:6]
    path = Path("/var/lib/libvirt/images") / f"vom-tests-prov-{tag}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    conn = libvirt.open(libvirtd_uri)
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = f"vom-it-{tag}"
    ET.SubElement(ET.SubElement(root, "target"), "path").text = str(path)
    pool = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
    pool.create(0)
    try:
        yield tag, path
    finally:
        for dom in conn.listAllDomains():
            if dom.name().startswith(f"it{tag}") or dom.name() == f"golden-{tag}":
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        conn.close()
        shutil.rmtree(path, ignore_errors=True)


def _qemu_img_info(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["qemu-img", "info", "--force-share", "--backing-chain", "--output=json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    chain = json.loads(out)
    return chain if isinstance(chain, list) else [chain]


def _wait(op: Job, timeout: float = 120) -> Job:
    def done() -> bool:
        op.refresh_from_db()
        return not op.is_active

    wait_until(done, timeout, what=f"operation {op.kind}")
    return op


def _discover(provider: Any) -> None:
    run = request_discovery(provider=provider)

    def done() -> bool:
        run.refresh_from_db()
        return not run.is_active

    wait_until(done, 60, what="discovery")
    assert run.status == Job.Status.SUCCEEDED, run.error


def test_provision_children_and_a_full_copy_on_a_real_libvirtd(fresh_worker, libvirtd_uri, pool_dir):
    worker = fresh_worker
    tag, path = pool_dir
    golden = path / "golden.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(golden), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 8M", str(golden)], check=True, capture_output=True)
    conn = libvirt.open(libvirtd_uri)
    conn.defineXML(_tiny_domain_xml(f"golden-{tag}", str(golden)))
    conn.storagePoolLookupByName(f"vom-it-{tag}").refresh(0)

    user = make_user("admin")
    provider = create_provider(name="real-kvm", uri=libvirtd_uri)
    _discover(provider)
    volume = StorageVolume.objects.get(pool__provider=provider, path=str(golden))
    image = register_golden_image(name=f"golden-{tag}", os="none", volume=volume, user=user)
    assert image.template_vm_name == f"golden-{tag}" and image.format == "qcow2"
    assert image.allocation_bytes >= 8 * 1024**2  # read from the platform: the data written

    pool = StoragePool.objects.get(provider=provider, name=f"vom-it-{tag}")
    before = received(worker)
    request = request_provisioning(
        golden_image=image,
        user=user,
        count=3,
        name_pattern=f"it{tag}-{{n:02d}}",
        mode=Mode.SPACE_OPTIMIZED,
        pool=pool,
        start=True,
        memory_bytes=64 * 1024**2,
    )
    op = _wait(request.job)
    assert op.status == Job.Status.SUCCEEDED, (op.error, [(r.name, r.error) for r in request.vms.all()])
    assert op.progress == 100 and op.result == {"done": 3, "failed": 0, "cancelled": 0}
    ran_on_the_worker(worker, before)
    assert list(op.children.order_by("position").values_list("target_name", "status")) == [
        (f"it{tag}-0{n}", Job.Status.SUCCEEDED) for n in (1, 2, 3)
    ]

    for n in (1, 2, 3):
        child = path / f"it{tag}-0{n}.qcow2"
        chain = _qemu_img_info(child)
        assert chain[0]["format"] == "qcow2"
        assert chain[0]["format-specific"]["data"]["compat"] == "1.1"
        assert chain[0]["backing-filename"] == str(golden)
        assert chain[0].get("backing-filename-format", chain[0].get("full-backing-filename-format", "qcow2")) == "qcow2"
        assert chain[1]["filename"] == str(golden) and "backing-filename" not in chain[1]
        dom = conn.lookupByName(f"it{tag}-0{n}")
        assert dom.isActive()
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert root.find("devices/disk/source").get("file") == str(child)  # type: ignore[union-attr]
        assert root.findtext("memory") == str(64 * 1024)
    rows = list(request.vms.select_related("job"))
    assert all(r.status == ProvisionedVM.Status.DONE and r.allocation_bytes > 0 for r in rows)
    macs = {
        ET.fromstring(conn.lookupByName(r.name).XMLDesc(0)).find("devices/interface/mac").get("address") for r in rows
    }  # type: ignore[union-attr]
    assert len(macs) == 3 and "52:54:00:7e:57:01" not in macs  # new MACs, not the template's

    full = request_provisioning(
        golden_image=image, user=user, count=1, name_pattern=f"it{tag}-full", mode=Mode.FULL, pool=pool
    )
    op = _wait(full.job)
    assert op.status == Job.Status.SUCCEEDED, op.error
    copy_chain = _qemu_img_info(path / f"it{tag}-full.qcow2")
    assert len(copy_chain) == 1 and "backing-filename" not in copy_chain[0]
    # The copy holds the data: compare guest-visible contents with the golden image.
    subprocess.run(
        ["qemu-img", "compare", "--force-share", str(golden), str(path / f"it{tag}-full.qcow2")],
        check=True,
        capture_output=True,
    )

    # Savings from the actual allocation the discovery at the end of each request read.
    savings = image_savings(image).savings
    assert (savings.children, savings.full_copies) == (3, 1)
    assert savings.full_equivalent_bytes == 3 * StorageVolume.objects.get(path=str(golden)).allocation_bytes
    assert savings.children_bytes < savings.full_equivalent_bytes / 10

    # A data disk for a running child: attached live and to the definition.
    vm = VirtualMachine.objects.get(provider=provider, name=f"it{tag}-01")
    assert vm.state == VirtualMachine.State.RUNNING
    op = _wait(request_disk_add(vm=vm, user=user, bus="virtio", pool=pool, size_bytes=32 * 1024**2, format="qcow2"))
    assert op.status == Job.Status.SUCCEEDED, op.error
    assert op.result["target"] == "vdb" and op.result["live"] is True and op.result["persistent"] is True
    dom = conn.lookupByName(f"it{tag}-01")
    for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
        targets = [t.get("dev") for t in ET.fromstring(dom.XMLDesc(flags)).iter("target") if t.get("dev")]
        assert "vdb" in targets
    vdb = vm.disks.get(target="vdb")
    assert vdb.persistent is True and vdb.source.startswith(str(path))

    # virtio-blk has no online resize: refused before anything is queued.
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        request_disk_resize(vm=vm, disk=vdb, size_bytes=64 * 1024**2, user=user)
    assert "no online resize" in str(exc.value)

    # Shut off, the same resize goes through: the volume grows (read back by qemu-img).
    dom.destroy()
    _discover(provider)
    vm.refresh_from_db()
    op = _wait(request_disk_resize(vm=vm, disk=vm.disks.get(target="vdb"), size_bytes=64 * 1024**2, user=user))
    assert op.status == Job.Status.SUCCEEDED, op.error
    assert _qemu_img_info(Path(vdb.source))[0]["virtual-size"] == 64 * 1024**2
    conn.close()
