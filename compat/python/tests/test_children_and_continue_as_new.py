"""Child workflows (result and failure) and continue-as-new chains."""

from temporalio.client import WorkflowExecutionStatus

from suite.support import event_types, history_events
from suite.workflows import Countdown, Parent


async def test_child_workflow_result_reaches_the_parent(env):
    client = await env.client()
    async with env.worker(client):
        result = await client.execute_workflow(
            Parent.run, "ada", id=env.workflow_id(), task_queue=env.task_queue
        )
    assert result == {"result": "hello, ada"}


async def test_child_workflow_failure_reaches_the_parent(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Parent.run, "", id=env.workflow_id(), task_queue=env.task_queue
        )
        failure = await handle.result()
    assert failure["error"] == "ChildWorkflowError"
    assert failure["cause"] == "ApplicationError"
    assert (failure["cause_type"], failure["cause_message"]) == ("NoName", "no name given")
    assert "CHILD_WORKFLOW_EXECUTION_FAILED" in event_types(await history_events(handle))


async def test_continue_as_new_chain_ends_with_the_last_runs_result(env):
    client = await env.client()
    async with env.worker(client):
        handle = await client.start_workflow(
            Countdown.run, 3, id=env.workflow_id(), task_queue=env.task_queue
        )
        assert await handle.result() == "liftoff after 4 runs"  # follows the chain of runs
    first = await client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    latest = await client.get_workflow_handle(handle.id).describe()
    assert latest.status == WorkflowExecutionStatus.COMPLETED
    assert latest.run_id != first.run_id
    # Each run's history ends by naming the next run; the last one completes.
    run_id, runs = handle.result_run_id, 0
    while True:
        runs += 1
        events = await history_events(client.get_workflow_handle(handle.id, run_id=run_id))
        last = events[-1]
        if event_types([last]) == ["WORKFLOW_EXECUTION_COMPLETED"]:
            break
        assert event_types([last]) == ["WORKFLOW_EXECUTION_CONTINUED_AS_NEW"]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    assert runs == 4 and run_id == latest.run_id
