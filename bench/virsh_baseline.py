"""The reference product's way of discovering KVM guests, timed: one ``virsh`` process per call.

For each sampled host: ``virsh -c test:///<file> list --all --name``, then one
``virsh -c test:///<file> dumpxml <name>`` process per VM. The time for the sample is scaled to
all hosts. Run ``python -m bench.virsh_baseline [NODE_DIR] [--sample-hosts N]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

VIRSH = "/usr/bin/virsh"


def _virsh(uri: str, *args: str) -> str:
    result = subprocess.run(
        [VIRSH, "-q", "-c", uri, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def sample_indices(total: int, sample: int) -> list[int]:
    """Return ``sample`` indices spread evenly over ``range(total)`` (all of them if fewer)."""
    if sample >= total:
        return list(range(total))
    if sample <= 0:
        return []
    step = total / sample
    return [int(i * step) for i in range(sample)]


def time_virsh_way(node_files: list[Path], sample_hosts: int = 5) -> dict[str, float | int]:
    """Time the one-process-per-call discovery on a sample of hosts and scale it to all of them.

    Returns ``sample_hosts`` and ``sample_vms`` (how many were measured), ``sample_seconds``
    (wall time for the sample), ``seconds_per_vm`` and ``scaled_seconds_total`` (sample time per
    host times the number of node files).
    """
    if not node_files:
        raise ValueError("no node files given")
    chosen = [node_files[i] for i in sample_indices(len(node_files), sample_hosts)]
    sample_vms = 0
    started = time.perf_counter()
    for path in chosen:
        uri = f"test://{Path(path).resolve()}"
        names = [n for n in _virsh(uri, "list", "--all", "--name").splitlines() if n.strip()]
        for name in names:
            _virsh(uri, "dumpxml", name)
        sample_vms += len(names)
    elapsed = time.perf_counter() - started
    return {
        "sample_hosts": len(chosen),
        "sample_vms": sample_vms,
        "sample_seconds": elapsed,
        "seconds_per_vm": elapsed / sample_vms if sample_vms else 0.0,
        "scaled_seconds_total": elapsed / len(chosen) * len(node_files),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: time the virsh way on node files in a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "node_dir",
        nargs="?",
        default=str(Path(__file__).resolve().parent.parent / "var" / "bench" / "nodes"),
    )
    parser.add_argument("--sample-hosts", type=int, default=5)
    args = parser.parse_args(argv)
    files = sorted(Path(args.node_dir).glob("*.xml"))
    print(json.dumps(time_virsh_way(files, args.sample_hosts), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
