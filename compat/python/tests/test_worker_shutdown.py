"""Workers stopping and starting: graceful shutdown is prompt, and a workflow whose worker
stopped mid-way is finished by a new worker."""

import asyncio
import time
from datetime import timedelta

from suite.activities import Restartable
from suite.support import event_types, has_event, history_events, wait_until
from suite.workflows import Inbox, SurvivesWorkerRestart

PROMPT = 5.0  # seconds a graceful shutdown may take with nothing left to finish


async def test_idle_worker_shuts_down_promptly(env):
    client = await env.client()
    worker = env.worker(client)
    async with worker:
        # Make sure its pollers are parked in long polls on the server.
        handle = await client.start_workflow(Inbox.run, id=env.workflow_id(), task_queue=env.task_queue)
        await handle.signal(Inbox.close)
        await handle.result()
        await asyncio.sleep(1.0)
        began = time.monotonic()
        await worker.shutdown()
        took = time.monotonic() - began
    assert took < PROMPT, f"shutdown of an idle worker took {took:.1f} s"


async def test_workflow_interrupted_by_worker_shutdown_is_finished_by_a_new_worker(env):
    client = await env.client()
    restartable = Restartable()
    first = env.worker(client, activities=[restartable.run],
                       graceful_shutdown_timeout=timedelta(milliseconds=500))
    async with first:
        handle = await client.start_workflow(
            SurvivesWorkerRestart.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await handle.signal(SurvivesWorkerRestart.go_now)
        await wait_until(restartable.first_attempt_running.is_set, what="first attempt running")
        began = time.monotonic()
        await first.shutdown()  # the running attempt is cancelled after the grace period
        took = time.monotonic() - began
    assert took < PROMPT, f"graceful shutdown took {took:.1f} s"
    assert not (await has_event(handle, "WORKFLOW_EXECUTION_COMPLETED"))

    async with env.worker(client, activities=[restartable.run]):
        assert await handle.result() == "finished on attempt 2"
    assert restartable.attempts == [1, 2]


async def test_workflow_waiting_on_a_signal_is_resumed_by_a_new_worker(env):
    """The first worker ran the workflow's first task (and kept it in its cache / sticky
    queue); after it stops, the signal's workflow task must go to the new worker."""
    client = await env.client()
    first = env.worker(client)
    async with first:
        handle = await client.start_workflow(Inbox.run, id=env.workflow_id(), task_queue=env.task_queue)
        await handle.signal(Inbox.add, "before restart")
        await wait_until(lambda: _query_len(handle, 1), what="first worker handled the signal")
        await first.shutdown()
    await handle.signal(Inbox.add, "after restart")
    await handle.signal(Inbox.close)
    began = time.monotonic()
    async with env.worker(client):
        result = await handle.result()
    assert result["items"] == ["before restart", "after restart"]
    took = time.monotonic() - began
    assert took < 10, f"the new worker took {took:.1f} s to get the workflow task"
    assert event_types(await history_events(handle))[-1] == "WORKFLOW_EXECUTION_COMPLETED"


async def _query_len(handle, n):
    return len(await handle.query(Inbox.peek)) == n
