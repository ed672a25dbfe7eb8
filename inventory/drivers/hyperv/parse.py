"""What Hyper-V's PowerShell printed, as plain data.

:func:`parse_discovery` turns the JSON of :data:`~.scripts.DISCOVERY_SCRIPT` into an
:class:`InventorySnapshot` and survives what real ``ConvertTo-Json`` output does: a single result
as an object instead of an array, enums as numbers or names, ``/Date(ms)/`` or ISO 8601 dates,
missing optional properties. Pure functions: no transport here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from inventory.drivers.base import (
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
    "HostVMs",
    "normalized_state",
    "parse_discovery",
    "parse_host_vms",
    "parse_vm_state",
    "vm_state_name",
]

logger = logging.getLogger(__name__)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


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


def _host_name(raw_host: Mapping[str, Any], host: str) -> str:
    """The host's name: its FQDN when it has one, else its computer name (``host`` when neither).
    Lower-cased, it is the host's uid (:attr:`HostFacts.uid`)."""
    computer = _str(_get(raw_host, "ComputerName")) or host
    fqdn = _str(_get(raw_host, "FullyQualifiedDomainName"))
    return fqdn if "." in fqdn else computer


def parse_discovery(text: str, *, host: str = "", read_at: dt.datetime | None = None) -> InventorySnapshot:
    """The :class:`InventorySnapshot` for the JSON printed by :data:`DISCOVERY_SCRIPT`.

    ``host`` (the name the provider connects to) names the host when the output does not;
    ``read_at`` is when the script was started (default: now).
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
    hostname = _host_name(raw_host, host)
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
    if read_at is not None:
        snapshot.read_at = read_at
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


def parse_vm_state(text: str, vm_id: str, *, read_at: dt.datetime | None = None) -> VMStateReading:
    """The :class:`VMStateReading` for the JSON printed by :data:`VM_STATE_SCRIPT` (started at ``read_at``)."""
    what = f"reading the state of VM {vm_id}"
    document = _load_json(text, what)
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        raise DriverError(f"{what}: unexpected JSON from PowerShell")
    _raise_script_error(document, what)
    state, reason = vm_state_name(_get(document, "State"))
    status = _str(_get(document, "Status"))
    reading = VMStateReading(
        uuid=_guid(_get(document, "Id")) or vm_id,
        state=state,
        state_reason=reason or (status if status and status.lower() != "operating normally" else ""),
    )
    if read_at is not None:
        reading.read_at = read_at
    return reading


@dataclass
class HostVMs:
    """What :data:`HOST_VMS_SCRIPT` printed: the host, named as a discovery names it, and its VMs."""

    host_uid: str
    hostname: str
    product: str  # "Hyper-V on Microsoft Windows Server 2022 Datacenter 10.0.20348"
    vms: dict[str, tuple[str, str]] = field(default_factory=dict)  # VM id -> (name, Hyper-V state)


def parse_host_vms(text: str, *, host: str = "") -> HostVMs:
    """The :class:`HostVMs` for the JSON printed by :data:`HOST_VMS_SCRIPT`."""
    what = f"listing the VMs of {host}" if host else "listing the VMs"
    document = _load_json(text, what)
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, dict):
        raise DriverError(f"{what}: unexpected JSON from PowerShell")
    _raise_script_error(document, what)
    raw_host = _get(document, "Host")
    if not isinstance(raw_host, dict):
        raise DriverError(f"{what}: the PowerShell output has no Host object")
    hostname = _host_name(raw_host, host)
    os_name = " ".join(p for p in (_str(_get(raw_host, "OSCaption")), _str(_get(raw_host, "OSVersion"))) if p)
    result = HostVMs(
        host_uid=hostname.lower(), hostname=hostname, product=f"Hyper-V on {os_name}" if os_name else "Hyper-V"
    )
    for raw_vm in _as_list(_get(document, "VMs")):
        vm_id = _guid(_get(raw_vm, "Id")) if isinstance(raw_vm, dict) else ""
        if _GUID.match(vm_id):
            result.vms[vm_id] = (_str(_get(raw_vm, "Name")), vm_state_name(_get(raw_vm, "State"))[0])
    return result
