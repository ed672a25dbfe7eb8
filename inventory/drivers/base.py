"""The driver interface: plain dataclasses in, plain dataclasses out.

A driver speaks to one platform (libvirt, RHEV, Hyper-V). It never imports the ORM; it returns an
:class:`InventorySnapshot` that ``inventory.services.discovery`` compares with the database. Every
platform error is translated into :class:`DriverError`, which says whether retrying can help.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol


class DriverError(Exception):
    """A platform call failed. ``retryable`` tells the caller whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Credentials:
    """What a provider needs to log in; ``None`` fields are not used by the URI."""

    username: str | None = None
    password: str | None = None


@dataclass
class HostFacts:
    uid: str  # stable id of the host within its provider (libvirt: host UUID or hostname)
    hostname: str
    hypervisor_type: str = ""  # "QEMU", "Test", "RHEV-H", "Hyper-V"
    hypervisor_version: str = ""  # "7.2.0"
    libvirt_version: str = ""  # "9.0.0"
    cpu_model: str = ""
    cpu_arch: str = ""
    cpu_sockets: int = 0
    cpu_cores: int = 0  # per socket
    cpu_threads: int = 0  # per core
    cpu_count: int = 0  # logical CPUs
    cpu_mhz: int = 0
    memory_bytes: int = 0
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DiskInfo:
    target: str  # "vda", "sdb", "hdc"
    bus: str = ""  # virtio, scsi, sata, ide, usb
    device: str = "disk"  # disk, cdrom, lun, floppy
    source_type: str = ""  # file, block, volume, network, dir
    source: str = ""  # path, device, "pool/volume", or protocol://host/name
    source_pool: str = ""  # for type="volume"
    source_volume: str = ""
    driver_format: str = ""  # qcow2, raw …
    cache: str = ""  # none, writeback, writethrough, directsync, unsafe, default
    serial: str = ""
    wwn: str = ""
    read_only: bool = False
    shareable: bool = False
    backing_chain: list[str] = field(default_factory=list)  # backing files, nearest first
    persistent: bool = True  # False: only in the live definition, gone at the next restart
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NicInfo:
    mac: str
    type: str = ""  # network, bridge, direct, user …
    source: str = ""  # network or bridge name
    model: str = ""  # virtio, e1000 …
    target: str = ""  # host-side device (vnet0), when running
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SnapshotInfo:
    name: str
    created: dt.datetime | None = None
    state: str = ""  # the domain state captured: running, shutoff, disk-snapshot …
    description: str = ""
    parent: str = ""
    current: bool = False
    # Platform facts with no column of their own (Hyper-V checkpoint type, differencing disks …).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class VMInfo:
    uuid: str
    name: str
    state: str  # libvirt: running, blocked, paused, shutdown, shutoff, crashed, pmsuspended, nostate
    state_reason: str = ""
    host_uid: str = ""
    vcpus: int = 0
    max_vcpus: int = 0
    memory_bytes: int = 0  # current
    max_memory_bytes: int = 0
    os_type: str = ""  # hvm, linux, exe
    arch: str = ""
    machine: str = ""
    autostart: bool = False
    persistent: bool = True
    domain_type: str = ""  # kvm, qemu, test
    description: str = ""
    disks: list[DiskInfo] = field(default_factory=list)
    nics: list[NicInfo] = field(default_factory=list)
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class VolumeInfo:
    name: str
    key: str  # libvirt volume key: unique within the host
    path: str = ""
    format: str = ""  # raw, qcow2 …
    capacity_bytes: int = 0
    allocation_bytes: int = 0
    backing_store: str = ""  # path of the backing file, if any
    backing_format: str = ""


@dataclass
class PoolInfo:
    uuid: str
    name: str
    type: str = ""  # dir, logical, disk, iscsi, netfs, fs …
    target_path: str = ""
    source: str = ""  # what backs the pool: device, host:/export, VG name
    capacity_bytes: int = 0
    allocation_bytes: int = 0
    available_bytes: int = 0
    state: str = ""  # running, inactive, building, degraded, inaccessible
    active: bool = False
    autostart: bool = False
    persistent: bool = True
    volumes: list[VolumeInfo] = field(default_factory=list)
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NetworkInfo:
    name: str
    uuid: str = ""
    bridge: str = ""
    forward_mode: str = ""  # nat, route, bridge, open, "" for isolated
    active: bool = False
    autostart: bool = False
    persistent: bool = True
    ip_address: str = ""
    netmask: str = ""
    # Platform facts with no column of their own (RHEV cluster, Hyper-V generation …), JSON-ready.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class InventorySnapshot:
    """Everything one discovery saw behind one provider."""

    # When the platform was read (taken just before the first call): a VM state read then never
    # overwrites one an operation or a monitor read later (compare-and-set on the VM's state).
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    hosts: list[HostFacts] = field(default_factory=list)
    vms: list[VMInfo] = field(default_factory=list)
    pools: list[PoolInfo] = field(default_factory=list)
    networks: list[NetworkInfo] = field(default_factory=list)
    # VMs that exist but could not be read this time: the sync leaves their rows as they were.
    skipped_vm_uuids: list[str] = field(default_factory=list)
    # What only a manager has (RHEV data centers, clusters, templates, product), JSON-ready.
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class VMStateReading:
    """The state of one VM read right now (after an operation, or by a monitor)."""

    uuid: str
    state: str
    state_reason: str = ""
    # When it was read (just before the call): an older reading never overwrites a newer one.
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class VMCheck:
    """The environment check of one VM: can the console manage it (RHEV: the manager's own HA is off)."""

    ok: bool
    reason: str = ""
    ha_enabled: bool | None = None  # RHEV only: the manager's own high availability for the VM
    name: str = ""


@dataclass
class EnvironmentCheck:
    """The environment check of a provider (``havirtverify``): the platform answers with these
    credentials, and per VM what would stop the console from managing it."""

    ok: bool
    reason: str = ""
    retryable: bool = False
    product: str = ""  # what the platform says it is (RHEV: product and version)
    vms: dict[str, VMCheck] = field(default_factory=dict)


class Driver(Protocol):
    """What every platform driver offers; the services call nothing else on a driver.

    Operations take the VM's platform id (libvirt UUID, RHEV id, Hyper-V VMId). Every failure is a
    :class:`DriverError`; every call to the platform is bounded by the connect and read timeouts the
    driver was made with.
    """

    def discover(self) -> InventorySnapshot: ...

    def vm_state(self, vm_id: str) -> VMStateReading: ...

    def vm_host(self, vm_id: str) -> str:
        """The uid of the host the VM runs on now (as in :attr:`HostFacts.uid`); "" when it runs nowhere."""
        ...

    def verify(self, vm_ids: list[str]) -> EnvironmentCheck:
        """The environment check; never raises for a platform problem (it is the check's outcome)."""
        ...

    def start(self, vm_id: str) -> None: ...

    def shutdown(self, vm_id: str) -> None:
        """Ask the guest to shut down; returns at once (the caller waits for the state)."""
        ...

    def power_off(self, vm_id: str) -> None: ...

    def reboot(self, vm_id: str) -> None: ...

    def suspend(self, vm_id: str) -> None: ...

    def resume(self, vm_id: str) -> None: ...

    def snapshot_create(self, vm_id: str, name: str, description: str = "") -> None: ...

    def snapshot_revert(self, vm_id: str, name: str) -> None: ...

    def snapshot_delete(self, vm_id: str, name: str) -> None: ...

    def migrate(self, vm_id: str, host_uid: str | None = None) -> None:
        """Live-migrate to the host ``host_uid`` (None: the platform chooses); returns once asked.

        A platform whose live migration is not run from this console raises DriverError.
        """
        ...

    def close(self) -> None: ...
