"""The Hyper-V driver class: one Hyper-V server, reached through a :class:`PowerShellTransport`.

Discovery is one PowerShell script (one round trip for a host of 500 VMs). Operations are single
cmdlets (``Start-VM``, ``Stop-VM`` …) fed the VM by ``Get-VM -Id`` on the pipeline, with every
value bound as a parameter: user input never becomes script text.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid as uuid_module
from typing import TYPE_CHECKING

from inventory.drivers.base import (
    Credentials,
    Driver,
    DriverError,
    EnvironmentCheck,
    InventorySnapshot,
    VMCheck,
    VMStateReading,
)
from inventory.drivers.hyperv.parse import (
    _GUID,
    _guid,
    normalized_state,
    parse_discovery,
    parse_host_vms,
    parse_vm_state,
)
from inventory.drivers.hyperv.scripts import DISCOVERY_SCRIPT, HOST_VMS_SCRIPT, VM_STATE_SCRIPT
from inventory.drivers.hyperv.transport import CAPTURED_PREFIX, PowerShellTransport, PsrpTransport

__all__ = ["HyperVDriver"]

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _escape_wildcards(name: str) -> str:
    """``[WildcardPattern]::Escape``: Get-VMSnapshot -Name treats * ? [ ] as wildcards."""
    return re.sub(r"([`*?\[\]])", r"`\1", name)


class HyperVDriver:
    """One Hyper-V server, reached over WinRM (see the module docstring).

    ``connect_timeout`` and ``read_timeout`` (seconds) bound every WinRM request of the default
    transport; a given ``transport`` brings its own bounds.
    """

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        *,
        transport: PowerShellTransport | None = None,
        auth: str = "negotiate",
        ssl: bool = True,
        port: int | None = None,
        cert_validation: bool = True,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        host = (host or "").strip()
        captured = transport is not None and host.startswith(CAPTURED_PREFIX)  # a captured host names its file
        if not host or (not captured and any(c.isspace() or c in "/@" for c in host)):
            raise DriverError(f"invalid Hyper-V host {host!r}: expected a host name or address")
        self.host = host
        if transport is None:
            credentials = credentials or Credentials()
            transport = PsrpTransport(
                host,
                username=credentials.username,
                password=credentials.password,
                auth=auth,
                ssl=ssl,
                port=port,
                cert_validation=cert_validation,
                connection_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
        self.transport: PowerShellTransport = transport

    def discover(self) -> InventorySnapshot:
        """Everything on the host, in one PowerShell round trip."""
        read_at = _now()
        return parse_discovery(self.transport.run_script(DISCOVERY_SCRIPT, {}), host=self.host, read_at=read_at)

    def vm_state(self, vm_id: str) -> VMStateReading:
        vm_id = self._vm_id(vm_id)
        read_at = _now()
        return parse_vm_state(self.transport.run_script(VM_STATE_SCRIPT, {"VmId": vm_id}), vm_id, read_at=read_at)

    def vm_host(self, vm_id: str) -> str:
        """The host's uid (as in a discovery) when the VM is up there (running, paused, starting …), else ""."""
        vm_id = self._vm_id(vm_id)
        listed = parse_host_vms(self.transport.run_script(HOST_VMS_SCRIPT, {"VmId": vm_id}), host=self.host)
        if vm_id not in listed.vms:
            raise DriverError(f"VM {vm_id} not found on {self.host}")
        state = normalized_state(listed.vms[vm_id][1])
        return listed.host_uid if state not in ("stopped", "suspended", "unknown") else ""

    def verify(self, vm_ids: list[str]) -> EnvironmentCheck:
        """The server answers with these credentials (one cheap script), and knows each of ``vm_ids``.

        Never raises for a platform problem: a failure is the check's outcome.
        """
        try:
            listed = parse_host_vms(self.transport.run_script(HOST_VMS_SCRIPT, {}), host=self.host)
        except DriverError as err:
            failed = {vm_id: VMCheck(ok=False, reason=err.message) for vm_id in vm_ids}
            return EnvironmentCheck(ok=False, reason=err.message, retryable=err.retryable, vms=failed)
        check = EnvironmentCheck(ok=True, product=listed.product)
        for vm_id in vm_ids:
            key = _guid(vm_id)
            if key in listed.vms:
                check.vms[vm_id] = VMCheck(ok=True, name=listed.vms[key][0])
            else:
                check.vms[vm_id] = VMCheck(ok=False, reason=f"VM {vm_id} is not known to the host")
        failing = sum(1 for c in check.vms.values() if not c.ok)
        if failing:
            check.ok = False
            check.reason = f"{failing} VM(s) are not known to the host"
        return check

    def migrate(self, vm_id: str, host_uid: str | None = None) -> None:
        """Not offered: Hyper-V live migration is run from Failover Cluster Manager or Move-VM."""
        raise DriverError("Hyper-V live migration is not run from this console", retryable=False)

    # -- operations: one cmdlet each, the VM piped in from Get-VM -Id

    def _vm_id(self, vm_id: str) -> str:
        text = (vm_id or "").strip()
        if not _GUID.match(text):
            raise DriverError(f"invalid VM id {vm_id!r}: not a GUID")
        return str(uuid_module.UUID(text))

    def _on_vm(self, vm_id: str, cmdlet: str, parameters: dict[str, object] | None = None) -> None:
        self.transport.invoke(cmdlet, parameters or {}, source=[("Get-VM", {"Id": self._vm_id(vm_id)})])

    def start(self, vm_id: str) -> None:
        self._on_vm(vm_id, "Start-VM")

    def shutdown(self, vm_id: str) -> None:
        """Shut the guest down through the Shutdown integration service.

        ``-Force`` does not cut the power (that is ``-TurnOff``): it only stops Stop-VM from asking
        for confirmation, which a remote session cannot answer, when users are signed in to the guest.
        A VM without the integration service fails with a PowerShell error.
        """
        self._on_vm(vm_id, "Stop-VM", {"Force": True})

    def power_off(self, vm_id: str) -> None:
        """Turn the VM off at once, like pulling the plug."""
        self._on_vm(vm_id, "Stop-VM", {"TurnOff": True, "Force": True})

    def reboot(self, vm_id: str) -> None:
        """Restart-VM: a reset of the virtual hardware (-Force: without the confirmation prompt)."""
        self._on_vm(vm_id, "Restart-VM", {"Force": True})

    def suspend(self, vm_id: str) -> None:
        """Save the VM (Hyper-V's "save": memory to disk, then off; like hibernation)."""
        self._on_vm(vm_id, "Save-VM")

    def resume(self, vm_id: str) -> None:
        """Start a saved VM, or resume a paused one."""
        reading = self.vm_state(vm_id)
        state = normalized_state(reading.state)
        if state == "suspended":
            self._on_vm(vm_id, "Start-VM")
        elif state == "paused":
            self._on_vm(vm_id, "Resume-VM")
        else:
            raise DriverError(f"cannot resume VM {reading.uuid}: it is {reading.state}, not saved or paused")

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None:
        """Checkpoint-VM; the checkpoint type (standard/production) is the VM's setting.

        Hyper-V checkpoints have no description at creation; ``description`` is not sent.
        """
        self._on_vm(vm_id, "Checkpoint-VM", {"SnapshotName": self._snapshot_name(name)})

    def snapshot_revert(self, vm_id: str, name: str) -> None:
        self._on_snapshot(vm_id, name, "Restore-VMSnapshot")

    def snapshot_delete(self, vm_id: str, name: str) -> None:
        self._on_snapshot(vm_id, name, "Remove-VMSnapshot")

    def _snapshot_name(self, name: str) -> str:
        if not name or not name.strip():
            raise DriverError("a checkpoint needs a name")
        if len(name) > 100 or any(ord(c) < 32 for c in name):
            raise DriverError("a checkpoint name must be at most 100 printable characters")
        return name

    def _on_snapshot(self, vm_id: str, name: str, cmdlet: str) -> None:
        name = self._snapshot_name(name)
        source = [
            ("Get-VM", {"Id": self._vm_id(vm_id)}),
            ("Get-VMSnapshot", {"Name": _escape_wildcards(name)}),
        ]
        self.transport.invoke(cmdlet, {"Confirm": False}, source=source)

    def close(self) -> None:
        self.transport.close()


if TYPE_CHECKING:
    # mypy proves here that the class satisfies the Driver protocol.
    def _as_driver(driver: HyperVDriver) -> Driver:
        return driver
