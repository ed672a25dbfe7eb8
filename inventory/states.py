"""Platform VM states mapped to the console's one normalized state.

Each platform keeps its own words (``VirtualMachine.raw_state``); filters, charts and the allowed
operations use the normalized ``VirtualMachine.State``. The tables are documented in docs/STATES.md.
"""

from __future__ import annotations

from inventory.models import VirtualMachine

State = VirtualMachine.State

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

STATE_TABLES: dict[str, dict[str, str]] = {"libvirt": LIBVIRT_STATES}


def normalize(kind: str, raw_state: str, reason: str = "") -> str:
    """The normalized state for a platform's raw state name (unknown names map to UNKNOWN)."""
    if kind == "libvirt" and raw_state == "paused" and reason in LIBVIRT_PAUSED_REASONS:
        return LIBVIRT_PAUSED_REASONS[reason]
    return STATE_TABLES.get(kind, {}).get(raw_state, State.UNKNOWN)
