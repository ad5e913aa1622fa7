"""Interceptors observing calls on both sides, and a payload codec, end to end."""

import dataclasses

import temporalio.converter
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload

from suite import activities
from suite.codec import ENCODING, ZlibCodec
from suite.interceptors import ObservingWorkerInterceptor, TracingClientInterceptor
from suite.support import history_events
from suite.workflows import Relay


async def test_client_and_worker_interceptors_see_calls_and_headers_cross_the_server(env):
    tracing = TracingClientInterceptor(trace_id="trace-123")
    observer = ObservingWorkerInterceptor()
    client = await env.client(interceptors=[tracing])
    async with env.worker(client, activities=[activities.echo], interceptors=[observer]):
        handle = await client.start_workflow(
            Relay.run, "hello", id=env.workflow_id(), task_queue=env.task_queue
        )
        assert await handle.query(Relay.heard) == []
        await handle.signal(Relay.say, "world")
        assert await handle.result() == "hello, world"
    assert tracing.calls == ["start_workflow Relay", "query_workflow heard", "signal_workflow say"]
    # Every header the client set came out on the worker's side, and the workflow's header was
    # carried on to its activity.
    assert sorted(observer.seen) == [
        ("activity echo", "trace-123"),
        ("query heard", "trace-123"),
        ("signal say", "trace-123"),
        ("workflow Relay", "trace-123"),
    ]


async def test_payload_codec_round_trips_and_the_server_sees_only_encoded_payloads(env):
    converter = dataclasses.replace(temporalio.converter.default(), payload_codec=ZlibCodec())
    client = await env.client(data_converter=converter)
    secret = "the quick brown fox " * 20
    async with env.worker(client, activities=[activities.echo]):
        handle = await client.start_workflow(
            Relay.run, "hi", id=env.workflow_id(), task_queue=env.task_queue
        )
        await handle.signal(Relay.say, secret)
        assert await handle.result() == f"hi, {secret}"
        assert await handle.query(Relay.heard) == [secret]

    # Read the history with a plain client: every payload the server stored is compressed.
    plain = await env.client()
    events = await history_events(plain.get_workflow_handle(handle.id))
    payloads: list[Payload] = []
    for event in events:
        _collect_payloads(event, payloads)
    assert len(payloads) >= 5  # input, signal, activity input and result, workflow result
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCODING
        assert b"quick brown fox" not in payload.data


def _collect_payloads(message, out):
    """Every Payload inside a protobuf message (excluding headers and failures)."""
    for field, value in message.ListFields():
        if field.name in ("header", "failure"):
            continue
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif isinstance(value, Message):
            values = [value]
        else:
            values = list(value)
        for v in values:
            if field.message_type.full_name == "temporal.api.common.v1.Payload":
                out.append(v)
            elif hasattr(v, "ListFields"):
                _collect_payloads(v, out)
