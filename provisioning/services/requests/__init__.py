"""Rapid provisioning: N VMs from a golden image (or one from a volume), validated, then made by a job.

- ``naming``: the VMs' names from a pattern;
- ``validation``: the source (image or volume) and every check before anything is made;
- ``submission``: the request recorded as one job with a child job per VM, queued; and cancel;
- ``execution``: the job's executor, VM by VM, resumable after its worker died;
- ``platform``: what the executor asks of the KVM host, in one class (the seam faults go through).
"""

from provisioning.services.requests.execution import KIND, VM_KIND
from provisioning.services.requests.naming import MAX_COUNT, expand_pattern, pattern_names
from provisioning.services.requests.submission import cancel_provisioning, request_provisioning, request_vm_from_volume
from provisioning.services.requests.validation import (
    MAX_VCPUS,
    MIN_MEMORY_BYTES,
    OVERLAY_INITIAL_BYTES,
    Source,
    source_from_volume,
    source_of,
    space_needed,
    validate_request,
)

__all__ = [
    "KIND",
    "MAX_COUNT",
    "MAX_VCPUS",
    "MIN_MEMORY_BYTES",
    "OVERLAY_INITIAL_BYTES",
    "VM_KIND",
    "Source",
    "cancel_provisioning",
    "expand_pattern",
    "pattern_names",
    "request_provisioning",
    "request_vm_from_volume",
    "source_from_volume",
    "source_of",
    "space_needed",
    "validate_request",
]
