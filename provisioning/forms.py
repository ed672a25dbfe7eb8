"""Forms of the provisioning pages. They check the shape of the input; the services decide what is allowed.

A service's ValidationError is put back on the form with ``add_service_errors`` (field errors next to
their fields, anything else above the form), so a refused request never ends in a server error.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from inventory.models import Host, Network, StoragePool, StorageVolume, VirtualMachine
from provisioning import selectors
from provisioning.models import GoldenImage, Mode
from provisioning.services.common import GiB, MiB
from vom.web.forms import ServiceErrorsMixin
from vom.web.units import human_bytes

# Bounds that only keep numbers inside what the database and Python's ints handle; the services
# give the real limits (and say them).
MAX_COUNT_INPUT = 100_000
MAX_NUMBER_INPUT = 10**12
MAX_VCPUS_INPUT = 100_000
MAX_MEMORY_MIB_INPUT = 1024**3  # 1 EiB
MAX_SIZE_GIB_INPUT = Decimal(1024**3)
DISK_BUSES = [("virtio", "virtio (virtio-blk)"), ("scsi", "scsi (virtio-scsi)")]
VOLUME_FORMATS = [("qcow2", "qcow2 (grows as written)"), ("raw", "raw")]


def _pool_label(pool: StoragePool) -> str:
    extra = [pool.type or "?"]
    if not pool.active:
        extra.append("inactive")
    return f"{pool.name} ({', '.join(extra)}, {human_bytes(pool.available_bytes)} free)"


class PoolChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return _pool_label(obj)


class VolumeChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        size = human_bytes(obj.capacity_bytes)
        return f"{obj.pool.provider.name} · {obj.pool.name} / {obj.name} ({obj.format or '?'}, {size})"


class PoolVolumeChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.pool.name} / {obj.name} ({obj.format or '?'}, {human_bytes(obj.capacity_bytes)})"


class TemplateVMChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.provider.name} · {obj.name} ({obj.get_state_display().lower()})"


class HostChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.hostname)


def _network_choices(provider_id: int) -> list[tuple[str, str]]:
    """The provider's present networks for the first NIC; empty keeps the template's."""
    networks = Network.objects.filter(provider_id=provider_id, removed_at__isnull=True).order_by("name")
    return [("", "— as in the template —")] + [
        (n.name, f"{n.name} ({n.bridge})" if n.bridge else n.name) for n in networks
    ]


def _size_bytes(gib: Decimal) -> int:
    return int(gib * GiB)


def network_field() -> forms.ChoiceField:
    """The first NIC's libvirt network (its choices are the provider's networks, set by the form)."""
    return forms.ChoiceField(required=False, help_text="libvirt network of the first NIC. Empty: as in the template.")


def bridge_field() -> forms.CharField:
    return forms.CharField(
        max_length=64,
        required=False,
        help_text="Or a host bridge for the first NIC (e.g. br0), instead of a network.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "placeholder": "br0"}),
    )


class FirstNicMixin:
    """A form with ``network_field`` and ``bridge_field``: one of them, not both."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}  # type: ignore[misc]
        if data.get("network") and data.get("bridge"):
            self.add_error("bridge", "Give a network or a bridge, not both.")  # type: ignore[attr-defined]
        return data


class GoldenImageForm(ServiceErrorsMixin, forms.Form):
    """Register a golden image: a volume, or a shut-off VM whose boot disk is the image."""

    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "debian-12-base"}))
    os = forms.CharField(
        label="OS", max_length=100, required=False, widget=forms.TextInput(attrs={"placeholder": "Debian 12"})
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    volume = VolumeChoiceField(
        queryset=StorageVolume.objects.none(),
        required=False,
        empty_label="— the template VM's boot disk —",
        help_text="The prepared boot volume. Leave empty to use the template VM's boot disk.",
    )
    template_vm = TemplateVMChoiceField(
        label="Template VM",
        queryset=VirtualMachine.objects.none(),
        required=False,
        empty_label="— the VM using the volume —",
        help_text="The shut-off VM the image was prepared in: new VMs copy its definition. "
        "Leave empty to use the VM whose disk the volume is.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["volume"].queryset = selectors.libvirt_volumes()  # type: ignore[attr-defined]
        self.fields["template_vm"].queryset = selectors.libvirt_vms()  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and data.get("volume") is None and data.get("template_vm") is None:
            raise ValidationError("Choose a volume or a shut-off VM whose boot disk is the image.")
        return data

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "os": data["os"],
            "description": data["description"],
            "volume": data["volume"],
            "template_vm": data["template_vm"],
        }


def suggested_pattern(image: GoldenImage) -> str:
    """``<image>-{n:02d}`` with the image's name made into a valid VM name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", image.name).strip("-._")[:50] or "vm"
    return f"{base}-{{n:02d}}"


class ProvisionForm(FirstNicMixin, ServiceErrorsMixin, forms.Form):
    """The "Provision VMs" form: N VMs from one golden image."""

    count = forms.IntegerField(label="Number of VMs", min_value=1, max_value=MAX_COUNT_INPUT, initial=1)
    name_pattern = forms.CharField(
        max_length=100,
        help_text="{n} is the VM's number, e.g. web-{n:02d} gives web-01, web-02 …",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    first_number = forms.IntegerField(min_value=0, max_value=MAX_NUMBER_INPUT, initial=1)
    mode = forms.ChoiceField(
        choices=Mode.choices,
        initial=Mode.SPACE_OPTIMIZED,
        widget=forms.RadioSelect,
        help_text="Space-optimized children store only the blocks each VM changes; a full copy costs the "
        "image's whole size.",
    )
    vcpus = forms.IntegerField(label="vCPUs", min_value=1, max_value=MAX_VCPUS_INPUT)
    memory_mib = forms.IntegerField(label="Memory (MiB)", min_value=1, max_value=MAX_MEMORY_MIB_INPUT)
    pool = PoolChoiceField(
        label="Target pool", queryset=StoragePool.objects.none(), help_text="Where the boot volumes are made."
    )
    host = HostChoiceField(queryset=Host.objects.none(), required=False, empty_label="— the provider's host —")
    network = network_field()
    bridge = bridge_field()
    start = forms.BooleanField(label="Start the VMs after creation", required=False, initial=True)

    def __init__(self, *args: Any, image: GoldenImage, **kwargs: Any) -> None:
        self.image = image
        initial = {
            "name_pattern": suggested_pattern(image),
            "vcpus": image.template_vcpus,
            "memory_mib": max(1, image.template_memory_bytes // MiB),
        }
        if image.pool_id is not None:
            initial["pool"] = image.pool_id
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        provider_id = image.provider_id
        self.fields["pool"].queryset = selectors.provider_pools(provider_id)  # type: ignore[attr-defined]
        self.fields["host"].queryset = Host.objects.filter(  # type: ignore[attr-defined]
            provider_id=provider_id, removed_at__isnull=True
        ).order_by("hostname", "pk")
        self.fields["network"].choices = _network_choices(provider_id)  # type: ignore[attr-defined]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "count": data["count"],
            "name_pattern": data["name_pattern"],
            "first_number": data["first_number"],
            "mode": data["mode"],
            "vcpus": data["vcpus"],
            "memory_bytes": data["memory_mib"] * MiB,
            "pool": data["pool"],
            "host": data["host"],
            "network": data["network"] or "",
            "bridge": (data["bridge"] or "").strip(),
            "start": data["start"],
        }


class DiskAddForm(ServiceErrorsMixin, forms.Form):
    """A data disk for a VM: a new volume in a pool, or an existing volume."""

    SOURCES = [("new", "A new volume"), ("existing", "An existing volume")]

    bus = forms.ChoiceField(choices=DISK_BUSES, initial="virtio")
    source = forms.ChoiceField(label="Disk", choices=SOURCES, initial="new", widget=forms.RadioSelect)
    pool = PoolChoiceField(queryset=StoragePool.objects.none(), required=False, empty_label="— choose a pool —")
    size_gib = forms.DecimalField(
        label="Size (GiB)", required=False, min_value=Decimal("0.001"), max_value=MAX_SIZE_GIB_INPUT, decimal_places=3
    )
    format = forms.ChoiceField(choices=VOLUME_FORMATS, initial="qcow2")
    name = forms.CharField(
        label="Volume name",
        max_length=63,
        required=False,
        help_text="Empty: <VM>-dataN with the format's extension.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    volume = PoolVolumeChoiceField(
        queryset=StorageVolume.objects.none(), required=False, empty_label="— choose a volume —"
    )
    shareable = forms.BooleanField(
        required=False, help_text="For a disk used by several VMs (cluster file systems); host caching is turned off."
    )

    def __init__(self, *args: Any, vm: VirtualMachine, **kwargs: Any) -> None:
        self.vm = vm
        super().__init__(*args, **kwargs)
        pools = selectors.provider_pools(vm.provider_id)
        self.fields["pool"].queryset = pools  # type: ignore[attr-defined]
        self.fields["volume"].queryset = (  # type: ignore[attr-defined]
            StorageVolume.objects.filter(pool__provider_id=vm.provider_id, pool__removed_at__isnull=True)
            .exclude(path="")
            .select_related("pool")
            .order_by("pool__name", "name", "pk")
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == "existing":
            if data.get("volume") is None and "volume" not in self.errors:
                self.add_error("volume", "Choose the volume to attach.")
        elif data.get("source") == "new":
            if data.get("size_gib") is None and "size_gib" not in self.errors:
                self.add_error("size_gib", "Give the new volume's size.")
        return data

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        arguments: dict[str, Any] = {"bus": data["bus"], "shareable": data["shareable"]}
        if data["source"] == "existing":
            arguments["volume"] = data["volume"]
        else:
            arguments.update(
                pool=data["pool"], size_bytes=_size_bytes(data["size_gib"]), format=data["format"], name=data["name"]
            )
        return arguments


class DiskResizeForm(ServiceErrorsMixin, forms.Form):
    size_gib = forms.DecimalField(
        label="New size (GiB)", min_value=Decimal("0.001"), max_value=MAX_SIZE_GIB_INPUT, decimal_places=3
    )

    def size_bytes(self) -> int:
        return _size_bytes(self.cleaned_data["size_gib"])


class VolumeCloneForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(
        label="New volume name", max_length=63, widget=forms.TextInput(attrs={"spellcheck": "false"})
    )
    pool = PoolChoiceField(label="Target pool", queryset=StoragePool.objects.none())
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.FULL, widget=forms.RadioSelect)

    def __init__(self, *args: Any, volume: StorageVolume, **kwargs: Any) -> None:
        self.volume = volume
        stem, dot, ext = volume.name.rpartition(".")
        suggested = f"{stem}-clone.{ext}" if dot else f"{volume.name}-clone"
        kwargs.setdefault("initial", {"name": suggested, "pool": volume.pool_id})
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = selectors.provider_pools(volume.pool.provider_id)  # type: ignore[attr-defined]


class VolumeTemplateVMChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A VM of the volume's provider, with what a new VM takes from it when vCPUs and memory are left empty."""

    def label_from_instance(self, obj: Any) -> str:
        vcpus = f"{obj.vcpus} vCPU{'s' if obj.vcpus != 1 else ''}" if obj.vcpus else "? vCPUs"
        memory = human_bytes(obj.memory_bytes) if obj.memory_bytes else "? memory"
        return f"{obj.name} ({vcpus}, {memory}, {obj.get_state_display().lower()})"


class VMFromVolumeForm(FirstNicMixin, ServiceErrorsMixin, forms.Form):
    """One new VM whose boot disk is made from a pool volume, defined like a chosen VM."""

    name = forms.CharField(
        label="VM name",
        max_length=63,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off", "placeholder": "web-02"}),
    )
    template_vm = VolumeTemplateVMChoiceField(
        label="Template VM",
        queryset=VirtualMachine.objects.none(),
        empty_label="— choose a VM —",
        help_text="The new VM is defined like this VM (with a new name, UUID and MAC addresses). Only its "
        "definition is read: it may run.",
    )
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.FULL, widget=forms.RadioSelect)
    pool = PoolChoiceField(
        label="Target pool", queryset=StoragePool.objects.none(), help_text="Where the boot disk is made."
    )
    vcpus = forms.IntegerField(
        label="vCPUs", min_value=1, max_value=MAX_VCPUS_INPUT, required=False, help_text="Empty: the template VM's."
    )
    memory_mib = forms.IntegerField(
        label="Memory (MiB)",
        min_value=1,
        max_value=MAX_MEMORY_MIB_INPUT,
        required=False,
        help_text="Empty: the template VM's.",
    )
    network = network_field()
    bridge = bridge_field()
    start = forms.BooleanField(
        label="Start the VM after creation",
        required=False,
        help_text="A copy of a disk not prepared as an image boots with the original's host name and addresses.",
    )

    def __init__(self, *args: Any, volume: StorageVolume, **kwargs: Any) -> None:
        self.volume = volume
        provider_id = volume.pool.provider_id
        present_vms = VirtualMachine.objects.filter(provider_id=provider_id, removed_at__isnull=True)
        initial: dict[str, Any] = {"pool": volume.pool_id}
        if volume.path:
            # The VM the volume belongs to is the likeliest template.
            owner = present_vms.filter(disks__source=volume.path).order_by("name", "pk").values_list("pk", flat=True)
            initial["template_vm"] = owner.first()
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.fields["template_vm"].queryset = present_vms.order_by("name", "pk")  # type: ignore[attr-defined]
        self.fields["pool"].queryset = selectors.provider_pools(provider_id)  # type: ignore[attr-defined]
        self.fields["network"].choices = _network_choices(provider_id)  # type: ignore[attr-defined]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        memory_mib = data["memory_mib"]
        return {
            "name": data["name"],
            "template_vm": data["template_vm"],
            "mode": data["mode"],
            "pool": data["pool"],
            "vcpus": data["vcpus"],
            "memory_bytes": memory_mib * MiB if memory_mib is not None else None,
            "network": data["network"] or "",
            "bridge": (data["bridge"] or "").strip(),
            "start": data["start"],
        }
