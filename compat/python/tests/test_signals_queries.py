"""Signals, queries (including a failing one) and signal-with-start."""

import pytest
from temporalio.client import WorkflowQueryFailedError

from suite.support import wait_until
from suite.workflows import Inbox


async def test_signals_arrive_in_order_and_queries_read_state(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        for item in ["one", "two", "three"]:
            await handle.signal(Inbox.add, item)
        await wait_until(lambda: _peek_len(handle, 3), what="three signals handled")
        assert await handle.query(Inbox.peek) == ["one", "two", "three"]
        await handle.signal(Inbox.close)
        result = await handle.result()
        assert result["items"] == ["one", "two", "three"]
        # A closed workflow can still be queried (the worker replays it).
        assert await handle.query(Inbox.peek) == ["one", "two", "three"]


async def _peek_len(handle, n):
    return len(await handle.query(Inbox.peek)) == n


async def test_failing_query_and_unknown_query_are_reported_to_the_caller(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        with pytest.raises(WorkflowQueryFailedError, match="this query always fails"):
            await handle.query(Inbox.broken)
        with pytest.raises(WorkflowQueryFailedError, match="no-such-query"):
            await handle.query("no-such-query")
        # The workflow is unharmed.
        await handle.signal(Inbox.add, "still alive")
        await handle.signal(Inbox.close)
        assert (await handle.result())["items"] == ["still alive"]


async def test_signal_with_start_starts_once_then_signals_the_running_workflow(env):
    client = await env.client()
    workflow_id = env.workflow_id()
    async with env.worker(client):
        first = await client.start_workflow(
            Inbox.run, id=workflow_id, task_queue=env.task_queue,
            start_signal="add", start_signal_args=["first"],
        )
        second = await client.start_workflow(
            Inbox.run, id=workflow_id, task_queue=env.task_queue,
            start_signal="add", start_signal_args=["second"],
        )
        assert second.result_run_id == first.result_run_id
        # The SDK takes this from the response's first_execution_run_id.
        assert second.first_execution_run_id == first.first_execution_run_id, (
            "signal-with-start of a running workflow did not name its first run"
        )
        await wait_until(lambda: _peek_len(first, 2), what="both signals handled")
        await first.signal(Inbox.close)
        assert (await first.result())["items"] == ["first", "second"]


async def test_a_query_sees_a_signal_whose_workflow_task_has_not_run_yet(env):
    """The signal's workflow task is scheduled but no worker has taken it when the query comes:
    the answer must include the signal (Temporal hands the query out with that task)."""
    import asyncio

    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await wait_until(
            lambda: _has_completed_a_task(handle), what="the first workflow task completed"
        )
    # No worker now: the signal's workflow task waits in the queue.
    await handle.signal(Inbox.add, "late")
    query = asyncio.create_task(handle.query(Inbox.peek))
    await asyncio.sleep(1)
    async with env.worker(client):
        assert await asyncio.wait_for(query, 20) == ["late"]
        await handle.signal(Inbox.close)
        await handle.result()


async def _has_completed_a_task(handle):
    from suite.support import event_types, history_events

    return "WORKFLOW_TASK_COMPLETED" in event_types(await history_events(handle))
