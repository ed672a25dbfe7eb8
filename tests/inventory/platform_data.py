"""Hand-built RHEV and Hyper-V inventories whose ``extra`` dicts look like the drivers', applied by the real sync."""

from __future__ import annotations

import datetime as dt

from inventory.drivers.base import (
    DiskInfo,
    HostFacts,
    InventorySnapshot,
    NetworkInfo,
    NicInfo,
    PoolInfo,
    SnapshotInfo,
    VMInfo,
)
from inventory.models import Provider
from inventory.services import sync

DC = {"datacenter_id": "dc-1", "datacenter": "Default-DC"}


def _where(cluster: str) -> dict[str, str]:
    return {**DC, "cluster_id": f"cl-{cluster}", "cluster": cluster}


def rhev_snapshot() -> InventorySnapshot:
    """Two hosts in cluster prod-cl; VM web01 running (HA off, image + LUN disk), db01 running with HA on."""
    hosts = [
        HostFacts(
            uid=f"host-{n}",
            hostname=f"rhvh0{n}.example",
            hypervisor_type="RHEV",
            hypervisor_version="4.5",
            cpu_model="Intel Cascadelake",
            cpu_count=32,
            memory_bytes=256 << 30,
            extra={**_where("prod-cl"), "platform": "rhev", "host_id": f"host-{n}", "status": "up", "spm": "none"},
        )
        for n in (1, 2)
    ]

    def vm(name: str, ha: bool) -> VMInfo:
        return VMInfo(
            uuid=f"vm-{name}",
            name=name,
            state="up",
            host_uid="host-1",
            vcpus=4,
            max_vcpus=4,
            memory_bytes=8 << 30,
            max_memory_bytes=8 << 30,
            os_type="hvm",
            domain_type="kvm",
            disks=[
                DiskInfo(
                    target="vda",
                    bus="virtio",
                    source_type="volume",
                    source_pool="data-nfs",
                    source=f"data-nfs/disk-{name}",
                    driver_format="qcow2",
                    extra={
                        "disk_id": f"disk-{name}",
                        "interface": "virtio",
                        "bootable": True,
                        "active": True,
                        "alias": f"{name}_Disk1",
                        "format": "cow",
                        "sparse": True,
                        "provisioned_size": 50 << 30,
                        "actual_size": 7 << 30,
                        "total_size": 7 << 30,
                        "storage_type": "image",
                        "status": "ok",
                        "storage_domain_id": "sd-data",
                        "storage_domain": "data-nfs",
                    },
                ),
                DiskInfo(
                    target="sda",
                    bus="scsi",
                    source_type="block",
                    source="/dev/mapper/36001405aaaabbbbcccc",
                    wwn="36001405aaaabbbbcccc",
                    driver_format="raw",
                    extra={
                        "disk_id": f"lun-{name}",
                        "interface": "virtio_scsi",
                        "format": "raw",
                        "sparse": False,
                        "provisioned_size": 100 << 30,
                        "actual_size": 100 << 30,
                        "lun_ids": ["36001405aaaabbbbcccc"],
                        "lun_storage_type": "iscsi",
                        "luns": [{"id": "36001405aaaabbbbcccc", "vendor": "LIO-ORG"}],
                    },
                ),
            ],
            nics=[
                NicInfo(
                    mac=f"56:6f:00:00:00:0{1 if ha else 2}",
                    type="bridge",
                    source="ovirtmgmt",
                    model="virtio",
                    extra={
                        "nic_id": "nic-1",
                        "name": "nic1",
                        "vnic_profile": "ovirtmgmt",
                        "network": "ovirtmgmt",
                        "plugged": True,
                        "linked": True,
                    },
                )
            ],
            extra={
                **_where("prod-cl"),
                "platform": "rhev",
                "template_id": "tpl-1",
                "template": "rhel9-golden",
                "os": "rhel_9x64",
                "ha_enabled": ha,
                "ha_priority": 50 if ha else 0,
                "cpu_sockets": 2,
                "cpu_cores": 2,
                "cpu_threads": 1,
                "vm_type": "server",
                "stateless": False,
                "created": "2026-01-02T03:04:05+00:00",
                "placement_affinity": "migratable",  # a key the page has no label for: the generic table shows it
            },
        )

    pools = [
        PoolInfo(
            uuid=f"sd-{kind}",
            name=f"{kind}-nfs",
            type=kind,
            target_path=f"nfs01:/exports/{kind}",
            capacity_bytes=4 << 40,
            allocation_bytes=1 << 40,
            available_bytes=3 << 40,
            state="active",
            active=True,
            extra={"platform": "rhev", "domain_type": kind, "storage_type": "nfs", "master": kind == "data"},
        )
        for kind in ("data", "iso")
    ]
    return InventorySnapshot(
        hosts=hosts,
        vms=[vm("web01", ha=False), vm("db01", ha=True)],
        pools=pools,
        networks=[
            NetworkInfo(
                name="ovirtmgmt", uuid="net-1", bridge="ovirtmgmt", extra={**DC, "platform": "rhev", "vlan": None}
            )
        ],
        facts={
            "product": {"name": "oVirt Engine", "vendor": "ovirt.org", "version": "4.5.6-1.el9"},
            "datacenters": [{"id": "dc-1", "name": "Default-DC", "status": "up", "version": "4.7", "local": False}],
            "clusters": [{**_where("prod-cl"), "id": "cl-prod-cl", "name": "prod-cl", "cpu_type": "Intel Cascadelake"}],
            "templates": [
                {
                    "id": "tpl-1",
                    "name": "rhel9-golden",
                    "description": "RHEL 9 base",
                    "os": "rhel_9x64",
                    "memory_bytes": 4 << 30,
                    "status": "ok",
                    "version_name": "v3",
                    "cluster_id": "cl-prod-cl",
                }
            ],
        },
    )


def hyperv_snapshot() -> InventorySnapshot:
    """One Hyper-V host with VM app01: a differencing VHDX and a pass-through disk, a checkpoint, a NIC."""
    return InventorySnapshot(
        hosts=[
            HostFacts(
                uid="hv01.corp.local",
                hostname="hv01.corp.local",
                hypervisor_type="Hyper-V",
                hypervisor_version="10.0.20348",
                cpu_arch="x86_64",
                cpu_count=48,
                memory_bytes=512 << 30,
                extra={
                    "computer_name": "HV01",
                    "os": "Microsoft Windows Server 2022 Datacenter",
                    "os_build": "20348",
                    "virtual_hard_disk_path": "C:\\ClusterStorage\\Volume1\\VHDs",
                    "virtual_machine_path": "C:\\ClusterStorage\\Volume1",
                },
            )
        ],
        vms=[
            VMInfo(
                uuid="4f3c1a2e-0000-4000-8000-000000000001",
                name="app01",
                state="Running",
                host_uid="hv01.corp.local",
                vcpus=4,
                max_vcpus=4,
                memory_bytes=6 << 30,
                max_memory_bytes=16 << 30,
                os_type="hvm",
                machine="generation 2",
                domain_type="hyperv",
                description="Line-of-business app",
                disks=[
                    DiskInfo(
                        target="scsi0:0",
                        bus="scsi",
                        source_type="file",
                        source="C:\\ClusterStorage\\Volume1\\VHDs\\app01_1A2B.avhdx",
                        driver_format="vhdx",
                        backing_chain=["C:\\ClusterStorage\\Volume1\\VHDs\\app01.vhdx"],
                        extra={
                            "controller_type": "SCSI",
                            "controller_number": 0,
                            "controller_location": 0,
                            "kind": "vhd",
                            "host_volume": "C:\\ClusterStorage\\Volume1\\",
                            "vhd_format": "VHDX",
                            "vhd_type": "Differencing",
                            "size_bytes": 127 << 30,
                            "file_size_bytes": 2 << 30,
                            "parent_path": "C:\\ClusterStorage\\Volume1\\VHDs\\app01.vhdx",
                        },
                    ),
                    DiskInfo(
                        target="scsi0:1",
                        bus="scsi",
                        source_type="block",
                        source="PhysicalDisk3",
                        extra={
                            "controller_type": "SCSI",
                            "controller_number": 0,
                            "controller_location": 1,
                            "kind": "pass-through",
                            "disk_number": 3,
                            "description": "Disk 3 200.00 GB Bus 0 Lun 1 Target 0",
                        },
                    ),
                ],
                nics=[
                    NicInfo(
                        mac="00:15:5d:01:02:03",
                        type="switch",
                        source="vSwitch-Prod",
                        extra={"ip_addresses": ["10.1.2.3", "fe80::1"], "name": "Network Adapter", "dynamic_mac": True},
                    )
                ],
                snapshots=[
                    SnapshotInfo(
                        name="before-patch",
                        created=dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC),
                        current=True,
                        extra={"type": "Standard", "disks": ["C:\\ClusterStorage\\Volume1\\VHDs\\app01_1A2B.avhdx"]},
                    )
                ],
                extra={
                    "generation": 2,
                    "version": "10.0",
                    "uptime_seconds": 3 * 86400 + 4 * 3600 + 5 * 60,
                    "heartbeat": "OkApplicationsHealthy",
                    "clustered": True,
                    "notes": "Line-of-business app",
                    "memory_startup_bytes": 4 << 30,
                    "memory_assigned_bytes": 6 << 30,
                    "dynamic_memory": True,
                    "memory_minimum_bytes": 2 << 30,
                    "memory_maximum_bytes": 16 << 30,
                    "normalized_state": "running",
                    "critical": False,
                    "automatic_start_action": "StartIfRunning",
                    "config_path": "C:\\ClusterStorage\\Volume1\\app01",
                    "replication_mode": "None",  # unlabelled: shown in the generic table
                },
            )
        ],
        pools=[
            PoolInfo(
                uuid="\\\\?\\Volume{abc}\\",
                name="C:\\ClusterStorage\\Volume1\\",
                type="csv",
                target_path="C:\\ClusterStorage\\Volume1\\",
                capacity_bytes=2 << 40,
                allocation_bytes=1 << 40,
                available_bytes=1 << 40,
                state="running",
                active=True,
                extra={"label": "CSV-Prod", "file_system": "CSVFS", "host_uid": "hv01.corp.local"},
            )
        ],
    )


def make_rhev(name: str = "rhevm-lab") -> Provider:
    provider = Provider.objects.create(
        name=name,
        kind=Provider.Kind.RHEV,
        uri="https://rhevm.example/ovirt-engine/api",
        username="admin@internal",
        insecure=True,
        cluster_filter="prod-cl",
    )
    sync.apply_snapshot(provider, rhev_snapshot())
    Provider.objects.filter(pk=provider.pk).update(status=Provider.Status.OK)
    provider.refresh_from_db()
    return provider


def make_hyperv(name: str = "hv01") -> Provider:
    provider = Provider.objects.create(
        name=name, kind=Provider.Kind.HYPERV, uri="hv01.corp.local", username="CORP\\svc-vom", winrm_auth="ntlm"
    )
    sync.apply_snapshot(provider, hyperv_snapshot())
    Provider.objects.filter(pk=provider.pk).update(status=Provider.Status.OK)
    provider.refresh_from_db()
    return provider


def self_signed_pem() -> str:
    """A real CA certificate in PEM form (a self-signed one made here)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rhevm.example CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
