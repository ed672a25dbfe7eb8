"""Does a remote libvirt host answer? A bounded check made before ``libvirt.open``.

Hand-written because libvirt has no connect timeout: ``virConnectOpen`` of a remote URI whose host
accepts the TCP connection and then never answers waits forever (measured for qemu+tcp, qemu+ssh
and qemu+libssh2), and keepalive only starts once the open has returned. So before opening, this
module connects to the host itself, with the connect timeout, and asks for the first thing the
transport's server always says:

* ``+tcp``: one libvirt RPC call, REMOTE_PROC_AUTH_LIST (the first call every client makes); the
  daemon's reply header must come back.
* ``+tls`` (and a URI with a host but no transport): a TLS ClientHello; any answer will do.
* ``+ssh``, ``+libssh``, ``+libssh2``: the server's ``SSH-`` identification banner, which an SSH
  server sends unasked.

A host that answers is then opened by libvirt as usual (the probe's connection is closed first).
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

from inventory.drivers.base import DriverError
from inventory.drivers.libvirt.uri import RemoteEndpoint

__all__ = ["probe"]

# The libvirt RPC header (src/rpc/virnetprotocol.x), XDR big-endian after the length word.
_REMOTE_PROGRAM = 0x20008086
_REMOTE_PROTOCOL_VERSION = 1
_REMOTE_PROC_AUTH_LIST = 66
_CALL, _OK = 0, 0
_HEADER = struct.Struct(">IIIIiII")  # length (incl. itself), program, version, procedure, type, serial, status
_AUTH_LIST_CALL = _HEADER.pack(
    _HEADER.size, _REMOTE_PROGRAM, _REMOTE_PROTOCOL_VERSION, _REMOTE_PROC_AUTH_LIST, _CALL, 1, _OK
)
_SSH_BANNER_LIMIT = 8192  # RFC 4253 lets a server send other lines first; the banner comes early


class _Silent(Exception):
    """The host accepted the connection and then said nothing in time."""


class _Closed(Exception):
    """The host closed the connection without answering."""


def _read(sock: socket.socket, deadline: float, enough: int, until: bytes = b"") -> bytes:
    """Read until ``enough`` bytes (or ``until`` appears), the peer closes, or the deadline passes."""
    data = b""
    while len(data) < enough and not (until and until in data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Silent
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise _Silent from None
        if not chunk:
            if data:
                return data
            raise _Closed
        data += chunk
    return data


def _client_hello() -> bytes:
    """The bytes of a TLS ClientHello, made by Python's ssl without a socket (nothing is verified:
    whether the server answers is all that is asked)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def _ask(sock: socket.socket, endpoint: RemoteEndpoint, deadline: float) -> str:
    """Ask the transport's first question; "" when the answer is right, else what is wrong."""
    if endpoint.transport == "tcp":
        sock.sendall(_AUTH_LIST_CALL)
        reply = _read(sock, deadline, _HEADER.size)
        if len(reply) < _HEADER.size or _HEADER.unpack_from(reply)[1] != _REMOTE_PROGRAM:
            return "it does not answer like a libvirt daemon (is this the libvirtd TCP port?)"
        return ""
    if endpoint.transport == "tls":
        sock.sendall(_client_hello())
        _read(sock, deadline, 1)
        return ""
    banner = _read(sock, deadline, _SSH_BANNER_LIMIT, until=b"SSH-")
    return "" if b"SSH-" in banner else "it does not answer like an SSH server"


def probe(endpoint: RemoteEndpoint, *, connect_timeout: float, shown_uri: str) -> None:
    """Raise a :class:`DriverError` unless the host answers like a server of the URI's transport
    within ``connect_timeout`` seconds, for the connection and again for the answer.

    Name resolution is the system resolver's and is not bounded here.
    """
    where = f"{endpoint.host}:{endpoint.port}"
    prefix = f"cannot connect to {shown_uri}"
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=connect_timeout)
    except socket.gaierror as err:
        raise DriverError(f"{prefix}: cannot reach {endpoint.host}: {err.strerror or err}", retryable=True) from None
    except ConnectionRefusedError:
        raise DriverError(f"{prefix}: cannot reach {where}: connection refused", retryable=True) from None
    except TimeoutError:
        raise DriverError(
            f"{prefix}: cannot reach {where}: no answer to the connection within {connect_timeout:g} s",
            retryable=True,
        ) from None
    except OSError as err:
        raise DriverError(f"{prefix}: cannot reach {where}: {err.strerror or err}", retryable=True) from None
    try:
        problem = _ask(sock, endpoint, time.monotonic() + connect_timeout)
    except _Silent:
        raise DriverError(
            f"{prefix}: the host accepted the connection but did not answer within {connect_timeout:g} s",
            retryable=True,
        ) from None
    except _Closed:
        raise DriverError(f"{prefix}: {where} closed the connection without answering", retryable=True) from None
    except OSError as err:
        raise DriverError(f"{prefix}: {where}: {err.strerror or err}", retryable=True) from None
    finally:
        sock.close()
    if problem:
        raise DriverError(f"{prefix}: {where} answered, but {problem}")
