"""What the manager's API answered, as plain data: hosts, VMs with disks and NICs, storage
domains and networks, from the SDK's types. Pure functions: no connection here."""

from __future__ import annotations

from typing import Any

import ovirtsdk4.types as otypes

from inventory.drivers.base import DiskInfo, HostFacts, NetworkInfo, NicInfo, PoolInfo, VMInfo

__all__ = ["host_facts", "network_info", "pool_info", "ref_id", "value", "vm_info"]

_BUS = {"virtio": "virtio", "virtio_scsi": "scsi", "ide": "ide", "sata": "sata", "spapr_vscsi": "scsi"}
_PREFIX = {"virtio": "vd", "ide": "hd"}  # everything else is a SCSI/SATA disk: sdX
_FORMAT = {"cow": "qcow2", "raw": "raw"}
_FILE_STORAGE = frozenset({"nfs", "glusterfs", "posixfs", "localfs"})


def value(enum: Any) -> str:
    """An SDK enum as the API's lowercase string ("" for None)."""
    return "" if enum is None else str(enum.value)


def ref_id(ref: Any) -> str:
    return "" if ref is None or ref.id is None else str(ref.id)


def host_facts(h: otypes.Host, where: dict[str, str]) -> HostFacts:
    cpu = h.cpu
    topo = cpu.topology if cpu else None
    sockets, cores, threads = (topo.sockets or 0, topo.cores or 0, topo.threads or 0) if topo else (0, 0, 0)
    return HostFacts(
        uid=str(h.id),
        hostname=h.name or "",
        hypervisor_type="RHEV",
        hypervisor_version=(h.version.full_version if h.version else "") or "",
        libvirt_version=(h.libvirt_version.full_version if h.libvirt_version else "") or "",
        cpu_model=(cpu.name if cpu else "") or "",
        cpu_arch=value(cpu.architecture) if cpu else "",
        cpu_sockets=sockets,
        cpu_cores=cores,
        cpu_threads=threads,
        cpu_count=sockets * cores * threads,
        cpu_mhz=int(cpu.speed or 0) if cpu else 0,
        memory_bytes=h.memory or 0,
        extra={
            **where,
            "platform": "rhev",
            "host_id": str(h.id),
            "status": value(h.status),
            "status_detail": h.status_detail or "",
            "address": h.address or "",
            "cpu_type": (cpu.type if cpu else "") or "",
            "host_type": value(h.type),
            "spm": value(h.spm.status) if h.spm else "",
        },
    )


def vm_info(
    vm: otypes.Vm,
    where: dict[str, str],
    tpl_names: dict[str, str],
    sd_names: dict[str, str],
    net_by_id: dict[str, otypes.Network],
    prof_by_id: dict[str, otypes.VnicProfile],
) -> VMInfo:
    topo = vm.cpu.topology if vm.cpu else None
    sockets, cores, threads = (topo.sockets or 1, topo.cores or 1, topo.threads or 1) if topo else (1, 1, 1)
    ha = vm.high_availability
    template_id = ref_id(vm.template)
    max_memory = (vm.memory_policy.max if vm.memory_policy else None) or vm.memory or 0
    info = VMInfo(
        uuid=str(vm.id),
        name=vm.name or "",
        state=value(vm.status) or "unknown",
        state_reason=vm.status_detail or vm.stop_reason or "",
        host_uid=ref_id(vm.host),
        vcpus=sockets * cores * threads,
        max_vcpus=sockets * cores * threads,
        memory_bytes=vm.memory or 0,
        max_memory_bytes=max_memory,
        os_type="hvm",
        arch=value(vm.cpu.architecture) if vm.cpu else "",
        machine=vm.custom_emulated_machine or "",
        domain_type="kvm",
        description=vm.description or "",
        extra={
            **where,
            "platform": "rhev",
            "template_id": template_id,
            "template": tpl_names.get(template_id, ""),
            "os": (vm.os.type if vm.os else "") or "",
            "ha_enabled": bool(ha.enabled) if ha else False,
            "ha_priority": (ha.priority or 0) if ha else 0,
            "cpu_sockets": sockets,
            "cpu_cores": cores,
            "cpu_threads": threads,
            "vm_type": value(vm.type),
            "stateless": bool(vm.stateless),
            "created": vm.creation_time.isoformat() if vm.creation_time else "",
        },
    )
    counters: dict[str, int] = {}
    for att in vm.disk_attachments or []:
        info.disks.append(_disk(att, counters, sd_names))
    for nic in vm.nics or []:
        info.nics.append(_nic(nic, net_by_id, prof_by_id))
    return info


def _disk(att: otypes.DiskAttachment, counters: dict[str, int], sd_names: dict[str, str]) -> DiskInfo:
    disk = att.disk
    interface = value(att.interface)
    prefix = _PREFIX.get(interface, "sd")
    index = counters.get(prefix, 0)
    counters[prefix] = index + 1
    # The guest agent reports the real device name while the VM runs; otherwise it is derived
    # from the bus and the attachment order, as the engine assigns them.
    target = (att.logical_name or "").rsplit("/", 1)[-1] or prefix + "abcdefghijklmnopqrstuvwxyz"[index % 26]
    extra: dict[str, Any] = {
        "disk_id": ref_id(disk),
        "interface": interface,
        "bootable": bool(att.bootable),
        "active": bool(att.active),
    }
    info = DiskInfo(target=target, bus=_BUS.get(interface, interface), read_only=bool(att.read_only), extra=extra)
    if disk is None:
        return info
    lun = disk.lun_storage
    extra.update(
        {
            "alias": disk.alias or disk.name or "",
            "format": value(disk.format),
            "sparse": bool(disk.sparse),
            "provisioned_size": disk.provisioned_size or 0,
            "actual_size": disk.actual_size or 0,
            "total_size": disk.total_size or 0,
            "storage_type": value(disk.storage_type),
            "status": value(disk.status),
        }
    )
    info.serial = str(disk.id)[:20] if interface == "virtio" else str(disk.id)
    info.shareable = bool(disk.shareable)
    info.driver_format = _FORMAT.get(value(disk.format), value(disk.format))
    info.cache = "none"
    if lun is not None:
        lun_ids = [str(lu.id) for lu in lun.logical_units or [] if lu.id]
        info.source_type = "block"
        # vdsm exposes a direct LUN as its multipath device, named by the WWID on every host.
        info.source = f"/dev/mapper/{lun_ids[0]}" if lun_ids else ""
        info.wwn = lun_ids[0] if lun_ids else ""
        if interface == "virtio_scsi" and value(disk.sgio) in ("filtered", "unfiltered"):
            info.device = "lun"
        extra["lun_ids"] = lun_ids
        extra["lun_storage_type"] = value(lun.type)
        extra["luns"] = [
            {
                "id": str(lu.id),
                "vendor": lu.vendor_id or "",
                "product": lu.product_id or "",
                "serial": lu.serial or "",
                "size": lu.size or 0,
                "address": lu.address or "",
                "target": lu.target or "",
                "lun_mapping": lu.lun_mapping,
            }
            for lu in lun.logical_units or []
        ]
    else:
        sd_id = ref_id(disk.storage_domains[0]) if disk.storage_domains else ""
        info.source_type = "volume"
        info.source_pool = sd_names.get(sd_id, sd_id)
        info.source_volume = str(disk.id)
        info.source = f"{info.source_pool}/{disk.id}"
        extra["storage_domain_id"] = sd_id
        extra["storage_domain"] = sd_names.get(sd_id, "")
    return info


def _nic(nic: otypes.Nic, net_by_id: dict[str, otypes.Network], prof_by_id: dict[str, otypes.VnicProfile]) -> NicInfo:
    profile = prof_by_id.get(ref_id(nic.vnic_profile))
    network = net_by_id.get(ref_id(profile.network)) if profile else None
    network_name = (network.name if network else "") or ""
    return NicInfo(
        mac=(nic.mac.address if nic.mac else "") or "",
        type="bridge",  # vdsm puts each logical network on a host bridge of the same name
        source=network_name,
        model=value(nic.interface),
        extra={
            "nic_id": str(nic.id),
            "name": nic.name or "",
            "vnic_profile_id": ref_id(nic.vnic_profile),
            "vnic_profile": (profile.name if profile else "") or "",
            "network_id": ref_id(network),
            "network": network_name,
            "plugged": bool(nic.plugged),
            "linked": bool(nic.linked),
        },
    )


def pool_info(sd: otypes.StorageDomain, dc_names: dict[str, str]) -> PoolInfo:
    storage = sd.storage
    storage_type = value(storage.type) if storage else ""
    address = (storage.address if storage else "") or ""
    path = (storage.path if storage else "") or ""
    lus = []
    if storage is not None:
        lus = list(storage.logical_units or [])
        if storage.volume_group is not None:
            lus += list(storage.volume_group.logical_units or [])
    lun_ids = [str(lu.id) for lu in lus if lu.id]
    if storage_type in _FILE_STORAGE:
        source = f"{address}:{path}" if address else path
    else:
        source = ",".join(lun_ids)
    available, used = sd.available or 0, sd.used or 0
    dc_ids = [ref_id(dc) for dc in sd.data_centers or []]
    status = value(sd.status)
    return PoolInfo(
        uuid=str(sd.id),
        name=sd.name or "",
        type=value(sd.type),
        target_path=path,
        source=source,
        capacity_bytes=available + used,
        allocation_bytes=used,
        available_bytes=available,
        state=status,
        active=status == "active",
        extra={
            "platform": "rhev",
            "domain_type": value(sd.type),
            "storage_type": storage_type,
            "address": address,
            "path": path,
            "committed": sd.committed or 0,
            "master": bool(sd.master),
            "external_status": value(sd.external_status),
            "storage_format": value(sd.storage_format),
            "lun_ids": lun_ids,
            "volume_group_id": ref_id(storage.volume_group) if storage else "",
            "datacenter_ids": dc_ids,
            "datacenters": [dc_names.get(i, "") for i in dc_ids],
        },
    )


def network_info(net: otypes.Network, dc_names: dict[str, str], profiles: list[otypes.VnicProfile]) -> NetworkInfo:
    dc_id = ref_id(net.data_center)
    return NetworkInfo(
        name=net.name or "",
        uuid=str(net.id),
        bridge=net.name or "",
        forward_mode="bridge",
        active=True,
        autostart=True,
        extra={
            "platform": "rhev",
            "datacenter_id": dc_id,
            "datacenter": dc_names.get(dc_id, ""),
            "description": net.description or "",
            "vlan": net.vlan.id if net.vlan else None,
            "mtu": net.mtu or 0,
            "usages": [value(u) for u in net.usages or []],
            "vnic_profiles": [
                {"id": str(p.id), "name": p.name or ""} for p in profiles if ref_id(p.network) == str(net.id)
            ],
        },
    )
