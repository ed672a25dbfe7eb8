"""What one step of a job comes to: done, failed, cancelled, or wait and run the next step later."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Writes that belong with the outcome (the provider marked stale with the reason …): run in the
# transaction that ends the job, and only if this worker still held it, so a worker that finishes
# after its job was expired or taken over changes nothing anywhere.
OnFinish = Callable[[], None] | None


@dataclass(frozen=True)
class Done:
    """The job succeeded; ``result`` is merged into its result."""

    result: dict[str, Any] = field(default_factory=dict)
    message: str = "done"
    on_finish: OnFinish = None


@dataclass(frozen=True)
class Failed:
    error: str
    result: dict[str, Any] = field(default_factory=dict)
    retryable: bool = False
    on_finish: OnFinish = None


@dataclass(frozen=True)
class Cancelled:
    reason: str
    result: dict[str, Any] = field(default_factory=dict)
    on_finish: OnFinish = None


@dataclass(frozen=True)
class Wait:
    """Release the worker; run the next step after ``seconds`` (the job stays running meanwhile).

    What the executor needs in the next step goes into ``checkpoint`` (JSON-ready).
    """

    seconds: float
    message: str = ""
    checkpoint: dict[str, Any] | None = None


Outcome = Done | Failed | Cancelled | Wait


class JobFailed(Exception):
    """Raised by an executor to fail its job with ``message`` (and merge ``result``)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.result = result or {}
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message
