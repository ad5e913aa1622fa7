import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { env, eventually, uid } from '../harness';
import { cancelTimer, sleeper, waitForFlag } from '../workflows';
import { eventTypes } from './util';

describe('timers', () => {
  it('sleep waits on a durable timer', async () => {
    const { client, taskQueue } = env();
    const started = Date.now();
    const handle = await client.workflow.start(sleeper, { taskQueue, workflowId: uid('sleep'), args: [1_000] });
    const workflowElapsed = await handle.result();
    const elapsed = Date.now() - started;
    assert.ok(workflowElapsed >= 1_000, `the workflow clock moved ${workflowElapsed} ms`);
    assert.ok(elapsed >= 1_000 && elapsed < 5_000, `sleep(1s) took ${elapsed} ms`);
    const events = await eventTypes(handle);
    assert.ok(events.includes('TIMER_STARTED') && events.includes('TIMER_FIRED'), events.join(' '));
  });

  it('condition with a timeout returns false when nothing happens in time', async () => {
    const { client, taskQueue } = env();
    const started = Date.now();
    const handle = await client.workflow.start(waitForFlag, { taskQueue, workflowId: uid('condition-timeout'), args: [500] });
    assert.equal(await handle.result(), false);
    assert.ok(Date.now() - started >= 500);
  });

  it('condition with a timeout returns true when the signal comes first, and cancels its timer', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(waitForFlag, { taskQueue, workflowId: uid('condition-met'), args: [60_000] });
    await eventually('the workflow waits on its timer', async () => (await eventTypes(handle)).includes('TIMER_STARTED'));
    await handle.signal('flag');
    assert.equal(await handle.result(), true);
    const events = await eventTypes(handle);
    assert.ok(events.includes('TIMER_STARTED') && events.includes('TIMER_CANCELED'), events.join(' '));
    assert.ok(!events.includes('TIMER_FIRED'), events.join(' '));
  });

  it('cancelling a CancellationScope cancels its timer', async () => {
    const { client, taskQueue } = env();
    const handle = await client.workflow.start(cancelTimer, { taskQueue, workflowId: uid('cancel-timer') });
    assert.equal(await handle.result(), 'timer cancelled');
    const events = await eventTypes(handle);
    assert.equal(events.filter((e) => e === 'TIMER_STARTED').length, 2, events.join(' '));
    assert.equal(events.filter((e) => e === 'TIMER_CANCELED').length, 1, events.join(' '));
    assert.equal(events.filter((e) => e === 'TIMER_FIRED').length, 1, events.join(' '));
  });
});
