import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowStartOptions } from '@temporalio/client';
import { ActivityCancellationType, RetryState, TimeoutType, Workflow } from '@temporalio/common';
import { env, uid } from '../harness';
import { entries, timeline } from '../ledger';
import {
  cancelHeartbeatingActivity,
  heartbeatDetailsAcrossRetry,
  heartbeatTimesOut,
  nonRetryableFailure,
  retryUntilAttempt,
  scheduleToStartTimeouts,
  startToCloseTimeout,
} from '../workflows';
import { eventTypes } from './util';

function start<T extends Workflow>(workflow: T, name: string, ...args: Parameters<T>) {
  const { client, taskQueue } = env();
  return client.workflow.start(workflow, { taskQueue, workflowId: uid(name), args } as unknown as WorkflowStartOptions<T>);
}

describe('activity retries and failures', () => {
  it('retries a failing activity and passes it its attempt number', async () => {
    const handle = await start(retryUntilAttempt, 'retry', 3);
    assert.equal(await handle.result(), 3);
    assert.deepEqual(entries(handle.workflowId), ['attempt 1', 'attempt 2', 'attempt 3']);
  });

  it('does not retry an ApplicationFailure marked non-retryable', async () => {
    const handle = await start(nonRetryableFailure, 'non-retryable', 'flag');
    const seen = await handle.result();
    assert.deepEqual(seen, {
      failure: 'ActivityFailure',
      retryState: RetryState.NON_RETRYABLE_FAILURE,
      cause: 'ApplicationFailure',
      causeMessage: 'card declined',
      causeType: 'CardDeclined',
      nonRetryable: true,
    });
    assert.deepEqual(entries(handle.workflowId), ['attempt 1']);
  });

  it('does not retry an error type listed in nonRetryableErrorTypes', async () => {
    const handle = await start(nonRetryableFailure, 'non-retryable-type', 'type');
    const seen = await handle.result();
    assert.equal(seen.retryState, RetryState.NON_RETRYABLE_FAILURE);
    assert.equal(seen.causeType, 'Forbidden');
    assert.equal(seen.nonRetryable, false);
    assert.deepEqual(entries(handle.workflowId), ['attempt 1']);
  });
});

describe('activity heartbeats', () => {
  it('gives the next attempt the details last heartbeated by the failed one', async () => {
    const handle = await start(heartbeatDetailsAcrossRetry, 'heartbeat-details');
    assert.deepEqual(await handle.result(), { progress: 3 });
    assert.deepEqual(entries(handle.workflowId), ['attempt 1, heartbeat details null', 'attempt 2, heartbeat details {"progress":3}']);
  });

  it('times out an activity that stops heartbeating, with its last details', async () => {
    const started = Date.now();
    const handle = await start(heartbeatTimesOut, 'heartbeat-timeout');
    const seen = await handle.result();
    const elapsed = Date.now() - started;
    assert.deepEqual(seen, {
      failure: 'ActivityFailure',
      retryState: RetryState.MAXIMUM_ATTEMPTS_REACHED,
      cause: 'TimeoutFailure',
      causeMessage: 'activity Heartbeat timeout',
      timeoutType: TimeoutType.HEARTBEAT,
      lastHeartbeatDetails: 'stalled at step 1',
    });
    // Heartbeat timeout 1 s; the activity itself would only return after 4 s.
    assert.ok(elapsed < 3_500, `the heartbeat timeout was reported after ${elapsed} ms`);
  });
});

describe('cancelling a heartbeating activity', () => {
  it('TRY_CANCEL: the workflow sees the cancellation at once; the activity is still told', async () => {
    const handle = await start(cancelHeartbeatingActivity, 'cancel-try', ActivityCancellationType.TRY_CANCEL, false);
    assert.equal(await handle.result(), 'cancelled (ActivityFailure caused by CancelledFailure)');
    const seen = entries(handle.workflowId);
    assert.deepEqual([...seen].sort(), [
      'activity cancelled (cancel requested)',
      'activity cleanup done',
      'activity started',
      'workflow saw cancelled (ActivityFailure caused by CancelledFailure)',
    ]);
    assert.ok(
      seen.indexOf('workflow saw cancelled (ActivityFailure caused by CancelledFailure)') < seen.indexOf('activity cleanup done'),
      `the workflow waited for the activity's cleanup: ${seen.join(' | ')}`,
    );
    const events = await eventTypes(handle);
    assert.ok(events.includes('ACTIVITY_TASK_CANCEL_REQUESTED'), events.join(' '));
  });

  it('WAIT_CANCELLATION_COMPLETED: the workflow sees the cancellation after the activity finished cleaning up', async () => {
    const handle = await start(cancelHeartbeatingActivity, 'cancel-wait', ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, false);
    assert.equal(await handle.result(), 'cancelled (ActivityFailure caused by CancelledFailure)');
    assert.deepEqual(entries(handle.workflowId), [
      'activity started',
      'activity cancelled (cancel requested)',
      'activity cleanup done',
      'workflow saw cancelled (ActivityFailure caused by CancelledFailure)',
    ]);
    const events = await eventTypes(handle);
    assert.ok(events.includes('ACTIVITY_TASK_CANCEL_REQUESTED'), events.join(' '));
    assert.ok(events.includes('ACTIVITY_TASK_CANCELED'), events.join(' '));
  });

  it('ABANDON: the workflow sees the cancellation at once; the activity is never told and finishes', async () => {
    const handle = await start(cancelHeartbeatingActivity, 'cancel-abandon', ActivityCancellationType.ABANDON, false);
    assert.equal(await handle.result(), 'cancelled (ActivityFailure caused by CancelledFailure)');
    assert.deepEqual(entries(handle.workflowId), [
      'activity started',
      'workflow saw cancelled (ActivityFailure caused by CancelledFailure)',
      'activity finished uncancelled',
    ]);
    const events = await eventTypes(handle);
    assert.ok(!events.includes('ACTIVITY_TASK_CANCEL_REQUESTED'), events.join(' '));
  });

  it('an activity that swallows its cancellation and returns normally completes; the workflow gets its result', async () => {
    const handle = await start(cancelHeartbeatingActivity, 'cancel-swallow', ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, true);
    const outcome = await handle.result();
    assert.equal(outcome, 'result: swallowed the cancellation');
    const events = await eventTypes(handle);
    assert.ok(events.includes('ACTIVITY_TASK_CANCEL_REQUESTED'), events.join(' '));
    assert.ok(events.includes('ACTIVITY_TASK_COMPLETED'), events.join(' '));
    assert.ok(!events.includes('ACTIVITY_TASK_CANCELED'), events.join(' '));
    assert.deepEqual(entries(handle.workflowId), [
      'activity started',
      'activity cancelled (cancel requested)',
      'activity cleanup done',
      'workflow saw result: swallowed the cancellation',
    ]);
  });
});

describe('activity timeouts', () => {
  it('reports ScheduleToStart when no worker polls and schedule-to-start = schedule-to-close (5 in parallel)', async () => {
    const handle = await start(scheduleToStartTimeouts, 'schedule-to-start', uid('nobody-polls'), 5);
    const seen = await handle.result();
    assert.deepEqual(
      seen.map((s) => `${s.cause}: ${s.timeoutType}`),
      Array(5).fill(`TimeoutFailure: ${TimeoutType.SCHEDULE_TO_START}`),
    );
    for (const s of seen) assert.equal(s.retryState, RetryState.TIMEOUT);
  });

  it('times out an attempt after startToCloseTimeout and retries it', async () => {
    const started = Date.now();
    const handle = await start(startToCloseTimeout, 'start-to-close');
    const seen = await handle.result();
    assert.equal(seen.cause, 'TimeoutFailure');
    assert.equal(seen.timeoutType, TimeoutType.START_TO_CLOSE);
    assert.equal(seen.retryState, RetryState.MAXIMUM_ATTEMPTS_REACHED);
    assert.deepEqual(entries(handle.workflowId), ['attempt 1 sleeping 3000 ms', 'attempt 2 sleeping 3000 ms']);
    const [first, second] = timeline(handle.workflowId);
    assert.ok(second.at - first.at >= 1_000, `second attempt ${second.at - first.at} ms after the first`);
    assert.ok(Date.now() - started < 5_500, `took ${Date.now() - started} ms for two 1 s attempts`);
  });
});
