"""Generate libvirt ``test:///`` node files for the discovery benchmark.

Each host gets ``vms_per_host`` VMs, each with two disks (a qcow2 overlay in the ``default`` dir
pool, whose volume is in that pool, and a multipath LUN named by ``/dev/disk/by-id``) and one NIC
on the host's one network. Everything is derived from ``seed``: the same arguments write the same
bytes. Run ``python -m bench.nodegen [OUT_DIR] [--hosts N] [--vms-per-host N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(PROJECT_ROOT))

from vom.simulators.libvirt_node import (  # noqa: E402
    TEST_POOL_CAPACITY,
    DiskSpec,
    DomainSpec,
    GiB,
    NetworkSpec,
    NicSpec,
    NodeSpec,
    PoolSpec,
    RunState,
    VolumeSpec,
    build_node_xml,
    stable_uuid,
)

DEFAULT_SEED = 20240611
DEFAULT_OUT = PROJECT_ROOT / "var" / "bench" / "nodes"
POOL_PATH = "/var/lib/libvirt/images"

_SHAPES: list[tuple[int, int]] = [(1, 1), (2, 2), (2, 4), (4, 8), (8, 16), (16, 32)]  # vcpus, GiB
_STATES: list[tuple[RunState, int]] = [
    (RunState.RUNNING, 75),
    (RunState.SHUTOFF, 20),
    (RunState.PAUSED, 5),
]


def host_name(index: int) -> str:
    """Return the name of benchmark host number ``index`` (0-based): ``bench-h0001`` …"""
    return f"bench-h{index + 1:04d}"


def _mac(counter: int) -> str:
    # 52:54:00 + a 24-bit counter: unique across the whole generated set (up to 16.7 M NICs)
    return f"52:54:00:{(counter >> 16) & 0xFF:02x}:{(counter >> 8) & 0xFF:02x}:{counter & 0xFF:02x}"


def build_host(index: int, vms_per_host: int, seed: int) -> NodeSpec:
    """Return the :class:`NodeSpec` of benchmark host ``index``."""
    name = host_name(index)
    rng = random.Random(f"{seed}:{name}")
    net = NetworkSpec(
        name="default",
        uuid=stable_uuid(seed, name, "net"),
        bridge="virbr0",
        forward="nat",
        ip="192.168.122.1",
        netmask="255.255.255.0",
        dhcp_start="192.168.122.2",
        dhcp_end="192.168.122.254",
    )
    # keep the pool's total allocation under the 100 GiB the test driver gives every pool
    alloc = min(2 * GiB, (TEST_POOL_CAPACITY * 9 // 10) // max(vms_per_host, 1))
    pool = PoolSpec(name="default", uuid=stable_uuid(seed, name, "pool"), target_path=POOL_PATH)
    domains: list[DomainSpec] = []
    states = [s for s, _ in _STATES]
    weights = [w for _, w in _STATES]
    for j in range(vms_per_host):
        vm = f"{name}-vm{j + 1:03d}"
        vcpus, mem_gib = rng.choice(_SHAPES)
        state = rng.choices(states, weights)[0]
        volume = f"{vm}.qcow2"
        pool.volumes.append(VolumeSpec(name=volume, capacity_bytes=40 * GiB, allocation_bytes=alloc, format="qcow2"))
        wwid = f"3600a0980{index:012x}{j:012x}"
        domains.append(
            DomainSpec(
                name=vm,
                uuid=stable_uuid(seed, name, vm),
                memory_kib=mem_gib * 1024 * 1024,
                vcpus=vcpus,
                state=state,
                disks=[
                    DiskSpec(target="vda", source=f"{POOL_PATH}/{volume}", format="qcow2"),
                    DiskSpec(
                        target="vdb",
                        source=f"/dev/disk/by-id/dm-uuid-mpath-{wwid}",
                        kind="block",
                        format="raw",
                        cache="none",
                        io="native",
                    ),
                ],
                nics=[NicSpec(mac=_mac(index * vms_per_host + j), source="default")],
            )
        )
    return NodeSpec(
        hostname=name,
        host_uuid=stable_uuid(seed, name, "host"),
        memory_kib=512 * 1024 * 1024,
        cpu_sockets=2,
        cpu_cores=16,
        cpu_threads=2,
        domains=domains,
        networks=[net],
        pools=[pool],
    )


def generate(
    out_dir: str | Path = DEFAULT_OUT,
    hosts: int = 1000,
    vms_per_host: int = 20,
    seed: int = DEFAULT_SEED,
) -> list[Path]:
    """Write ``hosts`` node files ``<out_dir>/bench-hNNNN.xml`` and return their absolute paths.

    Deterministic: the same ``hosts``, ``vms_per_host`` and ``seed`` give identical files.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i in range(hosts):
        spec = build_host(i, vms_per_host, seed)
        path = out / f"{spec.hostname}.xml"
        path.write_bytes(build_node_xml(spec, pretty=False))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: generate the set and print how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(DEFAULT_OUT))
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms-per-host", type=int, default=20)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = generate(args.out_dir, args.hosts, args.vms_per_host, args.seed)
    elapsed = time.perf_counter() - started
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {len(paths)} node files ({len(paths) * args.vms_per_host} VMs, "
        f"{size / 1024 / 1024:.1f} MiB) to {Path(args.out_dir).resolve()} in {elapsed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
