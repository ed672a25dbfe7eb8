"""Template helpers of the inventory: VM state badges and platform facts in a line.

Markup goes through ``format_html``: names coming from hypervisors may contain ``<&>"'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

# Normalized VM state → badge colour class (styled in static/vom/vom.css).
VM_STATE_CLASS = {
    "running": "green",
    "paused": "amber",
    "suspended": "amber",
    "stopped": "grey",
    "crashed": "red",
    "unknown": "purple",
    "starting": "blue",
    "stopping": "blue",
    "migrating": "blue",
}
# Reasons a platform reports when it has none to give (libvirt's VIR_DOMAIN_*_UNKNOWN is "unknown").
UNTELLING_REASONS = {"", "unknown", "none"}


@register.filter
def telling_reason(reason: Any) -> str:
    """A VM's state reason when it says something; "" for an empty or "unknown" reason."""
    text = str(reason or "").strip()
    return "" if text.lower() in UNTELLING_REASONS else text


@register.simple_tag
def state_badge(vm: Any) -> SafeString:
    """The VM's normalized state as a coloured badge, with the platform's own word as tooltip."""
    state = str(vm.state)
    tooltip = vm.raw_state or state
    reason = telling_reason(vm.state_reason)
    if reason:
        tooltip = f"{tooltip} ({reason})"
    return format_html(
        '<span class="badge badge-{}" title="{}" data-state="{}">{}</span>',
        VM_STATE_CLASS.get(state, "purple"),
        tooltip,
        state,
        vm.get_state_display(),
    )


@register.filter
def pool_summary(pool: Any) -> str:
    """One line for the pool list: RHEV storage type and master flag, Hyper-V label and file system."""
    d: Mapping[str, Any] = pool.details or {}
    parts: list[str] = []
    if d.get("storage_type"):
        parts.append(str(d["storage_type"]))
    if d.get("master"):
        parts.append("master")
    if d.get("file_system"):
        parts.append(str(d["file_system"]))
    if d.get("label"):
        parts.append(f"“{d['label']}”")
    return " · ".join(parts)


@register.simple_tag
def force_power_off_vm(job: Any) -> Any:
    """The VM to offer a forced power-off for after ``job`` (a graceful shutdown that timed out), or None."""
    from inventory.models import VirtualMachine
    from inventory.services.operations import can_force_power_off

    if job.kind != "vm_shutdown" or job.target_id is None:
        return None
    vm = VirtualMachine.objects.select_related("provider").filter(pk=job.target_id).first()
    return vm if can_force_power_off(job, vm) else None
