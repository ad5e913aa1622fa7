"""The seed's money-transfer saga, as a Python SDK user writes it."""

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from suite.activities import Bank, Transfer
from suite.support import event_types, history_events
from suite.workflows import TransferMoney


async def test_failed_transfer_is_compensated_in_reverse_order_once_each(env):
    client = await env.client()
    bank = Bank()
    transfer = Transfer(source="alice", target="bob", amount=100)
    async with env.worker(client, activities=[bank.withdraw, bank.deposit, bank.step_with_error,
                                              bank.undo_deposit, bank.undo_withdraw]):
        handle = await client.start_workflow(
            TransferMoney.run, transfer, id=env.workflow_id(), task_queue=env.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    # The workflow fails with its own error, caused by the failing step's last attempt.
    error = failed.value.cause
    assert isinstance(error, ApplicationError)
    assert error.type == "TransferFailed"
    assert error.message == "transfer of 100 failed; compensated 2 step(s)"
    step = error.cause
    assert isinstance(step, ActivityError)
    assert step.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(step.cause, ApplicationError)
    assert (step.cause.type, step.cause.message) == ("StepFailed", "this step always fails")

    assert bank.ledger == [
        "withdraw 100 from alice",
        "deposit 100 to bob",
        "step with error, attempt 1",
        "step with error, attempt 2",
        "step with error, attempt 3",
        "step with error, attempt 4",
        "undo deposit 100 to bob",
        "undo withdraw 100 from alice",
    ]

    # Backoff 0.5 s, then 2 s capped to the 1 s maximum interval, then 1 s again (uncapped: 8 s).
    # Temporal's timers may fire up to ~1 s late, hence the loose upper bound.
    t = bank.failing_step_started_at
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95 and gaps[2] >= 0.95, f"retried too early: {gaps}"
    assert gaps[2] < 4.0, f"maximum interval ignored: {gaps}"

    # One retried activity is one scheduled event, whatever its attempts.
    events = await history_events(handle)
    assert event_types(events).count("ACTIVITY_TASK_SCHEDULED") == 5
    assert event_types(events)[-1] == "WORKFLOW_EXECUTION_FAILED"
