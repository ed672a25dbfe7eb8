"""Inventory objects as oVirt REST API v4 XML, element for element as the API model names them.

Each entity carries ``id`` and ``href`` attributes; references to other entities are empty elements
with both; sub-collections appear as ``<link rel=… href=…>`` unless the request asked to follow them.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from vom.simulators.rhev.model import (
    BLANK_TEMPLATE_ID,
    Cluster,
    DataCenter,
    Disk,
    DiskAttachment,
    Host,
    Inventory,
    LogicalUnit,
    Network,
    Nic,
    StorageDomain,
    Template,
    Vm,
    VnicProfile,
)

API = "/ovirt-engine/api"

VM_ACTIONS = ("start", "stop", "shutdown", "suspend", "migrate", "reboot")


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        el.text = value.isoformat(timespec="milliseconds")
    else:
        el.text = str(value)
    return el


def _ref(parent: ET.Element, tag: str, collection: str, obj_id: str) -> ET.Element:
    return ET.SubElement(parent, tag, {"href": f"{API}/{collection}/{obj_id}", "id": obj_id})


def _entity(tag: str, href: str, obj_id: str) -> ET.Element:
    return ET.Element(tag, {"href": href, "id": obj_id})


def _links(el: ET.Element, href: str, rels: Iterable[str]) -> None:
    for rel in rels:
        ET.SubElement(el, "link", {"href": f"{href}/{rel}", "rel": rel})


def _actions(el: ET.Element, href: str, names: Iterable[str]) -> None:
    actions = ET.SubElement(el, "actions")
    for name in names:
        ET.SubElement(actions, "link", {"href": f"{href}/{name}", "rel": name})


def _version(parent: ET.Element, major: int, minor: int) -> None:
    ver = ET.SubElement(parent, "version")
    _text(ver, "major", major)
    _text(ver, "minor", minor)


def _full_version(parent: ET.Element, tag: str, full: str) -> None:
    ver = ET.SubElement(parent, tag)
    nums = [int(p) for p in full.split("-")[0].split(".")[:4] if p.isdigit()] + [0, 0, 0, 0]
    _text(ver, "build", nums[3])
    _text(ver, "full_version", full)
    _text(ver, "major", nums[0])
    _text(ver, "minor", nums[1])
    _text(ver, "revision", nums[2])


def datacenter(dc: DataCenter) -> ET.Element:
    href = f"{API}/datacenters/{dc.id}"
    el = _entity("data_center", href, dc.id)
    _actions(el, href, ("cleanfinishedtasks",))
    _text(el, "name", dc.name)
    _text(el, "description", dc.description)
    _links(el, href, ("clusters", "networks", "permissions", "quotas", "storagedomains"))
    _text(el, "local", False)
    _text(el, "quota_mode", "disabled")
    _text(el, "status", dc.status)
    _text(el, "storage_format", "v5")
    supported = ET.SubElement(el, "supported_versions")
    _version(supported, *dc.version)
    _version(el, *dc.version)
    return el


def cluster(cl: Cluster) -> ET.Element:
    href = f"{API}/clusters/{cl.id}"
    el = _entity("cluster", href, cl.id)
    _actions(el, href, ("resetemulatedmachine", "syncallnetworks", "upgrade"))
    _text(el, "name", cl.name)
    _text(el, "description", cl.description)
    _links(el, href, ("affinitygroups", "cpuprofiles", "glusterhooks", "networks", "permissions"))
    _text(el, "ballooning_enabled", True)
    _text(el, "bios_type", "q35_ovmf")
    cpu = ET.SubElement(el, "cpu")
    _text(cpu, "architecture", "x86_64")
    _text(cpu, "type", cl.cpu_type)
    _text(el, "firewall_type", "firewalld")
    _text(el, "ha_reservation", False)
    _text(el, "switch_type", "legacy")
    _version(el, 4, 7)
    _text(el, "virt_service", True)
    _ref(el, "data_center", "datacenters", cl.datacenter_id)
    return el


def host(h: Host) -> ET.Element:
    href = f"{API}/hosts/{h.id}"
    el = _entity("host", href, h.id)
    _actions(el, href, ("activate", "deactivate", "fence", "refresh"))
    _text(el, "name", h.name)
    _text(el, "comment", "")
    _links(el, href, ("nics", "numanodes", "statistics", "storage", "tags", "networkattachments"))
    _text(el, "address", h.address)
    cpu = ET.SubElement(el, "cpu")
    _text(cpu, "name", h.cpu_name)
    _text(cpu, "speed", h.speed_mhz)
    topo = ET.SubElement(cpu, "topology")
    _text(topo, "cores", h.cores)
    _text(topo, "sockets", h.sockets)
    _text(topo, "threads", h.threads)
    _text(cpu, "type", h.cpu_type)
    _text(el, "kdump_status", "disabled")
    _full_version(el, "libvirt_version", h.libvirt_version)
    _text(el, "max_scheduling_memory", h.memory - 8 * 1024**3)
    _text(el, "memory", h.memory)
    os_el = ET.SubElement(el, "os")
    _text(os_el, "type", "RHEL")
    _full_version(os_el, "version", "8.7 - 1.el8")
    _text(el, "port", 54321)
    _text(el, "protocol", "stomp")
    spm = ET.SubElement(el, "spm")
    _text(spm, "priority", 5)
    _text(spm, "status", h.spm)
    _text(el, "status", h.status)
    _text(el, "type", h.type)
    _text(el, "update_available", False)
    _full_version(el, "version", h.version)
    _ref(el, "cluster", "clusters", h.cluster_id)
    return el


def _logical_unit(parent: ET.Element, lun: LogicalUnit) -> None:
    el = ET.SubElement(parent, "logical_unit", {"id": lun.id})
    if lun.address:
        _text(el, "address", lun.address)
    _text(el, "discard_max_size", 0)
    _text(el, "lun_mapping", lun.lun_mapping)
    _text(el, "paths", lun.paths)
    if lun.address:
        _text(el, "port", lun.port)
        _text(el, "portal", f"{lun.address}:{lun.port},1")
    _text(el, "product_id", lun.product_id)
    _text(el, "serial", lun.serial)
    _text(el, "size", lun.size)
    _text(el, "status", "used")
    if lun.storage_domain_id:
        _text(el, "storage_domain_id", lun.storage_domain_id)
    if lun.target:
        _text(el, "target", lun.target)
    _text(el, "vendor_id", lun.vendor_id)
    if lun.volume_group_id:
        _text(el, "volume_group_id", lun.volume_group_id)


def storage_domain(sd: StorageDomain) -> ET.Element:
    href = f"{API}/storagedomains/{sd.id}"
    el = _entity("storage_domain", href, sd.id)
    _actions(el, href, ("isattached", "refreshluns", "updateovfstore"))
    _text(el, "name", sd.name)
    _text(el, "description", sd.description)
    _links(el, href, ("diskprofiles", "disks", "permissions", "storageconnections", "templates", "vms"))
    _text(el, "available", sd.available)
    _text(el, "backup", False)
    _text(el, "block_size", 512)
    _text(el, "committed", sd.committed)
    _text(el, "critical_space_action_blocker", 5)
    _text(el, "discard_after_delete", False)
    _text(el, "external_status", "ok")
    _text(el, "master", sd.master)
    _text(el, "status", sd.status)
    storage = ET.SubElement(el, "storage")
    if sd.storage_type in ("nfs", "glusterfs", "posixfs", "localfs"):
        _text(storage, "address", sd.address)
        if sd.storage_type == "nfs":
            _text(storage, "nfs_version", "auto")
        _text(storage, "path", sd.path)
        _text(storage, "type", sd.storage_type)
    else:
        _text(storage, "type", sd.storage_type)
        vg = ET.SubElement(storage, "volume_group", {"id": sd.volume_group_id})
        lus = ET.SubElement(vg, "logical_units")
        for lun in sd.luns:
            _logical_unit(lus, lun)
    _text(el, "storage_format", "v5")
    _text(el, "supports_discard", sd.storage_type != "nfs")
    _text(el, "type", sd.type)
    _text(el, "used", sd.used)
    _text(el, "warning_low_space_indicator", 10)
    _text(el, "wipe_after_delete", False)
    dcs = ET.SubElement(el, "data_centers")
    _ref(dcs, "data_center", "datacenters", sd.datacenter_id)
    return el


def network(net: Network) -> ET.Element:
    href = f"{API}/networks/{net.id}"
    el = _entity("network", href, net.id)
    _text(el, "name", net.name)
    _text(el, "description", net.description)
    _links(el, href, ("networklabels", "permissions", "vnicprofiles"))
    _text(el, "mtu", net.mtu)
    _text(el, "port_isolation", False)
    _text(el, "stp", False)
    usages = ET.SubElement(el, "usages")
    for usage in net.usages:
        _text(usages, "usage", usage)
    if net.vlan is not None:
        ET.SubElement(el, "vlan", {"id": str(net.vlan)})
    _ref(el, "data_center", "datacenters", net.datacenter_id)
    return el


def vnic_profile(prof: VnicProfile) -> ET.Element:
    href = f"{API}/vnicprofiles/{prof.id}"
    el = _entity("vnic_profile", href, prof.id)
    _text(el, "name", prof.name)
    _links(el, href, ("permissions",))
    pt = ET.SubElement(el, "pass_through")
    _text(pt, "mode", "disabled")
    _text(el, "port_mirroring", False)
    _ref(el, "network", "networks", prof.network_id)
    return el


def template(tpl: Template) -> ET.Element:
    href = f"{API}/templates/{tpl.id}"
    el = _entity("template", href, tpl.id)
    _actions(el, href, ("export",))
    _text(el, "name", tpl.name)
    _text(el, "description", tpl.description)
    _links(el, href, ("diskattachments", "nics", "permissions", "tags", "watchdogs"))
    cpu = ET.SubElement(el, "cpu")
    _text(cpu, "architecture", "x86_64")
    topo = ET.SubElement(cpu, "topology")
    for tag in ("cores", "sockets", "threads"):
        _text(topo, tag, 1)
    _text(el, "creation_time", dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
    _text(el, "memory", tpl.memory)
    os_el = ET.SubElement(el, "os")
    _text(os_el, "type", tpl.os_type)
    _text(el, "status", "ok")
    _text(el, "type", "server")
    version = ET.SubElement(el, "version")
    _text(version, "version_name", tpl.version_name)
    _text(version, "version_number", 1)
    _ref(version, "base_template", "templates", tpl.id)
    if tpl.cluster_id:
        _ref(el, "cluster", "clusters", tpl.cluster_id)
    return el


def disk(d: Disk) -> ET.Element:
    href = f"{API}/disks/{d.id}"
    el = _entity("disk", href, d.id)
    _actions(el, href, ("copy", "export", "move", "refreshlun", "sparsify"))
    _text(el, "name", d.alias)
    _text(el, "description", d.description)
    _links(el, href, ("permissions", "disksnapshots", "statistics"))
    _text(el, "actual_size", d.actual_size)
    _text(el, "alias", d.alias)
    _text(el, "content_type", "data")
    _text(el, "format", d.format)
    _text(el, "propagate_errors", False)
    _text(el, "provisioned_size", d.provisioned_size)
    _text(el, "shareable", d.shareable)
    _text(el, "sparse", d.sparse)
    _text(el, "status", d.status)
    _text(el, "storage_type", d.storage_type)
    _text(el, "total_size", d.actual_size)
    _text(el, "wipe_after_delete", False)
    if d.lun is not None:
        _text(el, "sgio", "unfiltered")
        lun_storage = ET.SubElement(el, "lun_storage", {"id": d.lun.id})
        lus = ET.SubElement(lun_storage, "logical_units")
        _logical_unit(lus, d.lun)
        _text(lun_storage, "type", d.lun_type)
    else:
        _text(el, "image_id", d.id[::-1])
        sds = ET.SubElement(el, "storage_domains")
        _ref(sds, "storage_domain", "storagedomains", d.storage_domain_id)
    return el


def disk_attachment(vm: Vm, att: DiskAttachment, inv: Inventory, follow_disk: bool) -> ET.Element:
    href = f"{API}/vms/{vm.id}/diskattachments/{att.disk_id}"
    el = _entity("disk_attachment", href, att.disk_id)
    _text(el, "active", att.active)
    _text(el, "bootable", att.bootable)
    _text(el, "interface", att.interface)
    if att.logical_name and vm.host_id:
        _text(el, "logical_name", att.logical_name)
    _text(el, "pass_discard", att.pass_discard)
    _text(el, "read_only", att.read_only)
    _text(el, "uses_scsi_reservation", False)
    if follow_disk:
        el.append(disk(inv.disks[att.disk_id]))
    else:
        _ref(el, "disk", "disks", att.disk_id)
    _ref(el, "vm", "vms", vm.id)
    return el


def nic(vm: Vm, n: Nic) -> ET.Element:
    href = f"{API}/vms/{vm.id}/nics/{n.id}"
    el = _entity("nic", href, n.id)
    _actions(el, href, ("activate", "deactivate"))
    _text(el, "name", n.name)
    _links(el, href, ("networkfilterparameters", "reporteddevices", "statistics"))
    _text(el, "interface", n.interface)
    _text(el, "linked", n.linked)
    mac = ET.SubElement(el, "mac")
    _text(mac, "address", n.mac)
    _text(el, "plugged", n.plugged)
    _text(el, "synced", True)
    if n.vnic_profile_id:
        _ref(el, "vnic_profile", "vnicprofiles", n.vnic_profile_id)
    _ref(el, "vm", "vms", vm.id)
    return el


def vm(v: Vm, inv: Inventory, follow: frozenset[str] = frozenset()) -> ET.Element:
    href = f"{API}/vms/{v.id}"
    el = _entity("vm", href, v.id)
    _actions(el, href, VM_ACTIONS)
    _text(el, "name", v.name)
    _text(el, "description", v.description)
    _text(el, "comment", "")
    rels = ["affinitylabels", "applications", "cdroms", "diskattachments", "graphicsconsoles", "nics", "permissions"]
    rels += ["reporteddevices", "sessions", "snapshots", "statistics", "tags", "watchdogs"]
    if "disk_attachments" in follow:
        rels.remove("diskattachments")
    if "nics" in follow:
        rels.remove("nics")
    _links(el, href, rels)
    bios = ET.SubElement(el, "bios")
    _text(bios, "type", "q35_ovmf")
    cpu = ET.SubElement(el, "cpu")
    _text(cpu, "architecture", "x86_64")
    topo = ET.SubElement(cpu, "topology")
    _text(topo, "cores", v.cores)
    _text(topo, "sockets", v.sockets)
    _text(topo, "threads", v.threads)
    _text(el, "cpu_shares", 0)
    _text(el, "creation_time", v.creation_time)
    _text(el, "delete_protected", False)
    ha = ET.SubElement(el, "high_availability")
    _text(ha, "enabled", v.ha_enabled)
    _text(ha, "priority", v.ha_priority)
    _text(el, "memory", v.memory)
    policy = ET.SubElement(el, "memory_policy")
    _text(policy, "guaranteed", v.memory)
    _text(policy, "max", v.max_memory)
    _text(el, "migration_downtime", -1)
    os_el = ET.SubElement(el, "os")
    boot = ET.SubElement(os_el, "boot")
    devices = ET.SubElement(boot, "devices")
    _text(devices, "device", "hd")
    _text(os_el, "type", v.os_type)
    _text(el, "stateless", False)
    _text(el, "type", v.type)
    _text(el, "next_run_configuration_exists", False)
    _text(el, "run_once", False)
    _text(el, "status", v.status)
    if v.stop_reason:
        _text(el, "stop_reason", v.stop_reason)
    _ref(el, "cluster", "clusters", v.cluster_id)
    if v.host_id:
        _ref(el, "host", "hosts", v.host_id)
    _ref(el, "original_template", "templates", BLANK_TEMPLATE_ID)
    _ref(el, "template", "templates", v.template_id)
    if "disk_attachments" in follow:
        atts = ET.SubElement(el, "disk_attachments")
        for att in v.disk_attachments:
            atts.append(disk_attachment(v, att, inv, "disk_attachments.disk" in follow))
    if "nics" in follow:
        nics = ET.SubElement(el, "nics")
        for n in v.nics:
            nics.append(nic(v, n))
    return el


def collection(tag: str, items: Iterable[ET.Element]) -> ET.Element:
    el = ET.Element(tag)
    el.extend(items)
    return el


def fault(reason: str, detail: str) -> ET.Element:
    el = ET.Element("fault")
    _text(el, "reason", reason)
    _text(el, "detail", detail)
    return el


_ROOT_LINKS = (
    "clusters", "datacenters", "disks", "events", "hosts", "networks", "storagedomains", "templates",
    "vms", "vnicprofiles",
)  # fmt: skip
_SEARCHABLE = frozenset({"clusters", "datacenters", "disks", "events", "hosts", "storagedomains", "templates", "vms"})


def api_root(inv: Inventory, user: str) -> ET.Element:
    el = ET.Element("api")
    for rel in _ROOT_LINKS:
        ET.SubElement(el, "link", {"href": f"{API}/{rel}", "rel": rel})
        if rel in _SEARCHABLE:
            ET.SubElement(el, "link", {"href": f"{API}/{rel}?search={{query}}", "rel": f"{rel}/search"})
    info = ET.SubElement(el, "product_info")
    _text(info, "instance_id", "6f3bd7a2-5e25-11ee-9c4f-00163e5a1c21")
    _text(info, "name", "oVirt Engine")
    _text(info, "vendor", "ovirt.org")
    _full_version(info, "version", inv.product_version)
    special = ET.SubElement(el, "special_objects")
    _ref(special, "blank_template", "templates", BLANK_TEMPLATE_ID)
    _ref(special, "root_tag", "tags", "00000000-0000-0000-0000-000000000000")
    summary = ET.SubElement(el, "summary")
    counts = (
        ("hosts", sum(h.status == "up" for h in inv.hosts.values()), len(inv.hosts)),
        ("storage_domains", sum(s.status == "active" for s in inv.storage_domains.values()), len(inv.storage_domains)),
        ("users", len(inv.users), len(inv.users)),
        ("vms", sum(v.status == "up" for v in inv.vms.values()), len(inv.vms)),
    )
    for tag, active, total in counts:
        part = ET.SubElement(summary, tag)
        _text(part, "active", active)
        _text(part, "total", total)
    _text(el, "time", dt.datetime.now(dt.UTC))
    user_id = (
        "fdfc627c-d875-11e0-90f0-83df133b58cc" if user == "admin@internal" else "b2f8a5f0-0000-4000-8000-000000000001"
    )
    _ref(el, "authenticated_user", "users", user_id)
    _ref(el, "effective_user", "users", user_id)
    return el


def to_bytes(el: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(el, encoding="utf-8")
