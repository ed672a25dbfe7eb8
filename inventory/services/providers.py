"""Providers: add, change, remove; and the driver for one, with its credentials decrypted."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from inventory import secrets
from inventory.drivers import driver_for
from inventory.drivers.base import Credentials, Driver, DriverError
from inventory.drivers.hyperv import CAPTURED_PREFIX
from inventory.models import Provider, VirtualMachine
from vom.jobs import lifecycle
from vom.jobs.models import ACTIVE, Job

MIN_INTERVAL = 30
MAX_INTERVAL = 7 * 24 * 3600


def validate_uri(kind: str, uri: str) -> str | None:
    """A one-line reason why ``uri`` is not usable for ``kind``, or None."""
    try:
        has_password = urlsplit(uri).password is not None
    except ValueError:
        has_password = False
    if has_password:
        # A password in the URI would be stored and shown in clear: it belongs in the password field.
        return "do not put a password in the URI; enter it in the password field, where it is stored encrypted"
    if kind == Provider.Kind.LIBVIRT:
        from inventory.drivers.libvirt import validate_uri as validate_libvirt_uri

        return validate_libvirt_uri(uri) or _test_node_outside_allowed_dirs(uri)
    if kind == Provider.Kind.RHEV:
        return _validate_manager_url(uri)
    if kind == Provider.Kind.HYPERV:
        return _validate_hyperv_host(uri)
    return f"unknown provider kind {kind!r}"


def _validate_manager_url(url: str) -> str | None:
    """An RHEV-M / oVirt engine URL: https://manager[:port][/ovirt-engine/api] (http:// for a lab)."""
    if not url:
        return "the manager URL is empty (e.g. https://rhevm.example.com/ovirt-engine/api)"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "the URL contains whitespace or control characters"
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as exc:
        return f"the URL cannot be parsed: {exc}"
    if parts.scheme not in ("https", "http"):
        return "the manager URL starts with https:// (or http:// for a lab manager)"
    if not parts.hostname:
        return "the manager URL needs a host name, e.g. https://rhevm.example.com/ovirt-engine/api"
    if parts.query or parts.fragment:
        return "the manager URL takes no ?query or #fragment"
    if parts.path not in ("", "/", "/ovirt-engine", "/ovirt-engine/", "/ovirt-engine/api", "/ovirt-engine/api/"):
        return "the API lives at /ovirt-engine/api on the manager"
    return None


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")


def _validate_hyperv_host(host: str) -> str | None:
    """A Hyper-V server's host name or address, or a captured:///file.json demo host."""
    if host.startswith("captured://"):
        path = host.removeprefix("captured://")
        if not path.startswith("/") or not path.endswith(".json"):
            return "a captured host is captured:///absolute/path/to/output.json"
        return _outside_allowed_dirs(path, "captured outputs")
    if not host:
        return "the Hyper-V server's host name is empty"
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        return "expected the Hyper-V server's host name or IP address (no scheme, port or path), e.g. hv01.corp.local"
    return None


def _test_node_outside_allowed_dirs(uri: str) -> str | None:
    """A test:/// node file must lie in one of VOM_TEST_NODE_DIRS (it is read by this machine)."""
    parts = urlsplit(uri)
    if parts.scheme != "test" or parts.path == "/default":
        return None
    return _outside_allowed_dirs(parts.path, "test node files")


def _outside_allowed_dirs(path: str, what: str) -> str | None:
    """Simulated hosts are files of this machine: only those under VOM_TEST_NODE_DIRS may be read."""
    real = os.path.realpath(path)
    allowed = [os.path.realpath(d) for d in settings.VOM_TEST_NODE_DIRS]
    if any(os.path.commonpath([real, d]) == d for d in allowed):
        return None
    return f"{what} are only read from {', '.join(settings.VOM_TEST_NODE_DIRS)} (VOM_TEST_NODE_DIRS)"


# The settings that belong to each kind of provider; another kind's settings are refused.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    Provider.Kind.LIBVIRT: (),
    Provider.Kind.RHEV: ("ca_certificate", "insecure", "cluster_filter"),
    Provider.Kind.HYPERV: ("winrm_auth", "use_https", "port", "cert_validation"),
}
PLATFORM_FIELDS = tuple(name for names in KIND_FIELDS.values() for name in names)
EDITABLE_FIELDS = {"name", "uri", "username", "discovery_interval", "enabled", "description", *PLATFORM_FIELDS}


def _validate(provider: Provider, *, exclude_pk: int | None, password_given: bool) -> None:
    """Field errors for the provider as it would be saved (nothing is saved here)."""
    errors: dict[str, list[str]] = {}
    name = provider.name
    if not name:
        errors["name"] = ["A name is required."]
    elif len(name) > 100:
        errors["name"] = ["At most 100 characters."]
    elif Provider.objects.filter(name=name).exclude(pk=exclude_pk or 0).exists():
        errors["name"] = [f"A provider named {name!r} already exists."]
    if provider.kind not in Provider.Kind.values:
        errors["kind"] = [f"Unknown kind {provider.kind!r}."]
    else:
        problem = validate_uri(provider.kind, provider.uri)
        if problem:
            errors["uri"] = [problem]
    if not MIN_INTERVAL <= provider.discovery_interval <= MAX_INTERVAL:
        errors["discovery_interval"] = [f"Between {MIN_INTERVAL} and {MAX_INTERVAL} seconds."]
    if provider.kind == Provider.Kind.RHEV:
        if not provider.username or "@" not in provider.username:
            errors["username"] = ["An RHEV user is written user@domain, e.g. admin@internal."]
        if not password_given:
            errors["password"] = ["The manager needs a password."]
        if provider.ca_certificate and not _is_pem_certificate(provider.ca_certificate):
            errors["ca_certificate"] = ["Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE----- …)."]
        if len(provider.cluster_filter) > 255 or any(ord(c) < 32 or c in '"\\' for c in provider.cluster_filter):
            # It becomes part of the manager's search query: no quotes or backslashes to break out of it.
            errors["cluster_filter"] = [
                "A cluster name: at most 255 characters, no quotes, backslashes or control characters."
            ]
    if provider.kind == Provider.Kind.HYPERV:
        if provider.winrm_auth not in Provider.WinRMAuth.values:
            errors["winrm_auth"] = [f"One of {', '.join(Provider.WinRMAuth.values)}."]
        elif provider.winrm_auth == Provider.WinRMAuth.BASIC and not provider.use_https:
            errors["winrm_auth"] = ["Basic authentication sends the password in clear: only over HTTPS."]
        if provider.port is not None and not 1 <= provider.port <= 65535:
            errors["port"] = ["A TCP port, 1 to 65535."]
        if not provider.uri.startswith("captured://") and not (provider.username and password_given):
            errors["username"] = ["WinRM needs a user (DOMAIN\\user or user@domain) and a password."]
    if errors:
        raise ValidationError(errors)


def _is_pem_certificate(text: str) -> bool:
    """Certificates only: a private key pasted along with them would be stored and shown to viewers."""
    from cryptography import x509

    labels = re.findall(r"-----BEGIN ([A-Z0-9 ]+)-----", text)
    if not labels or any(label != "CERTIFICATE" for label in labels):
        return False
    try:
        return bool(x509.load_pem_x509_certificates(text.encode()))
    except ValueError:
        return False


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def create_provider(
    *,
    name: str,
    uri: str,
    kind: str = Provider.Kind.LIBVIRT,
    username: str = "",
    password: str = "",
    discovery_interval: int = 300,
    enabled: bool = True,
    description: str = "",
    **platform: Any,
) -> Provider:
    """Add a provider. Raises ValidationError with field errors; the password is stored encrypted.

    ``platform``: the kind's own settings — RHEV ``ca_certificate``, ``insecure``, ``cluster_filter``;
    Hyper-V ``winrm_auth``, ``use_https``, ``port``, ``cert_validation``.
    """
    unknown = set(platform) - set(KIND_FIELDS.get(kind, ()))
    if unknown:
        raise ValidationError({field: [f"Not a setting of {kind} providers."] for field in sorted(unknown)})
    provider = Provider(
        name=_clean(name),
        kind=kind,
        uri=_clean(uri),
        username=_clean(username),
        discovery_interval=discovery_interval,
        enabled=enabled,
        description=_clean(description),
        **{field: _clean(value) for field, value in platform.items()},
    )
    _validate(provider, exclude_pk=None, password_given=bool(password))
    provider.password_encrypted = secrets.encrypt(password)
    try:
        with transaction.atomic():
            provider.save()
    except IntegrityError:  # the same name, added by someone else a moment ago
        raise ValidationError({"name": [f"A provider named {provider.name!r} already exists."]}) from None
    return provider


def update_provider(
    *, provider: Provider, password: str | None = None, clear_password: bool = False, **changes: Any
) -> Provider:
    """Change a provider. ``password=None`` keeps the stored one; ``clear_password`` removes it.

    The kind cannot change. Nothing on ``provider`` changes unless the whole change is valid.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
    foreign = set(changes) & (set(PLATFORM_FIELDS) - set(KIND_FIELDS.get(provider.kind, ())))
    if foreign:
        raise ValidationError({field: [f"Not a setting of {provider.kind} providers."] for field in sorted(foreign)})
    candidate = Provider.objects.get(pk=provider.pk) if provider.pk else provider
    for field, value in changes.items():
        setattr(candidate, field, _clean(value))
    has_password = bool(password) or (bool(provider.password_encrypted) and not clear_password)
    _validate(candidate, exclude_pk=provider.pk, password_given=has_password)
    for field, value in changes.items():  # only once valid: a caller keeping the object never holds bad values
        setattr(provider, field, _clean(value))
    if clear_password:
        provider.password_encrypted = ""
    elif password:
        provider.password_encrypted = secrets.encrypt(password)
    try:
        with transaction.atomic():
            provider.save()
    except IntegrityError:
        raise ValidationError({"name": [f"A provider named {provider.name!r} already exists."]}) from None
    return provider


def delete_provider(*, provider: Provider) -> None:
    """Remove a provider and everything discovered behind it.

    Its queued jobs (and those of its VMs) are cancelled with the reason, so nothing waits for a
    provider that is gone; running ones are asked to stop (they fail at their next step anyway).
    """
    with transaction.atomic():
        targets = Q(target_type=ContentType.objects.get_for_model(Provider), target_id=provider.pk) | Q(
            target_type=ContentType.objects.get_for_model(VirtualMachine),
            target_id__in=VirtualMachine.objects.filter(provider=provider).values("pk"),
        )
        for job in Job.objects.filter(targets, status__in=ACTIVE, parent__isnull=True):
            if job.status == Job.Status.PENDING:
                lifecycle.finish(
                    job,
                    status=Job.Status.CANCELLED,
                    only_if=Q(status=Job.Status.PENDING),
                    error=f"cancelled: provider {provider.name} was deleted",
                )
            elif job.cancel_requested is None:
                with contextlib.suppress(ValueError):  # it ended a moment ago: nothing to stop
                    lifecycle.request_cancel(job, user=None)
        provider.delete()


def provider_credentials(provider: Provider) -> Credentials:
    return Credentials(
        username=provider.username or None,
        password=secrets.decrypt(provider.password_encrypted) or None,
    )


def provider_options(provider: Provider) -> dict[str, Any]:
    """The kind's own connection settings, as the driver takes them, with the platform timeouts."""
    timeouts = {
        "connect_timeout": settings.VOM_PLATFORM_CONNECT_TIMEOUT,
        "read_timeout": settings.VOM_PLATFORM_READ_TIMEOUT,
    }
    if provider.kind == Provider.Kind.RHEV:
        return {
            **timeouts,
            "ca_file": _ca_file(provider) if provider.ca_certificate else None,
            "insecure": provider.insecure,
            "cluster": provider.cluster_filter,
        }
    if provider.kind == Provider.Kind.HYPERV:
        return {
            **timeouts,
            "auth": provider.winrm_auth,
            "ssl": provider.use_https,
            "port": provider.port,
            "cert_validation": provider.cert_validation,
        }
    return timeouts


def _ca_file(provider: Provider) -> str:
    """The provider's CA certificate as a file (the SDK takes a path), rewritten when it changes."""
    directory = Path(settings.VAR_DIR) / "ca"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"provider-{provider.pk}.pem"
    if not path.exists() or path.read_text() != provider.ca_certificate:
        # A unique temporary name: two workers may write the same provider's file at once.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(provider.ca_certificate)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return str(path)


def provider_driver(provider: Provider) -> Driver:
    """The platform driver for ``provider``; every problem is a :class:`DriverError`.

    The URI is checked again here, at use: a simulated host's file must still lie in an allowed
    directory (a symlink swapped in after the provider was saved, a narrowed VOM_TEST_NODE_DIRS).
    A password that cannot be decrypted (the secrets key changed) is a DriverError that says
    retrying cannot help, like any other, so callers catch one type.
    """
    problem = validate_uri(provider.kind, provider.uri)
    if problem:
        raise DriverError(f"{provider.name}: {problem}")
    try:
        credentials = provider_credentials(provider)
    except secrets.SecretError as exc:
        raise DriverError(f"{provider.name}: {exc} (retrying cannot help: enter the password again)") from exc
    options = provider_options(provider)
    if provider.kind == Provider.Kind.HYPERV and provider.uri.startswith(CAPTURED_PREFIX):
        from vom.simulators.hyperv_replay import transport_for_uri  # a demo host: its captured output

        options["transport"] = transport_for_uri(provider.uri)
    return driver_for(provider.kind, provider.uri, credentials, options)
