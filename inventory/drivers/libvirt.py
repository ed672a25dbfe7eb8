"""The libvirt driver: KVM/QEMU hosts (and the ``test:///`` driver used by demos and tests).

One :class:`LibvirtDriver` talks to one libvirt URI, i.e. one host. It discovers every defined
domain (running, paused, shut off, transient) with its disks, NICs and snapshots, plus the host's
storage pools, volumes and networks, and runs power and snapshot operations on a domain by UUID.

Every ``libvirt.libvirtError`` leaves this module as a one-line :class:`DriverError` whose
``retryable`` flag says whether the failure was in reaching the host (retry later) or in the
request itself (retrying will not help).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import threading
import uuid as uuid_module
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

import libvirt

from inventory.drivers.base import (
    Credentials,
    DiskInfo,
    Driver,
    DriverError,
    HostFacts,
    InventorySnapshot,
    NetworkInfo,
    NicInfo,
    PoolInfo,
    SnapshotInfo,
    VMInfo,
    VMStateReading,
    VolumeInfo,
)

__all__ = ["LibvirtDriver", "validate_uri"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# --- URIs ------------------------------------------------------------------------------------

# Hypervisor drivers a libvirt client can name in a URI scheme (``driver[+transport]``).
_URI_DRIVERS = frozenset(
    "qemu test xen libxl lxc ch bhyve vz openvz vbox vmwareplayer vmwarews vmwarefusion esx gsx vpx hyperv".split()
)
# "ext" runs an arbitrary local program to reach the host: never accepted from a console user.
_REMOTE_TRANSPORTS = frozenset({"ssh", "libssh2", "libssh", "tcp", "tls"})
# Query parameters that only choose how to authenticate or verify. Others (command=, netcat=,
# socket=, …) make libvirt run a program or open a path of the caller's choosing on this machine.
_SAFE_QUERY_PARAMS = frozenset(
    {"keyfile", "known_hosts", "known_hosts_verify", "no_verify", "no_tty", "pkipath", "sshauth", "mode"}
)
_URI_TRANSPORTS = _REMOTE_TRANSPORTS | {"unix"}
_QEMU_PATHS = ("/system", "/session")
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")


def validate_uri(uri: str) -> str | None:
    """Say what is wrong with a libvirt URI, in one line, or return ``None`` when it looks fine.

    Only the shape is checked (scheme, transport, host, path); whether the host answers is found
    out by connecting.
    """
    if not uri:
        return "the URI is empty (e.g. qemu:///system)"
    if _CONTROL_OR_SPACE.search(uri):
        return "the URI contains whitespace or control characters"
    try:
        parts = urlsplit(uri)
        port = parts.port  # urlsplit only validates the port when it is asked for
    except ValueError as err:
        return f"the URI cannot be parsed: {err}"
    if not parts.scheme or not uri[len(parts.scheme) :].startswith("://"):
        return "expected driver[+transport]://[user@host]/path, e.g. qemu+ssh://root@kvm01/system"
    driver, _, transport = parts.scheme.partition("+")
    if driver not in _URI_DRIVERS:
        return f"unknown libvirt driver {driver!r} (expected qemu, test, xen, lxc …)"
    if transport and transport not in _URI_TRANSPORTS:
        return f"unknown transport {transport!r} (expected one of {', '.join(sorted(_URI_TRANSPORTS))})"
    if transport in _REMOTE_TRANSPORTS and not parts.hostname:
        return f"a {parts.scheme}:// URI needs a host, e.g. {parts.scheme}://root@kvm01/system"
    if transport == "unix" and parts.netloc:
        return "a +unix URI talks to the local daemon and cannot name a host"
    if port is not None and not parts.hostname:
        return "a port was given without a host"
    if parts.fragment:
        return "the URI cannot have a #fragment"
    unsafe = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)} - _SAFE_QUERY_PARAMS)
    if unsafe:
        return f"URI parameter {unsafe[0]!r} is not allowed (allowed: {', '.join(sorted(_SAFE_QUERY_PARAMS))})"
    if driver == "qemu" and parts.path not in _QEMU_PATHS:
        return f"a qemu URI needs the path /system or /session, not {parts.path or 'none'!r}"
    if driver == "test":
        if not transport and parts.netloc:
            # "test://dir/node.xml" (two slashes) silently means a TLS connection to host "dir".
            return "a local test URI has no host: write test:///default or test:///path/node.xml"
        if parts.path in ("", "/") or parts.path.endswith("/"):
            return "a test URI needs /default or the absolute path of a node XML file"
        if parts.path != "/default" and not parts.path.endswith(".xml"):
            return "a test URI names a node file ending in .xml, or /default"
        if parts.query:
            return "a test URI takes no parameters"
    return None


def _redact(uri: str) -> str:
    """The URI without a password in its user part, so it can go into messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- libvirt enums as names ------------------------------------------------------------------

_STATE_NAMES: dict[int, str] = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# Reason codes are per state and their numbers are part of libvirt's stable ABI, so a tuple
# indexed by the code is exact; the names are the lower-cased enum suffixes
# (VIR_DOMAIN_SHUTOFF_DESTROYED -> "destroyed").
_REASON_NAMES: dict[int, tuple[str, ...]] = {
    libvirt.VIR_DOMAIN_NOSTATE: ("unknown",),
    libvirt.VIR_DOMAIN_RUNNING: tuple(
        "unknown booted migrated restored from_snapshot unpaused migration_canceled save_canceled wakeup crashed"
        " postcopy postcopy_failed".split()
    ),
    libvirt.VIR_DOMAIN_BLOCKED: ("unknown",),
    libvirt.VIR_DOMAIN_PAUSED: tuple(
        "unknown user migration save dump ioerror watchdog from_snapshot shutting_down snapshot crashed starting_up"
        " postcopy postcopy_failed api_error".split()
    ),
    libvirt.VIR_DOMAIN_SHUTDOWN: ("unknown", "user"),
    libvirt.VIR_DOMAIN_SHUTOFF: tuple(
        "unknown shutdown destroyed crashed migrated saved failed from_snapshot daemon".split()
    ),
    libvirt.VIR_DOMAIN_CRASHED: ("unknown", "panicked"),
    libvirt.VIR_DOMAIN_PMSUSPENDED: ("unknown",),
}

_POOL_STATE_NAMES: dict[int, str] = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: "inactive",
    libvirt.VIR_STORAGE_POOL_BUILDING: "building",
    libvirt.VIR_STORAGE_POOL_RUNNING: "running",
    libvirt.VIR_STORAGE_POOL_DEGRADED: "degraded",
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: "inaccessible",
}


def _state_name(state: int) -> str:
    return _STATE_NAMES.get(state, f"unknown-{state}")


def _reason_name(state: int, reason: int) -> str:
    names = _REASON_NAMES.get(state, ())
    # A newer daemon may report a reason this table does not know yet; keep the number visible.
    return names[reason] if 0 <= reason < len(names) else f"reason-{reason}"


# --- error translation -----------------------------------------------------------------------

_AUTH_ERRORS = frozenset(
    {
        libvirt.VIR_ERR_AUTH_FAILED,
        libvirt.VIR_ERR_AUTH_CANCELLED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    }
)
# Failures of reaching or talking to the daemon: the same call can succeed later.
_RETRYABLE_ERRORS = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    }
)
_TRANSPORT_ERROR_DOMAINS = frozenset({libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_text(err: libvirt.libvirtError) -> str:
    return _one_line(err.get_error_message() or str(err)) or "unknown libvirt error"


def _is_retryable(err: libvirt.libvirtError) -> bool:
    code = err.get_error_code()
    if code in _RETRYABLE_ERRORS:
        return True
    # An "internal error" raised by the remote layer is a broken connection (e.g. "client socket
    # is closed"), unlike an internal error of a hypervisor driver about the request itself.
    return bool(code == libvirt.VIR_ERR_INTERNAL_ERROR and err.get_error_domain() in _TRANSPORT_ERROR_DOMAINS)


def _is_auth_error(err: libvirt.libvirtError) -> bool:
    return bool(err.get_error_code() in _AUTH_ERRORS or err.get_error_domain() == libvirt.VIR_FROM_AUTH)


_error_handler_installed = False


def _silence_libvirt_stderr() -> None:
    """Stop libvirt-python printing every error to stderr: errors reach callers as DriverError."""
    global _error_handler_installed
    if not _error_handler_installed:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _error_handler_installed = True


# --- XML helpers -----------------------------------------------------------------------------

# libvirt's scaled-integer units: "KB" is 1000 bytes, "K" and "KiB" are 1024.
_UNIT_FACTORS: dict[str, int] = {"b": 1, "bytes": 1}
for _power, _letter in enumerate("kmgtpe", start=1):
    _UNIT_FACTORS[f"{_letter}b"] = 1000**_power
    _UNIT_FACTORS[_letter] = _UNIT_FACTORS[f"{_letter}ib"] = 1024**_power


def _parse_xml(text: str) -> ET.Element:
    """Parse XML produced by a libvirt daemon.

    libvirt never writes a DTD, so a document declaring one did not come from libvirt; refusing
    it keeps entity-expansion tricks from a compromised host away from the parser.
    """
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ET.ParseError("unexpected DTD in libvirt XML")
    return ET.fromstring(text)  # noqa: S314 - DTDs are refused above


def _bytes(elem: ET.Element | None, default_unit: str) -> int:
    """A libvirt scaled integer (``<memory unit='KiB'>1024</memory>``) in bytes."""
    if elem is None or not (elem.text or "").strip():
        return 0
    unit = (elem.get("unit") or default_unit).lower()
    try:
        return int((elem.text or "0").strip()) * _UNIT_FACTORS.get(unit, 1)
    except ValueError:
        return 0


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _attr(elem: ET.Element | None, name: str) -> str:
    return (elem.get(name) or "") if elem is not None else ""


def _text(elem: ET.Element, path: str) -> str:
    return (elem.findtext(path) or "").strip()


def _version(number: int) -> str:
    """libvirt packs versions as major * 1,000,000 + minor * 1,000 + micro."""
    return f"{number // 1_000_000}.{number // 1_000 % 1_000}.{number % 1_000}"


def _source_of(elem: ET.Element) -> tuple[str, str, str]:
    """The (source, pool, volume) of a ``<disk>`` or ``<backingStore>`` by its ``type``."""
    kind = elem.get("type") or "file"
    src = elem.find("source")
    if src is None:
        return "", "", ""  # e.g. an empty CD-ROM drive, or the end of a backing chain
    if kind == "file":
        return src.get("file") or "", "", ""
    if kind == "block":
        return src.get("dev") or "", "", ""
    if kind == "dir":
        return src.get("dir") or "", "", ""
    if kind == "volume":
        pool, volume = src.get("pool") or "", src.get("volume") or ""
        return f"{pool}/{volume}", pool, volume
    if kind == "network":
        host = src.find("host")
        address = _attr(host, "name") or _attr(host, "socket")
        if _attr(host, "port"):
            address = f"{address}:{_attr(host, 'port')}"
        return f"{src.get('protocol') or ''}://{address}/{src.get('name') or ''}", "", ""
    # nvme, vhostuser …: no single path names them; keep whatever identifying attribute exists.
    return src.get("file") or src.get("dev") or src.get("path") or "", "", ""


def _backing_chain(disk: ET.Element) -> list[str]:
    chain: list[str] = []
    store = disk.find("backingStore")
    while store is not None:
        source, _, _ = _source_of(store)
        if not source:
            break
        chain.append(source)
        store = store.find("backingStore")
    return chain


def _parse_disk(disk: ET.Element, persistent_targets: set[str] | None) -> DiskInfo:
    target_elem = disk.find("target")
    driver = disk.find("driver")
    target = _attr(target_elem, "dev")
    source, pool, volume = _source_of(disk)
    return DiskInfo(
        target=target,
        bus=_attr(target_elem, "bus"),
        device=disk.get("device") or "disk",
        source_type=disk.get("type") or "file",
        source=source,
        source_pool=pool,
        source_volume=volume,
        driver_format=_attr(driver, "type"),
        cache=_attr(driver, "cache"),
        serial=_text(disk, "serial"),
        wwn=_text(disk, "wwn"),
        read_only=disk.find("readonly") is not None,
        shareable=disk.find("shareable") is not None,
        backing_chain=_backing_chain(disk),
        persistent=persistent_targets is None or target in persistent_targets,
    )


def _parse_nic(iface: ET.Element) -> NicInfo:
    src = iface.find("source")
    return NicInfo(
        mac=_attr(iface.find("mac"), "address"),
        type=iface.get("type") or "",
        # A running domain's network interface also shows the bridge; the network is the name
        # administrators configured, so it wins.
        source=_attr(src, "network") or _attr(src, "bridge") or _attr(src, "dev"),
        model=_attr(iface.find("model"), "type"),
        target=_attr(iface.find("target"), "dev"),
    )


def _disk_targets(root: ET.Element) -> set[str]:
    return {_attr(disk.find("target"), "dev") for disk in root.iterfind("devices/disk")}


def _parse_snapshot(xml: str, name: str, current: bool) -> SnapshotInfo:
    root = _parse_xml(xml)
    created_text = _text(root, "creationTime")
    created = dt.datetime.fromtimestamp(int(created_text), tz=dt.UTC) if created_text.isdigit() else None
    return SnapshotInfo(
        name=name,
        created=created,
        state=_text(root, "state"),
        description=_text(root, "description"),
        parent=_text(root, "parent/name"),
        current=current,
    )


def _pool_source(root: ET.Element) -> str:
    src = root.find("source")
    if src is None:
        return ""
    host = _attr(src.find("host"), "name")
    directory = _attr(src.find("dir"), "path")
    devices = [d.get("path") or "" for d in src.iterfind("device")]
    name = _text(src, "name")
    if host and directory:
        return f"{host}:{directory}"  # netfs, glusterfs
    if host and devices:
        return f"{host}:{devices[0]}"  # iscsi: portal and IQN
    if name:
        return name  # logical VG (rather than its PVs), rbd pool, zfs pool
    if devices:
        return ",".join(d for d in devices if d)  # disk, fs
    if directory:
        return directory
    return _attr(src.find("adapter"), "name")  # scsi host adapter


def _parse_volume(xml: str, name: str, key: str) -> VolumeInfo:
    root = _parse_xml(xml)
    backing = root.find("backingStore")
    return VolumeInfo(
        name=name,
        key=key,
        path=_text(root, "target/path"),
        format=_attr(root.find("target/format"), "type"),
        capacity_bytes=_bytes(root.find("capacity"), "bytes"),
        allocation_bytes=_bytes(root.find("allocation"), "bytes"),
        backing_store=_text(backing, "path") if backing is not None else "",
        backing_format=_attr(backing.find("format"), "type") if backing is not None else "",
    )


def _volume_info(vol: Any) -> VolumeInfo:
    return _parse_volume(vol.XMLDesc(0), str(vol.name()), str(vol.key()))


def _netmask(ip: ET.Element) -> str:
    if ip.get("netmask"):
        return ip.get("netmask") or ""
    prefix = ip.get("prefix")
    if not prefix:
        return ""
    try:
        network = ipaddress.ip_network(f"{ip.get('address')}/{prefix}", strict=False)
    except ValueError:
        return prefix
    # IPv6 has no dotted netmask; its prefix length is what administrators read.
    return str(network.netmask) if network.version == 4 else prefix


def _parse_network_xml(info: NetworkInfo, xml: str) -> None:
    root = _parse_xml(xml)
    forward = root.find("forward")
    # <forward/> without a mode means NAT; no <forward> at all means an isolated network.
    info.forward_mode = (forward.get("mode") or "nat") if forward is not None else ""
    info.bridge = _attr(root.find("bridge"), "name")
    ip = root.find("ip")
    if ip is not None:
        info.ip_address = ip.get("address") or ""
        info.netmask = _netmask(ip)


# --- the driver ------------------------------------------------------------------------------


# libvirt's test driver loads its node file afresh on every open, so each connection is a new host
# in its initial state: a VM started through one connection is shut off again in the next. To behave
# like one host over time (the demo, tests of successive operations), a process keeps one connection
# per test:// node file, reopened when the file changes. Real hypervisor URIs are never kept.
_kept_lock = threading.Lock()
_kept: dict[tuple[str, str | None, str | None], tuple[tuple[int, int], Any]] = {}


def _node_file_stamp(uri: str) -> tuple[int, int] | None:
    parts = urlsplit(uri)
    if parts.scheme != "test" or parts.path in ("", "/default"):
        return None  # test:///default is already one shared host per process
    try:
        st = os.stat(parts.path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _kept_key(uri: str, credentials: Credentials | None) -> tuple[str, str | None, str | None]:
    return (uri, credentials.username if credentials else None, credentials.password if credentials else None)


def _kept_test_connection(uri: str, credentials: Credentials | None) -> Any:
    stamp = _node_file_stamp(uri)
    if stamp is None:
        return None
    with _kept_lock:
        entry = _kept.get(_kept_key(uri, credentials))
        if entry is None:
            return None
        if entry[0] != stamp:  # the node file was rewritten: start from its new contents
            del _kept[_kept_key(uri, credentials)]
            return None
        return entry[1]


def _keep_test_connection(uri: str, credentials: Credentials | None, conn: Any) -> None:
    stamp = _node_file_stamp(uri)
    if stamp is not None:
        with _kept_lock:
            _kept[_kept_key(uri, credentials)] = (stamp, conn)


def _is_kept_test_connection(conn: Any) -> bool:
    with _kept_lock:
        return any(kept is conn for _, kept in _kept.values())


def forget_test_connections(uri: str | None = None) -> None:
    """Drop kept test:// connections (all, or those of ``uri``), so the next open rereads the file."""
    with _kept_lock:
        for key in [k for k in _kept if uri is None or k[0] == uri]:
            _, conn = _kept.pop(key)
            try:
                conn.close()
            except libvirt.libvirtError:
                pass


class LibvirtDriver:
    """A :class:`~inventory.drivers.base.Driver` for one libvirt URI (one hypervisor host).

    The connection is opened on first use (or by :meth:`connect`) and kept until :meth:`close`;
    after a connection-level failure it is dropped so the next call reconnects. Use it as a
    context manager to be sure it is closed. Operations take the domain UUID.
    """

    def __init__(self, uri: str, credentials: Credentials | None = None) -> None:
        self.uri = uri
        self.credentials = credentials
        self._conn: Any = None  # a libvirt.virConnect; libvirt-python has no py.typed, so mypy sees Any

    # -- connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (it is otherwise opened by the first call that needs it)."""
        self._connection()

    def close(self) -> None:
        """Close the connection; the driver may be used again and will reconnect."""
        conn, self._conn = self._conn, None
        if conn is not None and _is_kept_test_connection(conn):
            return
        if conn is not None:
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

    def _connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        uri = _redact(self.uri)
        problem = validate_uri(self.uri)
        if problem:
            raise DriverError(f"invalid libvirt URI {uri!r}: {problem}")
        self._check_node_file()
        _silence_libvirt_stderr()
        kept = _kept_test_connection(self.uri, self.credentials)
        if kept is not None:
            self._conn = kept
            return kept
        try:
            if self.credentials is None:
                self._conn = libvirt.open(self.uri)
            else:
                self._conn = libvirt.openAuth(self.uri, self._auth(self.credentials), 0)
        except libvirt.libvirtError as err:
            if _is_auth_error(err):
                message = re.sub(r"^authentication failed:\s*", "", _error_text(err))
                raise DriverError(f"authentication failed for {uri}: {message}") from err
            if urlsplit(self.uri).scheme == "test" and err.get_error_code() in (
                libvirt.VIR_ERR_XML_ERROR,
                libvirt.VIR_ERR_XML_DETAIL,
                libvirt.VIR_ERR_INTERNAL_ERROR,
                libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
            ):
                # libxml2 quotes the offending line of the file: never repeat a file's contents.
                raise DriverError(f"cannot connect to {uri}: the file is not a valid libvirt test node file") from err
            raise DriverError(f"cannot connect to {uri}: {_error_text(err)}", retryable=_is_retryable(err)) from err
        if self._conn is None:  # old bindings returned None instead of raising
            raise DriverError(f"cannot connect to {uri}", retryable=True)
        _keep_test_connection(self.uri, self.credentials, self._conn)
        return self._conn

    def _check_node_file(self) -> None:
        # libxml2 prints its own "failed to load external entity" warning to stderr before
        # libvirt reports the error, so a missing node file is caught here instead.
        parts = urlsplit(self.uri)
        if parts.scheme == "test" and parts.path != "/default" and not os.path.isfile(parts.path):
            raise DriverError(f"cannot connect to {self.uri}: node file {parts.path} does not exist")

    @staticmethod
    def _auth(credentials: Credentials) -> list[Any]:
        def supply(creds: list[list[Any]], _data: object) -> int:
            for cred in creds:
                if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                    cred[4] = credentials.username or cred[3] or ""
                elif cred[0] == libvirt.VIR_CRED_PASSPHRASE and credentials.password is not None:
                    cred[4] = credentials.password
                else:
                    return -1  # cannot answer this prompt: libvirt reports auth as failed
            return 0

        return [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], supply, None]

    def _fail(self, err: libvirt.libvirtError, action: str) -> DriverError:
        """The DriverError for a libvirt error raised while doing ``action``."""
        retryable = _is_retryable(err)
        if retryable:
            forget_test_connections(self.uri)
            # The connection is likely dead; reconnect on the next call instead of reusing it.
            self.close()
        return DriverError(f"{action}: {_error_text(err)}", retryable=retryable)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as err:
            raise self._fail(err, action) from err
        except ET.ParseError as err:
            raise DriverError(f"{action}: unreadable XML from libvirt: {err}") from err

    # -- discovery -----------------------------------------------------------------------

    def discover(self) -> InventorySnapshot:
        """Read the host, all its domains, storage pools with volumes, and networks."""
        conn = self._connection()
        with self._errors(f"cannot discover {_redact(self.uri)}"):
            host = self._host_facts(conn)
            domains = conn.listAllDomains(0)
        snapshot = InventorySnapshot(hosts=[host])
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
        caps = _parse_xml(conn.getCapabilities())
        hostname = self._hostname(conn)
        model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = conn.getInfo()
        return HostFacts(
            uid=_text(caps, "host/uuid") or self._hardware_uuid(conn) or hostname,
            hostname=hostname,
            hypervisor_type=str(conn.getType()),
            hypervisor_version=_version(int(conn.getVersion())),
            libvirt_version=_version(int(conn.getLibVersion())),
            # virNodeInfo.model is the architecture on QEMU hosts; the capabilities name the CPU.
            cpu_model=_text(caps, "host/cpu/model") or str(model),
            cpu_arch=_text(caps, "host/cpu/arch"),
            cpu_sockets=int(nodes) * int(sockets),  # virNodeInfo counts sockets per NUMA node
            cpu_cores=int(cores),
            cpu_threads=int(threads),
            cpu_count=int(cpus),
            cpu_mhz=int(mhz),
            memory_bytes=int(memory_mib) * 1024 * 1024,
        )

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
            return _text(_parse_xml(device.XMLDesc(0)), "capability/hardware/uuid")
        except libvirt.libvirtError:
            return ""

    def _read_domain(self, dom: Any, host_uid: str) -> VMInfo | str | None:
        """One domain's facts; None when it vanished meanwhile; its UUID when it exists but is unreadable."""
        name, vm_uuid = str(dom.name()), str(dom.UUIDString())
        try:
            return self._domain_info(dom, name, vm_uuid, host_uid)
        except libvirt.libvirtError as err:
            if _is_retryable(err):
                raise self._fail(err, f"cannot discover {_redact(self.uri)}") from err
            # A single unreadable domain must not cost the whole host its inventory.
            gone = err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
            level = logging.INFO if gone else logging.WARNING
            logger.log(level, "skipping VM %s (%s) on %s: %s", name, vm_uuid, _redact(self.uri), _error_text(err))
            return None if gone else vm_uuid
        except ET.ParseError as err:
            logger.warning("skipping VM %s (%s) on %s: unreadable XML: %s", name, vm_uuid, _redact(self.uri), err)
            return vm_uuid

    def _domain_info(self, dom: Any, name: str, vm_uuid: str, host_uid: str) -> VMInfo:
        state, reason = dom.state(0)
        persistent = bool(dom.isPersistent())
        root = _parse_xml(dom.XMLDesc(0))
        persistent_targets: set[str] | None = None
        pending: list[DiskInfo] = []
        if persistent and state != libvirt.VIR_DOMAIN_SHUTOFF:
            # A disk hot-plugged without --config is only in the live XML; one added to the definition
            # of a running VM that cannot hot-plug it is only in the inactive XML, until the next start.
            inactive = _parse_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            persistent_targets = _disk_targets(inactive)
            live_targets = _disk_targets(root)
            for disk in inactive.iterfind("devices/disk"):
                if _attr(disk.find("target"), "dev") not in live_targets:
                    info = _parse_disk(disk, None)
                    info.extra["pending"] = "in the definition only: attached at the next start"
                    pending.append(info)
        vcpu = root.find("vcpu")
        max_vcpus = _int(vcpu.text if vcpu is not None else None)
        os_type = root.find("os/type")
        max_memory = _bytes(root.find("memory"), "KiB")
        return VMInfo(
            uuid=vm_uuid,
            name=name,
            state=_state_name(state),
            state_reason=_reason_name(state, reason),
            host_uid=host_uid,
            vcpus=_int(_attr(vcpu, "current") or None, max_vcpus),
            max_vcpus=max_vcpus,
            memory_bytes=_bytes(root.find("currentMemory"), "KiB") or max_memory,
            max_memory_bytes=max_memory,
            os_type=(os_type.text or "").strip() if os_type is not None else "",
            arch=_attr(os_type, "arch"),
            machine=_attr(os_type, "machine"),
            autostart=bool(dom.autostart()) if persistent else False,
            persistent=persistent,
            domain_type=root.get("type") or "",
            description=_text(root, "description"),
            disks=[_parse_disk(d, persistent_targets) for d in root.iterfind("devices/disk")] + pending,
            nics=[_parse_nic(i) for i in root.iterfind("devices/interface")],
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
            result.append(_parse_snapshot(xml, name, name == current))
        return result

    def _pools(self, conn: Any) -> list[PoolInfo]:
        with self._errors(f"cannot list storage pools of {_redact(self.uri)}"):
            try:
                pools = conn.listAllStoragePools(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return []
                raise
        result = []
        for pool in pools:
            info = self._skip_vanished(self._pool_info, pool, libvirt.VIR_ERR_NO_STORAGE_POOL, "storage pool")
            if info is not None:
                result.append(info)
        return result

    def _pool_info(self, pool: Any) -> PoolInfo:
        root = _parse_xml(pool.XMLDesc(0))
        state, capacity, allocation, available = pool.info()
        active = bool(pool.isActive())
        info = PoolInfo(
            uuid=str(pool.UUIDString()),
            name=str(pool.name()),
            type=root.get("type") or "",
            target_path=_text(root, "target/path"),
            source=_pool_source(root),
            capacity_bytes=int(capacity),
            allocation_bytes=int(allocation),
            available_bytes=int(available),
            state=_POOL_STATE_NAMES.get(state, f"unknown-{state}"),
            active=active,
            autostart=bool(pool.autostart()),
            persistent=bool(pool.isPersistent()),
        )
        if active:  # an inactive pool cannot list its volumes
            for vol in pool.listAllVolumes(0):
                volume = self._skip_vanished(
                    _volume_info, vol, libvirt.VIR_ERR_NO_STORAGE_VOL, f"pool {info.name}: volume"
                )
                if volume is not None:
                    info.volumes.append(volume)
        return info

    def _networks(self, conn: Any) -> list[NetworkInfo]:
        with self._errors(f"cannot list networks of {_redact(self.uri)}"):
            try:
                networks = conn.listAllNetworks(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return []
                raise
        result = []
        for net in networks:
            info = self._skip_vanished(self._network_info, net, libvirt.VIR_ERR_NO_NETWORK, "network")
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
        _parse_network_xml(info, net.XMLDesc(0))
        return info

    def _skip_vanished(self, read: Callable[[Any], _T], obj: Any, gone_code: int, kind: str) -> _T | None:
        """``read(obj)``, or None if the object was removed while discovery was running."""
        what = f"{kind} {obj.name()!r} on {_redact(self.uri)}"
        try:
            return read(obj)
        except libvirt.libvirtError as err:
            if err.get_error_code() == gone_code:
                logger.info("skipping %s: it disappeared during discovery", what)
                return None
            raise self._fail(err, f"cannot read {what}") from err
        except ET.ParseError as err:
            raise DriverError(f"cannot read {what}: unreadable XML: {err}") from err

    # -- operations ----------------------------------------------------------------------

    def _domain(self, vm_id: str) -> Any:
        try:
            uuid_module.UUID(vm_id)
        except ValueError:
            raise DriverError(f"invalid VM id {vm_id!r}: not a UUID") from None
        conn = self._connection()
        try:
            return conn.lookupByUUIDString(vm_id)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise DriverError(f"VM {vm_id} not found on {_redact(self.uri)}") from err
            raise self._fail(err, f"cannot look up VM {vm_id}") from err

    def vm_state(self, vm_id: str) -> VMStateReading:
        """The domain's state and reason right now."""
        dom = self._domain(vm_id)
        with self._errors(f"cannot read the state of VM {dom.name()!r}"):
            state, reason = dom.state(0)
        return VMStateReading(uuid=vm_id, state=_state_name(state), state_reason=_reason_name(state, reason))

    def _act(self, vm_id: str, verb: str, call: Callable[[Any], object], refuse: Callable[[int], str]) -> None:
        """Run ``call(dom)`` unless ``refuse(state)`` gives a reason why it makes no sense.

        Checking the state first gives one clear message across hypervisor drivers (the test
        driver answers "internal error" where QEMU says "operation is not valid").
        """
        dom = self._domain(vm_id)
        name = str(dom.name())
        with self._errors(f"cannot {verb} VM {name!r}"):
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

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None:
        """Take a snapshot named ``name`` (any characters; the XML is built, not formatted)."""
        if not name.strip():
            raise DriverError("a snapshot needs a name")
        root = ET.Element("domainsnapshot")
        ET.SubElement(root, "name").text = name
        if description:
            ET.SubElement(root, "description").text = description
        xml = ET.tostring(root, encoding="unicode")
        dom = self._domain(vm_id)
        with self._errors(f"cannot create snapshot {name!r} of VM {dom.name()!r}"):
            dom.snapshotCreateXML(xml, 0)

    def snapshot_revert(self, vm_id: str, name: str) -> None:
        """Return the domain to the snapshot ``name``."""
        dom = self._domain(vm_id)
        snap = self._snapshot(dom, name)
        with self._errors(f"cannot revert VM {dom.name()!r} to snapshot {name!r}"):
            dom.revertToSnapshot(snap, 0)

    def snapshot_delete(self, vm_id: str, name: str) -> None:
        """Delete the snapshot ``name`` (its children are kept and re-parented)."""
        dom = self._domain(vm_id)
        snap = self._snapshot(dom, name)
        with self._errors(f"cannot delete snapshot {name!r} of VM {dom.name()!r}"):
            snap.delete(0)

    def _snapshot(self, dom: Any, name: str) -> Any:
        try:
            return dom.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise DriverError(f"snapshot {name!r} of VM {dom.name()!r} not found") from err
            raise self._fail(err, f"cannot look up snapshot {name!r}") from err


def _refuse_unless_off(state: int) -> str:
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return "is already running"
    if state in (
        libvirt.VIR_DOMAIN_PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
        libvirt.VIR_DOMAIN_PMSUSPENDED,
    ):
        return f"is already running ({_state_name(state)})"
    return ""


def _refuse_if_off(state: int) -> str:
    return "is not running" if state == libvirt.VIR_DOMAIN_SHUTOFF else ""


def _refuse_unless_running(state: int) -> str:
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return "is already paused"
    return _refuse_if_off(state)


def _refuse_unless_paused(state: int) -> str:
    return "" if state == libvirt.VIR_DOMAIN_PAUSED else f"is not paused (it is {_state_name(state)})"


if TYPE_CHECKING:
    # Lets mypy prove that the class satisfies the Driver protocol.
    _satisfies_protocol: type[Driver] = LibvirtDriver
