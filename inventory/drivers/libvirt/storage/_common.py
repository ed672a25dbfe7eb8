"""What the libvirt storage primitives share: constants, names, pools and volume lookups, errors."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import libvirt

from inventory.drivers.base import DriverError, VolumeInfo
from inventory.drivers.libvirt.driver import LibvirtDriver
from inventory.drivers.libvirt.parse import volume_info

VIRTIO_BLK_MAX_DISKS = 28
"""virtio-blk disks a guest can have: one PCI slot each, 32 slots, a few taken by other devices."""

_TARGET_PREFIXES: dict[str, str] = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}
_BUS_LIMITS: dict[str, int] = {"ide": 4}  # two IDE channels × master/slave
_MAC_PREFIX = "52:54:00"  # QEMU's range; 0x52 has the locally-administered bit set
_rng = random.SystemRandom()
_VOLUME_FORMATS = ("qcow2", "raw")
_HOTPLUG_BUSES = frozenset({"virtio", "scsi", "usb"})  # QEMU cannot hot-plug sata or ide disks
_UNSUPPORTED_ERRORS = frozenset({libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED})
# A definition that will be redefined is read with its secrets (a VNC/SPICE password …): libvirt
# leaves them out otherwise, and the redefinition would silently drop them.
_REDEFINE_FLAGS = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
# Keep the usual prefixes when a definition with these namespaces is written back.
ET.register_namespace("qemu", "http://libvirt.org/schemas/domain/qemu/1.0")
ET.register_namespace("libosinfo", "http://libosinfo.org/xmlns/libvirt/domain/1.0")


# --- helpers ----------------------------------------------------------------------------------


def _check_name(kind: str, name: str) -> None:
    if not name or not name.strip():
        raise DriverError(f"{kind} name must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise DriverError(f"{kind} name {name!r} contains control characters")


def _check_volume_name(name: str) -> None:
    _check_name("volume", name)
    if "/" in name or name in (".", ".."):
        raise DriverError(f"volume name {name!r} is not a valid file name")


def _xml(elem: ET.Element) -> str:
    return ET.tostring(elem, encoding="unicode")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _pool(driver: LibvirtDriver, pool_name: str) -> Any:
    conn = driver.connection()
    try:
        pool = conn.storagePoolLookupByName(pool_name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise DriverError(f"storage pool {pool_name!r} not found") from err
        raise driver.error(err, f"cannot look up storage pool {pool_name!r}") from err
    with driver.errors(f"cannot read storage pool {pool_name!r}"):
        active = bool(pool.isActive())
    if not active:
        raise DriverError(f"storage pool {pool_name!r} is not active")
    return pool


def _volume_in_pool(driver: LibvirtDriver, pool: Any, pool_name: str, name: str) -> Any | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise driver.error(err, f"cannot look up volume {name!r} in pool {pool_name!r}") from err


def _existing_volume(driver: LibvirtDriver, pool_name: str, name: str) -> Any:
    """Volume ``name`` of the active pool ``pool_name``; DriverError when either is missing."""
    vol = _volume_in_pool(driver, _pool(driver, pool_name), pool_name, name)
    if vol is None:
        raise DriverError(f"volume {name!r} not found in pool {pool_name!r}")
    return vol


def _refuse_existing_volume(driver: LibvirtDriver, pool: Any, pool_name: str, name: str) -> None:
    if _volume_in_pool(driver, pool, pool_name, name) is not None:
        raise DriverError(f"volume {name!r} already exists in pool {pool_name!r}")


def _volume_by_path(driver: LibvirtDriver, path: str) -> Any | None:
    try:
        return driver.connection().storageVolLookupByPath(path)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise driver.error(err, f"cannot look up volume {path!r}") from err


def _capacity_of(driver: LibvirtDriver, vol: Any, what: str) -> int:
    with driver.errors(f"cannot read volume {what!r}"):
        return int(vol.info()[1])


def _check_capacity(capacity_bytes: int) -> None:
    if capacity_bytes <= 0:
        raise DriverError(f"capacity must be positive, not {capacity_bytes}")


def _size(n: int) -> str:
    """``n`` bytes the way a user reads it: "64 MiB" when exact, else the byte count."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def _unsupported(err: libvirt.libvirtError) -> bool:
    """Whether the hypervisor driver cannot do this at all (device hot-plug on ``test:///`` …)."""
    code = err.get_error_code()
    return code in _UNSUPPORTED_ERRORS or "this function is not supported" in (err.get_error_message() or "")


def _grow(driver: LibvirtDriver, find: Callable[[], Any], what: str, capacity_bytes: int) -> VolumeInfo:
    """Grow the volume ``find()`` looks up to ``capacity_bytes``; a smaller size is refused, the same
    size changes nothing."""
    _check_capacity(capacity_bytes)
    vol = find()
    with driver.errors(f"cannot read the size of {what}"):
        current = int(vol.info()[1])
    if capacity_bytes < current:
        raise DriverError(
            f"cannot shrink {what} from {_size(current)} to {_size(capacity_bytes)}: only growing is supported"
        )
    if capacity_bytes == current:
        with driver.errors(f"cannot read {what}"):
            return volume_info(vol)
    with driver.changing(f"cannot resize {what} to {_size(capacity_bytes)}"):
        vol = find()
        vol.resize(capacity_bytes, 0)
        return volume_info(vol)
