"""The benchmark behind `make bench`: KVM discovery at 20,000 VMs, and the VM list at that size.

In one run, on a fresh SQLite database under var/bench/:
1. generate test:/// node files for 1,000 hosts x 20 VMs (two disks and one NIC each);
2. first full discovery of all 1,000 providers into the database;
3. an unchanged rediscovery, counting the inventory rows written (must be zero);
4. the reference product's way — `virsh list --all` then one `virsh dumpxml` process per VM — timed
   on a sample of hosts and scaled to all of them;
5. with the 20,000 VMs loaded: the VM list page and the VM API list, median and p95 over repeated
   requests, and their SQL query counts on a first and a late page (must not grow with the rows);
6. RHEV and Hyper-V discovery (``bench/platforms.py``), then provisioning on the real libvirtd
   (``bench/provisioning.py``: 100 space-optimized VMs and 10 full copies).

With ``DATABASE_URL`` pointing at PostgreSQL (``make bench-postgres`` starts a throw-away one), steps
1–6 but provisioning run against it, and their figures go to a section of their own.

Figures go to var/bench/results.json and docs/PERFORMANCE.md. Run: `python -m bench.run [--hosts N]`;
`python -m bench.run --only provisioning` runs the provisioning benchmark alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench"
DOC = ROOT / "docs" / "PERFORMANCE.md"


def on_postgresql() -> bool:
    """Whether this run measures PostgreSQL (``DATABASE_URL``) rather than the embedded SQLite."""
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def _setup_django(db_path: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "vom.settings"
    if not on_postgresql():
        os.environ["VOM_SQLITE_PATH"] = str(db_path)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _fresh_database() -> None:
    """A new, migrated SQLite file under var/bench/ for this run; on PostgreSQL (``DATABASE_URL``), that
    database migrated and emptied (give it a database of its own: everything in it is deleted)."""
    db_path = WORK / "bench.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    _setup_django(db_path)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if on_postgresql():
        call_command("flush", interactive=False, verbosity=0)


def _discover_chunk(provider_ids: list[int]) -> dict[str, Any]:
    """Discover these providers one after another in this process, as one Celery worker would."""
    from django.db import connection

    from bench.writes import WriteCounter
    from inventory.drivers.libvirt import forget_test_connections
    from inventory.models import Provider
    from inventory.services.discovery import discover_now
    from vom.jobs.models import Job

    counter = WriteCounter()
    out: dict[str, Any] = {"added": 0, "changed": 0, "removed": 0, "failures": []}
    with connection.execute_wrapper(counter):
        for provider in Provider.objects.filter(pk__in=provider_ids).order_by("pk"):
            run = discover_now(provider=provider, trigger=Job.Trigger.CLI)  # a job, run in this process
            forget_test_connections(provider.uri)  # a real console holds no connection to 1,000 hosts
            if run.status != Job.Status.SUCCEEDED:
                out["failures"].append(f"{provider.name}: {run.error}")
            out["added"] += run.result.get("added", 0)
            out["changed"] += run.result.get("changed", 0)
            out["removed"] += run.result.get("removed", 0)
    out["writes"] = counter.writes
    connection.close()
    return out


def discover_all(label: str, workers: int, pool: str = "process") -> dict[str, Any]:
    """Discover every provider with ``workers`` processes (Celery's default prefork pool) or threads
    (``--pool threads``, as `make run` starts its worker), timed end to end."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from inventory.drivers.libvirt import forget_test_connections
    from inventory.models import Provider

    forget_test_connections()  # every pass opens (and parses) each host's node file anew
    ids = list(Provider.objects.order_by("pk").values_list("pk", flat=True))
    chunks = [ids[i::workers] for i in range(workers)]
    connections.close_all()  # children must not share the parent's database connection
    started = time.perf_counter()
    if workers == 1:
        parts = [_discover_chunk(ids)]
    elif pool == "thread":
        forget_test_connections()
        with ThreadPoolExecutor(workers) as threads:
            parts = list(threads.map(_discover_chunk, chunks))
    else:
        with multiprocessing.get_context("fork").Pool(workers) as processes:
            parts = processes.map(_discover_chunk, chunks)
    seconds = time.perf_counter() - started
    added = sum(p["added"] for p in parts)
    changed = sum(p["changed"] for p in parts)
    removed = sum(p["removed"] for p in parts)
    writes = sum(p["writes"] for p in parts)
    failures = [f for p in parts for f in p["failures"]]
    unit = "thread" if pool == "thread" and workers > 1 else "process"
    print(
        f"  {label} ({workers} {unit}{'es' if unit == 'process' and workers > 1 else 's' if workers > 1 else ''}): "
        f"{seconds:.1f} s, "
        f"+{added} ~{changed} -{removed}, {writes} inventory write statements"
    )
    if failures:
        print(f"  {len(failures)} failures, first: {failures[0]}")
    return {
        "seconds": round(seconds, 2),
        "workers": workers,
        "pool": pool if workers > 1 else "process",
        "added": added,
        "changed": changed,
        "removed": removed,
        "inventory_write_statements": writes,
        "failures": len(failures),
    }


def time_requests(client: Any, url: str, repeat: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm caches and connections
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    samples.sort()
    return {
        "url": url,
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 1),
        "queries": len(ctx.captured_queries),
    }


def measure_pages(repeat: int) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.test import Client

    from inventory.models import VirtualMachine

    user = User.objects.create_user("bench-viewer", password="bench-pass-1")
    client = Client()
    client.force_login(user)
    total = VirtualMachine.objects.count()
    late_page = max(1, total // 50 - 1)
    results = {
        "vm_list_page": time_requests(client, "/vms/", repeat),
        "vm_list_page_late": time_requests(client, f"/vms/?page={late_page}", repeat),
        "vm_list_filtered": time_requests(client, "/vms/?state=running&q=web", repeat),
        "vm_api_list": time_requests(client, "/api/vms/", repeat),
        "vm_api_list_late": time_requests(client, f"/api/vms/?page={late_page}", repeat),
        "vm_api_filtered": time_requests(client, "/api/vms/?state=running&q=web", repeat),
    }
    for name, r in results.items():
        print(f"  {name}: median {r['median_ms']} ms, p95 {r['p95_ms']} ms, {r['queries']} queries ({r['url']})")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms-per-host", type=int, default=20)
    parser.add_argument("--virsh-sample-hosts", type=int, default=10)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="discovery processes")
    parser.add_argument("--repeat", type=int, default=60, help="requests per page measurement")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    parser.add_argument("--skip-platforms", action="store_true", help="KVM only: no RHEV or Hyper-V runs")
    parser.add_argument("--skip-provisioning", action="store_true", help="no provisioning run on the real libvirtd")
    parser.add_argument("--only", choices=["provisioning"], help="run this benchmark alone; the others' figures stay")
    args = parser.parse_args(argv)

    if args.only == "provisioning":
        WORK.mkdir(parents=True, exist_ok=True)
        _fresh_database()
        from bench import provisioning

        outcome = provisioning.run(WORK)
        if not args.no_doc:
            provisioning.write_section(DOC, outcome)
        return 1 if "error" in outcome else 0

    from bench import nodegen
    from bench.virsh_baseline import time_virsh_way

    WORK.mkdir(parents=True, exist_ok=True)
    nodes_dir = WORK / "nodes"
    shutil.rmtree(nodes_dir, ignore_errors=True)
    t0 = time.perf_counter()
    files = nodegen.generate(nodes_dir, hosts=args.hosts, vms_per_host=args.vms_per_host)
    print(f"generated {len(files)} node files in {time.perf_counter() - t0:.1f} s")

    _fresh_database()
    from inventory.models import Provider, VirtualDisk, VirtualMachine

    Provider.objects.bulk_create([Provider(name=f.stem, uri=f"test://{f.resolve()}") for f in files], batch_size=500)

    print(f"KVM discovery, {args.hosts} hosts x {args.vms_per_host} VMs:")
    first = discover_all("first discovery", args.workers)
    vms = VirtualMachine.objects.count()
    disks = VirtualDisk.objects.count()
    unchanged = discover_all("unchanged rediscovery", args.workers)
    unchanged_single = discover_all("unchanged rediscovery", 1) if args.workers > 1 else unchanged
    unchanged_threads = discover_all("unchanged rediscovery", 4, pool="thread")
    print("virsh way (one process per VM), sampled:")
    virsh = time_virsh_way(files, sample_hosts=args.virsh_sample_hosts)
    print(
        f"  {virsh['sample_vms']} VMs in {virsh['sample_seconds']:.1f} s -> {virsh['scaled_seconds_total']:.0f} s scaled"
    )
    speedup = virsh["scaled_seconds_total"] / first["seconds"] if first["seconds"] else 0.0
    print(f"  vom's first discovery is {speedup:.0f}x faster")
    print(f"pages with {vms} VMs loaded:")
    pages = measure_pages(args.repeat)
    platforms: dict[str, Any] = {}
    if not args.skip_platforms:
        from bench.platforms import bench_hyperv, bench_rhev

        print("RHEV and Hyper-V discovery:")
        platforms = {"rhev": bench_rhev(), "hyperv": bench_hyperv(WORK)}

    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "database": "postgresql" if on_postgresql() else "sqlite",
        "hosts": args.hosts,
        "vms": vms,
        "disks": disks,
        "first_discovery": first,
        "unchanged_rediscovery": unchanged,
        "unchanged_rediscovery_one_process": unchanged_single,
        "unchanged_rediscovery_threads": unchanged_threads,
        "virsh_way": virsh,
        "speedup_vs_virsh": round(speedup, 1),
        "pages": pages,
        "platforms": platforms,
    }
    if on_postgresql():
        # The SQLite figures stay the document's main ones; PostgreSQL gets a section of its own.
        (WORK / "results-postgresql.json").write_text(json.dumps(results, indent=2))
        if not args.no_doc:
            from bench.report import write_postgresql_section

            write_postgresql_section(results, DOC)
            print("wrote the PostgreSQL section of docs/PERFORMANCE.md")
        return 0
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    outcome: dict[str, Any] = {}
    if not args.skip_provisioning:
        from bench import provisioning

        outcome = provisioning.run(WORK)  # adds its figures to results.json
    if not args.no_doc:
        from bench.provisioning import write_section
        from bench.report import keep_postgresql_section, write_performance_doc

        previous = DOC.read_text() if DOC.exists() else ""
        write_performance_doc(results, DOC)
        write_section(DOC, outcome or None, previous)  # a run that did not complete keeps the old section
        keep_postgresql_section(DOC, previous)
        print("wrote docs/PERFORMANCE.md")
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    raise SystemExit(main())
