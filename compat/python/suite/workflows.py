"""Workflows of the suite (their own module, so the worker's sandbox can import them)."""

from __future__ import annotations

import asyncio
import enum
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    # Import submodules by full name: `from suite import gates` would bypass the pass-through.
    import suite.activities as activities
    import suite.gates as gates
    from suite.activities import Bank, Restartable, Transfer

ALL: list[type] = []


def registered(cls: type) -> type:
    ALL.append(cls)
    return cls


def describe_failure(err: BaseException) -> dict:
    """What a workflow reports about a failed activity or child."""
    cause = err.__cause__
    cause_type = getattr(cause, "type", None)
    if isinstance(cause_type, enum.Enum):
        cause_type = cause_type.name
    return {
        "error": type(err).__name__,
        "retry_state": err.retry_state.name if getattr(err, "retry_state", None) else None,
        "cause": type(cause).__name__ if cause else None,
        "cause_type": cause_type,
        "cause_message": getattr(cause, "message", str(cause)) if cause else None,
        "non_retryable": getattr(cause, "non_retryable", None),
    }


# --- saga ------------------------------------------------------------------------------------

# Uncapped, the failing step's retries would wait 0.5 s, 2 s, 8 s; the maximum interval caps
# them to 0.5 s, 1 s, 1 s.
SAGA_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=4.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=4,
)


@registered
@workflow.defn(name="TransferMoney")
class TransferMoney:
    @workflow.run
    async def run(self, t: Transfer) -> str:
        options = dict(start_to_close_timeout=timedelta(seconds=5), retry_policy=SAGA_RETRY)
        compensations = []
        try:
            await workflow.execute_activity_method(Bank.withdraw, t, **options)
            compensations.append(Bank.undo_withdraw)
            await workflow.execute_activity_method(Bank.deposit, t, **options)
            compensations.append(Bank.undo_deposit)
            await workflow.execute_activity_method(Bank.step_with_error, t, **options)
        except ActivityError as err:
            for compensation in reversed(compensations):
                await workflow.execute_activity_method(compensation, t, **options)
            raise ApplicationError(
                f"transfer of {t.amount} failed; compensated {len(compensations)} step(s)",
                type="TransferFailed",
            ) from err
        return f"transferred {t.amount} from {t.source} to {t.target}"


# --- activities: retries, errors, heartbeats, cancellation -----------------------------------


@registered
@workflow.defn
class RetryUntilSuccess:
    @workflow.run
    async def run(self, succeed_on: int) -> str:
        return await workflow.execute_activity(
            activities.fail_until_attempt,
            succeed_on,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=10),
        )


@registered
@workflow.defn
class NonRetryable:
    @workflow.run
    async def run(self, how: str) -> dict:
        try:
            await workflow.execute_activity(
                activities.refuse,
                how,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100),
                    maximum_attempts=5,
                    non_retryable_error_types=["InsufficientFunds"],
                ),
            )
        except ActivityError as err:
            return describe_failure(err)
        return {"error": None}


@registered
@workflow.defn
class ResumeFromHeartbeat:
    @workflow.run
    async def run(self, target: int) -> dict:
        return await workflow.execute_activity(
            activities.count_with_checkpoint,
            target,
            start_to_close_timeout=timedelta(seconds=10),
            heartbeat_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3),
        )


@registered
@workflow.defn
class HeartbeatTimesOut:
    @workflow.run
    async def run(self) -> dict:
        try:
            await workflow.execute_activity(
                activities.heartbeat_once_then_stall,
                20.0,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            return describe_failure(err)
        return {"error": None}


@registered
@workflow.defn
class CancelActivity:
    """Starts a heartbeating activity, cancels it when signalled `cancel_activity`, records the
    outcome (query `outcome`), and completes when signalled `finish`."""

    def __init__(self) -> None:
        self.cancel_requested = False
        self.finish = False
        self.outcome: str | None = None

    @workflow.run
    async def run(self, sync: bool, cancellation_type: str, swallow: bool) -> str:
        handle = workflow.start_activity(
            "HeartbeatUntilCancelledSync" if sync else "HeartbeatUntilCancelledAsync",
            swallow,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=workflow.ActivityCancellationType[cancellation_type],
        )
        await workflow.wait_condition(lambda: self.cancel_requested)
        handle.cancel()
        try:
            self.outcome = f"completed: {await handle}"
        except ActivityError as err:
            self.outcome = f"cancelled: {type(err.__cause__).__name__}"
        await workflow.wait_condition(lambda: self.finish)
        return self.outcome

    @workflow.signal
    def cancel_activity(self) -> None:
        self.cancel_requested = True

    @workflow.signal
    def finish_now(self) -> None:
        self.finish = True

    @workflow.query
    def get_outcome(self) -> str | None:
        return self.outcome


# --- timers ----------------------------------------------------------------------------------


@registered
@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> float:
        started = workflow.now()
        await asyncio.sleep(seconds)
        return (workflow.now() - started).total_seconds()


@registered
@workflow.defn
class WaitForApproval:
    def __init__(self) -> None:
        self.approved = False

    @workflow.run
    async def run(self, timeout_secs: float) -> str:
        try:
            await workflow.wait_condition(lambda: self.approved, timeout=timeout_secs)
            return "approved"
        except asyncio.TimeoutError:
            return "timed out"

    @workflow.signal
    def approve(self) -> None:
        self.approved = True


# --- signals and queries ---------------------------------------------------------------------


@registered
@workflow.defn
class Inbox:
    """Collects `add` signals until `close`; records when its first task ran."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.closed = False
        self.first_task_at: str | None = None

    @workflow.run
    async def run(self) -> dict:
        self.first_task_at = workflow.now().isoformat()
        await workflow.wait_condition(lambda: self.closed)
        return {"items": self.items, "first_task_at": self.first_task_at}

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.query
    def peek(self) -> list[str]:
        return self.items

    @workflow.query
    def broken(self) -> str:
        raise ApplicationError("this query always fails", type="QueryBroken")


# --- updates ---------------------------------------------------------------------------------


@registered
@workflow.defn
class Counter:
    """A counter changed by updates; completes when signalled `finish`."""

    def __init__(self) -> None:
        self.value = 0
        self.handled: list[str] = []
        self.gate_open = False
        self.finish = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finish and workflow.all_handlers_finished())
        return self.value

    @workflow.update
    def add(self, amount: int) -> int:
        self.handled.append(f"add {amount}")
        self.value += amount
        return self.value

    @add.validator
    def validate_add(self, amount: int) -> None:
        if amount <= 0:
            raise ApplicationError(f"amount must be positive, got {amount}", type="InvalidAmount")

    @workflow.update
    def fail(self, reason: str) -> int:
        self.handled.append(f"fail {reason}")
        raise ApplicationError(f"update failed: {reason}", type="UpdateFailed")

    @workflow.update
    async def add_when_open(self, amount: int) -> int:
        self.handled.append(f"add_when_open {amount}")
        await workflow.wait_condition(lambda: self.gate_open)
        self.value += amount
        return self.value

    @workflow.signal
    def open_gate(self) -> None:
        self.gate_open = True

    @workflow.signal
    def finish_now(self) -> None:
        self.finish = True

    @workflow.query
    def handled_updates(self) -> list[str]:
        return self.handled


@registered
@workflow.defn
class ContinueAsNewOnSignal:
    """Run 1 waits for signal `go`, then (after holding its workflow task open at the test's
    gate) continues as new; run 2 waits for one `which_run` update and returns."""

    def __init__(self) -> None:
        self.go = False
        self.updates = 0

    @workflow.run
    async def run(self, run_no: int, gate: str) -> int:
        if run_no == 1:
            await workflow.wait_condition(lambda: self.go)
            with workflow.unsafe.sandbox_unrestricted():
                gates.hold(gate)
            workflow.continue_as_new(args=[2, gate])
        await workflow.wait_condition(lambda: self.updates > 0)
        return run_no

    @workflow.signal
    def go_now(self) -> None:
        self.go = True

    @workflow.update
    def which_run(self) -> str:
        self.updates += 1
        return workflow.info().run_id


# --- children and continue-as-new ------------------------------------------------------------


@registered
@workflow.defn
class Greeter:
    @workflow.run
    async def run(self, name: str) -> str:
        if name == "":
            raise ApplicationError("no name given", type="NoName")
        return f"hello, {name}"


@registered
@workflow.defn
class Parent:
    @workflow.run
    async def run(self, name: str) -> dict:
        try:
            result = await workflow.execute_child_workflow(
                Greeter.run, name, id=f"{workflow.info().workflow_id}-child"
            )
            return {"result": result}
        except ChildWorkflowError as err:
            return describe_failure(err)


@registered
@workflow.defn
class Countdown:
    @workflow.run
    async def run(self, remaining: int, seen_runs: int = 0) -> str:
        if remaining > 0:
            workflow.continue_as_new(args=[remaining - 1, seen_runs + 1])
        return f"liftoff after {seen_runs + 1} runs"


@registered
@workflow.defn
class CronTick:
    @workflow.run
    async def run(self) -> str:
        return workflow.info().run_id


# --- visibility ------------------------------------------------------------------------------

CUSTOMER_ID = SearchAttributeKey.for_keyword("CompatCustomerId")
ORDER_COUNT = SearchAttributeKey.for_int("CompatOrderCount")


@registered
@workflow.defn
class ReadsItsAttributes:
    def __init__(self) -> None:
        self.finish = False

    @workflow.run
    async def run(self) -> dict:
        attrs = workflow.info().typed_search_attributes
        result = {
            "memo_owner": workflow.memo_value("owner", default=None),
            "customer": attrs.get(CUSTOMER_ID),
            "orders": attrs.get(ORDER_COUNT),
        }
        await workflow.wait_condition(lambda: self.finish)
        return result

    @workflow.signal
    def finish_now(self) -> None:
        self.finish = True


@registered
@workflow.defn
class Memoized:
    @workflow.run
    async def run(self) -> dict:
        return {"owner": workflow.memo_value("owner", default=None), "all": workflow.memo()}


@registered
@workflow.defn
class Upserts:
    """Upserts a search attribute and memo keys, removes some again, then waits to finish."""

    def __init__(self) -> None:
        self.finish = False

    @workflow.run
    async def run(self, customer: str) -> dict:
        workflow.upsert_search_attributes([CUSTOMER_ID.value_set(customer), ORDER_COUNT.value_set(3)])
        workflow.upsert_memo({"kept": "yes", "dropped": "soon"})
        await workflow.sleep(0.05)
        workflow.upsert_search_attributes([ORDER_COUNT.value_unset()])
        workflow.upsert_memo({"dropped": None})
        await workflow.wait_condition(lambda: self.finish)
        return {"memo": workflow.memo(), "orders": workflow.info().typed_search_attributes.get(ORDER_COUNT)}

    @workflow.signal
    def finish_now(self) -> None:
        self.finish = True


# --- interceptors, codecs, workers -----------------------------------------------------------


@registered
@workflow.defn
class Relay:
    """Waits for a `say` signal, passes its text through an activity, and returns it."""

    def __init__(self) -> None:
        self.said: list[str] = []

    @workflow.run
    async def run(self, greeting: str) -> str:
        await workflow.wait_condition(lambda: bool(self.said))
        echoed = await workflow.execute_activity(
            activities.echo, self.said[0], start_to_close_timeout=timedelta(seconds=5)
        )
        return f"{greeting}, {echoed}"

    @workflow.signal
    def say(self, text: str) -> None:
        self.said.append(text)

    @workflow.query
    def heard(self) -> list[str]:
        return self.said


@registered
@workflow.defn
class SurvivesWorkerRestart:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_activity_method(
            Restartable.run,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )

    @workflow.signal
    def go_now(self) -> None:
        self.go = True


# --- operator actions on activities (pause, unpause, reset, update options) ------------------


@registered
@workflow.defn
class OperatedActivity:
    """Runs `activities.fails_until_released` under id "operated" and reports how it ended."""

    @workflow.run
    async def run(self, key: str, initial_interval_ms: int, maximum_attempts: int) -> dict:
        try:
            attempt = await workflow.execute_activity(
                activities.fails_until_released,
                key,
                activity_id="operated",
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=initial_interval_ms),
                    backoff_coefficient=1.0,
                    maximum_attempts=maximum_attempts,
                ),
            )
            return {"attempt": attempt}
        except ActivityError as err:
            return describe_failure(err)


@registered
@workflow.defn
class ParallelStamps:
    """Runs `n` activities at once; returns when each started."""

    @workflow.run
    async def run(self, n: int) -> list[float]:
        return list(
            await asyncio.gather(
                *(workflow.execute_activity(activities.stamp, start_to_close_timeout=timedelta(seconds=30)) for _ in range(n))
            )
        )


@registered
@workflow.defn
class Accumulate:
    """Returns the previous scheduled run's result plus one (0 + 1 for the first)."""

    @workflow.run
    async def run(self) -> int:
        last = workflow.get_last_completion_result(int) if workflow.has_last_completion_result() else 0
        return (last or 0) + 1


@registered
@workflow.defn
class CompletedOutside:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "completed_outside", start_to_close_timeout=timedelta(seconds=60), result_type=str
        )
