"""The Hyper-V driver: Microsoft Hyper-V servers reached with PowerShell Remoting over WinRM.

One :class:`HyperVDriver` talks to one Hyper-V server. Discovery is one PowerShell script
(:data:`DISCOVERY_SCRIPT`) that gathers the host, every VM (with or without a guest OS), its virtual
hard disks and pass-through disks, checkpoints and NICs, and prints them as one JSON document, so a
host of 500 VMs is one round trip. :func:`parse_discovery` turns that JSON into an
:class:`InventorySnapshot` and survives what real ``ConvertTo-Json`` output does: a single result as
an object instead of an array, enums as numbers or names, ``/Date(ms)/`` or ISO 8601 dates, missing
optional properties.

Operations are single cmdlets (``Start-VM``, ``Stop-VM`` …) fed the VM by ``Get-VM -Id`` on the
pipeline, with every value bound as a parameter: user input never becomes script text.

The remote call goes through a :class:`PowerShellTransport`; :class:`PsrpTransport` is the real one
(pypsrp), tests replace it with captured output. Every failure leaves this module as a one-line
:class:`DriverError` whose ``retryable`` says whether the host could not be reached (retry later)
or the request itself failed (retrying will not help).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from inventory.drivers.base import (
    Credentials,
    DiskInfo,
    DriverError,
    HostFacts,
    InventorySnapshot,
    NicInfo,
    PoolInfo,
    SnapshotInfo,
    VMInfo,
    VMStateReading,
)

__all__ = [
    "DISCOVERY_SCRIPT",
    "VM_STATE_SCRIPT",
    "HyperVDriver",
    "PowerShellTransport",
    "PsrpTransport",
    "normalized_state",
    "parse_discovery",
    "parse_vm_state",
    "vm_state_name",
]

logger = logging.getLogger(__name__)

# --- the PowerShell -------------------------------------------------------------------------------

# Runs on Windows PowerShell 5.1 (Server 2016/2019/2022) and PowerShell 7. Enums are written as
# their names ("$x" casts to the name), because the numbers behind some of them changed between
# Windows versions; the parser still accepts numbers for output of other scripts/captures. The
# script takes no input at all. A VM that cannot be read is reported with an "Error" and skipped,
# and a failure of the whole script is printed as {"Error": …} instead of an error stream, so the
# caller always gets one JSON document.
DISCOVERY_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Get-VomVhd([string]$Path) {
    try { $vhd = Get-VHD -Path $Path } catch { return [ordered]@{ Error = $_.Exception.Message } }
    $chain = @(); $parent = $vhd.ParentPath; $depth = 0
    while ($parent -and $depth -lt 64) {
        $chain += $parent; $depth++
        try { $parent = (Get-VHD -Path $parent).ParentPath } catch { $parent = $null }
    }
    [ordered]@{
        VhdFormat = "$($vhd.VhdFormat)"; VhdType = "$($vhd.VhdType)"; ParentPath = $vhd.ParentPath
        Size = $vhd.Size; FileSize = $vhd.FileSize; Chain = $chain
    }
}
try {
    $vmHost = Get-VMHost
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $volumes = @(Get-CimInstance -ClassName Win32_Volume | Where-Object { $_.Name -and $_.DriveType -eq 3 } |
        ForEach-Object { [ordered]@{
            Name = $_.Name; Label = $_.Label; FileSystem = $_.FileSystem; Capacity = $_.Capacity
            FreeSpace = $_.FreeSpace; DeviceID = $_.DeviceID } })
    $vms = @(foreach ($vm in @(Get-VM)) {
        try {
            $disks = @(foreach ($d in @(Get-VMHardDiskDrive -VM $vm)) {
                $vhd = $null
                if ($d.Path -and $null -eq $d.DiskNumber) { $vhd = Get-VomVhd $d.Path }
                [ordered]@{
                    ControllerType = "$($d.ControllerType)"; ControllerNumber = $d.ControllerNumber
                    ControllerLocation = $d.ControllerLocation; Path = $d.Path; DiskNumber = $d.DiskNumber
                    Vhd = $vhd }
            })
            $dvds = @(foreach ($d in @(Get-VMDvdDrive -VM $vm)) {
                [ordered]@{
                    ControllerType = "$($d.ControllerType)"; ControllerNumber = $d.ControllerNumber
                    ControllerLocation = $d.ControllerLocation; Path = $d.Path }
            })
            $snaps = @(foreach ($s in @(Get-VMSnapshot -VM $vm)) {
                [ordered]@{
                    Name = $s.Name; Id = "$($s.Id)"; CreationTime = $s.CreationTime
                    ParentSnapshotName = $s.ParentSnapshotName; SnapshotType = "$($s.SnapshotType)"
                    Notes = $s.Notes; HardDrives = @($s.HardDrives | ForEach-Object { $_.Path }) }
            })
            $nics = @(foreach ($n in @(Get-VMNetworkAdapter -VM $vm)) {
                [ordered]@{
                    Name = $n.Name; MacAddress = $n.MacAddress; SwitchName = $n.SwitchName
                    DynamicMacAddressEnabled = $n.DynamicMacAddressEnabled; IPAddresses = @($n.IPAddresses) }
            })
            [ordered]@{
                Name = $vm.Name; Id = "$($vm.Id)"; State = "$($vm.State)"; Status = $vm.Status
                Generation = $vm.Generation; Version = $vm.Version; ProcessorCount = $vm.ProcessorCount
                MemoryAssigned = $vm.MemoryAssigned; MemoryStartup = $vm.MemoryStartup
                MemoryMinimum = $vm.MemoryMinimum; MemoryMaximum = $vm.MemoryMaximum
                DynamicMemoryEnabled = $vm.DynamicMemoryEnabled; Uptime = $vm.Uptime
                Heartbeat = "$($vm.Heartbeat)"; IsClustered = $vm.IsClustered; Notes = $vm.Notes
                Path = $vm.Path; ParentSnapshotName = $vm.ParentSnapshotName
                AutomaticStartAction = "$($vm.AutomaticStartAction)"
                HardDrives = $disks; DvdDrives = $dvds; Snapshots = $snaps; NetworkAdapters = $nics }
        } catch {
            [ordered]@{ Name = $vm.Name; Id = "$($vm.Id)"; Error = $_.Exception.Message }
        }
    })
    [ordered]@{
        Host = [ordered]@{
            ComputerName = $vmHost.ComputerName; FullyQualifiedDomainName = $vmHost.FullyQualifiedDomainName
            LogicalProcessorCount = $vmHost.LogicalProcessorCount; MemoryCapacity = $vmHost.MemoryCapacity
            VirtualHardDiskPath = $vmHost.VirtualHardDiskPath; VirtualMachinePath = $vmHost.VirtualMachinePath
            OSCaption = $os.Caption; OSVersion = $os.Version; OSBuildNumber = $os.BuildNumber
            EnvironmentOSVersion = "$([Environment]::OSVersion.Version)" }
        Volumes = $volumes
        VMs = $vms
    } | ConvertTo-Json -Depth 6 -Compress
} catch {
    [ordered]@{ Error = [ordered]@{
        Message = $_.Exception.Message; FullyQualifiedErrorId = $_.FullyQualifiedErrorId
        Category = "$($_.CategoryInfo.Category)" } } | ConvertTo-Json -Compress
}
"""

# The one input is bound as a parameter ($VmId), never formatted into the text.
VM_STATE_SCRIPT = r"""
param([string]$VmId)
$ErrorActionPreference = 'Stop'
$vm = Get-VM -Id $VmId
[ordered]@{ Id = "$($vm.Id)"; Name = $vm.Name; State = "$($vm.State)"; Status = $vm.Status } | ConvertTo-Json -Compress
"""

# --- the transport --------------------------------------------------------------------------------

PipelineSource = Sequence[tuple[str, Mapping[str, object]]]


class PowerShellTransport(Protocol):
    """The one boundary where the remote PowerShell call happens (tests replace it)."""

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        """Run a fixed script with bound parameters; return the JSON text it printed."""
        ...

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: PipelineSource = ()) -> None:
        """Run one cmdlet with bound parameters.

        ``source`` lists cmdlets (name, bound parameters) run before it whose output is piped into
        it, e.g. ``[("Get-VM", {"Id": vm_id})]`` for ``Get-VM -Id … | Start-VM``. A switch is bound
        as ``True``/``False``.
        """
        ...

    def close(self) -> None: ...


_AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
_RETRYABLE_HTTP = frozenset({502, 503, 504})


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class PsrpTransport:
    """PowerShell Remoting over WinRM with pypsrp; one runspace pool, opened on first use."""

    def __init__(
        self,
        server: str,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: str = "negotiate",
        ssl: bool = True,
        port: int | None = None,
        cert_validation: bool = True,
        connection_timeout: int = 30,
        read_timeout: int = 60,
        operation_timeout: int = 50,
    ) -> None:
        auth = auth.lower()
        if auth not in _AUTHS:
            raise DriverError(f"unknown WinRM authentication {auth!r} (expected one of {', '.join(_AUTHS)})")
        if auth == "basic" and not ssl:
            raise DriverError(
                f"Basic authentication to {server} is refused over HTTP: it would send the password in clear; "
                "use HTTPS or NTLM/Kerberos/CredSSP"
            )
        if auth in ("basic", "credssp", "ntlm") and (not username or not password):
            raise DriverError(f"{auth} authentication to {server} needs a user name and a password")
        self.server = server
        self.username = username
        self._password = password
        self.auth = auth
        self.ssl = ssl
        self.port = port if port is not None else (5986 if ssl else 5985)
        self.cert_validation = cert_validation
        self.connection_timeout = connection_timeout
        self.read_timeout = max(read_timeout, operation_timeout + 10)
        self.operation_timeout = operation_timeout
        self._pool: Any = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.server}:{self.port}/wsman"

    def __repr__(self) -> str:  # never the password
        return f"PsrpTransport({self.endpoint!r}, user={self.username!r}, auth={self.auth!r})"

    # -- errors

    def _scrub(self, text: str) -> str:
        text = _one_line(text)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _translate(self, err: BaseException, action: str) -> DriverError:
        """A one-line DriverError for anything pypsrp, requests or spnego raised."""
        import requests
        from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

        where = f"{action} on {self.endpoint}"
        if isinstance(err, DriverError):
            return err
        if isinstance(err, AuthenticationError):
            return DriverError(f"{where}: authentication failed for user {self.username!r} ({self.auth})")
        if isinstance(err, requests.exceptions.SSLError):
            return DriverError(f"{where}: TLS error: {self._scrub(_root_reason(err))}")
        if isinstance(err, requests.exceptions.Timeout):
            return DriverError(f"{where}: timed out: {self._scrub(_root_reason(err))}", retryable=True)
        if isinstance(err, requests.exceptions.ConnectionError):
            return DriverError(f"{where}: cannot connect: {self._scrub(_root_reason(err))}", retryable=True)
        if isinstance(err, WinRMTransportError):
            code = int(err.code)
            return DriverError(f"{where}: HTTP {code} from the WinRM service", retryable=code in _RETRYABLE_HTTP)
        if isinstance(err, WSManFaultError):
            return DriverError(f"{where}: WS-Management fault: {self._scrub(err.reason or err.code or '')}")
        module = type(err).__module__
        if module.startswith(("spnego", "requests_credssp", "gssapi", "krb5")):
            return DriverError(f"{where}: authentication failed ({self.auth}): {self._scrub(str(err))}")
        if isinstance(err, ImportError):
            return DriverError(f"{where}: {self.auth} authentication is not available here: {self._scrub(str(err))}")
        return DriverError(f"{where}: {type(err).__name__}: {self._scrub(str(err))}")

    # -- the pool

    def _open(self) -> Any:
        if self._pool is not None:
            return self._pool
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        try:
            wsman = WSMan(
                self.server,
                port=self.port,
                username=self.username,
                password=self._password,
                auth=self.auth,
                ssl=self.ssl,
                cert_validation=self.cert_validation,
                connection_timeout=self.connection_timeout,
                read_timeout=self.read_timeout,
                operation_timeout=self.operation_timeout,
            )
            pool = RunspacePool(wsman)
            pool.open()
        except Exception as err:  # noqa: BLE001 - every library error becomes a DriverError
            raise self._translate(err, "cannot open a PowerShell session") from None
        self._pool = pool
        return pool

    def _run(self, build: Any, action: str) -> list[Any]:
        from pypsrp.powershell import PowerShell

        pool = self._open()
        try:
            ps = PowerShell(pool)
            build(ps)
            output: list[Any] = ps.invoke()
        except Exception as err:  # noqa: BLE001 - every library error becomes a DriverError
            raise self._translate(err, action) from None
        if ps.had_errors:
            records = [self._scrub(_error_record_text(r)) for r in ps.streams.error]
            reason = "; ".join(r for r in records if r) or "PowerShell reported an error without a message"
            raise DriverError(f"{action} on {self.server}: {reason}")
        return output

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        def build(ps: Any) -> None:
            ps.add_script(script)
            for name, value in parameters.items():
                ps.add_parameter(name, value)

        output = self._run(build, "PowerShell script failed")
        return "\n".join(str(item) for item in output if item is not None)

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: PipelineSource = ()) -> None:
        def build(ps: Any) -> None:
            for name, bound in (*source, (cmdlet, parameters)):
                ps.add_cmdlet(name)
                for key, value in bound.items():
                    ps.add_parameter(key, value)

        self._run(build, f"{cmdlet} failed")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.close()
            except Exception as err:  # noqa: BLE001 - closing must not raise
                logger.debug("closing the PowerShell session on %s failed: %s", self.server, self._scrub(str(err)))


def _root_reason(err: BaseException) -> str:
    """The innermost cause of a requests error (e.g. "[Errno 111] Connection refused")."""
    seen: set[int] = set()
    current: BaseException | None = err
    last = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        current = next((a for a in args if isinstance(a, BaseException)), None) or current.__cause__
    text = str(last)
    match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if match:
        return match.group(0).strip()
    if "timed out" in text.lower():
        return "connection timed out"
    return text


def _error_record_text(record: object) -> str:
    text = str(record or "")
    if not text or text.startswith("<"):
        text = str(getattr(record, "fq_error", "") or "")
    return text


# --- enums ------------------------------------------------------------------------------------------

# Microsoft.HyperV.PowerShell.VMState. Numbers as in the Hyper-V PowerShell module of Windows
# Server 2016+ (Msvm_ComputerSystem EnabledState for the first ones, 32773… for the transitions).
# The numbers of the later members moved between versions, so names are what the script emits and
# what is trusted; numbers are a fallback for output written with the raw enum.
_VM_STATES: dict[int, str] = {
    1: "Other",
    2: "Running",
    3: "Off",
    4: "Stopping",
    6: "Saved",
    9: "Paused",
    10: "Starting",
    11: "Reset",
    32773: "Saving",
    32776: "Pausing",
    32777: "Resuming",
    32779: "FastSaved",
    32780: "FastSaving",
    32781: "ForceShutdown",
    32782: "ForceReboot",
    32783: "RunningCritical",
    32784: "OffCritical",
    32785: "StoppingCritical",
    32786: "SavedCritical",
    32787: "PausedCritical",
    32788: "StartingCritical",
    32789: "ResetCritical",
    32790: "SavingCritical",
    32791: "PausingCritical",
    32792: "ResumingCritical",
    32793: "FastSavedCritical",
    32794: "FastSavingCritical",
}
_VM_STATE_BY_NAME = {name.lower(): name for name in _VM_STATES.values()}

# The console's normalized state for each Hyper-V state ("…Critical": the VM lost its storage).
_NORMALIZED: dict[str, str] = {
    "running": "running",
    "off": "stopped",
    "stopping": "stopping",
    "saved": "suspended",
    "paused": "paused",
    "starting": "starting",
    "reset": "starting",
    "saving": "stopping",
    "pausing": "running",
    "resuming": "starting",
    "fastsaved": "suspended",
    "fastsaving": "stopping",
    "forceshutdown": "stopping",
    "forcereboot": "starting",
}

_HEARTBEAT = (
    "Unknown",
    "Disabled",
    "NoContact",
    "Error",
    "LostCommunication",
    "OkApplicationsUnknown",
    "OkApplicationsHealthy",
    "OkApplicationsCritical",
    "Paused",
)
_CONTROLLER_TYPES = {0: "IDE", 1: "SCSI", 2: "PMEM"}
_VHD_FORMATS = {0: "Unknown", 2: "VHD", 3: "VHDX", 4: "VHDSet"}
_VHD_TYPES = {0: "Unknown", 2: "Fixed", 3: "Dynamic", 4: "Differencing"}
_SNAPSHOT_TYPES = ("Standard", "Recovery", "Planned", "Missing", "Replica", "AppConsistentReplica", "SyncedReplica")
_START_ACTIONS = {2: "Nothing", 3: "StartIfRunning", 4: "Start"}


def _enum_name(value: object, numbers: Mapping[int, str] | Sequence[str], names: Sequence[str] = ()) -> str:
    """An enum written as a number, a numeric string or a name, as its name ("" when absent)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    elif isinstance(value, dict) and "value" in value:  # {"value": 2, "Value": …} from some serializers
        return _enum_name(value["value"], numbers, names)
    if number is not None:
        if isinstance(numbers, Mapping):
            return numbers.get(number, str(number))
        return numbers[number] if 0 <= number < len(numbers) else str(number)
    text = str(value).strip()
    known = list(names) or (list(numbers.values()) if isinstance(numbers, Mapping) else list(numbers))
    return next((k for k in known if k.lower() == text.lower()), text)


def vm_state_name(value: object) -> tuple[str, str]:
    """The Hyper-V state name for a State value, and a reason when it could not be mapped.

    Names are matched case-insensitively and kept as Hyper-V spells them; an unknown number
    becomes "Other" with the number in the reason; an unknown name is kept as it came.
    """
    if value is None or value == "":
        return "Other", "no state reported"
    if isinstance(value, int | str) and str(value).strip().lstrip("-").isdigit():
        number = int(str(value).strip())
        if number in _VM_STATES:
            return _VM_STATES[number], ""
        return "Other", f"unknown Hyper-V state {number}"
    text = str(value).strip()
    return _VM_STATE_BY_NAME.get(text.lower(), text), ""


def normalized_state(hyperv_state: str) -> str:
    """The console's normalized state (running, stopped, paused, suspended …) for a Hyper-V state."""
    key = hyperv_state.strip().lower()
    if key.endswith("critical"):
        key = key[: -len("critical")]
    return _NORMALIZED.get(key, "unknown")


# --- JSON helpers -----------------------------------------------------------------------------------

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def _as_list(value: object) -> list[Any]:
    """PowerShell writes a one-element collection as the element and an empty one as null."""
    if value is None:
        return []
    if isinstance(value, dict) and set(value) == {"value", "Count"} and isinstance(value["value"], list):
        # Windows PowerShell 5.1 writes an @() array that carries extended properties this way.
        return [v for v in value["value"] if v is not None]
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _get(obj: Mapping[str, Any], *names: str) -> Any:
    """A property by name, case-insensitively (PowerShell property names are not case-sensitive)."""
    for name in names:
        if name in obj:
            return obj[name]
    lowered = {k.lower(): v for k, v in obj.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _str(value: object) -> str:
    return "" if value is None else str(value).strip()


def _int(value: object) -> int:
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return 0


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _datetime(value: object) -> dt.datetime | None:
    """``/Date(1700000000000)/`` (Windows PowerShell) or ISO 8601 (PowerShell 7), as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):  # Select-Object on a DateTime in some captures: {"value": "/Date(…)/", …}
        return _datetime(_get(value, "value", "DateTime"))
    text = str(value).strip()
    match = _MS_DATE.match(text)
    if match:
        # The milliseconds are UTC; the optional offset only says which local zone was meant.
        return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, tz=dt.UTC)
    try:
        # .NET writes 7 fractional digits; Python takes at most 6.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _seconds(value: object) -> int:
    """A TimeSpan as whole seconds: an object with TotalSeconds/Ticks, "d.hh:mm:ss", or a number."""
    if value is None or value == "":
        return 0
    if isinstance(value, dict):
        total = _get(value, "TotalSeconds")
        if total is not None:
            return int(float(total))
        ticks = _get(value, "Ticks")
        return _int(ticks) // 10_000_000
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    match = _TIMESPAN.match(str(value).strip())
    if match:
        days, hours, minutes, secs = (int(g or 0) for g in match.groups()[:4])
        return ((days * 24 + hours) * 60 + minutes) * 60 + secs
    return 0


def _mac(value: object) -> str:
    """Hyper-V writes MACs as 12 hex digits (00155D0A1B2C); the inventory uses aa:bb:… form."""
    digits = re.sub(r"[^0-9a-fA-F]", "", _str(value)).lower()
    if len(digits) != 12:
        return _str(value).lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _guid(value: object) -> str:
    text = _str(value)
    if isinstance(value, dict):  # a Guid serialized as an object
        text = _str(_get(value, "Guid", "value"))
    try:
        return str(uuid_module.UUID(text))
    except ValueError:
        return text.lower()


def _load_json(text: str, what: str) -> Any:
    text = (text or "").strip().lstrip("\ufeff")
    if not text:
        raise DriverError(f"{what}: the script printed nothing")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DriverError(
            f"{what}: malformed JSON from PowerShell ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None


def _raise_script_error(document: object, what: str) -> None:
    if isinstance(document, dict):
        error = _get(document, "Error")
        if error:
            if isinstance(error, dict):
                message = _str(_get(error, "Message")) or _str(_get(error, "FullyQualifiedErrorId"))
            else:
                message = _str(error)
            raise DriverError(f"{what}: PowerShell error: {_one_line(message) or 'no message'}")


# --- parsing ----------------------------------------------------------------------------------------


def _volume_for(path: str, volumes: Sequence[tuple[str, str]]) -> str:
    """The host volume (mount point, e.g. ``C:\\`` or ``C:\\ClusterStorage\\Volume1\\``) holding a path."""
    lowered = path.lower()
    best = ""
    for mount, _ in volumes:
        prefix = mount.lower() if mount.endswith("\\") else mount.lower() + "\\"
        if lowered.startswith(prefix) and len(mount) > len(best):
            best = mount
    if best:
        return best
    match = re.match(r"^([A-Za-z]:\\)", path)
    if match:
        return match.group(1).upper()
    unc = re.match(r"^(\\\\[^\\]+\\[^\\]+\\?)", path)
    return unc.group(1) if unc else ""


def _disk(raw: Mapping[str, Any], volumes: Sequence[tuple[str, str]], device: str) -> DiskInfo:
    controller = _enum_name(_get(raw, "ControllerType"), _CONTROLLER_TYPES).upper() or "SCSI"
    number = _int(_get(raw, "ControllerNumber"))
    location = _int(_get(raw, "ControllerLocation"))
    bus = controller.lower()
    path = _str(_get(raw, "Path"))
    disk_number = _get(raw, "DiskNumber")
    extra: dict[str, Any] = {
        "controller_type": controller,
        "controller_number": number,
        "controller_location": location,
    }
    disk = DiskInfo(target=f"{bus}{number}:{location}", bus=bus, device=device, extra=extra)
    if device == "dvd":
        disk.source_type = "file" if path else ""
        disk.source = path
        disk.read_only = True
        disk.driver_format = "iso" if path.lower().endswith(".iso") else ""
        return disk
    if disk_number is not None and disk_number != "":
        # A pass-through disk: Path is a description such as "Disk 2 40.00 GB Bus 0 Lun 1 Target 0".
        disk.source_type = "block"
        disk.source = f"PhysicalDisk{_int(disk_number)}"
        extra["kind"] = "pass-through"
        extra["disk_number"] = _int(disk_number)
        if path:
            extra["description"] = path
        return disk
    disk.source_type = "file"
    disk.source = path
    extra["kind"] = "vhd"
    extra["host_volume"] = _volume_for(path, volumes) if path else ""
    vhd = _get(raw, "Vhd")
    if isinstance(vhd, dict):
        if _get(vhd, "Error"):
            extra["vhd_error"] = _one_line(_str(_get(vhd, "Error")))
        fmt = _enum_name(_get(vhd, "VhdFormat"), _VHD_FORMATS)
        disk.driver_format = fmt.lower() if fmt.upper() in ("VHD", "VHDX", "VHDSET") else ""
        extra["vhd_format"] = fmt
        extra["vhd_type"] = _enum_name(_get(vhd, "VhdType"), _VHD_TYPES)
        extra["size_bytes"] = _int(_get(vhd, "Size"))
        extra["file_size_bytes"] = _int(_get(vhd, "FileSize"))
        parent = _str(_get(vhd, "ParentPath"))
        chain = [_str(p) for p in _as_list(_get(vhd, "Chain")) if _str(p)]
        if parent and (not chain or chain[0].lower() != parent.lower()):
            chain.insert(0, parent)
        disk.backing_chain = chain
        if parent:
            extra["parent_path"] = parent
    if not disk.driver_format:
        suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
        disk.driver_format = {"vhd": "vhd", "vhdx": "vhdx", "avhd": "vhd", "avhdx": "vhdx"}.get(suffix, "")
    return disk


def _nic(raw: Mapping[str, Any]) -> NicInfo:
    switch = _str(_get(raw, "SwitchName"))
    ips = [_str(ip) for ip in _as_list(_get(raw, "IPAddresses")) if _str(ip)]
    extra: dict[str, Any] = {"ip_addresses": ips}
    if _get(raw, "Name") is not None:
        extra["name"] = _str(_get(raw, "Name"))
    if _get(raw, "DynamicMacAddressEnabled") is not None:
        extra["dynamic_mac"] = _bool(_get(raw, "DynamicMacAddressEnabled"))
    return NicInfo(
        mac=_mac(_get(raw, "MacAddress")),
        type="switch" if switch else "",
        source=switch,
        model="synthetic",
        extra=extra,
    )


def _vm(raw: Mapping[str, Any], host_uid: str, volumes: Sequence[tuple[str, str]]) -> VMInfo:
    state, reason = vm_state_name(_get(raw, "State"))
    status = _str(_get(raw, "Status"))
    dynamic = _bool(_get(raw, "DynamicMemoryEnabled"))
    startup = _int(_get(raw, "MemoryStartup"))
    assigned = _int(_get(raw, "MemoryAssigned"))
    maximum = _int(_get(raw, "MemoryMaximum"))
    heartbeat = _enum_name(_get(raw, "Heartbeat"), _HEARTBEAT)
    generation = _int(_get(raw, "Generation")) or 1
    current_checkpoint = _str(_get(raw, "ParentSnapshotName"))

    disks = [_disk(d, volumes, "disk") for d in _as_list(_get(raw, "HardDrives")) if isinstance(d, dict)]
    disks += [_disk(d, volumes, "dvd") for d in _as_list(_get(raw, "DvdDrives")) if isinstance(d, dict)]
    snapshots: list[SnapshotInfo] = []
    checkpoints: list[dict[str, Any]] = []
    for snap in _as_list(_get(raw, "Snapshots")):
        if not isinstance(snap, dict):
            continue
        name = _str(_get(snap, "Name"))
        created = _datetime(_get(snap, "CreationTime"))
        parent = _str(_get(snap, "ParentSnapshotName"))
        snapshots.append(
            SnapshotInfo(
                name=name,
                created=created,
                description=_str(_get(snap, "Notes")),
                parent=parent,
                current=bool(current_checkpoint) and name == current_checkpoint,
            )
        )
        checkpoints.append(
            {
                "name": name,
                "id": _guid(_get(snap, "Id")),
                "type": _enum_name(_get(snap, "SnapshotType"), _SNAPSHOT_TYPES),
                "parent": parent,
                "created": created.isoformat() if created else None,
                "disks": [_str(p) for p in _as_list(_get(snap, "HardDrives")) if _str(p)],
            }
        )

    extra: dict[str, Any] = {
        "generation": generation,
        "version": _str(_get(raw, "Version")),
        "uptime_seconds": _seconds(_get(raw, "Uptime")),
        "heartbeat": heartbeat,
        "clustered": _bool(_get(raw, "IsClustered")),
        "notes": _str(_get(raw, "Notes")),
        "memory_startup_bytes": startup,
        "memory_assigned_bytes": assigned,
        "dynamic_memory": dynamic,
        "normalized_state": normalized_state(state),
        "critical": state.lower().endswith("critical"),
    }
    if dynamic:
        extra["memory_minimum_bytes"] = _int(_get(raw, "MemoryMinimum"))
        extra["memory_maximum_bytes"] = maximum
    for key, name in (("config_path", "Path"), ("status", "Status")):
        if _str(_get(raw, name)):
            extra[key] = _str(_get(raw, name))
    start_action = _enum_name(_get(raw, "AutomaticStartAction"), _START_ACTIONS)
    if start_action:
        extra["automatic_start_action"] = start_action
    if checkpoints:
        extra["checkpoints"] = checkpoints
    if current_checkpoint:
        extra["current_checkpoint"] = current_checkpoint

    return VMInfo(
        uuid=_guid(_get(raw, "Id")),
        name=_str(_get(raw, "Name")),
        state=state,
        state_reason=reason or (status if status and status.lower() != "operating normally" else ""),
        host_uid=host_uid,
        vcpus=_int(_get(raw, "ProcessorCount")),
        max_vcpus=_int(_get(raw, "ProcessorCount")),
        # A VM that is off has no memory assigned; show what it starts with.
        memory_bytes=assigned or startup,
        max_memory_bytes=(maximum if dynamic and maximum else startup),
        os_type="hvm",
        machine=f"generation {generation}",
        autostart=start_action in ("Start", "StartIfRunning"),
        domain_type="hyperv",
        description=_str(_get(raw, "Notes")),
        disks=disks,
        nics=[_nic(n) for n in _as_list(_get(raw, "NetworkAdapters")) if isinstance(n, dict)],
        snapshots=snapshots,
        extra=extra,
    )


def parse_discovery(text: str, *, host: str = "") -> InventorySnapshot:
    """The :class:`InventorySnapshot` for the JSON printed by :data:`DISCOVERY_SCRIPT`.

    ``host`` (the name the provider connects to) names the host when the output does not.
    """
    what = f"discovery of {host}" if host else "discovery"
    document = _load_json(text, what)
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        raise DriverError(
            f"{what}: unexpected JSON from PowerShell (expected an object, got {type(document).__name__})"
        )
    _raise_script_error(document, what)
    raw_host = _get(document, "Host")
    if not isinstance(raw_host, dict):
        raise DriverError(f"{what}: the PowerShell output has no Host object")

    volumes_raw = [v for v in _as_list(_get(document, "Volumes")) if isinstance(v, dict)]
    volumes = [(_str(_get(v, "Name")), _str(_get(v, "FileSystem"))) for v in volumes_raw if _str(_get(v, "Name"))]

    computer = _str(_get(raw_host, "ComputerName")) or host
    fqdn = _str(_get(raw_host, "FullyQualifiedDomainName"))
    hostname = fqdn if "." in fqdn else computer
    host_uid = hostname.lower()
    if not host_uid:
        raise DriverError(f"{what}: the PowerShell output names no host")
    version = _str(_get(raw_host, "OSVersion")) or _str(_get(raw_host, "EnvironmentOSVersion"))
    host_facts = HostFacts(
        uid=host_uid,
        hostname=hostname,
        hypervisor_type="Hyper-V",
        hypervisor_version=version,
        cpu_arch="x86_64",
        cpu_count=_int(_get(raw_host, "LogicalProcessorCount")),
        memory_bytes=_int(_get(raw_host, "MemoryCapacity")),
        extra={
            "computer_name": computer,
            "os": _str(_get(raw_host, "OSCaption")),
            "os_build": _str(_get(raw_host, "OSBuildNumber")),
            "virtual_hard_disk_path": _str(_get(raw_host, "VirtualHardDiskPath")),
            "virtual_machine_path": _str(_get(raw_host, "VirtualMachinePath")),
        },
    )

    pools = [
        PoolInfo(
            uuid=_str(_get(v, "DeviceID")) or f"{host_uid}:{_str(_get(v, 'Name'))}",
            name=_str(_get(v, "Name")),
            type="csv" if _str(_get(v, "FileSystem")).upper() == "CSVFS" else "volume",
            target_path=_str(_get(v, "Name")),
            capacity_bytes=_int(_get(v, "Capacity")),
            available_bytes=_int(_get(v, "FreeSpace")),
            allocation_bytes=max(_int(_get(v, "Capacity")) - _int(_get(v, "FreeSpace")), 0),
            state="running",
            active=True,
            extra={"label": _str(_get(v, "Label")), "file_system": _str(_get(v, "FileSystem")), "host_uid": host_uid},
        )
        for v in volumes_raw
        if _str(_get(v, "Name"))
    ]

    snapshot = InventorySnapshot(hosts=[host_facts], pools=pools)
    for raw_vm in _as_list(_get(document, "VMs")):
        if not isinstance(raw_vm, dict):
            continue
        vm_id = _guid(_get(raw_vm, "Id"))
        if _get(raw_vm, "Error"):
            logger.warning("%s: VM %s could not be read: %s", what, vm_id, _one_line(_str(_get(raw_vm, "Error"))))
            if vm_id:
                snapshot.skipped_vm_uuids.append(vm_id)
            continue
        if not _GUID.match(vm_id):
            raise DriverError(f"{what}: a VM in the PowerShell output has no valid Id ({vm_id or 'none'})")
        snapshot.vms.append(_vm(raw_vm, host_uid, volumes))
    return snapshot


def parse_vm_state(text: str, vm_id: str) -> VMStateReading:
    """The :class:`VMStateReading` for the JSON printed by :data:`VM_STATE_SCRIPT`."""
    what = f"reading the state of VM {vm_id}"
    document = _load_json(text, what)
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        raise DriverError(f"{what}: unexpected JSON from PowerShell")
    _raise_script_error(document, what)
    state, reason = vm_state_name(_get(document, "State"))
    status = _str(_get(document, "Status"))
    return VMStateReading(
        uuid=_guid(_get(document, "Id")) or vm_id,
        state=state,
        state_reason=reason or (status if status and status.lower() != "operating normally" else ""),
    )


# --- the driver -------------------------------------------------------------------------------------


def _escape_wildcards(name: str) -> str:
    """``[WildcardPattern]::Escape``: Get-VMSnapshot -Name treats * ? [ ] as wildcards."""
    return re.sub(r"([`*?\[\]])", r"`\1", name)


class HyperVDriver:
    """One Hyper-V server, reached over WinRM (see the module docstring)."""

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
            )
        self.transport: PowerShellTransport = transport

    def discover(self) -> InventorySnapshot:
        """Everything on the host, in one PowerShell round trip."""
        return parse_discovery(self.transport.run_script(DISCOVERY_SCRIPT, {}), host=self.host)

    def vm_state(self, vm_id: str) -> VMStateReading:
        vm_id = self._vm_id(vm_id)
        return parse_vm_state(self.transport.run_script(VM_STATE_SCRIPT, {"VmId": vm_id}), vm_id)

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


CAPTURED_PREFIX = "captured://"


def transport_for_uri(uri: str) -> PowerShellTransport | None:
    """The transport for a provider's host: None (WinRM to the server) for a real host name.

    ``captured:///abs/path.json`` is a captured host (the demo's Hyper-V servers): the process's
    :class:`~vom.simulators.hyperv_replay.ReplayTransport` for that discovery output.
    """
    if not uri.startswith(CAPTURED_PREFIX):
        return None
    path = uri.removeprefix(CAPTURED_PREFIX)
    if not path.startswith("/"):
        raise DriverError(f"invalid captured host {uri!r}: expected captured:///absolute/path/to/output.json")
    if not os.path.isfile(path):
        raise DriverError(f"cannot connect to {uri}: captured output {path} does not exist")
    from vom.simulators.hyperv_replay import replay_transport

    return replay_transport(path)
