"""Job kinds of the core's own tests: registered here, known only to this test process."""

from __future__ import annotations

import pytest

from tests.jobtools import sent  # noqa: F401 - a fixture: what the core hands to the queue
from tests.provisioning.conftest import golden, kvm  # noqa: F401 - fixtures of the queue-down tests
from vom.jobs.kinds import JobKind, register
from vom.jobs.outcomes import Done, JobFailed, Wait

CALLS: list[tuple[int, int]] = []  # (job id, step) of every executor call, in order


def _record(ctx) -> None:
    CALLS.append((ctx.job.pk, ctx.job.step))


def run_done(ctx):
    _record(ctx)
    ctx.log("did it")
    return Done({"answer": 42})


def run_twice(ctx):
    """Two steps: the first waits (the worker is released), the second finds what the first kept."""
    _record(ctx)
    if not ctx.checkpoint:
        return Wait(0.01, "waiting a moment", {"first": ctx.job.step})
    return Done({"first": ctx.checkpoint["first"], "second": ctx.job.step})


def run_fail(ctx):
    _record(ctx)
    raise JobFailed("it broke", {"partial": True})


def run_crash(ctx):
    _record(ctx)
    raise RuntimeError("a bug")


def run_parent(ctx):
    """Starts two children of its own (queued on their own) and waits, between steps, for them to end."""
    from vom.jobs import lifecycle

    _record(ctx)
    if not ctx.checkpoint:
        for position in range(2):
            child = lifecycle.create("test_done", parent=ctx.job, position=position, target_name=f"part {position}")
            lifecycle.submit(child)
        return Wait(300, "waiting for its parts", {"started": True})
    children = list(ctx.children())
    if any(child.is_active for child in children):
        return Wait(300, "waiting for its parts", ctx.checkpoint)
    return Done({"parts": [child.status for child in children]})


def run_never(ctx):
    raise AssertionError("this kind is never run by these tests")


register(
    JobKind(name="test_done", label="Test: done", queue="orchestration", run=run_done),
    JobKind(name="test_twice", label="Test: two steps", queue="orchestration", run=run_twice),
    JobKind(name="test_fail", label="Test: fails", queue="orchestration", run=run_fail),
    JobKind(name="test_crash", label="Test: crashes", queue="orchestration", run=run_crash),
    JobKind(name="test_resumable", label="Test: resumable", queue="orchestration", run=run_done, resumable=True),
    JobKind(name="test_held", label="Test: held", queue="orchestration", run=run_never),
    JobKind(name="test_parent", label="Test: parent", queue="orchestration", run=run_parent),
    JobKind(name="test_child", label="Test: a child", queue="orchestration", run=run_never),
)


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()
    yield
    CALLS.clear()
