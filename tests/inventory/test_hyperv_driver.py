"""The Hyper-V driver fed captured PowerShell output at the transport boundary (the one fake)."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from inventory.drivers.base import Credentials, DriverError
from inventory.drivers.hyperv import (
    DISCOVERY_SCRIPT,
    VM_STATE_SCRIPT,
    HyperVDriver,
    PsrpTransport,
    normalized_state,
    parse_discovery,
    vm_state_name,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "hyperv"
VM_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
EVIL = "'; Remove-Item C:\\ -Recurse"


class FakeTransport:
    """Answers scripts with canned text and records every call."""

    def __init__(self, output: str = "", *, error: DriverError | None = None) -> None:
        self.output = output
        self.error = error
        self.scripts: list[tuple[str, dict[str, str]]] = []
        self.invoked: list[tuple[str, dict[str, object], list[tuple[str, dict[str, object]]]]] = []
        self.closed = False

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        self.scripts.append((script, dict(parameters)))
        if self.error:
            raise self.error
        return self.output

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: Any = ()) -> None:
        self.invoked.append((cmdlet, dict(parameters), [(n, dict(p)) for n, p in source]))
        if self.error:
            raise self.error

    def close(self) -> None:
        self.closed = True


def capture(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def discover(name: str) -> Any:
    transport = FakeTransport(capture(name))
    snapshot = HyperVDriver("hv.example.com", None, transport=transport).discover()
    return snapshot, transport


def by_name(snapshot: Any) -> dict[str, Any]:
    return {vm.name: vm for vm in snapshot.vms}


# --- discovery: Windows Server 2016, enums as numbers, /Date()/ dates ----------------------------


def test_discovery_is_one_fixed_script_without_parameters() -> None:
    snapshot, transport = discover("ws2016_numbers_ps51.json")
    assert transport.scripts == [(DISCOVERY_SCRIPT, {})]
    assert len(snapshot.vms) == 5


def test_2016_host_facts() -> None:
    snapshot, _ = discover("ws2016_numbers_ps51.json")
    (host,) = snapshot.hosts
    assert host.uid == "hv16-n1.corp.example.com"
    assert host.hostname == "HV16-N1.corp.example.com"
    assert host.hypervisor_type == "Hyper-V"
    assert host.hypervisor_version == "10.0.14393"
    assert host.cpu_count == 32
    assert host.memory_bytes == 274877906944
    assert host.extra["virtual_hard_disk_path"] == "C:\\ClusterStorage\\Volume1\\Hyper-V\\Virtual Hard Disks"
    assert host.extra["os"] == "Microsoft Windows Server 2016 Datacenter"
    assert all(vm.host_uid == host.uid for vm in snapshot.vms)


def test_2016_numeric_states_become_hyperv_names() -> None:
    vms = by_name(discover("ws2016_numbers_ps51.json")[0])
    assert vms["sql01"].state == "Running"
    assert vms["pxe-blank"].state == "Off"
    assert vms["legacy-app"].state == "Saved"
    # An enum number this driver does not know: "Other", with the raw number kept.
    assert vms["replica-test"].state == "Other"
    assert "32800" in vms["replica-test"].state_reason


def test_2016_clustered_vm_extras_and_memory() -> None:
    sql = by_name(discover("ws2016_numbers_ps51.json")[0])["sql01"]
    assert sql.uuid == VM_ID
    assert sql.vcpus == 4
    assert sql.memory_bytes == 17179869184  # assigned
    assert sql.max_memory_bytes == 34359738368  # dynamic memory maximum
    assert sql.description == "Production SQL Server 2016 - owner DBA team"
    assert sql.autostart is True  # StartIfRunning (3)
    assert sql.extra["generation"] == 2
    assert sql.extra["version"] == "8.0"
    assert sql.extra["clustered"] is True
    assert sql.extra["heartbeat"] == "OkApplicationsHealthy"
    assert sql.extra["uptime_seconds"] == 1_314_062
    assert sql.extra["dynamic_memory"] is True
    assert sql.extra["memory_startup_bytes"] == 8589934592
    assert sql.extra["normalized_state"] == "running"


def test_2016_differencing_chain_on_csv() -> None:
    sql = by_name(discover("ws2016_numbers_ps51.json")[0])["sql01"]
    os_disk, data_disk = sql.disks
    assert os_disk.target == "scsi0:0"
    assert os_disk.bus == "scsi"
    assert os_disk.device == "disk"
    assert os_disk.source_type == "file"
    assert os_disk.source.endswith("sql01_OS_6C2E1B9A-5A1D-4C8B-9F43-7E0D2A6B1C55.avhdx")
    assert os_disk.driver_format == "vhdx"
    assert [p.rsplit("\\", 1)[-1] for p in os_disk.backing_chain] == [
        "sql01_OS_0B7A3E9C-1F2D-4A6B-8C5E-3D9F1A2B4C6D.avhdx",
        "sql01_OS.vhdx",
    ]
    assert os_disk.extra["vhd_type"] == "Differencing"
    assert os_disk.extra["vhd_format"] == "VHDX"
    assert os_disk.extra["size_bytes"] == 136365211648
    assert os_disk.extra["file_size_bytes"] == 1375731712
    assert os_disk.extra["host_volume"] == "C:\\ClusterStorage\\Volume1\\"  # the CSV, not C:\
    assert os_disk.extra["parent_path"] == os_disk.backing_chain[0]
    assert data_disk.target == "scsi0:1"
    assert data_disk.extra["vhd_type"] == "Fixed"
    assert data_disk.backing_chain == []


def test_2016_checkpoints() -> None:
    sql = by_name(discover("ws2016_numbers_ps51.json")[0])["sql01"]
    first, second = sql.snapshots
    assert first.name == "before-SP1"
    assert first.created == dt.datetime(2023, 11, 14, 9, 30, tzinfo=dt.UTC)
    assert first.parent == ""
    assert first.current is False
    assert second.name == "before-CU7"
    assert second.parent == "before-SP1"
    assert second.description == "patch night"
    assert second.current is True  # the VM runs from it (ParentSnapshotName)
    checkpoints = {c["name"]: c for c in sql.extra["checkpoints"]}
    assert checkpoints["before-CU7"]["type"] == "Standard"
    assert checkpoints["before-CU7"]["id"] == "c4d8e2a1-3b6f-4c9d-8e1a-7f2b5d0c9e36"
    # One differencing disk written as a bare string instead of an array.
    assert checkpoints["before-CU7"]["disks"] == [
        "C:\\ClusterStorage\\Volume1\\Hyper-V\\sql01\\Virtual Hard Disks\\"
        "sql01_OS_0B7A3E9C-1F2D-4A6B-8C5E-3D9F1A2B4C6D.avhdx"
    ]
    assert len(checkpoints["before-SP1"]["disks"]) == 2
    json.dumps(sql.extra)  # JSON-ready


def test_2016_nics_including_51_value_count_array() -> None:
    sql = by_name(discover("ws2016_numbers_ps51.json")[0])["sql01"]
    prod, backup = sql.nics
    assert prod.mac == "00:15:5d:0a:1b:01"
    assert prod.source == "vSwitch-Prod"
    assert prod.extra["ip_addresses"] == ["10.20.1.31", "fe80::8d4:1c2e:9a3b:7f10"]
    assert backup.mac == "00:15:5d:0a:1b:02"
    assert backup.source == "vSwitch-Backup"
    assert backup.extra["ip_addresses"] == ["10.99.1.31"]
    assert backup.extra["dynamic_mac"] is False


def test_2016_pass_through_ide_vhd_and_dvd() -> None:
    fs = by_name(discover("ws2016_numbers_ps51.json")[0])["fileserver"]
    vhd, passthrough, dvd = fs.disks
    assert (vhd.target, vhd.bus, vhd.driver_format) == ("ide0:0", "ide", "vhd")
    assert vhd.extra["vhd_type"] == "Dynamic"
    assert vhd.extra["host_volume"] == "D:\\"
    assert passthrough.source_type == "block"
    assert passthrough.source == "PhysicalDisk3"
    assert passthrough.target == "scsi0:3"
    assert passthrough.extra["disk_number"] == 3
    assert passthrough.extra["kind"] == "pass-through"
    assert passthrough.extra["description"] == "Disk 3 2.00 TB Bus 0 Lun 3 Target 0"
    assert passthrough.backing_chain == []
    assert (dvd.device, dvd.target, dvd.read_only, dvd.driver_format) == ("dvd", "ide1:0", True, "iso")
    assert fs.extra["uptime_seconds"] == 41 * 86400 + 3725
    assert fs.extra["heartbeat"] == "OkApplicationsUnknown"
    assert fs.extra["generation"] == 1


def test_2016_vm_without_guest_os() -> None:
    blank = by_name(discover("ws2016_numbers_ps51.json")[0])["pxe-blank"]
    assert blank.state == "Off"
    assert blank.extra["heartbeat"] == ""
    assert blank.extra["uptime_seconds"] == 0
    assert blank.memory_bytes == 1073741824  # nothing assigned while off: the startup memory
    assert blank.description == ""
    (nic,) = blank.nics
    assert nic.extra["ip_addresses"] == []
    assert blank.autostart is False  # Nothing (2)


def test_2016_host_volumes_become_pools() -> None:
    snapshot, _ = discover("ws2016_numbers_ps51.json")
    pools = {p.name: p for p in snapshot.pools}
    assert set(pools) == {"C:\\", "C:\\ClusterStorage\\Volume1\\", "D:\\"}
    csv = pools["C:\\ClusterStorage\\Volume1\\"]
    assert csv.type == "csv"
    assert csv.capacity_bytes == 2199023255552
    assert csv.available_bytes == 912680550400
    assert csv.allocation_bytes == 2199023255552 - 912680550400
    assert pools["D:\\"].extra["file_system"] == "ReFS"


# --- discovery: Windows Server 2022, names, ISO dates, missing fields ------------------------------


def test_2022_named_states_and_skipped_vm() -> None:
    snapshot, _ = discover("ws2022_names_pwsh7.json")
    vms = by_name(snapshot)
    assert {n: v.state for n, v in vms.items()} == {
        "web01": "Running",
        "web02": "Paused",
        "build-agent": "Starting",
        "db-lost-storage": "RunningCritical",
        "dev-sandbox": "Saving",
    }
    assert snapshot.skipped_vm_uuids == ["f6a7b8c9-d0e1-4f2a-9b3c-5d6e7f8091a2"]
    assert vms["db-lost-storage"].extra["critical"] is True
    assert vms["db-lost-storage"].state_reason == "Cannot connect to virtual machine configuration storage"
    assert vms["db-lost-storage"].extra["heartbeat"] == "LostCommunication"
    assert vms["dev-sandbox"].state_reason == "Saving (41 %)"


def test_2022_iso_dates_timespan_strings_and_uppercase_guid() -> None:
    web01 = by_name(discover("ws2022_names_pwsh7.json")[0])["web01"]
    assert web01.uuid == "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
    (golden,) = web01.snapshots
    assert golden.created == dt.datetime(2024, 3, 5, 9, 15, 22, 123456, tzinfo=dt.UTC)
    assert golden.current is True
    assert web01.extra["uptime_seconds"] == 3 * 86400 + 4 * 3600 + 5 * 60 + 6
    assert web01.extra["heartbeat"] == "OkApplicationsUnknown"
    (disk, dvd) = web01.disks
    assert disk.extra["vhd_type"] == "Differencing"
    assert disk.backing_chain == ["C:\\ClusterStorage\\CSV02\\VMs\\web01\\web01.vhdx"]
    assert disk.extra["host_volume"] == "C:\\ClusterStorage\\CSV02\\"
    assert (dvd.device, dvd.source, dvd.target) == ("dvd", "", "scsi0:1")
    assert [n.source for n in web01.nics] == ["SET-Team", "SET-Team", ""]
    assert web01.nics[2].type == ""


def test_2022_missing_optional_fields_and_unreadable_vhd() -> None:
    web02 = by_name(discover("ws2022_names_pwsh7.json")[0])["web02"]
    assert web02.extra["heartbeat"] == ""
    assert web02.extra["notes"] == ""
    assert web02.snapshots == []
    assert web02.extra["uptime_seconds"] == 42 * 60
    (disk,) = web02.disks
    assert disk.extra["vhd_error"] == "The system cannot find the path specified."
    assert disk.driver_format == "vhdx"  # from the file name when Get-VHD could not say
    assert disk.extra["host_volume"] == "E:\\"  # no volume listed: the drive root


# --- discovery: one VM, objects instead of arrays -------------------------------------------------


def test_single_vm_host_objects_instead_of_arrays() -> None:
    snapshot, _ = discover("ws2019_single_vm_ps51.json")
    (vm,) = snapshot.vms
    assert vm.name == "router"
    assert vm.state == "Running"
    (disk,) = vm.disks
    assert (disk.target, disk.source, disk.driver_format) == ("scsi0:0", "D:\\Hyper-V\\router\\router.vhdx", "vhdx")
    assert disk.backing_chain == []
    (nic,) = vm.nics
    assert nic.mac == "00:15:5d:01:02:03"
    assert nic.extra["ip_addresses"] == ["203.0.113.5"]
    assert vm.snapshots == []
    assert vm.description == "edge router\r\ndo not power off"
    (pool,) = snapshot.pools
    assert pool.name == "D:\\"
    # A host outside a domain: the FQDN property is the bare name.
    assert snapshot.hosts[0].uid == "hv19-edge"


# --- state names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (2, "Running"),
        ("2", "Running"),
        (3, "Off"),
        (6, "Saved"),
        (9, "Paused"),
        (4, "Stopping"),
        (10, "Starting"),
        (32773, "Saving"),
        (32776, "Pausing"),
        (32777, "Resuming"),
        ("running", "Running"),
        ("SAVED", "Saved"),
        ("fastsaved", "FastSaved"),
        ("runningcritical", "RunningCritical"),
        ("Hibernated", "Hibernated"),  # a name from a newer Windows: kept as it came
    ],
)
def test_vm_state_names(raw: object, name: str) -> None:
    assert vm_state_name(raw)[0] == name


@pytest.mark.parametrize(
    ("state", "normalized"),
    [
        ("Running", "running"),
        ("Off", "stopped"),
        ("Saved", "suspended"),
        ("Paused", "paused"),
        ("Starting", "starting"),
        ("Stopping", "stopping"),
        ("PausedCritical", "paused"),
        ("Other", "unknown"),
        ("Hibernated", "unknown"),
    ],
)
def test_normalized_state(state: str, normalized: str) -> None:
    assert normalized_state(state) == normalized


# --- bad output ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"Host": {"ComputerName": "HV1"}, "VMs": [',  # cut off mid-way
        "WARNING: something\r\n{}",  # text before the JSON
        "",
    ],
)
def test_malformed_json_is_a_clear_driver_error(text: str) -> None:
    driver = HyperVDriver("hv1", None, transport=FakeTransport(text))
    with pytest.raises(DriverError) as exc:
        driver.discover()
    assert exc.value.retryable is False
    assert "hv1" in str(exc.value)
    assert "JSON" in str(exc.value) or "printed nothing" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_powershell_error_document_is_a_driver_error() -> None:
    driver = HyperVDriver("hv1", None, transport=FakeTransport(capture("error_no_hyperv_module.json")))
    with pytest.raises(DriverError) as exc:
        driver.discover()
    assert "PowerShell error" in str(exc.value)
    assert "'Get-VMHost' is not recognized" in str(exc.value)
    assert exc.value.retryable is False


def test_transport_error_passes_through_unchanged() -> None:
    failure = DriverError("cannot connect to hv1", retryable=True)
    driver = HyperVDriver("hv1", None, transport=FakeTransport(error=failure))
    with pytest.raises(DriverError) as exc:
        driver.discover()
    assert exc.value is failure


def test_output_without_host_or_with_a_bad_vm_id() -> None:
    with pytest.raises(DriverError, match="no Host object"):
        parse_discovery('{"VMs": []}')
    with pytest.raises(DriverError, match="no valid Id"):
        parse_discovery('{"Host": {"ComputerName": "HV1"}, "VMs": [{"Name": "x", "Id": "nope", "State": 2}]}')


# --- operations ----------------------------------------------------------------------------------


def driver_and_transport(output: str = "") -> tuple[HyperVDriver, FakeTransport]:
    transport = FakeTransport(output)
    return HyperVDriver("hv1", Credentials("admin", "s3cret"), transport=transport), transport


GET_VM = ("Get-VM", {"Id": VM_ID})


@pytest.mark.parametrize(
    ("method", "cmdlet", "parameters"),
    [
        ("start", "Start-VM", {}),
        ("shutdown", "Stop-VM", {"Force": True}),
        ("power_off", "Stop-VM", {"TurnOff": True, "Force": True}),
        ("reboot", "Restart-VM", {"Force": True}),
        ("suspend", "Save-VM", {}),
    ],
)
def test_power_operations_bind_the_vm_by_id(method: str, cmdlet: str, parameters: dict[str, object]) -> None:
    driver, transport = driver_and_transport()
    getattr(driver, method)(VM_ID.upper())
    assert transport.invoked == [(cmdlet, parameters, [GET_VM])]
    assert transport.scripts == []


@pytest.mark.parametrize(("state", "cmdlet"), [("Saved", "Start-VM"), ("Paused", "Resume-VM")])
def test_resume_picks_the_cmdlet_from_the_state(state: str, cmdlet: str) -> None:
    driver, transport = driver_and_transport(json.dumps({"Id": VM_ID, "Name": "x", "State": state}))
    driver.resume(VM_ID)
    assert transport.scripts == [(VM_STATE_SCRIPT, {"VmId": VM_ID})]
    assert transport.invoked == [(cmdlet, {}, [GET_VM])]


def test_resume_refuses_a_running_vm() -> None:
    driver, transport = driver_and_transport(json.dumps({"Id": VM_ID, "State": 2}))
    with pytest.raises(DriverError, match="it is Running, not saved or paused"):
        driver.resume(VM_ID)
    assert transport.invoked == []


def test_vm_state_reading() -> None:
    driver, transport = driver_and_transport('{"Id":"3F2504E0-4F89-41D3-9A0C-0305E82C3301","State":"Off"}')
    reading = driver.vm_state(VM_ID.upper())
    assert (reading.uuid, reading.state) == (VM_ID, "Off")
    assert transport.scripts == [(VM_STATE_SCRIPT, {"VmId": VM_ID})]
    assert "$VmId" in VM_STATE_SCRIPT and VM_ID not in VM_STATE_SCRIPT


def test_vm_state_powershell_error() -> None:
    error = {"Error": "Hyper-V was unable to find a virtual machine with id '3f2504e0-…'."}
    driver, _ = driver_and_transport(json.dumps(error))
    with pytest.raises(DriverError, match="unable to find a virtual machine"):
        driver.vm_state(VM_ID)


def test_snapshot_operations() -> None:
    driver, transport = driver_and_transport()
    driver.snapshot_create(VM_ID, "before patch [1]")
    driver.snapshot_revert(VM_ID, "before patch [1]")
    driver.snapshot_delete(VM_ID, "nightly*")
    assert transport.invoked == [
        ("Checkpoint-VM", {"SnapshotName": "before patch [1]"}, [GET_VM]),
        # Get-VMSnapshot -Name takes wildcards: they are escaped so only that checkpoint matches.
        ("Restore-VMSnapshot", {"Confirm": False}, [GET_VM, ("Get-VMSnapshot", {"Name": "before patch `[1`]"})]),
        ("Remove-VMSnapshot", {"Confirm": False}, [GET_VM, ("Get-VMSnapshot", {"Name": "nightly`*"})]),
    ]


def test_hostile_names_are_bound_never_scripted() -> None:
    driver, transport = driver_and_transport()
    driver.snapshot_create(VM_ID, EVIL)
    driver.snapshot_delete(VM_ID, EVIL)
    # The name reaches PowerShell only as a bound parameter value …
    assert transport.invoked[0] == ("Checkpoint-VM", {"SnapshotName": EVIL}, [GET_VM])
    assert transport.invoked[1][2][1] == ("Get-VMSnapshot", {"Name": EVIL})
    # … and no script text ever holds it.
    for script in (DISCOVERY_SCRIPT, VM_STATE_SCRIPT):
        assert "Remove-Item" not in script
    assert transport.scripts == []


def test_hostile_vm_name_in_discovery_output_is_just_data() -> None:
    document = json.loads(capture("ws2019_single_vm_ps51.json"))
    document["VMs"]["Name"] = EVIL
    snapshot = parse_discovery(json.dumps(document))
    assert snapshot.vms[0].name == EVIL


@pytest.mark.parametrize("bad", ["", "sql01", "3f2504e0-4f89-41d3-9a0c", f"{VM_ID}'; Stop-Computer", "{" + VM_ID + "}"])
def test_invalid_vm_id_is_refused_before_any_call(bad: str) -> None:
    driver, transport = driver_and_transport()
    for call in (driver.start, driver.power_off, driver.vm_state):
        with pytest.raises(DriverError, match="not a GUID"):
            call(bad)
    with pytest.raises(DriverError, match="not a GUID"):
        driver.snapshot_create(bad, "x")
    assert transport.invoked == [] and transport.scripts == []


def test_empty_checkpoint_name_is_refused() -> None:
    driver, transport = driver_and_transport()
    with pytest.raises(DriverError, match="needs a name"):
        driver.snapshot_create(VM_ID, "  ")
    assert transport.invoked == []


def test_close_closes_the_transport() -> None:
    driver, transport = driver_and_transport()
    driver.close()
    assert transport.closed is True


# --- PsrpTransport (real pypsrp) -------------------------------------------------------------------


def test_basic_auth_over_http_is_refused() -> None:
    with pytest.raises(DriverError) as exc:
        HyperVDriver("hv1", Credentials("admin", "s3cret"), auth="basic", ssl=False)
    assert "Basic authentication" in str(exc.value)
    assert "HTTPS" in str(exc.value)
    assert "s3cret" not in str(exc.value)
    assert exc.value.retryable is False


def test_basic_auth_over_https_is_accepted() -> None:
    driver = HyperVDriver("hv1", Credentials("admin", "s3cret"), auth="basic", ssl=True)
    assert isinstance(driver.transport, PsrpTransport)
    assert driver.transport.endpoint == "https://hv1:5986/wsman"
    assert "s3cret" not in repr(driver.transport)


def test_unknown_auth_is_refused() -> None:
    with pytest.raises(DriverError, match="unknown WinRM authentication 'digest'"):
        PsrpTransport("hv1", username="a", password="b", auth="digest")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Every authentication the provider form offers is installed (CredSSP and Kerberos are pypsrp extras):
# each one gets as far as the network.
@pytest.mark.parametrize("auth", ["ntlm", "basic", "credssp", "negotiate", "kerberos"])
def test_unreachable_endpoint_is_a_retryable_error_without_the_password(auth: str) -> None:
    port = closed_port()
    transport = PsrpTransport(
        "127.0.0.1",
        username="admin",
        password="Hunter2-secret",
        auth=auth,
        ssl=auth == "basic",
        port=port,
        cert_validation=False,
        connection_timeout=2,
    )
    driver = HyperVDriver("127.0.0.1", None, transport=transport)
    with pytest.raises(DriverError) as exc:
        driver.discover()
    message = str(exc.value)
    assert exc.value.retryable is True
    assert f"127.0.0.1:{port}" in message
    assert "cannot connect" in message
    assert "refused" in message.lower()
    assert "Hunter2-secret" not in message
    assert "\n" not in message
    driver.close()


@pytest.mark.parametrize(
    ("error", "retryable", "expected"),
    [
        ("auth", False, "authentication failed for user 'admin' (ntlm)"),
        ("tls", False, "TLS error"),
        ("read-timeout", True, "timed out"),
        ("http-500", False, "HTTP 500"),
        ("http-503", True, "HTTP 503"),
        ("fault", False, "WS-Management fault: Access is denied."),
    ],
)
def test_library_errors_are_translated(error: str, retryable: bool, expected: str) -> None:
    import requests
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

    raised: dict[str, BaseException] = {
        "auth": AuthenticationError("Failed to authenticate the user admin with ntlm"),
        "tls": requests.exceptions.SSLError("certificate verify failed: self-signed certificate (pw=Hunter2-secret)"),
        "read-timeout": requests.exceptions.ReadTimeout("HTTPSConnectionPool: Read timed out. (read timeout=30)"),
        "http-500": WinRMTransportError("http", 500, "<s:Envelope>Hunter2-secret</s:Envelope>"),
        "http-503": WinRMTransportError("http", 503, ""),
        "fault": WSManFaultError(5, "hv1", "Access is denied.", None, None, None),
    }
    transport = PsrpTransport("hv1", username="admin", password="Hunter2-secret", auth="ntlm")
    translated = transport._translate(raised[error], "Stop-VM failed")
    assert translated.retryable is retryable
    assert expected in str(translated)
    assert str(translated).startswith("Stop-VM failed on https://hv1:5986/wsman")
    assert "Hunter2-secret" not in str(translated)
