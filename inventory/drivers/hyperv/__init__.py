"""The Hyper-V driver: Microsoft Hyper-V servers reached with PowerShell Remoting over WinRM.

One :class:`HyperVDriver` talks to one Hyper-V server. Discovery is one PowerShell script
(:data:`DISCOVERY_SCRIPT`) that gathers the host, every VM (with or without a guest OS), its virtual
hard disks and pass-through disks, checkpoints and NICs, and prints them as one JSON document, so a
host of 500 VMs is one round trip. :func:`parse_discovery` turns that JSON into an
:class:`InventorySnapshot`.

Operations are single cmdlets (``Start-VM``, ``Stop-VM`` …) fed the VM by ``Get-VM -Id`` on the
pipeline, with every value bound as a parameter: user input never becomes script text.

The remote call goes through a :class:`PowerShellTransport`; :class:`PsrpTransport` is the real one
(pypsrp), tests replace it with captured output. Every failure leaves this package as a one-line
:class:`DriverError` whose ``retryable`` says whether the host could not be reached (retry later)
or the request itself failed (retrying will not help).

The parts: :mod:`.scripts` (the PowerShell), :mod:`.parse` (its JSON as dataclasses),
:mod:`.transport` (the transport protocol and WinRM), :mod:`.wsman` (pypsrp bounded in time),
:mod:`.driver` (the driver class).
"""

from inventory.drivers.hyperv.driver import HyperVDriver
from inventory.drivers.hyperv.parse import (
    _HEARTBEAT,
    _VM_STATES,
    HostVMs,
    _as_list,
    _get,
    _guid,
    _str,
    normalized_state,
    parse_discovery,
    parse_host_vms,
    parse_vm_state,
    vm_state_name,
)
from inventory.drivers.hyperv.scripts import DISCOVERY_SCRIPT, HOST_VMS_SCRIPT, VM_STATE_SCRIPT
from inventory.drivers.hyperv.transport import (
    CAPTURED_PREFIX,
    PipelineSource,
    PowerShellTransport,
    PsrpTransport,
)

# The underscored names are the parsing helpers the captured-host simulator
# (vom.simulators.hyperv_replay) shares with the parser, so both read a capture the same way.
__all__ = [
    "CAPTURED_PREFIX",
    "DISCOVERY_SCRIPT",
    "HOST_VMS_SCRIPT",
    "VM_STATE_SCRIPT",
    "_HEARTBEAT",
    "_VM_STATES",
    "HostVMs",
    "HyperVDriver",
    "PipelineSource",
    "PowerShellTransport",
    "PsrpTransport",
    "_as_list",
    "_get",
    "_guid",
    "_str",
    "normalized_state",
    "parse_discovery",
    "parse_host_vms",
    "parse_vm_state",
    "vm_state_name",
]
