"""A job with children: each child has its own status, timing and log; the parent shows them all,
and a parent waiting between steps is woken when a child of its own ends."""

from __future__ import annotations

import pytest

from vom.jobs import lifecycle
from vom.jobs.models import Job
from vom.jobs.runner import run_step

pytestmark = pytest.mark.django_db
S = Job.Status


def test_a_parent_waits_for_its_children_and_is_woken_as_each_ends(sent, django_capture_on_commit_callbacks):
    parent = lifecycle.create("test_parent", target_name="the whole")
    with django_capture_on_commit_callbacks(execute=True):
        run_step(parent.pk, 0)
    first, second = Job.objects.filter(parent=parent).order_by("position")
    assert (first.status, second.status) == (S.PENDING, S.PENDING) and not first.inline
    assert sorted(sent) == sorted(
        [(first.pk, 0, "orchestration"), (second.pk, 0, "orchestration"), (parent.pk, 1, "orchestration")]
    )
    parent.refresh_from_db()
    assert parent.between_steps and parent.message == "waiting for its parts"

    sent.clear()
    run_step(first.pk, 0)
    assert sent == [(parent.pk, 1, "orchestration")]  # woken now, not in 300 s
    run_step(parent.pk, 1)
    parent.refresh_from_db()
    assert parent.status == S.RUNNING and parent.step == 2  # the second part still runs

    sent.clear()
    run_step(second.pk, 0)
    assert sent == [(parent.pk, 2, "orchestration")]
    run_step(parent.pk, 2)
    parent.refresh_from_db()
    assert parent.status == S.SUCCEEDED and parent.result == {"parts": ["succeeded", "succeeded"]}


@pytest.fixture
def parent_with_children():
    parent = lifecycle.create("test_held", target_name="provision 3")
    children = [
        lifecycle.create("test_child", parent=parent, position=i, inline=True, target_name=f"web-0{i + 1}")
        for i in range(3)
    ]
    held = lifecycle.claim(parent.pk, 0)
    assert lifecycle.finish(
        children[0], status=S.SUCCEEDED, only_if=lifecycle.held_by_me(held) | ~lifecycle.held_by_me(held)
    )
    lifecycle.finish(children[1], status=S.FAILED, only_if=~lifecycle.held_by_me(held), error="cannot define the VM")
    lifecycle.log(children[1], "cannot define the VM", "error")
    return parent, children


def test_the_api_shows_each_childs_state(viewer_api, parent_with_children):
    parent, children = parent_with_children
    body = viewer_api.get(f"/api/operations/{parent.pk}/").json()
    assert [(c["target_name"], c["status"], c["error"]) for c in body["children"]] == [
        ("web-01", "succeeded", ""),
        ("web-02", "failed", "cannot define the VM"),
        ("web-03", "pending", ""),
    ]
    assert body["status"] == "running"
    child = viewer_api.get(f"/api/operations/{children[1].pk}/").json()
    assert child["parent"] == parent.pk and [line["message"] for line in child["log"]] == ["cannot define the VM"]
    listed = viewer_api.get("/api/operations/").json()["results"]
    assert [job["id"] for job in listed] == [parent.pk]  # children show under their parent
    assert len(viewer_api.get(f"/api/operations/?parent={parent.pk}").json()["results"]) == 3


def test_the_page_shows_each_childs_state(viewer_client, parent_with_children):
    parent, children = parent_with_children
    page = viewer_client.get(f"/operations/{parent.pk}/").content.decode()
    steps = page[page.index("Steps") :]
    for child, status in zip(children, ("Succeeded", "Failed", "Queued"), strict=True):
        row = steps[steps.index(f"#{child.pk}</a>") :]
        row = row[: row.index("</tr>")]
        assert child.target_name in row and status in row, row
    assert "cannot define the VM" in steps
    child_page = viewer_client.get(f"/operations/{children[1].pk}/").content.decode()
    assert f'href="/operations/{parent.pk}/"' in child_page
