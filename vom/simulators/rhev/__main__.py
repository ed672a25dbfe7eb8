"""Serve the demo inventory: ``python -m vom.simulators.rhev [--port N] [--vms N]``."""

from __future__ import annotations

import argparse
import time

from vom.simulators.rhev import demo_inventory, start


def main() -> None:
    parser = argparse.ArgumentParser(description="Simulated RHEV-M (oVirt REST API v4)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--vms", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    inv = demo_inventory(args.seed, vms=args.vms)
    sim = start(inv, host=args.host, port=args.port)
    print(f"serving {len(inv.vms)} VMs at {sim.url} (user admin@internal, password secret)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
