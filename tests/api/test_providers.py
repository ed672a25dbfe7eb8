"""Providers through the API: CRUD through the provider service, a write-only password, 400s with field errors."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory import secrets
from inventory.models import Provider
from inventory.services.discovery import discoveries
from tests.factories import make_provider
from vom.jobs import lifecycle
from vom.jobs.models import Job

pytestmark = pytest.mark.django_db

SECRET = "S3cr3t-<&>\"'-pw"
NEW_SECRET = "An0ther-secret-pw"


def _create(api, **fields):
    body = {"name": "kvm-lab", "uri": "qemu+ssh://root@kvm01/system", "username": "root", **fields}
    return api.post(reverse("api:provider-list"), body, format="json")


def test_create_stores_the_password_encrypted_and_never_returns_it(admin_api, caplog):
    with caplog.at_level("DEBUG"):
        response = _create(admin_api, password=SECRET, discovery_interval=600)
    assert response.status_code == 201
    data = response.json()
    assert data["name"] == "kvm-lab" and data["kind"] == "libvirt" and data["discovery_interval"] == 600
    assert data["has_password"] is True
    assert "password" not in data and "password_encrypted" not in data and "clear_password" not in data
    assert data["status"] == "new" and data["host_count"] == 0 and data["vm_count"] == 0
    provider = Provider.objects.get(pk=data["id"])
    assert provider.password_encrypted and SECRET not in provider.password_encrypted
    assert secrets.decrypt(provider.password_encrypted) == SECRET
    assert SECRET not in response.content.decode()
    assert SECRET not in caplog.text


def test_password_never_appears_in_any_response(admin_api, viewer_api, caplog):
    with caplog.at_level("DEBUG"):
        created = _create(admin_api, password=SECRET)
        url = reverse("api:provider-detail", args=[created.json()["id"]])
        responses = [
            created,
            admin_api.get(reverse("api:provider-list")),
            viewer_api.get(reverse("api:provider-list")),
            admin_api.get(url),
            admin_api.patch(url, {"password": NEW_SECRET, "description": "lab"}, format="json"),
            admin_api.get(url),
            admin_api.get(reverse("api:provider-list"), {"q": "kvm"}),
            admin_api.patch(url, {"name": ""}, format="json"),  # an error response, too
            admin_api.options(reverse("api:provider-list")),
            admin_api.get(reverse("api:schema")),
        ]
    for response in responses:
        body = response.content.decode()
        assert SECRET not in body and NEW_SECRET not in body, response.request["PATH_INFO"]
    assert SECRET not in caplog.text and NEW_SECRET not in caplog.text
    assert responses[4].status_code == 200 and responses[4].json()["has_password"] is True
    assert responses[7].status_code == 400
    provider = Provider.objects.get(name="kvm-lab")
    assert secrets.decrypt(provider.password_encrypted) == NEW_SECRET
    assert provider.description == "lab"


def test_update_keeps_clears_or_replaces_the_password(admin_api):
    url = reverse("api:provider-detail", args=[_create(admin_api, password=SECRET).json()["id"]])

    kept = admin_api.patch(url, {"enabled": False}, format="json")
    assert kept.status_code == 200 and kept.json()["has_password"] is True and kept.json()["enabled"] is False
    kept_empty = admin_api.patch(url, {"password": ""}, format="json")
    assert kept_empty.json()["has_password"] is True
    assert secrets.decrypt(Provider.objects.get(name="kvm-lab").password_encrypted) == SECRET

    cleared = admin_api.patch(url, {"clear_password": True}, format="json")
    assert cleared.status_code == 200 and cleared.json()["has_password"] is False
    assert Provider.objects.get(name="kvm-lab").password_encrypted == ""


def test_full_update_and_delete(admin_api):
    created = _create(admin_api, password=SECRET).json()
    url = reverse("api:provider-detail", args=[created["id"]])
    put = admin_api.put(
        url,
        {
            "name": "kvm-lab-2",
            "kind": "libvirt",
            "uri": "test:///default",
            "discovery_interval": 120,
            "enabled": True,
            "description": "renamed",
        },
        format="json",
    )
    assert put.status_code == 200, put.json()
    provider = Provider.objects.get(pk=created["id"])
    assert (provider.name, provider.uri, provider.discovery_interval) == ("kvm-lab-2", "test:///default", 120)
    assert provider.has_password  # PUT without a password keeps it

    assert admin_api.delete(url).status_code == 204
    assert not Provider.objects.filter(pk=created["id"]).exists()
    assert admin_api.get(url).status_code == 404


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"uri": "not a uri"}, "uri"),
        ({"uri": "qemu+ssh:///system"}, "uri"),  # a remote transport without a host
        ({"uri": "http://kvm01/system"}, "uri"),
        ({"uri": ""}, "uri"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"discovery_interval": "often"}, "discovery_interval"),
        ({"discovery_interval": 5}, "discovery_interval"),
        ({"discovery_interval": 10**30}, "discovery_interval"),
        ({"kind": "vmware"}, "kind"),
        ({"enabled": "perhaps"}, "enabled"),
    ],
)
def test_bad_provider_input_is_400_with_field_errors_and_nothing_created(admin_api, fields, field):
    response = _create(admin_api, **fields)
    assert response.status_code == 400
    errors = response.json()
    assert field in errors and errors[field] and all(isinstance(m, str) for m in errors[field])
    assert Provider.objects.count() == 0


def test_several_field_errors_are_reported_together(admin_api):
    make_provider("taken")
    response = _create(admin_api, name="taken", uri="qemu:///nowhere", discovery_interval=1)
    assert response.status_code == 400
    assert set(response.json()) == {"name", "uri", "discovery_interval"}
    assert "already exists" in response.json()["name"][0]
    assert Provider.objects.count() == 1


def test_duplicate_name_is_400_on_create_and_on_update(admin_api):
    make_provider("kvm-lab")
    response = _create(admin_api)
    assert response.status_code == 400
    assert response.json() == {"name": ["A provider named 'kvm-lab' already exists."]}
    assert Provider.objects.filter(name="kvm-lab").count() == 1

    other = make_provider("kvm-other")
    renamed = admin_api.patch(reverse("api:provider-detail", args=[other.pk]), {"name": "kvm-lab"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()
    other.refresh_from_db()
    assert other.name == "kvm-other"


def test_kind_cannot_change(admin_api):
    provider = make_provider("kvm-lab")
    response = admin_api.patch(reverse("api:provider-detail", args=[provider.pk]), {"kind": "rhev"}, format="json")
    assert response.status_code == 400 and "kind" in response.json()
    same = admin_api.patch(reverse("api:provider-detail", args=[provider.pk]), {"kind": "libvirt"}, format="json")
    assert same.status_code == 200
    assert Provider.objects.get(pk=provider.pk).kind == "libvirt"


def test_malformed_json_body_is_400(admin_api):
    response = admin_api.generic("POST", reverse("api:provider-list"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()
    assert Provider.objects.count() == 0


def test_provider_filters_and_ordering(viewer_api):
    make_provider("b-kvm", uri="test:///default")
    make_provider("a-kvm", uri="qemu+ssh://root@a/system", enabled=False)
    names = [p["name"] for p in viewer_api.get(reverse("api:provider-list"), {"ordering": "-name"}).json()["results"]]
    assert names == ["b-kvm", "a-kvm"]
    disabled = viewer_api.get(reverse("api:provider-list"), {"enabled": "false"}).json()["results"]
    assert [p["name"] for p in disabled] == ["a-kvm"]
    assert [p["name"] for p in viewer_api.get(reverse("api:provider-list"), {"q": "root@a"}).json()["results"]] == [
        "a-kvm"
    ]


# --- discovery ---------------------------------------------------------------------------------


def test_discover_queues_one_run_and_answers_202(operator_api, operator_user):
    provider = make_provider("kvm-lab")
    response = operator_api.post(reverse("api:provider-discover", args=[provider.pk]))
    assert response.status_code == 202
    run = discoveries(provider).get()
    # The job's words: a discovery waiting for a worker is "pending" (shown "Queued"), no longer "queued".
    assert (run.kind, run.status, run.trigger, run.requested_by) == ("discovery", "pending", "api", operator_user)
    assert run.target == provider and run.lock == f"discovery:provider:{provider.pk}"
    data = response.json()
    assert data["id"] == run.pk and data["provider"] == provider.pk and data["provider_name"] == "kvm-lab"
    assert data["requested_by"] == "oscar" and data["status"] == "pending"
    assert (data["added"], data["changed"], data["removed"], data["counts"], data["duration_ms"]) == (0, 0, 0, {}, None)
    assert response["Location"].endswith(reverse("api:discovery-detail", args=[run.pk]))

    again = operator_api.post(reverse("api:provider-discover", args=[provider.pk]))
    assert again.status_code == 202 and again.json()["id"] == run.pk  # never two at once
    assert discoveries(provider).count() == 1

    listed = operator_api.get(reverse("api:provider-discoveries", args=[provider.pk])).json()
    assert [r["id"] for r in listed["results"]] == [run.pk] and listed["count"] == 1
    detail = operator_api.get(response["Location"]).json()
    assert detail["status"] == "pending" and detail["trigger"] == "api"
    # A discovery is a job like any other: the operations list shows it too.
    job = operator_api.get(reverse("api:job-detail", args=[run.pk])).json()
    assert (job["kind"], job["status"], job["target"]["type"], job["target"]["id"]) == (
        "discovery",
        "pending",
        "inventory.provider",
        provider.pk,
    )


def _ended_discovery(provider, status, **fields):
    job = lifecycle.create("discovery", target=provider, lock=f"discovery:provider:{provider.pk}")
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    return job


def test_discoveries_of_a_provider_are_its_own(viewer_api):
    a, b = make_provider("a"), make_provider("b")
    _ended_discovery(a, "succeeded", result={"added": 3, "changed": 1, "removed": 2, "counts": {"vm": {"added": 3}}})
    _ended_discovery(a, "failed", error="unreachable")
    _ended_discovery(b, "succeeded")
    rows = viewer_api.get(reverse("api:provider-discoveries", args=[a.pk])).json()["results"]
    assert [r["status"] for r in rows] == ["failed", "succeeded"]
    assert (rows[1]["added"], rows[1]["changed"], rows[1]["removed"]) == (3, 1, 2)
    assert rows[1]["counts"] == {"vm": {"added": 3}}
    failed = viewer_api.get(reverse("api:discovery-list"), {"status": "failed"}).json()["results"]
    assert [(r["provider_name"], r["error"]) for r in failed] == [("a", "unreachable")]
    of_b = viewer_api.get(reverse("api:discovery-list"), {"provider": b.pk}).json()["results"]
    assert [(r["provider"], r["provider_name"]) for r in of_b] == [(b.pk, "b")]
    # Only discoveries: another job of the same provider is not one.
    lifecycle.create("environment_check", target=a)
    assert viewer_api.get(reverse("api:discovery-list")).json()["count"] == 3
    assert viewer_api.post(reverse("api:provider-discover", args=[99999])).status_code == 403  # role first


def test_discoveries_order_by_each_field_the_list_offers(viewer_api):
    a = make_provider("a")
    for ms in (30, 10, 20):
        _ended_discovery(a, "succeeded", result={"added": 0, "duration_ms": ms})
    for ordering in ("created", "-created", "started", "finished", "status"):
        assert viewer_api.get(reverse("api:discovery-list"), {"ordering": ordering}).status_code == 200, ordering


def test_discoveries_order_by_their_duration(viewer_api):
    a = make_provider("a")
    for ms in (30, 10, 20):
        _ended_discovery(a, "succeeded", result={"added": 0, "duration_ms": ms})
    response = viewer_api.get(reverse("api:discovery-list"), {"ordering": "duration_ms"})
    assert response.status_code == 200
    assert [r["duration_ms"] for r in response.json()["results"]] == [10, 20, 30]
