"""Durable timers: asyncio.sleep in a workflow, and workflow.wait_condition with a timeout."""

import time

from suite.support import event_types, has_event, history_events, wait_until
from suite.workflows import Sleeper, WaitForApproval


async def test_sleep_in_a_workflow_is_a_durable_timer(env):
    client = await env.client()
    async with env.worker(client):
        began = time.monotonic()
        handle = await client.start_workflow(
            Sleeper.run, 1.5, id=env.workflow_id(), task_queue=env.task_queue
        )
        slept = await handle.result()
        elapsed = time.monotonic() - began
    assert slept >= 1.5  # workflow time moved by the timer's length
    assert elapsed >= 1.5
    events = event_types(await history_events(handle))
    assert events.count("TIMER_STARTED") == 1 and events.count("TIMER_FIRED") == 1


async def test_wait_condition_times_out_when_nothing_arrives(env):
    client = await env.client()
    async with env.worker(client):
        result = await client.execute_workflow(
            WaitForApproval.run, 1.0, id=env.workflow_id(), task_queue=env.task_queue
        )
    assert result == "timed out"


async def test_wait_condition_met_before_its_timeout_cancels_the_timer(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            WaitForApproval.run, 30.0, id=env.workflow_id(), task_queue=env.task_queue
        )
        await wait_until(
            lambda: has_event(handle, "TIMER_STARTED"), what="workflow waiting on its timer"
        )
        await handle.signal(WaitForApproval.approve)
        assert await handle.result() == "approved"
    events = event_types(await history_events(handle))
    assert "TIMER_STARTED" in events and "TIMER_CANCELED" in events
    assert "TIMER_FIRED" not in events
