"""Querysets shared by the GUI and the API, with the joins each page needs."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from inventory.models import (
    Host,
    Network,
    NetworkInterface,
    Provider,
    StoragePool,
    StorageVolume,
    VirtualDisk,
    VirtualMachine,
    VMSnapshot,
)


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.annotate(
        host_count=Count("hosts", filter=Q(hosts__removed_at__isnull=True), distinct=True),
        vm_count=Count("vms", filter=Q(vms__removed_at__isnull=True), distinct=True),
    ).order_by("name", "pk")


def host_list() -> QuerySet[Host]:
    return (
        Host.objects.select_related("provider")
        .annotate(vm_count=Count("vms", filter=Q(vms__removed_at__isnull=True)))
        .order_by("hostname", "pk")
    )


def vm_list() -> QuerySet[VirtualMachine]:
    return VirtualMachine.objects.select_related("provider", "host")


def vm_detail() -> QuerySet[VirtualMachine]:
    return VirtualMachine.objects.select_related("provider", "host").prefetch_related(
        Prefetch("disks", queryset=VirtualDisk.objects.select_related("volume__pool")),
        "nics",
        "snapshots",
    )


def disk_list() -> QuerySet[VirtualDisk]:
    return VirtualDisk.objects.select_related("vm", "vm__provider", "volume", "volume__pool")


def pool_list() -> QuerySet[StoragePool]:
    return (
        StoragePool.objects.select_related("provider", "host")
        .annotate(volume_count=Count("volumes"))
        .order_by("name", "pk")
    )


def volume_list() -> QuerySet[StorageVolume]:
    return (
        StorageVolume.objects.select_related("pool", "pool__provider")
        .annotate(disk_count=Count("disks"))
        .order_by("pool__name", "name", "pk")
    )


def network_list() -> QuerySet[Network]:
    return Network.objects.select_related("provider", "host")


def nic_list() -> QuerySet[NetworkInterface]:
    return NetworkInterface.objects.select_related("vm")


def snapshot_list() -> QuerySet[VMSnapshot]:
    return VMSnapshot.objects.select_related("vm")
