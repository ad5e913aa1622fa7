"""Activities of the suite. Stateless ones are plain functions; the ones a test inspects are
methods of an object the test creates and hands to its worker."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError


# --- the money-transfer saga -----------------------------------------------------------------


@dataclass
class Transfer:
    source: str
    target: str
    amount: int


class Bank:
    """A bank whose third step always fails; every call is written to `ledger`."""

    def __init__(self) -> None:
        self.ledger: list[str] = []
        self.failing_step_started_at: list[float] = []

    @activity.defn(name="Withdraw")
    async def withdraw(self, t: Transfer) -> None:
        self.ledger.append(f"withdraw {t.amount} from {t.source}")

    @activity.defn(name="Deposit")
    async def deposit(self, t: Transfer) -> None:
        self.ledger.append(f"deposit {t.amount} to {t.target}")

    @activity.defn(name="StepWithError")
    async def step_with_error(self, t: Transfer) -> None:
        self.failing_step_started_at.append(time.monotonic())
        self.ledger.append(f"step with error, attempt {activity.info().attempt}")
        raise ApplicationError("this step always fails", type="StepFailed")

    @activity.defn(name="UndoDeposit")
    async def undo_deposit(self, t: Transfer) -> None:
        self.ledger.append(f"undo deposit {t.amount} to {t.target}")

    @activity.defn(name="UndoWithdraw")
    async def undo_withdraw(self, t: Transfer) -> None:
        self.ledger.append(f"undo withdraw {t.amount} from {t.source}")


# --- retries, errors, heartbeats -------------------------------------------------------------


@activity.defn
async def fail_until_attempt(succeed_on: int) -> str:
    attempt = activity.info().attempt
    if attempt < succeed_on:
        raise ApplicationError(f"attempt {attempt} fails on purpose", type="Transient")
    return f"succeeded on attempt {attempt}"


@activity.defn
async def refuse(how: str) -> str:
    """Fails in a way that must not be retried: an error flagged non-retryable, or an error
    whose type the retry policy lists as non-retryable."""
    if how == "flag":
        raise ApplicationError("account closed", type="AccountClosed", non_retryable=True)
    raise ApplicationError("insufficient funds", type="InsufficientFunds")


@activity.defn
async def count_with_checkpoint(target: int) -> dict:
    """Counts to `target`, checkpointing progress in heartbeat details. The first attempt
    crashes after checkpointing 3; a retry resumes from the checkpoint."""
    info = activity.info()
    resumed_from = int(info.heartbeat_details[0]) if info.heartbeat_details else 0
    done = resumed_from
    if info.attempt == 1:
        done = 3
        activity.heartbeat(done)
        await asyncio.sleep(0.3)  # let the heartbeat reach the server before failing
        raise ApplicationError("crashed after checkpoint 3", type="Crash")
    while done < target:
        done += 1
    return {"attempt": info.attempt, "resumed_from": resumed_from, "done": done}


@activity.defn
async def heartbeat_once_then_stall(stall_secs: float) -> str:
    activity.heartbeat("alive")
    await asyncio.sleep(stall_secs)
    return "not timed out"


@activity.defn
async def echo(text: str) -> str:
    return text


# --- cancellation ----------------------------------------------------------------------------


class CancellationProbe:
    """Activities that heartbeat until cancelled, then block in their cleanup (heartbeating on)
    until the test calls `release`; `swallow=True` makes them catch the cancellation and return
    normally."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancel_seen = threading.Event()
        self.finished = threading.Event()
        self._release = threading.Event()
        self.heartbeats = 0
        self.cancelled_by_request: bool | None = None

    def release(self) -> None:
        self._release.set()

    @activity.defn(name="HeartbeatUntilCancelledAsync")
    async def run_async(self, swallow: bool) -> str:
        self.started.set()
        try:
            while True:
                activity.heartbeat(self.heartbeats)
                self.heartbeats += 1
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self._note_cancel()
            while not self._release.is_set():  # cleaning up, still heartbeating
                activity.heartbeat(self.heartbeats)
                await asyncio.sleep(0.05)
            if swallow:
                return "swallowed"
            raise
        finally:
            self.finished.set()

    @activity.defn(name="HeartbeatUntilCancelledSync")
    def run_sync(self, swallow: bool) -> str:
        self.started.set()
        try:
            while True:
                activity.heartbeat(self.heartbeats)
                self.heartbeats += 1
                time.sleep(0.1)
        except CancelledError:
            self._note_cancel()
            while not self._release.wait(0.05):  # cleaning up, still heartbeating
                activity.heartbeat(self.heartbeats)
            if swallow:
                return "swallowed"
            raise
        finally:
            self.finished.set()

    def _note_cancel(self) -> None:
        details = activity.cancellation_details()
        self.cancelled_by_request = bool(details and details.cancel_requested)
        self.cancel_seen.set()


# --- worker restart --------------------------------------------------------------------------


class Restartable:
    """The first attempt runs until its worker shuts down; a later attempt finishes at once."""

    def __init__(self) -> None:
        self.first_attempt_running = threading.Event()
        self.attempts: list[int] = []

    @activity.defn(name="RunsAcrossWorkers")
    async def run(self) -> str:
        attempt = activity.info().attempt
        self.attempts.append(attempt)
        if attempt == 1:
            self.first_attempt_running.set()
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        return f"finished on attempt {attempt}"


# --- operator actions on activities ----------------------------------------------------------

# Per key: how many attempts ran, and whether the next attempt may succeed.
operated_calls: dict[str, int] = {}
operated_released: set[str] = set()


@activity.defn
async def fails_until_released(key: str) -> int:
    """Fails every attempt until the test releases `key`; then returns the attempt number."""
    operated_calls[key] = operated_calls.get(key, 0) + 1
    if key in operated_released:
        return activity.info().attempt
    raise ApplicationError(f"not released yet (attempt {activity.info().attempt})")


# --- task queue rate limits -------------------------------------------------------------------


@activity.defn
async def stamp() -> float:
    """When this attempt started (the worker's wall clock)."""
    return time.time()


# --- completed from outside the worker -------------------------------------------------------


class Outside:
    """An activity that hands its task token out and is completed by someone else."""

    def __init__(self) -> None:
        self.tokens: asyncio.Queue[bytes] = asyncio.Queue()

    @activity.defn(name="completed_outside")
    async def completed_outside(self) -> str:
        await self.tokens.put(activity.info().task_token)
        activity.raise_complete_async()
