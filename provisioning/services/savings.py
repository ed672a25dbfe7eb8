"""Storage savings: what space-optimized children take on disk against what full copies would take.

Every figure is an actual allocation as last read from the platform (each discovery and the end of
each provisioning request read it); only the comparison — "as many full copies" — is hypothetical:
a full copy takes what its parent image takes now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, QuerySet, Sum

from inventory.models import StoragePool, StorageVolume, VirtualDisk, VirtualMachine
from provisioning.models import GoldenImage, Mode, ProvisionedVM
from vom.jobs.models import Job


@dataclass
class Child:
    """A volume made from an image: a copy-on-write child or a full copy, and the VM using it."""

    volume: StorageVolume
    mode: str
    vm: VirtualMachine | None = None
    request_id: int | None = None


@dataclass
class Savings:
    """Space-optimized children of one parent image (or several) against full copies of it."""

    children: int = 0
    children_bytes: int = 0
    full_equivalent_bytes: int = 0
    full_copies: int = 0
    full_copies_bytes: int = 0

    @property
    def saved_bytes(self) -> int:
        return max(0, self.full_equivalent_bytes - self.children_bytes)

    @property
    def children_percent(self) -> float:
        """What the children take, in percent of what as many full copies would take."""
        return 100 * self.children_bytes / self.full_equivalent_bytes if self.full_equivalent_bytes else 0.0

    @classmethod
    def of_listed(cls, image: GoldenImage) -> Savings:
        """The savings of an image of ``selectors.golden_image_list`` from its annotations (no query);
        the same figures :func:`image_savings` reads."""
        children: int = image.child_count  # type: ignore[attr-defined]
        return cls(
            children=children,
            children_bytes=image.child_bytes,  # type: ignore[attr-defined]
            full_equivalent_bytes=children * image.parent_bytes,  # type: ignore[attr-defined]
            full_copies=image.full_count,  # type: ignore[attr-defined]
            full_copies_bytes=image.full_bytes,  # type: ignore[attr-defined]
        )

    def add(self, other: Savings) -> None:
        self.children += other.children
        self.children_bytes += other.children_bytes
        self.full_equivalent_bytes += other.full_equivalent_bytes
        self.full_copies += other.full_copies
        self.full_copies_bytes += other.full_copies_bytes

    def as_dict(self) -> dict[str, float | int]:
        return {
            "children": self.children,
            "children_bytes": self.children_bytes,
            "full_equivalent_bytes": self.full_equivalent_bytes,
            "saved_bytes": self.saved_bytes,
            "children_percent": round(self.children_percent, 3),
            "full_copies": self.full_copies,
            "full_copies_bytes": self.full_copies_bytes,
        }


@dataclass
class ImageSavings:
    image: GoldenImage
    parent: StorageVolume | None
    savings: Savings
    children: list[Child] = field(default_factory=list)


def _vms_using(paths: list[str]) -> dict[str, VirtualMachine]:
    disks = VirtualDisk.objects.filter(source__in=paths, vm__removed_at__isnull=True).select_related("vm")
    return {disk.source: disk.vm for disk in disks}


def image_savings(image: GoldenImage) -> ImageSavings:
    """The golden image's children (space-optimized ones found on disk, full copies it made) and savings."""
    provider_volumes = StorageVolume.objects.filter(
        pool__provider_id=image.provider_id, pool__removed_at__isnull=True
    ).select_related("pool")
    parent = provider_volumes.filter(path=image.volume_path).first()
    parent_bytes = parent.allocation_bytes if parent is not None else image.allocation_bytes
    overlays = list(provider_volumes.filter(backing_store=image.volume_path).order_by("name"))
    made = ProvisionedVM.objects.filter(request__golden_image=image, job__status=Job.Status.SUCCEEDED)
    requests_by_path = dict(made.values_list("volume_path", "request_id"))
    full_paths = list(made.filter(request__mode=Mode.FULL).values_list("volume_path", flat=True))
    full = list(provider_volumes.filter(path__in=full_paths).order_by("name"))
    users = _vms_using([v.path for v in overlays + full])
    children = [
        Child(volume=v, mode=mode, vm=users.get(v.path), request_id=requests_by_path.get(v.path))
        for mode, volumes in ((Mode.SPACE_OPTIMIZED, overlays), (Mode.FULL, full))
        for v in volumes
    ]
    savings = Savings(
        children=len(overlays),
        children_bytes=sum(v.allocation_bytes for v in overlays),
        full_equivalent_bytes=len(overlays) * parent_bytes,
        full_copies=len(full),
        full_copies_bytes=sum(v.allocation_bytes for v in full),
    )
    return ImageSavings(image=image, parent=parent, savings=savings, children=children)


@dataclass
class ParentGroup:
    """The children in one pool of one parent image."""

    parent_path: str
    parent: StorageVolume | None
    golden_image: GoldenImage | None
    savings: Savings


@dataclass
class ChildGroup:
    """The space-optimized children in one pool of one parent image, counted and summed by the database."""

    pool_id: int
    provider_id: int
    parent_path: str
    children: int
    children_bytes: int


def child_groups(volumes: QuerySet[StorageVolume]) -> list[ChildGroup]:
    """``volumes``' copy-on-write children (those with a backing store), one group per pool and parent."""
    rows = (
        volumes.exclude(backing_store="")
        .values("pool_id", "pool__provider_id", "backing_store")
        .annotate(n=Count("pk"), total=Sum("allocation_bytes"))
        .order_by("pool_id", "backing_store")
    )
    return [
        ChildGroup(
            pool_id=row["pool_id"],
            provider_id=row["pool__provider_id"],
            parent_path=row["backing_store"],
            children=row["n"],
            children_bytes=row["total"] or 0,
        )
        for row in rows
    ]


def parents_of(groups: list[ChildGroup]) -> dict[tuple[int, str], StorageVolume]:
    """The groups' parent images the inventory knows: volumes at that path in a live pool of the same
    provider, by (provider, path)."""
    if not groups:
        return {}
    volumes = StorageVolume.objects.filter(
        pool__removed_at__isnull=True,
        pool__provider_id__in={g.provider_id for g in groups},
        path__in={g.parent_path for g in groups},
    ).select_related("pool")
    return {(v.pool.provider_id, v.path): v for v in volumes}


def compared(group: ChildGroup, parent: StorageVolume | None) -> Savings:
    """The group against as many full copies of its parent as it has children; a child of an unknown
    parent is counted without a comparison (its parent's size is not guessed)."""
    return Savings(
        children=group.children,
        children_bytes=group.children_bytes,
        full_equivalent_bytes=group.children * parent.allocation_bytes if parent is not None else 0,
    )


@dataclass
class PoolSavings:
    """One pool's space-optimized children against full copies of their parents; ``groups`` (one per
    parent image) only from :func:`pool_savings`, not in the overview of every pool."""

    pool: StoragePool
    savings: Savings
    parents: int
    unknown_parent_children: int
    groups: list[ParentGroup] = field(default_factory=list)

    @property
    def compared(self) -> list[ParentGroup]:
        """The groups whose parent the inventory knows: those in the totals."""
        return [g for g in self.groups if g.parent is not None]


def pool_savings(pool: StoragePool) -> PoolSavings:
    """Per parent image, the space-optimized children in ``pool`` against full copies of the parent.

    The total leaves out children whose parent image the inventory does not know; they are listed
    with their group.
    """
    groups = child_groups(StorageVolume.objects.filter(pool=pool))
    parents = parents_of(groups)
    images = {
        g.volume_path: g
        for g in GoldenImage.objects.filter(
            provider_id=pool.provider_id, volume_path__in=[group.parent_path for group in groups]
        )
    }
    total = Savings()
    result = []
    for group in groups:
        parent = parents.get((group.provider_id, group.parent_path))
        savings = compared(group, parent)
        if parent is not None:
            total.add(savings)
        result.append(
            ParentGroup(
                parent_path=group.parent_path,
                parent=parent,
                golden_image=images.get(group.parent_path),
                savings=savings,
            )
        )
    return PoolSavings(
        pool=pool,
        savings=total,
        parents=len(result),
        unknown_parent_children=sum(g.savings.children for g in result if g.parent is None),
        groups=result,
    )
