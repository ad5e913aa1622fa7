import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { Activities } from '../activities';

/** What a workflow saw of a failed activity, as plain data for the test. */
export interface SeenFailure {
  failure: string;
  retryState?: string | null;
  cause?: string;
  causeType?: string | null;
  causeMessage?: string;
  nonRetryable?: boolean | null;
  timeoutType?: string | null;
  lastHeartbeatDetails?: unknown;
}

function seen(err: unknown): SeenFailure {
  if (!(err instanceof ActivityFailure)) throw err;
  const cause = err.cause;
  return {
    failure: err.name,
    retryState: err.retryState,
    cause: cause?.name,
    causeMessage: cause?.message,
    causeType: cause instanceof ApplicationFailure ? cause.type : undefined,
    nonRetryable: cause instanceof ApplicationFailure ? cause.nonRetryable : undefined,
    timeoutType: cause instanceof TimeoutFailure ? cause.timeoutType : undefined,
    lastHeartbeatDetails: cause instanceof TimeoutFailure ? cause.lastHeartbeatDetails : undefined,
  };
}

const quickRetry = { initialInterval: '100ms', backoffCoefficient: 1, maximumAttempts: 5 } as const;

export async function retryUntilAttempt(succeedOn: number): Promise<number> {
  const { failUntilAttempt } = proxyActivities<Activities>({ startToCloseTimeout: '10s', retry: quickRetry });
  return failUntilAttempt(succeedOn);
}

/** `how`: 'flag' throws ApplicationFailure.nonRetryable; 'type' throws a type listed in nonRetryableErrorTypes. */
export async function nonRetryableFailure(how: 'flag' | 'type'): Promise<SeenFailure> {
  const acts = proxyActivities<Activities>({
    startToCloseTimeout: '10s',
    retry: { ...quickRetry, nonRetryableErrorTypes: ['Forbidden'] },
  });
  try {
    await (how === 'flag' ? acts.failNonRetryable() : acts.failWithType('Forbidden'));
    return { failure: 'none' };
  } catch (err) {
    return seen(err);
  }
}

export async function heartbeatDetailsAcrossRetry(): Promise<unknown> {
  const { heartbeatThenFailOnce } = proxyActivities<Activities>({
    startToCloseTimeout: '10s',
    heartbeatTimeout: '5s',
    retry: { ...quickRetry, maximumAttempts: 2 },
  });
  return heartbeatThenFailOnce();
}

export async function heartbeatTimesOut(): Promise<SeenFailure> {
  const { heartbeatOnceThenStall } = proxyActivities<Activities>({
    startToCloseTimeout: '20s',
    heartbeatTimeout: '1s',
    retry: { maximumAttempts: 1 },
  });
  try {
    await heartbeatOnceThenStall(4_000);
    return { failure: 'none' };
  } catch (err) {
    return seen(err);
  }
}

export const activityStarted = defineSignal('activityStarted');
export const activityFinished = defineSignal('activityFinished');

/**
 * Starts a heartbeating activity with `cancellationType`, cancels it once it runs, and reports
 * what the workflow saw. Unless it waited for the activity's cancellation (WAIT_CANCELLATION_COMPLETED),
 * it then waits for the activity to signal that it finished, so the workflow is still open
 * while the activity learns of (or never learns of) the cancellation.
 */
export async function cancelHeartbeatingActivity(cancellationType: ActivityCancellationType, swallow: boolean): Promise<string> {
  let started = false;
  let finished = false;
  setHandler(activityStarted, () => void (started = true));
  setHandler(activityFinished, () => void (finished = true));
  const acts = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    // Cancellation reaches the activity with a heartbeat response; heartbeats are sent at most
    // every 0.8 × heartbeatTimeout. The cleanup (1 s) must fit in the heartbeat timeout.
    heartbeatTimeout: '3s',
    retry: { maximumAttempts: 1 },
    cancellationType,
  });
  const { record } = proxyActivities<Activities>({ startToCloseTimeout: '10s' });
  const scope = new CancellationScope();
  const activity = scope.run(() => acts.heartbeatUntilCancelled({ cleanupMs: 1_000, swallow, limitMs: 4_000 }));
  if (!(await condition(() => started, '20s'))) throw ApplicationFailure.nonRetryable('activity never started');
  scope.cancel();
  let outcome: string;
  try {
    outcome = `result: ${await activity}`;
  } catch (err) {
    if (!isCancellation(err)) throw err;
    outcome = `cancelled (${(err as Error).name}${err instanceof ActivityFailure ? ` caused by ${err.cause?.name}` : ''})`;
  }
  await record(`workflow saw ${outcome}`);
  if (cancellationType !== ActivityCancellationType.WAIT_CANCELLATION_COMPLETED) await condition(() => finished, '20s');
  return outcome;
}

/** Schedules `count` activities on a task queue no worker polls, schedule-to-start = schedule-to-close. */
export async function scheduleToStartTimeouts(taskQueue: string, count: number): Promise<SeenFailure[]> {
  const { echo } = proxyActivities<Activities>({
    taskQueue,
    scheduleToStartTimeout: '2s',
    scheduleToCloseTimeout: '2s',
  });
  const outcomes = await Promise.allSettled(Array.from({ length: count }, (_, i) => echo(i)));
  return outcomes.map((o) => (o.status === 'fulfilled' ? { failure: 'none' } : seen(o.reason)));
}

export async function startToCloseTimeout(): Promise<SeenFailure> {
  const { sleepIgnoringCancel } = proxyActivities<Activities>({
    startToCloseTimeout: '1s',
    retry: { initialInterval: '100ms', maximumAttempts: 2 },
  });
  try {
    await sleepIgnoringCancel(3_000);
    return { failure: 'none' };
  } catch (err) {
    return seen(err);
  }
}
