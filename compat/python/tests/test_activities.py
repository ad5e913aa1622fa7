"""Activities: retries, non-retryable errors, heartbeats, heartbeat timeouts."""

import pytest

from suite import activities
from suite.support import event_types, history_events
from suite.workflows import HeartbeatTimesOut, NonRetryable, ResumeFromHeartbeat, RetryUntilSuccess


async def test_activity_is_retried_until_it_succeeds(env):
    client = await env.client()
    async with env.worker(client, activities=[activities.fail_until_attempt]):
        result = await client.execute_workflow(
            RetryUntilSuccess.run, 3, id=env.workflow_id(), task_queue=env.task_queue
        )
    assert result == "succeeded on attempt 3"


@pytest.mark.parametrize("how", ["flag", "policy"])
async def test_non_retryable_error_fails_the_activity_on_its_first_attempt(env, how):
    """`non_retryable=True` on the error, or its type listed in the retry policy's
    non_retryable_error_types: either way there is no second attempt."""
    client = await env.client()
    async with env.worker(client, activities=[activities.refuse]):
        handle = await client.start_workflow(
            NonRetryable.run, how, id=env.workflow_id(), task_queue=env.task_queue
        )
        failure = await handle.result()
    assert failure["error"] == "ActivityError"
    assert failure["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert failure["cause"] == "ApplicationError"
    if how == "flag":
        assert (failure["cause_type"], failure["non_retryable"]) == ("AccountClosed", True)
    else:
        assert (failure["cause_type"], failure["non_retryable"]) == ("InsufficientFunds", False)
    events = await history_events(handle)
    [started] = [e for e in events if event_types([e]) == ["ACTIVITY_TASK_STARTED"]]
    assert started.activity_task_started_event_attributes.attempt == 1


async def test_heartbeat_details_survive_a_retry(env):
    client = await env.client()
    async with env.worker(client, activities=[activities.count_with_checkpoint]):
        result = await client.execute_workflow(
            ResumeFromHeartbeat.run, 10, id=env.workflow_id(), task_queue=env.task_queue
        )
    assert result == {"attempt": 2, "resumed_from": 3, "done": 10}


async def test_activity_that_stops_heartbeating_times_out(env):
    client = await env.client()
    async with env.worker(client, activities=[activities.heartbeat_once_then_stall]):
        handle = await client.start_workflow(
            HeartbeatTimesOut.run, id=env.workflow_id(), task_queue=env.task_queue
        )
        failure = await handle.result()
    assert failure["error"] == "ActivityError"
    assert failure["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"  # maximum_attempts=1
    assert (failure["cause"], failure["cause_type"]) == ("TimeoutError", "HEARTBEAT")
    events = await history_events(handle)
    [timed_out] = [e for e in events if event_types([e]) == ["ACTIVITY_TASK_TIMED_OUT"]]
    details = timed_out.activity_task_timed_out_event_attributes.failure.timeout_failure_info
    assert details.last_heartbeat_details.payloads, "last heartbeat details missing"
