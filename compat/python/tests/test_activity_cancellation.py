"""Cancelling an activity from its workflow, for each ActivityCancellationType, with async and
threaded (sync) activities, and with an activity that swallows its cancellation.

The activities (suite.activities.CancellationProbe) heartbeat every 100 ms with a 1 s heartbeat
timeout, so a cancel request reaches them within about a second. When cancelled they block in
their cleanup until the test releases them: that is how a test tells "the workflow moved on
before the activity finished cancelling" from "the workflow waited for it"."""

import asyncio
import time

import pytest

from suite.activities import CancellationProbe
from suite.support import event_types, has_event, history_events, wait_until
from suite.workflows import CancelActivity


async def start_and_cancel(env, client, probe, *, sync, cancellation_type, swallow):
    handle = await client.start_workflow(
        CancelActivity.run,
        args=[sync, cancellation_type, swallow],
        id=env.workflow_id(),
        task_queue=env.task_queue,
    )
    await wait_until(probe.started.is_set, what="activity started")
    await handle.signal(CancelActivity.cancel_activity)
    return handle


async def outcome(handle):
    return await handle.query(CancelActivity.get_outcome)


async def assert_unresolved_for(handle, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert await outcome(handle) is None, "the workflow did not wait for the activity"
        await asyncio.sleep(0.2)


def workers_activities(probe):
    return [probe.run_async, probe.run_sync]


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_try_cancel_reaches_heartbeating_activity_and_workflow_moves_on_at_once(env, sync):
    client = await env.client()
    probe = CancellationProbe()
    async with env.worker(client, activities=workers_activities(probe)):
        try:
            handle = await start_and_cancel(
                env, client, probe, sync=sync, cancellation_type="TRY_CANCEL", swallow=False
            )
            await wait_until(lambda: outcome(handle), what="workflow saw the cancellation")
            assert await outcome(handle) == "cancelled: CancelledError"
            await wait_until(probe.cancel_seen.is_set, what="activity told to cancel")
            assert probe.cancelled_by_request is True
            assert not probe.finished.is_set()  # the workflow did not wait for the cleanup
        finally:
            probe.release()
        await wait_until(probe.finished.is_set, what="activity finished")
        await handle.signal(CancelActivity.finish_now)
        assert await handle.result() == "cancelled: CancelledError"
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in event_types(await history_events(handle))


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_wait_cancellation_completed_waits_for_the_activity_to_finish_cancelling(env, sync):
    client = await env.client()
    probe = CancellationProbe()
    async with env.worker(client, activities=workers_activities(probe)):
        try:
            handle = await start_and_cancel(
                env, client, probe, sync=sync,
                cancellation_type="WAIT_CANCELLATION_COMPLETED", swallow=False,
            )
            await wait_until(probe.cancel_seen.is_set, what="activity told to cancel")
            assert probe.cancelled_by_request is True
            await assert_unresolved_for(handle, 1.5)
        finally:
            probe.release()
        await wait_until(lambda: outcome(handle), what="workflow saw the cancellation")
        assert await outcome(handle) == "cancelled: CancelledError"
        await handle.signal(CancelActivity.finish_now)
        assert await handle.result() == "cancelled: CancelledError"
    events = event_types(await history_events(handle))
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in events
    assert "ACTIVITY_TASK_CANCELED" in events


async def test_activity_swallowing_cancellation_with_try_cancel(env):
    """The workflow moves on as cancelled; the activity's normal completion comes later and is
    accepted by the server but changes nothing for the workflow."""
    client = await env.client()
    probe = CancellationProbe()
    async with env.worker(client, activities=workers_activities(probe)):
        try:
            handle = await start_and_cancel(
                env, client, probe, sync=False, cancellation_type="TRY_CANCEL", swallow=True
            )
            await wait_until(lambda: outcome(handle), what="workflow saw the cancellation")
            await wait_until(probe.cancel_seen.is_set, what="activity told to cancel")
        finally:
            probe.release()
        await wait_until(probe.finished.is_set, what="activity returned")
        await wait_until(
            lambda: has_event(handle, "ACTIVITY_TASK_COMPLETED"),
            what="the swallowed activity's completion recorded",
        )
        await handle.signal(CancelActivity.finish_now)
        assert await handle.result() == "cancelled: CancelledError"


async def test_activity_swallowing_cancellation_with_wait_cancellation_completed(env):
    """The workflow waits for the activity, which completes normally: the workflow gets its
    result."""
    client = await env.client()
    probe = CancellationProbe()
    async with env.worker(client, activities=workers_activities(probe)):
        try:
            handle = await start_and_cancel(
                env, client, probe, sync=False,
                cancellation_type="WAIT_CANCELLATION_COMPLETED", swallow=True,
            )
            await wait_until(probe.cancel_seen.is_set, what="activity told to cancel")
            await assert_unresolved_for(handle, 1.5)
        finally:
            probe.release()
        await wait_until(lambda: outcome(handle), what="workflow saw the activity finish")
        await handle.signal(CancelActivity.finish_now)
        result = await handle.result()
    assert result == "completed: swallowed"


async def test_abandon_leaves_the_activity_running_uncancelled(env):
    """ABANDON: the workflow moves on at once and the server never asks the activity to cancel;
    the activity keeps heartbeating while the workflow is open."""
    client = await env.client()
    probe = CancellationProbe()
    async with env.worker(client, activities=workers_activities(probe)):
        try:
            handle = await start_and_cancel(
                env, client, probe, sync=False, cancellation_type="ABANDON", swallow=True
            )
            await wait_until(lambda: outcome(handle), what="workflow gave up on the activity")
            assert await outcome(handle) == "cancelled: CancelledError"
            beats = probe.heartbeats
            await asyncio.sleep(2.0)
            assert not probe.cancel_seen.is_set(), "an abandoned activity was told to cancel"
            assert probe.heartbeats > beats
            assert "ACTIVITY_TASK_CANCEL_REQUESTED" not in event_types(await history_events(handle))
            await handle.signal(CancelActivity.finish_now)
            assert await handle.result() == "cancelled: CancelledError"
        finally:
            probe.release()
