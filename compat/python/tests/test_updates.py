"""Workflow updates: each lifecycle stage, and the ways an update fails."""

import asyncio
import time
import uuid

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError, RPCStatusCode

from suite import gates
from suite.support import event_types, history_events, wait_until
from suite.workflows import ContinueAsNewOnSignal, Counter


async def start_counter(env, client, name="counter", task_queue=None):
    return await client.start_workflow(
        Counter.run, id=env.workflow_id(name), task_queue=task_queue or env.task_queue
    )


async def test_execute_update_returns_the_handler_result(env):
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        assert await handle.execute_update(Counter.add, 5) == 5
        assert await handle.execute_update(Counter.add, 2) == 7
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 7
    events = event_types(await history_events(handle))
    assert events.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 2
    assert events.count("WORKFLOW_EXECUTION_UPDATE_COMPLETED") == 2


async def test_update_rejected_by_its_validator_fails_and_leaves_no_trace_in_history(env):
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(Counter.add, -1)
        cause = rejected.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message) == ("InvalidAmount", "amount must be positive, got -1")
        assert await handle.query(Counter.handled_updates) == []
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 0
    events = event_types(await history_events(handle))
    assert not [e for e in events if e.startswith("WORKFLOW_EXECUTION_UPDATE")], events


async def test_update_handler_raising_fails_the_update_but_not_the_workflow(env):
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(Counter.fail, "out of stock")
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message) == ("UpdateFailed", "update failed: out of stock")
        assert await handle.execute_update(Counter.add, 1) == 1  # still serving updates
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 1
    events = event_types(await history_events(handle))
    assert events.count("WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 2
    assert events.count("WORKFLOW_EXECUTION_UPDATE_COMPLETED") == 2


async def test_start_update_returns_once_accepted_and_result_waits_for_completion(env):
    """start_update(wait_for_stage=ACCEPTED) returns while the handler still runs; the handle's
    result() then polls (PollWorkflowExecutionUpdate) until the handler completes."""
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        update = await handle.start_update(
            Counter.add_when_open, 10, id="open-then-add",
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        assert update.id == "open-then-add"
        assert await handle.query(Counter.handled_updates) == ["add_when_open 10"]
        result = asyncio.ensure_future(update.result())
        await asyncio.sleep(1.0)
        assert not result.done(), "update result arrived before its handler completed"
        await handle.signal(Counter.open_gate)
        assert await asyncio.wait_for(result, 10) == 10
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 10


async def test_polling_an_update_result_past_its_rpc_timeout_raises_a_timeout(env):
    """A caller's own deadline shorter than the server's long poll ends the poll with
    DEADLINE_EXCEEDED (the SDK's timeout error), not with an empty answer to poll again."""
    from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
    from datetime import timedelta

    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        update = await handle.start_update(
            Counter.add_when_open, 5, id="slow", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        started = time.monotonic()
        with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
            await asyncio.wait_for(update.result(rpc_timeout=timedelta(seconds=1)), 10)
        assert time.monotonic() - started < 5
        await handle.signal(Counter.open_gate)
        assert await asyncio.wait_for(update.result(), 10) == 5
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 5


async def test_polling_an_update_without_a_stage_answers_at_once_with_the_stage_reached(env):
    """PollWorkflowExecutionUpdate without a wait policy does not wait (callers use it to see
    whether an update was admitted); here no worker runs yet, so the update is only admitted."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage as Stage
    from temporalio.api.update.v1 import UpdateRef
    from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest

    client = await env.client()
    handle = await start_counter(env, client)
    update = asyncio.create_task(handle.execute_update(Counter.add, 3, id="early"))
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=handle.id), update_id="early"
        ),
    )

    async def admitted():
        try:
            return await client.workflow_service.poll_workflow_execution_update(request)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return None

    started = time.monotonic()
    answer = await wait_until(admitted, what="the update admitted")
    assert time.monotonic() - started < 5
    assert answer.stage == Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
    async with env.worker(client):
        assert await asyncio.wait_for(update, 10) == 3
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 3


async def test_update_handle_for_an_existing_update_id_and_duplicate_ids_run_once(env):
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        await handle.start_update(
            Counter.add_when_open, 3, id="the-update", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        # Another client, knowing only the ids, gets a handle to the same update.
        other = (await env.client()).get_workflow_handle(handle.id)
        by_id = other.get_update_handle("the-update", result_type=int)
        await handle.signal(Counter.open_gate)
        assert await by_id.result() == 3
        # Sending an update again with the same id returns the first outcome; no second run.
        assert await handle.execute_update(Counter.add_when_open, 3, id="the-update") == 3
        assert await handle.query(Counter.handled_updates) == ["add_when_open 3"]
        await handle.signal(Counter.finish_now)
        assert await handle.result() == 3


async def test_update_to_a_completed_workflow_is_rejected_at_once(env):
    client = await env.client()
    async with env.worker(client):
        handle = await start_counter(env, client)
        await handle.signal(Counter.finish_now)
        await handle.result()
        began = time.monotonic()
        with pytest.raises(RPCError) as rejected:
            await handle.execute_update(Counter.add, 1)
    assert rejected.value.status == RPCStatusCode.NOT_FOUND
    assert "workflow execution already completed" in rejected.value.message
    assert time.monotonic() - began < 5


async def test_update_to_a_workflow_cancelled_before_any_worker_ran_it(env):
    """Cancel requested and a quick update sent while no worker runs the workflow: the first
    workflow task carries both; the update is accepted and completed in that task, then the
    workflow ends cancelled."""
    client = await env.client()
    handle = await start_counter(env, client)
    await handle.cancel()
    update = asyncio.ensure_future(handle.execute_update(Counter.add, 4, id="before-worker"))
    await asyncio.sleep(0.5)
    assert not update.done()
    async with env.worker(client):
        assert await asyncio.wait_for(update, 10) == 4
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    events = event_types(await history_events(handle))
    assert events.index("WORKFLOW_EXECUTION_UPDATE_COMPLETED") < events.index("WORKFLOW_EXECUTION_CANCELED")


@pytest.mark.filterwarnings("ignore:.*update handlers are still running")
async def test_unfinished_update_of_a_workflow_cancelled_before_any_worker_ran_it_fails(env):
    """As above, but the update's handler waits on something that never happens: the workflow
    ends cancelled with the update accepted and unfinished, and the caller gets an error at
    once instead of waiting forever."""
    client = await env.client()
    handle = await start_counter(env, client)
    await handle.cancel()
    update = asyncio.ensure_future(
        handle.execute_update(Counter.add_when_open, 4, id="never-finishes")
    )
    await asyncio.sleep(0.5)
    assert not update.done()
    async with env.worker(client):
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await asyncio.wait_for(update, 10)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "AcceptedUpdateCompletedWorkflow"
    events = event_types(await history_events(handle))
    assert "WORKFLOW_EXECUTION_UPDATE_ACCEPTED" in events
    assert "WORKFLOW_EXECUTION_UPDATE_COMPLETED" not in events
    assert events[-1] == "WORKFLOW_EXECUTION_CANCELED"


async def test_update_sent_during_a_task_that_continues_as_new_is_handled_by_the_next_run(env):
    """The update reaches the server while run 1's workflow task (which continues as new) is in
    progress; it must not be lost with run 1, but delivered to run 2."""
    client = await env.client()
    gate = f"can-{uuid.uuid4().hex}"
    gates.entered(gate)  # create the gate outside the sandbox
    async with env.worker(client):
        handle = await client.start_workflow(
            ContinueAsNewOnSignal.run, args=[1, gate],
            id=env.workflow_id(), task_queue=env.task_queue,
        )
        await handle.signal(ContinueAsNewOnSignal.go_now)
        await wait_until(gates.entered(gate).is_set, what="run 1's task held open")
        update = asyncio.ensure_future(handle.execute_update(ContinueAsNewOnSignal.which_run))
        await asyncio.sleep(0.5)  # the update is at the server while the task is held
        gates.release(gate)
        handled_by = await asyncio.wait_for(update, 15)
        first_run = handle.result_run_id
        assert handled_by != first_run, "handled by run 1, which then continued as new anyway"
        assert await handle.result() == 2
    latest = await client.get_workflow_handle(handle.id).describe()
    assert handled_by == latest.run_id
    run1 = event_types(await history_events(client.get_workflow_handle(handle.id, run_id=first_run)))
    assert run1[-1] == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    assert not [e for e in run1 if e.startswith("WORKFLOW_EXECUTION_UPDATE")], run1
