"""The RHEV simulator speaks the oVirt REST API v4 as the API model describes it (raw HTTP, no SDK)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from vom.simulators.rhev import VM_STATUSES, demo_inventory, start

API = "/ovirt-engine/api"


@pytest.fixture(scope="module")
def sim():
    simulator = start(demo_inventory(3))
    yield simulator
    simulator.stop()


def _base(sim) -> str:
    return sim.url[: -len(API)]


def _sso(sim, username="admin@internal", password="secret", scope="ovirt-app-api"):
    data = urllib.parse.urlencode(
        {"grant_type": "password", "scope": scope, "username": username, "password": password}
    ).encode()
    req = urllib.request.Request(
        f"{_base(sim)}/ovirt-engine/sso/oauth/token", data=data, headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], json.loads(err.read())


@pytest.fixture(scope="module")
def token(sim):
    return _sso(sim)[2]["access_token"]


def _call(sim, token, path, method="GET", body=None):
    headers = {"Accept": "application/xml", "Content-Type": "application/xml", "Version": "4"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"{_base(sim)}{API}{path}", data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers["Content-Type"], ET.fromstring(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], ET.fromstring(err.read())


def test_sso_token_endpoint_answers_like_the_engine(sim):
    status, ctype, data = _sso(sim)
    assert status == 200 and ctype.startswith("application/json")
    assert set(data) >= {"access_token", "scope", "exp", "token_type"}
    assert data["token_type"] == "bearer" and data["scope"] == "ovirt-app-api"
    assert int(data["exp"]) > 0


def test_sso_wrong_password_is_access_denied(sim):
    status, ctype, data = _sso(sim, password="wrong")
    assert status == 400 and ctype.startswith("application/json")
    assert data["error_code"] == "access_denied"
    assert data["error"].startswith("Cannot authenticate user 'admin@internal'")
    assert "wrong" not in json.dumps(data)


def test_sso_bad_scope(sim):
    status, _, data = _sso(sim, scope="other")
    assert status == 400 and data["error_code"] == "invalid_scope"


def test_api_without_or_with_bad_token_is_401_fault(sim):
    for token in (None, "forged"):
        status, ctype, root = _call(sim, token, "/vms")
        assert status == 401 and ctype.startswith("application/xml")
        assert root.tag == "fault" and root.findtext("reason") == "Unauthorized"


def test_api_root_has_product_info_links_and_summary(sim, token):
    status, _, root = _call(sim, token, "")
    assert status == 200 and root.tag == "api"
    rels = {link.get("rel"): link.get("href") for link in root.findall("link")}
    for rel in (
        "vms",
        "hosts",
        "clusters",
        "datacenters",
        "storagedomains",
        "networks",
        "templates",
        "disks",
        "vnicprofiles",
    ):
        assert rels[rel] == f"{API}/{rel}"
    assert rels["vms/search"] == f"{API}/vms?search={{query}}"
    assert root.findtext("product_info/name") == "oVirt Engine"
    assert root.findtext("product_info/version/major") == "4"
    assert root.findtext("summary/vms/total") == "40"
    assert root.find("special_objects/blank_template").get("id") == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("path", "collection", "entity"),
    [
        ("/datacenters", "data_centers", "data_center"),
        ("/clusters", "clusters", "cluster"),
        ("/hosts", "hosts", "host"),
        ("/vms", "vms", "vm"),
        ("/disks", "disks", "disk"),
        ("/storagedomains", "storage_domains", "storage_domain"),
        ("/networks", "networks", "network"),
        ("/templates", "templates", "template"),
        ("/vnicprofiles", "vnic_profiles", "vnic_profile"),
    ],
)
def test_collections_and_entities_have_id_and_href(sim, token, path, collection, entity):
    status, _, root = _call(sim, token, path)
    assert status == 200 and root.tag == collection and len(root) > 0
    for item in root:
        assert item.tag == entity
        assert item.get("href") == f"{API}{path}/{item.get('id')}"
    first = root[0]
    status, _, single = _call(sim, token, f"{path}/{first.get('id')}")
    assert status == 200 and single.tag == entity and single.get("id") == first.get("id")
    assert single.findtext("name") == first.findtext("name")


def test_vm_has_links_references_and_lowercase_enums(sim, token):
    _, _, root = _call(sim, token, "/vms")
    vm = root[0]
    rels = {link.get("rel"): link.get("href") for link in vm.findall("link")}
    assert rels["diskattachments"] == f"{vm.get('href')}/diskattachments"
    assert rels["nics"] == f"{vm.get('href')}/nics"
    actions = {link.get("rel") for link in vm.findall("actions/link")}
    assert {"start", "stop", "shutdown", "suspend", "migrate"} <= actions
    assert vm.findtext("status") in VM_STATUSES
    assert vm.find("cluster").get("href").startswith(f"{API}/clusters/")
    assert vm.findtext("high_availability/enabled") in ("true", "false")
    assert int(vm.findtext("cpu/topology/sockets")) >= 1
    assert vm.find("disk_attachments") is None  # only when followed


def test_follow_inlines_disk_attachments_disks_and_nics(sim, token):
    _, _, root = _call(sim, token, "/vms?follow=disk_attachments.disk,nics")
    vm = root[0]
    att = vm.find("disk_attachments/disk_attachment")
    assert att.get("href") == f"{vm.get('href')}/diskattachments/{att.get('id')}"
    assert att.findtext("interface") in ("virtio", "virtio_scsi", "ide", "sata")
    disk = att.find("disk")
    assert disk.findtext("format") in ("cow", "raw") and disk.findtext("provisioned_size").isdigit()
    nic = vm.find("nics/nic")
    assert nic.findtext("mac/address").startswith("56:6f:")
    assert nic.findtext("plugged") in ("true", "false")
    assert "nics" not in {link.get("rel") for link in vm.findall("link")}


def test_lun_disk_has_lun_storage_with_logical_units(sim, token):
    _, _, root = _call(sim, token, "/disks")
    luns = [d for d in root if d.findtext("storage_type") == "lun"]
    assert luns
    lu = luns[0].find("lun_storage/logical_units/logical_unit")
    assert lu.get("id").startswith("36001405")
    assert luns[0].findtext("lun_storage/type") == "iscsi"
    images = [d for d in root if d.findtext("storage_type") == "image"]
    assert images[0].find("storage_domains/storage_domain").get("href").startswith(f"{API}/storagedomains/")


def test_storage_domains_types_and_storage(sim, token):
    _, _, root = _call(sim, token, "/storagedomains")
    kinds = {(sd.findtext("type"), sd.findtext("storage/type")) for sd in root}
    assert {("data", "nfs"), ("data", "iscsi"), ("iso", "nfs"), ("export", "nfs")} <= kinds
    nfs = next(sd for sd in root if sd.findtext("storage/type") == "nfs")
    assert nfs.findtext("storage/address") and nfs.findtext("storage/path").startswith("/exports/")
    assert nfs.findtext("available").isdigit() and nfs.findtext("committed").isdigit()


def test_search_by_cluster(sim, token):
    _, _, clusters = _call(sim, token, "/clusters")
    name = clusters[0].findtext("name")
    _, _, root = _call(sim, token, "/vms?" + urllib.parse.urlencode({"search": f"cluster={name}"}))
    assert 0 < len(root) < 40
    assert {vm.find("cluster").get("id") for vm in root} == {clusters[0].get("id")}


def test_unknown_vm_is_404_fault(sim, token):
    status, _, root = _call(sim, token, "/vms/00000000-0000-0000-0000-00000000dead")
    assert status == 404 and root.tag == "fault"
    assert "Entity not found" in root.findtext("detail")


def test_action_changes_state_and_invalid_action_is_409(sim, token):
    _, _, root = _call(sim, token, "/vms?search=status%3Ddown")
    vm_id = root[0].get("id")
    status, _, action = _call(sim, token, f"/vms/{vm_id}/start", "POST", b"<action/>")
    assert status == 200 and action.tag == "action" and action.findtext("status") == "complete"
    _, _, vm = _call(sim, token, f"/vms/{vm_id}")
    assert vm.findtext("status") == "up" and vm.find("host") is not None
    status, _, fault = _call(sim, token, f"/vms/{vm_id}/start", "POST", b"<action/>")
    assert status == 409 and fault.tag == "fault" and fault.findtext("reason") == "Operation Failed"
    assert "Cannot run VM" in fault.findtext("detail")
    status, _, fault = _call(sim, token, f"/vms/{vm_id}/stop", "POST", b"<not-xml")
    assert status == 400 and fault.tag == "fault"


def test_vm_statuses_are_exactly_the_v4_model_enum():
    import ovirtsdk4.types as otypes

    assert len(VM_STATUSES) == 15
    assert set(VM_STATUSES) == {s.value for s in otypes.VmStatus}
