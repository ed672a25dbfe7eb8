"""The RHEV driver class: one manager, its discovery, VM operations and the environment check."""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import ovirtsdk4
import ovirtsdk4.types as otypes
import pycurl

from inventory.drivers.base import (
    Credentials,
    Driver,
    DriverError,
    EnvironmentCheck,
    InventorySnapshot,
    VMCheck,
    VMStateReading,
)
from inventory.drivers.rhev.connection import BoundedConnection, curl_code, curl_text
from inventory.drivers.rhev.parse import host_facts, network_info, pool_info, ref_id, value, vm_info

__all__ = ["HA_ENABLED_REASON", "RhevDriver", "RhevSnapshot"]

_T = TypeVar("_T")

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 120.0

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RhevDriver:
    """Talks to one RHEV-M / oVirt engine.

    ``url`` is the API URL (``https://rhevm.example.com/ovirt-engine/api``; a bare host name or
    ``https://host`` gets the path added). Verify TLS with ``ca_file`` (PEM) or the system store;
    ``insecure=True`` turns verification off. ``cluster`` limits hosts and VMs to one cluster.
    Every request gives up after ``connect_timeout`` seconds without a connection or
    ``read_timeout`` seconds without receiving anything (see :mod:`.connection`).
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        ca_file: str | None = None,
        insecure: bool = False,
        cluster: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.url = self.normalize_url(url)
        self.credentials = credentials
        self.ca_file = ca_file or None
        self.insecure = insecure
        self.cluster = (cluster or "").strip() or None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._conn: BoundedConnection | None = None

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

    def _connection(self) -> BoundedConnection:
        if self._conn is None:
            creds = self.credentials
            if not creds.username or not creds.password:
                raise DriverError(f"no user name or password set for {self.url}")
            try:
                self._conn = BoundedConnection(
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    url=self.url,
                    username=creds.username,
                    password=creds.password,
                    ca_file=self.ca_file,
                    insecure=self.insecure,
                    connections=1,
                )
            except ovirtsdk4.Error as err:
                raise self._translate(err, "cannot connect") from None
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # revokes the SSO token (a bounded request, too)
            except (ovirtsdk4.Error, pycurl.error):  # the manager went away: nothing left to release
                pass

    def _drop(self) -> None:
        """Forget the connection without a word to the manager (it is not answering); the next
        call opens a new one. Its SSO token is left to expire."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close(logout=False)
            except (ovirtsdk4.Error, pycurl.error):
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
        code = curl_code(err)
        text = _one_line(str(err))
        if code == 28:  # CURLE_OPERATION_TIMEDOUT: our connect or idle-read bound
            said = curl_text(err)
            connecting = "connect" in said.lower() or "resolv" in said.lower()
            which, seconds = ("connect", self.connect_timeout) if connecting else ("read", self.read_timeout)
            return DriverError(
                self._redact(f"{action}: the manager at {where} did not answer within {seconds:g} s ({which} timeout)"),
                retryable=True,
            )
        if isinstance(err, ovirtsdk4.AuthError) and "SSO" in text:
            detail = text.split(":", 1)[1].strip() if ":" in text else text
            if "access_denied" in text:
                message = f"{action}: login refused for {user} at {where}: {detail}"
            else:
                message = f"{action}: SSO error from {where}: {text.replace('Error during ', '')}"
            return DriverError(self._redact(message), retryable=False)
        if code in _TLS_CURL_CODES:
            hint = "check the CA certificate" if not self.insecure else "the server does not speak TLS"
            if code == 35 and "wrong version number" in curl_text(err).lower():
                hint = "the server does not speak TLS there (http:// URL?)"
            return DriverError(self._redact(f"{action}: TLS failure with {where}: {curl_text(err)} ({hint})"))
        if isinstance(err, ovirtsdk4.ConnectionError) or code in _TRANSIENT_CURL_CODES:
            return DriverError(
                self._redact(f"{action}: cannot reach the manager at {where}: {curl_text(err)}"), retryable=True
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
            failure = self._translate(err, action)
        except pycurl.error as err:  # the SDK lets a few curl errors through unwrapped (SSO requests)
            wrapped = ovirtsdk4.Error(str(err))
            wrapped.__context__ = err
            failure = self._translate(wrapped, action)
        else:
            return
        if failure.retryable:
            # A timed-out transfer stays in the SDK's multi handle: never reuse the connection.
            self._drop()
        raise failure from None

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        with self._errors(action):
            return fn()
        raise AssertionError("unreachable")  # pragma: no cover - _errors always raises or yields

    # --- discovery -----------------------------------------------------------------------------

    def discover(self) -> RhevSnapshot:
        conn = self._connection()
        system = conn.system_service()
        read_at = _now()
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
        cl_dc = {cid: ref_id(c.data_center) for cid, c in cl_by_id.items()}
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

        snapshot = RhevSnapshot(read_at=read_at)
        snapshot.hosts = [host_facts(h, where(ref_id(h.cluster))) for h in hosts]
        for vm in vms:
            snapshot.vms.append(vm_info(vm, where(ref_id(vm.cluster)), tpl_names, sd_names, net_by_id, prof_by_id))
        snapshot.pools = [pool_info(sd, dc_names) for sd in storage_domains]
        snapshot.networks = [network_info(n, dc_names, profiles) for n in networks]
        snapshot.datacenters = [
            {
                "id": str(dc.id),
                "name": dc.name or "",
                "status": value(dc.status),
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
                "status": value(t.status),
                "version_name": (t.version.version_name if t.version else "") or "",
                "cluster_id": ref_id(t.cluster),
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
            read_at = _now()
            vm = service.get()
        # The SDK reads a status its enum does not know as None: report it as "unknown".
        state = value(vm.status) or "unknown"
        return VMStateReading(
            uuid=str(vm.id), state=state, state_reason=vm.status_detail or vm.stop_reason or "", read_at=read_at
        )

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

    def migrate(self, vm_id: str, host_uid: str | None = None) -> None:
        """Live-migrate to the host with id ``host_uid``, or to a host the manager's scheduler picks."""
        if host_uid is None:
            self._act(vm_id, "migrate", lambda s: s.migrate())
        else:
            self._act(vm_id, f"migrate to host {host_uid}", lambda s: s.migrate(host=otypes.Host(id=host_uid)))

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    def snapshot_revert(self, vm_id: str, name: str) -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    def snapshot_delete(self, vm_id: str, name: str) -> None:
        raise DriverError("snapshots of RHEV VMs are not supported by this console yet")

    # --- environment check (havirtverify) ------------------------------------------------------

    def verify(self, vm_ids: list[str]) -> EnvironmentCheck:
        """Check the URL and credentials, then for each VM that the manager's own HA is disabled.

        Never raises for a platform problem: a failing check says what is wrong, overall and per VM.
        """
        try:
            api = self._call("check the manager", lambda: self._connection().system_service().get())
            info = api.product_info
            product = f"{info.name} {info.version.full_version}" if info and info.version else ""
            # One request for all VMs (a manager of 5,000 VMs is not asked 5,000 times).
            listed = self._call("list VMs", lambda: self._connection().system_service().vms_service().list())
        except DriverError as err:
            failed = {vm_id: VMCheck(ok=False, reason=err.message) for vm_id in vm_ids}
            return EnvironmentCheck(ok=False, reason=err.message, retryable=err.retryable, vms=failed)
        by_id = {str(vm.id): vm for vm in listed}
        check = EnvironmentCheck(ok=True, product=product)
        failing = 0
        for vm_id in vm_ids:
            vm = by_id.get(vm_id)
            if vm is None:
                check.vms[vm_id] = VMCheck(ok=False, reason=f"VM {vm_id} is not known to the manager")
                failing += 1
                continue
            enabled = bool(vm.high_availability and vm.high_availability.enabled)
            check.vms[vm_id] = VMCheck(
                ok=not enabled, reason=HA_ENABLED_REASON if enabled else "", ha_enabled=enabled, name=vm.name or ""
            )
            failing += enabled
        if failing:
            check.ok = False
            check.reason = f"{failing} VM(s) fail the check: {HA_ENABLED_REASON}"
        return check

    def vm_host(self, vm_id: str) -> str:
        """The id of the host the VM runs on now ("" when it runs nowhere)."""
        vm = self._call(f"read VM {vm_id}", self._vm_service(vm_id).get)
        return ref_id(vm.host) if vm.host is not None else ""


if TYPE_CHECKING:
    # mypy proves here that the class satisfies the Driver protocol.
    def _as_driver(driver: RhevDriver) -> Driver:
        return driver
