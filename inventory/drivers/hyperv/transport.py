"""Where the remote PowerShell call happens: the transport protocol, and WinRM through pypsrp.

:class:`PsrpTransport` is the real transport; tests and the demo's captured hosts
(``vom.simulators.hyperv_replay.transport_for_uri``, given by the provider services) replace it.
Every request to a WinRM service is bounded: the connect timeout for the connection, the read
timeout for each answer (see :mod:`.wsman` for why Receive needs a hand-written bound), and WinRM's
own operation timeout is kept below the read timeout.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from inventory.drivers.base import DriverError

__all__ = ["CAPTURED_PREFIX", "PipelineSource", "PowerShellTransport", "PsrpTransport"]

logger = logging.getLogger(__name__)

PipelineSource = Sequence[tuple[str, Mapping[str, object]]]


class PowerShellTransport(Protocol):
    """The one boundary where the remote PowerShell call happens (tests replace it)."""

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        """Run a fixed script with bound parameters; return the JSON text it printed."""
        ...

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: PipelineSource = ()) -> None:
        """Run one cmdlet with bound parameters.

        ``source`` lists cmdlets (name, bound parameters) run before it whose output is piped into
        it, e.g. ``[("Get-VM", {"Id": vm_id})]`` for ``Get-VM -Id … | Start-VM``. A switch is bound
        as ``True``/``False``.
        """
        ...

    def close(self) -> None: ...


_AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
_RETRYABLE_HTTP = frozenset({502, 503, 504})


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def operation_timeout_for(read_timeout: float) -> int:
    """WinRM's operation timeout for a read timeout: how long the service may hold a Receive before
    answering "no output yet". It must stay below the read timeout, or a slow command times out."""
    if read_timeout > 20:
        return max(1, min(60, int(read_timeout) - 10))
    return max(1, int(read_timeout / 2))


class PsrpTransport:
    """PowerShell Remoting over WinRM with pypsrp; one runspace pool, opened on first use.

    ``connection_timeout`` bounds connecting, ``read_timeout`` each wait for an answer (seconds);
    after a failure in reaching the service the pool is dropped and the next call opens a new one.
    """

    def __init__(
        self,
        server: str,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: str = "negotiate",
        ssl: bool = True,
        port: int | None = None,
        cert_validation: bool = True,
        connection_timeout: float = 10.0,
        read_timeout: float = 120.0,
        operation_timeout: int | None = None,
    ) -> None:
        auth = auth.lower()
        if auth not in _AUTHS:
            raise DriverError(f"unknown WinRM authentication {auth!r} (expected one of {', '.join(_AUTHS)})")
        if auth == "basic" and not ssl:
            raise DriverError(
                f"Basic authentication to {server} is refused over HTTP: it would send the password in clear; "
                "use HTTPS or NTLM/Kerberos/CredSSP"
            )
        if auth in ("basic", "credssp", "ntlm") and (not username or not password):
            raise DriverError(f"{auth} authentication to {server} needs a user name and a password")
        self.server = server
        self.username = username
        self._password = password
        self.auth = auth
        self.ssl = ssl
        self.port = port if port is not None else (5986 if ssl else 5985)
        self.cert_validation = cert_validation
        self.connection_timeout = connection_timeout
        self.operation_timeout = operation_timeout_for(read_timeout) if operation_timeout is None else operation_timeout
        self.read_timeout = max(read_timeout, self.operation_timeout + 1)
        self._pool: Any = None
        self._wsman: Any = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.server}:{self.port}/wsman"

    def __repr__(self) -> str:  # never the password
        return f"PsrpTransport({self.endpoint!r}, user={self.username!r}, auth={self.auth!r})"

    # -- errors

    def _scrub(self, text: str) -> str:
        text = _one_line(text)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _translate(self, err: BaseException, action: str) -> DriverError:
        """A one-line DriverError for anything pypsrp, requests or spnego raised."""
        import requests
        from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

        where = f"{action} on {self.endpoint}"
        if isinstance(err, DriverError):
            return err
        if isinstance(err, AuthenticationError):
            return DriverError(f"{where}: authentication failed for user {self.username!r} ({self.auth})")
        if isinstance(err, requests.exceptions.SSLError):
            return DriverError(f"{where}: TLS error: {self._scrub(_root_reason(err))}")
        if isinstance(err, requests.exceptions.ConnectTimeout):
            return DriverError(
                f"{where}: cannot connect: timed out: no connection within {self.connection_timeout:g} s"
                " (connect timeout)",
                retryable=True,
            )
        if isinstance(err, requests.exceptions.Timeout):
            return DriverError(
                f"{where}: timed out: the WinRM service did not answer within {self.read_timeout:g} s (read timeout)",
                retryable=True,
            )
        if isinstance(err, requests.exceptions.ConnectionError):
            return DriverError(f"{where}: cannot connect: {self._scrub(_root_reason(err))}", retryable=True)
        if isinstance(err, WinRMTransportError):
            code = int(err.code)
            return DriverError(f"{where}: HTTP {code} from the WinRM service", retryable=code in _RETRYABLE_HTTP)
        if isinstance(err, WSManFaultError):
            return DriverError(f"{where}: WS-Management fault: {self._scrub(err.reason or err.code or '')}")
        module = type(err).__module__
        if module.startswith(("spnego", "requests_credssp", "gssapi", "krb5")):
            return DriverError(f"{where}: authentication failed ({self.auth}): {self._scrub(str(err))}")
        if isinstance(err, ImportError):
            return DriverError(f"{where}: {self.auth} authentication is not available here: {self._scrub(str(err))}")
        return DriverError(f"{where}: {type(err).__name__}: {self._scrub(str(err))}")

    # -- the pool

    def _open(self) -> Any:
        if self._pool is not None:
            return self._pool
        from pypsrp.powershell import RunspacePool

        from inventory.drivers.hyperv.wsman import BoundedWSMan

        wsman: Any = None
        try:
            wsman = BoundedWSMan(
                self.server,
                port=self.port,
                username=self.username,
                password=self._password,
                auth=self.auth,
                ssl=self.ssl,
                cert_validation=self.cert_validation,
                # pypsrp's parameters are typed int; requests would take fractions, whole seconds do.
                connection_timeout=math.ceil(self.connection_timeout),
                read_timeout=math.ceil(self.read_timeout),
                operation_timeout=self.operation_timeout,
                reconnection_retries=0,  # a refused or timed-out connection fails at once
            )
            pool = RunspacePool(wsman)
            pool.open()
        except Exception as err:  # noqa: BLE001 - every library error becomes a DriverError
            if wsman is not None:
                wsman.close()
            raise self._translate(err, "cannot open a PowerShell session") from None
        self._pool, self._wsman = pool, wsman
        return pool

    def _drop(self) -> None:
        """Forget the pool without a word to the service (it is not answering): the next call opens anew."""
        wsman, self._pool, self._wsman = self._wsman, None, None
        if wsman is not None:
            wsman.close()  # only closes this side's HTTP connections

    def _run(self, build: Any, action: str) -> list[Any]:
        from pypsrp.powershell import PowerShell

        pool = self._open()
        try:
            ps = PowerShell(pool)
            build(ps)
            output: list[Any] = ps.invoke()
        except Exception as err:  # noqa: BLE001 - every library error becomes a DriverError
            failure = self._translate(err, action)
            if failure.retryable:
                self._drop()
            raise failure from None
        if ps.had_errors:
            records = [self._scrub(_error_record_text(r)) for r in ps.streams.error]
            reason = "; ".join(r for r in records if r) or "PowerShell reported an error without a message"
            raise DriverError(f"{action} on {self.server}: {reason}")
        return output

    def run_script(self, script: str, parameters: dict[str, str]) -> str:
        def build(ps: Any) -> None:
            ps.add_script(script)
            for name, value in parameters.items():
                ps.add_parameter(name, value)

        output = self._run(build, "PowerShell script failed")
        return "\n".join(str(item) for item in output if item is not None)

    def invoke(self, cmdlet: str, parameters: dict[str, object], *, source: PipelineSource = ()) -> None:
        def build(ps: Any) -> None:
            for name, bound in (*source, (cmdlet, parameters)):
                ps.add_cmdlet(name)
                for key, value in bound.items():
                    ps.add_parameter(key, value)

        self._run(build, f"{cmdlet} failed")

    def close(self) -> None:
        pool, wsman = self._pool, self._wsman
        self._pool = self._wsman = None
        if pool is not None:
            try:
                pool.close()
            except Exception as err:  # noqa: BLE001 - closing must not raise
                logger.debug("closing the PowerShell session on %s failed: %s", self.server, self._scrub(str(err)))
        if wsman is not None:
            wsman.close()


def _root_reason(err: BaseException) -> str:
    """The innermost cause of a requests error (e.g. "[Errno 111] Connection refused")."""
    seen: set[int] = set()
    current: BaseException | None = err
    last = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        args = getattr(current, "args", ())
        current = next((a for a in args if isinstance(a, BaseException)), None) or current.__cause__
    text = str(last)
    match = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if match:
        return match.group(0).strip()
    if "timed out" in text.lower():
        return "connection timed out"
    return text


def _error_record_text(record: object) -> str:
    text = str(record or "")
    if not text or text.startswith("<"):
        text = str(getattr(record, "fq_error", "") or "")
    return text


CAPTURED_PREFIX = "captured://"
