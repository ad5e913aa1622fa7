"""Helpers shared by the tests: a client, a worker on a task queue of the test's own, unique ids,
bounded waits and history lookups."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from suite import workflows

NAMESPACE = "default"


@dataclass
class Env:
    address: str
    test_name: str
    _suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _executors: list[concurrent.futures.Executor] = field(default_factory=list)

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)

    @property
    def task_queue(self) -> str:
        return f"tq-{self.test_name}-{self._suffix}"

    def workflow_id(self, name: str = "wf") -> str:
        return f"{self.test_name}-{name}-{self._suffix}"

    async def client(self, **kwargs: Any) -> Client:
        return await Client.connect(self.address, namespace=NAMESPACE, **kwargs)

    def worker(
        self,
        client: Client,
        *,
        workflows: Sequence[type] = workflows.ALL,
        activities: Sequence[Callable] = (),
        task_queue: str | None = None,
        **kwargs: Any,
    ) -> Worker:
        """A worker on this test's task queue; sync activities get a thread pool."""
        if any(not asyncio.iscoroutinefunction(a) for a in activities):
            if "activity_executor" not in kwargs:
                kwargs["activity_executor"] = concurrent.futures.ThreadPoolExecutor(max_workers=8)
                self._executors.append(kwargs["activity_executor"])
        return Worker(
            client,
            task_queue=task_queue or self.task_queue,
            workflows=list(workflows),
            activities=list(activities),
            **kwargs,
        )


async def wait_until(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value; fail after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(interval)


async def history_events(handle: WorkflowHandle) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


def event_types(events: Sequence[HistoryEvent]) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


async def has_event(handle: WorkflowHandle, name: str) -> bool:
    """Whether the workflow's history has an event of type `name` (e.g. "TIMER_FIRED")."""
    return name in event_types(await history_events(handle))
