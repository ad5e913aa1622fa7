"""Operator actions on a pending activity, as `temporal activity pause|unpause|reset|
update-options` send them: PauseActivity, UnpauseActivity, ResetActivity, UpdateActivityOptions
(the Python SDK exposes them through `client.workflow_service`)."""

import asyncio

from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy, WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import (
    PauseActivityRequest,
    ResetActivityRequest,
    UnpauseActivityRequest,
    UpdateActivityOptionsRequest,
)

import suite.activities as activities
from suite.support import NAMESPACE, wait_until
from suite.workflows import OperatedActivity


async def _pending(handle):
    described = await handle.describe()
    pending = described.raw_description.pending_activities
    return pending[0] if pending else None


async def test_a_paused_activity_stops_retrying_until_unpaused_with_its_attempts_reset(env):
    client = await env.client()
    key = env.workflow_id("paused")
    execution = WorkflowExecution(workflow_id=key)
    async with env.worker(client, activities=[activities.fails_until_released]):
        handle = await client.start_workflow(
            OperatedActivity.run, args=[key, 300, 0], id=key, task_queue=env.task_queue
        )
        await wait_until(lambda: activities.operated_calls.get(key, 0) >= 2, what="two attempts")
        await client.workflow_service.pause_activity(
            PauseActivityRequest(
                namespace=NAMESPACE, execution=execution, id="operated", identity="ops", reason="looking"
            )
        )
        paused = await wait_until(
            lambda: _paused(handle), what="the activity paused between attempts"
        )
        assert paused.paused and paused.pause_info.manual.reason == "looking"
        calls = activities.operated_calls[key]
        await asyncio.sleep(1.5)  # five retry intervals
        assert activities.operated_calls[key] == calls, "a paused activity ran another attempt"

        activities.operated_released.add(key)
        await client.workflow_service.unpause_activity(
            UnpauseActivityRequest(
                namespace=NAMESPACE, execution=execution, id="operated", reset_attempts=True
            )
        )
        assert await handle.result() == {"attempt": 1}


async def _paused(handle):
    pending = await _pending(handle)
    if pending and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED:
        return pending
    return None


async def test_a_reset_activity_skips_its_backoff_and_starts_again_from_attempt_one(env):
    client = await env.client()
    key = env.workflow_id("reset")
    async with env.worker(client, activities=[activities.fails_until_released]):
        handle = await client.start_workflow(
            OperatedActivity.run, args=[key, 60_000, 0], id=key, task_queue=env.task_queue
        )
        # The first attempt fails; the second waits a minute.
        pending = await wait_until(
            lambda: _in_backoff(handle), what="the activity waiting for its second attempt"
        )
        assert pending.attempt == 2
        activities.operated_released.add(key)
        await client.workflow_service.reset_activity(
            ResetActivityRequest(
                namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=key), id="operated"
            )
        )
        assert await asyncio.wait_for(handle.result(), 10) == {"attempt": 1}
    assert activities.operated_calls[key] == 2


async def _in_backoff(handle):
    pending = await _pending(handle)
    if pending and pending.attempt >= 2 and pending.HasField("next_attempt_schedule_time"):
        return pending
    return None


async def test_updated_options_take_effect_on_the_next_attempt_and_show_in_describe(env):
    client = await env.client()
    key = env.workflow_id("options")
    execution = WorkflowExecution(workflow_id=key)
    async with env.worker(client, activities=[activities.fails_until_released]):
        handle = await client.start_workflow(
            OperatedActivity.run, args=[key, 1_000, 0], id=key, task_queue=env.task_queue
        )
        await wait_until(lambda: activities.operated_calls.get(key, 0) >= 1, what="a first attempt")
        answer = await client.workflow_service.update_activity_options(
            UpdateActivityOptionsRequest(
                namespace=NAMESPACE,
                execution=execution,
                id="operated",
                activity_options=ActivityOptions(
                    retry_policy=RetryPolicy(maximum_attempts=2),
                    start_to_close_timeout=Duration(seconds=7),
                ),
                update_mask=FieldMask(
                    paths=["retry_policy.maximum_attempts", "start_to_close_timeout"]
                ),
            )
        )
        assert answer.activity_options.retry_policy.maximum_attempts == 2
        assert answer.activity_options.start_to_close_timeout.seconds == 7
        # Unchanged fields keep their values.
        assert answer.activity_options.retry_policy.initial_interval.seconds == 1
        pending = await _pending(handle)
        if pending is not None:
            assert pending.activity_options.retry_policy.maximum_attempts == 2
        ended = await asyncio.wait_for(handle.result(), 15)
    assert ended["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"
    assert activities.operated_calls[key] == 2
