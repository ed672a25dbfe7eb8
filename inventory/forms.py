"""Forms of the browser GUI. They check the shape of the input; the services decide what is allowed.

Errors the services raise (``django.core.exceptions.ValidationError`` with field errors) are put back
on the form with :meth:`ServiceErrorsMixin.add_service_errors`, so a bad URI or a duplicate name is
shown next to its field instead of ending in a server error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from inventory.models import Operation, Provider, VirtualMachine
from inventory.services.operations import VM_ACTIONS
from inventory.services.providers import MAX_INTERVAL, MIN_INTERVAL

MAX_BULK_VMS = 1000


class ServiceErrorsMixin:
    """Map a service's ValidationError onto the form's fields (unknown fields become form errors)."""

    def add_service_errors(self, exc: ValidationError) -> None:
        form: forms.Form = self  # type: ignore[assignment]
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, exc.messages)


class ProviderForm(ServiceErrorsMixin, forms.Form):
    """Add a provider. The password is never rendered back into the page."""

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
        }


class ProviderEditForm(ProviderForm):
    """Change a provider: the platform is fixed; a blank password keeps the stored one."""

    clear_password = forms.BooleanField(required=False, label="Clear the stored password")

    def __init__(self, *args: Any, provider: Provider, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "name": provider.name,
                "uri": provider.uri,
                "username": provider.username,
                "discovery_interval": provider.discovery_interval,
                "enabled": provider.enabled,
                "description": provider.description,
            },
        )
        super().__init__(*args, **kwargs)
        del self.fields["kind"]
        self.fields["password"].help_text = (
            "A password is stored. Leave blank to keep it." if provider.has_password else "No password is stored."
        )
        if not provider.has_password:
            del self.fields["clear_password"]

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

    kind = forms.ChoiceField(choices=Operation.Kind.choices)
    snapshot = forms.CharField(max_length=255, required=False)
    description = forms.CharField(max_length=1000, required=False)

    def params(self) -> dict[str, Any]:
        kind = self.cleaned_data["kind"]
        if kind == Operation.Kind.SNAPSHOT_CREATE:
            return {"snapshot": self.cleaned_data["snapshot"], "description": self.cleaned_data["description"]}
        if kind in (Operation.Kind.SNAPSHOT_REVERT, Operation.Kind.SNAPSHOT_DELETE):
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

    kind = forms.ChoiceField(choices=[(kind, Operation.Kind(kind).label) for kind in VM_ACTIONS])
    vm = _BoundedMultipleChoiceField(
        queryset=VirtualMachine.objects.select_related("provider", "host").order_by("name", "pk"),
        error_messages={"required": "Select at least one VM."},
    )
