"""Volumes: copy-on-write children, full copies, empty data volumes, growing, reading, deleting."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from inventory.drivers.base import DriverError, PoolInfo, VolumeInfo
from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import volume_info
from inventory.drivers.libvirt.storage._common import (
    _VOLUME_FORMATS,
    _capacity_of,
    _check_capacity,
    _check_volume_name,
    _existing_volume,
    _grow,
    _pool,
    _refuse_existing_volume,
    _sub,
    _unsupported,
    _volume_by_path,
    _volume_in_pool,
    _xml,
)

# --- volumes ----------------------------------------------------------------------------------


def _target(root: ET.Element, fmt: str) -> None:
    """The volume's ``<target>``: its format, and for qcow2 the current on-disk version (1.1: zero
    clusters, lazy refcounts) rather than the 0.10 some libvirt versions still default to."""
    target = _sub(root, "target")
    _sub(target, "format", type=fmt)
    if fmt == "qcow2":
        _sub(target, "compat", "1.1")


def create_overlay_volume(
    driver: LibvirtDriver,
    pool_name: str,
    name: str,
    backing_path: str,
    backing_format: str = "qcow2",
    capacity_bytes: int | None = None,
) -> VolumeInfo:
    """Create a qcow2 copy-on-write child of ``backing_path`` (the golden image) in ``pool_name``.

    ``capacity_bytes`` defaults to the golden image's capacity (the image must then be a volume
    libvirt knows, in any pool); a child may be larger than its parent but not smaller.
    """
    _check_volume_name(name)
    if not backing_path:
        raise DriverError("the backing image path must not be empty")
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    backing = _volume_by_path(driver, backing_path)
    if capacity_bytes is None:
        if backing is None:
            raise DriverError(f"backing image {backing_path!r} is not a known volume: give the capacity")
        capacity_bytes = _capacity_of(driver, backing, backing_path)
    elif capacity_bytes <= 0:
        raise DriverError(f"capacity must be positive, not {capacity_bytes}")
    elif backing is not None and capacity_bytes < _capacity_of(driver, backing, backing_path):
        raise DriverError(f"capacity {capacity_bytes} is smaller than the backing image {backing_path!r}")

    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_bytes), unit="bytes")
    _sub(root, "allocation", "0", unit="bytes")
    _target(root, "qcow2")
    store = _sub(root, "backingStore")
    _sub(store, "path", backing_path)
    _sub(store, "format", type=backing_format)
    with driver.changing(f"cannot create overlay volume {name!r} in pool {pool_name!r}"):
        vol = _pool(driver, pool_name).createXML(_xml(root), 0)
        return volume_info(vol)


def clone_volume(
    driver: LibvirtDriver, pool_name: str, source_path: str, name: str, format: str = "qcow2"
) -> VolumeInfo:
    """Create ``name`` in ``pool_name`` as a full copy of the volume at ``source_path``."""
    _check_volume_name(name)
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(_capacity_of(driver, _source_volume(driver, source_path), source_path)), unit="bytes")
    _target(root, format)
    with driver.changing(f"cannot clone {source_path!r} to volume {name!r} in pool {pool_name!r}"):
        source = _source_volume(driver, source_path)
        vol = _pool(driver, pool_name).createXMLFrom(_xml(root), source, 0)
        return volume_info(vol)


def _source_volume(driver: LibvirtDriver, path: str) -> Any:
    source = _volume_by_path(driver, path)
    if source is None:
        raise DriverError(f"source volume {path!r} not found")
    return source


def create_volume(
    driver: LibvirtDriver, pool_name: str, name: str, capacity_bytes: int, format: str = "qcow2"
) -> VolumeInfo:
    """Create an empty data volume ``name`` of ``capacity_bytes`` in ``pool_name``.

    It is sparse (allocation 0): it takes space as the guest writes. ``format`` is qcow2 or raw.
    """
    _check_volume_name(name)
    if format not in _VOLUME_FORMATS:
        raise DriverError(f"volume format {format!r} is not supported: use {' or '.join(_VOLUME_FORMATS)}")
    _check_capacity(capacity_bytes)
    pool = _pool(driver, pool_name)
    _refuse_existing_volume(driver, pool, pool_name, name)
    root = ET.Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", str(capacity_bytes), unit="bytes")
    _sub(root, "allocation", "0", unit="bytes")
    _target(root, format)
    with driver.changing(f"cannot create volume {name!r} in pool {pool_name!r}"):
        vol = _pool(driver, pool_name).createXML(_xml(root), 0)
        return volume_info(vol)


def resize_volume(driver: LibvirtDriver, pool_name: str, name: str, capacity_bytes: int) -> VolumeInfo:
    """Grow volume ``name`` of ``pool_name`` to ``capacity_bytes`` (shrinking is refused).

    Only the volume grows: a VM using it sees the new size at its next start, and the partitions
    and file systems inside are the guest's to grow.
    """
    what = f"volume {name!r} in pool {pool_name!r}"
    return _grow(driver, lambda: _existing_volume(driver, pool_name, name), what, capacity_bytes)


def volume_by_path(driver: LibvirtDriver, path: str) -> VolumeInfo | None:
    """The volume at ``path`` in any storage pool of the host, or None if libvirt knows none there."""
    if not path:
        raise DriverError("the volume path must not be empty")
    vol = _volume_by_path(driver, path)
    if vol is None:
        return None
    with driver.errors(f"cannot read volume {path!r}"):
        return volume_info(vol)


def refresh_pool(driver: LibvirtDriver, pool_name: str) -> PoolInfo:
    """Rescan ``pool_name`` on the host and return it with its volumes, read fresh from the platform.

    A refresh picks up volumes made or removed outside libvirt and the current capacity, allocation
    and free space.
    """
    with driver.changing(f"cannot refresh storage pool {pool_name!r}"):
        pool = _pool(driver, pool_name)
        try:
            pool.refresh(0)
        except libvirt.libvirtError as err:
            if not _unsupported(err):
                raise
    with driver.errors(f"cannot read storage pool {pool_name!r}"):
        return driver.pool_info(pool)


def delete_volume(driver: LibvirtDriver, pool_name: str, name: str, *, missing_ok: bool = False) -> None:
    """Delete volume ``name`` of ``pool_name`` (its data too). ``missing_ok``: a missing one is fine."""
    with driver.changing(f"cannot delete volume {name!r} in pool {pool_name!r}"):
        pool = _pool(driver, pool_name)
        vol = _volume_in_pool(driver, pool, pool_name, name)
        if vol is None:
            if missing_ok:
                return
            raise DriverError(f"volume {name!r} not found in pool {pool_name!r}")
        vol.delete(0)
