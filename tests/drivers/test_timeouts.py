"""Every platform call is bounded: a host that accepts connections and never answers (a "black hole")
costs about the connect or read timeout, and a closed port fails at once, as a retryable DriverError.

The real libraries run (libvirt-python, ovirtsdk4 over pycurl, pypsrp over requests) against plain
sockets on 127.0.0.1. Timings are asserted with a generous bound only: the point is "seconds, not
minutes or forever" (without the bounds: forever for libvirt and RHEV over HTTP, 300 s for RHEV
over HTTPS, 474 s for WinRM with the former defaults).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest

from inventory.drivers import driver_for
from inventory.drivers.base import Credentials, DriverError
from inventory.drivers.hyperv import HyperVDriver
from inventory.drivers.libvirt import LibvirtDriver
from inventory.drivers.rhev import RhevDriver
from tests.drivers.conftest import Server

TIMEOUT = 2.0  # connect and read timeout given to every driver here
BOUND = 20.0  # what "bounded" means in these tests: well above TIMEOUT plus curl's and libvirt's slack
CREDS = Credentials("admin@internal", "Hunter2-secret")


def failure_of(call: Callable[[], object]) -> tuple[DriverError, float]:
    started = time.monotonic()
    with pytest.raises(DriverError) as err:
        call()
    return err.value, time.monotonic() - started


def assert_clean(err: DriverError) -> None:
    message = str(err)
    assert err.retryable is True
    assert "\n" not in message and "pycurl" not in message and "object at 0x" not in message
    assert "Hunter2-secret" not in message


# --- libvirt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "tls", "ssh", "libssh", "libssh2"])
def test_libvirt_black_hole(black_hole: Server, transport: str) -> None:
    uri = f"qemu+{transport}://127.0.0.1:{black_hole.port}/system"
    driver = LibvirtDriver(uri, connect_timeout=TIMEOUT, read_timeout=TIMEOUT)
    err, elapsed = failure_of(driver.discover)
    assert elapsed < BOUND
    assert_clean(err)
    assert str(err) == (
        f"cannot connect to {uri}: the host accepted the connection but did not answer within {TIMEOUT:g} s"
    )


def test_libvirt_host_without_transport_is_tls(black_hole: Server) -> None:
    uri = f"qemu://127.0.0.1:{black_hole.port}/system"  # libvirt's default remote transport is TLS
    err, elapsed = failure_of(LibvirtDriver(uri, connect_timeout=TIMEOUT, read_timeout=TIMEOUT).discover)
    assert elapsed < BOUND
    assert "did not answer within 2 s" in str(err)


@pytest.mark.parametrize("transport", ["tcp", "tls", "ssh"])
def test_libvirt_closed_port(closed_port: int, transport: str) -> None:
    uri = f"qemu+{transport}://127.0.0.1:{closed_port}/system"
    err, elapsed = failure_of(LibvirtDriver(uri, connect_timeout=TIMEOUT, read_timeout=TIMEOUT).discover)
    assert elapsed < TIMEOUT
    assert_clean(err)
    assert str(err) == f"cannot connect to {uri}: cannot reach 127.0.0.1:{closed_port}: connection refused"


def test_libvirt_wrong_server_is_not_retryable() -> None:
    server = Server(lambda client: client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b" " * 64)).start()
    try:
        uri = f"qemu+tcp://127.0.0.1:{server.port}/system"
        err, _ = failure_of(LibvirtDriver(uri, connect_timeout=TIMEOUT, read_timeout=TIMEOUT).discover)
    finally:
        server.stop()
    assert "does not answer like a libvirt daemon" in str(err)
    assert err.retryable is False


def _pump(source: socket.socket, sink: socket.socket, frozen: threading.Event) -> None:
    try:
        while data := source.recv(65536):
            while frozen.is_set():
                time.sleep(0.05)  # hold the bytes: the daemon seems alive at TCP level but says nothing
            sink.sendall(data)
    except OSError:
        pass


@pytest.fixture
def libvirtd_over_tcp(libvirtd_uri: str) -> Iterator[tuple[str, threading.Event]]:
    """qemu+tcp:// to the real libvirtd, through a proxy to its UNIX socket that can be frozen."""
    frozen = threading.Event()
    sockets: list[socket.socket] = []

    def serve(client: socket.socket) -> None:
        daemon = socket.socket(socket.AF_UNIX)
        daemon.connect("/run/libvirt/libvirt-sock")
        sockets.append(daemon)
        threading.Thread(target=_pump, args=(daemon, client, frozen), daemon=True).start()
        _pump(client, daemon, frozen)

    server = Server(serve).start()
    yield f"qemu+tcp://127.0.0.1:{server.port}/system", frozen
    frozen.clear()
    server.stop()
    for sock in sockets:
        sock.close()


@pytest.mark.integration
def test_libvirt_daemon_that_stops_answering_mid_session(libvirtd_over_tcp: tuple[str, threading.Event]) -> None:
    uri, frozen = libvirtd_over_tcp
    with LibvirtDriver(uri, connect_timeout=TIMEOUT, read_timeout=TIMEOUT) as driver:
        check = driver.verify([])  # the probe passes a real daemon, and calls work
        assert check.ok, check.reason
        frozen.set()
        err, elapsed = failure_of(lambda: driver.vm_host("00000000-0000-4000-8000-000000000001"))
    assert elapsed < BOUND  # keepalive: interval 1 s, 3 missed answers
    assert_clean(err)
    assert "keepalive" in str(err)


# --- RHEV ------------------------------------------------------------------------------------------


def rhev(url: str) -> RhevDriver:
    return RhevDriver(url, CREDS, insecure=True, connect_timeout=TIMEOUT, read_timeout=TIMEOUT)


@pytest.mark.parametrize(("scheme", "which"), [("http", "read"), ("https", "connect")])
def test_rhev_black_hole_on_the_sso_request(black_hole: Server, scheme: str, which: str) -> None:
    # The first request of a connection asks the SSO service for a token (user name and password).
    url = f"{scheme}://127.0.0.1:{black_hole.port}/ovirt-engine/api"
    driver = rhev(url)
    err, elapsed = failure_of(driver.discover)
    driver.close()
    assert elapsed < BOUND  # HTTP: curl averages the speed over 5 s, so a POST gives up after ~read + 5 s
    assert_clean(err)
    assert str(err) == f"discovery of {url}: the manager at {url} did not answer within 2 s ({which} timeout)"


def _sso_only(client: socket.socket) -> None:
    """Answer the SSO token request; then read every API request and never answer it."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = client.recv(65536)
        if not chunk:
            return
        request += chunk
    if b"/sso/oauth/token" not in request.split(b"\r\n", 1)[0]:
        return
    body = json.dumps({"access_token": "token", "token_type": "bearer"}).encode()
    client.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_rhev_manager_that_stops_answering_after_login() -> None:
    server = Server(_sso_only).start()
    url = f"http://127.0.0.1:{server.port}/ovirt-engine/api"
    try:
        driver = rhev(url)
        err, elapsed = failure_of(driver.discover)  # the API requests of the SDK's multi handle
        driver.close()
    finally:
        server.stop()
    assert elapsed < BOUND
    assert_clean(err)
    assert str(err) == f"discovery of {url}: the manager at {url} did not answer within 2 s (read timeout)"
    assert driver._conn is None  # dropped, not reused


def test_rhev_closed_port(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/ovirt-engine/api"
    err, elapsed = failure_of(rhev(url).discover)
    assert elapsed < TIMEOUT
    assert_clean(err)
    assert f"cannot reach the manager at {url}" in str(err)


# --- Hyper-V ---------------------------------------------------------------------------------------


def hyperv(port: int, *, auth: str = "ntlm", ssl: bool = False) -> HyperVDriver:
    return HyperVDriver(
        "127.0.0.1",
        Credentials("admin", "Hunter2-secret"),
        auth=auth,
        ssl=ssl,
        port=port,
        cert_validation=False,
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
    )


@pytest.mark.parametrize(("auth", "ssl"), [("ntlm", False), ("basic", True)])
def test_hyperv_black_hole(black_hole: Server, auth: str, ssl: bool) -> None:
    driver = hyperv(black_hole.port, auth=auth, ssl=ssl)
    err, elapsed = failure_of(driver.discover)
    driver.close()
    assert elapsed < BOUND
    assert_clean(err)
    assert "timed out" in str(err) and "within 2 s" in str(err)


def test_hyperv_receive_is_not_retried(black_hole: Server) -> None:
    # pypsrp retries a Receive five times with back-off (2 + 6 + 14 + 30 + 62 s): one try here.
    import requests
    from pypsrp.wsman import NAMESPACES

    from inventory.drivers.hyperv.wsman import BoundedWSMan

    wsman = BoundedWSMan(
        "127.0.0.1",
        port=black_hole.port,
        username="admin",
        password="pw",
        auth="basic",
        ssl=False,
        encryption="never",
        connection_timeout=2,
        read_timeout=2,
        operation_timeout=1,
    )
    receive = ET.Element(f"{{{NAMESPACES['rsp']}}}Receive")
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        wsman.receive("http://schemas.microsoft.com/powershell/Microsoft.PowerShell", receive)
    assert time.monotonic() - started < BOUND
    wsman.close()


def test_hyperv_closed_port(closed_port: int) -> None:
    err, elapsed = failure_of(hyperv(closed_port).discover)
    assert elapsed < TIMEOUT + 1
    assert_clean(err)
    assert "refused" in str(err)


# --- the factories pass the timeouts ---------------------------------------------------------------


def test_factories_pass_the_timeouts() -> None:
    options = {"connect_timeout": 3, "read_timeout": 40}
    libvirt_driver = driver_for("libvirt", "test:///default", Credentials(), options)
    assert isinstance(libvirt_driver, LibvirtDriver)
    assert (libvirt_driver.connect_timeout, libvirt_driver.read_timeout) == (3.0, 40.0)
    rhev_driver = driver_for("rhev", "https://m/ovirt-engine/api", CREDS, options)
    assert isinstance(rhev_driver, RhevDriver)
    assert (rhev_driver.connect_timeout, rhev_driver.read_timeout) == (3.0, 40.0)
    hyperv_driver = driver_for("hyperv", "hv1", Credentials("a", "b"), {**options, "auth": "ntlm"})
    assert isinstance(hyperv_driver, HyperVDriver)
    transport = hyperv_driver.transport
    assert (transport.connection_timeout, transport.read_timeout, transport.operation_timeout) == (3.0, 40.0, 30)  # type: ignore[attr-defined]


def test_factories_default_the_timeouts() -> None:
    driver = driver_for("libvirt", "test:///default", Credentials())
    assert isinstance(driver, LibvirtDriver)
    assert (driver.connect_timeout, driver.read_timeout) == (10.0, 120.0)
    hyperv_driver = driver_for("hyperv", "hv1", Credentials("a", "b"), {"auth": "ntlm"})
    transport = hyperv_driver.transport  # type: ignore[attr-defined]
    # WinRM may hold a Receive for the operation timeout: it stays below the read timeout.
    assert (transport.connection_timeout, transport.read_timeout, transport.operation_timeout) == (10.0, 120.0, 60)
