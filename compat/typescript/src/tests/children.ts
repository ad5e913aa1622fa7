import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowExecutionStatusName } from '@temporalio/client';
import { env, eventually, uid } from '../harness';
import { countdown, parentOfFailingChild, parentOfGreeter, parentWithClosePolicies } from '../workflows';

async function statusOf(workflowId: string): Promise<WorkflowExecutionStatusName> {
  return (await env().client.workflow.getHandle(workflowId).describe()).status.name;
}

describe('child workflows', () => {
  it('a parent gets its child result; the child knows its parent and root', async () => {
    const { client, taskQueue } = env();
    const parentId = uid('parent');
    const childId = uid('child');
    const parent = await client.workflow.start(parentOfGreeter, { taskQueue, workflowId: parentId, args: [childId] });
    assert.equal(await parent.result(), 'hello ada');
    const child = await client.workflow.getHandle(childId).describe();
    assert.equal(child.status.name, 'COMPLETED');
    assert.equal(child.parentExecution?.workflowId, parentId, 'parentExecution.workflowId');
    assert.equal(child.parentExecution?.runId, parent.firstExecutionRunId, 'parentExecution.runId');
    const root = child.raw.workflowExecutionInfo?.rootExecution;
    assert.equal(root?.workflowId, parentId, 'workflowExecutionInfo.rootExecution.workflowId');
    assert.equal(root?.runId, parent.firstExecutionRunId, 'workflowExecutionInfo.rootExecution.runId');
    assert.equal(child.rootExecution?.workflowId, parentId, 'rootExecution.workflowId');
  });

  it('a parent sees its child failure as ChildWorkflowFailure with the cause', async () => {
    const { client, taskQueue } = env();
    const childId = uid('failing-child');
    const parent = await client.workflow.start(parentOfFailingChild, { taskQueue, workflowId: uid('parent'), args: [childId] });
    assert.deepEqual(await parent.result(), {
      failure: 'ChildWorkflowFailure',
      cause: 'ApplicationFailure',
      message: 'the child gave up',
      type: 'ChildGaveUp',
    });
    assert.equal(await statusOf(childId), 'FAILED');
  });

  it('parent close policies: abandon keeps running, terminate terminates, request-cancel cancels', async () => {
    const { client, taskQueue } = env();
    const ids = { abandon: uid('abandoned'), terminate: uid('terminated'), requestCancel: uid('cancelled') };
    const parent = await client.workflow.start(parentWithClosePolicies, { taskQueue, workflowId: uid('parent'), args: [ids] });
    assert.equal(await parent.result(), 'children started');
    await eventually('the TERMINATE child is terminated', async () => (await statusOf(ids.terminate)) === 'TERMINATED');
    await eventually('the REQUEST_CANCEL child is cancelled', async () => (await statusOf(ids.requestCancel)) === 'CANCELLED');
    assert.equal(await statusOf(ids.abandon), 'RUNNING');
    await client.workflow.getHandle(ids.abandon).terminate('test cleanup');
  });
});

describe('continue-as-new', () => {
  it('runs a chain of runs; the result follows the chain; earlier runs are CONTINUED_AS_NEW', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(countdown, { taskQueue, workflowId: uid('countdown'), args: [3] });
    assert.deepEqual(await handle.result(), { seen: [3, 2, 1, 0], runs: 4 });
    const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
    const firstRun = await first.describe();
    assert.equal(firstRun.status.name, 'CONTINUED_AS_NEW');
    const latest = await client.workflow.getHandle(handle.workflowId).describe();
    assert.equal(latest.status.name, 'COMPLETED');
    assert.notEqual(latest.runId, handle.firstExecutionRunId);
    assert.equal(latest.raw.workflowExecutionInfo?.firstRunId, handle.firstExecutionRunId);
    assert.deepEqual(await first.result(), { seen: [3, 2, 1, 0], runs: 4 });
  });
});
