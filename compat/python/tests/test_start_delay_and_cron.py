"""Delayed starts (start_delay on start_workflow and on signal-with-start) and cron schedules."""

import asyncio
import time
from datetime import datetime, timedelta, timezone

from temporalio.client import WorkflowExecutionStatus

from suite.support import event_types, has_event, history_events, wait_until
from suite.workflows import CronTick, Inbox

DELAY = timedelta(seconds=2)


async def test_start_delay_holds_the_first_workflow_task_back(env):
    client = await env.client()
    async with env.worker(client):
        requested = datetime.now(timezone.utc)
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue, start_delay=DELAY
        )
        await handle.signal(Inbox.add, "early")  # a signal does not cut the delay short
        await _assert_not_run_within(handle, 1.0)
        await _wait_first_task(handle)
        await handle.signal(Inbox.close)
        result = await handle.result()
    first_task_at = datetime.fromisoformat(result["first_task_at"])
    assert first_task_at - requested >= DELAY - timedelta(milliseconds=100), first_task_at - requested
    assert result["items"] == ["early"]
    description = await handle.describe()
    assert description.execution_time - description.start_time >= DELAY - timedelta(milliseconds=10)


async def test_signal_with_start_honours_start_delay(env):
    client = await env.client()
    async with env.worker(client):
        requested = datetime.now(timezone.utc)
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue, start_delay=DELAY,
            start_signal="add", start_signal_args=["with start"],
        )
        await _assert_not_run_within(handle, 1.0)
        await _wait_first_task(handle)
        await handle.signal(Inbox.close)
        result = await handle.result()
    first_task_at = datetime.fromisoformat(result["first_task_at"])
    assert first_task_at - requested >= DELAY - timedelta(milliseconds=100), first_task_at - requested
    assert result["items"] == ["with start"]


async def _assert_not_run_within(handle, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        events = event_types(await history_events(handle))
        assert "WORKFLOW_TASK_STARTED" not in events, f"workflow ran before its start delay: {events}"
        await asyncio.sleep(0.2)


async def _wait_first_task(handle):
    await wait_until(
        lambda: has_event(handle, "WORKFLOW_TASK_COMPLETED"), timeout=10, what="first workflow task"
    )


async def test_cron_workflow_runs_on_its_schedule(env):
    """`@every 2s` (a cron descriptor Temporal accepts) keeps this fast; `* * * * *` would
    wait for minute boundaries. Each run completes and the next run is scheduled under the same
    workflow id."""
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            CronTick.run, id=env.workflow_id(), task_queue=env.task_queue,
            cron_schedule="@every 2s",
        )
        first = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        # The first run waits for the schedule too: no task right away.
        assert "WORKFLOW_TASK_STARTED" not in event_types(await history_events(first))
        runs = await _completed_cron_runs(client, handle, want=2)
        await client.get_workflow_handle(handle.id).terminate(reason="enough runs seen")
    assert len(set(runs)) == 2
    description = await first.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


async def _completed_cron_runs(client, handle, want):
    """Follow the chain of cron runs from the first one until `want` runs have completed; return
    their run ids (each run returns its own run id)."""
    runs, run_id = [], handle.result_run_id
    end = time.monotonic() + 15
    while len(runs) < want:
        assert time.monotonic() < end, f"only {len(runs)} cron run(s) completed in 15 s"
        events = await history_events(client.get_workflow_handle(handle.id, run_id=run_id))
        last = events[-1]
        if event_types([last]) != ["WORKFLOW_EXECUTION_COMPLETED"]:
            await asyncio.sleep(0.2)
            continue
        attributes = last.workflow_execution_completed_event_attributes
        [payload] = attributes.result.payloads
        assert payload.data.decode().strip('"') == run_id
        runs.append(run_id)
        assert attributes.new_execution_run_id, "a completed cron run names the next run"
        run_id = attributes.new_execution_run_id
    return runs
