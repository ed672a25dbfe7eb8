"""End to end in a real browser: Debian's chromium (Playwright) against the live server, with a real
redis-server and a real Celery worker doing the discovery and the power operation on a libvirt
``test:///`` node file.

The test never reloads a page to wait for work to finish: the discovery history and the VM's state and
operations are live regions that vom.js re-fetches every 2 s, and the assertions wait for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from inventory.models import Provider, VirtualMachine
from inventory.services.discovery import discoveries
from tests.factories import make_user
from vom.jobs.models import Job
from vom.simulators.libvirt_node import (
    DiskSpec,
    DomainSpec,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    stable_mac,
    stable_uuid,
    write_node,
)

pytestmark = pytest.mark.browser

USERNAME = "ada"
PASSWORD = "e2e-secret-pw-1"
HOSTNAME = "kvm-e2e"
POOL_PATH = "/var/lib/libvirt/images"
WEIRD = """db <&> "quoted" 'x'"""  # XML and HTML special characters in a VM name
TIMEOUT = 30_000  # ms, for every wait on a live region


def _domain(name: str, state: RunState, vcpus: int = 2, memory_gib: int = 2) -> DomainSpec:
    return DomainSpec(
        name=name,
        uuid=stable_uuid("e2e", name),
        memory_kib=memory_gib * 1024 * 1024,
        vcpus=vcpus,
        state=state,
        disks=[DiskSpec(target="vda", source=f"{POOL_PATH}/{name}.qcow2", format="qcow2", cache="none")],
        nics=[NicSpec(mac=stable_mac("e2e", name), source="default")],
    )


def _write_node(directory: Path) -> Path:
    domains = [
        _domain("web-41", RunState.RUNNING),
        _domain("web-42", RunState.SHUTOFF),
        _domain("batch-07", RunState.PAUSED, vcpus=1, memory_gib=1),
        _domain(WEIRD, RunState.RUNNING, vcpus=4, memory_gib=8),
    ]
    spec = NodeSpec(
        hostname=HOSTNAME,
        host_uuid=stable_uuid("e2e", HOSTNAME),
        domains=domains,
        pools=[
            PoolSpec(
                name="default",
                uuid=stable_uuid("e2e", "pool"),
                target_path=POOL_PATH,
                volumes=[
                    VolumeSpec(
                        name=f"{d.name}.qcow2", capacity_bytes=10 << 30, allocation_bytes=1 << 30, format="qcow2"
                    )
                    for d in domains
                ],
            )
        ],
        networks=[
            NetworkSpec(
                name="default",
                uuid=stable_uuid("e2e", "net"),
                bridge="virbr0",
                ip="192.168.122.1",
                netmask="255.255.255.0",
            )
        ],
    )
    return write_node(spec, directory / f"{HOSTNAME}.xml")


@contextmanager
def _queue_held(queue: str) -> Iterator[None]:
    """Have the real worker stop consuming ``queue`` (Celery remote control) until the block ends.

    Tasks sent meanwhile wait in redis, so the page is sure to show them queued and then has to pick
    up the result by polling. Leaving the block makes the worker consume the queue again.
    """
    from vom.celery import app

    replies = app.control.cancel_consumer(queue, reply=True, timeout=10, limit=1)
    assert replies and all("ok" in answer for reply in replies for answer in reply.values()), replies
    try:
        yield
    finally:
        app.control.add_consumer(queue, reply=True, timeout=10, limit=1)


def _mark_page(page: Page) -> None:
    """Tag the current document; the tag disappears if the page is reloaded or navigated away."""
    page.evaluate("window.__e2eMarker = 'still-here'")


def _assert_same_page(page: Page) -> None:
    assert page.evaluate("window.__e2eMarker") == "still-here", "the page was reloaded while waiting"


def _login(page: Page, username: str, password: str) -> None:
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.integration  # the real redis-server and Celery worker
@pytest.mark.django_db(transaction=True)
def test_add_discover_and_start_a_vm_in_the_browser(live_server, worker, page, page_problems, shot, tmp_path):
    make_user("admin", username=USERNAME, password=PASSWORD)
    node = _write_node(tmp_path)
    base = live_server.url
    nav = page.locator("nav.sidebar")

    # 1. Anonymous: the console sends us to the login page; sign in through the form.
    page.goto(base)
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shot("e2e-01-login")
    _login(page, USERNAME, PASSWORD)
    expect(page).to_have_url(f"{base}/")
    expect(page.locator(".who-name")).to_have_text(USERNAME)
    expect(page.locator(".who .role")).to_have_text("admin")
    shot("e2e-02-dashboard")

    # 2. Providers → Add provider. A malformed URI is refused with the reason next to the field.
    nav.get_by_role("link", name="Providers").click()
    expect(page.get_by_role("heading", name="Providers")).to_be_visible()
    page.get_by_role("link", name="+ Add provider").click()
    expect(page.get_by_role("heading", name="Add a provider")).to_be_visible()
    page.locator("#id_name").fill("e2e-kvm")
    page.locator("#id_uri").fill("qemu:///nope")
    page.get_by_role("button", name="Add provider").click()
    uri_field = page.locator(".field.has-error", has=page.locator("#id_uri"))
    expect(uri_field.locator(".field-error")).to_have_text("a qemu URI needs the path /system or /session, not '/nope'")
    expect(page.locator(".field.has-error")).to_have_count(1)  # only the URI is wrong
    expect(page.locator("#id_name")).to_have_value("e2e-kvm")  # what was typed is kept
    assert not Provider.objects.exists()
    shot("e2e-03-provider-bad-uri")

    page.locator("#id_uri").fill(f"test://{node}")
    page.get_by_role("button", name="Add provider").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("e2e-kvm")
    expect(page.locator(".messages")).to_contain_text("Provider e2e-kvm added.")
    provider = Provider.objects.get(name="e2e-kvm")
    assert provider.uri == f"test://{node}"
    expect(page.locator("dl.facts code")).to_have_text(f"test://{node}")
    shot("e2e-04-provider-added")

    # 3. Discover now; the discovery history updates itself until the run has finished. The worker is
    # held off the discovery queue until the page shows the queued run, so the page must poll.
    history = page.locator("section", has=page.get_by_role("heading", name="Discovery history"))
    first_run = history.locator("tbody tr").first
    with _queue_held("discovery"):
        page.get_by_role("button", name="Discover now").click()
        expect(page.locator(".messages")).to_contain_text("Discovery of e2e-kvm queued")
        expect(first_run.locator(".badge")).to_have_text("Queued")
        expect(first_run.locator("[data-active]")).to_have_count(1)
        _mark_page(page)
        shot("e2e-05-discovery-queued")
    expect(first_run.locator(".badge")).to_have_text("Succeeded", timeout=TIMEOUT)
    expect(first_run).to_contain_text(f"GUI by {USERNAME}")
    expect(first_run.locator(".changes .plus")).not_to_have_text("+0")
    expect(history.locator("[data-active]")).to_have_count(0)
    _assert_same_page(page)
    shot("e2e-06-discovery-succeeded")
    run = discoveries(provider).get()
    assert run.status == Job.Status.SUCCEEDED, run.error
    assert run.trigger == Job.Trigger.GUI and run.requested_by.username == USERNAME
    assert VirtualMachine.objects.filter(provider=provider).count() == 4

    # The rest of the page follows without a reload.
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("OK", timeout=TIMEOUT)
    expect(page.locator(".alert-blue")).to_have_count(0, timeout=TIMEOUT)
    expect(page.locator(".totals a", has_text="VMs").locator(".total-n")).to_have_text("4", timeout=TIMEOUT)
    expect(
        page.locator("section", has=page.get_by_role("heading", name="Hosts")).get_by_role("link", name=HOSTNAME)
    ).to_be_visible()
    expect(page.locator("[data-active]")).to_have_count(0)
    _assert_same_page(page)
    shot("e2e-06b-provider-live")
    page.goto(f"{base}{provider.get_absolute_url()}")
    expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("OK")
    hosts = page.locator("section", has=page.get_by_role("heading", name="Hosts"))
    expect(hosts.get_by_role("link", name=HOSTNAME)).to_be_visible()
    expect(page.locator(".totals a", has_text="VMs").locator(".total-n")).to_have_text("4")
    shot("e2e-07-provider-inventory")

    # 4. VMs: every VM is listed (a name full of special characters shown as it is); search for web-42.
    nav.get_by_role("link", name="VMs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Virtual machines 4")
    vm_rows = page.locator("table.table-hover tbody tr")
    expect(vm_rows).to_have_count(4)
    expect(page.get_by_role("link", name=WEIRD, exact=True)).to_be_visible()
    shot("e2e-08-vm-list")
    search = page.locator("#vm-filters input[name=q]")
    search.fill("web-42")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"[?&]q=web-42"))
    expect(vm_rows).to_have_count(1)
    row = vm_rows.first
    expect(row.get_by_role("link", name="web-42", exact=True)).to_be_visible()
    expect(row.locator("[data-state]")).to_have_text("Stopped")
    shot("e2e-09-vm-search")

    row.get_by_role("link", name="web-42", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("web-42")
    state_badge = page.locator(".vm-state .state-big .badge")
    expect(state_badge).to_have_text("Stopped")
    shot("e2e-10-vm-stopped")

    # Start (held on the queue until the page shows it pending); the state and the operations update themselves.
    start = page.locator(".vm-state").get_by_role("button", name="Start", exact=True)
    op_row = page.locator("#operations tbody tr").first
    with _queue_held("orchestration"):
        start.click()
        expect(page.locator(".messages")).to_contain_text("Start of web-42 queued")
        expect(op_row).to_contain_text("Start")
        expect(op_row.locator(".badge")).to_have_text("Queued")  # the job's word for pending
        expect(page.locator(".vm-state .busy")).to_contain_text("queued")
        expect(start).to_be_disabled()  # one operation at a time per VM
        expect(state_badge).to_have_text("Stopped")
        _mark_page(page)
        shot("e2e-11-vm-start-pending")
    expect(op_row.locator(".badge")).to_have_text("Succeeded", timeout=TIMEOUT)
    expect(state_badge).to_have_text("Running", timeout=TIMEOUT)
    expect(page.locator(".vm-state").get_by_role("button", name="Start", exact=True)).to_have_count(0)
    expect(page.locator(".vm-state").get_by_role("button", name="Shut down")).to_be_visible()
    _assert_same_page(page)
    shot("e2e-12-vm-started")

    # 5. The database agrees.
    vm = VirtualMachine.objects.get(provider=provider, name="web-42")
    op = Job.objects.get(target_id=vm.pk, kind="vm_start")
    assert op.status == Job.Status.SUCCEEDED, op.error
    assert op.target == vm
    assert op.requested_by.username == USERNAME and op.progress == 100
    assert vm.state == VirtualMachine.State.RUNNING
    assert page_problems.all() == []


@pytest.mark.django_db(transaction=True)
def test_wrong_password_is_refused_on_the_login_page(live_server, page, page_problems, shot):
    make_user("viewer", username="vic", password=PASSWORD)
    page.goto(f"{live_server.url}/vms/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/vms/$"))
    _login(page, "vic", "not-the-password")
    expect(page.locator(".login-card .alert-red")).to_contain_text("Please enter a correct username and password")
    expect(page).to_have_url(re.compile(r"/login/"))
    shot("e2e-13-login-refused")
    _login(page, "vic", PASSWORD)
    expect(page).to_have_url(f"{live_server.url}/vms/")
    expect(page.locator(".who .role")).to_have_text("viewer")
    assert page_problems.all() == []
