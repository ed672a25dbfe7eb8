"""Platform VM states mapped to the console's one normalized state, and to availability resource states.

Each platform keeps its own words (``VirtualMachine.raw_state``); filters, charts and the allowed
operations use the normalized ``VirtualMachine.State``. ``resource_state`` gives what a KVMGuest-style
monitor reports for a VM: a resource state and a confidence level. All tables are in docs/STATES.md.
"""

from __future__ import annotations

from inventory.models import VirtualMachine

State = VirtualMachine.State

ONLINE, OFFLINE, INTENTIONAL_OFFLINE, UNKNOWN = "ONLINE", "OFFLINE", "INTENTIONAL OFFLINE", "UNKNOWN"

# libvirt virDomainState names (as the libvirt driver reports them) → normalized state.
LIBVIRT_STATES: dict[str, str] = {
    "running": State.RUNNING,
    "blocked": State.RUNNING,  # running, waiting on I/O
    "paused": State.PAUSED,
    "shutdown": State.STOPPING,  # shutting down
    "shutoff": State.STOPPED,
    "crashed": State.CRASHED,
    "pmsuspended": State.SUSPENDED,  # suspended by guest power management
    "nostate": State.UNKNOWN,
}

# Reasons that say more than the state: a paused domain that is migrating or being saved.
LIBVIRT_PAUSED_REASONS: dict[str, str] = {
    "migration": State.MIGRATING,
    "save": State.STOPPING,
    "starting_up": State.STARTING,
    "postcopy": State.MIGRATING,
}

# RHEV / oVirt REST API v4 VM status (all 15 values of the API model) → normalized state.
RHEV_STATES: dict[str, str] = {
    "up": State.RUNNING,
    "down": State.STOPPED,
    "powering_up": State.STARTING,
    "wait_for_launch": State.STARTING,
    "restoring_state": State.STARTING,
    "reboot_in_progress": State.STARTING,
    "powering_down": State.STOPPING,
    "saving_state": State.STOPPING,
    "paused": State.PAUSED,
    "suspended": State.SUSPENDED,
    "migrating": State.MIGRATING,
    "image_locked": State.UNKNOWN,
    "not_responding": State.UNKNOWN,
    "unassigned": State.UNKNOWN,
    "unknown": State.UNKNOWN,
}

# Hyper-V VMState names (Get-VM) → normalized state. "…Critical" variants (storage lost) map as
# their base state would, but see resource_state: they are UNKNOWN to a monitor.
HYPERV_STATES: dict[str, str] = {
    "running": State.RUNNING,
    "pausing": State.RUNNING,
    "off": State.STOPPED,
    "saved": State.SUSPENDED,
    "fastsaved": State.SUSPENDED,
    "paused": State.PAUSED,
    "starting": State.STARTING,
    "resuming": State.STARTING,
    "reset": State.STARTING,
    "forcereboot": State.STARTING,
    "stopping": State.STOPPING,
    "saving": State.STOPPING,
    "fastsaving": State.STOPPING,
    "forceshutdown": State.STOPPING,
}

STATE_TABLES: dict[str, dict[str, str]] = {"libvirt": LIBVIRT_STATES, "rhev": RHEV_STATES}


def normalize(kind: str, raw_state: str, reason: str = "") -> str:
    """The normalized state for a platform's raw state name (unknown names map to UNKNOWN)."""
    if kind == "libvirt" and raw_state == "paused" and reason in LIBVIRT_PAUSED_REASONS:
        return LIBVIRT_PAUSED_REASONS[reason]
    if kind == "hyperv":
        name = raw_state.lower()
        if name.endswith("critical"):
            name = name.removesuffix("critical")
        return HYPERV_STATES.get(name, State.UNKNOWN)
    return STATE_TABLES.get(kind, {}).get(raw_state, State.UNKNOWN)


# What a monitor reports for a VM, by platform: (resource state, confidence 0-100 for ONLINE).
RHEV_RESOURCE_STATES: dict[str, tuple[str, int]] = {  # as documented for the KVMGuest agent
    "wait_for_launch": (ONLINE, 10),
    "powering_up": (ONLINE, 60),
    "up": (ONLINE, 100),
    "powering_down": (ONLINE, 40),
    "paused": (ONLINE, 20),
    "restoring_state": (ONLINE, 50),
    "down": (OFFLINE, 0),
    "saving_state": (INTENTIONAL_OFFLINE, 0),
    "suspended": (INTENTIONAL_OFFLINE, 0),
    "migrating": (INTENTIONAL_OFFLINE, 0),
    "reboot_in_progress": (INTENTIONAL_OFFLINE, 0),
    "image_locked": (UNKNOWN, 0),
    "unknown": (UNKNOWN, 0),
}
LIBVIRT_RESOURCE_STATES: dict[str, tuple[str, int]] = {
    "running": (ONLINE, 100),
    "blocked": (ONLINE, 100),
    "shutdown": (ONLINE, 40),  # still running, on its way down
    "paused": (ONLINE, 20),
    "shutoff": (OFFLINE, 0),
    "crashed": (OFFLINE, 0),  # the engine faults an unexpected OFFLINE
    "pmsuspended": (INTENTIONAL_OFFLINE, 0),
    "nostate": (UNKNOWN, 0),
}
# Reasons that turn a libvirt state into an intentional one: moved away or saved on purpose.
LIBVIRT_INTENTIONAL_REASONS = {
    ("shutoff", "migrated"),
    ("shutoff", "saved"),
    ("paused", "migration"),
    ("paused", "postcopy"),
    ("paused", "save"),
}
HYPERV_RESOURCE_STATES: dict[str, tuple[str, int]] = {
    "running": (ONLINE, 100),
    "starting": (ONLINE, 60),
    "resuming": (ONLINE, 60),
    "reset": (ONLINE, 60),
    "stopping": (ONLINE, 40),
    "forceshutdown": (ONLINE, 40),  # being turned off, still running
    "forcereboot": (ONLINE, 60),
    "paused": (ONLINE, 20),
    "pausing": (ONLINE, 20),  # on its way to paused, which is ONLINE (20)
    "off": (OFFLINE, 0),
    "saved": (INTENTIONAL_OFFLINE, 0),
    "fastsaved": (INTENTIONAL_OFFLINE, 0),
    "saving": (INTENTIONAL_OFFLINE, 0),
    "fastsaving": (INTENTIONAL_OFFLINE, 0),
}


def resource_state(kind: str, raw_state: str, reason: str = "") -> tuple[str, int]:
    """The availability resource state and confidence a monitor reports for this platform state."""
    if kind == "rhev":
        return RHEV_RESOURCE_STATES.get(raw_state, (UNKNOWN, 0))
    if kind == "libvirt":
        if (raw_state, reason) in LIBVIRT_INTENTIONAL_REASONS:
            return (INTENTIONAL_OFFLINE, 0)
        return LIBVIRT_RESOURCE_STATES.get(raw_state, (UNKNOWN, 0))
    if kind == "hyperv":
        return HYPERV_RESOURCE_STATES.get(raw_state.lower(), (UNKNOWN, 0))  # "…Critical": UNKNOWN
    return (UNKNOWN, 0)
