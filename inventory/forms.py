"""Forms of the browser GUI. They check the shape of the input; the services decide what is allowed.

Errors the services raise (``django.core.exceptions.ValidationError`` with field errors) are put back
on the form with :meth:`ServiceErrorsMixin.add_service_errors`, so a bad URI or a duplicate name is
shown next to its field instead of ending in a server error.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from inventory.models import Provider, VirtualMachine
from inventory.services.operations import LABELS, SPECS, VM_ACTIONS, Kind
from inventory.services.providers import KIND_FIELDS, MAX_INTERVAL, MIN_INTERVAL
from vom.web.forms import ServiceErrorsMixin

MAX_BULK_VMS = 1000


# Each kind's own settings: which form/API fields belong to it (the others are ignored for it).
# How the URI and user fields are named for each kind (the JS applies these as the kind changes).
KIND_WORDING: dict[str, dict[str, dict[str, str]]] = {
    "uri": {
        Provider.Kind.LIBVIRT: {
            "label": "libvirt URI",
            "help": "e.g. qemu:///system, qemu+ssh://root@kvm01/system or test:///path/node.xml",
            "placeholder": "qemu+ssh://root@kvm01/system",
        },
        Provider.Kind.RHEV: {
            "label": "Manager URL",
            "help": "The engine's API URL, e.g. https://rhevm.example.com/ovirt-engine/api",
            "placeholder": "https://rhevm.example.com/ovirt-engine/api",
        },
        Provider.Kind.HYPERV: {
            "label": "Hyper-V host name",
            "help": "The Hyper-V server's host name or IP address (no scheme or port), e.g. hv01.corp.local",
            "placeholder": "hv01.corp.local",
        },
    },
    "username": {
        Provider.Kind.LIBVIRT: {"label": "Username", "help": "", "placeholder": ""},
        Provider.Kind.RHEV: {
            "label": "User",
            "help": "user@domain, e.g. admin@internal",
            "placeholder": "admin@internal",
        },
        Provider.Kind.HYPERV: {
            "label": "User",
            "help": "DOMAIN\\user or user@domain",
            "placeholder": "CORP\\svc-vom",
        },
    },
}
KIND_LEGENDS = {Provider.Kind.RHEV: "RHEV / oVirt manager", Provider.Kind.HYPERV: "Hyper-V over WinRM"}


class ProviderForm(ServiceErrorsMixin, forms.Form):
    """Add a provider. The password is never rendered back into the page.

    Each kind's own fields sit in a fieldset of their own (``platform_fieldsets``); only the chosen
    kind's are passed to the service, whatever else was posted.
    """

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(label="Platform", choices=Provider.Kind.choices, initial=Provider.Kind.LIBVIRT)
    uri = forms.CharField(
        label="URI",
        max_length=500,
        help_text="e.g. qemu:///system, qemu+ssh://root@kvm01/system or test:///path/node.xml",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    username = forms.CharField(max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    discovery_interval = forms.IntegerField(
        label="Discovery interval (s)",
        min_value=MIN_INTERVAL,
        max_value=MAX_INTERVAL,
        initial=300,
        help_text=f"Seconds between scheduled discoveries ({MIN_INTERVAL}–{MAX_INTERVAL}).",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Discover on the schedule.")
    description = forms.CharField(max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # RHEV / oVirt
    ca_certificate = forms.CharField(
        label="CA certificate (PEM)",
        required=False,
        max_length=65536,
        widget=forms.Textarea(
            attrs={"rows": 5, "spellcheck": "false", "placeholder": "-----BEGIN CERTIFICATE-----", "class": "mono"}
        ),
        help_text="The manager's CA (https://<manager>/ovirt-engine/services/pki-resource?resource=ca-certificate).",
    )
    insecure = forms.BooleanField(
        label="Insecure: do not verify the manager's TLS certificate",
        required=False,
        help_text="Only for tests; with a CA certificate, leave this off.",
    )
    cluster_filter = forms.CharField(
        label="Cluster filter",
        max_length=255,
        required=False,
        help_text="Discover only this cluster's hosts and VMs. Empty: all clusters.",
    )
    # Hyper-V
    winrm_auth = forms.ChoiceField(
        label="WinRM authentication", choices=Provider.WinRMAuth.choices, initial=Provider.WinRMAuth.NEGOTIATE
    )
    use_https = forms.BooleanField(label="HTTPS", required=False, initial=True, help_text="WinRM over HTTPS (5986).")
    port = forms.IntegerField(
        label="Port",
        required=False,
        min_value=1,
        max_value=65535,
        help_text="Empty: 5986 with HTTPS, 5985 without.",
    )
    cert_validation = forms.BooleanField(label="Validate the server's certificate", required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = self.chosen_kind()
        for name, wording in KIND_WORDING.items():
            field = self.fields[name]
            field.widget.attrs["data-wording"] = json.dumps(wording)
            if kind in wording:
                field.label = wording[kind]["label"]
                field.help_text = wording[kind]["help"]
                if wording[kind]["placeholder"]:
                    field.widget.attrs["placeholder"] = wording[kind]["placeholder"]
        # Fields of a kind not chosen are never required: only the chosen kind's are validated.
        for other in KIND_FIELDS:
            if other != kind:
                for name in KIND_FIELDS[other]:
                    if name in self.fields:
                        self.fields[name].required = False

    def chosen_kind(self) -> str:
        """The kind this form is about: the posted one, else the initial one."""
        if self.is_bound:
            return str(self.data.get("kind") or "")
        return str(self.initial.get("kind") or self.fields["kind"].initial)

    def common_fields(self) -> list[forms.BoundField]:
        platform = {name for names in KIND_FIELDS.values() for name in names}
        return [self[name] for name in self.fields if name not in platform]

    def platform_fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(kind, legend, fields) for each kind that has fields of its own on this form."""
        sets = []
        for kind, names in KIND_FIELDS.items():
            present = [self[name] for name in names if name in self.fields]
            if present:
                sets.append((kind, KIND_LEGENDS[kind], present))
        return sets

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # A choice of another kind left blank must not fail this kind's form.
        for other, names in KIND_FIELDS.items():
            if other != self.chosen_kind():
                for name in names:
                    if name in self.errors:
                        del self.errors[name]
        return data

    def platform_arguments(self, kind: str) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data.get(name) for name in KIND_FIELDS.get(kind, ())}

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "kind": data["kind"],
            "uri": data["uri"],
            "username": data["username"],
            "password": data["password"],
            "discovery_interval": data["discovery_interval"],
            "enabled": data["enabled"],
            "description": data["description"],
            **self.platform_arguments(data["kind"]),
        }


class ProviderEditForm(ProviderForm):
    """Change a provider: the platform is fixed; a blank password keeps the stored one."""

    clear_password = forms.BooleanField(required=False, label="Clear the stored password")

    def __init__(self, *args: Any, provider: Provider, **kwargs: Any) -> None:
        self.provider = provider
        initial = {
            "name": provider.name,
            "kind": provider.kind,
            "uri": provider.uri,
            "username": provider.username,
            "discovery_interval": provider.discovery_interval,
            "enabled": provider.enabled,
            "description": provider.description,
        }
        initial.update({name: getattr(provider, name) for name in KIND_FIELDS.get(provider.kind, ())})
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        del self.fields["kind"]
        for kind, names in KIND_FIELDS.items():
            if kind != provider.kind:
                for name in names:
                    del self.fields[name]
        self.fields["password"].help_text = (
            "A password is stored. Leave blank to keep it." if provider.has_password else "No password is stored."
        )
        if not provider.has_password:
            del self.fields["clear_password"]

    def chosen_kind(self) -> str:
        return str(self.provider.kind)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clear_password") and data.get("password"):
            raise ValidationError("Either type a new password or clear the stored one, not both.")
        return data

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "uri": data["uri"],
            "username": data["username"],
            "discovery_interval": data["discovery_interval"],
            "enabled": data["enabled"],
            "description": data["description"],
            "password": data["password"] or None,
            "clear_password": bool(data.get("clear_password")),
            **self.platform_arguments(self.provider.kind),
        }


class SnapshotCreateForm(forms.Form):
    """The inputs of a new snapshot (posted to vm-action with kind=snapshot_create)."""

    snapshot = forms.CharField(
        label="Name", max_length=100, widget=forms.TextInput(attrs={"placeholder": "before-upgrade"})
    )
    description = forms.CharField(
        max_length=1000, required=False, widget=forms.TextInput(attrs={"placeholder": "optional"})
    )


class VMActionForm(forms.Form):
    """One operation on one VM: its kind and, for snapshots, the snapshot's name and description."""

    kind = forms.ChoiceField(choices=[(kind, LABELS[kind]) for kind in SPECS])
    snapshot = forms.CharField(max_length=255, required=False)
    description = forms.CharField(max_length=1000, required=False)
    host = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def params(self) -> dict[str, Any]:
        kind = self.cleaned_data["kind"]
        if kind == Kind.VM_MIGRATE:
            return {"host": self.cleaned_data["host"]} if self.cleaned_data.get("host") else {}
        if kind == Kind.SNAPSHOT_CREATE:
            return {"snapshot": self.cleaned_data["snapshot"], "description": self.cleaned_data["description"]}
        if kind in (Kind.SNAPSHOT_REVERT, Kind.SNAPSHOT_DELETE):
            return {"snapshot": self.cleaned_data["snapshot"]}
        return {}


class _BoundedMultipleChoiceField(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    """Refuses more than ``MAX_BULK_VMS`` ids before building the ``IN (…)`` query."""

    def clean(self, value: Any) -> Any:
        if value and len(value) > MAX_BULK_VMS:
            raise ValidationError(f"At most {MAX_BULK_VMS} VMs at once.")
        if value and any(not str(v).isdigit() or len(str(v)) > 18 for v in value):
            raise ValidationError("Not a VM id.")  # an id past the database's integers would be a 500
        return super().clean(value)


class BulkVMActionForm(forms.Form):
    """A power action on the VMs ticked in the list."""

    kind = forms.ChoiceField(choices=[(kind, LABELS[kind]) for kind in VM_ACTIONS])
    vm = _BoundedMultipleChoiceField(
        queryset=VirtualMachine.objects.select_related("provider", "host")
        .prefetch_related("disks")
        .order_by("name", "pk"),
        error_messages={"required": "Select at least one VM."},
    )
