"""Nexus, as a Python user writes it: a service handler on one worker (an operation answered at
once, and one run by a workflow), a caller workflow that calls it through an endpoint, and the
endpoint created with the OperatorService."""

from __future__ import annotations

import uuid
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
import pytest
from temporalio import nexus, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import NexusOperationError

from suite.workflows import Greeter


@nexusrpc.service
class GreetingService:
    say_hello: nexusrpc.Operation[str, str]
    greet_by_workflow: nexusrpc.Operation[str, str]


@nexusrpc.handler.service_handler(service=GreetingService)
class GreetingHandler:
    @nexusrpc.handler.sync_operation
    async def say_hello(self, ctx: nexusrpc.handler.StartOperationContext, name: str) -> str:
        if name == "refuse":
            raise nexusrpc.OperationError("refused by the handler", state=nexusrpc.OperationErrorState.FAILED)
        return f"Hello, {name}!"

    @nexus.workflow_run_operation
    async def greet_by_workflow(self, ctx: nexus.WorkflowRunOperationContext, name: str) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(Greeter.run, name, id=f"greet-{uuid.uuid4().hex[:8]}")


@workflow.defn
class NexusCaller:
    @workflow.run
    async def run(self, endpoint: str, operation: str, name: str) -> str:
        client = workflow.create_nexus_client(service=GreetingService, endpoint=endpoint)
        op = GreetingService.say_hello if operation == "say_hello" else GreetingService.greet_by_workflow
        return await client.execute_operation(op, name, schedule_to_close_timeout=timedelta(seconds=30))


async def _endpoint(client, task_queue: str) -> str:
    name = f"py-{uuid.uuid4().hex[:12]}"
    target = EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))
    await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(spec=EndpointSpec(name=name, target=target))
    )
    return name


async def _nexus_events(handle) -> list[str]:
    types = []
    async for event in handle.fetch_history_events():
        name = EventType.Name(event.event_type)
        if "NEXUS" in name:
            types.append(name.removeprefix("EVENT_TYPE_"))
    return types


async def test_a_sync_and_a_workflow_run_operation_reach_the_caller(env):
    client = await env.client()
    endpoint = await _endpoint(client, env.task_queue)
    async with env.worker(
        client, workflows=[NexusCaller, Greeter], nexus_service_handlers=[GreetingHandler()]
    ):
        sync = await client.execute_workflow(
            NexusCaller.run, args=[endpoint, "say_hello", "world"], id=env.workflow_id("sync"), task_queue=env.task_queue
        )
        assert sync == "Hello, world!"
        handle = await client.start_workflow(
            NexusCaller.run,
            args=[endpoint, "greet_by_workflow", "async"],
            id=env.workflow_id("async"),
            task_queue=env.task_queue,
        )
        assert await handle.result() == "hello, async"
        assert await _nexus_events(handle) == [
            "NEXUS_OPERATION_SCHEDULED",
            "NEXUS_OPERATION_STARTED",
            "NEXUS_OPERATION_COMPLETED",
        ]


async def test_an_operation_the_handler_refuses_fails_the_caller_with_its_message(env):
    client = await env.client()
    endpoint = await _endpoint(client, env.task_queue)
    async with env.worker(client, workflows=[NexusCaller], nexus_service_handlers=[GreetingHandler()]):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                NexusCaller.run, args=[endpoint, "say_hello", "refuse"], id=env.workflow_id(), task_queue=env.task_queue
            )
        cause = failed.value.cause
        assert isinstance(cause, NexusOperationError)
        assert cause.endpoint == endpoint and cause.operation == "say_hello"
        messages = []
        error = cause
        while error is not None:
            messages.append(str(error))
            error = error.__cause__
        assert any("refused by the handler" in m for m in messages), messages
