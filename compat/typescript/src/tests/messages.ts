import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateStage,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { env, uid } from '../harness';
import { add, collector, count, counter, done, finish, increment, incrementWhenReleased, items, refuse, release } from '../workflows';
import { assertIs, eventTypes, rejectionOf } from './util';

describe('signals and queries', () => {
  it('delivers signals in order and answers queries while running and after completion', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(collector, { taskQueue, workflowId: uid('signals') });
    for (const item of ['one', 'two', 'three']) await handle.signal(add, item);
    assert.deepEqual(await handle.query(items), ['one', 'two', 'three']);
    await handle.signal(done);
    assert.deepEqual(await handle.result(), ['one', 'two', 'three']);
    assert.deepEqual(await handle.query(items), ['one', 'two', 'three']);
  });

  it('rejects a query the workflow does not know', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(collector, { taskQueue, workflowId: uid('unknown-query') });
    const err = await rejectionOf(handle.query('no-such-query'));
    assert.match(err.message, /no-such-query/);
    await handle.signal(done);
    await handle.result();
  });

  it('signalWithStart starts the workflow with the signal, then signals the same run', async () => {
    const { client, taskQueue } = env();
    const workflowId = uid('signal-with-start');
    const first = await client.workflow.signalWithStart(collector, { taskQueue, workflowId, signal: add, signalArgs: ['first'] });
    const second = await client.workflow.signalWithStart(collector, { taskQueue, workflowId, signal: add, signalArgs: ['second'] });
    assert.equal(second.signaledRunId, first.signaledRunId);
    await first.signal(done);
    assert.deepEqual(await first.result(), ['first', 'second']);
  });

  it('start with a running workflow id fails with WorkflowExecutionAlreadyStartedError', async () => {
    const { client, taskQueue } = env();
    const workflowId = uid('already-started');
    const handle = await client.workflow.start(collector, { taskQueue, workflowId });
    assertIs(await rejectionOf(client.workflow.start(collector, { taskQueue, workflowId })), WorkflowExecutionAlreadyStartedError, 'second start');
    await handle.signal(done);
    await handle.result();
  });
});

describe('updates', () => {
  it('executeUpdate returns the handler result and changes the state', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update') });
    assert.equal(await handle.executeUpdate(increment, { args: [2] }), 2);
    assert.equal(await handle.executeUpdate(increment, { args: [3] }), 5);
    assert.equal(await handle.query(count), 5);
    await handle.signal(finish);
    assert.equal(await handle.result(), 5);
  });

  it('a validator rejection fails the update and leaves no trace in history', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update-rejected') });
    const err = assertIs(await rejectionOf(handle.executeUpdate(increment, { args: [-1] })), WorkflowUpdateFailedError, 'update');
    const cause = assertIs(err.cause, ApplicationFailure, 'update failure cause');
    assert.equal(cause.message, 'increment must be positive, got -1');
    assert.equal(await handle.executeUpdate(increment, { args: [1] }), 1);
    await handle.signal(finish);
    assert.equal(await handle.result(), 1);
    const events = await eventTypes(handle);
    assert.equal(events.filter((e) => e === 'WORKFLOW_EXECUTION_UPDATE_ACCEPTED').length, 1, events.join(' '));
  });

  it('a failing handler fails the update, not the workflow', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update-fails') });
    const err = assertIs(await rejectionOf(handle.executeUpdate(refuse)), WorkflowUpdateFailedError, 'update');
    const cause = assertIs(err.cause, ApplicationFailure, 'update failure cause');
    assert.equal(cause.message, 'this update always fails');
    assert.equal(cause.type, 'Refused');
    assert.equal(await handle.executeUpdate(increment, { args: [4] }), 4);
    await handle.signal(finish);
    assert.equal(await handle.result(), 4);
    const events = await eventTypes(handle);
    assert.equal(events.filter((e) => e === 'WORKFLOW_EXECUTION_UPDATE_COMPLETED').length, 2, events.join(' '));
  });

  it('startUpdate waits for ACCEPTED; the handle later gives the result, also through getUpdateHandle', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update-accepted') });
    const updateId = uid('upd');
    const update = await handle.startUpdate(incrementWhenReleased, {
      args: [7],
      updateId,
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
    assert.equal(update.updateId, updateId);
    let events = await eventTypes(handle);
    assert.ok(events.includes('WORKFLOW_EXECUTION_UPDATE_ACCEPTED'), events.join(' '));
    assert.ok(!events.includes('WORKFLOW_EXECUTION_UPDATE_COMPLETED'), events.join(' '));
    await handle.signal(release);
    assert.equal(await update.result(), 7);
    assert.equal(await handle.getUpdateHandle<number>(updateId).result(), 7);
    assert.equal(await client.workflow.getHandle(handle.workflowId).getUpdateHandle<number>(updateId).result(), 7);
    await handle.signal(finish);
    assert.equal(await handle.result(), 7);
    events = await eventTypes(handle);
    assert.equal(events.filter((e) => e === 'WORKFLOW_EXECUTION_UPDATE_COMPLETED').length, 1, events.join(' '));
  });

  it('an update sent with the id of a completed update returns the same result without running again', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update-dedup') });
    const updateId = uid('upd');
    assert.equal(await handle.executeUpdate(increment, { args: [5], updateId }), 5);
    assert.equal(await handle.executeUpdate(increment, { args: [5], updateId }), 5);
    assert.equal(await handle.query(count), 5);
    await handle.signal(finish);
    assert.equal(await handle.result(), 5);
  });

  it('an update on a completed workflow fails', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(counter, { taskQueue, workflowId: uid('update-closed') });
    await handle.signal(finish);
    await handle.result();
    const err = await rejectionOf(handle.executeUpdate(increment, { args: [1] }), 'update on a completed workflow');
    assertIs(err, WorkflowNotFoundError, 'update on a completed workflow');
  });
});
