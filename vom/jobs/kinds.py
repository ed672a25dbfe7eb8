"""Job kinds: each app registers its own (name, label, queue, executor) when Django starts.

A plain dictionary filled from each app's ``AppConfig.ready()``; nothing is discovered by magic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vom.jobs.outcomes import Outcome

# An executor takes a vom.jobs.context.JobContext (typed where each executor is written: the registry
# imports neither the context nor the models, which import it).
Executor = Callable[[Any], Outcome]
QUEUES = ("discovery", "orchestration", "provisioning")


@dataclass(frozen=True)
class JobKind:
    """What the core needs to know of a kind of job.

    ``run`` executes one step and returns its outcome (done, failed, or "wait and call me again").
    ``resumable``: a step cut short by a worker that died may be run again by another worker (the
    executor finds what the dead one did); otherwise such a job ends as abandoned.
    ``errors``: exception types the executor lets through that are expected failures (their message
    is the job's error, ``retryable`` taken from the exception); anything else is an internal error.
    ``cancel_between_steps``: a cancel asked for ends the job before its next step; kinds that clean
    up on cancel (provisioning) say False and read ``ctx.cancel_requested`` themselves.
    """

    name: str
    label: str
    queue: str
    run: Executor
    resumable: bool = False
    errors: tuple[type[Exception], ...] = ()
    cancel_between_steps: bool = True
    # The kind's own part of the job's page (a template rendered with ``job``), e.g. a link to what
    # the job made, or the force power-off offered after a graceful shutdown timed out.
    page_template: str = ""
    # Called, in the transaction that ends it, when a job of this kind is ended as abandoned (its
    # worker died, and it could not be resumed): the kind can say what may be left on a platform.
    on_abandoned: Callable[[Any, str], None] | None = None  # (the job, the reason)

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"job kind {self.name!r}: unknown queue {self.queue!r} (one of {', '.join(QUEUES)})")


_KINDS: dict[str, JobKind] = {}


def register(*kinds: JobKind) -> None:
    """Make ``kinds`` known; registering a name twice is a programming error."""
    for kind in kinds:
        if kind.name in _KINDS and _KINDS[kind.name] != kind:
            raise ValueError(f"job kind {kind.name!r} is already registered")
        _KINDS[kind.name] = kind


def kind_of(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"unknown job kind {name!r}") from None


def label_of(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind is not None else name.replace("_", " ").capitalize()


def choices() -> list[tuple[str, str]]:
    """(name, label) of every registered kind, by label."""
    return sorted(((k.name, k.label) for k in _KINDS.values()), key=lambda c: c[1].lower())
