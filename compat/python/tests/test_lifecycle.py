"""Cancel, terminate and describe."""

from datetime import datetime, timezone

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError, TerminatedError

from suite.support import event_types, history_events, wait_until
from suite.workflows import Inbox, Parent


async def test_cancelling_a_running_workflow_ends_it_cancelled(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await wait_until(lambda: _has_completed_a_task(handle), what="workflow running")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    events = event_types(await history_events(handle))
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in events
    assert events[-1] == "WORKFLOW_EXECUTION_CANCELED"


async def test_cancelling_a_completed_workflow_is_accepted_and_changes_nothing(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await handle.signal(Inbox.close)
        await handle.result()
    await handle.cancel()  # Temporal answers OK
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    assert event_types(await history_events(handle))[-1] == "WORKFLOW_EXECUTION_COMPLETED"


async def test_terminating_a_workflow_ends_it_at_once_with_the_reason(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await handle.terminate(reason="operator says stop")
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, TerminatedError)
    assert cause.message == "operator says stop"
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    [terminated] = (await history_events(handle))[-1:]
    assert terminated.workflow_execution_terminated_event_attributes.reason == "operator says stop"


async def test_describe_a_top_level_workflow(env):
    client = await env.client()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        await wait_until(lambda: _has_completed_a_task(handle), what="workflow running")
        running = await handle.describe()
        await handle.signal(Inbox.close)
        await handle.result()
    closed = await handle.describe()

    assert running.id == handle.id and running.run_id == handle.result_run_id
    assert running.namespace == "default"
    assert running.workflow_type == "Inbox"
    assert running.task_queue == env.task_queue
    assert running.status == WorkflowExecutionStatus.RUNNING
    assert running.start_time >= before and running.execution_time >= running.start_time
    assert running.close_time is None
    assert running.parent_id is None and running.parent_run_id is None
    # A top-level workflow is its own root.
    assert (running.root_id, running.root_run_id) == (handle.id, handle.result_run_id)
    assert running.history_length >= 3

    assert closed.status == WorkflowExecutionStatus.COMPLETED
    assert closed.close_time is not None and closed.close_time >= closed.start_time
    assert closed.history_length == len(await history_events(handle))
    assert (closed.root_id, closed.root_run_id) == (handle.id, handle.result_run_id)


async def test_describe_a_child_workflow_names_its_parent_and_root(env):
    client = await env.client()
    async with env.worker(client):
        parent = await client.start_workflow(
            Parent.run, "ada", id=env.workflow_id(), task_queue=env.task_queue
        )
        await parent.result()
    child = await client.get_workflow_handle(f"{parent.id}-child").describe()
    assert child.workflow_type == "Greeter"
    assert child.status == WorkflowExecutionStatus.COMPLETED
    assert (child.parent_id, child.parent_run_id) == (parent.id, parent.result_run_id)
    assert (child.root_id, child.root_run_id) == (parent.id, parent.result_run_id)
    assert child.task_queue == env.task_queue


async def _has_completed_a_task(handle):
    return "WORKFLOW_TASK_COMPLETED" in event_types(await history_events(handle))


async def test_an_eager_start_hands_the_first_workflow_task_to_the_starting_worker(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run,
            id=env.workflow_id(),
            task_queue=env.task_queue,
            request_eager_start=True,
        )
        # The start response carried the first workflow task (eager_workflow_task).
        assert getattr(handle, "__temporal_eagerly_started") is True
        await handle.signal(Inbox.close)
        await handle.result()
    assert event_types(await history_events(handle))[:4] == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
    ]


async def test_updating_a_workflows_priority_shows_in_describe_and_history(env):
    from google.protobuf.field_mask_pb2 import FieldMask
    from temporalio.api.common.v1 import Priority, WorkflowExecution
    from temporalio.api.workflow.v1 import WorkflowExecutionOptions
    from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionOptionsRequest

    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Inbox.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        # Not during the first workflow task, whose end would hold the event back from history.
        await wait_until(lambda: _has_completed_a_task(handle), what="workflow running")
        answer = await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
                workflow_execution_options=WorkflowExecutionOptions(
                    priority=Priority(priority_key=2)
                ),
                update_mask=FieldMask(paths=["priority"]),
                identity="ops",
            )
        )
        assert answer.workflow_execution_options.priority.priority_key == 2
        described = await handle.describe()
        assert described.raw_description.workflow_execution_info.priority.priority_key == 2
        assert "WORKFLOW_EXECUTION_OPTIONS_UPDATED" in event_types(await history_events(handle))
        await handle.signal(Inbox.close)
        await handle.result()
