import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { env, eventually, log, NAMESPACE, newWorker, sleep, uid, withDeadline } from '../harness';
import { entries } from '../ledger';
import { proceed, twoSteps } from '../workflows';
import { eventTypes } from './util';

describe('worker lifecycle', () => {
  it('worker.shutdown() with polls outstanding completes within seconds', { timeout: 80_000 }, async (t) => {
    const { namespaceInfo } = await env().connection.workflowService.describeNamespace({ namespace: NAMESPACE });
    t.diagnostic(`namespace capabilities: ${JSON.stringify(namespaceInfo?.capabilities ?? null)}`);
    const worker = await newWorker({ taskQueue: uid('shutdown') });
    const running = worker.run();
    await eventually('the worker runs', () => worker.getState() === 'RUNNING');
    await sleep(2_000); // its long polls are now waiting at the server
    const before = Date.now();
    worker.shutdown();
    await withDeadline(running, 70_000, 'worker.run() after shutdown()');
    const took = Date.now() - before;
    log(`worker.shutdown() with outstanding polls took ${took} ms (${env().server})`);
    t.diagnostic(`shutdown took ${took} ms`);
    assert.ok(took < 5_000, `worker.shutdown() took ${took} ms`);
  });

  it('a worker restarted mid-workflow finishes it', { timeout: 120_000 }, async (t) => {
    const { client } = env();
    const taskQueue = uid('restart');
    const first = await newWorker({ taskQueue });
    const running = first.run();
    const handle = await client.workflow.start(twoSteps, { taskQueue, workflowId: uid('restart') });
    await eventually('step one ran and the workflow waits', async () => {
      const events = await eventTypes(handle);
      return events.includes('ACTIVITY_TASK_COMPLETED') && events.at(-1) === 'WORKFLOW_TASK_COMPLETED';
    });
    first.shutdown();
    await withDeadline(running, 70_000, 'first worker shutdown');
    await handle.signal(proceed);
    const second = await newWorker({ taskQueue });
    const before = Date.now();
    const result = await second.runUntil(withDeadline(handle.result(), 30_000, 'result after the restart'));
    const took = Date.now() - before;
    log(`restarted worker finished the workflow in ${took} ms (${env().server})`);
    t.diagnostic(`finished ${took} ms after the restart`);
    assert.equal(result, 'both steps done');
    assert.deepEqual(entries(handle.workflowId), ['step one', 'step two']);
    // Temporal gives the workflow task to the new worker at once, rather than leaving it on the
    // first worker's sticky queue until the 10 s sticky schedule-to-start timeout.
    assert.ok(took < 5_000, `the restarted worker finished the workflow ${took} ms after it started`);
  });
});
