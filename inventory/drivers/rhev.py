"""The RHEV driver: one RHEV-M / oVirt engine through its REST API v4, with the official ``ovirtsdk4``.

Discovery reads the whole manager in a handful of requests: the API root (which checks the URL and
the credentials), data centers, clusters, hosts, storage domains, networks, vNIC profiles,
templates, and every VM with its disk attachments, disks and NICs followed inline
(``follow=disk_attachments.disk,nics``), optionally limited to one cluster (``search=cluster=NAME``).

Every ``ovirtsdk4.Error`` (SSO refusal, unreachable manager, TLS problem, ``<fault>`` answer) leaves
this module as a one-line :class:`DriverError` whose ``retryable`` says whether trying again later
can help. The password never appears in a message.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ovirtsdk4
import ovirtsdk4.types as otypes
import pycurl

from inventory.drivers.base import (
    Credentials,
    DiskInfo,
    DriverError,
    HostFacts,
    InventorySnapshot,
    NetworkInfo,
    NicInfo,
    PoolInfo,
    VMInfo,
    VMStateReading,
)

__all__ = ["RhevDriver", "RhevSnapshot"]

_T = TypeVar("_T")

_BUS = {"virtio": "virtio", "virtio_scsi": "scsi", "ide": "ide", "sata": "sata", "spapr_vscsi": "scsi"}
_PREFIX = {"virtio": "vd", "ide": "hd"}  # everything else is a SCSI/SATA disk: sdX
_FORMAT = {"cow": "qcow2", "raw": "raw"}
_FILE_STORAGE = frozenset({"nfs", "glusterfs", "posixfs", "localfs"})

# curl error codes that mean "the TLS handshake or the certificate check failed".
_TLS_CURL_CODES = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
# curl errors that mean the manager did not answer (network, overload): trying later can help.
_TRANSIENT_CURL_CODES = frozenset({5, 6, 7, 28, 52, 55, 56})


# Why a VM fails the environment check: shared by the check and the discovery, word for word.
HA_ENABLED_REASON = (
    "the manager's own high availability is enabled for this VM: disable it in RHEV-M so that only this"
    " console restarts it"
)


@dataclass
class RhevSnapshot(InventorySnapshot):
    """An :class:`InventorySnapshot` plus what only a manager has: its data centers, clusters,
    templates and product version (plain dicts, JSON-ready)."""

    datacenters: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    product: dict[str, str] = field(default_factory=dict)


def _val(enum: Any) -> str:
    """An SDK enum as the API's lowercase string ("" for None)."""
    return "" if enum is None else str(enum.value)


def _id(ref: Any) -> str:
    return "" if ref is None or ref.id is None else str(ref.id)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _curl_code(err: BaseException) -> int | None:
    """The curl error code behind an SDK error, when the SDK wrapped a ``pycurl.error``."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, pycurl.error) and seen.args:
            code = seen.args[0]
            return code if isinstance(code, int) else None
        seen = seen.__cause__ or seen.__context__
    return None


def _curl_text(err: BaseException) -> str:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, pycurl.error) and len(seen.args) > 1:
            return _one_line(seen.args[1])
        seen = seen.__cause__ or seen.__context__
    return _one_line(str(err))


class RhevDriver:
    """Talks to one RHEV-M / oVirt engine.

    ``url`` is the API URL (``https://rhevm.example.com/ovirt-engine/api``; a bare host name or
    ``https://host`` gets the path added). Verify TLS with ``ca_file`` (PEM) or the system store;
    ``insecure=True`` turns verification off. ``cluster`` limits hosts and VMs to one cluster.
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        cluster: str | None = None,
        timeout: int = 120,
    ) -> None:
        self.url = self.normalize_url(url)
        self.credentials = credentials
        self.ca_file = ca_file or None
        self.insecure = insecure
        self.cluster = (cluster or "").strip() or None
        self.timeout = timeout
        self._conn: ovirtsdk4.Connection | None = None

    @staticmethod
    def normalize_url(url: str) -> str:
        url = (url or "").strip().rstrip("/")
        if not url:
            raise DriverError("the manager URL is empty (e.g. https://rhevm.example.com/ovirt-engine/api)")
        if "://" not in url:
            url = f"https://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DriverError(f"invalid manager URL {url!r}: expected https://HOST/ovirt-engine/api")
        path = parts.path.rstrip("/")
        if path in ("", "/ovirt-engine"):
            url = f"{url.rstrip('/').removesuffix('/ovirt-engine')}/ovirt-engine/api"
        return url.rstrip("/")

    # --- connection and errors -----------------------------------------------------------------

    def _connection(self) -> ovirtsdk4.Connection:
        if self._conn is None:
            creds = self.credentials
            if not creds.username or not creds.password:
                raise DriverError(f"no user name or password set for {self.url}")
            try:
                self._conn = ovirtsdk4.Connection(
                    url=self.url,
                    username=creds.username,
                    password=creds.password,
                    ca_file=self.ca_file,
                    insecure=self.insecure,
                    timeout=self.timeout,
                    connections=1,
                )
            except ovirtsdk4.Error as err:
                raise self._translate(err, "cannot connect") from None
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # revokes the SSO token
            except (ovirtsdk4.Error, pycurl.error):  # the manager went away: nothing left to release
                pass

    def __enter__(self) -> RhevDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        password = self.credentials.password
        return text.replace(password, "***") if password else text

    def _translate(self, err: ovirtsdk4.Error, action: str) -> DriverError:
        """One line saying what went wrong, and whether retrying can help."""
        where = self.url
        user = self.credentials.username or ""
        code = _curl_code(err)
        text = _one_line(str(err))
        if isinstance(err, ovirtsdk4.AuthError) and "SSO" in text:
            detail = text.split(":", 1)[1].strip() if ":" in text else text
            if "access_denied" in text:
                message = f"{action}: login refused for {user} at {where}: {detail}"
            else:
                message = f"{action}: SSO error from {where}: {text.replace('Error during ', '')}"
            return DriverError(self._redact(message), retryable=False)
        if code in _TLS_CURL_CODES:
            hint = "check the CA certificate" if not self.insecure else "the server does not speak TLS"
            if code == 35 and "wrong version number" in _curl_text(err).lower():
                hint = "the server does not speak TLS there (http:// URL?)"
            return DriverError(self._redact(f"{action}: TLS failure with {where}: {_curl_text(err)} ({hint})"))
        if isinstance(err, ovirtsdk4.ConnectionError) or code in _TRANSIENT_CURL_CODES:
            return DriverError(
                self._redact(f"{action}: cannot reach the manager at {where}: {_curl_text(err)}"), retryable=True
            )
        if isinstance(err, ovirtsdk4.TimeoutError):
            return DriverError(self._redact(f"{action}: the manager at {where} did not answer in time"), retryable=True)
        fault = getattr(err, "fault", None)
        status = getattr(err, "code", None)
        if fault is not None:
            reason = _one_line(fault.reason or "")
            detail = _one_line(fault.detail or "").strip("[]")
            said = f"{reason}: {detail}" if reason and detail else reason or detail
            retry = isinstance(status, int) and status >= 500
            if status in (401, 403):
                return DriverError(self._redact(f"{action}: not authorized by {where}: {said}"))
            return DriverError(self._redact(f"{action}: {said} (HTTP {status})"), retryable=retry)
        if "content type" in text:
            return DriverError(self._redact(f"{action}: {where} does not answer like an oVirt engine ({text})"))
        retry = isinstance(status, int) and status >= 500
        return DriverError(self._redact(f"{action}: {text}"), retryable=retry)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ovirtsdk4.Error as err:
            raise self._translate(err, action) from None
        except pycurl.error as err:  # the SDK lets a few curl errors through unwrapped (SSO requests)
            wrapped = ovirtsdk4.Error(str(err))
            wrapped.__context__ = err
            raise self._translate(wrapped, action) from None

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        with self._errors(action):
            return fn()
        raise AssertionError("unreachable")  # pragma: no cover - _errors always raises or yields

    # --- discovery -----------------------------------------------------------------------------

    def discover(self) -> RhevSnapshot:
        conn = self._connection()
        system = conn.system_service()
        with self._errors(f"discovery of {self.url}"):
            api = system.get()
            datacenters = system.data_centers_service().list()
            clusters = system.clusters_service().list()
            search = f'cluster="{self.cluster}"' if self.cluster else None
            hosts = system.hosts_service().list(search=search)
            storage_domains = system.storage_domains_service().list()
            networks = system.networks_service().list()
            profiles = system.vnic_profiles_service().list()
            templates = system.templates_service().list()
            vms = system.vms_service().list(search=search, follow="disk_attachments.disk,nics")
        if self.cluster and not any(c.name == self.cluster for c in clusters):
            raise DriverError(f"discovery of {self.url}: no cluster named {self.cluster!r} on the manager")

        dc_names = {str(dc.id): dc.name or "" for dc in datacenters}
        cl_by_id = {str(c.id): c for c in clusters}
        cl_dc = {cid: _id(c.data_center) for cid, c in cl_by_id.items()}
        tpl_names = {str(t.id): t.name or "" for t in templates}
        sd_names = {str(sd.id): sd.name or "" for sd in storage_domains}
        net_by_id = {str(n.id): n for n in networks}
        prof_by_id = {str(p.id): p for p in profiles}

        def where(cluster_id: str) -> dict[str, str]:
            cl = cl_by_id.get(cluster_id)
            dc_id = cl_dc.get(cluster_id, "")
            return {
                "cluster_id": cluster_id,
                "cluster": cl.name or "" if cl else "",
                "datacenter_id": dc_id,
                "datacenter": dc_names.get(dc_id, ""),
            }

        snapshot = RhevSnapshot()
        snapshot.hosts = [self._host(h, where(_id(h.cluster))) for h in hosts]
        for vm in vms:
            snapshot.vms.append(self._vm(vm, where(_id(vm.cluster)), tpl_names, sd_names, net_by_id, prof_by_id))
        snapshot.pools = [self._pool(sd, dc_names) for sd in storage_domains]
        snapshot.networks = [self._network(n, dc_names, profiles) for n in networks]
        snapshot.datacenters = [
            {
                "id": str(dc.id),
                "name": dc.name or "",
                "status": _val(dc.status),
                "version": f"{dc.version.major}.{dc.version.minor}" if dc.version else "",
                "local": bool(dc.local),
            }
            for dc in datacenters
        ]
        snapshot.clusters = [
            {**where(cid), "id": cid, "name": c.name or "", "cpu_type": (c.cpu.type if c.cpu else "") or ""}
            for cid, c in cl_by_id.items()
        ]
        snapshot.templates = [
            {
                "id": str(t.id),
                "name": t.name or "",
                "description": t.description or "",
                "os": (t.os.type if t.os else "") or "",
                "memory_bytes": t.memory or 0,
                "status": _val(t.status),
                "version_name": (t.version.version_name if t.version else "") or "",
                "cluster_id": _id(t.cluster),
            }
            for t in templates
        ]
        info = api.product_info
        if info is not None:
            snapshot.product = {
                "name": info.name or "",
                "vendor": info.vendor or "",
                "version": (info.version.full_version if info.version else "") or "",
            }
        snapshot.facts = {
            "product": snapshot.product,
            "datacenters": snapshot.datacenters,
            "clusters": snapshot.clusters,
            "templates": snapshot.templates,
        }
        return snapshot

    @staticmethod
    def _host(h: otypes.Host, where: dict[str, str]) -> HostFacts:
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
            cpu_arch=_val(cpu.architecture) if cpu else "",
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
                "status": _val(h.status),
                "status_detail": h.status_detail or "",
                "address": h.address or "",
                "cpu_type": (cpu.type if cpu else "") or "",
                "host_type": _val(h.type),
                "spm": _val(h.spm.status) if h.spm else "",
            },
        )

    def _vm(
        self,
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
        template_id = _id(vm.template)
        max_memory = (vm.memory_policy.max if vm.memory_policy else None) or vm.memory or 0
        info = VMInfo(
            uuid=str(vm.id),
            name=vm.name or "",
            state=_val(vm.status) or "unknown",
            state_reason=vm.status_detail or vm.stop_reason or "",
            host_uid=_id(vm.host),
            vcpus=sockets * cores * threads,
            max_vcpus=sockets * cores * threads,
            memory_bytes=vm.memory or 0,
            max_memory_bytes=max_memory,
            os_type="hvm",
            arch=_val(vm.cpu.architecture) if vm.cpu else "",
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
                "vm_type": _val(vm.type),
                "stateless": bool(vm.stateless),
                "created": vm.creation_time.isoformat() if vm.creation_time else "",
            },
        )
        counters: dict[str, int] = {}
        for att in vm.disk_attachments or []:
            info.disks.append(self._disk(att, counters, sd_names))
        for nic in vm.nics or []:
            info.nics.append(self._nic(nic, net_by_id, prof_by_id))
        return info

    @staticmethod
    def _disk(att: otypes.DiskAttachment, counters: dict[str, int], sd_names: dict[str, str]) -> DiskInfo:
        disk = att.disk
        interface = _val(att.interface)
        prefix = _PREFIX.get(interface, "sd")
        index = counters.get(prefix, 0)
        counters[prefix] = index + 1
        # The guest agent reports the real device name while the VM runs; otherwise it is derived
        # from the bus and the attachment order, as the engine assigns them.
        target = (att.logical_name or "").rsplit("/", 1)[-1] or prefix + "abcdefghijklmnopqrstuvwxyz"[index % 26]
        extra: dict[str, Any] = {
            "disk_id": _id(disk),
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
                "format": _val(disk.format),
                "sparse": bool(disk.sparse),
                "provisioned_size": disk.provisioned_size or 0,
                "actual_size": disk.actual_size or 0,
                "total_size": disk.total_size or 0,
                "storage_type": _val(disk.storage_type),
                "status": _val(disk.status),
            }
        )
        info.serial = str(disk.id)[:20] if interface == "virtio" else str(disk.id)
        info.shareable = bool(disk.shareable)
        info.driver_format = _FORMAT.get(_val(disk.format), _val(disk.format))
        info.cache = "none"
        if lun is not None:
            lun_ids = [str(lu.id) for lu in lun.logical_units or [] if lu.id]
            info.source_type = "block"
            # vdsm exposes a direct LUN as its multipath device, named by the WWID on every host.
            info.source = f"/dev/mapper/{lun_ids[0]}" if lun_ids else ""
            info.wwn = lun_ids[0] if lun_ids else ""
            if interface == "virtio_scsi" and _val(disk.sgio) in ("filtered", "unfiltered"):
                info.device = "lun"
            extra["lun_ids"] = lun_ids
            extra["lun_storage_type"] = _val(lun.type)
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
            sd_id = _id(disk.storage_domains[0]) if disk.storage_domains else ""
            info.source_type = "volume"
            info.source_pool = sd_names.get(sd_id, sd_id)
            info.source_volume = str(disk.id)
            info.source = f"{info.source_pool}/{disk.id}"
            extra["storage_domain_id"] = sd_id
            extra["storage_domain"] = sd_names.get(sd_id, "")
        return info

    @staticmethod
    def _nic(
        nic: otypes.Nic, net_by_id: dict[str, otypes.Network], prof_by_id: dict[str, otypes.VnicProfile]
    ) -> NicInfo:
        profile = prof_by_id.get(_id(nic.vnic_profile))
        network = net_by_id.get(_id(profile.network)) if profile else None
        network_name = (network.name if network else "") or ""
        return NicInfo(
            mac=(nic.mac.address if nic.mac else "") or "",
            type="bridge",  # vdsm puts each logical network on a host bridge of the same name
            source=network_name,
            model=_val(nic.interface),
            extra={
                "nic_id": str(nic.id),
                "name": nic.name or "",
                "vnic_profile_id": _id(nic.vnic_profile),
                "vnic_profile": (profile.name if profile else "") or "",
                "network_id": _id(network),
                "network": network_name,
                "plugged": bool(nic.plugged),
                "linked": bool(nic.linked),
            },
        )

    @staticmethod
    def _pool(sd: otypes.StorageDomain, dc_names: dict[str, str]) -> PoolInfo:
        storage = sd.storage
        storage_type = _val(storage.type) if storage else ""
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
        dc_ids = [_id(dc) for dc in sd.data_centers or []]
        status = _val(sd.status)
        return PoolInfo(
            uuid=str(sd.id),
            name=sd.name or "",
            type=_val(sd.type),
            target_path=path,
            source=source,
            capacity_bytes=available + used,
            allocation_bytes=used,
            available_bytes=available,
            state=status,
            active=status == "active",
            extra={
                "platform": "rhev",
                "domain_type": _val(sd.type),
                "storage_type": storage_type,
                "address": address,
                "path": path,
                "committed": sd.committed or 0,
                "master": bool(sd.master),
                "external_status": _val(sd.external_status),
                "storage_format": _val(sd.storage_format),
                "lun_ids": lun_ids,
                "volume_group_id": _id(storage.volume_group) if storage else "",
                "datacenter_ids": dc_ids,
                "datacenters": [dc_names.get(i, "") for i in dc_ids],
            },
        )

    @staticmethod
    def _network(net: otypes.Network, dc_names: dict[str, str], profiles: list[otypes.VnicProfile]) -> NetworkInfo:
        dc_id = _id(net.data_center)
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
                "usages": [_val(u) for u in net.usages or []],
                "vnic_profiles": [
                    {"id": str(p.id), "name": p.name or ""} for p in profiles if _id(p.network) == str(net.id)
                ],
            },
        )

    # --- operations ----------------------------------------------------------------------------

    def _vm_service(self, vm_id: str) -> Any:
        try:
            uuid_module.UUID(vm_id)
        except (ValueError, TypeError, AttributeError):
            raise DriverError(f"invalid VM id {vm_id!r}: not a UUID") from None
        return self._connection().system_service().vms_service().vm_service(vm_id)

    def _act(self, vm_id: str, verb: str, call: Callable[[Any], object]) -> None:
        service = self._vm_service(vm_id)
        with self._errors(f"{verb} VM {vm_id}"):
            call(service)

    def vm_state(self, vm_id: str) -> VMStateReading:
        service = self._vm_service(vm_id)
        with self._errors(f"read the state of VM {vm_id}"):
            vm = service.get()
        # The SDK reads a status its enum does not know as None: report it as "unknown".
        state = _val(vm.status) or "unknown"
        return VMStateReading(uuid=str(vm.id), state=state, state_reason=vm.status_detail or vm.stop_reason or "")

    def start(self, vm_id: str) -> None:
        self._act(vm_id, "start", lambda s: s.start())

    def shutdown(self, vm_id: str) -> None:
        """Graceful: the manager asks the guest (agent or ACPI); returns at once."""
        self._act(vm_id, "shut down", lambda s: s.shutdown())

    def power_off(self, vm_id: str) -> None:
        self._act(vm_id, "power off", lambda s: s.stop())

    def reboot(self, vm_id: str) -> None:
        self._act(vm_id, "reboot", lambda s: s.reboot())

    def suspend(self, vm_id: str) -> None:
        """RHEV's suspend saves the memory to storage (hibernate); ``resume`` is a start."""
        self._act(vm_id, "suspend", lambda s: s.suspend())

    def resume(self, vm_id: str) -> None:
        self._act(vm_id, "resume", lambda s: s.start())

    def migrate(self, vm_id: str, host_id: str | None = None) -> None:
        """Live-migrate to ``host_id``, or to a host the manager's scheduler picks."""
        if host_id is None:
            self._act(vm_id, "migrate", lambda s: s.migrate())
        else:
            self._act(vm_id, f"migrate to host {host_id}", lambda s: s.migrate(host=otypes.Host(id=host_id)))

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    def snapshot_revert(self, vm_id: str, name: str) -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    def snapshot_delete(self, vm_id: str, name: str) -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    # --- environment check (havirtverify) ------------------------------------------------------

    def verify(self, vm_ids: list[str]) -> dict[str, Any]:
        """Check the URL and credentials, then for each VM that the manager's own HA is disabled.

        Never raises for platform problems: ``{"ok", "reason", "product", "vms": {id: {"ok",
        "reason", "ha_enabled"}}}``, where a failing check says what is wrong.
        """
        result: dict[str, Any] = {"ok": False, "reason": "", "product": "", "vms": {}}
        try:
            api = self._call("check the manager", lambda: self._connection().system_service().get())
        except DriverError as err:
            result["reason"] = err.message
            result["retryable"] = err.retryable
            for vm_id in vm_ids:
                result["vms"][vm_id] = {"ok": False, "reason": err.message, "ha_enabled": None}
            return result
        info = api.product_info
        result["product"] = f"{info.name} {info.version.full_version}" if info and info.version else ""
        result["ok"] = True
        # One request for all VMs (a manager of 5,000 VMs is not asked 5,000 times).
        try:
            listed = self._call("list VMs", lambda: self._connection().system_service().vms_service().list())
        except DriverError as err:
            result["ok"], result["reason"] = False, err.message
            for vm_id in vm_ids:
                result["vms"][vm_id] = {"ok": False, "reason": err.message, "ha_enabled": None}
            return result
        by_id = {str(vm.id): vm for vm in listed}
        failing = 0
        for vm_id in vm_ids:
            vm = by_id.get(vm_id)
            if vm is None:
                unknown = f"VM {vm_id} is not known to the manager"
                result["vms"][vm_id] = {"ok": False, "reason": unknown, "ha_enabled": None}
                failing += 1
                continue
            enabled = bool(vm.high_availability and vm.high_availability.enabled)
            result["vms"][vm_id] = {
                "ok": not enabled,
                "reason": HA_ENABLED_REASON if enabled else "",
                "ha_enabled": enabled,
                "name": vm.name or "",
            }
            failing += enabled
        if failing:
            result["ok"] = False
            result["reason"] = f"{failing} VM(s) fail the check: {HA_ENABLED_REASON}"
        return result

    def vm_host(self, vm_id: str) -> str:
        """The id of the host the VM runs on now ("" when it runs nowhere)."""
        vm = self._call(f"read VM {vm_id}", self._vm_service(vm_id).get)
        return _id(vm.host) if vm.host is not None else ""
