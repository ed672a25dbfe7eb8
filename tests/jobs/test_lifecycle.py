"""The job core's lifecycle: one claim, one conditional finish, one expiry, one enqueue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from tests.jobs.conftest import CALLS
from vom.jobs import lifecycle
from vom.jobs.context import JobContext
from vom.jobs.models import Job
from vom.jobs.runner import run_now, run_step

pytestmark = pytest.mark.django_db
S = Job.Status


def test_a_job_runs_to_its_end_and_logs_what_it_did():
    job = lifecycle.create("test_done", target_name="thing")
    job = run_now(job.pk)
    assert job.status == S.SUCCEEDED and job.result == {"answer": 42} and job.progress == 100
    assert job.started is not None and job.finished is not None and job.claim == ""
    assert list(job.log.values_list("message", flat=True)) == ["did it"]


def test_a_second_claim_of_the_same_step_sees_nothing():
    job = lifecycle.create("test_done")
    first = lifecycle.claim(job.pk, 0)
    assert first is not None and first.status == S.RUNNING and first.claim
    assert lifecycle.claim(job.pk, 0) is None
    assert Job.objects.get(pk=job.pk).claim == first.claim


def test_a_redelivered_message_does_nothing():
    job = run_now(lifecycle.create("test_done").pk)
    assert CALLS == [(job.pk, 0)]
    assert run_step(job.pk, 0) is None  # the same message again, after the job ended
    assert CALLS == [(job.pk, 0)]
    assert Job.objects.get(pk=job.pk).status == S.SUCCEEDED


def test_a_step_that_waits_releases_the_worker_and_the_next_step_goes_on(sent):
    job = lifecycle.create("test_twice")
    run_step(job.pk, 0)
    job.refresh_from_db()
    assert job.status == S.RUNNING and job.claim == "" and job.step == 1
    assert job.wake_at is not None and job.checkpoint == {"first": 0} and job.message == "waiting a moment"
    assert job.between_steps and sent == [(job.pk, 1, "orchestration")]
    assert run_step(job.pk, 0) is None  # the first step's message, delivered again: nothing
    run_step(job.pk, 1)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED and job.result == {"first": 0, "second": 1}
    assert CALLS == [(job.pk, 0), (job.pk, 1)]


def test_failures_are_recorded_with_the_reason():
    failed = run_now(lifecycle.create("test_fail").pk)
    assert failed.status == S.FAILED and failed.error == "it broke" and failed.result == {"partial": True}
    crashed = run_now(lifecycle.create("test_crash").pk)
    assert crashed.status == S.FAILED and crashed.error == "internal error: RuntimeError: a bug"
    assert crashed.log.filter(level="error", message="internal error: RuntimeError").exists()


def test_a_lock_is_held_while_the_job_is_active_and_freed_once_it_ends():
    job = lifecycle.create("test_done", lock="thing:1")
    with pytest.raises(lifecycle.Locked) as refused:
        lifecycle.create("test_done", lock="thing:1")
    assert refused.value.holder == job
    assert lifecycle.create("test_done", lock="thing:2").pk  # another lock is free
    run_now(job.pk)
    assert lifecycle.create("test_done", lock="thing:1").pk != job.pk


def _as_if_its_worker_died(job: Job, settings) -> Job:
    """Claimed, then silent for longer than the stale limit (its worker was killed)."""
    claimed = lifecycle.claim(job.pk, job.step)
    assert claimed is not None
    long_ago = timezone.now() - timedelta(seconds=settings.VOM_JOB_STALE_AFTER + 5)
    Job.objects.filter(pk=job.pk).update(heartbeat=long_ago)
    claimed.heartbeat = long_ago
    return claimed


def test_a_dead_workers_job_is_abandoned_by_its_heartbeat_and_its_lock_freed(settings):
    job = lifecycle.create("test_done", lock="vm:7")
    held = _as_if_its_worker_died(job, settings)
    assert lifecycle.expire_stale() == 1
    job.refresh_from_db()
    assert job.status == S.ABANDONED and job.error.startswith("abandoned: the worker running it stopped")
    assert job.lock == "vm:7" and lifecycle.create("test_done", lock="vm:7").pk  # the lock is free again
    # The worker was not dead after all: its late finish changes nothing.
    assert not lifecycle.finish(held, status=S.SUCCEEDED, only_if=lifecycle.held_by_me(held), result={"late": True})
    job.refresh_from_db()
    assert job.status == S.ABANDONED and job.result == {}
    assert lifecycle.expire_stale() == 0  # once


def test_a_running_job_is_judged_by_its_heartbeat_not_its_age(settings):
    job = lifecycle.create("test_done")
    lifecycle.claim(job.pk, 0)
    hours_ago = timezone.now() - timedelta(hours=5)
    Job.objects.filter(pk=job.pk).update(created=hours_ago, started=hours_ago, heartbeat=timezone.now())
    assert lifecycle.expire_stale() == 0
    assert Job.objects.get(pk=job.pk).status == S.RUNNING


def test_a_resumable_job_whose_worker_died_is_resumed_by_another(settings, sent):
    job = lifecycle.create("test_resumable")
    held = _as_if_its_worker_died(job, settings)
    assert lifecycle.expire_stale() == 1
    job.refresh_from_db()
    assert job.status == S.RUNNING and job.claim == "" and job.resumes == 1 and job.step == 1
    assert sent == [(job.pk, 1, "orchestration")]
    sent.clear()
    assert job.log.filter(level="warning", message__startswith="resuming: the worker running it stopped").exists()
    run_step(job.pk, 1)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED
    assert not lifecycle.finish(held, status=S.FAILED, only_if=lifecycle.held_by_me(held), error="late")
    assert Job.objects.get(pk=job.pk).status == S.SUCCEEDED


def test_a_job_resumed_too_often_is_abandoned(settings):
    job = lifecycle.create("test_resumable")
    Job.objects.filter(pk=job.pk).update(resumes=settings.VOM_JOB_MAX_RESUMES)
    _as_if_its_worker_died(Job.objects.get(pk=job.pk), settings)
    lifecycle.expire_stale()
    job.refresh_from_db()
    assert job.status == S.ABANDONED
    assert f"it was resumed {settings.VOM_JOB_MAX_RESUMES} times already" in job.error


def test_a_lost_step_is_sent_again_a_bounded_number_of_times(settings, sent):
    job = lifecycle.create("test_twice")
    run_step(job.pk, 0)  # now between steps, its next step due in 10 ms
    sent.clear()
    overdue = timezone.now() - timedelta(seconds=settings.VOM_JOB_STALE_AFTER + 5)
    for _ in range(settings.VOM_JOB_MAX_SENDS + 2):
        Job.objects.filter(pk=job.pk).update(wake_at=overdue)
        lifecycle.expire_stale()
    job.refresh_from_db()
    assert sent == [(job.pk, 1, "orchestration")] * (settings.VOM_JOB_MAX_SENDS - 1)
    assert job.status == S.ABANDONED and job.error.startswith("abandoned: no worker took its step 1")


def test_a_queued_job_nobody_took_is_sent_again_with_a_back_off_and_never_ended_for_its_age(settings, sent):
    job = lifecycle.create("test_done")
    resend_after = timedelta(seconds=settings.VOM_JOB_RESEND_AFTER + 1)
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - timedelta(seconds=30), sends=1)
    lifecycle.expire_stale()
    assert sent == []  # not yet: the first wait is VOM_JOB_RESEND_AFTER
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - resend_after)
    lifecycle.expire_stale()
    assert sent == [(job.pk, 0, "orchestration")]
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - resend_after)
    lifecycle.expire_stale()
    assert len(sent) == 1  # the second wait is twice as long
    Job.objects.filter(pk=job.pk).update(created=timezone.now() - timedelta(days=3))
    lifecycle.expire_stale()
    assert Job.objects.get(pk=job.pk).status == S.PENDING


def test_cancel_ends_a_queued_job_at_once_and_a_running_one_before_its_next_step(operator_user, sent):
    queued = lifecycle.create("test_done")
    lifecycle.request_cancel(queued, user=operator_user)
    queued.refresh_from_db()
    assert queued.status == S.CANCELLED and queued.cancelled_by == operator_user
    assert run_step(queued.pk, 0) is None and CALLS == []
    with pytest.raises(ValueError, match="has already ended"):
        lifecycle.request_cancel(queued, user=operator_user)

    running = lifecycle.create("test_twice")
    run_step(running.pk, 0)  # between its steps now
    lifecycle.request_cancel(Job.objects.get(pk=running.pk), user=operator_user)
    assert Job.objects.get(pk=running.pk).status == S.RUNNING
    with pytest.raises(ValueError, match="already asked for"):
        lifecycle.request_cancel(Job.objects.get(pk=running.pk), user=operator_user)
    run_step(running.pk, 1)
    running.refresh_from_db()
    assert running.status == S.CANCELLED and running.error == f"cancelled by {operator_user.username}"
    assert CALLS == [(running.pk, 0)]  # the second step never ran


def test_a_parent_ended_takes_its_inline_children_with_it():
    parent = lifecycle.create("test_held")
    children = [
        lifecycle.create("test_child", parent=parent, position=i, inline=True, target_name=f"c{i}") for i in range(3)
    ]
    held = lifecycle.claim(parent.pk, 0)
    ctx = JobContext(held)
    with ctx.child(children[0]) as child:
        ctx.end_child(child, S.SUCCEEDED)
    with pytest.raises(RuntimeError), ctx.child(children[1]):
        raise RuntimeError("boom")
    lifecycle.finish(held, status=S.FAILED, only_if=lifecycle.held_by_me(held), error="it stopped")
    states = {c.target_name: (c.status, c.error) for c in Job.objects.filter(parent=parent)}
    assert states == {
        "c0": (S.SUCCEEDED, ""),
        "c1": (S.FAILED, f"its parent job #{parent.pk} ended (failed)"),  # left to its parent, which failed
        "c2": (S.FAILED, f"its parent job #{parent.pk} ended (failed)"),
    }


def test_a_resumed_parent_takes_over_its_running_inline_children(settings):
    parent = lifecycle.create("test_held")
    child = lifecycle.create("test_child", parent=parent, inline=True)
    held = lifecycle.claim(parent.pk, 0)
    Job.objects.filter(pk=child.pk).update(status=S.RUNNING, claim=held.claim)
    Job.objects.filter(pk=parent.pk).update(claim="", step=1, resumes=1)  # as the sweep leaves a resumed job
    again = lifecycle.claim(parent.pk, 1)
    assert again.claim != held.claim
    assert Job.objects.get(pk=child.pk).claim == again.claim
    assert lifecycle.finish(child, status=S.SUCCEEDED, only_if=Q(status=S.RUNNING, claim=again.claim))
