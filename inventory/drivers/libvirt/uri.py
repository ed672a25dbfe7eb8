"""libvirt URIs: what a console user may enter, where a remote one leads, and how it is shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

__all__ = ["RemoteEndpoint", "redact", "remote_endpoint", "validate_uri"]

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
# The ports libvirt's remote driver uses when the URI names none.
_DEFAULT_PORTS = {"tcp": 16509, "tls": 16514, "ssh": 22, "libssh": 22, "libssh2": 22}


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


@dataclass(frozen=True)
class RemoteEndpoint:
    """Where a remote libvirt URI connects to: the transport and the host's address."""

    transport: str  # tcp, tls, ssh, libssh, libssh2
    host: str
    port: int


def remote_endpoint(uri: str) -> RemoteEndpoint | None:
    """The host and port a (valid) remote URI reaches; None for a local one (qemu:///system, test:///…)."""
    parts = urlsplit(uri)
    if not parts.hostname:
        return None
    # A host without a transport (qemu://kvm01/system) is TLS, as in libvirt itself.
    transport = parts.scheme.partition("+")[2] or "tls"
    if transport not in _DEFAULT_PORTS:
        return None
    return RemoteEndpoint(transport, parts.hostname, parts.port or _DEFAULT_PORTS[transport])


def redact(uri: str) -> str:
    """The URI without a password in its user part, so it can go into messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))
