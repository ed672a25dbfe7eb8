"""A captured Hyper-V server keeps its state on the "server": an operation run through one process's
driver is seen by every other process, uptimes of VMs started elsewhere advance, concurrent
operations lose nothing, and the environment check and "where does this VM run" answer from it."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from inventory.drivers.base import DriverError
from inventory.drivers.hyperv import HyperVDriver
from tests.simulators.conftest import REPO, run_python, start_python
from vom.simulators.hyperv_replay import forget_replay_hosts, transport_for_uri

DATA = REPO / "tests" / "data" / "hyperv"
SQL01 = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"  # Running, two checkpoints
FILESERVER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"  # Running, pass-through disk
PXE = "e4b0c7d2-1a9f-4b3e-8d6c-5f2a7e9b0c14"  # Off, no guest OS
LEGACY = "0a6e3f51-2c7d-4b8a-9e10-6d4c2b8f1a93"  # Saved
UNKNOWN = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def uri(tmp_path: Path, state_dir: Path) -> str:
    path = tmp_path / "hv16.json"
    shutil.copy(DATA / "ws2016_numbers_ps51.json", path)
    return f"captured://{path}"


def driver(uri: str) -> HyperVDriver:
    return HyperVDriver(uri, None, transport=transport_for_uri(uri))


def states(d: HyperVDriver) -> dict[str, str]:
    return {vm.uuid: vm.state for vm in d.discover().vms}


def in_another_process(uri: str, body: str) -> object:
    return run_python(
        f"""
        import json
        from inventory.drivers.hyperv import HyperVDriver
        from vom.simulators.hyperv_replay import transport_for_uri
        d = HyperVDriver({uri!r}, None, transport=transport_for_uri({uri!r}))
        """
        + body
    )


def test_an_operation_in_another_process_is_seen_by_discovery_here(uri):
    d = driver(uri)
    assert states(d)[PXE] == "Off"  # this process has read the server before
    in_another_process(uri, f"d.start({PXE!r}); d.power_off({SQL01!r}); d.snapshot_create({LEGACY!r}, 'pre')")
    seen = {vm.uuid: vm for vm in d.discover().vms}
    assert (seen[PXE].state, seen[SQL01].state) == ("Running", "Off")
    assert "pre" in [s.name for s in seen[LEGACY].snapshots]
    assert d.vm_state(PXE).state == "Running"
    # The next operation here starts from that state, and the other way round.
    d.start(SQL01)
    assert in_another_process(uri, "print(json.dumps({vm.uuid: vm.state for vm in d.discover().vms}))") == {
        **states(d),
        SQL01: "Running",
    }


def test_the_uptime_of_a_vm_started_in_another_process_advances(uri):
    d = driver(uri)
    d.discover()
    in_another_process(uri, f"d.start({PXE!r})")
    first = next(vm for vm in d.discover().vms if vm.uuid == PXE).extra["uptime_seconds"]
    assert 0 <= first < 30
    time.sleep(1.1)
    later = next(vm for vm in driver(uri).discover().vms if vm.uuid == PXE).extra["uptime_seconds"]
    assert later >= first + 1


def test_what_a_vm_remembers_while_off_survives_the_process(uri):
    in_another_process(uri, f"d.power_off({SQL01!r})")
    in_another_process(uri, f"d.start({SQL01!r})")  # a third process brings the guest back
    sql = next(vm for vm in driver(uri).discover().vms if vm.uuid == SQL01)
    assert sql.state == "Running" and "10.20.1.31" in sql.nics[0].extra["ip_addresses"]


CONCURRENT_CHECKPOINTS = """
    import os, time
    from inventory.drivers.hyperv import HyperVDriver
    from vom.simulators.hyperv_replay import transport_for_uri
    d = HyperVDriver({uri!r}, None, transport=transport_for_uri({uri!r}))
    d.discover()
    while not os.path.exists({go!r}):
        time.sleep(0.005)
    for i in range(20):
        d.snapshot_create({vm!r}, f"{tag}-{{i}}")
    print("null")
"""


def test_two_processes_operating_on_one_server_at_once_lose_nothing(uri, tmp_path):
    go = tmp_path / "go"
    workers = [
        start_python(CONCURRENT_CHECKPOINTS.format(uri=uri, go=str(go), vm=vm, tag=tag))
        for vm, tag in ((SQL01, "a"), (LEGACY, "b"))
    ]
    time.sleep(1.0)
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    vms = {vm.uuid: vm for vm in driver(uri).discover().vms}
    assert {f"a-{i}" for i in range(20)} <= {s.name for s in vms[SQL01].snapshots}
    assert {f"b-{i}" for i in range(20)} == {s.name for s in vms[LEGACY].snapshots}


def test_verify_and_vm_host_on_a_captured_server(uri):
    d = driver(uri)
    check = d.verify([SQL01, PXE.upper(), UNKNOWN])
    assert not check.ok and check.reason == "1 VM(s) are not known to the host"
    assert check.product == "Hyper-V on Microsoft Windows Server 2016 Datacenter 10.0.14393"
    assert (check.vms[SQL01].ok, check.vms[SQL01].name) == (True, "sql01")
    assert check.vms[PXE.upper()].ok and not check.vms[UNKNOWN].ok
    host_uid = d.discover().hosts[0].uid
    assert d.vm_host(SQL01) == host_uid
    assert d.vm_host(PXE) == ""  # off
    in_another_process(uri, f"d.start({PXE!r})")
    assert d.vm_host(PXE) == host_uid
    with pytest.raises(DriverError, match="not found"):
        d.vm_host(UNKNOWN)
    assert driver(uri).verify([SQL01, PXE]).ok


def test_the_demo_servers_answer_the_check(state_dir):
    for path in sorted((REPO / "demo" / "hyperv").glob("*.json")):
        d = driver(f"captured://{path}")
        ids = [vm.uuid for vm in d.discover().vms]
        check = d.verify(ids)
        assert check.ok, check.reason
        assert check.product.startswith("Hyper-V on ")


def test_a_rewritten_capture_wins_and_forgetting_starts_from_the_capture(uri, state_dir):
    path = Path(uri.removeprefix("captured://"))
    d = driver(uri)
    d.start(PXE)
    assert len(list(state_dir.glob("hyperv-*.json"))) == 1
    forget_replay_hosts(str(path))
    assert not list(state_dir.glob("hyperv-*.json"))
    assert states(driver(uri))[PXE] == "Off"

    driver(uri).start(PXE)
    shutil.copy(DATA / "ws2016_numbers_ps51.json", path)  # a test rewrites its capture
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert states(driver(uri))[PXE] == "Off"
    assert in_another_process(uri, f"print(json.dumps(d.vm_state({PXE!r}).state))") == "Off"


def test_the_demo_captures_are_never_written(state_dir):
    demo = sorted((REPO / "demo" / "hyperv").iterdir())
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in demo}
    path = REPO / "demo" / "hyperv" / "hv01.json"
    forget_replay_hosts(str(path))
    try:
        d = driver(f"captured://{path}")
        vm = next(vm for vm in d.discover().vms if vm.state == "Running")
        d.power_off(vm.uuid)
        assert driver(f"captured://{path}").vm_state(vm.uuid).state == "Off"
        assert len(list(state_dir.glob("hyperv-*.json"))) == 1
    finally:
        forget_replay_hosts(str(path))
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((REPO / "demo" / "hyperv").iterdir())} == (
        before
    )


def test_an_operation_that_cannot_be_saved_fails(uri, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("VOM_SIMULATOR_STATE_DIR", str(blocked / "state"))
    d = driver(uri)
    with pytest.raises(DriverError, match="cannot lock the captured host"):
        d.start(PXE)
    assert states(d)[PXE] == "Off"
