import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { env, uid } from '../harness';
import { entries, timeline } from '../ledger';
import { transferMoney } from '../workflows';
import { assertIs, rejectionOf } from './util';

describe('the money-transfer saga', () => {
  it('retries the failing step per its policy, compensates in reverse order once each, and fails', async () => {
    const { client, taskQueue } = env();
    const workflowId = uid('saga');
    const handle = await client.workflow.start(transferMoney, {
      taskQueue,
      workflowId,
      args: [{ from: 'alice', to: 'bob', amount: 100 }],
    });

    const err = assertIs(await rejectionOf(handle.result()), WorkflowFailedError, 'workflow result');
    const transferFailed = assertIs(err.cause, ApplicationFailure, 'workflow failure');
    assert.equal(transferFailed.type, 'TransferFailed');
    assert.equal(transferFailed.message, 'transfer of 100 failed; compensated 2 step(s)');
    const stepFailed = assertIs(transferFailed.cause, ActivityFailure, 'cause of the workflow failure');
    assert.equal(stepFailed.activityType, 'stepWithError');
    assert.equal(stepFailed.retryState, RetryState.MAXIMUM_ATTEMPTS_REACHED);
    const lastAttempt = assertIs(stepFailed.cause, ApplicationFailure, 'cause of the activity failure');
    assert.equal(lastAttempt.message, 'this step always fails');
    assert.equal(lastAttempt.type, 'StepFailed');

    assert.deepEqual(entries(workflowId), [
      'withdraw 100 from alice',
      'deposit 100 to bob',
      'step with error, attempt 1',
      'step with error, attempt 2',
      'step with error, attempt 3',
      'step with error, attempt 4',
      'undo deposit 100 to bob',
      'undo withdraw 100 from alice',
    ]);

    // Backoff 1 s × 2, capped at 2 s: waits of 1, 2, 2 s between attempts (4 s without the cap).
    const attempts = timeline(workflowId).filter((e) => e.entry.startsWith('step with error'));
    const gaps = attempts.slice(1).map((a, i) => a.at - attempts[i].at);
    const shown = `retries after ${gaps.join(', ')} ms`;
    assert.ok(gaps[0] >= 900, `${shown}: expected the first after 1 s`);
    assert.ok(gaps[1] >= 1_900, `${shown}: expected the second after 2 s`);
    assert.ok(gaps[2] >= 1_900 && gaps[2] < 3_900, `${shown}: expected the third after 2 s (the maximum interval)`);
  });
});
