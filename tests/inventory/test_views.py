"""The browser GUI: every page renders for a viewer, roles decide buttons and POSTs, forms map service
errors, nothing leaks (passwords) or runs unescaped (names), and the VM list does not grow queries per row."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.models import (
    Host,
    Provider,
    StoragePool,
    VirtualDisk,
    VirtualMachine,
)
from inventory.services.discovery import discoveries
from tests.factories import make_inventory, make_provider, make_user
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

EVIL = "a<b&\"c'"
EVIL_ESCAPED = "a&lt;b&amp;&quot;c&#x27;"


def _job(kind: str, target, *, status: str = Job.Status.PENDING, lock: str = "", **fields: object) -> Job:
    """A job as the lifecycle writes it (with the target's lock), then brought to ``status``."""
    if not lock and isinstance(target, VirtualMachine):
        lock = f"vm:{target.pk}"
    job = lifecycle.create(kind, target=target, lock=lock, trigger=fields.pop("trigger", Job.Trigger.GUI))
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


@pytest.fixture
def inv():
    """A discovered provider (3 VMs: running, stopped, paused), a finished discovery and an operation."""
    provider = make_inventory(make_provider("kvm-gui"))
    vms = {vm.name: vm for vm in VirtualMachine.objects.filter(provider=provider)}
    run = _job(
        "discovery",
        provider,
        status=Job.Status.SUCCEEDED,
        trigger=Job.Trigger.SCHEDULE,
        result={
            "added": 12,
            "changed": 0,
            "removed": 0,
            "duration_ms": 1234,
            "counts": {
                "vm": {"added": 3, "changed": 0, "removed": 0},
                "disk": {"added": 6, "changed": 0, "removed": 0},
            },
        },
    )
    op = _job("vm_reboot", vms["kvm-gui-vm00"], status=Job.Status.SUCCEEDED, progress=100, message="done")
    lifecycle.log(op, "reboot requested")
    return {
        "provider": provider,
        "running": vms["kvm-gui-vm00"],
        "stopped": vms["kvm-gui-vm01"],
        "paused": vms["kvm-gui-vm02"],
        "host": Host.objects.get(provider=provider),
        "pool": StoragePool.objects.get(provider=provider),
        "run": run,
        "op": op,
    }


def _pages(inv) -> list[tuple[str, str]]:
    """(url, text the page must show) for every read page."""
    return [
        (reverse("dashboard"), "VMs by state"),
        (reverse("provider-list"), "kvm-gui"),
        (reverse("provider-detail", args=[inv["provider"].pk]), "Discovery history"),
        (reverse("job-detail", args=[inv["run"].pk]), "−0 removed"),
        (reverse("host-list"), "EPYC-Rome"),
        (reverse("host-detail", args=[inv["host"].pk]), "kvm-gui-vm02"),
        (reverse("vm-list"), "kvm-gui-vm01"),
        (reverse("vm-detail", args=[inv["running"].pk]), "/dev/disk/by-id/wwn-0x6001405000000000"),
        (reverse("pool-list"), "/var/lib/libvirt/images"),
        (reverse("pool-detail", args=[inv["pool"].pk]), "golden.qcow2"),
        (reverse("volume-list"), "kvm-gui-vm00.qcow2"),
        (reverse("network-list"), "virbr0"),
        (reverse("job-list"), "kvm-gui-vm00"),
        (reverse("job-detail", args=[inv["op"].pk]), "reboot requested"),
    ]


# --- access --------------------------------------------------------------------------------------


def test_every_page_renders_for_a_viewer_with_real_content(viewer_client, inv):
    for url, expected in _pages(inv):
        response = viewer_client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url


def test_anonymous_users_are_sent_to_login(client, inv):
    for url, _ in _pages(inv):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_login_page_signs_in_and_logout_is_a_post(client, viewer_user):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    response = client.post(reverse("login"), {"username": "victor", "password": "pw-for-tests-1"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    dashboard = client.get(reverse("dashboard"))
    assert b"victor" in dashboard.content and b"viewer" in dashboard.content
    assert client.get(reverse("logout")).status_code == 405  # signing out needs a POST
    client.post(reverse("logout"))
    assert client.get(reverse("dashboard")).status_code == 302


def test_viewer_sees_no_operation_or_configuration_buttons(viewer_client, inv):
    vm_page = viewer_client.get(reverse("vm-detail", args=[inv["running"].pk])).content.decode()
    assert reverse("vm-action", args=[inv["running"].pk]) not in vm_page
    provider_page = viewer_client.get(reverse("provider-detail", args=[inv["provider"].pk])).content.decode()
    assert "Discover now" not in provider_page and "Edit" not in provider_page
    assert "Add provider" not in viewer_client.get(reverse("provider-list")).content.decode()
    assert "Apply to selected" not in viewer_client.get(reverse("vm-list")).content.decode()


def test_operator_sees_only_the_actions_allowed_in_the_vm_state(operator_client, inv):
    page = operator_client.get(reverse("vm-detail", args=[inv["stopped"].pk])).content.decode()
    assert 'value="vm_start"' in page
    assert 'value="vm_shutdown"' not in page and 'value="vm_suspend"' not in page
    running = operator_client.get(reverse("vm-detail", args=[inv["running"].pk])).content.decode()
    assert 'value="vm_shutdown"' in running and 'value="vm_start"' not in running
    assert "Edit" not in operator_client.get(reverse("provider-detail", args=[inv["provider"].pk])).content.decode()


def test_viewer_posts_are_forbidden_and_change_nothing(viewer_client, inv):
    vm = inv["stopped"]
    posts = [
        (reverse("vm-action", args=[vm.pk]), {"kind": "vm_start"}),
        (reverse("vm-bulk-action"), {"kind": "vm_start", "vm": [vm.pk]}),
        (reverse("provider-discover", args=[inv["provider"].pk]), {}),
        (reverse("provider-add"), {"name": "x", "kind": "libvirt", "uri": "qemu:///system", "discovery_interval": 300}),
        (reverse("provider-edit", args=[inv["provider"].pk]), {"name": "renamed", "uri": "qemu:///system"}),
        (reverse("provider-delete", args=[inv["provider"].pk]), {}),
    ]
    for url, data in posts:
        assert viewer_client.post(url, data).status_code == 403, url
    assert list(Job.objects.order_by("pk")) == [inv["run"], inv["op"]]  # the fixture's
    assert list(Provider.objects.values_list("name", flat=True)) == ["kvm-gui"]


def test_operator_cannot_configure_providers(operator_client, inv):
    assert operator_client.get(reverse("provider-add")).status_code == 403
    assert operator_client.post(reverse("provider-delete", args=[inv["provider"].pk])).status_code == 403
    assert Provider.objects.filter(pk=inv["provider"].pk).exists()


def test_action_urls_refuse_get(operator_client, inv):
    assert operator_client.get(reverse("vm-action", args=[inv["stopped"].pk])).status_code == 405
    assert operator_client.get(reverse("provider-discover", args=[inv["provider"].pk])).status_code == 405


# --- VM operations -------------------------------------------------------------------------------


def test_operator_queues_a_vm_operation(operator_client, operator_user, inv):
    vm = inv["stopped"]
    response = operator_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "vm_start"}, follow=True)
    op = Job.objects.get(target_id=vm.pk, kind__startswith="vm_")
    assert (op.kind, op.status, op.target, op.trigger) == ("vm_start", Job.Status.PENDING, vm, Job.Trigger.GUI)
    assert op.requested_by == operator_user
    assert response.redirect_chain[-1][0] == vm.get_absolute_url()
    page = response.content.decode()
    assert f"Start of kvm-gui-vm01 queued (operation #{op.pk})." in page  # the success message
    assert "data-refresh-until-idle" in page and "data-active" in page  # the live region polls it


def test_a_refused_operation_shows_why_and_creates_nothing(operator_client, inv):
    vm = inv["running"]
    response = operator_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "vm_start"}, follow=True)
    assert "cannot start VM" in response.content.decode()
    assert not Job.objects.filter(kind="vm_start").exists()
    response = operator_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "format_disk"}, follow=True)
    assert "Not queued" in response.content.decode()


def test_snapshot_create_revert_and_delete_go_through_vm_action(operator_client, inv):
    vm = inv["stopped"]
    url = reverse("vm-action", args=[vm.pk])
    operator_client.post(url, {"kind": "snapshot_create", "snapshot": "pre-patch", "description": "before patching"})
    op = Job.objects.get(kind__startswith="snapshot_")
    assert op.kind == "snapshot_create" and op.target == vm
    assert op.params == {"snapshot": "pre-patch", "description": "before patching"}
    running = inv["running"]  # has the factory's snapshot "before-upgrade"
    page = operator_client.get(reverse("vm-detail", args=[running.pk])).content.decode()
    assert 'value="snapshot_revert"' in page and 'value="snapshot_delete"' in page and "before-upgrade" in page
    operator_client.post(
        reverse("vm-action", args=[running.pk]), {"kind": "snapshot_revert", "snapshot": "before-upgrade"}
    )
    revert = Job.objects.get(kind="snapshot_revert")
    assert revert.target == running and revert.params == {"snapshot": "before-upgrade"}


def test_bulk_action_reports_queued_and_refused(operator_client, inv):
    response = operator_client.post(
        reverse("vm-bulk-action"),
        {
            "kind": "vm_power_off",
            "vm": [inv["running"].pk, inv["stopped"].pk, inv["paused"].pk],
            "next": reverse("vm-list") + "?sort=-name",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("vm-list") + "?sort=-name"
    page = response.content.decode()
    assert "Power off queued for 2 VMs." in page
    assert "refused for 1 VM — cannot power off VM &#x27;kvm-gui-vm01&#x27;: it is stopped." in page
    assert set(Job.objects.filter(kind="vm_power_off").values_list("target_name", flat=True)) == {
        "kvm-gui-vm00",
        "kvm-gui-vm02",
    }


def test_bulk_action_without_selection_or_with_an_unknown_kind_queues_nothing(operator_client, inv):
    response = operator_client.post(reverse("vm-bulk-action"), {"kind": "vm_start"}, follow=True)
    assert "Select at least one VM." in response.content.decode()
    response = operator_client.post(reverse("vm-bulk-action"), {"kind": "snapshot_delete", "vm": [inv["stopped"].pk]})
    assert response.status_code == 302
    assert list(Job.objects.order_by("pk")) == [inv["run"], inv["op"]]
    evil_next = operator_client.post(
        reverse("vm-bulk-action"), {"kind": "vm_start", "vm": [inv["stopped"].pk], "next": "https://evil.example/"}
    )
    assert evil_next["Location"] == reverse("vm-list")  # no open redirect


def test_timed_out_shutdown_offers_force_power_off(operator_client, viewer_client, inv):
    vm = inv["running"]
    op = _job(
        "vm_shutdown",
        vm,
        status=Job.Status.FAILED,
        result={"timed_out": True, "can_force": True},
        error="did not shut down within 120 s",
    )
    page = operator_client.get(reverse("vm-detail", args=[vm.pk])).content.decode()
    assert "Force power-off" in page and 'value="vm_power_off"' in page
    job_page = operator_client.get(reverse("job-detail", args=[op.pk])).content.decode()
    assert "Force power-off" in job_page and f'action="/vms/{vm.pk}/action/"' in job_page
    assert "Force power-off" not in viewer_client.get(reverse("vm-detail", args=[vm.pk])).content.decode()
    assert "Force power-off" not in viewer_client.get(reverse("job-detail", args=[op.pk])).content.decode()
    # Not after a shutdown that failed for another reason, nor once the VM is stopped.
    Job.objects.filter(pk=op.pk).update(result={})
    assert "Force power-off" not in operator_client.get(reverse("job-detail", args=[op.pk])).content.decode()
    Job.objects.filter(pk=op.pk).update(result={"timed_out": True, "can_force": True})
    VirtualMachine.objects.filter(pk=vm.pk).update(state="stopped")
    assert "Force power-off" not in operator_client.get(reverse("job-detail", args=[op.pk])).content.decode()


def test_non_persistent_disk_is_flagged(viewer_client, inv):
    vm = inv["running"]
    VirtualDisk.objects.filter(vm=vm, target="sda").update(persistent=False)
    page = viewer_client.get(reverse("vm-detail", args=[vm.pk])).content.decode()
    assert page.count("live only — gone at next restart") == 1
    assert "kvm-gui-vm00.qcow2" in page  # vda's linked pool volume
    assert "/var/lib/libvirt/images/golden.qcow2" in page  # its backing chain


# --- live fragments ------------------------------------------------------------------------------


def test_fragments_return_just_the_region_marked_as_fragment(viewer_client, inv):
    vm = inv["stopped"]
    _job("vm_start", vm, status=Job.Status.RUNNING, progress=40, message="waiting for the new state")
    url = reverse("vm-detail", args=[vm.pk])
    ops = viewer_client.get(url, {"fragment": "operations"})
    assert ops["X-Vom-Fragment"] == "1" and ops["Cache-Control"] == "no-store"
    body = ops.content.decode()
    assert "<html" not in body and "data-active" in body and 'aria-valuenow="40"' in body
    state = viewer_client.get(url, {"fragment": "state"})
    assert state["X-Vom-Fragment"] == "1" and 'data-state="stopped"' in state.content.decode()
    assert viewer_client.get(url, {"fragment": "nope"}).status_code == 404
    for name in ("summary", "operations", "discoveries"):
        response = viewer_client.get(reverse("dashboard"), {"fragment": name})
        assert response.status_code == 200 and response["X-Vom-Fragment"] == "1", name
    assert b"waiting for the new state" in viewer_client.get(reverse("dashboard"), {"fragment": "operations"}).content
    assert b"<svg" in viewer_client.get(reverse("dashboard"), {"fragment": "summary"}).content
    live = viewer_client.get(reverse("job-detail", args=[inv["op"].pk]), {"fragment": "live"})
    assert live["X-Vom-Fragment"] == "1" and b"reboot requested" in live.content and b"<html" not in live.content
    run = viewer_client.get(reverse("job-detail", args=[inv["run"].pk]), {"fragment": "live"}).content.decode()
    assert "<td>disk</td>" in run and "<td>vm</td>" in run and "+12 added" in run
    assert viewer_client.get(reverse("job-detail", args=[inv["run"].pk]), {"fragment": "run"}).status_code == 404


def test_pages_declare_their_live_regions(viewer_client, inv):
    dashboard = viewer_client.get(reverse("dashboard")).content.decode()
    assert 'data-refresh="/?fragment=operations"' in dashboard
    assert 'data-refresh="/?fragment=discoveries"' in dashboard
    vm_page = viewer_client.get(reverse("vm-detail", args=[inv["running"].pk])).content.decode()
    assert f'data-refresh="/vms/{inv["running"].pk}/?fragment=state"' in vm_page
    assert "static/vom/vom.js" in vm_page and "static/vom/vom.css" in vm_page


def test_provider_page_status_and_inventory_update_themselves_during_a_discovery(viewer_client):
    provider = make_provider("kvm-live")
    url = reverse("provider-detail", args=[provider.pk])
    page = viewer_client.get(url).content.decode()
    for name in ("status", "overview", "discoveries"):
        assert f'data-refresh="{url}?fragment={name}" data-refresh-until-idle' in page, name
    assert "data-active" not in page  # nothing running: every region stays still

    run = lifecycle.create("discovery", target=provider, lock=f"discovery:provider:{provider.pk}")  # queued
    status = viewer_client.get(url, {"fragment": "status"})
    assert status["X-Vom-Fragment"] == "1" and "<html" not in status.content.decode()
    assert "Not yet discovered" in status.content.decode() and "data-active" in status.content.decode()
    overview = viewer_client.get(url, {"fragment": "overview"}).content.decode()
    assert "not been discovered yet" in overview and "No hosts discovered." in overview
    assert f"#{run.pk}</a> queued…" in overview and "data-active" in overview  # keeps polling

    # The worker finishes: inventory written, then run and provider updated together.
    make_inventory(provider)
    Job.objects.filter(pk=run.pk).update(status=Job.Status.SUCCEEDED)
    Provider.objects.filter(pk=provider.pk).update(last_discovery_at="2026-01-01T00:00:00Z")
    status = viewer_client.get(url, {"fragment": "status"}).content.decode()
    assert ">OK</span>" in status and "Not yet discovered" not in status and "data-active" not in status
    overview = viewer_client.get(url, {"fragment": "overview"}).content.decode()
    assert "not been discovered yet" not in overview and "data-active" not in overview  # the last answer
    assert f'href="/hosts/{Host.objects.get(provider=provider).pk}/">kvm-live</a>' in overview
    assert re.search(r'<span class="total-n">3</span><span class="total-l">VMs</span>', overview)
    assert "Running 1" in overview
    assert viewer_client.get(url, {"fragment": "nope"}).status_code == 404


# --- providers -----------------------------------------------------------------------------------


def _provider_post(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "kvm-new",
        "kind": "libvirt",
        "uri": "qemu+ssh://root@kvm09/system",
        "username": "root",
        "password": "",
        "discovery_interval": 600,
        "enabled": "on",
        "description": "rack 9",
    }
    data.update(overrides)
    return data


def test_malformed_uri_is_a_form_error_and_creates_nothing(admin_client):
    response = admin_client.post(reverse("provider-add"), _provider_post(uri="qemu+ssh:///system"))
    assert response.status_code == 200
    assert "needs a host" in " ".join(response.context["form"].errors["uri"])
    assert 'class="field-error"' in response.content.decode()
    assert not Provider.objects.exists()


def test_duplicate_name_is_a_form_error(admin_client, inv):
    response = admin_client.post(reverse("provider-add"), _provider_post(name="kvm-gui"))
    assert response.status_code == 200
    assert "already exists" in " ".join(response.context["form"].errors["name"])
    assert Provider.objects.count() == 1
    other = make_provider("kvm-other")
    response = admin_client.post(reverse("provider-edit", args=[other.pk]), _provider_post(name="kvm-gui"))
    assert "already exists" in " ".join(response.context["form"].errors["name"])
    assert "Edit provider kvm-other" in response.content.decode()  # the refused name is not shown as current
    other.refresh_from_db()
    assert other.name == "kvm-other"


def test_interval_out_of_range_is_a_form_error(admin_client):
    response = admin_client.post(reverse("provider-add"), _provider_post(discovery_interval=5))
    assert "discovery_interval" in response.context["form"].errors
    assert not Provider.objects.exists()


def test_password_is_stored_but_never_shown(admin_client):
    secret = "Sup3r-s3cret-pw!"
    response = admin_client.post(reverse("provider-add"), _provider_post(password=secret))
    provider = Provider.objects.get(name="kvm-new")
    assert response.status_code == 302 and response["Location"] == provider.get_absolute_url()
    assert provider.has_password and secret not in provider.password_encrypted
    for url in (
        reverse("provider-edit", args=[provider.pk]),
        reverse("provider-detail", args=[provider.pk]),
        reverse("provider-list"),
    ):
        html = admin_client.get(url).content.decode()
        assert secret not in html, url
        assert provider.password_encrypted not in html, url
    edit_page = admin_client.get(reverse("provider-edit", args=[provider.pk])).content.decode()
    assert re.search(r'<input type="password" name="password"[^>]*>', edit_page)
    assert "value=" not in re.search(r'<input type="password" name="password"[^>]*>', edit_page).group(0)
    assert "Clear the stored password" in edit_page
    # An invalid submission with a password does not echo it back either.
    bad = admin_client.post(reverse("provider-add"), _provider_post(name="kvm-x", uri="nope", password=secret))
    assert secret not in bad.content.decode()


def test_edit_keeps_the_password_when_blank_and_clears_it_when_asked(admin_client):
    admin_client.post(reverse("provider-add"), _provider_post(password="first-password"))
    provider = Provider.objects.get(name="kvm-new")
    token = provider.password_encrypted
    response = admin_client.post(
        reverse("provider-edit", args=[provider.pk]), _provider_post(description="moved to rack 10", password="")
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.description == "moved to rack 10" and provider.password_encrypted == token
    both = admin_client.post(
        reverse("provider-edit", args=[provider.pk]), _provider_post(password="new", clear_password="on")
    )
    assert both.status_code == 200 and both.context["form"].non_field_errors()
    admin_client.post(reverse("provider-edit", args=[provider.pk]), _provider_post(clear_password="on"))
    provider.refresh_from_db()
    assert not provider.has_password


def test_delete_asks_first_then_deletes_with_the_inventory(admin_client, inv):
    provider = inv["provider"]
    confirm = admin_client.get(reverse("provider-delete", args=[provider.pk]))
    assert confirm.status_code == 200 and "3 VMs" in confirm.content.decode()
    assert Provider.objects.filter(pk=provider.pk).exists()
    response = admin_client.post(reverse("provider-delete", args=[provider.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("provider-list")
    assert not Provider.objects.exists() and not VirtualMachine.objects.exists()


def test_discover_now_queues_one_manual_discovery(operator_client, operator_user, inv):
    provider = inv["provider"]
    url = reverse("provider-discover", args=[provider.pk])
    first = operator_client.post(url, follow=True)
    run = discoveries(provider).first()
    assert run.trigger == Job.Trigger.GUI and run.requested_by == operator_user and run.is_active
    assert run.status == Job.Status.PENDING
    assert f"Discovery of kvm-gui queued (#{run.pk})" in first.content.decode()
    second = operator_client.post(url, follow=True)
    assert discoveries(provider).count() == 2  # the fixture's and this one
    assert f"A discovery of kvm-gui is already queued (#{run.pk})." in second.content.decode()


def test_stale_provider_shows_its_reason(viewer_client, inv):
    Provider.objects.filter(pk=inv["provider"].pk).update(
        status=Provider.Status.STALE, stale_reason="cannot connect: No route to host"
    )
    for url in (reverse("dashboard"), reverse("provider-list"), reverse("provider-detail", args=[inv["provider"].pk])):
        assert "No route to host" in viewer_client.get(url).content.decode(), url


# --- escaping ------------------------------------------------------------------------------------


def test_names_with_markup_are_escaped_everywhere(operator_client, inv):
    vm = inv["stopped"]
    VirtualMachine.objects.filter(pk=vm.pk).update(name=EVIL)
    Provider.objects.filter(pk=inv["provider"].pk).update(name=EVIL)
    for url in (
        reverse("vm-list"),
        reverse("vm-detail", args=[vm.pk]),
        reverse("dashboard"),
        reverse("provider-list"),
        reverse("host-detail", args=[inv["host"].pk]),
    ):
        html = operator_client.get(url).content.decode()
        assert EVIL not in html, url
        assert "a&lt;b&amp;" in html, url
    assert EVIL_ESCAPED in operator_client.get(reverse("vm-detail", args=[vm.pk])).content.decode()
    response = operator_client.post(reverse("vm-action", args=[vm.pk]), {"kind": "vm_suspend"}, follow=True)
    assert EVIL not in response.content.decode() and "cannot suspend" in response.content.decode()


# --- VM list -------------------------------------------------------------------------------------


def _vm_list_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_vm_list_query_count_does_not_grow_with_rows(viewer_client):
    make_inventory(make_provider("small"), vms=5)
    url = reverse("vm-list") + "?per_page=100"
    small = _vm_list_queries(viewer_client, url)
    make_inventory(make_provider("large"), vms=45)
    assert VirtualMachine.objects.count() == 50
    large = _vm_list_queries(viewer_client, url)
    assert small == large
    html = viewer_client.get(url).content.decode()
    assert html.count('href="/vms/') >= 50


def test_vm_list_search_filters_sort_and_page_size(viewer_client, inv):
    make_inventory(make_provider("other"), vms=4)
    base = reverse("vm-list")

    def names(**params: object) -> list[str]:
        page = viewer_client.get(base, params).context["page"]
        return [vm.name for vm in page]

    assert names(q="kvm-gui-vm01") == ["kvm-gui-vm01"]
    assert names(q=inv["running"].uuid) == ["kvm-gui-vm00"]
    mac = inv["paused"].nics.get().mac
    assert names(q=mac.upper()) == ["kvm-gui-vm02"]
    assert names(state="paused", provider=inv["provider"].pk) == ["kvm-gui-vm02"]
    assert set(names(state=["running", "paused"], provider=inv["provider"].pk)) == {"kvm-gui-vm00", "kvm-gui-vm02"}
    assert names(host=inv["host"].pk, sort="-name") == ["kvm-gui-vm02", "kvm-gui-vm01", "kvm-gui-vm00"]
    assert names(platform="rhev") == []
    assert names(sort="password_encrypted") == sorted(names())  # not a sort key: falls back to name
    assert viewer_client.get(base, {"per_page": 100000}).context["per_page"] == 50
    assert viewer_client.get(base, {"per_page": 200}).context["per_page"] == 200
    VirtualMachine.objects.filter(pk=inv["stopped"].pk).update(removed_at="2026-01-01T00:00:00Z")
    assert "kvm-gui-vm01" not in names()
    assert names(removed="yes") == ["kvm-gui-vm01"]
    page = viewer_client.get(base, {"removed": "yes"}).content.decode()
    assert ">removed</span>" in page


def test_vm_list_paginates(viewer_client):
    make_inventory(make_provider("big"), vms=60)
    first = viewer_client.get(reverse("vm-list"))
    assert len(first.context["page"]) == 50 and "Page 1 of 2" in first.content.decode()
    second = viewer_client.get(reverse("vm-list"), {"page": 2})
    assert len(second.context["page"]) == 10


def test_operation_list_filters_by_status_and_kind(viewer_client, inv):
    _job("vm_start", inv["stopped"], status=Job.Status.FAILED, error="boom")
    by_status = viewer_client.get(reverse("job-list"), {"status": "failed"}).context["page"]
    assert [op.kind for op in by_status] == ["vm_start"]
    by_kind = viewer_client.get(reverse("job-list"), {"kind": "vm_reboot"}).context["page"]
    assert [op.pk for op in by_kind] == [inv["op"].pk]
    discoveries_only = viewer_client.get(reverse("job-list"), {"kind": "discovery"}).context["page"]
    assert [op.pk for op in discoveries_only] == [inv["run"].pk]
    everything = viewer_client.get(reverse("job-list")).context["page"]
    assert len(everything) == 3


def test_dashboard_counts_and_charts(viewer_client, inv):
    response = viewer_client.get(reverse("dashboard"))
    totals = response.context["totals"]
    assert totals == {"providers": 1, "hosts": 1, "vms": 3, "disks": 6, "pools": 1, "networks": 1}
    html = response.content.decode()
    assert html.count("<svg") == 3
    assert "/vms/?state=running" in html  # slices link to the filtered list
    assert f"/vms/?provider={inv['provider'].pk}" in html


def test_actions_are_disabled_while_an_operation_runs(operator_client, inv):
    vm = inv["running"]
    url = reverse("vm-detail", args=[vm.pk])
    assert "disabled title=" not in operator_client.get(url, {"fragment": "state"}).content.decode()
    Job.objects.filter(pk=inv["op"].pk).update(status=Job.Status.CANCELLED)  # the fixture's: ended, lock free
    op = _job("vm_reboot", vm, status=Job.Status.RUNNING)
    state = operator_client.get(url, {"fragment": "state"}).content.decode()
    assert f"Reboot #{op.pk}</a> in progress" in state
    assert f'disabled title="Wait for operation #{op.pk} to finish"' in state


def test_state_line_says_queued_while_pending_and_in_progress_while_running(operator_client, inv):
    vm = inv["stopped"]
    url = reverse("vm-detail", args=[vm.pk])
    op = _job("vm_start", vm)  # pending
    state = operator_client.get(url, {"fragment": "state"}).content.decode()
    assert f"Start #{op.pk}</a> queued…" in state and "in progress" not in state
    assert "data-active" in state
    Job.objects.filter(pk=op.pk).update(status=Job.Status.RUNNING)
    state = operator_client.get(url, {"fragment": "state"}).content.decode()
    assert f"Start #{op.pk}</a> in progress…" in state and "queued" not in state


def test_state_reason_is_shown_only_when_it_says_something(viewer_client, inv):
    vm = inv["running"]
    url = reverse("vm-detail", args=[vm.pk])
    assert "reason: <strong>booted</strong>" in viewer_client.get(url, {"fragment": "state"}).content.decode()
    for reason in ("unknown", "Unknown", ""):
        VirtualMachine.objects.filter(pk=vm.pk).update(state_reason=reason)
        state = viewer_client.get(url, {"fragment": "state"}).content.decode()
        assert "reason:" not in state, reason
        assert "(unknown)" not in state, reason  # nor in the badge's tooltip
        assert 'title="running"' in state, reason


def test_snapshot_description_input_has_a_label(operator_client, inv):
    page = operator_client.get(reverse("vm-detail", args=[inv["stopped"].pk])).content.decode()
    assert '<label for="id_snapshot">New snapshot</label>' in page
    assert '<label for="id_description" class="label-light">Description</label>' in page
    assert 'id="id_description"' in page


def test_dashboard_charts_all_say_no_data_without_vms(viewer_client):
    html = viewer_client.get(reverse("dashboard")).content.decode()
    assert html.count("No data") == 3
    assert "/vms/?platform=" not in html  # no empty bars
    make_inventory(make_provider("kvm-one"))
    html = viewer_client.get(reverse("dashboard")).content.decode()
    assert "No data" not in html
    assert "/vms/?platform=rhev" in html  # with VMs, an empty platform keeps its zero bar


# --- list filters --------------------------------------------------------------------------------

WIDGET_TEMPLATES = ("django/forms/widgets/select.html", "django/forms/widgets/select_option.html")


def _list_page(client: Client, name: str, **params: object) -> str:
    response = client.get(reverse(name), params)
    assert response.status_code == 200, name
    rendered = {template.name for template in response.templates}
    assert not rendered & set(WIDGET_TEMPLATES), name  # options built in one pass, not a template each
    return response.content.decode()


@pytest.mark.parametrize(
    ("name", "selects"),
    [
        ("host-list", ("provider",)),
        ("pool-list", ("provider", "host")),
        ("volume-list", ("provider", "pool")),
        ("network-list", ("provider", "host")),
        ("vm-list", ("provider", "host")),
    ],
)
def test_list_filter_selects_keep_their_names_and_selection(viewer_client, inv, name, selects):
    make_inventory(make_provider("kvm-other"))
    chosen = {"provider": inv["provider"], "host": inv["host"], "pool": inv["pool"]}
    html = _list_page(viewer_client, name)
    for param in selects:
        assert re.search(rf'<select name="{param}" aria-label="{param.capitalize()}"><option value="">All ', html)
        assert " selected>" not in re.search(rf'<select name="{param}".*?</select>', html, re.S).group(0)
    html = _list_page(viewer_client, name, **{param: chosen[param].pk for param in selects})
    for param in selects:
        select = re.search(rf'<select name="{param}".*?</select>', html, re.S).group(0)
        assert re.search(rf'<option value="{chosen[param].pk}" selected>kvm-gui', select) or re.search(
            rf'<option value="{chosen[param].pk}" selected>default</option>', select
        ), (param, select)
        assert select.count(" selected>") == 1


def test_host_and_pool_choices_follow_the_chosen_provider(viewer_client, inv, monkeypatch):
    other = make_inventory(make_provider("kvm-other"))
    other_host = Host.objects.get(provider=other)

    def options(name: str, param: str, **params: object) -> list[str]:
        html = _list_page(viewer_client, name, **params)
        select = re.search(rf'<select name="{param}".*?</select>', html, re.S).group(0)
        return re.findall(r"<option[^>]*>([^<]*)</option>", select)

    assert options("pool-list", "host") == ["All hosts", "kvm-gui", "kvm-other"]
    assert options("pool-list", "host", provider=other.pk) == ["All hosts", "kvm-other"]
    assert options("volume-list", "pool") == ["All pools", "default (kvm-gui)", "default (kvm-other)"]
    assert options("volume-list", "pool", provider=other.pk) == ["All pools", "default"]
    # A removed host is no choice any more, unless it is the one asked for.
    Host.objects.filter(pk=other_host.pk).update(removed_at="2026-01-01T00:00:00Z")
    assert options("network-list", "host") == ["All hosts", "kvm-gui"]
    assert options("network-list", "host", host=other_host.pk, removed="all") == ["All hosts", "kvm-gui", "kvm-other"]
    # Too many hosts to list without a provider: only the chosen one is offered.
    Host.objects.filter(pk=other_host.pk).update(removed_at=None)
    monkeypatch.setattr("inventory.views.common.CHOICES_WITHOUT_PROVIDER", 1)
    assert options("vm-list", "host") == ["All hosts"]
    assert options("vm-list", "host", host=inv["host"].pk) == ["All hosts", "kvm-gui"]
    assert options("vm-list", "host", provider=other.pk) == ["All hosts", "kvm-other"]


def test_operation_list_filters_by_target_user_and_parent(viewer_client, inv):
    """Changed: the list is of every job; ``?provider=``/``?vm=`` became ``target_type`` + ``target_id``,
    ``target`` (a part of the target's name), ``user`` and ``parent``."""
    other = make_inventory(make_provider("kvm-other"))
    vm = VirtualMachine.objects.filter(provider=other).order_by("name").first()
    alice = make_user("operator", username="alice-op")
    mine = _job("vm_start", vm, requested_by=alice)
    child = lifecycle.create("vm_start", parent=mine, position=0, inline=True, target_name="a step")

    def listed(**params: object) -> list[int]:
        response = viewer_client.get(reverse("job-list"), params)
        assert response.status_code == 200 and not response.context["filter"].errors, params
        return [job.pk for job in response.context["page"]]

    assert listed(target_type="inventory.virtualmachine", target_id=vm.pk) == [mine.pk]
    assert listed(target_type="inventory.provider", target_id=inv["provider"].pk) == [inv["run"].pk]
    assert listed(target="kvm-other") == [mine.pk]
    assert listed(user="ALICE-op") == [mine.pk]
    assert listed(parent=mine.pk) == [child.pk]
    assert child.pk not in listed()  # a child shows on its parent's page, not in the list
    html = viewer_client.get(reverse("job-list"), {"target": "kvm-other", "user": "alice-op"}).content.decode()
    assert 'name="target" value="kvm-other"' in html and 'name="user" value="alice-op"' in html
    steps = viewer_client.get(reverse("job-detail", args=[mine.pk])).content.decode()
    assert "Steps" in steps and "a step" in steps


# --- job pages -----------------------------------------------------------------------------------


def test_a_discoverys_old_address_leads_to_its_job_page(viewer_client, inv):
    response = viewer_client.get(reverse("discovery-detail", args=[inv["run"].pk]))
    assert response.status_code == 302 and response["Location"] == f"/operations/{inv['run'].pk}/"
    assert viewer_client.get(reverse("discovery-detail", args=[inv["op"].pk])).status_code == 404  # not a discovery


def test_an_operator_cancels_a_queued_job_and_a_running_one_stops_before_its_next_step(
    operator_client, viewer_client, operator_user, inv
):
    queued = _job("vm_start", inv["stopped"])
    page = operator_client.get(reverse("job-detail", args=[queued.pk])).content.decode()
    assert 'id="job-cancel"' in page
    assert 'id="job-cancel"' not in viewer_client.get(reverse("job-detail", args=[queued.pk])).content.decode()
    assert viewer_client.post(reverse("job-cancel", args=[queued.pk])).status_code == 403
    assert Job.objects.get(pk=queued.pk).status == Job.Status.PENDING

    response = operator_client.post(reverse("job-cancel", args=[queued.pk]), follow=True)
    queued.refresh_from_db()
    assert queued.status == Job.Status.CANCELLED and queued.cancelled_by == operator_user
    assert queued.error == "cancelled by oscar before it started"
    assert f"Start #{queued.pk} cancelled before it started." in response.content.decode()
    again = operator_client.post(reverse("job-cancel", args=[queued.pk]), follow=True).content.decode()
    assert f"Job #{queued.pk} has already ended (cancelled)." in again

    running = _job("vm_reboot", inv["paused"], status=Job.Status.RUNNING)
    response = operator_client.post(reverse("job-cancel", args=[running.pk]), follow=True).content.decode()
    assert f"Cancelling Reboot #{running.pk}: it stops before its next step." in response
    running.refresh_from_db()
    assert running.status == Job.Status.RUNNING and running.cancel_requested is not None
    live = operator_client.get(reverse("job-detail", args=[running.pk]), {"fragment": "live"}).content.decode()
    assert "Cancelling: asked for by oscar" in live
    assert 'id="job-cancel"' not in operator_client.get(reverse("job-detail", args=[running.pk])).content.decode()


def _job_list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("job-list"), {"per_page": 200})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_operation_list_query_count_does_not_grow_with_rows(viewer_client, inv):
    small = _job_list_queries(viewer_client)
    for vm in VirtualMachine.objects.filter(provider=make_inventory(make_provider("many"), vms=20)):
        _job("vm_start", vm)
    assert Job.objects.count() == 22
    assert _job_list_queries(viewer_client) == small
