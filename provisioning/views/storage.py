"""Storage for existing VMs and volumes: add a data disk, resize a disk, clone a volume, a new VM from a volume."""

from __future__ import annotations

import math

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from inventory import selectors as inventory_selectors
from inventory.models import Provider, StorageVolume, VirtualDisk, VirtualMachine
from provisioning.forms import DiskAddForm, DiskResizeForm, VMFromVolumeForm, VolumeCloneForm
from provisioning.services.common import GiB
from provisioning.services.disks import request_disk_add, request_disk_resize, request_volume_clone, vm_problem
from provisioning.services.requests import request_vm_from_volume
from vom.web.roles import OPERATOR, role_required


def _vm_unavailable(vm: VirtualMachine) -> str:
    """Why the page offers no form for ``vm``: the service's own reason."""
    problem = vm_problem(vm)
    return f"{problem}." if problem else ""


def _volume_unavailable(volume: StorageVolume, done: str) -> str:
    """Why the page offers no form for ``volume`` (the service refuses these too)."""
    if volume.pool.provider.kind != Provider.Kind.LIBVIRT:
        return f"Volumes of {volume.pool.provider.get_kind_display()} providers are not {done} from this console."
    return ""


@role_required(OPERATOR)
def vm_disk_add(request: HttpRequest, pk: int) -> HttpResponse:
    vm = get_object_or_404(inventory_selectors.vm_detail(), pk=pk)
    form = DiskAddForm(request.POST if request.method == "POST" else None, vm=vm)
    if request.method == "POST" and form.is_valid():
        try:
            op = request_disk_add(vm=vm, user=request.user, **form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Adding a disk to {vm.name} queued (operation #{op.pk}).")
            return redirect(op)
    context = {"vm": vm, "form": form, "unavailable": _vm_unavailable(vm)}
    return render(request, "provisioning/storage/disk_add.html", context)


@role_required(OPERATOR)
def vm_disk_resize(request: HttpRequest, pk: int, disk_pk: int) -> HttpResponse:
    vm = get_object_or_404(inventory_selectors.vm_list(), pk=pk)
    disk = get_object_or_404(VirtualDisk.objects.select_related("volume", "volume__pool"), pk=disk_pk, vm=vm)
    current = disk.volume.capacity_bytes if disk.volume is not None else 0
    if request.method == "POST":
        form = DiskResizeForm(request.POST)
    else:
        # A suggestion 10 GiB above the current size (shrinking is refused).
        form = DiskResizeForm(initial={"size_gib": math.ceil(current / GiB) + 10 if current else None})
    if request.method == "POST" and form.is_valid():
        try:
            op = request_disk_resize(vm=vm, disk=disk, size_bytes=form.size_bytes(), user=request.user)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Resizing {disk.target} of {vm.name} queued (operation #{op.pk}).")
            return redirect(op)
    context = {"vm": vm, "disk": disk, "current": current, "form": form, "unavailable": _vm_unavailable(vm)}
    return render(request, "provisioning/storage/disk_resize.html", context)


@role_required(OPERATOR)
def volume_clone(request: HttpRequest, pk: int) -> HttpResponse:
    volume = get_object_or_404(StorageVolume.objects.select_related("pool", "pool__provider"), pk=pk)
    form = VolumeCloneForm(request.POST if request.method == "POST" else None, volume=volume)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            op = request_volume_clone(
                volume=volume, name=data["name"], pool=data["pool"], mode=data["mode"], user=request.user
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Cloning {volume.name} to {data['name']} queued (operation #{op.pk}).")
            return redirect(op)
    context = {"volume": volume, "form": form, "unavailable": _volume_unavailable(volume, "cloned")}
    return render(request, "provisioning/storage/volume_clone.html", context)


@role_required(OPERATOR)
def volume_new_vm(request: HttpRequest, pk: int) -> HttpResponse:
    volume = get_object_or_404(StorageVolume.objects.select_related("pool", "pool__provider"), pk=pk)
    form = VMFromVolumeForm(request.POST if request.method == "POST" else None, volume=volume)
    if request.method == "POST" and form.is_valid():
        try:
            provisioning = request_vm_from_volume(volume=volume, user=request.user, **form.service_arguments())
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(
                request,
                f"New VM {form.cleaned_data['name']} from {volume.name} queued (request #{provisioning.pk}).",
            )
            return redirect(provisioning)
    context = {"volume": volume, "form": form, "unavailable": _volume_unavailable(volume, "made into VMs")}
    return render(request, "provisioning/storage/volume_new_vm.html", context)
