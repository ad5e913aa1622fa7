import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure, defineSearchAttributeKey, SearchAttributeType, TerminatedFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { env, eventually, NAMESPACE, sleep, uid } from '../harness';
import { greet, greetedAtStart, reportStart, waitForever } from '../workflows';
import { assertIs, eventTypes, historyEvents, rejectionOf } from './util';

describe('start delay', () => {
  it('start with startDelay runs the first workflow task only after the delay', async () => {
    const { client, taskQueue } = env();
    const before = Date.now();
    const handle = await client.workflow.start(reportStart, { taskQueue, workflowId: uid('start-delay'), startDelay: '2s' });
    await sleep(1_000);
    assert.deepEqual(await eventTypes(handle), ['WORKFLOW_EXECUTION_STARTED'], 'history 1 s into a 2 s delay');
    const [started] = await historyEvents(handle);
    assert.equal(Number(started.workflowExecutionStartedEventAttributes?.firstWorkflowTaskBackoff?.seconds), 2);
    const description = await handle.describe();
    assert.equal(description.status.name, 'RUNNING');
    const delay = description.executionTime!.getTime() - description.startTime.getTime();
    assert.ok(delay >= 1_990 && delay <= 2_010, `executionTime - startTime = ${delay} ms`);
    const firstTaskAt = await handle.result();
    assert.ok(firstTaskAt - before >= 1_950, `the first workflow task ran ${firstTaskAt - before} ms after the start call`);
  });

  it('signalWithStart with startDelay records the signal but runs the workflow only after the delay', async () => {
    const { client, taskQueue } = env();
    const before = Date.now();
    const handle = await client.workflow.signalWithStart(greetedAtStart, {
      taskQueue,
      workflowId: uid('signal-with-start-delay'),
      signal: greet,
      signalArgs: ['hello early'],
      startDelay: '2s',
    });
    await sleep(1_000);
    const early = await eventTypes(handle);
    assert.ok(!early.includes('WORKFLOW_TASK_STARTED'), `history 1 s into a 2 s delay: ${early.join(' ')}`);
    const { firstTaskAt, greetings } = await handle.result();
    assert.deepEqual(greetings, ['hello early']);
    assert.ok(firstTaskAt - before >= 1_950, `the first workflow task ran ${firstTaskAt - before} ms after signalWithStart`);
  });
});

async function registerSearchAttribute(name: string, type: temporal.api.enums.v1.IndexedValueType): Promise<void> {
  await env().connection.operatorService.addSearchAttributes({ namespace: NAMESPACE, searchAttributes: { [name]: type } });
}

describe('cancel, terminate, describe', () => {
  it('cancel: the workflow ends CANCELLED and its result is a CancelledFailure', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(waitForever, { taskQueue, workflowId: uid('cancel') });
    await handle.cancel();
    const err = assertIs(await rejectionOf(handle.result()), WorkflowFailedError, 'result');
    assertIs(err.cause, CancelledFailure, 'failure');
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    const events = await eventTypes(handle);
    assert.ok(events.includes('WORKFLOW_EXECUTION_CANCEL_REQUESTED'), events.join(' '));
    assert.equal(events.at(-1), 'WORKFLOW_EXECUTION_CANCELED');
  });

  it('terminate: the workflow ends TERMINATED with the reason', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(waitForever, { taskQueue, workflowId: uid('terminate') });
    await handle.terminate('enough waiting');
    const err = assertIs(await rejectionOf(handle.result()), WorkflowFailedError, 'result');
    const cause = assertIs(err.cause, TerminatedFailure, 'failure');
    assert.equal(cause.message, 'enough waiting');
    assert.equal((await handle.describe()).status.name, 'TERMINATED');
    assert.equal((await eventTypes(handle)).at(-1), 'WORKFLOW_EXECUTION_TERMINATED');
  });

  it('describe shows type, queue, memo and search attributes given at start, and the root execution', async () => {
    const { client, taskQueue } = env();
    const keyword = defineSearchAttributeKey('CustomKeywordField', SearchAttributeType.KEYWORD);
    const workflowId = uid('describe');
    const start = () =>
      client.workflow.start(waitForever, {
        taskQueue,
        workflowId,
        memo: { owner: 'ada', tags: ['compat', 'typescript'] },
        typedSearchAttributes: [{ key: keyword, value: 'compat-ts' }],
      });
    const handle = await start().catch(async (err) => {
      // Temporal's dev server registers no custom search attributes: an operator adds it once.
      if (!/no mapping defined for search attribute/.test(String(err.cause?.details))) throw err;
      await registerSearchAttribute(keyword.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD);
      return eventually('start once the search attribute is registered', start);
    });
    const d = await handle.describe();
    assert.equal(d.type, 'waitForever');
    assert.equal(d.workflowId, workflowId);
    assert.equal(d.runId, handle.firstExecutionRunId);
    assert.equal(d.taskQueue, taskQueue);
    assert.equal(d.status.name, 'RUNNING');
    assert.deepEqual(d.memo, { owner: 'ada', tags: ['compat', 'typescript'] });
    assert.equal(d.typedSearchAttributes.get(keyword), 'compat-ts');
    assert.equal(d.parentExecution, undefined);
    const root = d.raw.workflowExecutionInfo?.rootExecution;
    assert.equal(root?.workflowId, workflowId, 'workflowExecutionInfo.rootExecution.workflowId (itself)');
    assert.equal(root?.runId, handle.firstExecutionRunId, 'workflowExecutionInfo.rootExecution.runId (itself)');
    await handle.terminate('test cleanup');
  });
});
