"""Search attributes and memo given at start: what describe shows and what the workflow sees.

Temporal has no custom search attributes until an operator registers them (its dev server only
has system ones such as WorkflowType, which a client may not set) and rejects a start that sets
an unregistered one, so the tests register theirs through the operator service, as a Python SDK
user's setup does. Registration has a test of its own; the others go on when a server does not
implement it (UNIMPLEMENTED), so that what they check is still reported."""

import pytest

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from suite.support import NAMESPACE, wait_until
from suite.workflows import CUSTOMER_ID, ORDER_COUNT, Memoized, ReadsItsAttributes, Upserts

WANTED = {
    CUSTOMER_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    ORDER_COUNT.name: IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def register_search_attributes(client):
    """Register the suite's custom search attributes unless they exist (idempotent)."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=NAMESPACE)
    )
    missing = {k: v for k, v in WANTED.items() if k not in listed.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes=missing)
        )
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=NAMESPACE)
    )
    assert {k: listed.custom_attributes.get(k) for k in WANTED} == WANTED


async def try_register_search_attributes(client):
    try:
        await register_search_attributes(client)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise


async def test_custom_search_attributes_are_registered_through_the_operator_service(env):
    client = await env.client()
    await register_search_attributes(client)
    await register_search_attributes(client)  # a second time finds them and adds nothing


async def test_typed_search_attributes_given_at_start_show_in_describe(env):
    client = await env.client()
    await try_register_search_attributes(client)
    attributes = TypedSearchAttributes(
        [SearchAttributePair(CUSTOMER_ID, "cust-42"), SearchAttributePair(ORDER_COUNT, 7)]
    )
    async with env.worker(client):
        handle = await client.start_workflow(
            ReadsItsAttributes.run, id=env.workflow_id(), task_queue=env.task_queue,
            search_attributes=attributes, memo={"owner": "ada"},
        )
        description = await handle.describe()
        assert description.typed_search_attributes.get(CUSTOMER_ID) == "cust-42"
        assert description.typed_search_attributes.get(ORDER_COUNT) == 7
        await handle.signal(ReadsItsAttributes.finish_now)
        seen = await handle.result()
    assert seen == {"memo_owner": "ada", "customer": "cust-42", "orders": 7}


async def test_list_workflows_finds_a_workflow_by_its_search_attribute(env):
    client = await env.client()
    await try_register_search_attributes(client)
    customer = env.workflow_id("customer")
    async with env.worker(client):
        handle = await client.start_workflow(
            ReadsItsAttributes.run, id=env.workflow_id(), task_queue=env.task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER_ID, customer)]),
        )

        async def listed():
            return [w async for w in client.list_workflows(f"{CUSTOMER_ID.name} = '{customer}'")]

        found = await wait_until(listed, timeout=10, what="workflow visible by its attribute")
        assert [(w.id, w.run_id) for w in found] == [(handle.id, handle.result_run_id)]
        assert found[0].typed_search_attributes.get(CUSTOMER_ID) == customer
        await handle.signal(ReadsItsAttributes.finish_now)
        await handle.result()


async def test_memo_given_at_start_shows_in_describe_and_in_the_workflow(env):
    client = await env.client()
    memo = {"owner": "ada", "priority": 3, "tags": ["a", "b"]}
    async with env.worker(client):
        handle = await client.start_workflow(
            Memoized.run, id=env.workflow_id(), task_queue=env.task_queue, memo=memo
        )
        seen = await handle.result()
    assert seen == {"owner": "ada", "all": memo}
    description = await handle.describe()
    assert await description.memo() == memo
    assert await description.memo_value("priority") == 3


async def test_upserts_show_in_list_at_once_and_null_values_remove(env):
    client = await env.client()
    await register_search_attributes(client)
    customer = env.workflow_id("upserting")
    async with env.worker(client):
        handle = await client.start_workflow(
            Upserts.run, customer, id=env.workflow_id(), task_queue=env.task_queue
        )

        async def listed():
            return [w async for w in client.list_workflows(
                f"{CUSTOMER_ID.name} = '{customer}' AND {ORDER_COUNT.name} IS NULL")]

        found = await wait_until(listed, timeout=10, what="upserted attribute visible, removed one gone")
        assert [w.id for w in found] == [handle.id]
        assert found[0].typed_search_attributes.get(CUSTOMER_ID) == customer
        assert found[0].typed_search_attributes.get(ORDER_COUNT) is None
        count = await client.count_workflows(f"{CUSTOMER_ID.name} = '{customer}'")
        assert count.count == 1
        await handle.signal(Upserts.finish_now)
        result = await handle.result()
    assert result == {"memo": {"kept": "yes"}, "orders": None}
    description = await handle.describe()
    assert await description.memo() == {"kept": "yes"}


async def test_the_workers_build_id_is_searchable(env):
    """The server records the builds that ran a workflow in the predefined `BuildIds`."""
    client = await env.client()
    build = env.workflow_id("build")
    async with env.worker(client, build_id=build):
        handle = await client.start_workflow(Memoized.run, id=env.workflow_id(), task_queue=env.task_queue)
        await handle.result()

    async def listed():
        return [w async for w in client.list_workflows(f"BuildIds = 'unversioned:{build}'")]

    found = await wait_until(listed, timeout=10, what="run listed by its build id")
    assert [w.id for w in found] == [handle.id]
