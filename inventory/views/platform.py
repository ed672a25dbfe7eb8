"""How each platform's own facts (the ``details`` JSON of hosts, VMs, disks, NICs) are shown.

Known keys are turned into labelled facts in the platform's words; every other key is kept for the
generic "Platform details" table, so nothing a driver found is hidden. Pure functions of the row: no
queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inventory.models import Provider
from vom.templatetags.vom_tags import bytes_h, duration_s

Fact = tuple[str, str]
# Keys that only repeat what a column or another fact already says, or link ids the page has no use for.
_NOISE = frozenset({"platform", "normalized_state"})


@dataclass
class PlatformFacts:
    """Labelled facts, and the remaining raw keys (as text) for the generic table."""

    facts: list[Fact] = field(default_factory=list)
    rest: list[Fact] = field(default_factory=list)


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _yes_no(value)
    if isinstance(value, list | dict):
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            return ", ".join(str(v) for v in value) or "—"
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _bytes(value: Any) -> str:
    return bytes_h(value) if value else "—"


Formatter = Callable[[Mapping[str, Any]], str | None]


def _key(name: str, fmt: Callable[[Any], str] = _text) -> Formatter:
    """The fact for one key; None (fact left out) when the key is absent."""
    return lambda d: fmt(d[name]) if name in d else None


def _rhev_topology(d: Mapping[str, Any]) -> str | None:
    if "cpu_sockets" not in d:
        return None
    return (
        f"{d.get('cpu_sockets', 0)} socket(s) × {d.get('cpu_cores', 0)} core(s) × {d.get('cpu_threads', 0)} thread(s)"
    )


def _rhev_ha(d: Mapping[str, Any]) -> str | None:
    if "ha_enabled" not in d:
        return None
    if d["ha_enabled"]:
        return f"enabled (priority {d.get('ha_priority', 0)})"
    return "disabled"


def _hyperv_memory(d: Mapping[str, Any]) -> str | None:
    if "memory_startup_bytes" not in d:
        return None
    text = f"startup {_bytes(d['memory_startup_bytes'])}"
    if d.get("memory_assigned_bytes"):
        text += f", assigned {_bytes(d['memory_assigned_bytes'])}"
    if d.get("dynamic_memory"):
        text += (
            f"; dynamic {_bytes(d.get('memory_minimum_bytes'))} – {_bytes(d.get('memory_maximum_bytes'))}"
            if d.get("memory_maximum_bytes")
            else "; dynamic"
        )
    else:
        text += "; static"
    return text


def _uptime(value: Any) -> str:
    try:
        seconds = int(float(value))
    except (TypeError, ValueError):
        return "—"
    if seconds < 3600:
        return duration_s(seconds) if seconds else "—"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return (f"{days} d " if days else "") + f"{hours} h {rest // 60:02d} min"


# (label, formatter, keys it consumes) per platform, in display order.
_VM_FACTS: dict[str, list[tuple[str, Formatter, tuple[str, ...]]]] = {
    Provider.Kind.RHEV: [
        ("Data center", _key("datacenter"), ("datacenter", "datacenter_id")),
        ("Cluster", _key("cluster"), ("cluster", "cluster_id")),
        ("Template", _key("template"), ("template", "template_id")),
        ("OS", _key("os"), ("os",)),
        ("High availability", _rhev_ha, ("ha_enabled", "ha_priority")),
        ("CPU topology", _rhev_topology, ("cpu_sockets", "cpu_cores", "cpu_threads")),
        ("VM type", _key("vm_type"), ("vm_type",)),
        ("Stateless", _key("stateless"), ("stateless",)),
        ("Created", _key("created"), ("created",)),
    ],
    Provider.Kind.HYPERV: [
        ("Generation", _key("generation"), ("generation",)),
        ("Configuration version", _key("version"), ("version",)),
        ("Heartbeat", _key("heartbeat"), ("heartbeat",)),
        ("Uptime", _key("uptime_seconds", _uptime), ("uptime_seconds",)),
        ("Clustered", _key("clustered"), ("clustered",)),
        (
            "Memory",
            _hyperv_memory,
            (
                "memory_startup_bytes",
                "memory_assigned_bytes",
                "dynamic_memory",
                "memory_minimum_bytes",
                "memory_maximum_bytes",
            ),
        ),
        ("Automatic start", _key("automatic_start_action"), ("automatic_start_action",)),
        ("Status", _key("status"), ("status",)),
        ("Notes", _key("notes"), ("notes",)),
        ("Configuration path", _key("config_path"), ("config_path",)),
    ],
}

_HOST_FACTS: dict[str, list[tuple[str, Formatter, tuple[str, ...]]]] = {
    Provider.Kind.RHEV: [
        ("Data center", _key("datacenter"), ("datacenter", "datacenter_id")),
        ("Cluster", _key("cluster"), ("cluster", "cluster_id")),
        ("Manager status", _key("status"), ("status", "status_detail")),
        ("Address", _key("address"), ("address",)),
        ("SPM", _key("spm"), ("spm",)),
    ],
    Provider.Kind.HYPERV: [
        ("Operating system", _key("os"), ("os",)),
        ("OS build", _key("os_build"), ("os_build",)),
        ("Default VHD path", _key("virtual_hard_disk_path"), ("virtual_hard_disk_path",)),
        ("Default VM path", _key("virtual_machine_path"), ("virtual_machine_path",)),
    ],
}


def _split(
    details: Mapping[str, Any] | None, table: list[tuple[str, Formatter, tuple[str, ...]]], skip: frozenset[str]
) -> PlatformFacts:
    details = details or {}
    result = PlatformFacts()
    used: set[str] = set(_NOISE) | skip
    for label, formatter, keys in table:
        value = formatter(details)
        if value is not None:
            result.facts.append((label, value))
            used.update(keys)
    result.rest = [(key, _text(value)) for key, value in sorted(details.items()) if key not in used]
    return result


def vm_facts(vm: Any) -> PlatformFacts:
    """A VM's platform facts; Hyper-V checkpoints are skipped (the snapshot table lists them)."""
    skip = frozenset({"checkpoints", "current_checkpoint", "critical"})
    return _split(vm.details, _VM_FACTS.get(vm.provider.kind, []), skip)


def host_facts(host: Any) -> PlatformFacts:
    return _split(host.details, _HOST_FACTS.get(host.provider.kind, []), frozenset())


def _size_pair(used: Any, size: Any, used_word: str) -> str:
    return f"{_bytes(used)} {used_word} of {_bytes(size)}"


def disk_facts(disk: Any, kind: str) -> PlatformFacts:
    """One disk's facts for the disk table: Hyper-V VHD or pass-through, RHEV image or direct LUN."""
    d: Mapping[str, Any] = disk.details or {}
    facts: list[Fact] = []
    used: set[str] = set()
    if kind == Provider.Kind.HYPERV:
        used |= {"controller_type", "controller_number", "controller_location"}
        if d.get("kind") == "pass-through":
            facts.append(("Pass-through", f"host disk {d.get('disk_number', '?')}"))
            used |= {"kind", "disk_number", "description"}
            if d.get("description"):
                facts.append(("Host disk", str(d["description"])))
        elif d.get("kind") == "vhd":
            used |= {"kind", "vhd_format", "vhd_type", "size_bytes", "file_size_bytes", "parent_path", "host_volume"}
            vhd = " ".join(str(x) for x in (d.get("vhd_format"), d.get("vhd_type")) if x)
            facts.append(("VHD", vhd.lower() if vhd else "—"))
            if "size_bytes" in d:
                facts.append(("File size", _size_pair(d.get("file_size_bytes"), d.get("size_bytes"), "on disk")))
            if d.get("parent_path"):
                facts.append(("Parent", str(d["parent_path"])))
            if d.get("host_volume"):
                facts.append(("Host volume", str(d["host_volume"])))
        if d.get("vhd_error"):
            facts.append(("VHD error", str(d["vhd_error"])))
            used.add("vhd_error")
    elif kind == Provider.Kind.RHEV:
        used |= {"storage_domain", "storage_domain_id", "format", "sparse", "provisioned_size", "actual_size"}
        used |= {"lun_ids", "luns", "lun_storage_type", "disk_id"}
        if d.get("alias"):
            facts.append(("Alias", str(d["alias"])))
            used.add("alias")
        if d.get("storage_domain"):
            facts.append(("Storage domain", str(d["storage_domain"])))
        if "format" in d:
            allocation = "thin (sparse)" if d.get("sparse") else "preallocated"
            facts.append(("Format", f"{d['format']}, {allocation}"))
        if "provisioned_size" in d:
            facts.append(("Size", _size_pair(d.get("actual_size"), d.get("provisioned_size"), "actual")))
        if d.get("lun_ids"):
            lun_type = f" ({d['lun_storage_type']})" if d.get("lun_storage_type") else ""
            facts.append(("LUN" + ("s" if len(d["lun_ids"]) > 1 else "") + lun_type, ", ".join(d["lun_ids"])))
        if d.get("bootable"):
            facts.append(("Bootable", "yes"))
        used.add("bootable")
    rest = [(key, _text(value)) for key, value in sorted(d.items()) if key not in used]
    return PlatformFacts(facts=facts, rest=rest)


def nic_facts(nic: Any, kind: str) -> PlatformFacts:
    d: Mapping[str, Any] = nic.details or {}
    facts: list[Fact] = []
    used: set[str] = set()
    if kind == Provider.Kind.RHEV:
        used |= {"vnic_profile", "vnic_profile_id", "network", "network_id", "plugged", "linked", "nic_id"}
        if d.get("name"):
            facts.append(("NIC", str(d["name"])))
            used.add("name")
        if d.get("vnic_profile") or d.get("network"):
            facts.append(("Profile", f"{d.get('vnic_profile') or '—'} on {d.get('network') or '—'}"))
        if "plugged" in d:
            facts.append(
                ("Link", f"{'plugged' if d['plugged'] else 'unplugged'}, {'up' if d.get('linked') else 'down'}")
            )
    elif kind == Provider.Kind.HYPERV:
        used |= {"ip_addresses", "name", "dynamic_mac"}
        if d.get("name"):
            facts.append(("Adapter", str(d["name"])))
        if d.get("ip_addresses"):
            facts.append(("IP", ", ".join(d["ip_addresses"])))
        if "dynamic_mac" in d:
            facts.append(("MAC", "dynamic" if d["dynamic_mac"] else "static"))
    rest = [(key, _text(value)) for key, value in sorted(d.items()) if key not in used]
    return PlatformFacts(facts=facts, rest=rest)
