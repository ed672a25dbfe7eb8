"""The driver contract: every driver class offers every member of the ``Driver`` protocol with a
compatible signature, and the members added to it (vm_host, verify, migrate, read_at) behave alike.

Each driver runs against its own stand-in platform through the real library: libvirt's ``test:///``
driver, ovirtsdk4 against the RHEV simulator, and for Hyper-V the PowerShell output at the
transport boundary.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inventory.drivers.base import Credentials, Driver, DriverError, EnvironmentCheck, VMCheck
from inventory.drivers.hyperv import HOST_VMS_SCRIPT, HyperVDriver
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.rhev import RhevDriver
from vom.simulators.libvirt_node import DomainSpec, NodeSpec, RunState, stable_uuid, write_node
from vom.simulators.rhev import demo_inventory, start

DRIVER_CLASSES = [LibvirtDriver, RhevDriver, HyperVDriver]


def protocol_members() -> dict[str, inspect.Signature]:
    members = {}
    for name, member in vars(Driver).items():
        if not name.startswith("_") and callable(member):
            members[name] = inspect.signature(member)
    return members


def test_the_protocol_names_what_the_services_call() -> None:
    assert set(protocol_members()) == {
        "discover",
        "vm_state",
        "vm_host",
        "verify",
        "start",
        "shutdown",
        "power_off",
        "reboot",
        "suspend",
        "resume",
        "snapshot_create",
        "snapshot_revert",
        "snapshot_delete",
        "migrate",
        "close",
    }


@pytest.mark.parametrize("cls", DRIVER_CLASSES, ids=lambda c: c.__name__)
def test_driver_class_satisfies_the_protocol(cls: type) -> None:
    """Every member exists and accepts every call the protocol allows: same parameter names, kinds
    and order; a default wherever the protocol has one; extra parameters only with defaults."""
    for name, expected in protocol_members().items():
        member = getattr(cls, name, None)
        assert callable(member), f"{cls.__name__} has no {name}()"
        actual = inspect.signature(member)
        wanted = list(expected.parameters.values())
        offered = list(actual.parameters.values())
        assert [p.name for p in offered[: len(wanted)]] == [p.name for p in wanted], f"{cls.__name__}.{name}{actual}"
        for want, have in zip(wanted, offered, strict=False):
            assert have.kind == want.kind, f"{cls.__name__}.{name}: {have.name} is {have.kind}, not {want.kind}"
            if want.default is not inspect.Parameter.empty:
                assert have.default == want.default, f"{cls.__name__}.{name}: default of {have.name}"
        for extra in offered[len(wanted) :]:
            assert extra.default is not inspect.Parameter.empty or extra.kind in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ), f"{cls.__name__}.{name}: extra parameter {extra.name} without a default"


def assert_read_between(read_at: dt.datetime, before: dt.datetime, after: dt.datetime) -> None:
    assert read_at.tzinfo is not None and read_at.utcoffset() == dt.timedelta(0)
    assert before <= read_at <= after


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- libvirt ---------------------------------------------------------------------------------------

RUNNING = stable_uuid("contract", "running")
OFF = stable_uuid("contract", "off")
MISSING = "99999999-9999-4999-8999-999999999999"


@pytest.fixture
def libvirt_driver(tmp_path: Path) -> Iterator[LibvirtDriver]:
    spec = NodeSpec(
        hostname="kvm-contract",
        host_uuid=stable_uuid("contract", "host"),
        domains=[
            DomainSpec(name="running", uuid=RUNNING, memory_kib=1024 * 1024, vcpus=1),
            DomainSpec(name="off", uuid=OFF, memory_kib=1024 * 1024, vcpus=1, state=RunState.SHUTOFF),
        ],
    )
    path = write_node(spec, tmp_path / "kvm-contract.xml")
    with LibvirtDriver(f"test://{path}") as driver:
        yield driver


def test_libvirt_read_at(libvirt_driver: LibvirtDriver) -> None:
    before = now()
    snapshot = libvirt_driver.discover()
    reading = libvirt_driver.vm_state(RUNNING)
    after = now()
    assert_read_between(snapshot.read_at, before, reading.read_at)
    assert_read_between(reading.read_at, snapshot.read_at, after)


def test_libvirt_vm_host(libvirt_driver: LibvirtDriver) -> None:
    host_uid = libvirt_driver.discover().hosts[0].uid
    assert host_uid == stable_uuid("contract", "host")
    assert libvirt_driver.vm_host(RUNNING) == host_uid
    assert libvirt_driver.vm_host(OFF) == ""
    with pytest.raises(DriverError, match="not found"):
        libvirt_driver.vm_host(MISSING)


def test_libvirt_verify(libvirt_driver: LibvirtDriver) -> None:
    check = libvirt_driver.verify([RUNNING, OFF.upper(), MISSING])
    assert re.fullmatch(r"libvirt \d+\.\d+\.\d+ \(TEST\)", check.product)
    assert check.vms == {
        RUNNING: VMCheck(ok=True, name="running"),
        OFF.upper(): VMCheck(ok=True, name="off"),
        MISSING: VMCheck(ok=False, reason=f"VM {MISSING} is not known to the host"),
    }
    assert (check.ok, check.reason) == (False, "1 VM(s) are not known to the host")
    assert libvirt_driver.verify([RUNNING]) == EnvironmentCheck(
        ok=True, product=check.product, vms={RUNNING: VMCheck(ok=True, name="running")}
    )


def test_libvirt_verify_of_an_unreachable_host_does_not_raise(closed_port: int) -> None:
    uri = f"qemu+tcp://127.0.0.1:{closed_port}/system"
    check = LibvirtDriver(uri, connect_timeout=2).verify([RUNNING])
    reason = f"cannot connect to {uri}: cannot reach 127.0.0.1:{closed_port}: connection refused"
    assert check == EnvironmentCheck(
        ok=False, reason=reason, retryable=True, vms={RUNNING: VMCheck(ok=False, reason=reason)}
    )


def test_libvirt_migrate_is_refused(libvirt_driver: LibvirtDriver) -> None:
    for target in (None, "somewhere"):
        with pytest.raises(DriverError) as err:
            libvirt_driver.migrate(RUNNING, target)
        assert str(err.value) == "libvirt live migration is not run from this console"
        assert err.value.retryable is False


# --- RHEV ------------------------------------------------------------------------------------------


@pytest.fixture
def rhev() -> Iterator[tuple[Any, RhevDriver]]:
    simulator = start(demo_inventory(2))
    driver = RhevDriver(simulator.url, Credentials("admin@internal", "secret"))
    yield simulator, driver
    driver.close()
    simulator.stop()


def test_rhev_read_at(rhev: tuple[Any, RhevDriver]) -> None:
    simulator, driver = rhev
    vm_id = next(iter(simulator.inventory.vms))
    before = now()
    snapshot = driver.discover()
    reading = driver.vm_state(vm_id)
    after = now()
    assert_read_between(snapshot.read_at, before, reading.read_at)
    assert_read_between(reading.read_at, snapshot.read_at, after)


def test_rhev_vm_host_is_a_discovered_host(rhev: tuple[Any, RhevDriver]) -> None:
    simulator, driver = rhev
    hosts = {h.uid for h in driver.discover().hosts}
    for vm in simulator.inventory.vms.values():
        assert driver.vm_host(vm.id) == (vm.host_id or "")
        assert not vm.host_id or vm.host_id in hosts


def test_rhev_verify_returns_the_dataclasses(rhev: tuple[Any, RhevDriver]) -> None:
    _, driver = rhev
    check = driver.verify([MISSING])
    assert isinstance(check, EnvironmentCheck)
    assert check.vms[MISSING] == VMCheck(ok=False, reason=f"VM {MISSING} is not known to the manager")


# --- Hyper-V ---------------------------------------------------------------------------------------

HV_RUNNING = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
HV_SAVED = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"
HV_DATA = Path(__file__).resolve().parents[1] / "data" / "hyperv"


class ScriptTransport:
    """Answers each fixed script with canned output, as the WinRM transport would return it."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, str]]] = []

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        self.calls.append((script, dict(parameters)))
        if script == HOST_VMS_SCRIPT and parameters.get("VmId"):
            document = json.loads(self.answers[script])
            document["VMs"] = [vm for vm in document["VMs"] if vm["Id"] == parameters["VmId"]]
            return json.dumps(document)
        return self.answers[script]

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: Any = ()) -> None:
        raise AssertionError("no cmdlet is run here")

    def close(self) -> None:
        pass


HOST_VMS_OUTPUT = json.dumps(
    {
        "Host": {
            "ComputerName": "HV22-A",
            "FullyQualifiedDomainName": "HV22-A.lab.example.net",
            "OSCaption": "Microsoft Windows Server 2022 Datacenter",
            "OSVersion": "10.0.20348",
        },
        "VMs": [
            {"Id": HV_RUNNING, "Name": "web01", "State": "Running"},
            {"Id": HV_SAVED, "Name": "web02", "State": "Saved"},
        ],
    }
)


@pytest.fixture
def hyperv() -> tuple[ScriptTransport, HyperVDriver]:
    from inventory.drivers.hyperv import DISCOVERY_SCRIPT, VM_STATE_SCRIPT

    transport = ScriptTransport(
        {
            DISCOVERY_SCRIPT: (HV_DATA / "ws2022_names_pwsh7.json").read_text(encoding="utf-8"),
            VM_STATE_SCRIPT: json.dumps({"Id": HV_RUNNING, "Name": "web01", "State": "Running"}),
            HOST_VMS_SCRIPT: HOST_VMS_OUTPUT,
        }
    )
    return transport, HyperVDriver("hv22-a", None, transport=transport)


def test_hyperv_read_at(hyperv: tuple[ScriptTransport, HyperVDriver]) -> None:
    _, driver = hyperv
    before = now()
    snapshot = driver.discover()
    reading = driver.vm_state(HV_RUNNING)
    after = now()
    assert_read_between(snapshot.read_at, before, reading.read_at)
    assert_read_between(reading.read_at, snapshot.read_at, after)


def test_hyperv_vm_host_is_the_discovered_host(hyperv: tuple[ScriptTransport, HyperVDriver]) -> None:
    transport, driver = hyperv
    host_uid = driver.discover().hosts[0].uid
    assert driver.vm_host(HV_RUNNING.upper()) == host_uid == "hv22-a.lab.example.net"
    assert transport.calls[-1] == (HOST_VMS_SCRIPT, {"VmId": HV_RUNNING})  # the id is bound, normalized
    assert driver.vm_host(HV_SAVED) == ""  # saved: on disk, not running anywhere
    with pytest.raises(DriverError, match=f"VM {MISSING} not found on hv22-a"):
        driver.vm_host(MISSING)


def test_hyperv_verify(hyperv: tuple[ScriptTransport, HyperVDriver]) -> None:
    transport, driver = hyperv
    check = driver.verify([HV_RUNNING.upper(), MISSING])
    assert transport.calls == [(HOST_VMS_SCRIPT, {})]  # one cheap round trip for any number of VMs
    assert check.product == "Hyper-V on Microsoft Windows Server 2022 Datacenter 10.0.20348"
    assert check.vms == {
        HV_RUNNING.upper(): VMCheck(ok=True, name="web01"),
        MISSING: VMCheck(ok=False, reason=f"VM {MISSING} is not known to the host"),
    }
    assert (check.ok, check.reason) == (False, "1 VM(s) are not known to the host")


def test_hyperv_verify_of_an_unreachable_host_does_not_raise(closed_port: int) -> None:
    driver = HyperVDriver("127.0.0.1", Credentials("a", "b"), auth="ntlm", ssl=False, port=closed_port)
    check = driver.verify([HV_RUNNING])
    assert check.ok is False and check.retryable is True and "refused" in check.reason
    assert check.vms == {HV_RUNNING: VMCheck(ok=False, reason=check.reason)}


def test_hyperv_migrate_is_refused(hyperv: tuple[ScriptTransport, HyperVDriver]) -> None:
    with pytest.raises(DriverError) as err:
        hyperv[1].migrate(HV_RUNNING, "hv22-b.lab.example.net")
    assert str(err.value) == "Hyper-V live migration is not run from this console"
    assert err.value.retryable is False
