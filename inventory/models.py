"""The inventory: providers and what discovery found behind them.

Rows are written by ``inventory.services`` only. A discovery compares what a driver saw with these
rows and writes the difference; nothing here has logic in ``save()`` or in signals. Discoveries and
operations are jobs (``vom.jobs``) targeting a provider or a VM.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class Provider(models.Model):
    """A discovery source with its credentials: a libvirt URI, an RHEV-M URL or a Hyper-V host."""

    class Kind(models.TextChoices):
        LIBVIRT = "libvirt", "KVM (libvirt)"
        RHEV = "rhev", "RHEV / oVirt"
        HYPERV = "hyperv", "Hyper-V"

    class WinRMAuth(models.TextChoices):
        NEGOTIATE = "negotiate", "Negotiate (Kerberos or NTLM)"
        NTLM = "ntlm", "NTLM"
        KERBEROS = "kerberos", "Kerberos"
        CREDSSP = "credssp", "CredSSP"
        BASIC = "basic", "Basic (HTTPS only)"

    class Status(models.TextChoices):
        NEW = "new", "Not yet discovered"
        OK = "ok", "OK"
        STALE = "stale", "Stale"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LIBVIRT)
    uri = models.CharField("URI", max_length=500)
    username = models.CharField(max_length=150, blank=True)
    # Fernet token of the password (inventory.secrets); never shown, returned or logged.
    password_encrypted = models.TextField(blank=True, editable=False)
    discovery_interval = models.PositiveIntegerField(default=300, help_text="Seconds between scheduled discoveries.")
    enabled = models.BooleanField(default=True, help_text="Discover on the schedule.")
    description = models.CharField(max_length=300, blank=True)
    # RHEV / oVirt: how to trust the manager, and an optional cluster to limit discovery to.
    ca_certificate = models.TextField("CA certificate (PEM)", blank=True)
    insecure = models.BooleanField(default=False, help_text="Do not verify the manager's TLS certificate.")
    cluster_filter = models.CharField(max_length=255, blank=True)
    # Hyper-V: how to reach the server over WinRM.
    winrm_auth = models.CharField(
        "WinRM authentication", max_length=10, choices=WinRMAuth.choices, default=WinRMAuth.NEGOTIATE
    )
    use_https = models.BooleanField("HTTPS", default=True)
    port = models.PositiveIntegerField(null=True, blank=True, help_text="Default: 5986 with HTTPS, 5985 without.")
    cert_validation = models.BooleanField("validate certificate", default=True)
    # What only a manager has: data centers, clusters, templates, product version.
    facts = models.JSONField(default=dict, blank=True)
    # The environment check (havirtverify): credentials work, the manager's own HA is off …
    check_ok = models.BooleanField(null=True, blank=True)
    check_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NEW)
    stale_reason = models.TextField(blank=True)
    last_discovery_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("provider-detail", args=[self.pk])

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)


class InventoryObject(models.Model):
    """Common columns of discovered rows: when first seen, and when seen gone (kept for history)."""

    first_seen = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None


class Host(InventoryObject):
    """A physical server running a hypervisor."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="hosts")
    uid = models.CharField(max_length=200)
    hostname = models.CharField(max_length=255, db_index=True)
    hypervisor_type = models.CharField(max_length=50, blank=True)
    hypervisor_version = models.CharField(max_length=50, blank=True)
    libvirt_version = models.CharField(max_length=50, blank=True)
    cpu_model = models.CharField(max_length=200, blank=True)
    cpu_arch = models.CharField(max_length=50, blank=True)
    cpu_sockets = models.PositiveIntegerField(default=0)
    cpu_cores = models.PositiveIntegerField(default=0)
    cpu_threads = models.PositiveIntegerField(default=0)
    cpu_count = models.PositiveIntegerField(default=0)
    cpu_mhz = models.PositiveIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["hostname"]
        constraints = [models.UniqueConstraint(fields=["provider", "uid"], name="host_unique_uid")]

    def __str__(self) -> str:
        return self.hostname

    def get_absolute_url(self) -> str:
        return reverse("host-detail", args=[self.pk])


class VirtualMachine(InventoryObject):
    """A virtual machine (guest), whatever its state: running, paused, shut off or transient."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"
        SUSPENDED = "suspended", "Suspended"
        STARTING = "starting", "Starting"
        STOPPING = "stopping", "Stopping"
        MIGRATING = "migrating", "Migrating"
        CRASHED = "crashed", "Crashed"
        UNKNOWN = "unknown", "Unknown"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="vms")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="vms")
    uuid = models.CharField("UUID", max_length=64)
    name = models.CharField(max_length=255, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNKNOWN, db_index=True)
    raw_state = models.CharField(max_length=40, blank=True, help_text="The platform's own state name.")
    state_reason = models.CharField(max_length=100, blank=True)
    # When the platform was read for the state above: discovery, operations and monitoring all write
    # the state, compare-and-set on this time, so an older reading never overwrites a newer one.
    state_read_at = models.DateTimeField(null=True, blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    max_vcpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.BigIntegerField(default=0)
    max_memory_bytes = models.BigIntegerField(default=0)
    os_type = models.CharField(max_length=30, blank=True)
    arch = models.CharField(max_length=30, blank=True)
    machine = models.CharField(max_length=60, blank=True)
    domain_type = models.CharField(max_length=20, blank=True)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")
    # The environment check for this VM (RHEV: the manager's own HA must be off).
    check_ok = models.BooleanField(null=True, blank=True)
    check_message = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["provider", "uuid"], name="vm_unique_uuid")]
        indexes = [
            models.Index(fields=["provider", "name"]),
            models.Index(fields=["host", "name"]),
            # The VM list: present VMs in name order, paged deep without touching the table rows.
            models.Index(fields=["removed_at", "name"]),
            models.Index(fields=["removed_at", "state", "name"]),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("vm-detail", args=[self.pk])

    @property
    def transient(self) -> bool:
        return not self.persistent


class VirtualDisk(models.Model):
    """A disk as the guest sees it (target ``vda``), with its host-side source."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="disks")
    target = models.CharField(max_length=32)
    bus = models.CharField(max_length=16, blank=True)
    device = models.CharField(max_length=16, default="disk")
    source_type = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=1000, blank=True)
    source_pool = models.CharField(max_length=255, blank=True)
    source_volume = models.CharField(max_length=255, blank=True)
    driver_format = models.CharField(max_length=16, blank=True)
    cache = models.CharField(max_length=16, blank=True)
    serial = models.CharField(max_length=100, blank=True)
    wwn = models.CharField(max_length=40, blank=True)
    read_only = models.BooleanField(default=False)
    shareable = models.BooleanField(default=False)
    backing_chain = models.JSONField(default=list, blank=True)
    persistent = models.BooleanField(
        default=True, help_text="False: attached to the live VM only; gone at the next restart."
    )
    volume = models.ForeignKey("StorageVolume", on_delete=models.SET_NULL, null=True, blank=True, related_name="disks")
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["vm", "target"]
        constraints = [models.UniqueConstraint(fields=["vm", "target"], name="disk_unique_target")]
        indexes = [models.Index(fields=["source"])]

    def __str__(self) -> str:
        return f"{self.vm.name}:{self.target}"


class NetworkInterface(models.Model):
    """A VM's NIC."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="nics")
    mac = models.CharField("MAC", max_length=17)
    type = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=255, blank=True, help_text="Network or bridge name.")
    model = models.CharField(max_length=32, blank=True)
    target = models.CharField(max_length=32, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["vm", "mac"]
        constraints = [models.UniqueConstraint(fields=["vm", "mac"], name="nic_unique_mac")]
        indexes = [models.Index(fields=["mac"])]

    def __str__(self) -> str:
        return self.mac


class VMSnapshot(models.Model):
    """A VM snapshot as the platform keeps it."""

    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=30, blank=True)
    description = models.TextField(blank=True)
    parent = models.CharField(max_length=255, blank=True)
    current = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["vm", "created_at", "name"]
        constraints = [models.UniqueConstraint(fields=["vm", "name"], name="snapshot_unique_name")]

    def __str__(self) -> str:
        return self.name


class StoragePool(InventoryObject):
    """Host-side storage holding images: a libvirt pool (later RHEV domains, Hyper-V volumes)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="pools")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="pools")
    uuid = models.CharField("UUID", max_length=64)
    name = models.CharField(max_length=255, db_index=True)
    type = models.CharField(max_length=20, blank=True)
    target_path = models.CharField(max_length=1000, blank=True)
    source = models.CharField(max_length=1000, blank=True)
    capacity_bytes = models.BigIntegerField(default=0)
    allocation_bytes = models.BigIntegerField(default=0)
    available_bytes = models.BigIntegerField(default=0)
    state = models.CharField(max_length=20, blank=True)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["provider", "uuid"], name="pool_unique_uuid")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("pool-detail", args=[self.pk])

    @property
    def used_percent(self) -> int:
        return round(100 * self.allocation_bytes / self.capacity_bytes) if self.capacity_bytes else 0


class StorageVolume(models.Model):
    """A volume in a storage pool (an image file, an LV, a LUN)."""

    pool = models.ForeignKey(StoragePool, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=255)
    key = models.CharField(max_length=1000)
    path = models.CharField(max_length=1000, blank=True, db_index=True)
    format = models.CharField(max_length=16, blank=True)
    capacity_bytes = models.BigIntegerField(default=0)
    allocation_bytes = models.BigIntegerField(default=0)
    backing_store = models.CharField(max_length=1000, blank=True)
    backing_format = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["pool", "name"]
        constraints = [models.UniqueConstraint(fields=["pool", "key"], name="volume_unique_key")]

    def __str__(self) -> str:
        return self.name


class Network(InventoryObject):
    """A virtual network (libvirt network, later RHEV logical network or Hyper-V switch)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="networks")
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, blank=True, related_name="networks")
    name = models.CharField(max_length=255, db_index=True)
    uuid = models.CharField("UUID", max_length=64, blank=True)
    bridge = models.CharField(max_length=64, blank=True)
    forward_mode = models.CharField(max_length=20, blank=True)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    ip_address = models.CharField(max_length=64, blank=True)
    netmask = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Platform facts without a column of their own.")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="network_unique_name")]

    def __str__(self) -> str:
        return self.name
