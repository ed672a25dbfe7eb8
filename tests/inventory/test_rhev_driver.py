"""The RHEV driver through the real ovirtsdk4 client over HTTP(S), against the simulator."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from inventory.drivers.base import Credentials, DriverError, VMCheck
from inventory.drivers.rhev import RhevDriver, RhevSnapshot
from vom.simulators.rhev import VM_STATUSES, demo_inventory, start

CREDS = Credentials("admin@internal", "secret")


@pytest.fixture
def sim():
    simulator = start(demo_inventory(5))
    yield simulator
    simulator.stop()


@pytest.fixture
def driver(sim):
    drv = RhevDriver(sim.url, CREDS)
    yield drv
    drv.close()


def _vm(sim, pred):
    return next(v for v in sim.inventory.vms.values() if pred(v))


def test_discovery_counts_and_extras(sim, driver):
    snap = driver.discover()
    inv = sim.inventory
    assert isinstance(snap, RhevSnapshot)
    assert len(snap.hosts) == 6 and len(snap.vms) == 40
    assert len(snap.pools) == len(inv.storage_domains) and len(snap.networks) == len(inv.networks)
    assert {dc["name"] for dc in snap.datacenters} == {"DC-East", "DC-West"}
    assert len(snap.clusters) == 3 and all(c["datacenter"] for c in snap.clusters)
    assert "Blank" in {t["name"] for t in snap.templates} and len(snap.templates) == 4
    assert snap.product["name"] == "oVirt Engine"
    assert sim.requests <= 10  # the whole manager in a handful of requests


def test_discovered_host_fields(sim, driver):
    snap = driver.discover()
    src = next(iter(sim.inventory.hosts.values()))
    host = next(h for h in snap.hosts if h.uid == src.id)
    cluster = sim.inventory.clusters[src.cluster_id]
    assert host.hostname == src.name
    assert host.cpu_model == src.cpu_name and host.cpu_mhz == src.speed_mhz
    assert (host.cpu_sockets, host.cpu_cores, host.cpu_threads) == (src.sockets, src.cores, src.threads)
    assert host.cpu_count == src.sockets * src.cores * src.threads
    assert host.memory_bytes == src.memory
    assert host.hypervisor_version == src.version
    assert host.extra["status"] == src.status and host.extra["address"] == src.address
    assert host.extra["cluster"] == cluster.name and host.extra["cluster_id"] == cluster.id
    assert host.extra["datacenter"] == sim.inventory.datacenters[cluster.datacenter_id].name
    assert {h.extra["status"] for h in snap.hosts} == {"up", "maintenance"}


def test_discovered_vm_fields(sim, driver):
    src = _vm(
        sim, lambda v: v.status == "up" and v.ha_enabled and v.template_id != "00000000-0000-0000-0000-000000000000"
    )
    vm = next(v for v in driver.discover().vms if v.uuid == src.id)
    assert vm.name == src.name and vm.state == "up"
    assert vm.host_uid == src.host_id
    assert vm.memory_bytes == src.memory and vm.max_memory_bytes == src.max_memory
    assert vm.vcpus == src.sockets * src.cores * src.threads
    assert (vm.extra["cpu_sockets"], vm.extra["cpu_cores"], vm.extra["cpu_threads"]) == (
        src.sockets,
        src.cores,
        src.threads,
    )
    assert vm.extra["ha_enabled"] is True and vm.extra["ha_priority"] == 1
    assert vm.extra["template"] == sim.inventory.templates[src.template_id].name
    assert vm.extra["os"] == src.os_type
    assert vm.extra["cluster"] == sim.inventory.clusters[src.cluster_id].name
    assert vm.extra["datacenter"].startswith("DC-")
    down = next(v for v in driver.discover().vms if v.state == "down")
    assert down.host_uid == ""


def test_discovered_image_disk_fields(sim, driver):
    src = _vm(sim, lambda v: any(sim.inventory.disks[a.disk_id].lun is None for a in v.disk_attachments))
    att = src.disk_attachments[0]
    disk_src = sim.inventory.disks[att.disk_id]
    vm = next(v for v in driver.discover().vms if v.uuid == src.id)
    disk = vm.disks[0]
    sd = sim.inventory.storage_domains[disk_src.storage_domain_id]
    assert disk.bus == {"virtio": "virtio", "virtio_scsi": "scsi"}[att.interface]
    assert disk.target[:2] == ("vd" if att.interface == "virtio" else "sd")
    assert disk.driver_format == {"cow": "qcow2", "raw": "raw"}[disk_src.format]
    assert disk.source_type == "volume" and disk.source_pool == sd.name and disk.source_volume == disk_src.id
    assert disk.extra["sparse"] is disk_src.sparse
    assert disk.extra["provisioned_size"] == disk_src.provisioned_size
    assert disk.extra["actual_size"] == disk_src.actual_size
    assert disk.extra["storage_domain_id"] == sd.id and disk.extra["bootable"] is True


def test_discovered_lun_disk_fields(sim, driver):
    src = _vm(sim, lambda v: any(sim.inventory.disks[a.disk_id].lun is not None for a in v.disk_attachments))
    disk_src = next(sim.inventory.disks[a.disk_id] for a in src.disk_attachments if sim.inventory.disks[a.disk_id].lun)
    vm = next(v for v in driver.discover().vms if v.uuid == src.id)
    disk = next(d for d in vm.disks if d.extra["disk_id"] == disk_src.id)
    assert disk.source_type == "block"
    assert disk.source == f"/dev/mapper/{disk_src.lun.id}"
    assert disk.extra["lun_ids"] == [disk_src.lun.id]
    assert disk.extra["luns"][0]["target"] == disk_src.lun.target
    assert disk.extra["storage_type"] == "lun" and disk.shareable is True
    assert disk.device == "lun" and disk.driver_format == "raw"


def test_discovered_nic_fields(sim, driver):
    src = _vm(sim, lambda v: v.nics and v.nics[0].vnic_profile_id)
    nic_src = src.nics[0]
    profile = sim.inventory.vnic_profiles[nic_src.vnic_profile_id]
    vm = next(v for v in driver.discover().vms if v.uuid == src.id)
    nic = vm.nics[0]
    assert nic.mac == nic_src.mac and nic.model == nic_src.interface
    assert nic.source == sim.inventory.networks[profile.network_id].name
    assert nic.extra["vnic_profile"] == profile.name
    assert nic.extra["plugged"] is nic_src.plugged and nic.extra["linked"] is nic_src.linked


def test_discovered_storage_domains_and_networks(sim, driver):
    snap = driver.discover()
    nfs = next(p for p in snap.pools if p.type == "data" and p.extra["storage_type"] == "nfs")
    src = sim.inventory.storage_domains[nfs.uuid]
    assert nfs.source == f"{src.address}:{src.path}" and nfs.target_path == src.path
    assert nfs.available_bytes == src.available and nfs.allocation_bytes == src.used
    assert nfs.extra["committed"] == src.committed and nfs.extra["master"] is True
    assert nfs.state == "active" and nfs.active
    iscsi = next(p for p in snap.pools if p.extra["storage_type"] == "iscsi")
    assert iscsi.extra["lun_ids"] == [lu.id for lu in sim.inventory.storage_domains[iscsi.uuid].luns]
    assert {p.type for p in snap.pools} == {"data", "iso", "export"}
    export = next(p for p in snap.pools if p.type == "export")
    assert export.state == "maintenance" and not export.active
    vlan = next(n for n in snap.networks if n.extra["vlan"] == 100)
    assert vlan.extra["datacenter"].startswith("DC-") and vlan.extra["vnic_profiles"][0]["name"] == vlan.name


def test_cluster_filter(sim):
    cluster = next(iter(sim.inventory.clusters.values()))
    with RhevDriver(sim.url, CREDS, cluster=cluster.name) as drv:
        snap = drv.discover()
    assert snap.vms and {v.extra["cluster"] for v in snap.vms} == {cluster.name}
    assert snap.hosts and {h.extra["cluster"] for h in snap.hosts} == {cluster.name}
    with RhevDriver(sim.url, CREDS, cluster="No-Such") as drv, pytest.raises(DriverError, match="no cluster named"):
        drv.discover()


def test_all_fifteen_states_are_parsed():
    simulator = start(demo_inventory(9, vms=30, statuses=VM_STATUSES))
    try:
        with RhevDriver(simulator.url, CREDS) as drv:
            states = {v.state for v in drv.discover().vms}
            assert states == set(VM_STATUSES) and len(states) == 15
            one = next(v for v in simulator.inventory.vms.values() if v.status == "image_locked")
            assert drv.vm_state(one.id).state == "image_locked"
            # A value the SDK's enum does not know (v3's image_illegal) reads as "unknown", not a crash.
            one.status = "image_illegal"
            assert drv.vm_state(one.id).state == "unknown"
    finally:
        simulator.stop()


def test_start_shutdown_stop_suspend(sim, driver):
    vm = _vm(sim, lambda v: v.status == "down")
    driver.start(vm.id)
    reading = driver.vm_state(vm.id)
    assert reading.state == "up" and reading.uuid == vm.id
    assert sim.inventory.hosts[vm.host_id].cluster_id == vm.cluster_id
    driver.suspend(vm.id)
    assert driver.vm_state(vm.id).state == "suspended"
    driver.resume(vm.id)
    assert driver.vm_state(vm.id).state == "up"
    driver.shutdown(vm.id)
    assert driver.vm_state(vm.id).state == "down"
    driver.start(vm.id)
    driver.power_off(vm.id)
    assert driver.vm_state(vm.id).state == "down" and vm.host_id is None


def test_transitional_states_when_not_settled(sim, driver):
    sim.options.settle = False
    vm = _vm(sim, lambda v: v.status == "down")
    driver.start(vm.id)
    assert driver.vm_state(vm.id).state == "powering_up"


def test_migrate_with_and_without_host(sim, driver):
    vm = _vm(sim, lambda v: v.status == "up")
    others = [
        h
        for h in sim.inventory.hosts.values()
        if h.cluster_id == vm.cluster_id and h.status == "up" and h.id != vm.host_id
    ]
    driver.migrate(vm.id, others[0].id)
    assert vm.host_id == others[0].id
    before = vm.host_id
    driver.migrate(vm.id)
    assert vm.host_id != before and sim.inventory.hosts[vm.host_id].cluster_id == vm.cluster_id
    with pytest.raises(DriverError, match="same Host") as err:
        driver.migrate(vm.id, vm.host_id)
    assert not err.value.retryable


def test_fault_becomes_clear_driver_error(sim, driver):
    vm = _vm(sim, lambda v: v.status == "up")
    with pytest.raises(DriverError) as err:
        driver.start(vm.id)
    assert str(err.value) == f"start VM {vm.id}: Operation Failed: Cannot run VM. VM {vm.name} is running. (HTTP 409)"
    assert not err.value.retryable and "\n" not in str(err.value)
    with pytest.raises(DriverError, match="Entity not found") as err:
        driver.vm_state("00000000-0000-0000-0000-00000000dead")
    assert "HTTP 404" in str(err.value)
    with pytest.raises(DriverError, match="not a UUID"):
        driver.start("web01")


def test_server_fault_is_retryable(sim, driver):
    sim.options.fail_next = (503, "Service Unavailable", "The engine is starting")
    with pytest.raises(DriverError, match="Service Unavailable: The engine is starting") as err:
        driver.discover()
    assert err.value.retryable


def test_wrong_password(sim):
    with RhevDriver(sim.url, Credentials("admin@internal", "hunter2")) as drv, pytest.raises(DriverError) as err:
        drv.discover()
    message = str(err.value)
    assert "login refused for admin@internal" in message and "username or password is incorrect" in message
    assert "hunter2" not in message and not err.value.retryable


def test_unreachable_manager_is_retryable():
    with RhevDriver("http://127.0.0.1:9/ovirt-engine/api", CREDS) as drv, pytest.raises(DriverError) as err:
        drv.discover()
    assert "cannot reach the manager at http://127.0.0.1:9/ovirt-engine/api" in str(err.value)
    assert err.value.retryable and "secret" not in str(err.value)


def test_https_url_to_plain_http_is_tls_error(sim):
    url = sim.url.replace("http://", "https://")
    with RhevDriver(url, CREDS) as drv, pytest.raises(DriverError, match="TLS failure") as err:
        drv.discover()
    assert not err.value.retryable


def test_missing_ca_file(sim):
    url = sim.url.replace("http://", "https://")
    with RhevDriver(url, CREDS, ca_file="/nonexistent/ca.pem") as drv, pytest.raises(DriverError, match="CA file"):
        drv.discover()


def _self_signed(tmp_path, name):
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_sim(tmp_path):
    cert, key = _self_signed(tmp_path, "engine")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    simulator = start(demo_inventory(5, vms=5), ssl_context=ctx)
    yield simulator, cert
    simulator.stop()


def test_tls_with_the_right_ca_and_insecure(tls_sim):
    simulator, cert = tls_sim
    assert simulator.url.startswith("https://")
    with RhevDriver(simulator.url, CREDS, ca_file=str(cert)) as drv:
        assert len(drv.discover().vms) == 5
    with RhevDriver(simulator.url, CREDS, insecure=True) as drv:
        assert len(drv.discover().vms) == 5


def test_tls_with_a_bogus_ca_or_none(tls_sim, tmp_path):
    simulator, _ = tls_sim
    other, _ = _self_signed(tmp_path, "bogus")
    for ca in (str(other), None):
        with RhevDriver(simulator.url, CREDS, ca_file=ca) as drv, pytest.raises(DriverError) as err:
            drv.discover()
        assert "TLS failure" in str(err.value) and "check the CA certificate" in str(err.value)
        assert not err.value.retryable


def test_verify_reports_manager_and_ha(sim, driver):
    ha = _vm(sim, lambda v: v.ha_enabled)
    plain = _vm(sim, lambda v: not v.ha_enabled)
    result = driver.verify([ha.id, plain.id])
    assert result.product.startswith("oVirt Engine")
    assert result.ok is False
    assert result.vms[plain.id] == VMCheck(ok=True, reason="", ha_enabled=False, name=plain.name)
    assert result.vms[ha.id].ha_enabled is True and "high availability is enabled" in result.vms[ha.id].reason
    assert driver.verify([plain.id]).ok is True
    missing = driver.verify(["00000000-0000-0000-0000-00000000dead"])
    assert missing.ok is False
    assert "not known to the manager" in missing.vms["00000000-0000-0000-0000-00000000dead"].reason


def test_verify_wrong_password_says_so(sim):
    with RhevDriver(sim.url, Credentials("admin@internal", "nope")) as drv:
        result = drv.verify(["x"])
    assert result.ok is False and "login refused" in result.reason and result.retryable is False
    assert result.vms["x"] == VMCheck(ok=False, reason=result.reason)


def test_url_normalization():
    assert RhevDriver.normalize_url("rhevm.example.com") == "https://rhevm.example.com/ovirt-engine/api"
    assert RhevDriver.normalize_url("https://m/ovirt-engine/api/") == "https://m/ovirt-engine/api"
    with pytest.raises(DriverError, match="empty"):
        RhevDriver.normalize_url("")
    with pytest.raises(DriverError, match="invalid manager URL"):
        RhevDriver.normalize_url("ftp://x")
