"""A client interceptor and a worker interceptor that observe calls and carry a `trace` header
from the client, through the server, into the workflow and on to its activities."""

from __future__ import annotations

import threading
from typing import Any, Mapping

import temporalio.converter
from temporalio import activity, client, workflow
from temporalio.api.common.v1 import Payload
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

HEADER = "trace"
_converter = temporalio.converter.default().payload_converter


def trace_payload(value: str) -> Payload:
    return _converter.to_payloads([value])[0]


def trace_of(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(HEADER)
    return _converter.from_payloads([payload])[0] if payload else None


class TracingClientInterceptor(client.Interceptor):
    """Adds `trace=<trace_id>` to every start, signal and query; records each call."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.calls: list[str] = []

    def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
        return _ClientOutbound(next, self)


class _ClientOutbound(client.OutboundInterceptor):
    def __init__(self, next: client.OutboundInterceptor, root: TracingClientInterceptor) -> None:
        super().__init__(next)
        self.root = root

    def _headers(self, headers: Mapping[str, Payload]) -> dict[str, Payload]:
        return {**headers, HEADER: trace_payload(self.root.trace_id)}

    async def start_workflow(self, input: client.StartWorkflowInput) -> Any:
        self.root.calls.append(f"start_workflow {input.workflow}")
        input.headers = self._headers(input.headers)
        return await super().start_workflow(input)

    async def signal_workflow(self, input: client.SignalWorkflowInput) -> None:
        self.root.calls.append(f"signal_workflow {input.signal}")
        input.headers = self._headers(input.headers)
        return await super().signal_workflow(input)

    async def query_workflow(self, input: client.QueryWorkflowInput) -> Any:
        self.root.calls.append(f"query_workflow {input.query}")
        input.headers = self._headers(input.headers)
        return await super().query_workflow(input)


class ObservingWorkerInterceptor(Interceptor):
    """Records, outside the workflow sandbox, what the worker saw: each workflow start, signal
    and query with its trace header (not during replay), and each activity with its header. The
    workflow side copies the workflow's trace header onto the activities it starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str, str | None]] = []

    def record(self, what: str, headers: Mapping[str, Payload]) -> None:
        with self._lock:
            self.seen.append((what, trace_of(headers)))

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next, self)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        root = self

        class Inbound(_WorkflowInbound):
            observer = root

        return Inbound


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, root: ObservingWorkerInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self.root.record(f"activity {activity.info().activity_type}", input.headers)
        return await super().execute_activity(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    observer: ObservingWorkerInterceptor
    trace: Payload | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    def _record(self, what: str, headers: Mapping[str, Payload], replay_too: bool = False) -> None:
        if replay_too or not workflow.unsafe.is_replaying():
            with workflow.unsafe.sandbox_unrestricted():
                self.observer.record(what, headers)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self.trace = input.headers.get(HEADER)
        self._record(f"workflow {workflow.info().workflow_type}", input.headers)
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        self._record(f"signal {input.signal}", input.headers)
        return await super().handle_signal(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        # A query handler always runs with is_replaying() true; it is never a replay.
        self._record(f"query {input.query}", input.headers, replay_too=True)
        return await super().handle_query(input)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, inbound: _WorkflowInbound) -> None:
        super().__init__(next)
        self.inbound = inbound

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle:
        if self.inbound.trace is not None:
            input.headers = {**input.headers, HEADER: self.inbound.trace}
        return super().start_activity(input)
