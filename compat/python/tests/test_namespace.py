"""What a namespace tells SDKs it supports (they choose their behaviour by it)."""

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from suite.support import NAMESPACE


async def test_the_namespace_advertises_what_the_sdks_rely_on(env):
    client = await env.client()
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=NAMESPACE)
    )
    capabilities = described.namespace_info.capabilities
    assert capabilities.eager_workflow_start
    assert capabilities.sync_update
    assert capabilities.async_update
