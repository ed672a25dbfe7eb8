"""Captured Hyper-V hosts: a :class:`~inventory.drivers.hyperv.PowerShellTransport` that answers
from a discovery JSON file (what :data:`~inventory.drivers.hyperv.DISCOVERY_SCRIPT` printed on a
real server) and applies operations to it the way Hyper-V would.

No Windows host is reachable from the development machines, so the demo's Hyper-V servers and the
tests of successive operations use this transport (a provider URI ``captured:///abs/path.json``).

- ``run_script(DISCOVERY_SCRIPT, {})`` prints the current document; ``run_script(VM_STATE_SCRIPT,
  {"VmId": …})`` prints that VM's ``{Id, Name, State, Status}``.
- ``invoke(cmdlet, parameters, source=[("Get-VM", {"Id": …}), ("Get-VMSnapshot", {"Name": …})])``
  changes the document: ``Start-VM`` → Running, ``Stop-VM`` (graceful, needs the guest's shutdown
  integration service) and ``Stop-VM -TurnOff`` → Off, ``Save-VM`` → Saved, ``Suspend-VM`` →
  Paused, ``Resume-VM`` → Running, ``Restart-VM`` → Running (uptime reset), ``Checkpoint-VM`` → a
  new checkpoint whose disks become the parents of new ``.avhdx`` differencing disks,
  ``Restore-VMSnapshot`` → the VM on a new differencing disk of the checkpoint's disks (Saved when
  the checkpoint was taken by this replay from a running VM, otherwise Off), ``Remove-VMSnapshot`` →
  the checkpoint is gone and its differencing disk merged into its parent.
- What Hyper-V refuses ends as a one-line :class:`DriverError` shaped like the real transport's
  (``"Save-VM failed on HV01: 'web01' failed to change state. The operation cannot be performed
  while the object is in its current state."``). What Hyper-V only warns about (start a running VM,
  stop one that is off) changes nothing and succeeds, as with the real cmdlets; the warning is kept
  in :attr:`ReplayTransport.warnings`.

- ``run_script(HOST_VMS_SCRIPT, {"VmId": …})`` prints the host's identity and its VMs' ``{Id, Name,
  State}`` (only that VM with a ``VmId``), for the environment check and "where does this VM run".

State lives on the host, like a real server's, whichever process looks: the document and what the
replay remembers beside it (a VM's addresses while it is off, when each VM was started, the state
each checkpoint was taken in) are saved after every operation that changes something to a JSON
sidecar in the simulator state directory (never next to the capture; see
:mod:`vom.simulators.libvirt_node` for the directory, the lock and the atomic writes), and every
process reads the sidecar again when it changed. A capture rewritten since its sidecar was made
wins over the sidecar. :func:`forget_replay_hosts` drops the state, so the capture is read again.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import os
import re
import threading
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inventory.drivers.base import DriverError
from inventory.drivers.hyperv import (
    _HEARTBEAT,
    _VM_STATES,
    CAPTURED_PREFIX,
    DISCOVERY_SCRIPT,
    HOST_VMS_SCRIPT,
    VM_STATE_SCRIPT,
    PipelineSource,
    _as_list,
    _get,
    _guid,
    _str,
    vm_state_name,
)
from vom.simulators.state import (
    Stamp,
    file_stamp,
    host_lock,
    prune_orphan_sidecars,
    sidecar_paths,
    simulator_state_dir,
    write_atomically,
)

__all__ = ["ReplayTransport", "forget_replay_hosts", "replay_transport", "transport_for_uri"]

logger = logging.getLogger(__name__)

_STATE_NUMBERS = {name: number for number, name in _VM_STATES.items()}
_FAILED_STATE = (
    "'{name}' failed to change state. The operation cannot be performed while the object is in its current state."
)
_EMPTY_VHD_BYTES = 64 * 1024 * 1024  # a VHD smaller than this holds no installed guest OS
_AVHD_BYTES = 4 * 1024 * 1024  # a fresh differencing disk


@dataclass
class _Host:
    path: str
    stamp: tuple[int, int]
    document: Any  # the parsed JSON, or None when the file is not JSON
    text: str
    numeric: bool  # the capture writes enums as numbers (Windows PowerShell 5.1 without the casts)
    timespan_objects: bool  # Uptime as a TimeSpan object (Windows PowerShell 5.1), else "d.hh:mm:ss"
    ms_dates: bool  # dates as \/Date(ms)\/ (Windows PowerShell 5.1), else ISO 8601
    # per VM id: what a running VM had (heartbeat, IP addresses, memory) while it is off, its start
    # time (epoch seconds: the uptime is right in every process)
    remembered: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    checkpoint_states: dict[str, str] = field(default_factory=dict)  # checkpoint id -> VM state when taken
    sidecar_stamp: Stamp | None = None  # the sidecar accounted for: loaded, or ignored as stale


_lock = threading.RLock()
_hosts: dict[str, _Host] = {}
_SIDECAR_VERSION = 1


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        raise DriverError(f"captured Hyper-V output {path} does not exist") from None
    return (st.st_mtime_ns, st.st_size)


def _load(path: str, stamp: tuple[int, int]) -> _Host:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except OSError as err:
        raise DriverError(f"cannot read captured Hyper-V output {path}: {err.strerror or err}") from None
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        document = None  # discovery prints it as it is (the parser reports it); operations refuse
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    numeric = timespans = False
    if isinstance(document, dict):
        vms = [vm for vm in _as_list(_get(document, "VMs")) if isinstance(vm, dict)]
        _put(document, "VMs", vms)
        numeric = any(isinstance(_get(vm, "State"), int) for vm in vms)
        timespans = any(isinstance(_get(vm, "Uptime"), dict) for vm in vms)
    return _Host(
        path=path,
        stamp=stamp,
        document=document,
        text=text,
        numeric=numeric,
        timespan_objects=timespans,
        ms_dates="/Date(" in text,
    )


_state_paths: dict[tuple[Path, str], tuple[Path, Path]] = {}


def _state_files(path: str) -> tuple[Path, Path]:
    """(sidecar, lock file) of the captured host ``path`` (a real path)."""
    key = (simulator_state_dir(), path)
    if key not in _state_paths:
        _state_paths[key] = sidecar_paths("hyperv", path, ".json")
    return _state_paths[key]


def _load_saved(path: str, stamp: tuple[int, int], sidecar: Path) -> _Host | None:
    """The host as its sidecar saved it; None when there is none. A sidecar made from another
    version of the capture is stale: the capture is read, and the sidecar not looked at again."""
    try:
        with open(sidecar, "rb") as handle:
            st = os.fstat(handle.fileno())
            sidecar_stamp: Stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            saved = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("ignoring the saved state of captured host %s: %s", path, err)
        host = _load(path, stamp)
        host.sidecar_stamp = file_stamp(sidecar)
        return host
    if not isinstance(saved, dict) or saved.get("version") != _SIDECAR_VERSION or saved.get("source") != path:
        saved = {}
    if saved.get("source_stamp") != list(stamp):
        host = _load(path, stamp)  # the capture changed since: it wins
        host.sidecar_stamp = sidecar_stamp
        return host
    return _Host(
        path=path,
        stamp=stamp,
        document=saved["document"],
        text="",
        numeric=bool(saved["numeric"]),
        timespan_objects=bool(saved["timespan_objects"]),
        ms_dates=bool(saved["ms_dates"]),
        remembered=saved["remembered"],
        started={vm_id: float(when) for vm_id, when in saved["started"].items()},
        checkpoint_states=saved["checkpoint_states"],
        sidecar_stamp=sidecar_stamp,
    )


def _source_of(sidecar: Path) -> str | None:
    try:
        with open(sidecar, "rb") as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return None
    source = saved.get("source") if isinstance(saved, dict) else None
    return source if isinstance(source, str) else None


def _saved_state(host: _Host) -> str:
    """What the sidecar of ``host`` holds: the document and what the replay remembers beside it."""
    return json.dumps(
        {
            "version": _SIDECAR_VERSION,
            "source": host.path,
            "source_stamp": list(host.stamp),
            "numeric": host.numeric,
            "timespan_objects": host.timespan_objects,
            "ms_dates": host.ms_dates,
            "remembered": host.remembered,
            "started": host.started,
            "checkpoint_states": host.checkpoint_states,
            "document": host.document,
        },
        separators=(",", ":"),
    )


def _host(path: str) -> _Host:
    """The host of capture ``path`` (caller holds ``_lock``), read again when its sidecar or the
    capture changed (two ``os.stat``)."""
    stamp = _stamp(path)
    sidecar = _state_files(path)[0]
    host = _hosts.get(path)
    if host is not None and host.stamp == stamp and host.sidecar_stamp == file_stamp(sidecar):
        return host
    host = _load_saved(path, stamp, sidecar) or _load(path, stamp)
    _hosts[path] = host
    return host


def forget_replay_hosts(path: str | None = None) -> None:
    """Drop the state (of every host this process knows, or of ``path``): the next call reads the
    capture again, in every process."""
    with _lock:
        if path is None:
            paths = list(_hosts)
            _hosts.clear()
        else:
            paths = [os.path.realpath(path)]
            _hosts.pop(paths[0], None)
    for known in paths:
        sidecar, lock = _state_files(known)
        if file_stamp(sidecar) is None:
            continue
        with host_lock(lock):  # not amid another's change; a waiter locks a new file
            for file in (sidecar, lock):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(file)


def replay_transport(path: str) -> ReplayTransport:
    """The transport for a captured output file (DriverError when it does not exist)."""
    return ReplayTransport(path)


# --- document helpers ---------------------------------------------------------------------------


def _put(obj: dict[str, Any], name: str, value: object) -> None:
    """Set a property, keeping the capture's spelling of its name when it has one."""
    for key in obj:
        if key.lower() == name.lower():
            obj[key] = value
            return
    obj[name] = value


def _state(vm: dict[str, Any]) -> str:
    return vm_state_name(_get(vm, "State"))[0]


def _ms_date(when: dt.datetime) -> str:
    return f"/Date({int(when.timestamp() * 1000)})/"


def _timespan(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{secs:02d}" if days else f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _uptime_value(timespan_objects: bool, seconds: int) -> object:
    if not timespan_objects:
        return _timespan(seconds)
    days, rest = divmod(max(seconds, 0), 86400)
    return {
        "Ticks": seconds * 10_000_000,
        "Days": days,
        "Hours": rest // 3600,
        "Milliseconds": 0,
        "Minutes": rest % 3600 // 60,
        "Seconds": rest % 60,
        "TotalDays": seconds / 86400,
        "TotalHours": seconds / 3600,
        "TotalMilliseconds": seconds * 1000.0,
        "TotalMinutes": seconds / 60,
        "TotalSeconds": float(seconds),
    }


_WILDCARD = re.compile(r"`(.)|([*?])|(\[[^\]]*\])|(.)", re.DOTALL)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """A PowerShell wildcard pattern (``*``, ``?``, ``[a-c]``, backtick escapes) as a regex."""
    parts: list[str] = []
    for escaped, star, group, plain in _WILDCARD.findall(pattern):
        if escaped:
            parts.append(re.escape(escaped))
        elif star:
            parts.append(".*" if star == "*" else ".")
        elif group:
            parts.append("[" + re.escape(group[1:-1]).replace("\\-", "-") + "]")
        else:
            parts.append(re.escape(plain))
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _has_wildcards(pattern: str) -> bool:
    return bool(re.search(r"(?<!`)[*?\[]", pattern))


def _disk_chain(drive: dict[str, Any]) -> list[str] | None:
    """[current path, parent, grandparent …] of a virtual hard disk; None for a pass-through disk."""
    if _get(drive, "DiskNumber") not in (None, ""):
        return None
    path = _str(_get(drive, "Path"))
    if not path:
        return None
    vhd = _get(drive, "Vhd")
    chain: list[str] = []
    if isinstance(vhd, dict):
        chain = [_str(p) for p in _as_list(_get(vhd, "Chain")) if _str(p)]
        parent = _str(_get(vhd, "ParentPath"))
        if parent and (not chain or chain[0].lower() != parent.lower()):
            chain.insert(0, parent)
    return [path, *chain]


def _index(chain: list[str], paths: list[str]) -> int:
    lowered = {p.lower() for p in paths}
    return next((i for i, p in enumerate(chain) if p.lower() in lowered), -1)


# --- the transport ------------------------------------------------------------------------------


class ReplayTransport:
    """A captured Hyper-V server (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)
        self.warnings: list[str] = []
        with _lock:
            _host(self.path)  # the file must exist

    def __repr__(self) -> str:
        return f"ReplayTransport({self.path!r})"

    def close(self) -> None:
        """Nothing to close: the state stays with the process, like a server's."""

    # -- scripts

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        with _lock:
            host = _host(self.path)
            if script == DISCOVERY_SCRIPT:
                if not isinstance(host.document, dict):
                    return host.text
                return json.dumps(self._rendered(host), separators=(",", ":"))
            if script == VM_STATE_SCRIPT:
                vm_id = parameters.get("VmId", "")
                vm = self._vm(host, {"Id": vm_id}, "PowerShell script")
                return json.dumps(
                    {
                        "Id": _guid(_get(vm, "Id")),
                        "Name": _str(_get(vm, "Name")),
                        "State": _state(vm),  # the script writes "$($vm.State)": always the name
                        "Status": _str(_get(vm, "Status")) or "Operating normally",
                    }
                )
            if script == HOST_VMS_SCRIPT:
                return self._host_vms(host, parameters.get("VmId", ""))
        raise DriverError(f"PowerShell script failed on {self._server(host)}: the captured host has no answer for it")

    @staticmethod
    def _host_vms(host: _Host, vm_id: str) -> str:
        """What :data:`HOST_VMS_SCRIPT` prints: the host's identity, and its VMs (or only ``vm_id``)."""
        document = host.document
        raw_host = _get(document, "Host") if isinstance(document, dict) else None
        if not isinstance(raw_host, dict):
            return host.text  # not a discovery (a script error): the parser reports it
        wanted = _guid(vm_id) if vm_id else ""
        vms = [
            vm
            for vm in _as_list(_get(document, "VMs"))
            if isinstance(vm, dict) and (not wanted or _guid(_get(vm, "Id")) == wanted)
        ]
        names = ("ComputerName", "FullyQualifiedDomainName", "OSCaption", "OSVersion")
        return json.dumps(
            {
                "Host": {name: _get(raw_host, name) for name in names},
                # The script writes "$($_.State)": always the name. Get-VM lists a VM the discovery
                # could not read too.
                "VMs": [
                    {"Id": _guid(_get(vm, "Id")), "Name": _str(_get(vm, "Name")), "State": _state(vm)} for vm in vms
                ],
            },
            separators=(",", ":"),
        )

    def _rendered(self, host: _Host) -> dict[str, Any]:
        """The document as the script prints it now (uptimes of VMs started on the host advance)."""
        document: dict[str, Any] = copy.deepcopy(host.document)
        now = time.time()
        for vm in _get(document, "VMs") or []:
            started = host.started.get(_guid(_get(vm, "Id")))
            if started is not None and _state(vm) in ("Running", "Paused"):
                _put(vm, "Uptime", _uptime_value(host.timespan_objects, int(now - started)))
        return document

    # -- cmdlets

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: PipelineSource = ()) -> None:
        """Run ``cmdlet`` on the VM piped from ``source`` (see the module docstring); the host's state
        is saved when it changed, under the host's lock, so no two processes lose each other's change."""
        sidecar, lock = _state_files(self.path)
        held = contextlib.ExitStack()
        try:
            held.enter_context(host_lock(lock))
        except OSError as err:  # the state directory is not writable
            raise DriverError(f"{cmdlet} failed on {self.path}: cannot lock the captured host: {err}") from err
        with held, _lock:
            host = _host(self.path)
            before = _saved_state(host) if isinstance(host.document, dict) else ""
            try:
                self._invoke(host, cmdlet, parameters, source)
            finally:
                if before:
                    self._write_state(host, before, sidecar)

    @staticmethod
    def _write_state(host: _Host, before: str, sidecar: Path) -> None:
        after = _saved_state(host)
        if after == before:
            return  # nothing changed (a refusal, or a warning only)
        new = file_stamp(sidecar) is None
        try:
            host.sidecar_stamp = write_atomically(sidecar, after.encode())
        except OSError as err:
            _hosts.pop(host.path, None)  # not kept here either: the next call reads what others see
            raise DriverError(f"cannot save the state of captured host {host.path}: {err}") from err
        if new:
            prune_orphan_sidecars(_source_of, "hyperv-*.json")  # of hosts whose capture is gone

    def _invoke(self, host: _Host, cmdlet: str, parameters: dict[str, object], source: PipelineSource) -> None:
        if not isinstance(host.document, dict):
            raise DriverError(f"{cmdlet} failed on {self.path}: the captured output is not a discovery document")
        stages = list(source)
        if not stages or stages[0][0].lower() != "get-vm":
            raise DriverError(f"{cmdlet} failed on {self._server(host)}: the captured host needs the VM from Get-VM")
        vm = self._vm(host, stages[0][1], cmdlet)
        checkpoints: list[dict[str, Any]] | None = None
        if len(stages) > 1 and stages[1][0].lower() == "get-vmsnapshot":
            checkpoints = self._checkpoints(host, vm, stages[1][1], cmdlet)
        handler = _CMDLETS.get(cmdlet.lower())
        if handler is None:
            raise DriverError(f"{cmdlet} failed on {self._server(host)}: the captured host cannot replay {cmdlet}")
        problem = handler(self, host, vm, parameters, checkpoints)
        if problem:
            raise DriverError(f"{cmdlet} failed on {self._server(host)}: {problem}")

    @staticmethod
    def _server(host: _Host) -> str:
        document = host.document if isinstance(host.document, dict) else {}
        raw_host = _get(document, "Host")
        return _str(_get(raw_host, "ComputerName")) if isinstance(raw_host, dict) else os.path.basename(host.path)

    def _vm(self, host: _Host, bound: Any, cmdlet: str) -> dict[str, Any]:
        vms: list[dict[str, Any]] = _get(host.document, "VMs") if isinstance(host.document, dict) else []
        vm_id = _str(_get(bound, "Id"))
        if vm_id:
            wanted = _guid(vm_id)
            found = [v for v in vms or [] if _guid(_get(v, "Id")) == wanted and not _get(v, "Error")]
            what = f'id "{vm_id}"'
        else:
            name = _str(_get(bound, "Name"))
            found = [v for v in vms or [] if _str(_get(v, "Name")).lower() == name.lower()]
            what = f'name "{name}"'
        if not found:
            action = "PowerShell script failed" if cmdlet == "PowerShell script" else f"{cmdlet} failed"
            raise DriverError(
                f"{action} on {self._server(host)}: Hyper-V was unable to find a virtual machine with {what}."
            )
        return found[0]

    def _checkpoints(self, host: _Host, vm: dict[str, Any], bound: Any, cmdlet: str) -> list[dict[str, Any]]:
        pattern = _str(_get(bound, "Name"))
        snaps = [s for s in _as_list(_get(vm, "Snapshots")) if isinstance(s, dict)]
        matched = [s for s in snaps if _wildcard(pattern).match(_str(_get(s, "Name")))] if pattern else snaps
        if not matched and pattern and not _has_wildcards(pattern):
            raise DriverError(
                f"{cmdlet} failed on {self._server(host)}: Unable to find a snapshot matching the given criteria."
            )
        return matched

    # -- state changes

    def _set_state(self, host: _Host, vm: dict[str, Any], state: str) -> None:
        vm_id = _guid(_get(vm, "Id"))
        before = _state(vm)
        memo = host.remembered.setdefault(vm_id, {})
        running_before = before in ("Running", "Paused")
        running_after = state in ("Running", "Paused")
        nics = [n for n in _as_list(_get(vm, "NetworkAdapters")) if isinstance(n, dict)]
        if running_before and not running_after:
            memo["heartbeat"] = _get(vm, "Heartbeat")
            memo["memory"] = _get(vm, "MemoryAssigned")
            memo["ips"] = [_get(n, "IPAddresses") for n in nics]
            for nic in nics:
                _put(nic, "IPAddresses", [])
            _put(vm, "MemoryAssigned", 0)
            _put(vm, "Heartbeat", None)
            _put(vm, "Uptime", _uptime_value(host.timespan_objects, 0))
            host.started.pop(vm_id, None)
        if running_after and not running_before:
            _put(vm, "MemoryAssigned", memo.get("memory") or _get(vm, "MemoryStartup") or 0)
            heartbeat = memo.get("heartbeat") or self._heartbeat(host, vm)
            _put(vm, "Heartbeat", heartbeat)
            for nic, ips in zip(nics, memo.get("ips") or [], strict=False):
                _put(nic, "IPAddresses", ips if ips is not None else [])
            host.started[vm_id] = time.time()
        if nics:
            _put(vm, "NetworkAdapters", nics)
        _put(vm, "State", _STATE_NUMBERS.get(state, state) if host.numeric else state)
        _put(vm, "Status", "Operating normally")

    def _heartbeat(self, host: _Host, vm: dict[str, Any]) -> object:
        """The heartbeat of a VM first started here: none from an empty disk (no guest OS)."""
        sizes = []
        for drive in _as_list(_get(vm, "HardDrives")):
            if isinstance(drive, dict):
                vhd = _get(drive, "Vhd")
                passthrough = _get(drive, "DiskNumber") not in (None, "")
                sizes.append(
                    _EMPTY_VHD_BYTES if passthrough else int(_get(vhd, "FileSize") or 0) if isinstance(vhd, dict) else 0
                )
        name = "OkApplicationsUnknown" if any(s >= _EMPTY_VHD_BYTES for s in sizes) else "NoContact"
        return _HEARTBEAT.index(name) if host.numeric else name

    def _has_guest_shutdown(self, vm: dict[str, Any]) -> bool:
        heartbeat = _get(vm, "Heartbeat")
        if isinstance(heartbeat, int):
            heartbeat = _HEARTBEAT[heartbeat] if 0 <= heartbeat < len(_HEARTBEAT) else ""
        return _str(heartbeat).startswith("Ok")

    def _warn(self, vm: dict[str, Any]) -> None:
        self.warnings.append(f"The virtual machine '{_str(_get(vm, 'Name'))}' is already in the specified state.")

    def _start(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        state = _state(vm)
        if state == "Running":
            self._warn(vm)
            return None
        if state not in ("Off", "Saved", "Paused"):
            return _FAILED_STATE.format(name=_str(_get(vm, "Name")))
        self._set_state(host, vm, "Running")
        return None

    def _stop(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        state = _state(vm)
        name = _str(_get(vm, "Name"))
        if state == "Off":
            self._warn(vm)
            return None
        if params.get("TurnOff") or state == "Saved":  # a saved VM: -Force deletes the saved state
            self._set_state(host, vm, "Off")
            return None
        if state != "Running":
            return _FAILED_STATE.format(name=name)
        if not self._has_guest_shutdown(vm):
            return (
                f"'{name}' failed to shut down. The virtual machine cannot be shut down because the "
                "shutdown integration service is not available. Use -TurnOff to turn it off."
            )
        self._set_state(host, vm, "Off")
        return None

    def _transition(self, host: _Host, vm: dict[str, Any], *, allowed: tuple[str, ...], target: str) -> str | None:
        """Move ``vm`` to ``target`` from one of ``allowed``; already there is only a warning, as in Hyper-V."""
        state = _state(vm)
        if state == target:
            self._warn(vm)
            return None
        if state not in allowed:
            return _FAILED_STATE.format(name=_str(_get(vm, "Name")))
        self._set_state(host, vm, target)
        return None

    def _save(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        return self._transition(host, vm, allowed=("Running", "Paused"), target="Saved")

    def _suspend(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        return self._transition(host, vm, allowed=("Running",), target="Paused")

    def _resume(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        return self._transition(host, vm, allowed=("Paused",), target="Running")

    def _restart(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        if _state(vm) not in ("Running", "Paused"):
            return _FAILED_STATE.format(name=_str(_get(vm, "Name")))
        self._set_state(host, vm, "Running")
        host.started[_guid(_get(vm, "Id"))] = time.time()
        return None

    # -- checkpoints

    def _new_avhd(self, host: _Host, parent_chain: list[str], size: object) -> tuple[str, dict[str, Any]]:
        """A new differencing disk on top of ``parent_chain`` (parent first)."""
        parent = parent_chain[0]
        folder, _, file_name = parent.rpartition("\\")
        stem, _, ext = file_name.rpartition(".")
        stem = re.sub(r"_[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$", "", stem)
        vhdx = ext.lower() in ("vhdx", "avhdx")
        path = f"{folder}\\{stem}_{str(uuid_module.uuid4()).upper()}.{'avhdx' if vhdx else 'avhd'}"
        vhd = {
            "VhdFormat": (3 if vhdx else 2) if host.numeric else ("VHDX" if vhdx else "VHD"),
            "VhdType": 4 if host.numeric else "Differencing",
            "ParentPath": parent,
            "Size": size,
            "FileSize": _AVHD_BYTES,
            "Chain": list(parent_chain),
        }
        return path, vhd

    def _set_disk(self, drive: dict[str, Any], path: str, vhd: dict[str, Any]) -> None:
        _put(drive, "Path", path)
        _put(drive, "Vhd", vhd)

    def _checkpoint(self, host: _Host, vm: dict[str, Any], params: dict[str, object], _c: object) -> str | None:
        name = (
            _str(params.get("SnapshotName"))
            or f"{_str(_get(vm, 'Name'))} - ({dt.datetime.now():%m/%d/%Y - %I:%M:%S %p})"
        )
        drives = [d for d in _as_list(_get(vm, "HardDrives")) if isinstance(d, dict)]
        if any(_disk_chain(d) is None and _get(d, "DiskNumber") not in (None, "") for d in drives):
            return (
                f"Checkpoint operation failed. '{_str(_get(vm, 'Name'))}' could not initiate a checkpoint operation: "
                "checkpoints are not supported for virtual machines with pass-through disks."
            )
        now = dt.datetime.now(dt.UTC)
        snapshot_id = str(uuid_module.uuid4())
        disk_paths: list[str] = []
        for drive in drives:
            chain = _disk_chain(drive)
            if not chain:
                continue
            disk_paths.append(chain[0])
            vhd = _get(drive, "Vhd")
            size = _get(vhd, "Size") if isinstance(vhd, dict) else 0
            self._set_disk(drive, *self._new_avhd(host, chain, size))
        snapshot = {
            "Name": name,
            "Id": snapshot_id,
            "CreationTime": _ms_date(now) if host.ms_dates else now.isoformat().replace("+00:00", "Z"),
            "ParentSnapshotName": _str(_get(vm, "ParentSnapshotName")) or None,
            "SnapshotType": 0 if host.numeric else "Standard",
            "Notes": "",
            "HardDrives": disk_paths,
        }
        host.checkpoint_states[snapshot_id] = _state(vm)
        _put(vm, "HardDrives", drives)
        _put(vm, "Snapshots", [*(s for s in _as_list(_get(vm, "Snapshots")) if isinstance(s, dict)), snapshot])
        _put(vm, "ParentSnapshotName", name)
        return None

    def _restore(
        self, host: _Host, vm: dict[str, Any], params: dict[str, object], checkpoints: list[dict[str, Any]] | None
    ) -> str | None:
        if not checkpoints:
            return None  # Get-VMSnapshot matched nothing (a wildcard): nothing piped in, nothing done
        checkpoint = checkpoints[-1]
        paths = [_str(p) for p in _as_list(_get(checkpoint, "HardDrives")) if _str(p)]
        drives = [d for d in _as_list(_get(vm, "HardDrives")) if isinstance(d, dict)]
        for drive in drives:
            chain = _disk_chain(drive)
            if not chain:
                continue
            at = _index(chain, paths)
            if at < 0:
                continue
            vhd = _get(drive, "Vhd")
            size = _get(vhd, "Size") if isinstance(vhd, dict) else 0
            self._set_disk(drive, *self._new_avhd(host, chain[at:], size))
        _put(vm, "HardDrives", drives)
        _put(vm, "ParentSnapshotName", _str(_get(checkpoint, "Name")))
        taken = host.checkpoint_states.get(_guid(_get(checkpoint, "Id")), "Off")
        self._set_state(host, vm, "Saved" if taken in ("Running", "Paused") else "Off")
        return None

    def _remove(
        self, host: _Host, vm: dict[str, Any], params: dict[str, object], checkpoints: list[dict[str, Any]] | None
    ) -> str | None:
        for checkpoint in checkpoints or []:
            self._remove_one(vm, checkpoint)
        return None

    def _remove_one(self, vm: dict[str, Any], checkpoint: dict[str, Any]) -> None:
        name = _str(_get(checkpoint, "Name"))
        parent = _str(_get(checkpoint, "ParentSnapshotName")) or None
        paths = [_str(p) for p in _as_list(_get(checkpoint, "HardDrives")) if _str(p)]
        snaps = [s for s in _as_list(_get(vm, "Snapshots")) if isinstance(s, dict) and s is not checkpoint]
        drives = [d for d in _as_list(_get(vm, "HardDrives")) if isinstance(d, dict)]
        for drive in drives:
            chain = _disk_chain(drive)
            if not chain:
                continue
            at = _index(chain, paths)
            if at < 1:
                continue
            merged = chain[at - 1]  # the differencing disk made when the checkpoint was taken: merged into its parent
            rest = chain[: at - 1] + chain[at:]
            for snap in snaps:
                kept = [_str(p) for p in _as_list(_get(snap, "HardDrives"))]
                if any(p.lower() == merged.lower() for p in kept):
                    _put(snap, "HardDrives", [chain[at] if p.lower() == merged.lower() else p for p in kept])
            vhd = _get(drive, "Vhd")
            vhd = dict(vhd) if isinstance(vhd, dict) else {}
            _put(vhd, "ParentPath", rest[1] if len(rest) > 1 else None)
            _put(vhd, "Chain", rest[1:])
            if len(rest) == 1:
                _put(vhd, "VhdType", 3 if isinstance(_get(vhd, "VhdType"), int) else "Dynamic")
            self._set_disk(drive, rest[0], vhd)
        for snap in snaps:
            if _str(_get(snap, "ParentSnapshotName")) == name:
                _put(snap, "ParentSnapshotName", parent)
        if _str(_get(vm, "ParentSnapshotName")) == name:
            _put(vm, "ParentSnapshotName", parent)
        _put(vm, "HardDrives", drives)
        _put(vm, "Snapshots", snaps)


_CMDLETS = {
    "start-vm": ReplayTransport._start,
    "stop-vm": ReplayTransport._stop,
    "save-vm": ReplayTransport._save,
    "suspend-vm": ReplayTransport._suspend,
    "resume-vm": ReplayTransport._resume,
    "restart-vm": ReplayTransport._restart,
    "checkpoint-vm": ReplayTransport._checkpoint,
    "restore-vmsnapshot": ReplayTransport._restore,
    "remove-vmsnapshot": ReplayTransport._remove,
}


def transport_for_uri(uri: str) -> ReplayTransport | None:
    """The transport for a provider's host: None (WinRM to the server) for a real host name.

    ``captured:///abs/path.json`` is a captured host (the demo's Hyper-V servers): the process's
    :class:`ReplayTransport` for that discovery output. The provider services hand it to the driver
    (``inventory.services.providers.provider_driver``): the drivers never import a simulator.
    """
    if not uri.startswith(CAPTURED_PREFIX):
        return None
    path = uri.removeprefix(CAPTURED_PREFIX)
    if not path.startswith("/"):
        raise DriverError(f"invalid captured host {uri!r}: expected captured:///absolute/path/to/output.json")
    if not os.path.isfile(path):
        raise DriverError(f"cannot connect to {uri}: captured output {path} does not exist")
    return replay_transport(path)
