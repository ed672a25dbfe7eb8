"""RHEV and Hyper-V discovery at 5,000 VMs each, into the database, first and unchanged.

RHEV: the shipped simulator serves a manager with 5,000 VMs (``benchmark_inventory``) over HTTP and
the real ovirtsdk4 client discovers it. Hyper-V: generated captured outputs of the discovery script
(10 servers x 500 VMs, each VM with a differencing VHDX chain, a checkpoint and two NICs) are fed to
the driver through its replay transport, exactly where WinRM would deliver them.
Called by ``bench.run``; needs Django set up.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

HYPERV_SERVERS = 10
HYPERV_VMS_PER_SERVER = 500
RHEV_VMS = 5000


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def hyperv_document(index: int, vms: int, seed: int = 5) -> dict[str, Any]:
    """What the Hyper-V discovery script prints for one server with ``vms`` VMs (PowerShell 7 style)."""
    rng = random.Random(seed * 1000 + index)
    name = f"HVB{index:02d}"
    csv = f"C:\\ClusterStorage\\CSV{index:02d}\\"
    machines = []
    for n in range(vms):
        vm = f"{name.lower()}-vm{n:03d}"
        base = f"{csv}VMs\\{vm}\\{vm}.vhdx"
        diff = f"{csv}VMs\\{vm}\\{vm}_{_guid(rng)}.avhdx"
        running = n % 5 != 0
        machines.append(
            {
                "Name": vm,
                "Id": _guid(rng),
                "State": "Running" if running else "Off",
                "Status": "Operating normally",
                "Generation": 2,
                "Version": "10.0",
                "ProcessorCount": rng.choice((2, 4, 8)),
                "MemoryAssigned": 4 << 30 if running else 0,
                "MemoryStartup": 4 << 30,
                "MemoryMinimum": 1 << 30,
                "MemoryMaximum": 16 << 30,
                "DynamicMemoryEnabled": True,
                "Uptime": "1.02:03:04.0000000" if running else "00:00:00",
                "Heartbeat": "OkApplicationsHealthy" if running else None,
                "IsClustered": True,
                "Notes": "",
                "Path": f"{csv}VMs\\{vm}",
                "ParentSnapshotName": "baseline",
                "AutomaticStartAction": "StartIfRunning",
                "HardDrives": [
                    {
                        "ControllerType": "SCSI",
                        "ControllerNumber": 0,
                        "ControllerLocation": 0,
                        "Path": diff,
                        "DiskNumber": None,
                        "Vhd": {
                            "VhdFormat": "VHDX",
                            "VhdType": "Differencing",
                            "ParentPath": base,
                            "Size": 127 << 30,
                            "FileSize": rng.randint(100, 900) << 20,
                            "Chain": [base],
                        },
                    }
                ],
                "DvdDrives": [],
                "Snapshots": [
                    {
                        "Name": "baseline",
                        "Id": _guid(rng),
                        "CreationTime": "2026-01-05T10:15:22.1234567+00:00",
                        "ParentSnapshotName": None,
                        "SnapshotType": "Standard",
                        "Notes": "",
                        "HardDrives": [base],
                    }
                ],
                "NetworkAdapters": [
                    {
                        "Name": "Network Adapter",
                        "MacAddress": f"00155D{index:02X}{n >> 8:02X}{n & 255:02X}",
                        "SwitchName": "SET-Team",
                        "DynamicMacAddressEnabled": True,
                        "IPAddresses": [f"10.{index}.{n >> 8}.{n & 255}"] if running else [],
                    },
                    {
                        "Name": "Backup",
                        "MacAddress": f"00155E{index:02X}{n >> 8:02X}{n & 255:02X}",
                        "SwitchName": "Backup",
                        "DynamicMacAddressEnabled": True,
                        "IPAddresses": [],
                    },
                ],
            }
        )
    return {
        "Host": {
            "ComputerName": name,
            "FullyQualifiedDomainName": f"{name}.bench.example.net",
            "LogicalProcessorCount": 128,
            "MemoryCapacity": 1 << 40,
            "VirtualHardDiskPath": f"{csv}VMs",
            "VirtualMachinePath": f"{csv}VMs",
            "OSCaption": "Microsoft Windows Server 2022 Datacenter",
            "OSVersion": "10.0.20348",
            "OSBuildNumber": "20348",
            "EnvironmentOSVersion": "10.0.20348.0",
        },
        "Volumes": [
            {
                "Name": "C:\\",
                "Label": "",
                "FileSystem": "NTFS",
                "Capacity": 256 << 30,
                "FreeSpace": 190 << 30,
                "DeviceID": f"\\\\?\\Volume{{{index:08x}-0000-0000-0000-100000000000}}\\",
            },
            {
                "Name": csv,
                "Label": f"CSV{index:02d}",
                "FileSystem": "CSVFS",
                "Capacity": 64 << 40,
                "FreeSpace": 40 << 40,
                "DeviceID": f"\\\\?\\Volume{{{index:08x}-1111-4222-8333-444455556666}}\\",
            },
        ],
        "VMs": machines,
    }


def _discover_twice(providers: list[Any]) -> dict[str, Any]:
    from django.db import connection

    from bench.writes import WriteCounter
    from inventory.models import VirtualMachine
    from inventory.services.discovery import discover_now
    from vom.jobs.models import Job

    out: dict[str, Any] = {}
    for label in ("first", "unchanged"):
        counter = WriteCounter()
        added = changed = removed = 0
        errors = []
        started = time.perf_counter()
        with connection.execute_wrapper(counter):
            for provider in providers:
                run = discover_now(provider=provider, trigger=Job.Trigger.CLI)  # a job, run in this process
                if run.status != Job.Status.SUCCEEDED:
                    errors.append(f"{provider.name}: {run.error}")
                added += run.result.get("added", 0)
                changed += run.result.get("changed", 0)
                removed += run.result.get("removed", 0)
        out[label] = {
            "seconds": round(time.perf_counter() - started, 2),
            "added": added,
            "changed": changed,
            "removed": removed,
            "inventory_write_statements": counter.writes,
            "failures": len(errors),
            "first_error": errors[0] if errors else "",
        }
    out["vms"] = VirtualMachine.objects.filter(provider__in=providers).count()
    return out


def bench_rhev() -> dict[str, Any]:
    from inventory.services.providers import create_provider
    from vom.simulators.rhev import benchmark_inventory, start_simulator

    url, stop = start_simulator(benchmark_inventory(RHEV_VMS))
    try:
        provider = create_provider(
            name="bench-rhevm", kind="rhev", uri=url, username="admin@internal", password="secret", insecure=True
        )
        result = _discover_twice([provider])
    finally:
        stop()
    print(
        f"  RHEV manager, {result['vms']} VMs: first {result['first']['seconds']} s "
        f"(+{result['first']['added']}), unchanged {result['unchanged']['seconds']} s "
        f"({result['unchanged']['inventory_write_statements']} inventory writes)"
    )
    return result


def bench_hyperv(work: Path) -> dict[str, Any]:
    from inventory.services.providers import create_provider

    directory = work / "hyperv"
    directory.mkdir(parents=True, exist_ok=True)
    providers = []
    for index in range(HYPERV_SERVERS):
        path = directory / f"hvb{index:02d}.json"
        path.write_text(json.dumps(hyperv_document(index, HYPERV_VMS_PER_SERVER)))
        providers.append(create_provider(name=f"bench-hv{index:02d}", kind="hyperv", uri=f"captured://{path}"))
    result = _discover_twice(providers)
    print(
        f"  Hyper-V, {HYPERV_SERVERS} servers, {result['vms']} VMs: first {result['first']['seconds']} s "
        f"(+{result['first']['added']}), unchanged {result['unchanged']['seconds']} s "
        f"({result['unchanged']['inventory_write_statements']} inventory writes)"
    )
    return result
