"""Opening a libvirt connection, bounded in time, and turning libvirt errors into DriverError.

libvirt has no connect or read timeout of its own, so two hand-written pieces bound every call:

* before a remote URI is opened, :func:`~inventory.drivers.libvirt.probe.probe` checks within the
  connect timeout that the host answers (``virConnectOpen`` of a host that accepts the TCP
  connection and never answers waits forever);
* once it is open, libvirt's keepalive (which needs an event loop: this module runs libvirt's
  default one in a daemon thread) closes a connection whose daemon stops answering, so a call in
  flight fails within about the read timeout instead of hanging. A daemon that answers keepalives
  but takes long over one call (a big migration) is left to finish.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libvirt

from inventory.drivers.base import Credentials, DriverError
from inventory.drivers.libvirt.probe import probe
from inventory.drivers.libvirt.uri import redact, remote_endpoint, validate_uri
from vom.simulators import libvirt_node
from vom.simulators import state as simulator_state
from vom.simulators.state import Stamp

__all__ = [
    "current_test_connection",
    "drop_test_connections",
    "error_text",
    "forget_test_connections",
    "is_kept_test_connection",
    "is_retryable",
    "is_simulated_host",
    "keepalive_settings",
    "open_connection",
    "simulated_change",
]

logger = logging.getLogger(__name__)

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


def error_text(err: libvirt.libvirtError) -> str:
    """libvirt's message for ``err``, on one line."""
    return _one_line(err.get_error_message() or str(err)) or "unknown libvirt error"


def is_retryable(err: libvirt.libvirtError) -> bool:
    """Whether ``err`` is about reaching the daemon (retry later) rather than about the request."""
    code = err.get_error_code()
    if code in _RETRYABLE_ERRORS:
        return True
    # An "internal error" raised by the remote or RPC layer is a broken connection ("client socket
    # is closed", "connection closed due to keepalive timeout"), unlike an internal error of a
    # hypervisor driver about the request itself.
    return bool(code == libvirt.VIR_ERR_INTERNAL_ERROR and err.get_error_domain() in _TRANSPORT_ERROR_DOMAINS)


def _is_auth_error(err: libvirt.libvirtError) -> bool:
    return bool(err.get_error_code() in _AUTH_ERRORS or err.get_error_domain() == libvirt.VIR_FROM_AUTH)


_setup_lock = threading.Lock()
_error_handler_installed = False


def _silence_libvirt_stderr() -> None:
    """Stop libvirt-python printing every error to stderr: errors reach callers as DriverError."""
    global _error_handler_installed
    with _setup_lock:
        if not _error_handler_installed:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _error_handler_installed = True


# --- the event loop and keepalive ------------------------------------------------------------

_event_impl_registered = False
_event_loop_pid = 0  # the process whose daemon thread runs the loop (a forked child needs its own)


def _run_event_loop() -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            logger.warning("libvirt's event loop failed to run an iteration")


def _ensure_event_loop() -> None:
    """Register libvirt's default event loop once per process (before the first open: keepalive
    needs it) and run it in a daemon thread; a forked child starts its own thread."""
    global _event_impl_registered, _event_loop_pid
    with _setup_lock:
        if not _event_impl_registered:
            libvirt.virEventRegisterDefaultImpl()
            _event_impl_registered = True
        if _event_loop_pid != os.getpid():
            threading.Thread(target=_run_event_loop, name="libvirt-event-loop", daemon=True).start()
            _event_loop_pid = os.getpid()


def keepalive_settings(read_timeout: float) -> tuple[int, int]:
    """(interval, count) for ``virConnectSetKeepAlive``: a daemon that misses ``count`` pings sent
    ``interval`` seconds apart is taken as dead, which happens within about the read timeout."""
    interval = int(max(1, min(5, read_timeout / 3)))
    return interval, 3


# --- kept test:// connections: simulated hosts --------------------------------------------------

# libvirt's test driver loads its node file afresh on every open, so each connection is a new host
# in its initial state. To behave like one host over time, a process keeps one connection per
# test:// node file (reopened when the file changes), and the host's state is shared by every
# process of the machine: each change made through the driver is written to the host's sidecar
# node file in the simulator state directory (never next to the node file), and a process whose
# connection was loaded from an older state reloads before handing it out (see
# :mod:`vom.simulators.libvirt_node` for the files and the lock). Real hypervisor URIs are never kept.


@dataclass
class _Kept:
    """A kept connection, and the states of the node file and of the sidecar it was loaded from."""

    conn: Any
    source: str  # the node file
    source_stamp: tuple[int, int]  # the node file's (mtime_ns, size)
    sidecar_stamp: Stamp | None  # the sidecar accounted for: loaded, or ignored as stale; None: none
    source_root: ET.Element | None = None  # the node file, parsed for the first dump


_kept_lock = threading.Lock()
_kept: dict[tuple[str, str | None, str | None], _Kept] = {}
_state_paths: dict[tuple[Path, str], tuple[Path, Path]] = {}  # a realpath and a hash are worth keeping


def _node_file(uri: str) -> str | None:
    """The node file of a simulated host's URI (``test:///abs/path.xml``), else None."""
    if not uri.startswith("test:"):
        return None
    parts = urlsplit(uri)
    if parts.scheme != "test" or parts.path in ("", "/", "/default"):
        return None  # test:///default is already one shared host per process
    return parts.path


def is_simulated_host(uri: str) -> bool:
    """Whether ``uri`` is a simulated host (a libvirt ``test:///`` node file): its state is shared
    by every process of the machine, so a connection is checked for changes before it is used."""
    return _node_file(uri) is not None


def _file_stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _state_files(source: str) -> tuple[Path, Path]:
    """(sidecar, lock file) of the simulated host of node file ``source``."""
    key = (simulator_state.simulator_state_dir(), source)
    paths = _state_paths.get(key)
    if paths is None:
        paths = _state_paths[key] = simulator_state.sidecar_paths("libvirt", source, ".xml")
    return paths


def _read_origin(handle: Any) -> tuple[str, tuple[int, int]] | None:
    """(source path, its (mtime_ns, size)) recorded in a dumped node file (a binary file object).

    Only the start is read: the marker is the first element under ``<node>``.
    """
    try:
        for count, (_event, el) in enumerate(ET.iterparse(handle, events=("start",))):  # noqa: S314
            if el.tag == libvirt_node.SIDECAR_MARKER:
                return el.get("source", ""), (int(el.get("mtime_ns", "")), int(el.get("size", "")))
            if count >= 1:
                return None
    except (ET.ParseError, ValueError):
        return None
    return None


def _source_of(sidecar: Path) -> str | None:
    try:
        with open(sidecar, "rb") as handle:
            origin = _read_origin(handle)
    except OSError:
        return None
    return origin[0] if origin is not None else None


def _kept_key(uri: str, credentials: Credentials | None) -> tuple[str, str | None, str | None]:
    return (uri, credentials.username if credentials else None, credentials.password if credentials else None)


def _kept_test_connection(uri: str, credentials: Credentials | None) -> Any:
    """The kept connection for ``uri`` when neither its node file nor its sidecar changed since."""
    source = _node_file(uri)
    if source is None:
        return None
    stamp = _file_stamp(source)
    if stamp is None:
        return None
    sidecar_stamp = simulator_state.file_stamp(_state_files(source)[0])
    key = _kept_key(uri, credentials)
    with _kept_lock:
        entry = _kept.get(key)
        if entry is None:
            return None
        if entry.source_stamp != stamp or entry.sidecar_stamp != sidecar_stamp:
            del _kept[key]  # not closed: a driver may still hold it, and closes it itself
            return None
        return entry.conn


def current_test_connection(uri: str, credentials: Credentials | None) -> Any:
    """The kept connection for a simulated host whose sidecar did not change since it was loaded
    (one ``os.stat``), else None: the caller opens it again (:func:`open_connection`)."""
    source = _node_file(uri)
    if source is None:
        return None
    sidecar_stamp = simulator_state.file_stamp(_state_files(source)[0])
    with _kept_lock:
        entry = _kept.get(_kept_key(uri, credentials))
    if entry is None or entry.sidecar_stamp != sidecar_stamp:
        return None
    return entry.conn


def _sidecar_to_load(source: str, source_stamp: tuple[int, int]) -> tuple[int | None, Stamp | None]:
    """(an open descriptor of the host's sidecar when it is the state to load, the sidecar's stamp).

    The descriptor pins that version of the file while libvirt reads it (a writer replaces the file,
    never rewrites it). A sidecar made from another version of the node file is stale: it is
    ignored (the node file wins) and its stamp returned, so it is not looked at again.
    """
    sidecar = _state_files(source)[0]
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        st = os.fstat(fd)
        stamp: Stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with os.fdopen(os.dup(fd), "rb") as handle:
            origin = _read_origin(handle)
    except OSError:
        os.close(fd)
        return None, None
    if origin != (source, source_stamp):
        os.close(fd)
        return None, stamp
    return fd, stamp


def is_kept_test_connection(conn: Any) -> bool:
    """Whether ``conn`` is a kept test:// connection (closing a driver leaves it open)."""
    with _kept_lock:
        return any(entry.conn is conn for entry in _kept.values())


def drop_test_connections(uri: str) -> list[_Kept]:
    """Close this process's kept connections to ``uri`` (the next open reads the host's state again);
    the saved state of the host stays."""
    with _kept_lock:
        dropped = [_kept.pop(key) for key in [k for k in _kept if k[0] == uri]]
    for entry in dropped:
        try:
            entry.conn.close()
        except libvirt.libvirtError:
            pass
    return dropped


def forget_test_connections(uri: str | None = None) -> None:
    """Drop kept test:// connections (all, or those of ``uri``) and the saved state of their hosts,
    so the next open starts every process from the node file again."""
    if uri is None:
        with _kept_lock:
            uris = {key[0] for key in _kept}
    else:
        uris = {uri}
    dropped = [entry for each in uris for entry in drop_test_connections(each)]
    sources = {entry.source for entry in dropped}
    source = _node_file(uri) if uri is not None else None
    if source is not None:
        sources.add(source)
    for path in sources:
        sidecar, lock = _state_files(path)
        if simulator_state.file_stamp(sidecar) is None:
            continue  # never changed: no lock file is made for it
        with simulator_state.host_lock(lock):  # not amid another's change; a waiter locks a new file
            for file in (sidecar, lock):
                with suppress(FileNotFoundError):
                    os.unlink(file)


@contextmanager
def simulated_change(
    uri: str, credentials: Credentials | None, *, connect_timeout: float, read_timeout: float
) -> Iterator[None]:
    """Around a change to the simulated host ``uri``: hold the host's lock, reload the kept
    connection if another process changed the host, and write the host's state afterwards.

    The block uses the kept connection (the driver hands it out). When the state cannot be written,
    the change is not kept in this process either (it would be seen here and nowhere else).
    """
    source = _node_file(uri)
    if source is None:
        raise ValueError(f"{redact(uri)} is not a simulated host")
    sidecar, lock = _state_files(source)
    held = ExitStack()
    try:
        held.enter_context(simulator_state.host_lock(lock))
    except OSError as err:  # the state directory is not writable
        raise DriverError(f"cannot lock simulated host {redact(uri)}: {err}") from err
    with held:
        open_connection(uri, credentials, connect_timeout=connect_timeout, read_timeout=read_timeout)
        try:
            yield
        except BaseException:
            _save_state(uri, credentials, sidecar, failed=True)
            raise
        _save_state(uri, credentials, sidecar, failed=False)


def _save_state(uri: str, credentials: Credentials | None, sidecar: Path, *, failed: bool) -> None:
    """Write the kept connection's host to ``sidecar`` (the caller holds the host's lock).

    Also after a failed change, which may have changed part of the host. A connection dropped in
    the block (a connection-level failure) has nothing to write.
    """
    key = _kept_key(uri, credentials)
    with _kept_lock:
        entry = _kept.get(key)
    if entry is None:
        return
    try:
        if entry.source_root is None:
            entry.source_root = ET.parse(entry.source).getroot()  # noqa: S314 - a node file of ours
        origin = (entry.source, *entry.source_stamp)
        data = libvirt_node.dump_node(entry.conn, entry.source_root, origin=origin)
        first = simulator_state.file_stamp(sidecar) is None
        entry.sidecar_stamp = simulator_state.write_atomically(sidecar, data)
        if first:  # a host's first saved state: remove those of hosts whose node file is gone
            simulator_state.prune_orphan_sidecars(_source_of, "libvirt-*.xml")
    except (OSError, ET.ParseError, libvirt.libvirtError) as err:
        with _kept_lock:
            if _kept.get(key) is entry:
                del _kept[key]  # the next use reloads the state every other process sees
        message = f"cannot save the state of simulated host {redact(uri)}: {err}"
        if failed:
            logger.warning("%s", message)
            return
        raise DriverError(message) from err


# --- opening ---------------------------------------------------------------------------------


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


def _check_node_file(uri: str) -> None:
    # libxml2 prints its own "failed to load external entity" warning to stderr before
    # libvirt reports the error, so a missing node file is caught here instead.
    parts = urlsplit(uri)
    if parts.scheme == "test" and parts.path != "/default" and not os.path.isfile(parts.path):
        raise DriverError(f"cannot connect to {uri}: node file {parts.path} does not exist")


def _libvirt_open(uri: str, credentials: Credentials | None) -> Any:
    if credentials is None:
        return libvirt.open(uri)
    return libvirt.openAuth(uri, _auth(credentials), 0)


def _open_saved_state(fd: int, credentials: Credentials | None, shown: str) -> Any:
    """The simulated host opened from its sidecar (descriptor ``fd``), or None when libvirt cannot
    read it (the node file is opened instead); DriverError for refused credentials."""
    try:
        return _libvirt_open(f"test:///proc/self/fd/{fd}", credentials)
    except libvirt.libvirtError as err:
        if _is_auth_error(err):
            message = re.sub(r"^authentication failed:\s*", "", error_text(err))
            raise DriverError(f"authentication failed for {shown}: {message}") from err
        logger.warning("ignoring the saved state of simulated host %s: %s", shown, error_text(err))
        return None


def open_connection(uri: str, credentials: Credentials | None, *, connect_timeout: float, read_timeout: float) -> Any:
    """A ``libvirt.virConnect`` to ``uri`` (a kept one for a test:// node file), or DriverError.

    A remote host is probed first and gets keepalive once open (see the module docstring). A
    simulated host opens in the state its last change left it in (its sidecar), else from its file.
    """
    shown = redact(uri)
    problem = validate_uri(uri)
    if problem:
        raise DriverError(f"invalid libvirt URI {shown!r}: {problem}")
    _check_node_file(uri)
    _silence_libvirt_stderr()
    kept = _kept_test_connection(uri, credentials)
    if kept is not None:
        return kept
    _ensure_event_loop()
    endpoint = remote_endpoint(uri)
    if endpoint is not None:
        probe(endpoint, connect_timeout=connect_timeout, shown_uri=shown)
    source = _node_file(uri)
    source_stamp = _file_stamp(source) if source is not None else None
    fd: int | None = None
    sidecar_stamp: Stamp | None = None
    if source is not None and source_stamp is not None:
        fd, sidecar_stamp = _sidecar_to_load(source, source_stamp)
    try:
        conn = _open_saved_state(fd, credentials, shown) if fd is not None else None
        if conn is None:
            conn = _libvirt_open(uri, credentials)
    except libvirt.libvirtError as err:
        if _is_auth_error(err):
            message = re.sub(r"^authentication failed:\s*", "", error_text(err))
            raise DriverError(f"authentication failed for {shown}: {message}") from err
        if urlsplit(uri).scheme == "test" and err.get_error_code() in (
            libvirt.VIR_ERR_XML_ERROR,
            libvirt.VIR_ERR_XML_DETAIL,
            libvirt.VIR_ERR_INTERNAL_ERROR,
            libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
        ):
            # libxml2 quotes the offending line of the file: never repeat a file's contents.
            raise DriverError(f"cannot connect to {shown}: the file is not a valid libvirt test node file") from err
        raise DriverError(f"cannot connect to {shown}: {error_text(err)}", retryable=is_retryable(err)) from err
    finally:
        if fd is not None:
            os.close(fd)  # libvirt read the whole file while opening
    if conn is None:  # old bindings returned None instead of raising
        raise DriverError(f"cannot connect to {shown}", retryable=True)
    if endpoint is not None:
        interval, count = keepalive_settings(read_timeout)
        try:
            conn.setKeepAlive(interval, count)
        except libvirt.libvirtError as err:
            # A daemon too old for keepalive still works; its calls are then unbounded.
            logger.warning("no keepalive on %s: %s", shown, error_text(err))
    if source is not None and source_stamp is not None:
        with _kept_lock:
            _kept[_kept_key(uri, credentials)] = _Kept(conn, source, source_stamp, sidecar_stamp)
    return conn
