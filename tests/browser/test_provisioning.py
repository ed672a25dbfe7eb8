"""Provisioning end to end in a real browser: register a golden image from a shut-off VM, provision three
space-optimized VMs with a real Celery worker on the ``provisioning`` queue, watch the request page follow
the work without a reload, open the new VMs and the storage savings.

The simulated host is a libvirt ``test:///`` node file under the test's tmp_path (allowed by
VOM_TEST_NODE_DIRS for the test process and, through the worker fixture's environment, for the worker).
The worker keeps its own in-memory copy of that host: the VMs it makes exist there and reach the
database through the discovery it runs at the end of the request.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from inventory.drivers.libvirt import forget_test_connections
from inventory.models import Provider, StoragePool, StorageVolume, VirtualMachine
from inventory.services.discovery import discover_now
from provisioning.models import GoldenImage, ProvisionedVM, ProvisioningRequest
from tests.browser.test_e2e import _assert_same_page, _login, _mark_page, _queue_held
from tests.factories import make_provider, make_user
from tests.provisioning.conftest import GOLDEN_PATH, node_spec
from tests.realparts import wait_until
from vom.jobs.models import Job
from vom.simulators.libvirt_node import write_node

pytestmark = pytest.mark.browser

USERNAME = "grace"
PASSWORD = "prov-secret-pw-1"
TIMEOUT = 30_000  # ms, for every wait on a live region


def _section(page: Page, heading: str):
    return page.locator("section", has=page.get_by_role("heading", name=heading))


@pytest.fixture
def kvm_host(tmp_path: Path):
    """A discovered ``test:///`` host: pool "images" with golden.qcow2, shut-off golden-vm, running app-01."""
    node = write_node(node_spec(), tmp_path / "kvm-prov.xml")
    uri = f"test://{node}"
    provider = make_provider(name="kvm-prov", uri=uri)
    run = discover_now(provider=provider)
    assert run.status == "succeeded", run.error
    yield provider
    forget_test_connections(uri)


@pytest.mark.integration  # the real redis-server and Celery worker
@pytest.mark.django_db(transaction=True)
def test_register_a_golden_image_and_provision_vms_in_the_browser(
    live_server, fresh_worker, kvm_host: Provider, page, page_problems, shot
):
    make_user("admin", username=USERNAME, password=PASSWORD)
    base = live_server.url
    nav = page.locator("nav.sidebar")

    # 1. Sign in; the Provisioning section of the navigation leads to the (empty) golden images.
    page.goto(f"{base}/provisioning/golden-images/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/provisioning/golden-images/$"))
    _login(page, USERNAME, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Golden images 0")
    expect(nav.get_by_role("link", name="Golden images")).to_have_class(re.compile(r"\bactive\b"))
    expect(page.locator("#golden-images")).to_contain_text("No golden images yet.")
    shot("prov-01-golden-images-empty")

    # 2. Register: a running VM is refused with the reason next to its field; the shut-off one is taken.
    page.get_by_role("link", name="+ Register golden image").click()
    expect(page.get_by_role("heading", name="Register a golden image")).to_be_visible()
    page.locator("#id_name").fill("debian-12")
    page.locator("#id_os").fill("Debian 12")
    page.locator("#id_template_vm").select_option(label="kvm-prov · app-01 (running)")
    page.get_by_role("button", name="Register golden image").click()
    vm_field = page.locator(".field.has-error", has=page.locator("#id_template_vm"))
    expect(vm_field.locator(".field-error")).to_contain_text("VM 'app-01' is running: shut it down first")
    expect(page.locator("#id_name")).to_have_value("debian-12")
    assert not GoldenImage.objects.exists()
    shot("prov-02-register-running-vm-refused")

    page.locator("#id_template_vm").select_option(label="kvm-prov · golden-vm (stopped)")
    page.get_by_role("button", name="Register golden image").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Golden image debian-12")
    expect(page.locator(".messages")).to_contain_text("Golden image debian-12 registered")
    image = GoldenImage.objects.get(name="debian-12")
    assert image.volume_path == GOLDEN_PATH and image.template_vm_name == "golden-vm"
    expect(_section(page, "Children")).to_contain_text("No children yet.")
    shot("prov-03-golden-image-registered")

    # 3. Provision VMs: the names preview follows the pattern as it is typed.
    page.get_by_role("link", name="Provision VMs").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Provision VMs from debian-12")
    expect(page.locator("#id_name_pattern")).to_have_value("debian-12-{n:02d}")
    expect(page.locator("#id_vcpus")).to_have_value("2")
    expect(page.locator("#id_memory_mib")).to_have_value("2048")
    page.locator("#id_count").fill("3")
    page.locator("#id_name_pattern").fill("web-{n:02d}")
    preview = page.locator("[data-name-preview]")
    expect(preview).to_contain_text("web-01")
    expect(preview).to_contain_text("web-03")
    expect(preview).to_contain_text("3 VMs")
    expect(page.locator("#id_mode_0")).to_be_checked()  # space-optimized
    expect(page.locator("#id_start")).to_be_checked()
    shot("prov-04-provision-form")

    # 4. Submit while the worker is held off the provisioning queue, so the page must show the request
    # waiting and then follow it by polling.
    status = page.locator("#request-live .badge").first
    vm_rows = page.locator("#request-vm-table tbody tr")
    with _queue_held("provisioning"):
        page.get_by_role("button", name="Provision VMs").click()
        expect(page.locator(".messages")).to_contain_text("Provisioning of 3 VMs from debian-12 queued")
        expect(page.get_by_role("heading", level=1)).to_contain_text("3 VMs from debian-12")
        expect(status).to_have_text("Queued")  # the job's word for pending
        expect(vm_rows).to_have_count(3)
        expect(vm_rows.filter(has_text="Waiting")).to_have_count(3)
        _mark_page(page)
        shot("prov-05-request-queued")
    request = ProvisioningRequest.objects.get()
    job = wait_until(
        lambda: not Job.objects.get(pk=request.job_id).is_active and Job.objects.get(pk=request.job_id), 60
    )
    assert job.status == Job.Status.SUCCEEDED, (
        job.error,
        [(r.name, r.error) for r in request.vms.select_related("job")],
    )
    expect(status).to_have_text("Succeeded", timeout=TIMEOUT)
    expect(vm_rows.filter(has_text="Done")).to_have_count(3, timeout=TIMEOUT)
    for name in ("web-01", "web-02", "web-03"):
        expect(page.locator(f'tr[data-vm-row="{name}"]').get_by_role("link", name=name)).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#request-live [data-active]")).to_have_count(0)
    expect(_section(page, "Log")).to_contain_text("3 VM(s) provisioned")
    _assert_same_page(page)
    shot("prov-06-request-done")

    request.refresh_from_db()
    assert request.job.status == Job.Status.SUCCEEDED, request.job.error
    assert [row.status for row in request.vms.select_related("job")] == [ProvisionedVM.Status.DONE] * 3
    for name in ("web-01", "web-02", "web-03"):
        child = StorageVolume.objects.get(pool__provider=kvm_host, name=f"{name}.qcow2")
        assert child.backing_store == GOLDEN_PATH

    # 5. The per-VM links lead to the new VMs, running.
    page.locator('tr[data-vm-row="web-02"]').get_by_role("link", name="web-02").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("web-02")
    expect(page.locator(".vm-state .state-big .badge")).to_have_text("Running")
    expect(_section(page, "Disks")).to_contain_text("/var/lib/vom-images/web-02.qcow2")
    vm = VirtualMachine.objects.get(provider=kvm_host, name="web-02")
    assert vm.state == VirtualMachine.State.RUNNING and vm.uuid == request.vms.get(name="web-02").vm_uuid
    shot("prov-07-new-vm")

    # 6. The golden image lists its children; the savings pages draw the comparison.
    page.goto(f"{base}{image.get_absolute_url()}")
    children = _section(page, "Children")
    expect(children.locator("tbody tr")).to_have_count(3)
    expect(children.get_by_role("link", name="web-01")).to_be_visible()
    expect(page.locator("#savings svg.chart-hbar")).to_be_visible()
    expect(page.locator("#savings")).to_contain_text("6.0 GiB")  # three full copies of the 2 GiB image
    shot("prov-08-golden-image-children")

    nav.get_by_role("link", name="Storage savings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Storage savings")
    chart = page.locator("#savings-chart svg.chart-hbar")
    expect(chart).to_be_visible()
    expect(chart.locator("text.chart-label", has_text="images: children")).to_have_count(1)
    expect(chart.locator("text.chart-value", has_text="6.0 GiB")).to_have_count(1)
    pools = page.locator("#savings-pools tbody tr")
    expect(pools).to_have_count(1)
    expect(pools.first).to_contain_text("images")
    shot("prov-09-storage-savings")

    pools.first.get_by_role("link", name="images").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Storage savings in pool images")
    expect(page.locator("#savings-groups").get_by_role("link", name="debian-12")).to_be_visible()
    expect(page.locator("#savings-chart svg.chart-hbar")).to_be_visible()
    shot("prov-10-pool-savings")

    # 7. The lists: golden images with their children and savings, requests; the operation links back.
    nav.get_by_role("link", name="Golden images").click()
    row = page.locator("#golden-images tbody tr").first
    expect(row).to_contain_text("debian-12")
    expect(row.locator("td").nth(7)).to_have_text("3")
    expect(row.locator("td").nth(8)).to_have_text("6.0 GiB")
    shot("prov-11-golden-image-list")
    nav.get_by_role("link", name="Requests").click()
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    expect(page.locator("#requests tbody tr").first).to_contain_text("3 done of 3")
    shot("prov-12-request-list")
    page.goto(f"{base}{request.job.get_absolute_url()}")
    steps = _section(page, "Steps")  # each VM is a step of the request's job
    expect(steps.locator("tbody tr")).to_have_count(3)
    expect(steps).to_contain_text("web-02")
    page.locator("#provisioning-request-link").click()
    expect(page).to_have_url(f"{base}{request.get_absolute_url()}")

    # 8. A data disk for a running VM: a pool that cannot hold it is refused on its field, then it is
    # made and attached by the worker, and the operation page follows it.
    app = VirtualMachine.objects.get(provider=kvm_host, name="app-01")
    page.goto(f"{base}{app.get_absolute_url()}")
    _section(page, "Disks").get_by_role("link", name="+ Add disk").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a disk to app-01")
    page.locator("#id_pool").select_option(str(StoragePool.objects.get(provider=kvm_host, name="lvm").pk))
    page.locator("#id_size_gib").fill("2")
    page.get_by_role("button", name="Add disk").click()
    pool_field = page.locator(".field.has-error", has=page.locator("#id_pool"))
    expect(pool_field.locator(".field-error")).to_contain_text("use a directory or file-system pool")
    shot("prov-13-disk-add-refused")
    page.locator("#id_pool").select_option(str(StoragePool.objects.get(provider=kvm_host, name="images").pk))
    op_status = page.locator(".op-status .badge")
    with _queue_held("provisioning"):  # the page must show the operation queued, then follow it
        page.get_by_role("button", name="Add disk").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Add disk app-01")
        expect(op_status).to_have_text("Queued")
        _mark_page(page)
    expect(op_status).to_have_text("Succeeded", timeout=TIMEOUT)
    expect(page.locator("table.log")).to_contain_text("attached as vdb")
    _assert_same_page(page)
    shot("prov-14-disk-added")

    # 9. Volumes: clone one from the list.
    page.goto(f"{base}/storage/volumes/")
    shared_row = page.locator("tbody tr", has_text="shared.img")
    expect(shared_row.get_by_role("link", name="Register as golden image")).to_be_visible()
    shot("prov-15-volume-list")
    shared_row.get_by_role("link", name="Clone").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Clone volume shared.img")
    expect(page.locator("#id_name")).to_have_value("shared-clone.img")
    with _queue_held("provisioning"):
        page.get_by_role("button", name="Clone").click()
        expect(op_status).to_have_text("Queued")
        _mark_page(page)
    expect(op_status).to_have_text("Succeeded", timeout=TIMEOUT)
    expect(page.locator("table.log")).to_contain_text("shared-clone.img")
    _assert_same_page(page)
    shot("prov-16-volume-cloned")
    assert StorageVolume.objects.filter(pool__provider=kvm_host, name="shared-clone.img").exists()

    # 10. A request cancelled while it waits in the queue: it ends at once and nothing is made (that
    # its task, delivered afterwards, does nothing is checked in tests/provisioning/test_services.py).
    page.goto(f"{base}{image.get_absolute_url()}")
    page.get_by_role("link", name="Provision VMs").first.click()
    page.locator("#id_count").fill("2")
    page.locator("#id_name_pattern").fill("late-{n}")
    with _queue_held("provisioning"):
        page.get_by_role("button", name="Provision VMs").click()
        expect(status).to_have_text("Queued")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel request").click()
        expect(page.locator(".messages")).to_contain_text("cancelled before it started: no VM was made")
        expect(status).to_have_text("Cancelled")
        expect(page.locator("#request-live")).to_contain_text("2 cancelled")
        expect(vm_rows.filter(has_text="Cancelled")).to_have_count(2)
        expect(page.get_by_role("button", name="Cancel request")).to_have_count(0)
        shot("prov-17-request-cancelled")
    late = ProvisioningRequest.objects.get(name_pattern="late-{n}")
    assert {row.status for row in late.vms.select_related("job")} == {ProvisionedVM.Status.CANCELLED}
    assert late.job.status == Job.Status.CANCELLED
    assert not VirtualMachine.objects.filter(provider=kvm_host, name__startswith="late-").exists()
    assert page_problems.all() == []
