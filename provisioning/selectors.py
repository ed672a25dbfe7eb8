"""Querysets for the provisioning pages, with the joins and aggregates each page needs.

Each list reads a fixed number of queries whatever the number of rows: counts and sums are
subqueries or one grouped query, never one query per row.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from inventory.models import StoragePool, StorageVolume, VirtualMachine
from provisioning.models import GoldenImage, Mode, ProvisionedVM, ProvisioningRequest
from provisioning.services.savings import PoolSavings, Savings, child_groups, compared, parents_of
from vom.jobs.models import Job

J = Job.Status


def _children_of_image() -> QuerySet[StorageVolume]:
    """Volumes of the image's provider backed by the image (its space-optimized children)."""
    return StorageVolume.objects.filter(
        pool__provider_id=OuterRef("provider_id"), pool__removed_at__isnull=True, backing_store=OuterRef("volume_path")
    ).order_by()


def golden_image_list() -> QuerySet[GoldenImage]:
    """Golden images with their children and the space the space-optimized ones save.

    ``child_count``/``child_bytes``: copy-on-write children found on disk (as ``image_savings``
    counts them); ``full_count``/``full_bytes``: full copies it made that still exist; ``parent_bytes``: the image's
    allocation as last discovered (as registered when the volume is gone).
    """
    children = _children_of_image()
    current_parent = StorageVolume.objects.filter(
        pool__provider_id=OuterRef("provider_id"), pool__removed_at__isnull=True, path=OuterRef("volume_path")
    ).order_by("pk")
    full_copies = ProvisionedVM.objects.filter(
        request__golden_image=OuterRef("pk"), job__status=J.SUCCEEDED, request__mode=Mode.FULL
    ).filter(
        Exists(
            StorageVolume.objects.filter(
                pool__provider_id=OuterRef("request__provider_id"),
                pool__removed_at__isnull=True,
                path=OuterRef("volume_path"),
            )
        )
    )
    full_copy_volumes = StorageVolume.objects.filter(
        pool__provider_id=OuterRef("provider_id"),
        pool__removed_at__isnull=True,
        path__in=ProvisionedVM.objects.filter(
            request__golden_image=OuterRef(OuterRef("pk")), job__status=J.SUCCEEDED, request__mode=Mode.FULL
        ).values("volume_path"),
    ).order_by()
    return (
        golden_image_detail()
        .annotate(
            child_count=Coalesce(
                Subquery(
                    children.values("backing_store").annotate(n=Count("pk")).values("n")[:1],
                    output_field=IntegerField(),
                ),
                0,
            ),
            child_bytes=Coalesce(
                Subquery(children.values("backing_store").annotate(s=Sum("allocation_bytes")).values("s")[:1]), 0
            ),
            full_count=Coalesce(
                Subquery(
                    full_copies.values("request__golden_image").annotate(n=Count("pk")).values("n")[:1],
                    output_field=IntegerField(),
                ),
                0,
            ),
            full_bytes=Coalesce(
                Subquery(
                    full_copy_volumes.values("pool__provider_id").annotate(s=Sum("allocation_bytes")).values("s")[:1],
                    output_field=IntegerField(),
                ),
                0,
            ),
            parent_bytes=Coalesce(Subquery(current_parent.values("allocation_bytes")[:1]), "allocation_bytes"),
        )
        .order_by("name", "pk")
    )


def golden_image_detail() -> QuerySet[GoldenImage]:
    """Golden images with what one image's page, form or API answer shows of them."""
    return GoldenImage.objects.select_related("provider", "pool", "pool__host", "template_vm", "created_by")


def request_list() -> QuerySet[ProvisioningRequest]:
    return (
        request_detail()
        .annotate(
            done_count=Count("vms", filter=Q(vms__job__status=J.SUCCEEDED)),
            failed_count=Count("vms", filter=Q(vms__job__status__in=(J.FAILED, J.ABANDONED))),
            cancelled_count=Count("vms", filter=Q(vms__job__status=J.CANCELLED)),
        )
        .order_by("-pk")
    )


def request_detail() -> QuerySet[ProvisioningRequest]:
    return ProvisioningRequest.objects.select_related(
        "job", "job__requested_by", "job__cancelled_by", "golden_image", "provider", "pool", "host"
    ).order_by("-pk")


def image_requests(image: GoldenImage) -> QuerySet[ProvisioningRequest]:
    return request_list().filter(golden_image=image)


def vms_by_uuid(provider_id: int, uuids: Iterable[str]) -> dict[str, VirtualMachine]:
    """The inventory's VMs of ``provider_id`` with these UUIDs, in one query."""
    wanted = [u for u in set(uuids) if u]
    if not wanted:
        return {}
    vms = VirtualMachine.objects.filter(provider_id=provider_id, uuid__in=wanted).select_related("host")
    return {vm.uuid: vm for vm in vms}


def provider_pools(provider_id: int) -> QuerySet[StoragePool]:
    """The provider's present pools, by name: what a form offers as a target pool."""
    return StoragePool.objects.filter(provider_id=provider_id, removed_at__isnull=True).order_by("name", "pk")


def libvirt_volumes() -> QuerySet[StorageVolume]:
    """Volumes a golden image or a data disk can be made from: on KVM providers, with a path."""
    return (
        StorageVolume.objects.filter(pool__provider__kind="libvirt", pool__removed_at__isnull=True)
        .exclude(path="")
        .select_related("pool", "pool__provider")
        .order_by("pool__provider__name", "pool__name", "name", "pk")
    )


def libvirt_vms() -> QuerySet[VirtualMachine]:
    return (
        VirtualMachine.objects.filter(provider__kind="libvirt", removed_at__isnull=True)
        .select_related("provider")
        .order_by("provider__name", "name", "pk")
    )


def savings_by_pool() -> tuple[Savings, list[PoolSavings]]:
    """Every live pool holding copy-on-write children, with ``pool_savings``' totals — in three queries.

    The same groups and the same comparison as ``pool_savings`` (``child_groups``, ``compared``):
    children whose parent the inventory does not know are counted apart and left out of the total.
    """
    groups = child_groups(StorageVolume.objects.filter(pool__removed_at__isnull=True))
    if not groups:
        return Savings(), []
    parents = parents_of(groups)
    pools = {
        pool.pk: pool
        for pool in StoragePool.objects.filter(pk__in={g.pool_id for g in groups}).select_related("provider", "host")
    }
    per_pool: dict[int, PoolSavings] = {}
    total = Savings()
    for group in groups:
        row = per_pool.get(group.pool_id)
        if row is None:
            row = per_pool[group.pool_id] = PoolSavings(
                pool=pools[group.pool_id], savings=Savings(), parents=0, unknown_parent_children=0
            )
        row.parents += 1  # one group per pool and parent
        parent = parents.get((group.provider_id, group.parent_path))
        if parent is None:
            row.unknown_parent_children += group.children
            continue
        part = compared(group, parent)
        row.savings.add(part)
        total.add(part)
    rows = sorted(per_pool.values(), key=lambda r: (-r.savings.saved_bytes, r.pool.name, r.pool.pk))
    return total, rows
