"""Provisioning on a real libvirtd: 100 space-optimized VMs and 10 full copies of a 1 GiB golden image.

On qemu:///system (libvirtd and virtlogd are started here, as root, if they are not running):
1. a directory pool in a fresh directory under /var/lib/libvirt/images/, a qcow2 golden image of
   1 GiB holding 1 GiB of written data (``qemu-io``: a sparse empty image would make a full copy
   free) and a shut-off template VM booting from it;
2. through the console's own services: a provider for qemu:///system, its discovery, the image
   registered as a golden image, then ``request_provisioning`` of 100 space-optimized VMs (not
   started) in one request and of 10 full copies in another. Each request is recorded without being queued
   (``enqueue=False``) and its job run in this process with ``vom.jobs.runner.run_now``, as a worker
   runs its steps: the time is the console's own, with no broker or worker in it;
3. plain ``cp`` of the golden image on the same file system, as the yardstick for the full copies:
   as many copies in a row as the request makes, before and after each of three requests of full
   copies (each request is compared with the mean of the series on either side of it, which cancels
   a drift of the disk's speed), the page cache dropped before each series and each request.

Every libvirt-python call and every SQL statement of a request is timed, so a missed target can be
traced to the platform, the database or the console's own Python. Everything made on the host is
removed at the end, also when something fails; the rows go with the benchmark's own database.
Called by ``bench.run`` (``python -m bench.run --only provisioning`` runs this one alone).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import textwrap
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URI = "qemu:///system"
IMAGES = Path("/var/lib/libvirt/images")
GiB = 1024**3
GOLDEN_BYTES = 1 * GiB
CHILDREN = 100
FULL_COPIES = 10
FULL_ROUNDS = 3  # requests of FULL_COPIES full copies, each between two cp series
TARGET_DEFINE_SECONDS = 20.0
TARGET_CHILDREN_PERCENT = 1.0
TARGET_COPY_VS_CP = 0.80
SECTION = "## Provisioning on a real libvirtd"


# --- the host ---------------------------------------------------------------------------------


def libvirtd_problem() -> str | None:
    """Why qemu:///system cannot be used, or None. Starts virtlogd and libvirtd (as root) if needed."""
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed"
    libvirt.registerErrorHandler(lambda *_: None, None)

    def reachable() -> bool:
        try:
            libvirt.open(URI).close()
            return True
        except libvirt.libvirtError:
            return False

    if reachable():
        return None
    if os.geteuid() != 0:
        return f"{URI} is not reachable and starting libvirtd needs root"
    for daemon in ("virtlogd", "libvirtd"):
        path = shutil.which(daemon) or f"/usr/sbin/{daemon}"
        if not Path(path).exists():
            return f"{daemon} is not installed (scripts/system-deps.sh bench installs it)"
        subprocess.run([path, "-d"], check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if reachable():
            return None
        time.sleep(0.2)
    return f"{URI} did not come up within 30 s of starting libvirtd"


def drop_caches() -> bool:
    """Write dirty pages out and drop the page cache, so the next read comes from the disk (root only)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def allocated(path: str | Path) -> int:
    """What a file takes on disk: its allocated blocks, not its apparent size."""
    return os.stat(path).st_blocks * 512


def _tiny_domain_xml(name: str, disk: str) -> str:
    """A shut-off template VM: software-emulated QEMU, 32 MiB, one virtio disk, one user-mode NIC."""
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "uuid").text = str(uuid.uuid4())
    ET.SubElement(dom, "memory", unit="MiB").text = "32"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "emulator").text = "/usr/bin/qemu-system-x86_64"
    disk_el = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk_el, "driver", name="qemu", type="qcow2", cache="none")
    ET.SubElement(disk_el, "source", file=disk)
    ET.SubElement(disk_el, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="user")
    ET.SubElement(nic, "mac", address="52:54:00:7e:57:01")
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(devices, "console", type="pty")
    return ET.tostring(dom, encoding="unicode")


@dataclass
class Scratch:
    """What this benchmark made on the host, recorded as it is made so that all of it can be removed."""

    directory: Path
    pool_name: str
    template_name: str
    prefix: str  # of every VM this run provisions
    golden: Path
    pool_defined: bool = False
    made_directory: bool = False


def _make_scratch(conn: Any, scratch: Scratch) -> None:
    scratch.directory.mkdir(parents=True)
    scratch.made_directory = True
    scratch.directory.chmod(0o755)  # QEMU runs as libvirt-qemu and must reach the images
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = scratch.pool_name
    ET.SubElement(ET.SubElement(root, "target"), "path").text = str(scratch.directory)
    pool = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
    scratch.pool_defined = True
    pool.create(0)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(scratch.golden), str(GOLDEN_BYTES)], check=True)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P 0xab 0 {GOLDEN_BYTES}", str(scratch.golden)],
        check=True,
        capture_output=True,
    )
    os.sync()
    conn.defineXML(_tiny_domain_xml(scratch.template_name, str(scratch.golden)))
    pool.refresh(0)


def _remove_scratch(conn: Any, scratch: Scratch) -> list[str]:
    """Undefine this run's VMs and template, remove its pool and directory; the problems met."""
    import libvirt

    problems = []
    for dom in conn.listAllDomains(0):
        name = ""
        try:
            name = dom.name()
            if not (name.startswith(scratch.prefix) or name == scratch.template_name):
                continue
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:  # another client's VM may vanish while we look
            if name.startswith(scratch.prefix) or name == scratch.template_name:
                problems.append(f"VM {name}: {exc}")
    if scratch.pool_defined:
        try:
            pool = conn.storagePoolLookupByName(scratch.pool_name)
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as exc:
            problems.append(f"pool {scratch.pool_name}: {exc}")
    if scratch.made_directory:
        shutil.rmtree(scratch.directory, ignore_errors=True)
        if scratch.directory.exists():
            problems.append(f"directory {scratch.directory} is left")
    return problems


def _remove_vms(conn: Any, names: list[str], paths: list[str]) -> None:
    """Undefine the VMs a request made and delete their boot volumes, behind the console's back (untimed)."""
    for name in names:
        conn.lookupByName(name).undefine()
    for path in paths:
        conn.storageVolLookupByPath(path).delete(0)


# --- instruments ------------------------------------------------------------------------------


class LibvirtCalls:
    """Every libvirt-python method called in this process while active: (name, start, seconds)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, float]] = []  # ("virDomain.XMLDesc", epoch start, seconds)
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        records = self.records

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, t0 = time.time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                records.append((label, start, time.perf_counter() - t0))

        return timed

    def __enter__(self) -> LibvirtCalls:
        import libvirt

        for owner in (libvirt.virConnect, libvirt.virDomain, libvirt.virStoragePool, libvirt.virStorageVol):
            for name, fn in list(vars(owner).items()):
                if not name.startswith("_") and callable(fn):
                    self._saved.append((owner, name, fn))
                    setattr(owner, name, self._wrap(f"{owner.__name__}.{name}", fn))
        for name in ("open", "openAuth", "openReadOnly"):
            fn = getattr(libvirt, name)
            self._saved.append((libvirt, name, fn))
            setattr(libvirt, name, self._wrap(f"libvirt.{name}", fn))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, fn in reversed(self._saved):
            setattr(owner, name, fn)
        self._saved.clear()


class QueryTimer:
    """The SQL statements run through Django while installed: (\"sql\", start, seconds)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float, float]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start, t0 = time.time(), time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.records.append(("sql", start, time.perf_counter() - t0))


def _tally(
    records: list[tuple[str, float, float]], windows: list[tuple[float, float]] | None = None
) -> dict[str, list[float]]:
    """[count, seconds] per name, of the records that began inside one of ``windows`` (sorted, disjoint)."""
    starts = [a for a, _ in windows or []]
    out: dict[str, list[float]] = {}
    for label, start, seconds in records:
        if windows is not None:
            k = bisect.bisect_right(starts, start) - 1
            if k < 0 or start > windows[k][1]:
                continue
        entry = out.setdefault(label, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    return out


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 4),
        "median": round(statistics.median(ordered), 4),
        "p95": round(ordered[math.ceil(0.95 * len(ordered)) - 1], 4),  # nearest rank
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
    }


def _slope(values: list[float]) -> float:
    """Least-squares growth of ``values`` per step of their index (seconds per VM already made)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, statistics.fmean(values)
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


# --- the console's path -----------------------------------------------------------------------


def provision(*, image: Any, pool: Any, user: Any, count: int, pattern: str, mode: str) -> dict[str, Any]:
    """Request ``count`` VMs and execute the request here; timings from the rows, the run's records and clocks."""
    from django.db import connection

    from inventory.services.discovery import discoveries
    from provisioning.services.requests import request_provisioning
    from vom.jobs.models import Job
    from vom.jobs.runner import run_now

    t0 = time.perf_counter()
    request = request_provisioning(
        golden_image=image, user=user, count=count, name_pattern=pattern, mode=mode, pool=pool, start=False,
        enqueue=False,  # recorded only, as the command line's --now does: executed below, in this process
    )  # fmt: skip
    request_seconds = time.perf_counter() - t0
    queries = QueryTimer()
    with LibvirtCalls() as libvirt_calls, connection.execute_wrapper(queries):
        t0 = time.perf_counter()
        op = run_now(request.job_id)  # every step of the request's job, as a worker would run them
        execute_seconds = time.perf_counter() - t0
    if op.status != Job.Status.SUCCEEDED:
        failed = [
            (r.name, r.error) for r in request.vms.select_related("job").exclude(job__status=Job.Status.SUCCEEDED)
        ]
        raise RuntimeError(f"provisioning request #{request.pk} failed: {op.error} {failed[:3]}")

    rows = list(request.vms.select_related("job").order_by("index"))  # started/finished: each VM's own job
    # The request ends with one discovery of the host (a job the request's job starts, trigger "job"):
    # its row marks where the console's own work ends and the inventory refresh begins.
    refresh = (
        discoveries(request.provider)
        .filter(trigger=Job.Trigger.JOB, created__gte=op.started)
        .order_by("created", "pk")
        .first()
    )
    if refresh is None or refresh.finished is None:
        raise RuntimeError("the inventory refresh at the end of the request was not found")
    first_started = min(r.started for r in rows)
    last_finished = max(r.finished for r in rows)
    before_refresh = (refresh.created - op.started).total_seconds()
    # The request's own work: claimed .. its inventory refresh began.
    windows = [(op.started.timestamp(), refresh.created.timestamp())]
    return {
        "count": count,
        "request_seconds": request_seconds,  # request_provisioning: validation and rows
        "execute_seconds": execute_seconds,  # the whole task, inventory refresh included
        "excluding_refresh_seconds": before_refresh,  # claimed .. the inventory refresh began
        "vm_loop_seconds": (last_finished - first_started).total_seconds(),
        "after_last_vm_seconds": (refresh.created - last_finished).total_seconds(),  # allocation read back
        "refresh_seconds": (refresh.finished - refresh.created).total_seconds(),
        "refresh_vms": (refresh.result.get("counts") or {}).get("vm", {}),
        "per_vm": [r.duration_seconds or 0.0 for r in rows],
        "libvirt_calls": _tally(libvirt_calls.records),
        "libvirt_in_request": _tally(libvirt_calls.records, windows),
        "sql_statements": len(queries.records),
        "sql_seconds": sum(s for _, _, s in queries.records),
        "sql_in_request_seconds": sum(s for _, s in _tally(queries.records, windows).values()),
        "paths": [r.volume_path for r in rows],
        "names": [r.name for r in rows],
        "recorded_allocation_bytes": [r.allocation_bytes for r in rows],
    }


def _merge(parts: list[dict[str, Any]], key: str) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for part in parts:
        for name, (count, seconds) in part[key].items():
            entry = merged.setdefault(name, [0, 0.0])
            entry[0] += count
            entry[1] += seconds
    return merged


def _libvirt_summary(parts: list[dict[str, Any]], key: str = "libvirt_calls", top: int = 6) -> dict[str, Any]:
    merged = _merge(parts, key)
    ranked = sorted(merged.items(), key=lambda kv: kv[1][1], reverse=True)
    return {
        "calls": int(sum(c for c, _ in merged.values())),
        "seconds": round(sum(s for _, s in merged.values()), 3),
        "top": [{"call": k, "count": int(c), "seconds": round(s, 3)} for k, (c, s) in ranked[:top]],
        "domain_xml_reads": int(merged.get("virDomain.XMLDesc", [0, 0.0])[0]),
    }


DOMAIN_SCAN_CALLS = ("virConnect.listAllDomains", "virDomain.XMLDesc", "virDomain.isActive", "virDomain.isPersistent")


def _in_request(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """What the requests (claimed .. inventory refresh) spent: the volume calls, the rest of libvirt, SQL."""
    lib = _libvirt_summary(parts, "libvirt_in_request", top=8)
    merged = _merge(parts, "libvirt_in_request")
    volume_call = sum(merged.get(n, [0, 0.0])[1] for n in ("virStoragePool.createXML", "virStoragePool.createXMLFrom"))
    scan = sum(merged.get(n, [0, 0.0])[1] for n in DOMAIN_SCAN_CALLS)
    seconds = sum(part["excluding_refresh_seconds"] for part in parts)
    return {
        "seconds": round(seconds, 3),
        "volume_call_seconds": round(volume_call, 3),
        "beyond_volume_calls_seconds": round(seconds - volume_call, 3),
        "domain_scan_seconds": round(scan, 3),
        "other_libvirt_seconds": round(lib["seconds"] - volume_call - scan, 3),
        "sql_seconds": round(sum(part["sql_in_request_seconds"] for part in parts), 3),
        "libvirt": lib,
    }


def _time_cp_series(golden: Path, directory: Path, label: str, count: int) -> list[float]:
    """``count`` plain ``cp`` of the golden image into ``directory``, one after another: each one's seconds.

    The copies are removed afterwards (untimed), so the disk holds no more than one series of them.
    """
    targets = [directory / f"cp-{label}-{n:02d}.qcow2" for n in range(1, count + 1)]
    seconds = []
    try:
        for target in targets:
            t0 = time.perf_counter()
            subprocess.run(["cp", str(golden), str(target)], check=True)
            seconds.append(time.perf_counter() - t0)
    finally:
        for target in targets:
            target.unlink(missing_ok=True)
    return seconds


def _dirty_ratio() -> str:
    """The kernel's limits on dirty page-cache data (``vm.dirty_ratio``, ``vm.dirty_bytes``), as text."""
    vm = Path("/proc/sys/vm")
    try:
        dirty_bytes = int((vm / "dirty_bytes").read_text())
        if dirty_bytes:
            return f"vm.dirty_bytes {dirty_bytes / GiB:.1f} GiB"
        return f"vm.dirty_ratio {int((vm / 'dirty_ratio').read_text())} %"
    except (OSError, ValueError):
        return "vm.dirty_ratio unknown"


def _qemu_img_info(path: str) -> dict[str, Any]:
    import json

    out = subprocess.run(
        ["qemu-img", "info", "--force-share", "--output=json", path], check=True, capture_output=True, text=True
    ).stdout
    info: dict[str, Any] = json.loads(out)
    return info


def _host_versions(conn: Any) -> dict[str, str]:
    def dotted(n: int) -> str:
        return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"

    fs = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        fs = " ".join(
            subprocess.run(
                ["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(IMAGES)], capture_output=True, text=True
            ).stdout.split()
        )
    return {"libvirt": dotted(conn.getLibVersion()), "qemu": dotted(conn.getVersion()), "filesystem": fs}


def _delete_jobs_of(provider: Any) -> None:
    """The benchmark's jobs on ``provider``: its requests (their VMs' jobs and rows go with them), its
    discoveries and the jobs on its VMs. A job's target is generic: deleting the provider keeps them."""
    from django.contrib.contenttypes.models import ContentType

    from inventory.models import Provider, VirtualMachine
    from vom.jobs.models import Job

    Job.objects.filter(provisioning_request__provider=provider).delete()
    Job.objects.filter(target_type=ContentType.objects.get_for_model(Provider), target_id=provider.pk).delete()
    vms = list(VirtualMachine.objects.filter(provider=provider).values_list("pk", flat=True))
    Job.objects.filter(target_type=ContentType.objects.get_for_model(VirtualMachine), target_id__in=vms).delete()


def bench_provisioning(
    *, children: int = CHILDREN, full_copies: int = FULL_COPIES, rounds_of_full: int = FULL_ROUNDS
) -> dict[str, Any]:
    """The whole provisioning benchmark; needs Django set up. Raises RuntimeError if it cannot run."""
    problem = libvirtd_problem()
    if problem:
        raise RuntimeError(problem)
    import libvirt
    from django.contrib.auth.models import User

    from inventory.models import StoragePool, StorageVolume
    from inventory.services.discovery import discover_now
    from inventory.services.providers import create_provider
    from provisioning.models import GoldenImage, Mode
    from provisioning.services.golden_images import register_golden_image
    from provisioning.services.savings import image_savings
    from vom.jobs.models import Job

    tag = uuid.uuid4().hex[:6]
    directory = IMAGES / f"vom-bench-prov-{tag}"
    scratch = Scratch(
        directory=directory,
        pool_name=f"vom-bench-{tag}",
        template_name=f"vb{tag}-golden",
        prefix=f"vb{tag}-vm",
        golden=directory / "golden.qcow2",
    )
    conn = libvirt.open(URI)
    provider = user = None
    load_before = os.getloadavg()[0]
    try:
        t0 = time.perf_counter()
        _make_scratch(conn, scratch)
        print(
            f"  golden image ({GOLDEN_BYTES // GiB} GiB of data) and template VM made in {time.perf_counter() - t0:.1f} s"
        )
        golden_on_disk = allocated(scratch.golden)

        user = User.objects.create_user(f"bench-provisioner-{tag}", password=uuid.uuid4().hex)
        provider = create_provider(name=f"bench-qemu-system-{tag}", uri=URI)
        for attempt in range(3):  # a pool another user of this libvirtd removes meanwhile fails a discovery
            run = discover_now(provider=provider, trigger=Job.Trigger.CLI)
            if run.status == Job.Status.SUCCEEDED:
                break
            print(f"  discovery of {URI} failed (attempt {attempt + 1}): {run.error}")
            time.sleep(2)
        else:
            raise RuntimeError(f"discovery of {URI} failed: {run.error}")
        volume = StorageVolume.objects.get(pool__provider=provider, path=str(scratch.golden))
        image = register_golden_image(name=f"bench-golden-{tag}", os="none", volume=volume, user=user)
        pool = StoragePool.objects.get(provider=provider, name=scratch.pool_name)
        common = {"image": image, "pool": pool, "user": user}

        # 1. One request for all the space-optimized VMs, as a user would make it.
        domains_before = len(conn.listAllDomains(0))
        so = provision(**common, count=children, pattern=f"{scratch.prefix}-so-{{n:03d}}", mode=Mode.SPACE_OPTIMIZED)
        children_on_disk = sum(allocated(p) for p in so["paths"])
        print(
            f"  {children} space-optimized VMs: {so['excluding_refresh_seconds']:.1f} s up to the inventory refresh "
            f"(+{so['refresh_seconds']:.1f} s refresh), {statistics.median(so['per_vm']) * 1000:.0f} ms per VM (median)"
        )

        # 2. Full copies: requests of full_copies each, as a user would make them, between series of
        # as many plain cp of the image into the same directory: cp, request, cp, request, cp,
        # request, cp. Each request is compared with the mean of the series on either side of it,
        # which cancels a drift of the disk's speed; the figure is the rounds' cp time over the
        # requests' time. The page cache is dropped before each series and each request, and each
        # request's copies are removed after it (untimed) as each series' are, so every round starts
        # from the same disk. A single copy of 1 GiB lasts about half a second and, on a shared
        # virtual disk, varies by half of that from one copy to the next; one round of series
        # varied by half as well (6.6 s against 10.7 s for the same cp work), hence several rounds.
        # An untimed series first: on this machine the first series after the set-up takes two to
        # four times as long as the later ones (13-27 s against 7-10 s), which would slow whichever
        # series came first.
        warm_up = _time_cp_series(scratch.golden, scratch.directory, "warm-up", full_copies)
        print(f"  {full_copies} × cp to warm the disk up (not counted): {sum(warm_up):.2f} s")
        dropped = drop_caches()
        cp_series = [_time_cp_series(scratch.golden, scratch.directory, "0", full_copies)]
        print(f"  {full_copies} × cp: {sum(cp_series[0]):.2f} s")
        rounds: list[dict[str, Any]] = []
        for k in range(1, rounds_of_full + 1):
            dropped = drop_caches() and dropped
            full = provision(**common, count=full_copies, pattern=f"{scratch.prefix}-full{k}-{{n:02d}}", mode=Mode.FULL)
            print(
                f"  {full_copies} full copies in one request: {full['excluding_refresh_seconds']:.2f} s up to the "
                f"inventory refresh (+{full['refresh_seconds']:.1f} s refresh)"
            )
            if k == 1:  # the copies hold the image's data, not only its size: compare one with the image
                compare = subprocess.run(
                    ["qemu-img", "compare", "--force-share", str(scratch.golden), full["paths"][0]],
                    capture_output=True,
                    text=True,
                )
                full_info = _qemu_img_info(full["paths"][0])
                full_on_disk = [allocated(p) for p in full["paths"]]
            _remove_vms(conn, full["names"], full["paths"])
            rounds.append(full)
            dropped = drop_caches() and dropped
            cp_series.append(_time_cp_series(scratch.golden, scratch.directory, str(k), full_copies))
            print(f"  {full_copies} × cp: {sum(cp_series[-1]):.2f} s")
        child_info = _qemu_img_info(so["paths"][0])

        savings = image_savings(image).savings
        golden_recorded = StorageVolume.objects.get(pool__provider=provider, path=str(scratch.golden)).allocation_bytes
        result = _figures(
            so=so,
            rounds=rounds,
            cp_series=cp_series,
            warm_up=warm_up,
            golden_on_disk=golden_on_disk,
            golden_recorded=golden_recorded,
            children_on_disk=children_on_disk,
            full_on_disk=full_on_disk,
            savings=savings.as_dict(),
        )
        result["space_optimized"]["domains_before"] = domains_before
        result["cache_dropped"] = dropped
        result["dirty_limit"] = _dirty_ratio()
        result["checks"] = {
            "full_copy_identical": compare.returncode == 0,
            "full_copy_compare": (compare.stdout or compare.stderr).strip()[:200],
            "child_backing_file": child_info.get("backing-filename", ""),
            "child_format": child_info.get("format", ""),
            "child_compat": (child_info.get("format-specific") or {}).get("data", {}).get("compat", ""),
            "full_format": full_info.get("format", ""),
            "full_compat": (full_info.get("format-specific") or {}).get("data", {}).get("compat", ""),
        }
        result["host"] = _host_versions(conn)
        # Other work on the machine shows in the timings: say how busy it was (1-minute load average).
        result["load_average"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
        return result
    finally:
        problems = _remove_scratch(conn, scratch)
        conn.close()
        if provider is not None:
            _delete_jobs_of(provider)
            GoldenImage.objects.filter(provider=provider).delete()
            provider.delete()
        if user is not None:
            user.delete()
        print(
            "  cleaned up: "
            + (
                "; ".join(problems)
                if problems
                else f"the {scratch.prefix}* VMs, the template, the pool and {directory}"
            )
        )


def _figures(
    *,
    so: dict[str, Any],
    rounds: list[dict[str, Any]],
    cp_series: list[list[float]],
    warm_up: list[float],
    golden_on_disk: int,
    golden_recorded: int,
    children_on_disk: int,
    full_on_disk: list[int],
    savings: dict[str, Any],
) -> dict[str, Any]:
    children = so["count"]
    full_equivalent = children * golden_on_disk
    percent = 100 * children_on_disk / full_equivalent
    copies = rounds[0]["count"]
    copy_seconds = [s for full in rounds for s in full["per_vm"]]
    # The console's time for its copies: each request from the task's claim up to its inventory
    # refresh (the VMs' steps, the definitions and the allocation read back), against the mean of the
    # cp series of as many copies on either side of it. Same bytes for each: the throughput ratio is
    # the inverse ratio of the times, over all the rounds.
    console = [full["excluding_refresh_seconds"] for full in rounds]
    cp_totals = [sum(series) for series in cp_series]
    cp_brackets = [(cp_totals[k] + cp_totals[k + 1]) / 2 for k in range(len(rounds))]
    ratio = sum(cp_brackets) / sum(console)
    copy_calls = _in_request(rounds)["volume_call_seconds"]

    def mib_s(seconds: float) -> float:
        return round(len(rounds) * copies * golden_on_disk / seconds / 1024**2, 1)

    per_vm = so["per_vm"]
    tenth = max(1, len(per_vm) // 10)
    result = {
        "space_optimized": {
            "count": children,
            "defined_seconds": round(so["excluding_refresh_seconds"], 3),
            "request_seconds": round(so["request_seconds"], 3),
            "execute_seconds": round(so["execute_seconds"], 3),
            "vm_loop_seconds": round(so["vm_loop_seconds"], 3),
            "after_last_vm_seconds": round(so["after_last_vm_seconds"], 3),
            "refresh_seconds": round(so["refresh_seconds"], 3),
            "refresh_vms": so["refresh_vms"],
            "wall_per_vm_seconds": round(so["excluding_refresh_seconds"] / children, 4),
            "per_vm_seconds": _stats(per_vm),
            "per_vm_first_tenth_median": round(statistics.median(per_vm[:tenth]), 4),
            "per_vm_last_tenth_median": round(statistics.median(per_vm[-tenth:]), 4),
            "per_vm_growth_ms_per_vm": round(1000 * _slope(per_vm), 3),
            "per_vm_all": [round(s, 4) for s in per_vm],
            "libvirt": _libvirt_summary([so]),
            "in_request": _in_request([so]),
            "sql": {"statements": so["sql_statements"], "seconds": round(so["sql_seconds"], 3)},
        },
        "full": {
            "count": copies,
            "rounds": len(rounds),
            "round_seconds": [round(t, 3) for t in console],
            "defined_seconds": round(sum(console), 3),
            "request_seconds": round(statistics.fmean(full["request_seconds"] for full in rounds), 3),
            "vm_loop_seconds": [round(full["vm_loop_seconds"], 3) for full in rounds],
            "after_last_vm_seconds": round(statistics.fmean(full["after_last_vm_seconds"] for full in rounds), 3),
            "refresh_seconds": round(statistics.fmean(full["refresh_seconds"] for full in rounds), 3),
            "per_vm_seconds": _stats(copy_seconds),
            "per_vm_all": [round(s, 3) for s in copy_seconds],
            "libvirt": _libvirt_summary(rounds),
            "in_request": _in_request(rounds),
            "mib_s": mib_s(sum(console)),
        },
        "cp": {
            "series_seconds": [round(t, 3) for t in cp_totals],
            "bracket_seconds": [round(t, 3) for t in cp_brackets],
            "warm_up_seconds": round(sum(warm_up), 3),
            "seconds": round(sum(cp_brackets), 3),
            "per_copy_seconds": _stats([t for series in cp_series for t in series]),
            "all": [[round(t, 3) for t in series] for series in cp_series],
            "mib_s": mib_s(sum(cp_brackets)),
        },
        "golden_allocation_on_disk": golden_on_disk,
        "golden_allocation_recorded": golden_recorded,
        "children_on_disk": children_on_disk,
        "children_recorded_by_request": sum(so["recorded_allocation_bytes"]),
        "children_percent": round(percent, 4),
        "full_equivalent_bytes": full_equivalent,
        "full_copies_on_disk": full_on_disk,
        "savings_recorded": savings,
        "copy_vs_cp": round(ratio, 3),
        "copy_vs_cp_per_round": [round(b / t, 3) for b, t in zip(cp_brackets, console, strict=True)],
        "copy_call_vs_cp": round(sum(cp_brackets) / copy_calls, 3),  # libvirt's copies alone
    }
    result["targets"] = {
        "define": so["excluding_refresh_seconds"] <= TARGET_DEFINE_SECONDS,
        "space": percent <= TARGET_CHILDREN_PERCENT,
        "copy": ratio >= TARGET_COPY_VS_CP,
    }
    _print_verdicts(result)
    return result


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _print_verdicts(r: dict[str, Any]) -> None:
    so, full, cp, ok = r["space_optimized"], r["full"], r["cp"], r["targets"]
    print(
        f"  {_verdict(ok['define'])}: {so['count']} space-optimized VMs defined in {so['defined_seconds']:.1f} s "
        f"(target ≤ {TARGET_DEFINE_SECONDS:.0f} s)"
    )
    print(
        f"  {_verdict(ok['space'])}: the {so['count']} children take {r['children_on_disk'] / 1024**2:.1f} MiB on disk, "
        f"{r['children_percent']:.3f} % of {so['count']} full copies ({r['full_equivalent_bytes'] / GiB:.0f} GiB) "
        f"(target ≤ {TARGET_CHILDREN_PERCENT:.0f} %)"
    )
    print(
        f"  {_verdict(ok['copy'])}: full copy {full['mib_s']:.0f} MiB/s, {100 * r['copy_vs_cp']:.0f} % of plain cp's "
        f"{cp['mib_s']:.0f} MiB/s (target ≥ {100 * TARGET_COPY_VS_CP:.0f} %; per round: "
        f"{_percents(r['copy_vs_cp_per_round'])})"
    )


# --- run and report ---------------------------------------------------------------------------


def run(work: Path) -> dict[str, Any]:
    """Run the benchmark and record it in ``work``/results.json; on failure, say why (``error``)."""
    import json
    import platform

    print(
        f"Provisioning on {URI}: {CHILDREN} space-optimized VMs, {FULL_ROUNDS} × {FULL_COPIES} full copies "
        "of a 1 GiB image:"
    )
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    try:
        result.update(bench_provisioning())
    except Exception as exc:  # noqa: BLE001 - the other benchmarks' figures must still be written
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  provisioning benchmark not completed: {result['error']}")
    path = work / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["provisioning"] = result
    path.write_text(json.dumps(results, indent=2))
    return result


def _ok(passed: bool) -> str:
    return "met" if passed else "**missed**"


def _mib(n: float) -> str:
    return f"{n / 1024**2:.1f} MiB"


def _paragraph(text: str) -> list[str]:
    return [*textwrap.wrap(text, width=100, break_on_hyphens=False, break_long_words=False), ""]


def section_lines(r: dict[str, Any]) -> list[str]:
    """The provisioning section of docs/PERFORMANCE.md for a completed run."""
    so, full, cp, ok = r["space_optimized"], r["full"], r["cp"], r["targets"]
    host, m, load = r["host"], r["machine"], r["load_average"]
    pv, fv = so["per_vm_seconds"], full["per_vm_seconds"]
    sav = r["savings_recorded"]
    golden_gib = r["golden_allocation_on_disk"] / GiB
    dropped = "dropped" if r["cache_dropped"] else "**not** dropped (not root)"
    checks = r["checks"]
    compared = "identical." if checks["full_copy_identical"] else f"**differs**: {checks['full_copy_compare']}."
    lines = [f"{SECTION}: {so['count']} space-optimized VMs and {full['rounds']} × {full['count']} full copies", ""]
    lines += _paragraph(
        f"Last run: {r['when']}, {m['cpus']} CPUs, {m['platform']}; libvirt {host['libvirt']}, QEMU "
        f"{host['qemu']}, images on {host['filesystem']}. One-minute load average {load['before']} before and "
        f"{load['after']} after: other work on the machine shares its CPUs and disk."
    )
    lines += _paragraph(
        "On `qemu:///system` (software-emulated QEMU): a directory pool in a fresh directory under "
        f"`/var/lib/libvirt/images/`, a qcow2 golden image of 1 GiB holding 1 GiB of written data (`qemu-io`; "
        f"{golden_gib:.2f} GiB allocated) and a shut-off template VM. Everything goes through the console's own "
        "services: a provider for `qemu:///system`, a discovery, `register_golden_image`, then "
        "`request_provisioning` (with `enqueue=False`, as the command line's `--now` does) and its job run by "
        "`run_now` (every step, as a worker runs them) in the benchmark's process: there is no broker and no "
        "worker in the figures. The VMs are defined, not started. Code: `bench/provisioning.py`; run it alone with "
        "`python -m bench.run --only provisioning` (as root: it starts libvirtd if needed and drops the page "
        "cache)."
    )
    lines += [
        "| measurement | figure | target | |",
        "|---|---|---|---|",
        f"| {so['count']} space-optimized VMs defined: the request executed up to its inventory refresh | "
        f"{so['defined_seconds']:.1f} s | ≤ {TARGET_DEFINE_SECONDS:.0f} s | {_ok(ok['define'])} |",
        f"| time per space-optimized VM (its row, started → finished) | median {pv['median'] * 1000:.0f} ms, "
        f"p95 {pv['p95'] * 1000:.0f} ms, mean {pv['mean'] * 1000:.0f} ms; the request's time / VMs: "
        f"{so['wall_per_vm_seconds'] * 1000:.0f} ms | | |",
        f"| the inventory refresh ending that request (one discovery of the host) | {so['refresh_seconds']:.2f} s "
        "| (not counted above) | |",
        f"| the {so['count']} children on disk (Σ `st_blocks` × 512 of their files) | {_mib(r['children_on_disk'])}, "
        f"{r['children_percent']:.3f} % of {so['count']} full copies ({so['count']} × {golden_gib:.2f} GiB) | "
        f"≤ {TARGET_CHILDREN_PERCENT:.0f} % | {_ok(ok['space'])} |",
        f"| the same as the console recorded it (pool volumes' allocation after the refresh, `image_savings`) | "
        f"{_mib(sav['children_bytes'])}, {sav['children_percent']:.3f} % of {sav['full_equivalent_bytes'] / GiB:.0f} "
        f"GiB; the request's own read-back: {_mib(r['children_recorded_by_request'])} | | |",
        f"| {full['rounds']} requests of {full['count']} full copies each: each request executed up to its "
        f"inventory refresh | {_seconds(full['round_seconds'])}; {full['defined_seconds'] / (full['rounds'] * full['count']):.2f} s "
        "per VM | | |",
        f"| time per full copy (its row, started → finished) | median {fv['median']:.2f} s, mean "
        f"{fv['mean']:.2f} s, min {fv['min']:.2f} s, max {fv['max']:.2f} s | | |",
        f"| series of {full['count']} plain `cp` of the image in a row, before, between and after the requests | "
        f"{_seconds(cp['series_seconds'])} (one `cp`: median "
        f"{cp['per_copy_seconds']['median']:.2f} s, min {cp['per_copy_seconds']['min']:.2f} s, max "
        f"{cp['per_copy_seconds']['max']:.2f} s) | | |",
        f"| full-copy throughput ({full['rounds']} × {full['count']} × the image's allocation / the requests' time) | "
        f"{full['mib_s']:.0f} MiB/s, {100 * r['copy_vs_cp']:.0f} % of plain `cp`'s {cp['mib_s']:.0f} MiB/s (each "
        f"request against the mean of the series on either side of it: {_percents(r['copy_vs_cp_per_round'])}) | "
        f"≥ {100 * TARGET_COPY_VS_CP:.0f} % of `cp` | {_ok(ok['copy'])} |",
        "",
    ]
    lines += _paragraph(
        "How it is measured. Time per VM: the `started` and `finished` of each VM's job (a child of the "
        "request's job), which the service writes around the VM's steps (boot volume, definition). A request's "
        "time without the inventory refresh: from its job's `started` (a worker claimed it) to the `created` time "
        'of the discovery job the request starts at its end (trigger "job"); it includes reading the new '
        f"volumes' allocation back ({so['after_last_vm_seconds']:.2f} s here), not the refresh. Validating and "
        f"recording the request (`request_provisioning`) took {so['request_seconds'] * 1000:.0f} ms more. "
        "Space: the allocated blocks of the child files against the golden image's allocated blocks; the "
        "console's own figures, read by libvirt, are the cross-check."
    )
    lines += _paragraph(
        f"Full copies against `cp`: {full['rounds']} requests of {full['count']} full copies each, as a user would "
        f"ask for them, and series of {full['count']} plain `cp` of the same file (the golden image) into the "
        "same directory, one after another: a series, a request, a series, and so on, ending with a series. "
        "Each request is compared with the mean of the two series on either side of it, which cancels a drift "
        "of the disk's speed; the figure is the sum of those means over the sum of the requests' times. Each "
        "request's VMs and copies were removed after it (untimed, behind the console's back), as each "
        "series' copies were, so every request and every series found the same disk. One more `cp` series "
        "came before all of them, not "
        f"counted ({r['cp']['warm_up_seconds']:.1f} s here): on this machine the first series after the set-up "
        "takes two to four times as long as the later ones, which would slow whichever series came first. "
        "The page cache was "
        f"{dropped} (`sync; echo 3 > /proc/sys/vm/drop_caches`) before each series and each request, so each "
        "reads the image from the disk once and then from the cache. Neither "
        "side waits for its data to reach the disk: libvirt copies with `qemu-img convert`, which writes "
        "its output with cache mode `unsafe` (its only `fdatasync` calls come while it creates the empty "
        "image, as `strace` shows), and `cp` does not sync either. Writing "
        f"{full['count']} GiB in a row, both run into the kernel's limit on dirty page-cache data "
        f"({r['dirty_limit']} here) and then go at the disk's speed. "
        f"The first full copy compared with the image (`qemu-img compare`): {compared}"
    )
    lines += _where_time_goes(r)
    return lines


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{t:.2f} s" for t in values)


def _percents(ratios: list[float]) -> str:
    return ", ".join(f"{100 * x:.0f} %" for x in ratios)


def _where_time_goes(r: dict[str, Any]) -> list[str]:
    so, full, ok = r["space_optimized"], r["full"], r["targets"]
    lib, rows = so["libvirt"], so["in_request"]
    calls = ", ".join(f"`{c['call']}` {c['count']:,}× {c['seconds']:.2f} s" for c in lib["top"][:4])
    lines = _paragraph(
        f"Where the {so['defined_seconds']:.1f} s of the {so['count']} space-optimized VMs go: libvirt calls "
        f"{lib['seconds']:.1f} s ({lib['calls']:,} calls; {calls}), SQL {so['sql']['seconds']:.2f} s "
        f"({so['sql']['statements']:,} statements), the rest the console's Python. Up to the inventory refresh: "
        f"creating the children (`virStorageVolCreateXML`; libvirt runs `qemu-img create` with the image as "
        f"backing file) {rows['volume_call_seconds']:.1f} s, listing the host's domains and reading their XML "
        f"{rows['domain_scan_seconds']:.1f} s, other libvirt calls (checks, lookups, `virDomainDefineXML`) "
        f"{rows['other_libvirt_seconds']:.1f} s, SQL {rows['sql_seconds']:.2f} s."
    )
    if lib["domain_xml_reads"] > 3 * so["count"]:
        lines += _paragraph(
            f"The domain scan grows with the VMs on the host ({so['domains_before']} before the request, "
            f"{so['domains_before'] + so['count']} after): {lib['domain_xml_reads']:,} domain XML reads for "
            f"{so['count']} VMs, and a VM's time went from a median of {so['per_vm_first_tenth_median'] * 1000:.0f} "
            f"ms in the first tenth of the request to {so['per_vm_last_tenth_median'] * 1000:.0f} ms in the last "
            f"({so['per_vm_growth_ms_per_vm']:.2f} ms more per VM already made). Before defining each VM, "
            "`provisioning/services/requests.py` (`_define` → `_ours`) asks `domains_using` whether a VM of that "
            "name already boots from the new volume (one left by a worker that died), and `domains_using` lists "
            "every domain of the host and reads and parses its XML. So a VM costs more the more VMs the host "
            "has, and a request of N VMs grows with N². Suggestion for the service's owners: make that check "
            "only when resuming a row that was already at the defining step when the task was delivered, or "
            "look the VM up by name (`lookupByName`, one call) and compare its boot disk."
        )
    fr = full["in_request"]
    n = full["count"] * full["rounds"]
    lines += _paragraph(
        f"Full copies: of the requests' {fr['seconds']:.1f} s, `virStorageVolCreateXMLFrom` took "
        f"{fr['volume_call_seconds']:.1f} s ({fr['volume_call_seconds'] / n:.2f} s per copy: "
        f"{100 * r['copy_call_vs_cp']:.0f} % of plain `cp`'s throughput). The requests' time beyond their "
        f"copies was {fr['beyond_volume_calls_seconds'] / n * 1000:.0f} ms per copy: other libvirt calls (checks, "
        f"lookups, `virDomainDefineXML`) {fr['other_libvirt_seconds'] / n * 1000:.0f} ms, SQL "
        f"{fr['sql_seconds'] / n * 1000:.0f} ms, the rest the console's Python. After a request's last copy, reading the new volumes' "
        f"allocation back took {full['after_last_vm_seconds']:.2f} s (mean). libvirt copies with `qemu-img convert -f "
        f"qcow2 -O qcow2` (the copies are {r['checks'].get('full_format') or '?'} version "
        f"{r['checks'].get('full_compat') or '?'}, the children {r['checks'].get('child_format') or '?'} version "
        f"{r['checks'].get('child_compat') or '?'})."
    )
    if not ok["copy"]:
        if r["copy_call_vs_cp"] >= TARGET_COPY_VS_CP:
            lines += _paragraph(
                "So libvirt's copies keep up with `cp`; the target is missed by the console's own time beyond "
                "them (above)."
            )
        else:
            lines += _paragraph(
                "So libvirt's copies themselves, `qemu-img convert`, were slower than `cp` in this run "
                f"({100 * r['copy_call_vs_cp']:.0f} %), not the console's own time beyond them."
            )
    series = [*full["round_seconds"], *r["cp"]["series_seconds"]]
    lines += _paragraph(
        "Copies vary a lot on this machine (the table's minimum and maximum): a copy of 1 GiB lasts about "
        "half a second, and the shared virtual disk sometimes takes several times as long. Until "
        "2026-11-25 this benchmark timed single copies, one request per copy, each paired with a single "
        "`cp` and the page cache dropped before each; over 13 runs its ratio ranged from 56 % to 108 % of "
        f"`cp`. Then it compared one request of {full['count']} copies with one series of `cp` before and one "
        "after; over 11 runs the ratio was 71–103 %, median 85 %, below 80 % in 4, and the two series of one "
        "run differed by as much as 62 % for the same work. It now makes "
        f"{full['rounds']} such rounds ({min(series):.1f}–{max(series):.1f} s per request or series in this run); "
        "compare runs, not single figures. On 2026-11-25 it ran 10 times in two series of 5, each reported "
        "whole: 98, 89, 85, 88 and 74 %; then, after the check that the image's VM stayed off during each copy "
        "was added (one more libvirt call per VM), 85, 82, 87, 80 and 88 %, the last of them above."
    )
    lines += _paragraph(
        "Tried and dropped on 2026-11-25: making each VM's boot volume in a second thread while the console "
        "defined the VM before it, to hide the console's time between copies. Over 4 runs it gave 86, 79, 83 "
        "and 73 %, no better. libvirt's copies themselves ran slower beside the console's other work (83–95 % "
        "of `cp`, against 86–106 % in the 10 runs without the thread): that work is mostly writes to the same "
        "disk (`virDomainDefineXML` saves the definition and syncs it; the SQLite journal), so it seems to cost "
        "the copy about what running it alongside saved."
    )
    return lines


def write_section(path: Path, result: dict[str, Any] | None, previous: str = "") -> None:
    """Put the provisioning section into ``path``, replacing an older one; keep the other sections.

    Without a completed ``result`` the section of ``previous`` (the document before this run rewrote
    it) is kept as it was.
    """
    text = path.read_text() if path.exists() else ""
    if result and "error" not in result:
        new = "\n".join(section_lines(result))
    else:
        new = _find_section(previous or text)
        if not new:
            return
    old = _find_section(text)
    if old:
        text = text.replace(old, new)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.write_text(text.rstrip("\n") + "\n")


def _find_section(text: str) -> str:
    match = re.search(rf"^{re.escape(SECTION)}.*?(?=^## |\Z)", text, flags=re.S | re.M)
    return match.group(0) if match else ""
