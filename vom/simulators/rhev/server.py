"""The simulated manager's HTTP side: the SSO token endpoint and the REST API v4 in XML.

Only what the console uses is served: the API root, the collections and entities listed in
:data:`COLLECTIONS`, a VM's disk attachments and NICs, the ``follow`` and ``search`` (``cluster=``,
``name=``) parameters, and the VM actions start, stop, shutdown, suspend, reboot and migrate.
State changes are immediate (an action leaves the VM in its final state) unless
``SimulatorOptions.settle`` is false, in which case the VM stays in the transitional state
(powering_up, powering_down, saving_state, migrating, reboot_in_progress).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vom.simulators.rhev import xmlrender as X
from vom.simulators.rhev.model import Inventory, Vm

SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
TOKEN_LIFETIME = 3600


@dataclass
class SimulatorOptions:
    settle: bool = True  # actions end in the final state at once
    fail_next: tuple[int, str, str] | None = None  # (status, reason, detail) for the next API request


class ApiFault(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def _not_found(kind: str, obj_id: str) -> ApiFault:
    return ApiFault(404, "Operation Failed", f"Entity not found: {kind} {obj_id}")


def _conflict(detail: str) -> ApiFault:
    # The engine answers a command whose validation fails with 409 and "Operation Failed".
    return ApiFault(409, "Operation Failed", f"[{detail}]")


_SEARCH_TERM = re.compile(r'^\s*(\w+)\s*=\s*"?([^"]*?)"?\s*$')


class _State:
    def __init__(self, inventory: Inventory, options: SimulatorOptions) -> None:
        self.inv = inventory
        self.options = options
        self.tokens: dict[str, tuple[str, float]] = {}
        self.rng = random.Random(0)
        self.requests = 0


def _matches(search: str | None, vm: Vm, inv: Inventory) -> bool:
    if not search:
        return True
    for term in re.split(r"\s+and\s+", search, flags=re.IGNORECASE):
        m = _SEARCH_TERM.match(term)
        if m is None:
            raise ApiFault(400, "Operation Failed", f"[Cannot search: malformed query '{search}'.]")
        field, value = m.group(1).lower(), m.group(2)
        pattern = re.compile("^" + re.escape(value).replace(r"\*", ".*") + "$", re.IGNORECASE)
        if field == "cluster":
            subject = inv.clusters[vm.cluster_id].name
        elif field == "name":
            subject = vm.name
        elif field == "status":
            subject = vm.status
        else:
            raise ApiFault(400, "Operation Failed", f"[Cannot search: unknown field '{field}'.]")
        if not pattern.match(subject):
            return False
    return True


def _vm_action(state: _State, vm: Vm, verb: str, body: ET.Element) -> None:
    inv = state.inv
    settle = state.options.settle
    status = vm.status
    if verb == "start":
        if status == "paused":
            vm.status = "up"
            return
        if status not in ("down", "suspended"):
            raise _conflict(f"Cannot run VM. VM {vm.name} is running.")
        candidates = [
            h for h in inv.hosts.values() if h.cluster_id == vm.cluster_id and h.status == "up"
        ]  # the manager's scheduler picks a host
        if not candidates:
            raise _conflict(
                f"Cannot run VM. There is no host that satisfies current scheduling constraints for {vm.name}."
            )
        vm.host_id = state.rng.choice(candidates).id
        if status == "suspended":
            vm.status = "up" if settle else "restoring_state"
        else:
            vm.status = "up" if settle else "powering_up"
        vm.stop_reason = ""
    elif verb in ("stop", "shutdown"):
        if status in ("down", "image_locked", "image_illegal"):
            raise _conflict(f"Cannot {verb} VM. VM {vm.name} is not running.")
        if verb == "shutdown" and status not in ("up", "powering_up", "reboot_in_progress", "paused"):
            raise _conflict(f"Cannot shutdown VM. VM {vm.name} is {status}.")
        reason = body.findtext("reason") or ""
        if settle or verb == "stop":
            vm.status, vm.host_id = "down", None
        else:
            vm.status = "powering_down"
        vm.stop_reason = reason
    elif verb == "suspend":
        if status != "up":
            raise _conflict(f"Cannot hibernate VM. VM {vm.name} is not up.")
        vm.status = "suspended" if settle else "saving_state"
        if settle:
            vm.host_id = None
    elif verb == "reboot":
        if status != "up":
            raise _conflict(f"Cannot reboot VM. VM {vm.name} is not up.")
        vm.status = "up" if settle else "reboot_in_progress"
    elif verb == "migrate":
        if status != "up":
            raise _conflict(f"Cannot migrate VM. VM {vm.name} is not running.")
        host_el = body.find("host")
        target_id = host_el.get("id") if host_el is not None else None
        if target_id is None and host_el is not None and host_el.findtext("name"):
            names = {h.name: h.id for h in inv.hosts.values()}
            target_id = names.get(host_el.findtext("name") or "")
            if target_id is None:
                raise ApiFault(404, "Operation Failed", f"Entity not found: host {host_el.findtext('name')}")
        if target_id is not None:
            target = inv.hosts.get(target_id)
            if target is None:
                raise _not_found("host", target_id)
            if target.id == vm.host_id:
                raise _conflict(
                    "Cannot migrate VM. Migrating a VM to the same Host it is currently running on is not allowed."
                )
            if target.status != "up":
                raise _conflict(f"Cannot migrate VM. Destination host {target.name} is not up.")
            if target.cluster_id != vm.cluster_id:
                raise _conflict("Cannot migrate VM. Migration to a host in another cluster needs force.")
        else:
            others = [
                h
                for h in inv.hosts.values()
                if h.cluster_id == vm.cluster_id and h.status == "up" and h.id != vm.host_id
            ]
            if not others:
                raise _conflict(
                    f"Cannot migrate VM. There is no host that satisfies current scheduling constraints for {vm.name}."
                )
            target = state.rng.choice(others)
        if settle:
            vm.host_id = target.id
        else:
            vm.status = "migrating"
    else:
        raise ApiFault(404, "Not Found", f"Action '{verb}' is not supported by this simulator")


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    state: _State  # set on the subclass made by start_simulator

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing ------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_xml(self, status: int, el: ET.Element) -> None:
        self._send(status, X.to_bytes(el), "application/xml;charset=UTF-8")

    def _send_json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _fault(self, err: ApiFault) -> None:
        extra = {"WWW-Authenticate": 'Bearer realm="RESTAPI"'} if err.status == 401 else None
        self._send(err.status, X.to_bytes(X.fault(err.reason, err.detail)), "application/xml;charset=UTF-8", extra)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _user(self) -> str:
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        entry = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry[1] < time.time():
            raise ApiFault(401, "Unauthorized", "A valid Bearer token is required to access the API")
        return entry[0]

    # --- SSO -----------------------------------------------------------------------------------

    def _sso_token(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self._body().decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            self._send_json(400, {"error_code": "unsupported_grant_type", "error": "Unsupported grant type"})
            return
        if form.get("scope", "") != "ovirt-app-api" and "ovirt-app-api" not in form.get("scope", "").split():
            self._send_json(400, {"error_code": "invalid_scope", "error": "The requested scope is invalid"})
            return
        username = form.get("username", "")
        if self.state.inv.users.get(username) != form.get("password") or not username:
            # What the engine's SSO answers for a bad user name or password.
            message = f"Cannot authenticate user '{username}': The username or password is incorrect.."
            self._send_json(400, {"error_code": "access_denied", "error": message})
            return
        token = secrets.token_urlsafe(48)
        expires = time.time() + TOKEN_LIFETIME
        self.state.tokens[token] = (username, expires)
        self._send_json(
            200,
            {"access_token": token, "scope": "ovirt-app-api", "exp": str(int(expires * 1000)), "token_type": "bearer"},
        )

    def _sso_logout(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self._body().decode("utf-8", "replace")).items()}
        self.state.tokens.pop(form.get("token", ""), None)
        self._send_json(200, {})

    # --- API -----------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == SSO_TOKEN_PATH:
            self._sso_token()
        elif path == SSO_LOGOUT_PATH:
            self._sso_logout()
        else:
            self._api("POST")

    def do_GET(self) -> None:
        self._api("GET")

    def do_PUT(self) -> None:
        self._api("PUT")

    def do_DELETE(self) -> None:
        self._api("DELETE")

    def _api(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        try:
            if not parts.path.startswith(X.API):
                raise ApiFault(404, "Not Found", f"No resource at {parts.path}")
            user = self._user()
            self.state.requests += 1
            if self.state.options.fail_next is not None:
                status, reason, detail = self.state.options.fail_next
                self.state.options.fail_next = None
                raise ApiFault(status, reason, detail)
            segments = [s for s in parts.path[len(X.API) :].split("/") if s]
            with self.state.inv.lock:
                if method == "GET":
                    self._send_xml(200, self._get(segments, query, user))
                elif method == "POST" and len(segments) == 3 and segments[0] == "vms":
                    self._send_xml(200, self._action(segments[1], segments[2], body))
                else:
                    raise ApiFault(
                        405, "Method Not Allowed", f"{method} {parts.path} is not supported by this simulator"
                    )
        except ApiFault as err:
            self._fault(err)

    def _get(self, seg: list[str], query: dict[str, str], user: str) -> ET.Element:
        inv = self.state.inv
        follow = frozenset(
            part for item in query.get("follow", "").split(",") if item.strip() for part in _prefixes(item.strip())
        )
        if not seg:
            return X.api_root(inv, user)
        name, rest = seg[0], seg[1:]
        simple: dict[str, tuple[str, str, dict[str, Any], Callable[[Any], ET.Element]]] = {
            "datacenters": ("data_centers", "data center", inv.datacenters, X.datacenter),
            "clusters": ("clusters", "cluster", inv.clusters, X.cluster),
            "hosts": ("hosts", "host", inv.hosts, X.host),
            "storagedomains": ("storage_domains", "storage domain", inv.storage_domains, X.storage_domain),
            "networks": ("networks", "network", inv.networks, X.network),
            "vnicprofiles": ("vnic_profiles", "vnic profile", inv.vnic_profiles, X.vnic_profile),
            "templates": ("templates", "template", inv.templates, X.template),
            "disks": ("disks", "disk", inv.disks, X.disk),
        }
        if name in simple:
            tag, kind, table, render = simple[name]
            if not rest:
                items = list(table.values())
                if name == "hosts" and query.get("search"):
                    items = [h for h in items if _host_matches(query["search"], h, inv)]
                return X.collection(tag, (render(o) for o in _limit(items, query)))
            obj = table.get(rest[0])
            if obj is None or len(rest) > 1:
                raise _not_found(kind, "/".join(rest))
            return render(obj)
        if name == "vms":
            if not rest:
                vms = [v for v in inv.vms.values() if _matches(query.get("search"), v, inv)]
                return X.collection("vms", (X.vm(v, inv, follow) for v in _limit(vms, query)))
            vm = inv.vms.get(rest[0])
            if vm is None:
                raise _not_found("vm", rest[0])
            if len(rest) == 1:
                return X.vm(vm, inv, follow)
            sub = rest[1]
            if sub == "diskattachments":
                atts = {a.disk_id: a for a in vm.disk_attachments}
                with_disk = "disk" in follow
                if len(rest) == 2:
                    return X.collection(
                        "disk_attachments", (X.disk_attachment(vm, a, inv, with_disk) for a in atts.values())
                    )
                if rest[2] in atts and len(rest) == 3:
                    return X.disk_attachment(vm, atts[rest[2]], inv, with_disk)
                raise _not_found("disk attachment", rest[2])
            if sub == "nics":
                nics = {n.id: n for n in vm.nics}
                if len(rest) == 2:
                    return X.collection("nics", (X.nic(vm, n) for n in nics.values()))
                if rest[2] in nics and len(rest) == 3:
                    return X.nic(vm, nics[rest[2]])
                raise _not_found("nic", rest[2])
        raise ApiFault(404, "Not Found", f"No resource at {X.API}/{'/'.join(seg)}")

    def _action(self, vm_id: str, verb: str, body: bytes) -> ET.Element:
        inv = self.state.inv
        vm = inv.vms.get(vm_id)
        if vm is None:
            raise _not_found("vm", vm_id)
        try:
            # A test double on localhost parsing its own clients' requests; no defusedxml in the project.
            action = ET.fromstring(body) if body.strip() else ET.Element("action")  # noqa: S314
        except ET.ParseError as err:
            raise ApiFault(400, "Bad Request", f"Request body is not well-formed XML: {err}") from None
        if action.tag != "action":
            raise ApiFault(400, "Bad Request", f"Expected an <action> element, got <{action.tag}>")
        _vm_action(self.state, vm, verb, action)
        action.attrib.clear()
        for child in list(action):
            if child.tag in ("status", "vm"):
                action.remove(child)
        ET.SubElement(action, "status").text = "complete"
        ET.SubElement(action, "vm", {"href": f"{X.API}/vms/{vm.id}", "id": vm.id})
        return action


def _prefixes(item: str) -> list[str]:
    """``disk_attachments.disk`` also means ``disk_attachments``; both are returned."""
    parts = item.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))] + ([parts[-1]] if len(parts) > 1 else [])


def _limit(items: list[Any], query: dict[str, str]) -> list[Any]:
    if "max" in query:
        try:
            return items[: max(int(query["max"]), 0)] if int(query["max"]) >= 0 else items
        except ValueError:
            raise ApiFault(400, "Bad Request", f"Value '{query['max']}' of parameter 'max' is not an integer") from None
    return items


def _host_matches(search: str, host: Any, inv: Inventory) -> bool:
    m = _SEARCH_TERM.match(search)
    if m is None or m.group(1).lower() != "cluster":
        raise ApiFault(400, "Operation Failed", f"[Cannot search: malformed query '{search}'.]")
    return inv.clusters[host.cluster_id].name.lower() == m.group(2).lower()


@dataclass
class Simulator:
    url: str  # the API URL to give ovirtsdk4: http://127.0.0.1:PORT/ovirt-engine/api
    inventory: Inventory
    options: SimulatorOptions
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    @property
    def requests(self) -> int:
        return self.server.RequestHandlerClass.state.requests  # type: ignore[attr-defined, no-any-return]


def start(
    inventory: Inventory,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    options: SimulatorOptions | None = None,
) -> Simulator:
    """Serve ``inventory`` in a background thread; ``ssl_context`` makes it HTTPS."""
    opts = options or SimulatorOptions()
    handler = type("RhevSimHandler", (_Handler,), {"state": _State(inventory, opts)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="rhevsim", daemon=True)
    thread.start()
    scheme = "https" if ssl_context is not None else "http"
    bound_host, bound_port = server.server_address[:2]
    return Simulator(f"{scheme}://{bound_host}:{bound_port}{X.API}", inventory, opts, server, thread)


def start_simulator(
    inventory: Inventory, *, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> tuple[str, Callable[[], None]]:
    """Serve ``inventory``; returns the API URL and a function that stops the server."""
    sim = start(inventory, host=host, port=port, ssl_context=ssl_context)
    return sim.url, sim.stop


__all__ = ["HTTPStatus", "Simulator", "SimulatorOptions", "start", "start_simulator"]
