"""Captured Hyper-V hosts: the replay transport answers discovery from a captured output and plays
operations on it the way Hyper-V would, with state kept per file for the life of the process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.drivers import driver_for
from inventory.drivers.base import Credentials, DriverError
from inventory.drivers.hyperv import HyperVDriver, parse_discovery
from vom.simulators.hyperv_replay import ReplayTransport, forget_replay_hosts, transport_for_uri

DATA = Path(__file__).resolve().parents[1] / "data" / "hyperv"
DEMO = Path(__file__).resolve().parents[2] / "demo" / "hyperv"
SQL01 = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"  # Running, two checkpoints, differencing chain
FILESERVER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"  # Running, pass-through disk
PXE = "e4b0c7d2-1a9f-4b3e-8d6c-5f2a7e9b0c14"  # Off, no guest OS
LEGACY = "0a6e3f51-2c7d-4b8a-9e10-6d4c2b8f1a93"  # Saved
WEB02 = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"  # (2022 capture) Paused


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the 2016 capture (Windows PowerShell 5.1, enums as numbers)."""
    path = tmp_path / "hv16.json"
    shutil.copy(DATA / "ws2016_numbers_ps51.json", path)
    yield path
    forget_replay_hosts()


def driver(path: Path) -> HyperVDriver:
    uri = f"captured://{path}"
    return HyperVDriver(uri, None, transport=transport_for_uri(uri))


def vm(driver: HyperVDriver, vm_id: str):
    return next(v for v in driver.discover().vms if v.uuid == vm_id)


def test_transport_for_uri():
    assert transport_for_uri("hv01.corp.local") is None
    with pytest.raises(DriverError, match="does not exist"):
        transport_for_uri("captured:///nonexistent/dir/hv.json")
    with pytest.raises(DriverError, match="absolute"):
        transport_for_uri("captured://relative.json")
    assert isinstance(transport_for_uri(f"captured://{DATA / 'ws2019_single_vm_ps51.json'}"), ReplayTransport)


@pytest.mark.parametrize("name", ["ws2016_numbers_ps51.json", "ws2022_names_pwsh7.json", "ws2019_single_vm_ps51.json"])
def test_discovery_through_the_driver_parses_like_the_capture(name):
    path = DATA / name
    expected = parse_discovery(path.read_text())
    got = driver(path).discover()
    assert [(v.uuid, v.name, v.state) for v in got.vms] == [(v.uuid, v.name, v.state) for v in expected.vms]
    assert got.hosts[0].uid == expected.hosts[0].uid
    assert got.skipped_vm_uuids == expected.skipped_vm_uuids


def test_error_document_is_a_discovery_error():
    with pytest.raises(DriverError, match="PowerShell error: The term 'Get-VMHost' is not recognized"):
        driver(DATA / "error_no_hyperv_module.json").discover()


@pytest.mark.django_db
def test_the_provider_driver_for_a_captured_host(capture):
    """The provider services hand a captured host's replay to the driver (drivers import no simulator)."""
    from inventory.models import Provider
    from inventory.services.providers import provider_driver

    provider = Provider(name="hv-captured", kind=Provider.Kind.HYPERV, uri=f"captured://{capture}")
    d = provider_driver(provider)
    assert {v.name for v in d.discover().vms} >= {"sql01", "pxe-blank"}
    with pytest.raises(DriverError, match="expected a host name or address"):
        driver_for("hyperv", f"captured://{capture}", Credentials())  # without the services: no replay


def test_power_operations_change_the_next_discovery(capture):
    d = driver(capture)
    d.power_off(SQL01)
    sql = vm(d, SQL01)
    assert sql.state == "Off" and sql.extra["memory_assigned_bytes"] == 0
    assert all(not n.extra["ip_addresses"] for n in sql.nics)
    d.start(SQL01)
    sql = vm(d, SQL01)
    assert sql.state == "Running" and sql.extra["heartbeat"] == "OkApplicationsHealthy"
    assert "10.20.1.31" in sql.nics[0].extra["ip_addresses"]  # the guest got its addresses back
    d.suspend(SQL01)
    assert vm(d, SQL01).state == "Saved"
    assert d.vm_state(SQL01).state == "Saved"
    d.resume(SQL01)  # a saved VM is started
    assert vm(d, SQL01).state == "Running"
    d.shutdown(SQL01)  # graceful: the guest has the shutdown integration service
    assert vm(d, SQL01).state == "Off"
    d.start(LEGACY)
    assert vm(d, LEGACY).state == "Running"
    d.reboot(LEGACY)
    assert vm(d, LEGACY).state == "Running"


def test_pause_and_resume(tmp_path):
    path = tmp_path / "hv22.json"
    shutil.copy(DATA / "ws2022_names_pwsh7.json", path)
    d = driver(path)
    assert d.vm_state(WEB02).state == "Paused"
    d.resume(WEB02)  # Resume-VM
    assert vm(d, WEB02).state == "Running"
    forget_replay_hosts()


def test_checkpoints_create_restore_delete(capture):
    d = driver(capture)
    d.snapshot_create(SQL01, "t1")
    sql = vm(d, SQL01)
    assert [s.name for s in sql.snapshots] == ["before-SP1", "before-CU7", "t1"]
    assert [s.name for s in sql.snapshots if s.current] == ["t1"]
    os_disk = sql.disks[0]
    assert os_disk.source.endswith(".avhdx") and os_disk.extra["vhd_type"] == "Differencing"
    assert os_disk.backing_chain[0].endswith("6C2E1B9A-5A1D-4C8B-9F43-7E0D2A6B1C55.avhdx")  # the old current disk
    assert len(os_disk.backing_chain) == 3
    t1 = next(c for c in sql.extra["checkpoints"] if c["name"] == "t1")
    assert t1["parent"] == "before-CU7" and t1["disks"][0] == os_disk.backing_chain[0]

    d.snapshot_revert(SQL01, "before-SP1")
    sql = vm(d, SQL01)
    assert sql.state == "Off"  # a captured checkpoint: no memory state to return to
    assert [s.name for s in sql.snapshots if s.current] == ["before-SP1"]
    assert sql.disks[0].backing_chain == [r"C:\ClusterStorage\Volume1\Hyper-V\sql01\Virtual Hard Disks\sql01_OS.vhdx"]

    d.snapshot_delete(SQL01, "before-CU7")
    sql = vm(d, SQL01)
    assert [(s.name, s.parent) for s in sql.snapshots] == [("before-SP1", ""), ("t1", "before-SP1")]


def test_restoring_a_checkpoint_of_a_running_vm_leaves_it_saved(capture):
    d = driver(capture)
    d.snapshot_create(SQL01, "running")
    d.snapshot_revert(SQL01, "running")
    assert vm(d, SQL01).state == "Saved"


def test_deleting_the_latest_checkpoint_merges_its_disk(capture):
    d = driver(capture)
    before = vm(d, SQL01).disks[0]
    d.snapshot_create(SQL01, "temp")
    d.snapshot_delete(SQL01, "temp")
    after = vm(d, SQL01)
    assert after.disks[0].source == before.source and after.disks[0].backing_chain == before.backing_chain
    assert [s.name for s in after.snapshots if s.current] == ["before-CU7"]


def test_refusals_carry_the_cmdlet_error(capture):
    d = driver(capture)
    with pytest.raises(DriverError, match=r"Save-VM failed on HV16-N1: 'pxe-blank' failed to change state"):
        d.suspend(PXE)  # an Off VM cannot be saved
    with pytest.raises(DriverError, match="cannot resume"):
        d.resume(SQL01)  # running: the driver refuses before any call
    d.start(PXE)  # no guest OS: it runs, but nothing answers the shutdown integration service
    assert vm(d, PXE).extra["heartbeat"] == "NoContact"
    with pytest.raises(DriverError, match="shutdown integration service"):
        d.shutdown(PXE)
    d.power_off(PXE)  # turning it off always works
    assert vm(d, PXE).state == "Off"
    with pytest.raises(DriverError, match=r"Restart-VM failed.*failed to change state"):
        d.reboot(PXE)
    with pytest.raises(DriverError, match="pass-through"):
        d.snapshot_create(FILESERVER, "x")
    with pytest.raises(DriverError, match="Unable to find a snapshot matching the given criteria"):
        d.snapshot_delete(SQL01, "no-such-checkpoint")
    with pytest.raises(DriverError, match='unable to find a virtual machine with id "00000000-'):
        d.start("00000000-0000-4000-8000-000000000000")
    with pytest.raises(DriverError, match="unable to find a virtual machine"):
        d.vm_state("00000000-0000-4000-8000-000000000000")
    assert vm(d, SQL01).state == "Running"  # nothing refused changed anything


def test_what_hyperv_only_warns_about_changes_nothing(capture):
    d = driver(capture)
    d.start(SQL01)  # Start-VM on a running VM: a warning, not an error
    assert vm(d, SQL01).state == "Running"
    assert "already in the specified state" in d.transport.warnings[-1]
    d.power_off(PXE)
    assert vm(d, PXE).state == "Off"


def test_hostile_checkpoint_names_match_literally(capture):
    d = driver(capture)
    d.snapshot_create(SQL01, "a*[b]?")
    d.snapshot_create(SQL01, "aXbY")
    d.snapshot_delete(SQL01, "a*[b]?")  # the driver escapes the wildcards
    assert [s.name for s in vm(d, SQL01).snapshots][-1] == "aXbY"


def test_a_second_driver_in_the_process_sees_the_same_state(capture):
    driver(capture).power_off(SQL01)
    other = driver(capture)
    assert vm(other, SQL01).state == "Off"
    other.close()  # closing a driver does not lose the host's state
    assert vm(driver(capture), SQL01).state == "Off"


def test_a_rewritten_file_is_reloaded(capture):
    d = driver(capture)
    d.power_off(SQL01)
    text = capture.read_text().replace('"sql01"', '"sql01-renamed"')
    capture.write_text(text)
    os.utime(capture, ns=(1, 1))  # even within one clock tick: size and time differ
    sql = vm(d, SQL01)
    assert sql.name == "sql01-renamed" and sql.state == "Running"


def test_demo_files_parse_and_replay():
    for name in ("hv01.json", "hv02.json"):
        snapshot = parse_discovery((DEMO / name).read_text())
        assert 10 <= len(snapshot.vms) <= 15
        assert {v.extra["generation"] for v in snapshot.vms} == {1, 2}
        kinds = {d.extra.get("kind") for v in snapshot.vms for d in v.disks}
        assert {"vhd", "pass-through"} <= kinds
        assert any(v.extra["clustered"] for v in snapshot.vms)
        assert any(p.type == "csv" for p in snapshot.pools)
        assert any(len(v.nics) >= 3 for v in snapshot.vms) or any(len(v.nics) >= 2 for v in snapshot.vms)
    hv01 = parse_discovery((DEMO / "hv01.json").read_text())
    assert any(v.snapshots for v in hv01.vms)
    assert any(
        d.extra.get("vhd_type") == "Differencing" and len(d.backing_chain) >= 2 for v in hv01.vms for d in v.disks
    )
    assert "2019" in hv01.hosts[0].extra["os"]
    assert "2022" in parse_discovery((DEMO / "hv02.json").read_text()).hosts[0].extra["os"]
