"""A simulated RHEV-M / oVirt engine: the REST API v4 in XML and the SSO token endpoint.

No manager is reachable from the development machines, so tests and the demo start this server and
point the real ``ovirtsdk4`` client at it::

    url, stop = start_simulator(demo_inventory(seed=1))
    ...
    stop()

Run ``python -m vom.simulators.rhev --port 8443`` to serve the demo inventory by hand.
"""

from vom.simulators.rhev.model import (
    HOST_STATUSES,
    VM_STATUSES,
    Inventory,
    benchmark_inventory,
    demo_inventory,
)
from vom.simulators.rhev.server import Simulator, SimulatorOptions, start, start_simulator

__all__ = [
    "HOST_STATUSES",
    "VM_STATUSES",
    "Inventory",
    "Simulator",
    "SimulatorOptions",
    "benchmark_inventory",
    "demo_inventory",
    "start",
    "start_simulator",
]
