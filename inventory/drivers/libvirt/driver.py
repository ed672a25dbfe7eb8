"""The libvirt driver class: one connection to one host, discovery, power and snapshot operations.

Its public primitives (:meth:`LibvirtDriver.connection`, :meth:`~LibvirtDriver.errors`,
:meth:`~LibvirtDriver.changing`, :meth:`~LibvirtDriver.error`, :meth:`~LibvirtDriver.domain`,
:meth:`~LibvirtDriver.pool_info`, :meth:`~LibvirtDriver.skip_vanished`) are what the storage
functions of :mod:`inventory.drivers.libvirt.storage` build on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import libvirt

from inventory.drivers.base import (
    Credentials,
    Driver,
    DriverError,
    EnvironmentCheck,
    HostFacts,
    InventorySnapshot,
    NetworkInfo,
    PoolInfo,
    SnapshotInfo,
    VMCheck,
    VMInfo,
    VMStateReading,
)
from inventory.drivers.libvirt.connection import (
    current_test_connection,
    drop_test_connections,
    error_text,
    is_kept_test_connection,
    is_retryable,
    is_simulated_host,
    open_connection,
    simulated_change,
)
from inventory.drivers.libvirt.parse import (
    POOL_STATE_NAMES,
    find_text,
    parse_network_xml,
    parse_snapshot,
    parse_xml,
    pool_source,
    reason_name,
    state_name,
    version,
    vm_info,
    volume_info,
)
from inventory.drivers.libvirt.uri import redact

__all__ = ["LibvirtDriver"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LibvirtDriver:
    """A :class:`~inventory.drivers.base.Driver` for one libvirt URI (one hypervisor host).

    The connection is opened on first use (or by :meth:`connect`) and kept until :meth:`close`;
    after a connection-level failure it is dropped so the next call reconnects. Use it as a
    context manager to be sure it is closed. Operations take the domain UUID.

    ``connect_timeout`` bounds reaching a remote host (see :mod:`.connection`); ``read_timeout``
    sets the keepalive that fails a call to a daemon that stopped answering.
    """

    def __init__(
        self,
        uri: str,
        credentials: Credentials | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.uri = uri
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._conn: Any = None  # a libvirt.virConnect; libvirt-python has no py.typed, so mypy sees Any
        self._host_uid: str | None = None
        self._simulated = is_simulated_host(uri)  # a test:/// node file, shared by every process

    # -- the connection and the primitives the storage functions use ----------------------

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first call that needs it)."""
        self.connection()

    def connection(self) -> Any:
        """The open ``libvirt.virConnect``, opened now if needed; DriverError when that fails.

        A simulated host (``test:///`` node file) may have been changed by another process since:
        its connection is handed out only while the host's saved state is the one it was loaded
        from (one ``os.stat``), else it is opened again in the latest state.
        """
        if self._conn is not None and self._simulated:
            self._conn = current_test_connection(self.uri, self.credentials)
        if self._conn is None:
            self._conn = open_connection(
                self.uri, self.credentials, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
            )
        return self._conn

    def close(self) -> None:
        """Close the connection; the driver may be used again and will reconnect."""
        conn, self._conn = self._conn, None
        if conn is None or is_kept_test_connection(conn):
            return
        try:
            conn.close()
        except libvirt.libvirtError:
            pass  # the connection is already broken; nothing is left to release

    def __enter__(self) -> LibvirtDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def error(self, err: libvirt.libvirtError, action: str) -> DriverError:
        """The DriverError for a libvirt error raised while doing ``action`` ("cannot …").

        A connection-level failure also drops the connection, so the next call reconnects.
        """
        retryable = is_retryable(err)
        if retryable:
            drop_test_connections(self.uri)  # a simulated host's saved state stays
            self.close()
        return DriverError(f"{action}: {error_text(err)}", retryable=retryable)

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn a libvirt error (or unreadable XML) raised in the block into a DriverError
        "``action``: what libvirt said"; a DriverError raised in the block passes unchanged."""
        try:
            yield
        except libvirt.libvirtError as err:
            raise self.error(err, action) from err
        except ET.ParseError as err:
            raise DriverError(f"{action}: unreadable XML from libvirt: {err}") from err

    @contextmanager
    def changing(self, action: str) -> Iterator[None]:
        """Wrap every call that changes the host, with the lookups of what it changes inside the block.

        For a real host exactly :meth:`errors`. For a simulated host (``test:///`` node file) the
        block also holds the host's lock, starts from the state the last change of any process left,
        and the host's state is saved afterwards for every other process to see
        (:func:`~inventory.drivers.libvirt.connection.simulated_change`).
        """
        if not self._simulated:
            with self.errors(action):
                yield
            return
        with (
            self.errors(action),
            simulated_change(
                self.uri, self.credentials, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
            ),
        ):
            yield

    def domain(self, vm_id: str) -> Any:
        """The ``libvirt.virDomain`` with UUID ``vm_id``; DriverError when it is not a UUID or not there."""
        try:
            uuid_module.UUID(vm_id)
        except ValueError:
            raise DriverError(f"invalid VM id {vm_id!r}: not a UUID") from None
        conn = self.connection()
        try:
            return conn.lookupByUUIDString(vm_id)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise DriverError(f"VM {vm_id} not found on {redact(self.uri)}") from err
            raise self.error(err, f"cannot look up VM {vm_id}") from err

    def pool_info(self, pool: Any) -> PoolInfo:
        """A ``libvirt.virStoragePool`` and its volumes as a :class:`PoolInfo` (libvirt errors pass)."""
        root = parse_xml(pool.XMLDesc(0))
        state, capacity, allocation, available = pool.info()
        active = bool(pool.isActive())
        info = PoolInfo(
            uuid=str(pool.UUIDString()),
            name=str(pool.name()),
            type=root.get("type") or "",
            target_path=find_text(root, "target/path"),
            source=pool_source(root),
            capacity_bytes=int(capacity),
            allocation_bytes=int(allocation),
            available_bytes=int(available),
            state=POOL_STATE_NAMES.get(state, f"unknown-{state}"),
            active=active,
            autostart=bool(pool.autostart()),
            persistent=bool(pool.isPersistent()),
        )
        if active:  # an inactive pool cannot list its volumes
            for vol in pool.listAllVolumes(0):
                volume = self.skip_vanished(
                    volume_info, vol, libvirt.VIR_ERR_NO_STORAGE_VOL, f"pool {info.name}: volume"
                )
                if volume is not None:
                    info.volumes.append(volume)
        return info

    def skip_vanished(self, read: Callable[[Any], _T], obj: Any, gone_code: int, kind: str) -> _T | None:
        """``read(obj)``, or None when ``obj`` was removed meanwhile (libvirt error ``gone_code``);
        any other failure is a DriverError naming ``kind`` and the object."""
        what = f"{kind} {obj.name()!r} on {redact(self.uri)}"
        try:
            return read(obj)
        except libvirt.libvirtError as err:
            if err.get_error_code() == gone_code:
                logger.info("skipping %s: it disappeared during discovery", what)
                return None
            raise self.error(err, f"cannot read {what}") from err
        except ET.ParseError as err:
            raise DriverError(f"cannot read {what}: unreadable XML: {err}") from err

    # -- discovery -----------------------------------------------------------------------

    def discover(self) -> InventorySnapshot:
        """Read the host, all its domains, storage pools with volumes, and networks."""
        conn = self.connection()
        read_at = _now()
        with self.errors(f"cannot discover {redact(self.uri)}"):
            host = self._host_facts(conn)
            domains = conn.listAllDomains(0)
        snapshot = InventorySnapshot(read_at=read_at, hosts=[host])
        for dom in domains:
            vm = self._read_domain(dom, host.uid)
            if isinstance(vm, VMInfo):
                snapshot.vms.append(vm)
            elif vm is not None:
                snapshot.skipped_vm_uuids.append(vm)
        snapshot.pools = self._pools(conn)
        snapshot.networks = self._networks(conn)
        return snapshot

    def _host_facts(self, conn: Any) -> HostFacts:
        caps = parse_xml(conn.getCapabilities())
        hostname = self._hostname(conn)
        model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
        self._host_uid = find_text(caps, "host/uuid") or self._hardware_uuid(conn) or hostname
        return HostFacts(
            uid=self._host_uid,
            hostname=hostname,
            hypervisor_type=str(conn.getType()),
            hypervisor_version=version(int(conn.getVersion())),
            libvirt_version=version(int(conn.getLibVersion())),
            # virNodeInfo.model is the architecture on QEMU hosts; the capabilities name the CPU.
            cpu_model=find_text(caps, "host/cpu/model") or str(model),
            cpu_arch=find_text(caps, "host/cpu/arch"),
            cpu_sockets=int(nodes) * int(sockets),  # virNodeInfo counts sockets per NUMA node
            cpu_cores=int(cores),
            cpu_threads=int(threads),
            cpu_count=int(cpus),
            cpu_mhz=int(mhz),
            memory_bytes=int(memory_mib) * 1024 * 1024,
        )

    def host_uid(self) -> str:
        """The uid of this connection's host, as :attr:`HostFacts.uid` in a discovery (read once)."""
        if self._host_uid is None:
            conn = self.connection()
            with self.errors(f"cannot read the host of {redact(self.uri)}"):
                caps = parse_xml(conn.getCapabilities())
                self._host_uid = find_text(caps, "host/uuid") or self._hardware_uuid(conn) or self._hostname(conn)
        return self._host_uid

    def _hostname(self, conn: Any) -> str:
        """The host's name. The test driver answers with the name of the machine running it, so a
        ``test:///path/kvm01.xml`` node file stands for host ``kvm01``."""
        parts = urlsplit(self.uri)
        if parts.scheme == "test" and parts.path not in ("", "/default"):
            return os.path.splitext(os.path.basename(parts.path))[0]
        return str(conn.getHostname())

    @staticmethod
    def _hardware_uuid(conn: Any) -> str:
        """The SMBIOS system UUID from the ``computer`` node device, when libvirt exposes it."""
        try:
            device = conn.nodeDeviceLookupByName("computer")
            return find_text(parse_xml(device.XMLDesc(0)), "capability/hardware/uuid")
        except libvirt.libvirtError:
            return ""

    def _read_domain(self, dom: Any, host_uid: str) -> VMInfo | str | None:
        """One domain's facts; None when it vanished meanwhile; its UUID when it exists but is unreadable."""
        name, vm_uuid = str(dom.name()), str(dom.UUIDString())
        try:
            return self._domain_info(dom, name, vm_uuid, host_uid)
        except libvirt.libvirtError as err:
            if is_retryable(err):
                raise self.error(err, f"cannot discover {redact(self.uri)}") from err
            # A single unreadable domain must not cost the whole host its inventory.
            gone = err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
            level = logging.INFO if gone else logging.WARNING
            logger.log(level, "skipping VM %s (%s) on %s: %s", name, vm_uuid, redact(self.uri), error_text(err))
            return None if gone else vm_uuid
        except ET.ParseError as err:
            logger.warning("skipping VM %s (%s) on %s: unreadable XML: %s", name, vm_uuid, redact(self.uri), err)
            return vm_uuid

    def _domain_info(self, dom: Any, name: str, vm_uuid: str, host_uid: str) -> VMInfo:
        state, reason = dom.state(0)
        persistent = bool(dom.isPersistent())
        root = parse_xml(dom.XMLDesc(0))
        inactive = None
        if persistent and state != libvirt.VIR_DOMAIN_SHUTOFF:
            inactive = parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        return vm_info(
            name=name,
            vm_uuid=vm_uuid,
            state=state,
            reason=reason,
            persistent=persistent,
            autostart=bool(dom.autostart()) if persistent else False,
            root=root,
            inactive=inactive,
            host_uid=host_uid,
            snapshots=self._snapshots(dom),
        )

    @staticmethod
    def _snapshots(dom: Any) -> list[SnapshotInfo]:
        try:
            snaps = dom.listAllSnapshots(0)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                return []  # e.g. LXC: the hypervisor has no snapshots
            raise
        if not snaps:
            return []
        try:
            current = str(dom.snapshotCurrent(0).getName())
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise
            current = None
        result = []
        for snap in snaps:
            name = str(snap.getName())
            try:
                xml = snap.getXMLDesc(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                    continue  # deleted meanwhile, e.g. by a backup tool's short-lived snapshot
                raise
            result.append(parse_snapshot(xml, name, name == current))
        return result

    def _pools(self, conn: Any) -> list[PoolInfo]:
        with self.errors(f"cannot list storage pools of {redact(self.uri)}"):
            try:
                pools = conn.listAllStoragePools(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return []
                raise
        result = []
        for pool in pools:
            info = self.skip_vanished(self.pool_info, pool, libvirt.VIR_ERR_NO_STORAGE_POOL, "storage pool")
            if info is not None:
                result.append(info)
        return result

    def _networks(self, conn: Any) -> list[NetworkInfo]:
        with self.errors(f"cannot list networks of {redact(self.uri)}"):
            try:
                networks = conn.listAllNetworks(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return []
                raise
        result = []
        for net in networks:
            info = self.skip_vanished(self._network_info, net, libvirt.VIR_ERR_NO_NETWORK, "network")
            if info is not None:
                result.append(info)
        return result

    @staticmethod
    def _network_info(net: Any) -> NetworkInfo:
        info = NetworkInfo(
            name=str(net.name()),
            uuid=str(net.UUIDString()),
            active=bool(net.isActive()),
            autostart=bool(net.autostart()),
            persistent=bool(net.isPersistent()),
        )
        parse_network_xml(info, net.XMLDesc(0))
        return info

    # -- reading one VM, and the environment check -----------------------------------------

    def vm_state(self, vm_id: str) -> VMStateReading:
        """The domain's state and reason right now."""
        dom = self.domain(vm_id)
        with self.errors(f"cannot read the state of VM {dom.name()!r}"):
            read_at = _now()
            state, reason = dom.state(0)
        return VMStateReading(
            uuid=vm_id, state=state_name(state), state_reason=reason_name(state, reason), read_at=read_at
        )

    def vm_host(self, vm_id: str) -> str:
        """This connection's host uid when the domain runs (or is paused) there, else ""."""
        dom = self.domain(vm_id)
        with self.errors(f"cannot read the state of VM {dom.name()!r}"):
            active = bool(dom.isActive())
        return self.host_uid() if active else ""

    def verify(self, vm_ids: list[str]) -> EnvironmentCheck:
        """The host answers with these credentials, and knows each of ``vm_ids``.

        Never raises for a platform problem: a failure is the check's outcome.
        """
        try:
            conn = self.connection()
            with self.errors(f"cannot check {redact(self.uri)}"):
                # Cheap calls: getVersion/getCapabilities can make a QEMU daemon probe its binaries.
                product = f"libvirt {version(int(conn.getLibVersion()))} ({conn.getType()})"
                known = {str(d.UUIDString()).lower(): str(d.name()) for d in conn.listAllDomains(0)}
        except DriverError as err:
            failed = {vm_id: VMCheck(ok=False, reason=err.message) for vm_id in vm_ids}
            return EnvironmentCheck(ok=False, reason=err.message, retryable=err.retryable, vms=failed)
        check = EnvironmentCheck(ok=True, product=product)
        for vm_id in vm_ids:
            name = known.get(vm_id.lower())
            if name is None:
                check.vms[vm_id] = VMCheck(ok=False, reason=f"VM {vm_id} is not known to the host")
            else:
                check.vms[vm_id] = VMCheck(ok=True, name=name)
        failing = sum(1 for c in check.vms.values() if not c.ok)
        if failing:
            check.ok = False
            check.reason = f"{failing} VM(s) are not known to the host"
        return check

    # -- operations ----------------------------------------------------------------------

    def _act(self, vm_id: str, verb: str, call: Callable[[Any], object], refuse: Callable[[int], str]) -> None:
        """Run ``call(dom)`` unless ``refuse(state)`` gives a reason why it makes no sense.

        Checking the state first gives one clear message across hypervisor drivers (the test
        driver answers "internal error" where QEMU says "operation is not valid").
        """
        with self.changing(f"cannot {verb} VM {vm_id}"):
            dom = self.domain(vm_id)
            name = str(dom.name())
            with self.errors(f"cannot {verb} VM {name!r}"):
                state, _ = dom.state(0)
                problem = refuse(state)
                if problem:
                    raise DriverError(f"VM {name!r} {problem}")
                call(dom)

    def start(self, vm_id: str) -> None:
        """Start a shut-off domain."""
        self._act(vm_id, "start", lambda dom: dom.create(), _refuse_unless_off)

    def shutdown(self, vm_id: str) -> None:
        """Ask the guest to shut down; returns at once (the caller waits for the state)."""
        self._act(vm_id, "shut down", lambda dom: dom.shutdown(), _refuse_if_off)

    def power_off(self, vm_id: str) -> None:
        """Stop the domain at once, like pulling the plug (virDomainDestroy)."""
        self._act(vm_id, "power off", lambda dom: dom.destroy(), _refuse_if_off)

    def reboot(self, vm_id: str) -> None:
        """Ask the guest to reboot."""
        self._act(vm_id, "reboot", lambda dom: dom.reboot(0), _refuse_if_off)

    def suspend(self, vm_id: str) -> None:
        """Pause the domain's virtual CPUs (it stays in memory)."""
        self._act(vm_id, "suspend", lambda dom: dom.suspend(), _refuse_unless_running)

    def resume(self, vm_id: str) -> None:
        """Resume a paused domain."""
        self._act(vm_id, "resume", lambda dom: dom.resume(), _refuse_unless_paused)

    def migrate(self, vm_id: str, host_uid: str | None = None) -> None:
        """Not offered: a libvirt host is migrated from with its own tools (virsh migrate)."""
        raise DriverError("libvirt live migration is not run from this console", retryable=False)

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None:
        """Take a snapshot named ``name`` (any characters; the XML is built, not formatted)."""
        if not name.strip():
            raise DriverError("a snapshot needs a name")
        root = ET.Element("domainsnapshot")
        ET.SubElement(root, "name").text = name
        if description:
            ET.SubElement(root, "description").text = description
        xml = ET.tostring(root, encoding="unicode")
        with self.changing(f"cannot create snapshot {name!r} of VM {vm_id}"):
            dom = self.domain(vm_id)
            with self.errors(f"cannot create snapshot {name!r} of VM {dom.name()!r}"):
                dom.snapshotCreateXML(xml, 0)

    def snapshot_revert(self, vm_id: str, name: str) -> None:
        """Return the domain to the snapshot ``name``."""
        with self.changing(f"cannot revert VM {vm_id} to snapshot {name!r}"):
            dom = self.domain(vm_id)
            snap = self._snapshot(dom, name)
            with self.errors(f"cannot revert VM {dom.name()!r} to snapshot {name!r}"):
                dom.revertToSnapshot(snap, 0)

    def snapshot_delete(self, vm_id: str, name: str) -> None:
        """Delete the snapshot ``name`` (its children are kept and re-parented)."""
        with self.changing(f"cannot delete snapshot {name!r} of VM {vm_id}"):
            dom = self.domain(vm_id)
            snap = self._snapshot(dom, name)
            with self.errors(f"cannot delete snapshot {name!r} of VM {dom.name()!r}"):
                snap.delete(0)

    def _snapshot(self, dom: Any, name: str) -> Any:
        try:
            return dom.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise DriverError(f"snapshot {name!r} of VM {dom.name()!r} not found") from err
            raise self.error(err, f"cannot look up snapshot {name!r}") from err


def _refuse_unless_off(state: int) -> str:
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return "is already running"
    if state in (
        libvirt.VIR_DOMAIN_PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
        libvirt.VIR_DOMAIN_PMSUSPENDED,
    ):
        return f"is already running ({state_name(state)})"
    return ""


def _refuse_if_off(state: int) -> str:
    return "is not running" if state == libvirt.VIR_DOMAIN_SHUTOFF else ""


def _refuse_unless_running(state: int) -> str:
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return "is already paused"
    return _refuse_if_off(state)


def _refuse_unless_paused(state: int) -> str:
    return "" if state == libvirt.VIR_DOMAIN_PAUSED else f"is not paused (it is {state_name(state)})"


if TYPE_CHECKING:
    # mypy proves here that the class satisfies the Driver protocol.
    def _as_driver(driver: LibvirtDriver) -> Driver:
        return driver
